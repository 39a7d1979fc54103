/* px_gpt_find_root and px_gpt_grow on the Alpine-shaped fixture, checked with sgdisk and
 * sfdisk (util-linux's CLI, which reads the table on its own), cmp-style byte comparisons
 * and file sizes. Skips when sgdisk or sfdisk is missing. */
#include <cjson/cJSON.h>

#include "core/common.h"

#include "core/spawn.h"
#include "image/gpt.h"
#include "image/sparse.h"
#include "tap.h"
#include "test-util.h"

#define MIB            ((uint64_t)1024 * 1024)
#define ROOT_START_LBA 67584ull
#define ROOT_GUID      "8D4E7A0C-3F5B-4C7D-9E9F-2A3B4C5D6E7F"
#define ESP_GUID       "7C3D6F9B-2E4A-4B6C-8D8E-1F2A3B4C5D6E"

static struct stat stat_of(const char *path)
{
	struct stat st = {0};
	stat(path, &st);
	return st;
}

/* Whether [off, off+len) is the same in both files. */
static int same_range(const char *a, const char *b, uint64_t off, uint64_t len)
{
	FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
	int same = fa && fb && fseeko(fa, (off_t)off, SEEK_SET) == 0 &&
	           fseeko(fb, (off_t)off, SEEK_SET) == 0;
	static char ba[1 << 16], bb[1 << 16];
	while (same && len > 0) {
		size_t n = len < sizeof(ba) ? (size_t)len : sizeof(ba);
		same = fread(ba, 1, n, fa) == n && fread(bb, 1, n, fb) == n && !memcmp(ba, bb, n);
		len -= n;
	}
	if (fa)
		fclose(fa);
	if (fb)
		fclose(fb);
	return same;
}

static int read_at(const char *path, uint64_t off, void *buf, size_t n)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd >= 0 && pread(fd, buf, n, (off_t)off) == (ssize_t)n;
}

static int all_zero(const char *path, uint64_t off, size_t n)
{
	char buf[512 * 33];
	if (n > sizeof(buf) || !read_at(path, off, buf, n))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (buf[i])
			return 0;
	return 1;
}

/* sfdisk --json, parsed: the table as util-linux's command-line tool reads it. */
static cJSON *sfdisk_json(const char *img)
{
	const char *const argv[] = {"sfdisk", "--json", img, NULL};
	_cleanup_free_ char *out = run_out(argv);
	return out ? cJSON_Parse(out) : NULL;
}

static double json_num(cJSON *o, const char *key)
{
	cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static const char *json_str(cJSON *o, const char *key)
{
	cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : "";
}

static void check_grown(const char *img, uint64_t size, const struct px_partition *p)
{
	uint64_t total = size / 512, last_usable = total - 34;
	uint64_t want_end = (last_usable + 1) / 2048 * 2048 - 1;
	uint64_t want_size = (want_end - ROOT_START_LBA + 1) * 512;
	char what[64];
	snprintf(what, sizeof(what), "%" PRIu64 " MiB", size / MIB);

	struct stat st = stat_of(img);
	is_int(st.st_size, size, "file has the new size");
	struct stat fst = stat_of(fixture);
	ok(st.st_blocks <= fst.st_blocks + 64,
	   "%s: file stays sparse (%lld blocks allocated, fixture %lld)", what,
	   (long long)st.st_blocks, (long long)fst.st_blocks);

	is_int(p->index, 2, "returned partition is 2");
	is_int(p->start, ROOT_START_LBA * 512, "returned start unchanged");
	is_int(p->size, want_size, "returned size ends on the last 1 MiB boundary");

	const char *const verify[] = {"sgdisk", "-v", img, NULL};
	_cleanup_free_ char *v = run_out(verify);
	like(v, "No problems found", "sgdisk -v finds no problems");
	ok(v && !strstr(v, "Caution") && !strstr(v, "Warning"), "%s: sgdisk -v has no caution",
	   what);

	cJSON *j = sfdisk_json(img);
	cJSON *pt = cJSON_GetObjectItemCaseSensitive(j, "partitiontable");
	cJSON *parts = cJSON_GetObjectItemCaseSensitive(pt, "partitions");
	is_int(json_num(pt, "lastlba"), last_usable, "sfdisk: last usable LBA at the new end");
	is_int(cJSON_GetArraySize(parts), 2, "sfdisk: two partitions");
	cJSON *p1 = cJSON_GetArrayItem(parts, 0), *p2 = cJSON_GetArrayItem(parts, 1);
	is_int(json_num(p1, "start"), 2048, "sfdisk: p1 start unchanged");
	is_int(json_num(p1, "size"), 65536, "sfdisk: p1 size unchanged");
	is_str(json_str(p1, "uuid"), ESP_GUID, "sfdisk: p1 GUID unchanged");
	is_int(json_num(p2, "start"), ROOT_START_LBA, "sfdisk: p2 start unchanged");
	is_int(json_num(p2, "size"), want_size / 512, "sfdisk: p2 fills the disk, aligned");
	is_str(json_str(p2, "type"), PX_GPT_TYPE_LINUX_FS, "sfdisk: p2 type unchanged");
	is_str(json_str(p2, "uuid"), ROOT_GUID, "sfdisk: p2 GUID unchanged");
	is_str(json_str(p2, "name"), "root", "sfdisk: p2 name unchanged");
	is_str(json_str(pt, "id"), "6B2C5E8A-1D3F-4A5B-9C7D-0E1F2A3B4C5D",
	       "sfdisk: disk GUID unchanged");
	cJSON_Delete(j);

	const char *const info[] = {"sgdisk", "-i", "2", img, NULL};
	_cleanup_free_ char *i2 = run_out(info);
	like(i2, "Partition unique GUID: " ROOT_GUID, "sgdisk -i 2: unique GUID unchanged");
	like(i2, "Attribute flags: 0000000000000000", "sgdisk -i 2: attributes unchanged");
	like(i2, "Partition name: 'root'", "sgdisk -i 2: name unchanged");

	/* The backup header is in the last sector and the primary points at it. */
	char hdr[512];
	ok(read_at(img, size - 512, hdr, sizeof(hdr)) && memcmp(hdr, "EFI PART", 8) == 0,
	   "%s: backup GPT header in the last sector", what);
	uint64_t my_lba = 0, alt = 0;
	ok(read_at(img, size - 512 + 24, &my_lba, 8) && read_at(img, 512 + 32, &alt, 8) &&
	           le64toh(my_lba) == total - 1 && le64toh(alt) == total - 1,
	   "%s: backup MyLBA and primary AlternateLBA are the last LBA", what);
}

static void test_find_root(void)
{
	struct px_partition p;
	struct px_err *err = NULL;
	ok(px_gpt_find_root(fixture, 0, &p, &err) == 0, "find_root auto on the fixture");
	is_int(p.index, 2, "auto picks partition 2");
	is_int(p.start, ROOT_START_LBA * 512, "root start");
	is_str(p.uuid, ROOT_GUID, "root unique GUID");
	is_str(p.type_guid, PX_GPT_TYPE_LINUX_FS, "root type");
	is_str(p.name, "root", "root name");
	is_int(p.attrs, 0, "root attributes");
	ok(px_gpt_find_root(fixture, 1, &p, &err) == 0, "find_root 1");
	is_str(p.name, "EFI", "partition 1 is the ESP");
	is_int(p.size, 32 * MIB, "ESP size");
}

static void test_grow(void)
{
	_cleanup_free_ char *img = copy_fixture("grow.raw");
	struct px_partition p = {0};
	struct px_err *err = NULL;
	int rc = px_gpt_grow(img, 1024 * MIB, 0, &p, &err);
	ok(rc == 0, "grow 200 MiB -> 1 GiB%s%s", err ? ": " : "", err ? err->msg : "");
	px_err_clear(&err);
	check_grown(img, 1024 * MIB, &p);

	/* Everything outside the table is untouched: the ESP and the root filesystem, up to
	 * where the old backup table began; the old backup itself is gone. */
	uint64_t old_size = (uint64_t)stat_of(fixture).st_size;
	ok(same_range(fixture, img, 34 * 512, old_size - 33 * 512 - 34 * 512),
	   "partition 1 and the old root bytes are byte-identical");
	ok(same_range(fixture, img, 2048 * 512, 32 * MIB), "partition 1 is byte-identical");
	ok(all_zero(img, old_size - 33 * 512, 33 * 512), "old backup GPT sectors are zeroed");

	_cleanup_free_ char *before = snapshot(img);
	struct stat st1 = stat_of(img);
	ok(px_gpt_grow(img, 1024 * MIB, 0, &p, &err) == 0, "growing to the same size succeeds");
	ok(same_image(img, before), "growing to the same size changes no byte");
	struct stat st2 = stat_of(img);
	ok(st1.st_mtim.tv_sec == st2.st_mtim.tv_sec && st1.st_mtim.tv_nsec == st2.st_mtim.tv_nsec,
	   "growing to the same size does not even write");
	is_int(p.size, (1024 * MIB - 2048 * 512) - ROOT_START_LBA * 512,
	       "no-op grow returns the partition");

	ok(px_gpt_grow(img, 2048 * MIB, 2, &p, &err) == 0, "grow again 1 GiB -> 2 GiB");
	check_grown(img, 2048 * MIB, &p);

	_cleanup_free_ char *direct = copy_fixture("direct.raw");
	ok(px_gpt_grow(direct, 2048 * MIB, 0, &p, &err) == 0, "grow 200 MiB -> 2 GiB directly");
	check_grown(direct, 2048 * MIB, &p);
	ok(same_image(img, direct), "200M->1G->2G and 200M->2G give the same bytes");
	px_err_clear(&err);
}

/* libfdisk has things to say about a grown file (PMBR size mismatch, misplaced backup):
 * none of it may reach stdout or stderr. */
static void test_silent(void)
{
	_cleanup_free_ char *img = copy_fixture("silent.raw");
	_cleanup_free_ char *log = path_in("silent.log");
	fflush(stdout);
	fflush(stderr);
	int saved_out = dup(1), saved_err = dup(2);
	int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	dup2(fd, 1);
	dup2(fd, 2);
	struct px_partition p;
	struct px_err *err = NULL;
	int rc = px_gpt_grow(img, 512 * MIB, 0, &p, &err);
	fflush(stdout);
	fflush(stderr);
	dup2(saved_out, 1);
	dup2(saved_err, 2);
	close(saved_out);
	close(saved_err);
	close(fd);
	ok(rc == 0, "grow with stdout and stderr captured");
	is_int(stat_of(log).st_size, 0, "libfdisk printed nothing");
	px_err_clear(&err);
}

/* A damaged primary header: libfdisk rebuilds it from the backup, and the grown disk is
 * whole again. */
static void test_primary_damaged(void)
{
	_cleanup_free_ char *img = copy_fixture("primary.raw");
	int fd = open(img, O_WRONLY | O_CLOEXEC);
	ok(fd >= 0 && pwrite(fd, "XXXXXXXX", 8, 512) == 8, "primary GPT signature clobbered");
	if (fd >= 0)
		close(fd);
	struct px_partition p;
	struct px_err *err = NULL;
	int rc = px_gpt_grow(img, 1024 * MIB, 0, &p, &err);
	ok(rc == 0, "grown from the backup GPT%s%s", err ? ": " : "", err ? err->msg : "");
	px_err_clear(&err);
	check_grown(img, 1024 * MIB, &p);
}

static void test_determinism(void)
{
	_cleanup_free_ char *a = copy_fixture("det-a.raw");
	_cleanup_free_ char *b = copy_fixture("det-b.raw");
	struct px_partition p;
	struct px_err *err = NULL;
	ok(px_gpt_grow(a, 1536 * MIB, 0, &p, &err) == 0 &&
	           px_gpt_grow(b, 1536 * MIB, 0, &p, &err) == 0,
	   "two copies grown");
	ok(same_image(a, b), "two copies grown to the same size are identical");
	px_err_clear(&err);
}

/* Expects px_gpt_grow to fail with PX_EXIT_INPUT, a message containing 'want', and the
 * file unchanged. */
static void refuse(const char *img, uint64_t size, int root, const char *want, const char *name)
{
	_cleanup_free_ char *before = snapshot(img);
	struct px_partition p;
	struct px_err *err = NULL;
	int rc = px_gpt_grow(img, size, root, &p, &err);
	ok(rc < 0 && err && err->exit_code == PX_EXIT_INPUT, "%s: refused as bad input", name);
	like(err ? err->msg : NULL, want, name);
	printf("#   %s\n", err ? err->msg : "(no error)");
	ok(same_image(img, before), "refused image unchanged");
	px_err_free(err);
}

static void sgdisk_do(const char *img, const char *arg)
{
	const char *const argv[] = {"sgdisk", arg, img, NULL};
	free(run_out(argv));
}

static void test_refusals(void)
{
	_cleanup_free_ char *img = copy_fixture("refuse.raw");
	refuse(img, 100 * MIB, 0, "refusing to shrink disk image", "shrinking");
	refuse(img, 1024 * MIB + 100, 0, "not a multiple of the 512-byte sector", "odd size");
	refuse(img, 1024 * MIB, 5, "has no partition 5", "missing partition");
	refuse(img, 1024 * MIB, 200, "has no partition 200", "partition past the table");
	refuse(img, 1024 * MIB, 1, "not the last partition", "root not last");

	_cleanup_free_ char *two = copy_fixture("two-linux.raw");
	sgdisk_do(two, "--typecode=1:8300");
	refuse(two, 1024 * MIB, 0, "has 2 Linux filesystem partitions (1, 2)", "several Linux");

	_cleanup_free_ char *none = copy_fixture("no-linux.raw");
	sgdisk_do(none, "--typecode=2:8301");
	refuse(none, 1024 * MIB, 0, "has no Linux filesystem partition", "no Linux partition");
	struct px_partition p;
	struct px_err *err = NULL;
	int rc;
	ok(px_gpt_grow(none, 1024 * MIB, 2, &p, &err) == 0,
	   "a partition named by number may have any type");
	px_err_clear(&err);

	_cleanup_free_ char *blank = path_in("blank.raw");
	int fd = open(blank, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ok(fd >= 0 && ftruncate(fd, 10 * MIB) == 0, "blank image created");
	close(fd);
	refuse(blank, 20 * MIB, 0, "has no partition table (expected GPT)", "no GPT");

	/* An MBR with one Linux partition. */
	_cleanup_free_ char *mbr = path_in("mbr.raw");
	fd = open(mbr, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	unsigned char s[512] = {0};
	s[446 + 4] = 0x83;
	uint32_t lba = htole32(2048), n = htole32(10000);
	memcpy(s + 446 + 8, &lba, 4);
	memcpy(s + 446 + 12, &n, 4);
	s[510] = 0x55;
	s[511] = 0xaa;
	ok(fd >= 0 && pwrite(fd, s, 512, 0) == 512 && ftruncate(fd, 10 * MIB) == 0,
	   "MBR image created");
	close(fd);
	refuse(mbr, 20 * MIB, 0, "has a dos partition table, not GPT", "MBR");

	/* Both GPT headers destroyed: what is left is a protective MBR. */
	_cleanup_free_ char *bad = copy_fixture("bad-gpt.raw");
	fd = open(bad, O_WRONLY | O_CLOEXEC);
	uint64_t size = (uint64_t)stat_of(bad).st_size;
	ok(fd >= 0 && pwrite(fd, "XXXXXXXX", 8, 512) == 8 &&
	           pwrite(fd, "XXXXXXXX", 8, (off_t)size - 512) == 8,
	   "GPT signatures clobbered");
	close(fd);
	refuse(bad, 1024 * MIB, 0, "has a protective MBR but no valid GPT header", "corrupt GPT");

	rc = px_gpt_grow("/nonexistent/x.raw", 1024 * MIB, 0, &p, &err);
	ok(rc < 0, "missing file fails");
	like(err ? err->msg : NULL, "cannot stat '/nonexistent/x.raw'", "missing file named");
	px_err_clear(&err);
}

int main(void)
{
	tu_require("sgdisk");
	tu_require("sfdisk");
	tu_require("qemu-img");
	tu_mkdtemp("pexi-test-gpt");
	tu_build_fixture();

	test_find_root();
	test_grow();
	test_determinism();
	test_silent();
	test_primary_damaged();
	test_refusals();

	tu_rm_tmpdir();
	return done_testing();
}
