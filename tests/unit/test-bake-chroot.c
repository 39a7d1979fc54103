/* The chroot bake method for real with the local executor (root): the Alpine-shaped
 * fixture disk with a static busybox and a stand-in apk in its root
 * (tests/fixtures/add-apk-standin), the signed fixture repository as a file:// repository.
 * Checked with independent tools: debugfs (files, modes, owners, contents), e2fsck -fn,
 * losetup -a and /proc/mounts (nothing left attached), qemu-img compare (the image is
 * untouched after a failure). */
#include <glob.h>
#include <sched.h>
#include <sys/mount.h>

#include "tap.h"

#include "test-util.h"

#include "bake/bake.h"
#include "bake/exec.h"
#include "manifest/manifest.h"

#define ROOT_OFFSET (67584ull * 512)

static char *repo_dir;

static char *debugfs(const char *img, const char *req)
{
	_cleanup_free_ char *at = xasprintf("%s?offset=%llu", img, ROOT_OFFSET);
	const char *argv[] = {"debugfs", "-R", req, at, NULL};
	return run_out(argv);
}

static char *cat_in(const char *img, const char *path)
{
	_cleanup_free_ char *req = xasprintf("cat %s", path);
	return debugfs(img, req);
}

static bool exists_in(const char *img, const char *path)
{
	_cleanup_free_ char *req = xasprintf("stat %s", path);
	_cleanup_free_ char *out = debugfs(img, req);
	return out && strstr(out, "Inode:");
}

static bool fsck_clean(const char *img)
{
	_cleanup_free_ char *at = xasprintf("%s?offset=%llu", img, ROOT_OFFSET);
	const char *argv[] = {"e2fsck", "-fn", at, NULL};
	_cleanup_free_ char *out = run_out(argv);
	return out != NULL;
}

/* Whether losetup -a or /proc/mounts still mention the test's directory. */
static bool anything_attached(void)
{
	const char *argv[] = {"losetup", "-a", NULL};
	_cleanup_free_ char *loops = run_out(argv);
	const char *cat[] = {"cat", "/proc/mounts", NULL};
	_cleanup_free_ char *mounts = run_out(cat);
	return !loops || !mounts || strstr(loops, tmpdir) || strstr(mounts, tmpdir);
}

static char *stand_in_image(const char *name)
{
	char *img = copy_fixture(name);
	const char *src = getenv("PEXI_SRC") ? getenv("PEXI_SRC") : ".";
	_cleanup_free_ char *tool = xasprintf("%s/tests/fixtures/add-apk-standin", src);
	_cleanup_free_ char *off = xasprintf("%llu", ROOT_OFFSET);
	const char *argv[] = {"sh", tool, img, off, NULL};
	_cleanup_free_ char *out = run_out(argv);
	if (!out) {
		printf("# cannot put the stand-in apk into the fixture (needs busybox-static)\n");
		exit(77);
	}
	return img;
}

static enum px_pkg_executor executor = PX_EXEC_LOCAL;

static int bake(const char *img, char **pkgs, size_t n, struct px_bake_result *r,
                struct px_err **err)
{
	_cleanup_free_ char *repo_url = xasprintf("file://%s", repo_dir);
	char *repos[] = {repo_url};
	char *keys[] = {xasprintf("%s/keys/pexi-test-5f000001.rsa.pub", repo_dir)};
	struct px_manifest m = {0};
	m.dir = tmpdir;
	m.arch = PX_ARCH_X86_64;
	m.packages.method = PX_PKG_CHROOT;
	m.packages.executor = executor;
	m.packages.repositories = (struct px_strv){repos, 1};
	m.packages.keys = (struct px_strv){keys, 1};
	m.packages.add = (struct px_strv){pkgs, n};
	_cleanup_free_ char *work = path_in("work");
	mkdir(work, 0700);
	struct px_bake_ctx ctx = {
	        .m = &m,
	        .disk_path = img,
	        .root_offset = ROOT_OFFSET,
	        .root_size = (uint64_t)((409566 - 67584 + 1) / 8 * 8) * 512,
	        .cache_dir = work,
	        .work_dir = work,
	        .source_date_epoch = 1700000000,
	};
	int rc = px_bake_chroot(&ctx, r, err);
	free(keys[0]);
	return rc;
}

static void free_result(struct px_bake_result *r)
{
	for (size_t i = 0; i < r->n_pkgs; i++) {
		free(r->pkgs[i].name);
		free(r->pkgs[i].version);
		free(r->pkgs[i].checksum);
		free(r->pkgs[i].repository);
	}
	free(r->pkgs);
	for (size_t i = 0; i < r->n_deferred; i++)
		free(r->deferred[i]);
	free(r->deferred);
}

static void test_success(void)
{
	_cleanup_free_ char *img = stand_in_image("ok.raw");
	char *pkgs[] = {"musl", "libfoo", "foo", "perms"};
	struct px_bake_result r = {0};
	struct px_err *err = NULL;
	int rc = bake(img, pkgs, 4, &r, &err);
	ok(rc == 0, "the chroot bake succeeds");
	if (rc < 0)
		printf("#   %s\n", err->msg);
	px_err_clear(&err);

	_cleanup_free_ char *args = cat_in(img, "/root/apk-args");
	is_str(args,
	       "add\n--no-cache\n--keys-dir\n/.pexi-bake/keys\n--repositories-file\n/dev/null\n"
	       "--repository\n/.pexi-bake/repo.1\n--\nmusl\nlibfoo\nfoo\nperms\n",
	       "apk ran in the chroot with the options the manifest asks for");
	_cleanup_free_ char *binds = cat_in(img, "/root/binds");
	is_str(binds, "proc\nsys\ndev\n", "/proc, /sys and /dev were bound during apk add");
	_cleanup_free_ char *during = cat_in(img, "/root/resolv-during");
	const char *cat[] = {"cat", "/etc/resolv.conf", NULL};
	_cleanup_free_ char *host =
	        access("/etc/resolv.conf", R_OK) == 0 ? run_out(cat) : xstrdup("(none)\n");
	is_str(during, host, "apk saw the host's resolv.conf");
	_cleanup_free_ char *resolv = cat_in(img, "/etc/resolv.conf");
	is_str(resolv, "nameserver 192.0.2.53\n", "the image's own resolv.conf is back");
	ok(!exists_in(img, "/etc/resolv.conf.pexi-orig"), "no saved copy left behind");

	_cleanup_free_ char *foo = cat_in(img, "/usr/bin/foo");
	is_str(foo, "#!/bin/sh\necho foo 2.0\n", "package files landed (the newest foo)");
	_cleanup_free_ char *post = cat_in(img, "/var/lib/foo/post-install-ran");
	is_str(post, "foo post-install ran\n", "the post-install script ran in the chroot");
	_cleanup_free_ char *st = debugfs(img, "stat /usr/share/perms/owned");
	ok(st && strstr(st, "User:  1000") && strstr(st, "Group:  1000") &&
	           strstr(st, "Mode:  0600"),
	   "owner and mode as in the package");
	_cleanup_free_ char *link = debugfs(img, "stat /usr/lib/libfoo.so.1");
	ok(link && strstr(link, "Fast link dest: \"libfoo.so.1.0.0\""), "the symlink landed");
	ok(!exists_in(img, "/.pexi-bake"), "the bake dir in the image is gone");
	ok(!exists_in(img, "/proc") && !exists_in(img, "/sys") && !exists_in(img, "/dev"),
	   "mount points the script made are removed again");
	ok(fsck_clean(img), "e2fsck -fn finds the baked filesystem clean");
	ok(!anything_attached(), "no loop device or mount is left");

	ok(r.n_pkgs == 4, "the result lists the four installed packages");
	if (r.n_pkgs == 4) {
		is_str(r.pkgs[0].name, "foo", "sorted by name");
		is_str(r.pkgs[0].version, "2.0-r0", "with its version");
		is_str(r.pkgs[3].name, "perms", "last");
	}
	free_result(&r);

	_cleanup_free_ char *work = path_in("work");
	const char *ls[] = {"ls", "-A", work, NULL};
	_cleanup_free_ char *left = run_out(ls);
	is_str(left, "", "the work directory is empty again");
}

static void test_failure(void)
{
	_cleanup_free_ char *img = stand_in_image("fail.raw");
	_cleanup_free_ char *before = snapshot(img);
	char *pkgs[] = {"musl", "fail-me"};
	struct px_bake_result r = {0};
	struct px_err *err = NULL;
	ok(bake(img, pkgs, 2, &r, &err) < 0, "a failing apk add fails the bake");
	like(err ? err->msg : NULL, "unable to select packages: fail-me",
	     "the error carries apk's message");
	like(err ? err->msg : NULL, "executor local", "and names the executor");
	px_err_clear(&err);
	ok(same_image(img, before), "the original image is untouched");
	ok(!anything_attached(), "everything was unmounted and detached on the failure path");
	_cleanup_free_ char *work = path_in("work");
	const char *ls[] = {"ls", "-A", work, NULL};
	_cleanup_free_ char *left = run_out(ls);
	is_str(left, "", "the work directory is empty again");
	unlink(before);
}

static void test_not_alpine(void)
{
	/* No /bin/sh and no apk inside: the chroot cannot run, and the trap still cleans up. */
	_cleanup_free_ char *img = copy_fixture("bare.raw");
	_cleanup_free_ char *before = snapshot(img);
	char *pkgs[] = {"musl"};
	struct px_bake_result r = {0};
	struct px_err *err = NULL;
	ok(bake(img, pkgs, 1, &r, &err) < 0, "an image without apk fails");
	px_err_clear(&err);
	ok(same_image(img, before), "and stays untouched");
	ok(!anything_attached(), "with nothing left attached");
	unlink(before);
}

/* libguestfs's appliance needs a kernel with its modules. Where /boot has none (build
 * containers), Debian's kernel package is unpacked (tests/e2e/kernel-fetch) and handed to
 * supermin; supermin also copies the host's /lib/modules directory itself, so when that is
 * missing this process moves to a private mount namespace whose /usr/lib has one (an
 * overlay), leaving the host untouched. Returns a reason to skip, or NULL. */
static const char *guestfs_setup(void)
{
	setenv("LIBGUESTFS_BACKEND", "direct", 1);
	setenv("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg", 1);
	glob_t g;
	bool have_kernel = glob("/boot/vmlinuz-*", 0, NULL, &g) == 0;
	globfree(&g);
	if (!have_kernel && !getenv("SUPERMIN_KERNEL")) {
		const char *src = getenv("PEXI_SRC") ? getenv("PEXI_SRC") : ".";
		_cleanup_free_ char *fetch = xasprintf("%s/tests/e2e/kernel-fetch", src);
		_cleanup_free_ char *kdir = path_in("kernel");
		const char *argv[] = {"sh", fetch, kdir, NULL};
		_cleanup_free_ char *out = run_out(argv);
		if (!out)
			return "no kernel for the libguestfs appliance (tests/e2e/kernel-fetch "
			       "failed)";
		_cleanup_free_ char *pat = xasprintf("%s/lib/modules/*", kdir);
		if (glob(pat, 0, NULL, &g) != 0 || g.gl_pathc != 1) {
			globfree(&g);
			return "the unpacked kernel has no single modules directory";
		}
		const char *ver = strrchr(g.gl_pathv[0], '/') + 1;
		const char *dep[] = {"depmod", "-b", kdir, ver, NULL};
		_cleanup_free_ char *dout = run_out(dep);
		setenv("SUPERMIN_MODULES", g.gl_pathv[0], 1);
		globfree(&g);
		_cleanup_free_ char *vmlinuz = xasprintf("%s/vmlinuz", kdir);
		setenv("SUPERMIN_KERNEL", vmlinuz, 1);
	}
	if (access("/lib/modules", F_OK) != 0) {
		_cleanup_free_ char *upper = path_in("ov-upper");
		_cleanup_free_ char *wdir = path_in("ov-work");
		_cleanup_free_ char *opts =
		        xasprintf("lowerdir=/usr/lib,upperdir=%s,workdir=%s", upper, wdir);
		if (mkdir(upper, 0755) < 0 || mkdir(wdir, 0755) < 0 || unshare(CLONE_NEWNS) < 0 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		    mount("overlay", "/usr/lib", "overlay", 0, opts) < 0 ||
		    mkdir("/usr/lib/modules", 0755) < 0)
			return "cannot give supermin a /lib/modules in a private mount namespace";
	}
	return NULL;
}

static void test_guestfs(void)
{
	const char *why = NULL;
	if (!px_bake_exec_guestfs.available(&why)) {
		printf("# guestfs executor: %s\n", why);
		ok(getenv("CI") == NULL || strcmp(getenv("CI"), "true") != 0,
		   "the guestfs executor is built in (required in CI)");
		return;
	}
	why = guestfs_setup();
	if (why) {
		printf("# %s\n", why);
		ok(getenv("CI") == NULL || strcmp(getenv("CI"), "true") != 0,
		   "the libguestfs appliance can be set up (required in CI)");
		return;
	}
	executor = PX_EXEC_GUESTFS;
	_cleanup_free_ char *img = stand_in_image("guestfs.raw");
	char *pkgs[] = {"musl", "libfoo", "foo"};
	struct px_bake_result r = {0};
	struct px_err *err = NULL;
	int rc = bake(img, pkgs, 3, &r, &err);
	ok(rc == 0, "guestfs: the bake succeeds in the appliance (TCG)");
	if (rc < 0)
		printf("#   %s\n", err->msg);
	px_err_clear(&err);
	_cleanup_free_ char *args = cat_in(img, "/root/apk-args");
	is_str(args,
	       "add\n--no-cache\n--keys-dir\n/.pexi-bake/keys\n--repositories-file\n/dev/null\n"
	       "--repository\n/.pexi-bake/repo.1/repo\n--\nmusl\nlibfoo\nfoo\n",
	       "guestfs: apk ran with the manifest's options and the uploaded repository");
	_cleanup_free_ char *foo = cat_in(img, "/usr/bin/foo");
	is_str(foo, "#!/bin/sh\necho foo 2.0\n", "guestfs: package files landed");
	_cleanup_free_ char *post = cat_in(img, "/var/lib/foo/post-install-ran");
	is_str(post, "foo post-install ran\n", "guestfs: the post-install script ran");
	_cleanup_free_ char *resolv = cat_in(img, "/etc/resolv.conf");
	is_str(resolv, "nameserver 192.0.2.53\n", "guestfs: the image's resolv.conf is unchanged");
	ok(!exists_in(img, "/.pexi-bake"), "guestfs: the bake dir in the image is gone");
	ok(fsck_clean(img), "guestfs: e2fsck -fn finds the filesystem clean");
	ok(r.n_pkgs == 3, "guestfs: three packages reported");
	free_result(&r);

	executor = PX_EXEC_LOCAL;
}

int main(void)
{
	if (geteuid() != 0) {
		printf("# the local chroot executor needs root (loop devices, mount)\n");
		return 77;
	}
	tu_require("debugfs");
	tu_require("e2fsck");
	tu_require("losetup");
	tu_require("openssl");
	tu_require("qemu-img");
	tu_mkdtemp("test-bake-chroot");
	tu_build_fixture();
	const char *src = getenv("PEXI_SRC") ? getenv("PEXI_SRC") : ".";
	_cleanup_free_ char *gen = xasprintf("%s/tests/fixtures/make-apk-repo", src);
	repo_dir = path_in("repo");
	const char *argv[] = {"sh", gen, repo_dir, NULL};
	_cleanup_free_ char *out = run_out(argv);
	if (!out) {
		printf("# cannot build the fixture apk repository\n");
		tu_rm_tmpdir();
		return 77;
	}
	test_success();
	test_failure();
	test_not_alpine();
	test_guestfs();
	free(repo_dir);
	tu_rm_tmpdir();
	return done_testing();
}
