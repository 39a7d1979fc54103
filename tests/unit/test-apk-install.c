/* Installing packages into the fixture's ext4 root: packages built with libarchive's
 * writer, results checked with e2fsprogs (debugfs, e2fsck), never with pexi's reader. */
#include "tap.h"

#include "apk-fixture.h"
#include "ext-fixture.h"

#include "apk/db.h"
#include "apk/install.h"
#include "apk/package.h"
#include "image/extfs.h"

#define EPOCH 1650000000 /* earlier than the packages' 1700000000: everything is clamped */

static struct px_apk_package *build(struct px_buf *b, const char *name, const char *extra,
                                    const char *post, const struct af_entry *e, size_t n)
{
	struct px_err *err = NULL;
	struct px_apk_package *p = NULL;
	af_build(b, name, "1.0-r0", extra, post, e, n);
	if (px_apk_package_read(b->data, b->len, name, &p, &err) < 0) {
		printf("# %s\n", err->msg);
		px_err_free(err);
	}
	return p;
}

/* Installs p into image in one open/close; returns the error message (caller frees) or
 * NULL on success. */
static char *install(const char *image, struct px_apk_package *p, const char *world)
{
	struct px_err *err = NULL;
	struct px_extfs *fs = NULL;
	struct px_apk_db *db = NULL;
	struct px_apk_installer *in = NULL;
	char *msg = NULL;
	if (px_extfs_open(image, FX_OFFSET, true, &fs, &err) < 0 ||
	    px_apk_db_load(fs, &db, &err) < 0 ||
	    px_apk_installer_new(fs, db, EPOCH, &in, &err) < 0 || px_apk_install(in, p, &err) < 0)
		goto fail;
	px_apk_db_world_add(db, world);
	px_extfs_set_time(fs, EPOCH);
	if (px_apk_db_write(db, fs, EPOCH, &err) < 0)
		goto fail;
	px_apk_installer_free(in);
	px_apk_db_free(db);
	if (px_extfs_close(fs, &err) < 0)
		goto out;
	return NULL;
fail:
	px_apk_installer_free(in);
	px_apk_db_free(db);
	px_extfs_abort(fs);
out:
	msg = xstrdup(err && err->msg ? err->msg : "failed without a message");
	px_err_free(err);
	return msg;
}

static unsigned inode_of(const char *image, const char *path)
{
	char *cmd = xasprintf("stat %s", path);
	char *out = fx_debugfs(image, cmd);
	unsigned ino = 0;
	const char *p = out ? strstr(out, "Inode: ") : NULL;
	if (p)
		sscanf(p, "Inode: %u", &ino);
	free(cmd);
	free(out);
	return ino;
}

int main(void)
{
	char *raw = fx_build();
	char *img = fx_copy(raw, "img.raw");

	/* An account the archive names, so owners map through /etc/passwd and /etc/group. */
	{
		struct px_err *err = NULL;
		struct px_extfs *fs = NULL;
		struct px_extfs_attrs a = {0644, 0, 0, EPOCH};
		const char *pw =
		        "root:x:0:0:root:/root:/bin/sh\nalice:x:1234:1234::/home/alice:/bin/sh\n";
		const char *gr = "root:x:0:\nalice:x:1234:\n";
		ok(px_extfs_open(img, FX_OFFSET, true, &fs, &err) == 0 &&
		           px_extfs_write_file(fs, "/etc/passwd", pw, strlen(pw), &a, &err) == 0 &&
		           px_extfs_write_file(fs, "/etc/group", gr, strlen(gr), &a, &err) == 0 &&
		           px_extfs_close(fs, &err) == 0,
		   "seed /etc/passwd and /etc/group");
		px_err_free(err);
	}

	struct af_entry demo[] = {
	        {'d', "usr", 0755, NULL, NULL, 0, NULL, NULL},
	        {'d', "usr/bin", 0755, NULL, NULL, 0, NULL, NULL},
	        {'f', "usr/bin/x", 04755, "#!/bin/sh\necho x\n", NULL, 0, NULL, NULL},
	        {'h', "usr/bin/x-hard", 04755, "usr/bin/x", NULL, 0, NULL, NULL},
	        {'l', "usr/bin/x-link", 0777, "x", NULL, 0, NULL, NULL},
	        {'d', "etc", 0755, NULL, NULL, 0, NULL, NULL},
	        {'f', "etc/demo.conf", 0640, "k=v\n", NULL, 0, "user.pexi", "test"},
	        {'d', "home", 0755, NULL, NULL, 0, NULL, NULL},
	        {'d', "home/alice", 0700, NULL, "alice", 77, NULL, NULL},
	        {'f', "home/alice/note", 0600, "hi\n", "alice", 77, NULL, NULL},
	        {'f', "home/alice/.keep_home", 0644, "", NULL, 0, NULL, NULL},
	};
	struct px_buf b1 = PX_BUF_INIT;
	struct px_apk_package *p1 = build(&b1, "demo", "triggers = /usr/share/demo\n",
	                                  "#!/bin/sh\necho post\n", demo, PX_ARRAY_SIZE(demo));
	char *msg = p1 ? install(img, p1, "demo") : xstrdup("no package");
	ok(!msg, "install demo");
	if (msg)
		printf("# %s\n", msg);
	free(msg);

	ok(fx_fsck_clean(img), "e2fsck -fn is clean after the install");
	struct fx_stat st;
	ok(fx_stat(img, "/usr/bin/x", &st) && st.mode == 04755 && st.uid == 0 && st.links == 2,
	   "usr/bin/x: 04755, root, two links");
	ok(st.mtime == EPOCH, "its mtime is clamped to source_date_epoch");
	ok(inode_of(img, "/usr/bin/x") == inode_of(img, "/usr/bin/x-hard") &&
	           inode_of(img, "/usr/bin/x") != 0,
	   "the hard link shares the inode");
	char *c = fx_cat(img, "/usr/bin/x-hard");
	is_str(c, "#!/bin/sh\necho x\n", "content through the hard link");
	free(c);
	ok(fx_stat(img, "/usr/bin/x-link", &st) && strcmp(st.type, "symlink") == 0,
	   "x-link is a symlink");
	c = fx_debugfs(img, "stat /usr/bin/x-link");
	like(c, "Fast link dest: \"x\"", "pointing at x");
	free(c);
	c = fx_debugfs(img, "ea_list /etc/demo.conf");
	like(c, "user.pexi (4) = \"test\"", "the xattr is on etc/demo.conf");
	free(c);
	ok(fx_stat(img, "/home/alice/note", &st) && st.uid == 1234 && st.gid == 1234 &&
	           st.mode == 0600,
	   "owner 'alice' maps through the image's passwd (1234), not the archive's 77");
	ok(fx_stat(img, "/home/alice", &st) && st.mode == 0700 && st.uid == 1234,
	   "a new directory gets the archive's mode and owner");
	c = fx_debugfs(img, "ls -l /home/alice");
	ok(c && !strstr(c, ".keep_home"), ".keep_ files are not installed");
	free(c);

	char *db = fx_cat(img, "/lib/apk/db/installed");
	like(db, "C:", "installed has a C: line");
	like(db, "\nP:demo\nV:1.0-r0\nA:x86_64\n", "P: V: A:");
	like(db, "F:usr/bin\nR:x\na:0:0:4755\nZ:Q1", "usr/bin/x with its acl and checksum");
	like(db, "R:x-link\na:0:0:777\nZ:Q1", "the symlink's acl");
	like(db, "F:home/alice\nM:1234:1234:700\nR:note\na:1234:1234:600\n",
	     "directory M: and file a: with mapped owners");
	like(db, "R:demo.conf\na:0:0:640:Q1", "a file with an xattr has an xattr sum");
	free(db);
	c = fx_cat(img, "/etc/apk/world");
	is_str(c, "alpine-base\ndemo\n", "world keeps alpine-base and adds demo, sorted");
	free(c);
	c = fx_cat(img, "/lib/apk/db/triggers");
	is_str(c, "", "no triggers line: apk records one only with a .trigger script");
	free(c);

	/* scripts.tar, read by GNU tar. */
	{
		char *out = NULL, *tarfile = xasprintf("%s/scripts.tar", fx_dir);
		char *dump = xasprintf("dump /lib/apk/db/scripts.tar %s", tarfile);
		free(fx_debugfs(img, dump));
		const char *argv[] = {"tar", "-tvf", tarfile, NULL};
		struct px_err *err = NULL;
		if (px_run(argv, &out, &err) < 0)
			px_err_free(err);
		like(out, "demo-1.0-r0.Q1", "scripts.tar has the post-install script");
		like(out, ".post-install", "named NAME-VERSION.Q1SUM.post-install");
		free(out);
		free(tarfile);
		free(dump);
	}

	/* A second package writing a path demo owns. */
	struct af_entry clash[] = {{'d', "etc", 0755, NULL, NULL, 0, NULL, NULL},
	                           {'f', "etc/demo.conf", 0644, "mine\n", NULL, 0, NULL, NULL}};
	struct px_buf b2 = PX_BUF_INIT;
	struct px_apk_package *p2 = build(&b2, "clash", NULL, NULL, clash, 2);
	msg = install(img, p2, "clash");
	like(msg, "would overwrite '/etc/demo.conf', which belongs to package 'demo'",
	     "overwriting another package's file is refused");
	free(msg);
	c = fx_cat(img, "/etc/demo.conf");
	is_str(c, "k=v\n", "the file is unchanged");
	free(c);

	struct px_buf b3 = PX_BUF_INIT;
	struct px_apk_package *p3 = build(&b3, "clash", "replaces = demo\n", NULL, clash, 2);
	msg = install(img, p3, "clash");
	ok(!msg, "with 'replaces = demo' it may");
	free(msg);
	c = fx_cat(img, "/etc/demo.conf");
	is_str(c, "mine\n", "and the file is the new one");
	free(c);
	db = fx_cat(img, "/lib/apk/db/installed");
	const char *cl = db ? strstr(db, "P:clash") : NULL;
	ok(cl && strstr(cl, "R:demo.conf"), "clash now lists etc/demo.conf");
	like(db, "P:demo\n", "demo is still installed");
	free(db);
	ok(fx_fsck_clean(img), "e2fsck -fn is clean after the replace");

	/* The evil package: refused, and nothing of it lands. */
	struct af_entry evil[] = {{'f', "../../etc/x", 0644, "owned\n", NULL, 0, NULL, NULL}};
	struct px_buf b4 = PX_BUF_INIT;
	struct px_apk_package *p4 = build(&b4, "evil", NULL, NULL, evil, 1);
	msg = install(img, p4, "evil");
	like(msg, "refusing archive entry '../../etc/x'", "the escaping package is refused");
	free(msg);
	c = fx_debugfs(img, "stat /etc/x");
	ok(!c || !strstr(c, "Inode:"), "no /etc/x in the image");
	free(c);

	/* Links already in the image are followed inside it, as in a chroot (a /usr-merged
	 * layout's /lib -> usr/lib): an absolute target starts at the image's root, and ".."
	 * stops there. */
	fx_debugfs_w(img, "symlink /usr/lib /tmp\nsymlink /usr/up ../../../..\n");
	struct af_entry through[] = {{'f', "usr/lib/f", 0644, "x\n", NULL, 0, NULL, NULL},
	                             {'f', "usr/up/etc/y", 0644, "y\n", NULL, 0, NULL, NULL}};
	struct px_buf b5 = PX_BUF_INIT;
	struct px_apk_package *p5 = build(&b5, "through", NULL, NULL, through, 2);
	msg = install(img, p5, "through");
	ok(!msg, "a package writes through the image's own directory links");
	if (msg)
		printf("# %s\n", msg);
	free(msg);
	c = fx_cat(img, "/tmp/f");
	is_str(c, "x\n", "usr/lib/f landed in /tmp/f (the link's absolute target, in the image)");
	free(c);
	c = fx_cat(img, "/etc/y");
	is_str(c, "y\n", "'..' past the root stays at the root: usr/up/etc/y is /etc/y");
	free(c);
	ok(fx_fsck_clean(img), "e2fsck -fn is clean after writing through links");

	/* A package cannot aim its own later entries through a link it made. */
	struct af_entry sneaky[] = {{'d', "opt", 0755, NULL, NULL, 0, NULL, NULL},
	                            {'l', "opt/etc", 0777, "/etc", NULL, 0, NULL, NULL},
	                            {'f', "opt/etc/passwd", 0644, "evil\n", NULL, 0, NULL, NULL}};
	struct px_buf b6 = PX_BUF_INIT;
	struct px_apk_package *p6 = build(&b6, "sneaky", NULL, NULL, sneaky, 3);
	msg = install(img, p6, "sneaky");
	like(msg, "passes through the package's own symbolic link '/opt/etc'",
	     "a path through the package's own link is refused");
	free(msg);
	c = fx_cat(img, "/etc/passwd");
	like(c, "alice:x:1234", "/etc/passwd is untouched");
	free(c);
	px_apk_package_free(p6);
	px_buf_free(&b6);

	px_apk_package_free(p1);
	px_apk_package_free(p2);
	px_apk_package_free(p3);
	px_apk_package_free(p4);
	px_apk_package_free(p5);
	px_buf_free(&b1);
	px_buf_free(&b2);
	px_buf_free(&b3);
	px_buf_free(&b4);
	px_buf_free(&b5);
	free(raw);
	free(img);
	fx_cleanup();
	return done_testing();
}
