/* px_extfs against e2fsprogs' own tools: every write is read back with debugfs and every
 * filesystem checked with e2fsck -fn. */
#include "core/common.h"

#include "image/extfs.h"
#include "tap.h"

#include "ext-fixture.h"

#define T1 INT64_C(1750000000)

static const char os_release[] = "NAME=\"Alpine Linux\"\n"
                                 "ID=alpine\n"
                                 "VERSION_ID=3.23.3\n"
                                 "PRETTY_NAME=\"Alpine Linux v3.23\"\n"
                                 "HOME_URL=\"https://alpinelinux.org/\"\n";

static struct px_extfs *open_rw(const char *image)
{
	struct px_extfs *fs = NULL;
	struct px_err *err = NULL;
	if (px_extfs_open(image, FX_OFFSET, true, &fs, &err) < 0) {
		printf("# open: %s\n", err->msg);
		exit(1);
	}
	px_extfs_set_time(fs, T1);
	return fs;
}

static void close_ok(struct px_extfs *fs, const char *what)
{
	struct px_err *err = NULL;
	int r = px_extfs_close(fs, &err);
	if (!ok(r == 0, "close after %s", what))
		printf("#   %s\n", err->msg);
	px_err_free(err);
}

static void write_ok(struct px_extfs *fs, const char *path, const char *data, size_t len,
                     uint32_t mode, uint32_t uid, uint32_t gid)
{
	struct px_extfs_attrs a = {mode, uid, gid, T1};
	struct px_err *err = NULL;
	int r = px_extfs_write_file(fs, path, data, len, &a, &err);
	if (!ok(r == 0, "write '%s' (%zu bytes)", path, len))
		printf("#   %s\n", err->msg);
	px_err_free(err);
}

static void write_refused(struct px_extfs *fs, const char *path, const char *fragment)
{
	struct px_extfs_attrs a = {0644, 0, 0, T1};
	struct px_err *err = NULL;
	int r = px_extfs_write_file(fs, path, "x", 1, &a, &err);
	ok(r < 0, "writing '%s' is refused", path);
	like(err ? err->msg : NULL, fragment, "  and the message says why");
	px_err_free(err);
}

static void test_open_errors(const char *raw)
{
	struct px_extfs *fs = NULL;
	struct px_err *err = NULL;
	ok(px_extfs_open("/nonexistent/disk.raw", FX_OFFSET, false, &fs, &err) < 0 && !fs,
	   "opening a missing image fails");
	like(err ? err->msg : NULL, "'/nonexistent/disk.raw'", "  naming the image");
	px_err_clear(&err);
	ok(px_extfs_open(raw, 512, false, &fs, &err) < 0 && !fs,
	   "opening at an offset with no filesystem fails");
	like(err ? err->msg : NULL, "byte offset 512", "  naming the offset");
	px_err_free(err);
}

static void test_read(const char *raw)
{
	struct px_extfs *fs = NULL;
	struct px_err *err = NULL;
	char *data = NULL;
	size_t len = 0;

	ok(px_extfs_open(raw, FX_OFFSET, false, &fs, &err) == 0, "read-only open");
	ok(px_extfs_read_file(fs, "/etc/os-release", 4096, &data, &len, &err) == 0 &&
	           len == strlen(os_release) && memcmp(data, os_release, len) == 0,
	   "read /etc/os-release as built by mkfs.ext4 -d");
	free(data);
	data = NULL;
	ok(px_extfs_read_file(fs, "/etc/os-release", 10, &data, &len, &err) < 0 && !data,
	   "a file above the cap is refused");
	like(err ? err->msg : NULL, "larger than 10 bytes", "  with the cap in the message");
	px_err_clear(&err);
	ok(px_extfs_read_file(fs, "/etc/nothing", 4096, &data, &len, &err) < 0 && err &&
	           err->errnum == ENOENT,
	   "a missing file is ENOENT");
	char *want = xasprintf("'/etc/nothing' not found in the root filesystem of '%s'", raw);
	is_str(err ? err->msg : NULL, want, "  with the documented message");
	free(want);
	px_err_clear(&err);
	ok(px_extfs_read_file(fs, "/nodir/x", 4096, &data, &len, &err) < 0 && err &&
	           err->errnum == ENOENT,
	   "a missing parent is ENOENT too");
	px_err_clear(&err);
	ok(px_extfs_read_file(fs, "/etc", 4096, &data, &len, &err) < 0,
	   "reading a directory fails");
	like(err ? err->msg : NULL, "not a regular file", "  as not a regular file");
	px_err_clear(&err);
	struct px_extfs_attrs a;
	ok(px_extfs_stat(fs, "/boot/grub", &a, &err) == 0 && S_ISDIR(a.mode) && a.uid == 0 &&
	           a.mtime == 1700000000,
	   "stat of a directory: type, owner and the fixture's mtime");
	px_extfs_abort(fs);
	px_err_free(err);
}

static void test_write_new(const char *raw)
{
	char *img = fx_copy(raw, "new.raw");
	struct px_extfs *fs = open_rw(img);
	struct fx_stat st;

	write_ok(fs, "/opt/pexi//deep/./new.txt", "hello\n", 6, 0600, 1000, 1001);
	write_ok(fs, "/etc/empty", "", 0, 0644, 0, 0);
	close_ok(fs, "new files");
	ok(fx_fsck_clean(img), "e2fsck -fn is clean after creating files and directories");
	char *cat = fx_cat(img, "/opt/pexi/deep/new.txt");
	is_str(cat, "hello\n", "debugfs cat shows the new file");
	free(cat);
	ok(fx_stat(img, "/opt/pexi/deep/new.txt", &st) && px_streq(st.type, "regular") &&
	           st.mode == 0600 && st.uid == 1000 && st.gid == 1001 && st.size == 6 &&
	           st.links == 1 && st.generation == 0,
	   "new file: regular, 0600, 1000:1001, 6 bytes, one link, generation 0");
	ok(st.mtime == (unsigned long)T1 && st.atime == (unsigned long)T1 &&
	           st.ctime == (unsigned long)T1 && st.crtime == (unsigned long)T1,
	   "new file: atime, mtime, ctime and crtime are the given time");
	ok(fx_stat(img, "/opt/pexi", &st) && px_streq(st.type, "directory") && st.mode == 0755 &&
	           st.uid == 1000 && st.gid == 1001 && st.mtime == (unsigned long)T1,
	   "created parent directory: 0755, the file's owner, the given time");
	ok(fx_stat(img, "/", &st) && st.mtime == (unsigned long)T1,
	   "the root directory, which gained an entry, has the given mtime");
	ok(fx_stat(img, "/etc/empty", &st) && st.size == 0, "an empty file has size 0");
	char *when = fx_last_write_time(img);
	is_str(when, "Sun Jun 15 15:06:40 2025", "superblock write time is the given time");
	free(when);
	free(img);
}

static void test_replace(const char *raw)
{
	char *img = fx_copy(raw, "replace.raw");
	struct fx_stat before, st;
	size_t big_len = 3u << 20;
	char *big = xmalloc(big_len);
	for (size_t i = 0; i < big_len; i++)
		big[i] = (char)('a' + (i * 7 + i / 4096) % 26);

	ok(fx_stat(img, "/etc/os-release", &before), "stat the original");
	struct px_extfs *fs = open_rw(img);
	write_ok(fs, "/etc/os-release", big, big_len, 0644, 0, 0);
	close_ok(fs, "replacing with 3 MiB");
	ok(fx_fsck_clean(img), "e2fsck clean after replacing a small file by 3 MiB");
	char *dump = xasprintf("%s/dump", fx_dir),
	     *cmd = xasprintf("dump /etc/os-release %s", dump);
	free(fx_debugfs(img, cmd));
	char *back = NULL;
	size_t back_len = 0;
	ok(px_file_read(dump, big_len + 1, &back, &back_len, NULL) == 0 && back_len == big_len &&
	           memcmp(back, big, big_len) == 0,
	   "debugfs dump gives back the 3 MiB byte for byte");
	free(back);
	ok(fx_stat(img, "/etc/os-release", &st) && st.size == big_len, "i_size is 3 MiB");

	fs = open_rw(img);
	write_ok(fs, "/etc/os-release", "ID=pexi\n", 8, 0640, 0, 42);
	close_ok(fs, "replacing with 8 bytes");
	ok(fx_fsck_clean(img), "e2fsck clean after shrinking it again (blocks freed, no leak)");
	char *cat = fx_cat(img, "/etc/os-release");
	is_str(cat, "ID=pexi\n", "new content");
	free(cat);
	ok(fx_stat(img, "/etc/os-release", &st) && st.mode == 0640 && st.gid == 42 && st.size == 8,
	   "new mode and group");
	free(big);
	free(dump);
	free(cmd);
	free(img);
}

static void test_host_file(const char *raw)
{
	char *img = fx_copy(raw, "host.raw");
	char *src = xasprintf("%s/src.bin", fx_dir);
	size_t len = 5u << 20;
	char *data = xmalloc(len);
	struct px_err *err = NULL;
	for (size_t i = 0; i < len; i++)
		data[i] = (char)(i * 131 + i / 65536);
	px_atomic_write_file(src, data, len, 0644, &err);

	struct px_extfs *fs = open_rw(img);
	struct px_extfs_attrs a = {0755, 0, 0, T1};
	ok(px_extfs_write_host_file(fs, "/usr/bin/tool", src, &a, &err) == 0,
	   "stream a 5 MiB host file in");
	ok(px_extfs_write_host_file(fs, "/usr/bin/x", fx_dir, &a, &err) < 0,
	   "a host directory is refused as a source");
	like(err ? err->msg : NULL, "is not a regular file", "  as not a regular file");
	px_err_clear(&err);
	ok(px_extfs_write_host_file(fs, "/usr/bin/x", "/nonexistent/f", &a, &err) < 0,
	   "a missing host file is refused");
	like(err ? err->msg : NULL, "cannot open '/nonexistent/f'", "  naming it");
	px_err_clear(&err);
	close_ok(fs, "host file");
	ok(fx_fsck_clean(img), "e2fsck clean");
	char *dump = xasprintf("%s/dump2", fx_dir), *cmd = xasprintf("dump /usr/bin/tool %s", dump);
	free(fx_debugfs(img, cmd));
	char *back = NULL;
	size_t back_len = 0;
	ok(px_file_read(dump, len + 1, &back, &back_len, NULL) == 0 && back_len == len &&
	           memcmp(back, data, len) == 0,
	   "debugfs dump matches the host file");
	char *ex = fx_debugfs(img, "ex /usr/bin/tool");
	like(ex, "Level Entries", "the file is mapped by extents");
	free(ex);
	free(back);
	free(data);
	free(dump);
	free(cmd);
	free(src);
	free(img);
}

static void test_refusals(const char *raw)
{
	char *img = fx_copy(raw, "refuse.raw");
	ok(fx_debugfs_w(img, "symlink /linkdir /etc\n"
	                     "symlink /etc/alink /etc/os-release\n"
	                     "cd /etc\nmknod fifo p\n") == 0,
	   "debugfs makes /linkdir -> /etc, /etc/alink -> /etc/os-release, a fifo");
	struct px_extfs *fs = open_rw(img);
	write_refused(fs, "etc/x", "is not absolute");
	write_refused(fs, "", "is not absolute");
	write_refused(fs, "../etc/x", "is not absolute");
	write_refused(fs, "/../etc/x", "'..' component");
	write_refused(fs, "/etc/../x", "'..' component");
	write_refused(fs, "/linkdir/x", "'/linkdir' in the root filesystem");
	write_refused(fs, "/linkdir/x", "is a symbolic link: refusing to follow it");
	write_refused(fs, "/etc", "'/etc' in the root filesystem");
	write_refused(fs, "/etc/", "is a directory");
	write_refused(fs, "/", "is a directory");
	write_refused(fs, "/etc/os-release/x", "is not a directory");
	char longname[300];
	memset(longname, 'a', sizeof(longname));
	longname[0] = '/';
	longname[sizeof(longname) - 1] = '\0';
	write_refused(fs, longname, "longer than 255 bytes");
	struct px_extfs_attrs a = {0755, 0, 0, T1};
	struct px_err *err = NULL;
	ok(px_extfs_mkdir_p(fs, "/linkdir/sub", &a, &err) < 0, "mkdir -p through a symlink fails");
	like(err ? err->msg : NULL, "symbolic link", "  because of the link");
	px_err_clear(&err);
	struct px_extfs_attrs late = {0644, 0, 0, INT64_C(1) << 40};
	ok(px_extfs_write_file(fs, "/etc/late", "x", 1, &late, &err) < 0,
	   "a time ext4 cannot store is refused");
	px_err_clear(&err);
	/* A symlink or a special file at the path itself is replaced, never written through. */
	write_ok(fs, "/etc/alink", "replaced\n", 9, 0644, 0, 0);
	write_ok(fs, "/etc/fifo", "was a fifo\n", 11, 0644, 0, 0);
	close_ok(fs, "refusals");
	ok(fx_fsck_clean(img), "e2fsck clean after the refusals and replacements");
	char *cat = fx_cat(img, "/etc/os-release");
	is_str(cat, os_release, "the symlink's target is untouched");
	free(cat);
	struct fx_stat st;
	ok(fx_stat(img, "/etc/alink", &st) && px_streq(st.type, "regular") && st.size == 9,
	   "the symlink itself became a regular file");
	ok(fx_stat(img, "/etc/fifo", &st) && px_streq(st.type, "regular"),
	   "the fifo became a regular file");
	char *x = fx_debugfs(img, "stat /etc/x");
	ok(x && !strstr(x, "Type: regular"), "nothing was written at /etc/x");
	free(x);
	free(img);
}

static void test_hard_link(const char *raw)
{
	char *img = fx_copy(raw, "hardlink.raw");
	ok(fx_debugfs_w(img, "ln /etc/os-release /etc/os-link\n"
	                     "sif /etc/os-release links_count 2\n") == 0,
	   "debugfs makes a second hard link to /etc/os-release");
	ok(fx_fsck_clean(img), "the fixture with a hard link is clean");
	struct px_extfs *fs = open_rw(img);
	write_ok(fs, "/etc/os-link", "other\n", 6, 0644, 0, 0);
	close_ok(fs, "replacing one of two hard links");
	ok(fx_fsck_clean(img), "e2fsck clean: the old inode kept one link");
	char *a = fx_cat(img, "/etc/os-release"), *b = fx_cat(img, "/etc/os-link");
	is_str(a, os_release, "the other link keeps the old content");
	is_str(b, "other\n", "the replaced link has the new content");
	struct fx_stat st;
	ok(fx_stat(img, "/etc/os-release", &st) && st.links == 1, "the old inode has one link now");
	free(a);
	free(b);
	free(img);
}

static void test_mkdir_symlink(const char *raw)
{
	char *img = fx_copy(raw, "mkdir.raw");
	struct px_extfs *fs = open_rw(img);
	struct px_extfs_attrs d = {0700, 5, 6, T1};
	struct px_extfs_attrs l = {0, 7, 8, T1};
	struct px_err *err = NULL;
	char target[200];
	memset(target, 't', sizeof(target));
	target[0] = '/';
	target[sizeof(target) - 1] = '\0';

	ok(px_extfs_mkdir_p(fs, "/var/lib/pexi/state", &d, &err) == 0, "mkdir -p a new tree");
	ok(px_extfs_mkdir_p(fs, "/etc", &d, &err) == 0, "mkdir -p of an existing directory");
	ok(px_extfs_symlink(fs, "/etc/fast", "/etc/os-release", &l, &err) == 0, "a short symlink");
	ok(px_extfs_symlink(fs, "/etc/slow", target, &l, &err) == 0, "a 199-byte symlink");
	ok(px_extfs_symlink(fs, "/etc/fast", "/bin/true", &l, &err) == 0, "replace a symlink");
	ok(px_extfs_symlink(fs, "/etc", "/x", &l, &err) < 0, "a symlink over a directory fails");
	px_err_clear(&err);
	/* Enough entries to make /var/lib/pexi/state grow past its first block. */
	for (int i = 0; i < 200; i++) {
		char name[128], *path;
		memset(name, 'n', sizeof(name));
		name[100] = '\0';
		path = xasprintf("/var/lib/pexi/state/%s%03d", name, i);
		struct px_extfs_attrs a = {0644, 0, 0, T1};
		if (px_extfs_write_file(fs, path, "", 0, &a, &err) < 0) {
			ok(0, "write %s: %s", path, err->msg);
			px_err_clear(&err);
		}
		free(path);
	}
	close_ok(fs, "directories and symlinks");
	ok(fx_fsck_clean(img), "e2fsck clean (expanded directory included)");
	struct fx_stat st;
	ok(fx_stat(img, "/var/lib/pexi/state", &st) && px_streq(st.type, "directory") &&
	           st.mode == 0700 && st.uid == 5 && st.gid == 6 && st.size > 4096,
	   "new directory: 0700, 5:6, grew beyond one block");
	ok(fx_stat(img, "/etc", &st) && st.mode == 0755, "the existing /etc kept its mode");
	char *out = fx_debugfs(img, "stat /etc/fast");
	like(out, "Fast link dest: \"/bin/true\"", "the replaced fast symlink points at /bin/true");
	free(out);
	ok(fx_stat(img, "/etc/fast", &st) && st.uid == 7 && st.gid == 8 && st.mode == 0777 &&
	           st.mtime == (unsigned long)T1,
	   "symlink owner, mode 0777 and time");
	ok(fx_stat(img, "/etc/slow", &st) && px_streq(st.type, "symlink") && st.size == 199,
	   "the long symlink has its 199-byte target");
	char *ls = fx_debugfs(img, "ls -l /var/lib/pexi/state");
	like(ls, "nnnnnnnnnn199", "debugfs lists the 200th entry");
	free(ls);
	px_err_free(err);
	free(img);
}

static void test_enospc(const char *raw)
{
	char *img = fx_copy(raw, "full.raw");
	char *src = xasprintf("%s/huge", fx_dir);
	struct px_err *err = NULL;
	int fd = open(src, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ok(fd >= 0 && ftruncate(fd, 100 << 20) == 0, "a 100 MiB host file (the fs has ~30 MiB)");
	if (fd >= 0)
		close(fd);
	struct px_extfs *fs = open_rw(img);
	struct px_extfs_attrs a = {0644, 0, 0, T1};
	ok(px_extfs_write_host_file(fs, "/etc/os-release", src, &a, &err) < 0 && err &&
	           err->errnum == ENOSPC,
	   "writing more than the free space fails with ENOSPC");
	like(err ? err->msg : NULL, "no space left in the filesystem", "  with a clear message");
	px_err_clear(&err);
	close_ok(fs, "a failed write");
	ok(fx_fsck_clean(img), "e2fsck clean: the half-written inode was given back");
	char *cat = fx_cat(img, "/etc/os-release");
	is_str(cat, os_release, "the old file is intact");
	free(cat);
	free(src);
	free(img);
}

static void patch_same(const char *img)
{
	struct px_extfs *fs = open_rw(img);
	write_ok(fs, "/etc/a/b/c", "abc\n", 4, 0644, 0, 0);
	write_ok(fs, "/etc/os-release", "ID=x\n", 5, 0644, 0, 0);
	close_ok(fs, "the same writes");
}

static void test_deterministic(const char *raw)
{
	char *a = fx_copy(raw, "det-a.raw"), *b = fx_copy(raw, "det-b.raw");
	patch_same(a);
	sleep(1); /* a clock leaking into the image would now differ */
	patch_same(b);
	char *ha = fx_sha256(a), *hb = fx_sha256(b), *h0 = fx_sha256(raw);
	ok(ha && hb && strcmp(ha, hb) == 0, "same writes, same time: identical images (sha256sum)");
	ok(ha && h0 && strcmp(ha, h0) != 0, "and they differ from the original");
	free(ha);
	free(hb);
	free(h0);
	free(a);
	free(b);
}

int main(void)
{
	char *raw = fx_build();
	ok(fx_fsck_clean(raw), "the fixture itself is clean");
	test_open_errors(raw);
	test_read(raw);
	test_write_new(raw);
	test_replace(raw);
	test_host_file(raw);
	test_refusals(raw);
	test_hard_link(raw);
	test_mkdir_symlink(raw);
	test_enospc(raw);
	test_deterministic(raw);
	free(raw);
	return done_testing();
}
