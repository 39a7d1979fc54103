#include "core/common.h"

#include "core/spawn.h"
#include "tap.h"

int main(void)
{
	struct px_err *err = NULL;
	char *out = NULL;

	const char *echo[] = {"printf", "%s|", "a b", "$HOME", "'quoted'", NULL};
	ok(px_run(echo, &out, &err) == 0, "printf runs");
	is_str(out, "a b|$HOME|'quoted'|", "arguments pass verbatim, no shell expansion");
	free(out);

	const char *fail[] = {"sh", "-c", "echo first >&2; echo 'the reason' >&2; exit 3", NULL};
	ok(px_run(fail, NULL, &err) < 0, "non-zero exit fails");
	is_str(err ? err->msg : NULL, "'sh' failed with status 3: the reason",
	       "error names the program, status and last stderr line");
	px_err_clear(&err);

	const char *missing[] = {"pexi-no-such-program", NULL};
	ok(px_run(missing, NULL, &err) < 0, "missing program fails");
	like(err ? err->msg : NULL, "cannot run 'pexi-no-such-program'", "names the program");
	px_err_clear(&err);

	struct px_spawn_result r;
	const char *sig[] = {"sh", "-c", "kill -9 $$", NULL};
	ok(px_spawn(sig, 0, &r, &err) == 0 && r.exit_status == 128 + 9, "signal is 128+N");
	px_spawn_result_free(&r);

	/* Large output through the pipe does not deadlock with stderr. */
	const char *big[] = {"sh", "-c", "head -c 3000000 /dev/zero; head -c 200000 /dev/zero >&2",
	                     NULL};
	ok(px_spawn(big, 1, &r, &err) == 0 && r.out_len == 3000000 && strlen(r.errout) == 0,
	   "3 MB of stdout and 200 KB of stderr drain together");
	px_spawn_result_free(&r);

	ok(px_have_program("sh"), "sh is found in PATH");
	ok(!px_have_program("pexi-no-such-program"), "a missing program is not found");
	return done_testing();
}
