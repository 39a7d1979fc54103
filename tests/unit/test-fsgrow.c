/* px_fs_grow on the Alpine-shaped fixture after px_gpt_grow, checked with e2fsprogs' own
 * tools (e2fsck -fn, dumpe2fs, debugfs) and sgdisk, plus the refusals: a journal that needs
 * recovery, orphans, an error-marked or inconsistent filesystem, shrinking. Skips when
 * e2fsck, resize2fs, debugfs, dumpe2fs or sgdisk is missing. */
#include "core/common.h"

#include "core/spawn.h"
#include "image/fsgrow.h"
#include "image/gpt.h"
#include "image/sparse.h"
#include "tap.h"
#include "test-util.h"

#define MIB   ((uint64_t)1024 * 1024)
#define EPOCH 1700000000

/* Runs argv and returns its exit status (stdout and stderr captured and dropped). */
static int run_status(const char *const argv[])
{
	struct px_spawn_result r;
	struct px_err *err = NULL;
	if (px_spawn(argv, 1, &r, &err) < 0) {
		printf("# %s\n", err->msg);
		px_err_free(err);
		return -1;
	}
	int status = r.exit_status;
	if (status)
		printf("# %s exited %d:\n# %s\n", argv[0], status, r.out);
	px_spawn_result_free(&r);
	return status;
}

/* "image?offset=N", the way e2fsprogs' tools address a partition inside an image. */
static char *at(const char *img, const struct px_partition *p)
{
	return xasprintf("%s?offset=%" PRIu64, img, p->start);
}

/* A value from dumpe2fs -h ("Block count:  253440"), or -1. */
static long long dumpe2fs_field(const char *spec, const char *field)
{
	const char *const argv[] = {"dumpe2fs", "-h", spec, NULL};
	_cleanup_free_ char *out = run_out(argv);
	const char *line = out ? strstr(out, field) : NULL;
	if (!line)
		return -1;
	line += strlen(field);
	while (*line == ':' || *line == ' ')
		line++;
	return strtoll(line, NULL, 10);
}

static char *debugfs(const char *spec, const char *request)
{
	const char *const argv[] = {"debugfs", "-R", request, spec, NULL};
	return run_out(argv);
}

/* A grown copy of the fixture: GPT grown to 'size', then the filesystem. */
static char *grown(const char *name, uint64_t size, struct px_partition *p, int fsgrow)
{
	char *img = copy_fixture(name);
	struct px_err *err = NULL;
	if (px_gpt_grow(img, size, 0, p, &err) < 0 ||
	    (fsgrow && px_fs_grow(img, p->start, p->size, EPOCH, &err) < 0)) {
		printf("# %s: %s\n", name, err->msg);
		px_err_free(err);
	}
	return img;
}

static int no_leftovers(void)
{
	const char *const argv[] = {"find", tmpdir, "-name", ".pexi-fsgrow-*", NULL};
	_cleanup_free_ char *out = run_out(argv);
	return out && !*out;
}

static void check_fs(const char *img, const struct px_partition *p, const char *what)
{
	_cleanup_free_ char *spec = at(img, p);
	const char *const fsck[] = {"e2fsck", "-fn", spec, NULL};
	is_int(run_status(fsck), 0, "e2fsck -fn clean");
	long long bs = dumpe2fs_field(spec, "Block size");
	long long count = dumpe2fs_field(spec, "Block count");
	ok(bs > 0 && count > 0 && (uint64_t)(count * bs) == p->size / (uint64_t)bs * (uint64_t)bs,
	   "%s: dumpe2fs block count x block size (%lld x %lld) fills the partition (%" PRIu64
	   " bytes)",
	   what, count, bs, p->size);
	_cleanup_free_ char *os = debugfs(spec, "cat /etc/os-release");
	like(os, "VERSION_ID=3.23.3", "debugfs reads /etc/os-release");
	_cleanup_free_ char *grub = debugfs(spec, "cat /boot/grub/grub.cfg");
	like(grub, "console=ttyS0 rootfstype=ext4", "debugfs reads grub.cfg");
	const char *const verify[] = {"sgdisk", "-v", img, NULL};
	_cleanup_free_ char *v = run_out(verify);
	like(v, "No problems found", "sgdisk -v still clean: the backup GPT survived");
}

static void test_grow(void)
{
	struct px_partition p;
	_cleanup_free_ char *img = grown("g1.raw", 1024 * MIB, &p, 0);
	struct px_err *err = NULL;
	struct stat st0;
	stat(img, &st0);
	int rc = px_fs_grow(img, p.start, p.size, EPOCH, &err);
	ok(rc == 0, "fsgrow after growing to 1 GiB%s%s", err ? ": " : "", err ? err->msg : "");
	px_err_clear(&err);
	struct stat st;
	stat(img, &st);
	is_int(st.st_size, 1024 * MIB, "image size unchanged by fsgrow (no truncation)");
	ok(st.st_blocks < st0.st_blocks + 16384,
	   "image stays sparse (%lld blocks allocated, %lld before)", (long long)st.st_blocks,
	   (long long)st0.st_blocks);
	check_fs(img, &p, "1 GiB");
	ok(no_leftovers(), "no temporary file left behind");

	_cleanup_free_ char *spec = at(img, &p);
	_cleanup_free_ char *stats = debugfs(spec, "stats");
	like(stats, "Last write time:          Tue Nov 14 22:13:20 2023",
	     "superblock write time is the given epoch");

	_cleanup_free_ char *before = snapshot(img);
	ok(px_fs_grow(img, p.start, p.size, EPOCH, &err) == 0, "fsgrow again succeeds");
	ok(same_image(img, before),
	   "fsgrow of a filesystem that fills its partition changes nothing");

	struct px_partition p2;
	_cleanup_free_ char *big = grown("g2.raw", 2048 * MIB, &p2, 1);
	check_fs(big, &p2, "2 GiB");
	_cleanup_free_ char *big2 = grown("g2b.raw", 2048 * MIB, &p2, 1);
	ok(same_image(big, big2), "two copies grown to 2 GiB are identical");
	px_err_clear(&err);
}

/* Expects px_fs_grow to refuse with PX_EXIT_INPUT, a message containing 'want', and the
 * image unchanged. */
static void refuse(const char *img, const struct px_partition *p, uint64_t size, const char *want,
                   const char *name)
{
	_cleanup_free_ char *before = snapshot(img);
	struct px_err *err = NULL;
	int rc = px_fs_grow(img, p->start, size, EPOCH, &err);
	ok(rc < 0 && err && err->exit_code == PX_EXIT_INPUT, "%s: refused as bad input", name);
	like(err ? err->msg : NULL, want, name);
	printf("#   %s\n", err ? err->msg : "(no error)");
	ok(same_image(img, before), "refused image unchanged");
	ok(no_leftovers(), "no temporary file left behind");
	px_err_free(err);
}

/* A copy grown to 1 GiB with one debugfs -w request applied to its filesystem. */
static char *damaged(const char *name, const char *request, struct px_partition *p)
{
	char *img = grown(name, 1024 * MIB, p, 0);
	_cleanup_free_ char *spec = at(img, p);
	const char *const argv[] = {"debugfs", "-w", "-R", request, spec, NULL};
	free(run_out(argv));
	return img;
}

static void test_refusals(void)
{
	struct px_partition p;
	_cleanup_free_ char *rec = damaged("recovery.raw", "feature needs_recovery", &p);
	refuse(rec, &p, p.size, "journal needs recovery", "needs_recovery");

	_cleanup_free_ char *orph = damaged("orphan.raw", "ssv last_orphan 12", &p);
	refuse(orph, &p, p.size, "orphan inodes", "orphan list");

	_cleanup_free_ char *errs = damaged("errors.raw", "ssv state 3", &p);
	refuse(errs, &p, p.size, "marked as having errors", "error state");

	/* Block 100 is used (inode tables, bitmaps): marking it free makes the bitmap lie. */
	_cleanup_free_ char *bmp = damaged("bitmap.raw", "freeb 100", &p);
	refuse(bmp, &p, p.size, "e2fsck -fn found problems", "inconsistent bitmap");

	_cleanup_free_ char *small = grown("small.raw", 1024 * MIB, &p, 0);
	refuse(small, &p, 100 * MIB, "refusing to shrink it", "partition smaller than the fs");

	struct px_partition esp = p;
	esp.start = 2048 * 512;
	refuse(small, &esp, p.size, "no ext2/3/4 filesystem at offset 1048576", "vfat, not ext4");

	struct px_err *err = NULL;
	ok(px_fs_grow(small, p.start, 4096 * MIB, EPOCH, &err) < 0, "partition past the end");
	like(err ? err->msg : NULL, "does not fit in", "partition past the end named");
	px_err_clear(&err);
}

/* A disk whose ext4 has no metadata checksums (so resize2fs must zero the inode tables of
 * new groups) and whose free blocks hold stale bytes, grown in 'dir'. resize2fs zeroes by
 * punching holes where it cannot zero a range (tmpfs), so the copy back must zero the
 * image's bytes under every hole too, or the new inode tables read as garbage. */
static void test_stale_free_space(const char *dir)
{
	_cleanup_free_ char *img = xasprintf("%s/stale.raw", dir);
	_cleanup_free_ char *junk = xasprintf("%s/junk", dir);
	_cleanup_free_ char *spec = xasprintf("%s?offset=1048576", img);
	int fd = open(img, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int jfd = open(junk, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	static char buf[1 << 16];
	memset(buf, 0xa5, sizeof(buf));
	int made = fd >= 0 && jfd >= 0 && ftruncate(fd, 64 * MIB) == 0;
	for (int i = 0; made && i < 640; i++)
		made = write(jfd, buf, sizeof(buf)) == (ssize_t)sizeof(buf);
	if (fd >= 0)
		close(fd);
	if (jfd >= 0)
		close(jfd);
	const char *const part[] = {"sgdisk", "-n", "1:2048:0", "-t", "1:8300", img, NULL};
	const char *const mkfs[] = {"mkfs.ext4",
	                            "-q",
	                            "-F",
	                            "-b",
	                            "4096",
	                            "-O",
	                            "^metadata_csum,^uninit_bg",
	                            "-E",
	                            "offset=1048576",
	                            img,
	                            "15000",
	                            NULL};
	_cleanup_free_ char *wreq = xasprintf("write %s junk", junk);
	const char *const wr[] = {"debugfs", "-w", "-R", wreq, spec, NULL};
	const char *const rm[] = {"debugfs", "-w", "-R", "rm junk", spec, NULL};
	made = made && run_status(part) == 0 && run_status(mkfs) == 0 && run_status(wr) == 0 &&
	       run_status(rm) == 0;
	ok(made, "%s: disk with stale bytes in free blocks built", dir);
	_cleanup_free_ char *before = snapshot(img);

	struct px_partition p;
	struct px_err *err = NULL;
	int rc = px_gpt_grow(img, 512 * MIB, 0, &p, &err);
	if (rc == 0)
		rc = px_fs_grow(img, p.start, p.size, EPOCH, &err);
	ok(rc == 0, "%s: grown%s%s", dir, err ? ": " : "", err ? err->msg : "");
	px_err_clear(&err);
	const char *const fsck[] = {"e2fsck", "-fn", spec, NULL};
	is_int(run_status(fsck), 0, "e2fsck -fn clean: new inode tables hold no stale bytes");

	/* The last group's inode table was free space with stale bytes before. */
	const char *const dump[] = {"dumpe2fs", spec, NULL};
	_cleanup_free_ char *out = run_out(dump);
	const char *it = NULL;
	for (const char *q = out; q && (q = strstr(q, "Inode table at ")); q++)
		it = q + strlen("Inode table at ");
	uint64_t block = it ? strtoull(it, NULL, 10) : 0;
	unsigned char was[16] = {0}, now[16] = {1};
	int bfd = open(before, O_RDONLY | O_CLOEXEC), ifd = open(img, O_RDONLY | O_CLOEXEC);
	off_t off = (off_t)(1048576 + block * 4096);
	ok(block > 0 && bfd >= 0 && ifd >= 0 && pread(bfd, was, 16, off) == 16 &&
	           pread(ifd, now, 16, off) == 16 && was[0] == 0xa5 && now[0] == 0 &&
	           !memcmp(now, now + 8, 8),
	   "new inode table at block %" PRIu64 " held stale bytes and now reads as zeros", block);
	if (bfd >= 0)
		close(bfd);
	if (ifd >= 0)
		close(ifd);
	unlink(img);
	unlink(before);
	unlink(junk);
}

int main(void)
{
	const char *tools[] = {"e2fsck",    "resize2fs", "debugfs", "dumpe2fs",
	                       "mkfs.ext4", "sgdisk",    "qemu-img"};
	for (size_t i = 0; i < PX_ARRAY_SIZE(tools); i++)
		tu_require(tools[i]);
	tu_mkdtemp("pexi-test-fsgrow");
	tu_build_fixture();

	test_grow();
	test_refusals();
	test_stale_free_space(tmpdir);
	/* tmpfs cannot zero a range, only punch holes: the case the copy back must handle. */
	char shm[] = "/dev/shm/pexi-test-fsgrow.XXXXXX";
	if (mkdtemp(shm)) {
		test_stale_free_space(shm);
		rmdir(shm);
	}

	tu_rm_tmpdir();
	return done_testing();
}
