/* The installed database: an image whose /lib/apk/db holds another package (written with
 * debugfs), then pexi adds and upgrades packages; the files are read back with debugfs and
 * GNU tar, never with pexi's reader. */
#include "tap.h"

#include "apk-fixture.h"
#include "ext-fixture.h"

#include "apk/db.h"
#include "apk/install.h"
#include "apk/package.h"
#include "image/extfs.h"

#define EPOCH 1700000000

static const char existing[] = "C:Q1AAAAAAAAAAAAAAAAAAAAAAAAAAA=\nP:zlib\nV:1.3-r0\nA:x86_64\n"
                               "S:1\nI:2\nT:zlib\nU:https://zlib.net\nL:Zlib\no:zlib\n"
                               "F:lib\nR:libz.so.1\na:0:0:777\nZ:Q1BBBBBBBBBBBBBBBBBBBBBBBBBBB=\n";

static char *run(const char *image, const char *name, const char *version, const char *post)
{
	/* Each version also ships a file of its own, which an upgrade must remove. */
	char only[64];
	snprintf(only, sizeof(only), "usr/only-%s", version);
	struct af_entry e[] = {{'d', "usr", 0755, NULL, NULL, 0, NULL, NULL},
	                       {'f', "usr/x", 0644, version, NULL, 0, NULL, NULL},
	                       {'f', only, 0644, version, NULL, 0, NULL, NULL}};
	struct px_buf b = PX_BUF_INIT;
	struct px_err *err = NULL;
	struct px_extfs *fs = NULL;
	struct px_apk_db *db = NULL;
	struct px_apk_installer *in = NULL;
	struct px_apk_package *p = NULL;
	char *msg = NULL;
	int r;
	af_build(&b, name, version, NULL, post, e, 3);
	r = px_apk_package_read(b.data, b.len, name, &p, &err) < 0 ||
	    px_extfs_open(image, FX_OFFSET, true, &fs, &err) < 0 ||
	    px_apk_db_load(fs, &db, &err) < 0 ||
	    px_apk_installer_new(fs, db, EPOCH, &in, &err) < 0 || px_apk_install(in, p, &err) < 0;
	if (!r) {
		px_apk_db_world_add(db, name);
		r = px_apk_db_write(db, fs, EPOCH, &err) < 0;
	}
	px_apk_installer_free(in);
	px_apk_db_free(db);
	if (!r)
		r = px_extfs_close(fs, &err) < 0;
	else
		px_extfs_abort(fs);
	if (r)
		msg = xstrdup(err ? err->msg : "?");
	px_err_free(err);
	px_apk_package_free(p);
	px_buf_free(&b);
	return msg;
}

static char *run_out_or_null(const char *const argv[])
{
	char *out = NULL;
	struct px_err *err = NULL;
	if (px_run(argv, &out, &err) < 0) {
		printf("# %s\n", err->msg);
		px_err_free(err);
	}
	return out;
}

static char *tar_list(const char *image)
{
	char *tarfile = xasprintf("%s/s.tar", fx_dir),
	     *cmd = xasprintf("dump /lib/apk/db/scripts.tar %s", tarfile);
	unlink(tarfile);
	free(fx_debugfs(image, cmd));
	const char *argv[] = {"tar", "-tf", tarfile, NULL};
	char *out = NULL;
	struct px_err *err = NULL;
	if (px_run(argv, &out, &err) < 0)
		px_err_free(err);
	free(tarfile);
	free(cmd);
	return out;
}

int main(void)
{
	char *raw = fx_build();
	char *img = fx_copy(raw, "db.raw");
	char *host = xasprintf("%s/installed", fx_dir);
	struct px_err *err = NULL;
	px_atomic_write_file(host, existing, strlen(existing), 0644, &err);
	char *script =
	        xasprintf("rm /lib/apk/db/installed\nwrite %s /lib/apk/db/installed\n", host);
	ok(fx_debugfs_w(img, script) == 0, "seed an installed database with debugfs");

	char *msg = run(img, "mypkg", "1.0-r0", "#!/bin/sh\necho one\n");
	ok(!msg, "install mypkg 1.0");
	free(msg);
	char *db = fx_cat(img, "/lib/apk/db/installed");
	ok(db && strncmp(db, "C:", 2) == 0, "installed starts with a stanza");
	const char *my = db ? strstr(db, "P:mypkg\n") : NULL;
	const char *z = db ? strstr(db, "P:zlib\n") : NULL;
	ok(my && z && my < z, "stanzas are sorted by name (mypkg before zlib)");
	like(db, existing, "the existing stanza is kept byte for byte");
	like(db, "P:mypkg\nV:1.0-r0\n", "mypkg 1.0-r0 recorded");
	free(db);
	char *list = tar_list(img);
	like(list, "mypkg-1.0-r0.Q1", "scripts.tar holds mypkg's post-install");
	free(list);

	msg = run(img, "mypkg", "2.0-r0", "#!/bin/sh\necho two\n");
	ok(!msg, "upgrade to mypkg 2.0 over its own files");
	free(msg);
	db = fx_cat(img, "/lib/apk/db/installed");
	like(db, "P:mypkg\nV:2.0-r0\n", "the new version is recorded");
	ok(db && !strstr(db, "V:1.0-r0"), "the old stanza is gone");
	like(db, existing, "the other package is still there verbatim");
	free(db);
	list = tar_list(img);
	like(list, "mypkg-2.0-r0.Q1", "the new script is in scripts.tar");
	ok(list && !strstr(list, "mypkg-1.0-r0"), "the old one is not");
	free(list);
	char *x = fx_cat(img, "/usr/x");
	is_str(x, "2.0-r0", "the file has the new content");
	free(x);
	x = fx_debugfs(img, "ls /usr");
	ok(x && strstr(x, "only-2.0-r0") && !strstr(x, "only-1.0-r0"),
	   "the file only the old version had is removed");
	free(x);
	char *w = fx_cat(img, "/etc/apk/world");
	is_str(w, "alpine-base\nmypkg\n", "world lists mypkg once");
	free(w);
	ok(fx_fsck_clean(img), "e2fsck -fn is clean");

	/* apk-tools 3's form: scripts.tar.gz (made here with GNU tar and gzip), no scripts.tar. */
	char *img2 = fx_copy(raw, "db2.raw");
	char *sdir = xasprintf("%s/s", fx_dir),
	     *body = xasprintf("%s/s/zlib-1.3-r0.Q1AAAA.post-upgrade", fx_dir);
	char *gz = xasprintf("%s/scripts.tar.gz", fx_dir);
	mkdir(sdir, 0755);
	px_atomic_write_file(body, "#!/bin/sh\n", 10, 0755, &err);
	char *mk = xasprintf("tar -C %s -cf - zlib-1.3-r0.Q1AAAA.post-upgrade | gzip -n >%s", sdir,
	                     gz);
	const char *sh[] = {"sh", "-c", mk, NULL};
	free(run_out_or_null(sh));
	char *script2 = xasprintf("write %s /lib/apk/db/scripts.tar.gz\n", gz);
	ok(fx_debugfs_w(img2, script2) == 0, "seed a scripts.tar.gz");
	msg = run(img2, "mypkg", "1.0-r0", "#!/bin/sh\necho one\n");
	ok(!msg, "install into the apk-tools 3 layout");
	free(msg);
	char *st = fx_debugfs(img2, "stat /lib/apk/db/scripts.tar");
	ok(!st || !strstr(st, "Inode:"), "no scripts.tar is created beside scripts.tar.gz");
	free(st);
	char *cmd = xasprintf("dump /lib/apk/db/scripts.tar.gz %s/out.tar.gz", fx_dir);
	free(fx_debugfs(img2, cmd));
	char *ls = xasprintf("gzip -dc %s/out.tar.gz | tar -tf -", fx_dir);
	const char *sh2[] = {"sh", "-c", ls, NULL};
	char *names = run_out_or_null(sh2);
	like(names, "zlib-1.3-r0.Q1AAAA.post-upgrade", "the old entry is kept");
	like(names, "mypkg-1.0-r0.Q1", "the new script is added, gzip still");
	free(names);
	ok(fx_fsck_clean(img2), "e2fsck -fn is clean");
	free(ls);
	free(cmd);
	free(script2);
	free(mk);
	free(gz);
	free(body);
	free(sdir);
	free(img2);

	free(script);
	free(host);
	free(img);
	free(raw);
	fx_cleanup();
	return done_testing();
}
