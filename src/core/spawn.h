/* Running other programs: always an argv array through posix_spawnp, never a shell string.
 * Output is captured through pipes with caps, and a failure carries the tail of the
 * program's stderr so the user sees why. */
#ifndef PX_SPAWN_H
#define PX_SPAWN_H

#include <stddef.h>

struct px_err;

struct px_spawn_result {
	int exit_status; /* exit code, or 128 + signal number when killed */
	char *out;       /* captured stdout (NUL-terminated), when requested */
	size_t out_len;
	char *errout; /* captured stderr (NUL-terminated, the last 64 KiB) */
};

#define PX_SPAWN_OUT_MAX (16u << 20)

/* Runs argv[0] (searched in PATH) with the given argv and waits. Captures stdout when
 * capture_stdout is set (else it goes to our stderr, so tool chatter never pollutes pexi's
 * stdout). Fails only when the program cannot be started or waited for; the caller judges
 * the exit status. Free the result with px_spawn_result_free. */
int px_spawn(const char *const argv[], int capture_stdout, struct px_spawn_result *ret,
             struct px_err **err);
/* px_spawn with stdin read from the file 'stdin_path' (NULL: /dev/null), e.g. a script
 * for `sh -s`. A missing file fails in the child: exit status 127. */
int px_spawn_stdin(const char *const argv[], const char *stdin_path, int capture_stdout,
                   struct px_spawn_result *ret, struct px_err **err);
void px_spawn_result_free(struct px_spawn_result *r);

/* Runs argv and fails unless it exits with 0; the error names the program, its status and
 * the last lines of its stderr. *ret_out (if non-NULL) receives stdout. */
int px_run(const char *const argv[], char **ret_out, struct px_err **err);

/* Whether a program can be found in PATH. */
int px_have_program(const char *name);

#endif
