/* The .apk reader: the real third-party packages in ../shared/data (checked against the
 * C: fields of their signed index and against Python's zlib/tarfile view of them, noted
 * below), and packages built here with libarchive's writer. */
#include "tap.h"

#include "apk/package.h"
#include "apk-fixture.h"
#include "core/file.h"

static const char *thirdparty(void)
{
	static char dir[512];
	const char *src = getenv("PEXI_SRC");
	snprintf(dir, sizeof(dir), "%s/../shared/data/apk/thirdparty/x86_64", src ? src : ".");
	return dir;
}

struct seen {
	size_t n, dirs, links, files, hard, xattrs;
	char first_link[256];
	char first_link_target[256];
	char sha1_hex[41];
	unsigned mode_of_file;
	const char *want_file;
	char file_content[64];
};

static int collect(void *ctx, const struct px_apk_entry *e, struct px_err **err PX_UNUSED)
{
	struct seen *s = ctx;
	s->n++;
	if (e->type == PX_APK_DIR)
		s->dirs++;
	if (e->type == PX_APK_SYMLINK) {
		if (!s->links++) {
			snprintf(s->first_link, sizeof(s->first_link), "%s", e->path);
			snprintf(s->first_link_target, sizeof(s->first_link_target), "%s", e->link);
			for (int i = 0; i < 20; i++)
				snprintf(s->sha1_hex + 2 * i, 3, "%02x", e->sha1[i]);
		}
	}
	if (e->type == PX_APK_HARDLINK)
		s->hard++;
	if (e->type == PX_APK_REG) {
		s->files++;
		if (s->want_file && strcmp(e->path, s->want_file) == 0) {
			s->mode_of_file = e->mode;
			snprintf(s->file_content, sizeof(s->file_content), "%.*s", (int)e->size,
			         (const char *)e->content);
		}
	}
	s->xattrs += e->n_xattrs;
	return 0;
}

static void test_real(void)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/gcompat-musl-1.2.5-r1.apk", thirdparty());
	if (access(path, R_OK) != 0) {
		printf("# skipping the real packages: '%s' is absent\n", path);
		return;
	}
	struct px_err *err = NULL;
	char *buf = NULL;
	size_t len = 0;
	struct px_apk_package *p = NULL;
	ok(px_file_read(path, 64u << 20, &buf, &len, &err) == 0, "read gcompat-musl");
	ok(px_apk_package_read(buf, len, path, &p, &err) == 0, "parse gcompat-musl");
	if (!p) {
		printf("# %s\n", err->msg);
		return;
	}
	is_str(p->info.name, "gcompat-musl", "pkgname");
	is_str(p->info.version, "1.2.5-r1", "pkgver");
	is_str(p->info.arch, "noarch", "arch");
	is_int(p->info.installed_size, 862592, "size");
	is_int(p->info.build_time, 1747716446, "builddate");
	/* C: of gcompat-musl in the thirdparty APKINDEX. */
	is_str(p->checksum, "Q1A1arGnhgQZxP9t5/hlS2UypGfg0=", "control checksum matches the index");
	is_str(p->datahash, "8c2339e3884f4daab748d1c9b814f2359ab615f77cd6c5fb7c28203ecce24ee1",
	       "data hash");
	ok(px_apk_package_verify(p, "Q1A1arGnhgQZxP9t5/hlS2UypGfg0=", &err) == 0,
	   "verify against the index C: and datahash");
	ok(px_apk_package_verify(p, "Q1PDB94ecxibUMRimTvfmjywzLfd4=", &err) < 0,
	   "another package's C: is refused");
	like(err ? err->msg : NULL,
	     "index says Q1PDB94ecxibUMRimTvfmjywzLfd4=", "the error names the index checksum");
	px_err_clear(&err);

	struct seen s = {.want_file = "usr/lib/libgcompat.so"};
	ok(px_apk_package_foreach(p, 64u << 20, collect, &s, &err) == 0, "walk the data tar");
	/* tarfile lists 14 entries: 5 dirs, 8 symlinks, 1 file. */
	is_int(s.n, 14, "14 entries");
	is_int(s.dirs, 5, "5 directories");
	is_int(s.links, 8, "8 symlinks");
	is_int(s.files, 1, "1 regular file");
	is_str(s.first_link, "lib/ld-linux-x86-64.so.2", "first symlink");
	is_str(s.first_link_target, "../usr/lib/libgcompat.so", "its target");
	/* The archive's APK-TOOLS.checksum.SHA1 for that link. */
	is_str(s.sha1_hex, "def593b862552f374c3a93462c95347577c0ed3c",
	       "a symlink's SHA-1 is that of its target, as in the PAX header");
	is_int(s.mode_of_file, 0755, "libgcompat.so is 0755");
	px_apk_package_free(p);

	/* A damaged data member: same control, so the index checksum still matches. */
	buf[len - 100] ^= 0x55;
	p = NULL;
	if (px_apk_package_read(buf, len, path, &p, &err) == 0) {
		ok(px_apk_package_verify(p, "Q1A1arGnhgQZxP9t5/hlS2UypGfg0=", &err) < 0,
		   "a damaged data member fails the datahash check");
		like(err ? err->msg : NULL, "data member's SHA-256", "and says so");
	} else {
		ok(1, "a damaged data member is refused while splitting");
		like(err ? err->msg : NULL, "gzip", "with a gzip error");
	}
	px_err_clear(&err);
	px_apk_package_free(p);
	free(buf);

	snprintf(path, sizeof(path), "%s/libglvnd-0-r1.apk", thirdparty());
	p = NULL;
	buf = NULL;
	ok(px_file_read(path, 64u << 20, &buf, &len, &err) == 0 &&
	           px_apk_package_read(buf, len, path, &p, &err) == 0,
	   "parse libglvnd (an empty data tar)");
	if (p) {
		ok(px_apk_package_verify(p, "Q1jeRAF+EpaHQSmKZxtA9fmuD6Hv8=", &err) == 0,
		   "libglvnd verifies against its C:");
		struct seen s2 = {0};
		ok(px_apk_package_foreach(p, 1u << 20, collect, &s2, &err) == 0 && s2.n == 0,
		   "libglvnd has no data entries");
		is_int(p->file_size, 1197, "S: is the file size");
	}
	px_apk_package_free(p);
	free(buf);
	px_err_clear(&err);
}

static void test_built(void)
{
	struct af_entry ents[] = {
	        {'d', "usr", 0755, NULL, NULL, 0, NULL, NULL},
	        {'d', "usr/bin", 0755, NULL, NULL, 0, NULL, NULL},
	        {'f', "usr/bin/x", 04755, "#!/bin/sh\necho x\n", NULL, 0, "user.pexi", "yes"},
	        {'h', "usr/bin/y", 0755, "usr/bin/x", NULL, 0, NULL, NULL},
	        {'l', "usr/bin/z", 0777, "x", NULL, 0, NULL, NULL},
	};
	struct px_buf b = PX_BUF_INIT;
	af_build(&b, "demo", "1.0-r0",
	         "depend = so:libc.musl-x86_64.so.1 busybox\n"
	         "provides = cmd:x=1.0-r0\nreplaces = old-demo\n"
	         "triggers = /usr/share/demo/*\n",
	         "#!/bin/sh\necho post\n", ents, PX_ARRAY_SIZE(ents));
	struct px_err *err = NULL;
	struct px_apk_package *p = NULL;
	ok(px_apk_package_read(b.data, b.len, "demo.apk", &p, &err) == 0,
	   "a two-member package without signature is read");
	if (!p) {
		printf("# %s\n", err->msg);
		px_err_clear(&err);
		px_buf_free(&b);
		return;
	}
	is_int(p->info.depends.n, 2, "two dependencies on one line");
	is_str(p->info.depends.v[1], "busybox", "second dependency");
	is_str(p->info.provides.v[0], "cmd:x=1.0-r0", "provides");
	is_str(p->info.replaces.v[0], "old-demo", "replaces");
	is_str(p->info.triggers.v[0], "/usr/share/demo/*", "triggers");
	is_str(p->scripts[PX_APK_POST_INSTALL].body, "#!/bin/sh\necho post\n", ".post-install");
	ok(!p->scripts[PX_APK_PRE_INSTALL].body, "no .pre-install");
	ok(px_apk_package_verify(p, NULL, &err) == 0, "its datahash verifies");
	struct seen s = {.want_file = "usr/bin/x"};
	ok(px_apk_package_foreach(p, 1u << 20, collect, &s, &err) == 0, "walk");
	is_int(s.hard, 1, "one hard link");
	is_int(s.xattrs, 1, "one extended attribute");
	is_int(s.mode_of_file, 04755, "setuid bit kept");
	is_str(s.file_content, "#!/bin/sh\necho x\n", "file content");
	px_apk_package_free(p);
	px_buf_free(&b);

	/* A package that tries to write outside the root. */
	struct af_entry evil[] = {{'f', "../../etc/x", 0644, "owned\n", NULL, 0, NULL, NULL}};
	struct px_buf e = PX_BUF_INIT;
	af_build(&e, "evil", "1-r0", NULL, NULL, evil, 1);
	p = NULL;
	ok(px_apk_package_read(e.data, e.len, "evil.apk", &p, &err) == 0, "evil package parses");
	struct seen s2 = {0};
	ok(p && px_apk_package_foreach(p, 1u << 20, collect, &s2, &err) < 0,
	   "its '../../etc/x' entry is refused");
	like(err ? err->msg : NULL, "refusing archive entry '../../etc/x'", "naming the entry");
	is_int(err ? err->exit_code : 0, PX_EXIT_INPUT, "as bad input");
	is_int(s2.n, 0, "before the callback saw it");
	px_err_clear(&err);
	px_apk_package_free(p);
	px_buf_free(&e);

	/* Garbage and a truncated package. */
	p = NULL;
	ok(px_apk_package_read("not gzip", 8, "junk.apk", &p, &err) < 0 && !p, "junk refused");
	px_err_clear(&err);
}

int main(void)
{
	test_real();
	test_built();
	return done_testing();
}
