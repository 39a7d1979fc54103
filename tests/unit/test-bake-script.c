/* The chroot bake's generated script and the executors' command construction. The oracle
 * for quoting is /bin/sh itself: each hostile string is quoted, handed to `sh -c`, and
 * must come back byte for byte as one argument; the generated run_apk is executed by sh
 * with `env` replaced by a function that prints the argv apk would get. */
#include "tap.h"

#include "core/common.h"

#include "bake/chroot-script.h"
#include "bake/exec.h"
#include "core/buf.h"
#include "core/spawn.h"

static const char *const hostile[] = {
        "plain",
        "",
        "it's",
        "'",
        "''''",
        "$(touch /tmp/pexi-pwned)",
        "`touch /tmp/pexi-pwned`",
        "${HOME}",
        "a\nb",
        "\n",
        "-rf",
        "--allow-untrusted",
        "a b\tc",
        "\\'\\",
        "\"double\"",
        "semi;colon&amp|pipe>redir<in",
        "*glob?[x]",
        "~user",
        "#comment",
        "nodejs>=20",
};

/* Runs sh -c SCRIPT and returns its stdout (caller frees), or NULL. */
static char *sh_out(const char *script)
{
	const char *argv[] = {"sh", "-c", script, NULL};
	char *out = NULL;
	struct px_err *err = NULL;
	if (px_run(argv, &out, &err) < 0) {
		printf("# %s\n", err->msg);
		px_err_free(err);
		return NULL;
	}
	return out;
}

static void test_quote(void)
{
	for (size_t i = 0; i < PX_ARRAY_SIZE(hostile); i++) {
		struct px_buf b = PX_BUF_INIT;
		px_buf_puts(&b, "printf '%s|' ");
		px_sh_quote(&b, hostile[i]);
		px_buf_puts(&b, " x");
		_cleanup_free_ char *script = px_buf_steal(&b, NULL);
		_cleanup_free_ char *out = sh_out(script);
		_cleanup_free_ char *want = xasprintf("%s|x|", hostile[i]);
		is_str(out, want, "sh reads the quoted word back as one argument");
	}
	ok(access("/tmp/pexi-pwned", F_OK) != 0, "no quoted string ran a command");
}

/* Runs the generated header (everything before the fixed body) with env stubbed, so that
 * run_apk prints the argv apk would get, each argument followed by 0x01 (the hostile
 * strings hold newlines, never 0x01), then the data variables. */
static char *apk_argv_of(const struct px_chroot_script *s)
{
	char *script = NULL;
	struct px_err *err = NULL;
	if (px_chroot_script_build(s, &script, &err) < 0) {
		printf("# %s\n", err->msg);
		px_err_free(err);
		return NULL;
	}
	char *body = strstr(script, "\nexport PATH=");
	if (!body) {
		free(script);
		return NULL;
	}
	*body = '\0';
	_cleanup_free_ char *test =
	        xasprintf("%s\nenv() { for a in \"$@\"; do printf '%%s\\001' \"$a\"; done; }\n"
	                  "mnt=/MNT\nrun_apk\nprintf "
	                  "'IMAGE=%%s\\001WORKBASE=%%s\\001OFFSET=%%s\\001SIZE=%%s\\001' "
	                  "\"$IMAGE\" \"$WORKBASE\" \"$OFFSET\" \"$SIZE\"\n",
	                  script);
	free(script);
	return sh_out(test);
}

static void test_script_args(void)
{
	const char *repos[] = {"https://dl-cdn.alpinelinux.org/alpine/v3.23/main",
	                       "file:///srv/repo 'x'", "file://localhost/srv/r2"};
	const char *keys[] = {"/keys/it's.rsa.pub"};
	struct px_chroot_script s = {
	        .image = "/img/$(reboot)/disk.raw",
	        .work_base = "/work/`id`",
	        .root_offset = 34603008,
	        .root_size = 175099904,
	        .repositories = repos,
	        .n_repositories = 3,
	        .keys = keys,
	        .n_keys = 1,
	        .packages = hostile,
	        .n_packages = PX_ARRAY_SIZE(hostile),
	        .allow_untrusted = false,
	};
	_cleanup_free_ char *got = apk_argv_of(&s);
	struct px_buf w = PX_BUF_INIT;
	const char *fixed[] = {"-i",
	                       "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
	                       "chroot",
	                       "/MNT",
	                       "apk",
	                       "add",
	                       "--no-cache",
	                       "--keys-dir",
	                       "/.pexi-bake/keys",
	                       "--repositories-file",
	                       "/dev/null",
	                       "--repository",
	                       "https://dl-cdn.alpinelinux.org/alpine/v3.23/main",
	                       "--repository",
	                       "/.pexi-bake/repo.1",
	                       "--repository",
	                       "/.pexi-bake/repo.2",
	                       "--"};
	for (size_t i = 0; i < PX_ARRAY_SIZE(fixed); i++)
		px_buf_printf(&w, "%s\001", fixed[i]);
	for (size_t i = 0; i < PX_ARRAY_SIZE(hostile); i++)
		px_buf_printf(&w, "%s\001", hostile[i]);
	px_buf_printf(&w, "IMAGE=%s\001WORKBASE=%s\001OFFSET=34603008\001SIZE=175099904\001",
	              s.image, s.work_base);
	_cleanup_free_ char *want = px_buf_steal(&w, NULL);
	is_str(got, want, "apk gets every package as one argument after --, repositories mapped");

	s.allow_untrusted = true;
	s.n_repositories = 0;
	free(got);
	got = apk_argv_of(&s);
	ok(got && strstr(got, "--allow-untrusted\001") && !strstr(got, "--repositories-file"),
	   "allow_untrusted adds --allow-untrusted; no repositories keep the image's own");
	ok(access("/tmp/pexi-pwned", F_OK) != 0, "nothing in the header ran a command");
}

static void test_script_text(void)
{
	const char *pk[] = {"foo"};
	const char *repos[] = {"file:///srv/my repo"};
	const char *keys[] = {"/k/a.rsa.pub"};
	struct px_chroot_script s = {
	        .image = "/i/disk.raw",
	        .work_base = "/w",
	        .root_offset = 1,
	        .root_size = 2,
	        .repositories = repos,
	        .n_repositories = 1,
	        .keys = keys,
	        .n_keys = 1,
	        .packages = pk,
	        .n_packages = 1,
	};
	_cleanup_free_ char *script = NULL;
	struct px_err *err = NULL;
	ok(px_chroot_script_build(&s, &script, &err) == 0, "the script builds");
	like(script, "bind_repo 1 '/srv/my repo'\n", "a file:// repository is bind-mounted");
	like(script, "add_key '/k/a.rsa.pub'\n", "a key file is added to the keys dir");
	like(script, "losetup --find --show --offset \"$OFFSET\" --sizelimit \"$SIZE\"",
	     "the root partition is attached at its offset");
	like(script, "mount --bind /proc", "/proc is bound");
	like(script, "mount --bind /sys", "/sys is bound");
	like(script, "mount --bind /dev", "/dev is bound");
	like(script, "trap on_exit EXIT", "a trap undoes everything on failure");
	like(script, "e2fsck -fn", "the result is checked with e2fsck -fn");
	like(script, "65735546 | 1021997", "FUSE/virtiofs and 9p work dirs are refused");
	ok(!strstr(script, "rm -rf \"$work") && !strstr(script, "rm -rf \"$mnt\""),
	   "the work dir is never removed recursively (a stuck bind must not cost /dev)");

	/* dash -n: the whole script parses. */
	_cleanup_free_ char *path = xstrdup("/tmp/test-bake-script.XXXXXX");
	int fd = mkostemp(path, O_CLOEXEC);
	ok(fd >= 0 && write(fd, script, strlen(script)) == (ssize_t)strlen(script), "script saved");
	close(fd);
	const char *argv[] = {"sh", "-n", path, NULL};
	ok(px_run(argv, NULL, &err) == 0, "sh -n accepts the script");
	px_err_clear(&err);
	unlink(path);

	struct px_chroot_script bad = s;
	bad.image = "rel/disk.raw";
	ok(px_chroot_script_build(&bad, &script, &err) < 0, "a relative image is refused");
	px_err_clear(&err);
	bad = s;
	const char *ftp[] = {"ftp://x/y"};
	bad.repositories = ftp;
	ok(px_chroot_script_build(&bad, &script, &err) < 0, "an ftp:// repository is refused");
	like(err ? err->msg : NULL, "'ftp://x/y'", "the error names it");
	px_err_clear(&err);
	bad = s;
	bad.n_packages = 0;
	ok(px_chroot_script_build(&bad, &script, &err) < 0, "no packages is refused");
	px_err_clear(&err);
	is_str(px_chroot_file_url_path("file://localhost/a/b"), "/a/b", "file://localhost/");
	ok(px_chroot_file_url_path("file://host/a") == NULL, "file://host/ is not local");
}

static void test_lima_plan(void)
{
	const char *pk[] = {"foo", "$(x)"};
	const char *repos[] = {"file:///Users/me/repo", "https://r.example/main"};
	const char *keys[] = {"/Users/me/keys/me.rsa.pub"};
	struct px_chroot_script s = {
	        .image = "/Users/me/p/.pexi/build/disk.raw",
	        .work_base = "/Users/me/p/.pexi/build/work",
	        .root_offset = 34603008,
	        .root_size = 1 << 20,
	        .repositories = repos,
	        .n_repositories = 2,
	        .keys = keys,
	        .n_keys = 1,
	        .packages = pk,
	        .n_packages = 2,
	};
	struct px_lima_plan p = {0};
	struct px_err *err = NULL;
	ok(px_bake_lima_plan(&s, "limactl", "pexi", "42", &p, &err) == 0, "the lima plan builds");
	struct px_buf b = PX_BUF_INIT;
	for (size_t i = 0; i < p.n_steps; i++) {
		for (char **a = p.steps[i]; *a; a++)
			px_buf_printf(&b, "%s%s", a == p.steps[i] ? "" : " ", *a);
		px_buf_puts(&b, i == p.script_step ? " <script\n" : "\n");
	}
	_cleanup_free_ char *got = px_buf_steal(&b, NULL);
	is_str(got,
	       "limactl shell pexi -- mkdir -p -m 0700 /var/tmp/pexi-bake-42 "
	       "/var/tmp/pexi-bake-42/keys\n"
	       "limactl copy /Users/me/p/.pexi/build/disk.raw pexi:/var/tmp/pexi-bake-42/disk.raw\n"
	       "limactl copy -r /Users/me/repo pexi:/var/tmp/pexi-bake-42/repo.1\n"
	       "limactl copy /Users/me/keys/me.rsa.pub pexi:/var/tmp/pexi-bake-42/keys/me.rsa.pub\n"
	       "limactl shell --workdir / pexi -- sudo sh -s <script\n"
	       "limactl copy pexi:/var/tmp/pexi-bake-42/disk.raw "
	       "/Users/me/p/.pexi/build/disk.raw.pexi-lima.tmp\n"
	       "limactl shell pexi -- sudo rm -rf /var/tmp/pexi-bake-42\n",
	       "copy in to the instance's own disk, run sh -s under sudo, copy back, clean up");
	like(p.script, "IMAGE='/var/tmp/pexi-bake-42/disk.raw'\n",
	     "the script works on the copy inside the instance");
	like(p.script, "WORKBASE='/var/tmp'\n", "its work dir is on the instance's disk");
	like(p.script, "bind_repo 1 '/var/tmp/pexi-bake-42/repo.1'\n",
	     "the repository copy is bound into the chroot");
	like(p.script, "add_key '/var/tmp/pexi-bake-42/keys/me.rsa.pub'\n",
	     "the key copy is trusted");
	like(p.script, "--repository 'https://r.example/main'", "http repositories pass through");
	like(p.script, "-- 'foo' '$(x)'\n", "packages stay quoted");
	px_bake_lima_plan_free(&p);
}

static void test_executors(void)
{
	const char *why = NULL;
	bool local = px_bake_exec_local.available(&why);
	ok(local == (geteuid() == 0), "local is available exactly when root");
	if (!local)
		like(why, "needs root", "and says why not");
	why = NULL;
	if (!px_bake_exec_guestfs.available(&why))
		like(why, "libguestfs", "guestfs says why it is unavailable");
	else
		ok(why == NULL, "guestfs is built in");
	setenv("PEXI_LIMACTL", "/nonexistent/limactl", 1);
	ok(!px_bake_exec_lima.available(&why), "lima is unavailable without limactl");
	like(why, "limactl", "and says why");
	unsetenv("PEXI_LIMACTL");
}

int main(void)
{
	test_quote();
	test_script_args();
	test_script_text();
	test_lima_plan();
	test_executors();
	return done_testing();
}
