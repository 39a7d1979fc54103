/* The VHD reader and the convert stage, checked against qemu-img: every VHD is made by
 * qemu-img (or crafted here byte by byte where qemu-img cannot make it: small blocks,
 * partial sector bitmaps), converted by pexi, and the output compared with qemu-img's own
 * conversion and with the VHD itself (`qemu-img compare`). Hostile images are valid
 * qemu-img images with exactly one defect patched in (checksums recomputed where the case
 * is not about the checksum); each must fail with PX_EXIT_INPUT and the expected reason,
 * both from the file converter and from the in-memory checker the fuzzer drives. */
#include <ftw.h>

#include "core/common.h"

#include "core/file.h"
#include "core/reader.h"
#include "core/spawn.h"
#include "image/vhd.h"
#include "tap.h"

static char dir[] = "/tmp/pexi-vhd.XXXXXX";

static char *path_in(const char *name)
{
	return xasprintf("%s/%s", dir, name);
}

static int run(const char *const argv[])
{
	struct px_err *err = NULL;
	if (px_run(argv, NULL, &err) < 0) {
		printf("# %s\n", err->msg);
		px_err_free(err);
		return -1;
	}
	return 0;
}

static uint64_t qemu_virtual_size(const char *path, const char *fmt)
{
	const char *argv[] = {"qemu-img", "info", "-f", fmt, "--output=json", path, NULL};
	_cleanup_free_ char *out = NULL;
	struct px_err *err = NULL;
	if (px_run(argv, &out, &err) < 0) {
		px_err_free(err);
		return 0;
	}
	const char *p = strstr(out, "\"virtual-size\":");
	return p ? strtoull(p + strlen("\"virtual-size\":"), NULL, 10) : 0;
}

/* Allocated 512-byte blocks once delayed allocation has happened, so that two files
 * written moments apart are measured alike. */
static long long allocated(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	fsync(fd);
	struct stat st;
	int r = fstat(fd, &st);
	close(fd);
	return r < 0 ? -1 : (long long)st.st_blocks;
}

static long long file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) < 0 ? -1 : (long long)st.st_size;
}

static int write_file(const char *path, const void *buf, size_t len)
{
	struct px_err *err = NULL;
	if (px_atomic_write_file(path, buf, len, 0644, &err) < 0) {
		printf("# %s\n", err->msg);
		px_err_free(err);
		return -1;
	}
	return 0;
}

static int pwrite_pattern(int fd, uint64_t off, size_t len, uint8_t seed)
{
	_cleanup_free_ uint8_t *b = xmalloc(len);
	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)(seed + i * 7 + (i >> 9));
	return pwrite(fd, b, len, (off_t)off) == (ssize_t)len ? 0 : -1;
}

/* A raw disk with data at scattered offsets: the start of a block, a lone sector, the last
 * sector of a block, runs straddling block boundaries, zeros inside data, the last sector. */
static int make_scattered_raw(const char *path, uint64_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		return -1;
	static const struct {
		uint64_t off;
		size_t len;
	} w[] = {
	        {0, 4096},
	        {3 * 512, 512},
	        {(2 << 20) - 512, 512},
	        {(6 << 20) - 3000, 9000},
	        {(9 << 20) + 512 * 5, 512 * 3},
	        {(33 << 20) + 100 * 512, 70000},
	};
	int r = 0;
	for (size_t i = 0; i < PX_ARRAY_SIZE(w) && r == 0; i++)
		r = pwrite_pattern(fd, w[i].off, w[i].len, (uint8_t)(i * 31 + 1));
	if (r == 0)
		r = pwrite_pattern(fd, size - 512, 512, 0x77);
	close(fd);
	return r;
}

/* ---- crafting VHDs by hand ---- */

static void put_checksum(uint8_t *p, size_t len, size_t at)
{
	uint32_t sum = 0;
	for (size_t i = 0; i < len; i++)
		if (i < at || i >= at + 4)
			sum += p[i];
	px_put_be32(p + at, ~sum);
}

static void make_footer(uint8_t *f, uint64_t vsize, uint32_t type, uint64_t data_offset,
                        const char *creator)
{
	memset(f, 0, 512);
	memcpy(f, "conectix", 8);
	px_put_be32(f + 8, 2);
	px_put_be32(f + 12, 0x00010000);
	px_put_be64(f + 16, data_offset);
	memcpy(f + 28, creator, 4);
	px_put_be32(f + 32, 0x000a0000);
	memcpy(f + 36, "Wi2k", 4);
	px_put_be64(f + 40, vsize);
	px_put_be64(f + 48, vsize);
	/* Some geometry; creators other than "vpc "/"qemu" are sized by current_size. */
	f[56] = 0;
	f[57] = 16;
	f[58] = 4;
	f[59] = 17;
	px_put_be32(f + 60, type);
	for (int i = 0; i < 16; i++)
		f[68 + i] = (uint8_t)(i + 1);
	put_checksum(f, 512, 64);
}

struct crafted_block {
	uint32_t index;
	uint8_t bitmap; /* every bitmap byte */
	uint8_t fill;   /* every data byte */
};

/* A dynamic VHD with small blocks (which qemu-img cannot make): vsize bytes, blocks of
 * block_size, the given blocks allocated in order. */
static uint8_t *craft_dynamic(uint64_t vsize, uint32_t block_size, const char *creator,
                              const struct crafted_block *blocks, size_t nblocks, size_t *ret_len)
{
	uint32_t entries = (uint32_t)((vsize + block_size - 1) / block_size);
	size_t bat_bytes = ((size_t)entries * 4 + 511) / 512 * 512;
	size_t bitmap = ((block_size / 512 + 7) / 8 + 511) / 512 * 512;
	size_t len = 512 + 1024 + bat_bytes + nblocks * (bitmap + block_size) + 512;
	uint8_t *b = xcalloc(1, len);
	make_footer(b, vsize, 3, 512, creator);
	memcpy(b + len - 512, b, 512);
	uint8_t *h = b + 512;
	memcpy(h, "cxsparse", 8);
	px_put_be64(h + 8, UINT64_MAX);
	px_put_be64(h + 16, 1536);
	px_put_be32(h + 24, 0x00010000);
	px_put_be32(h + 28, entries);
	px_put_be32(h + 32, block_size);
	put_checksum(h, 1024, 36);
	memset(b + 1536, 0xff, bat_bytes);
	size_t at = 1536 + bat_bytes;
	for (size_t i = 0; i < nblocks; i++) {
		px_put_be32(b + 1536 + blocks[i].index * 4, (uint32_t)(at / 512));
		memset(b + at, blocks[i].bitmap, (block_size / 512 + 7) / 8);
		memset(b + at + bitmap, blocks[i].fill, block_size);
		at += bitmap + block_size;
	}
	*ret_len = len;
	return b;
}

/* ---- conversion checked against qemu-img ---- */

static void check_convert(const char *name, enum px_image_format want_fmt)
{
	struct px_err *err = NULL;
	_cleanup_free_ char *vhd = path_in(name);
	_cleanup_free_ char *out = xasprintf("%s/%s.pexi.raw", dir, name);
	_cleanup_free_ char *ref = xasprintf("%s/%s.qemu.raw", dir, name);
	const char *qfmt = want_fmt == PX_IMAGE_RAW ? "raw" : "vpc";

	enum px_image_format fmt = PX_IMAGE_RAW;
	int r = px_image_detect(vhd, &fmt, &err);
	ok(r == 0 && fmt == want_fmt, "%s: detected as format %d", name, (int)want_fmt);
	px_err_clear(&err);

	uint64_t vsize = 0;
	r = px_vhd_convert(vhd, out, &vsize, &err);
	if (!ok(r == 0, "%s: converts", name))
		printf("# %s\n", err ? err->msg : "?");
	px_err_clear(&err);
	uint64_t qsize = qemu_virtual_size(vhd, qfmt);
	ok(qsize > 0 && vsize == qsize,
	   "%s: virtual size %" PRIu64 " as qemu-img info says (%" PRIu64 ")", name, vsize, qsize);
	is_int(file_size(out), (long long)qsize, "output size is the virtual size");

	const char *conv[] = {"qemu-img", "convert", "-f", qfmt, "-O", "raw", vhd, ref, NULL};
	ok(run(conv) == 0, "%s: qemu-img convert -O raw", name);
	const char *cmp_raw[] = {"qemu-img", "compare", "-q", "-f", "raw",
	                         "-F",       "raw",     out,  ref,  NULL};
	ok(run(cmp_raw) == 0, "%s: qemu-img compare with qemu-img's raw output", name);
	const char *cmp_vhd[] = {"qemu-img", "compare", "-q", "-f", "raw",
	                         "-F",       qfmt,      out,  vhd,  NULL};
	ok(run(cmp_vhd) == 0, "%s: qemu-img compare with the image itself", name);
	long long mine = allocated(out), theirs = allocated(ref);
	if (!ok(mine >= 0 && mine <= theirs, "%s: allocated size %lld <= qemu-img's %lld", name,
	        mine, theirs))
		printf("#   pexi %lld blocks, qemu-img %lld blocks\n", mine, theirs);
}

/* ---- hostile images ---- */

struct image {
	uint8_t *b;
	size_t len;
};

static struct image load(const char *name)
{
	struct image im = {NULL, 0};
	_cleanup_free_ char *p = path_in(name);
	struct px_err *err = NULL;
	char *data = NULL;
	if (px_file_read(p, 256u << 20, &data, &im.len, &err) < 0) {
		printf("# %s\n", err->msg);
		px_err_free(err);
		return im;
	}
	im.b = (uint8_t *)data;
	return im;
}

static struct image copy_of(const struct image *base)
{
	struct image im = {xmalloc(base->len ? base->len : 1), base->len};
	memcpy(im.b, base->b, base->len);
	return im;
}

/* Both footers of a dynamic image, patched alike with checksums recomputed. */
static void patch_footers_be32(struct image *im, size_t field, uint32_t v)
{
	uint8_t *tail = im->b + im->len - 512;
	px_put_be32(im->b + field, v);
	px_put_be32(tail + field, v);
	put_checksum(im->b, 512, 64);
	put_checksum(tail, 512, 64);
}

static void patch_footers_be64(struct image *im, size_t field, uint64_t v)
{
	uint8_t *tail = im->b + im->len - 512;
	px_put_be64(im->b + field, v);
	px_put_be64(tail + field, v);
	put_checksum(im->b, 512, 64);
	put_checksum(tail, 512, 64);
}

static void patch_footers_bytes(struct image *im, size_t field, const void *v, size_t n)
{
	uint8_t *tail = im->b + im->len - 512;
	memcpy(im->b + field, v, n);
	memcpy(tail + field, v, n);
	put_checksum(im->b, 512, 64);
	put_checksum(tail, 512, 64);
}

static size_t hdr_at(const struct image *im)
{
	return (size_t)px_get_be64(im->b + 16);
}

static void patch_header_be32(struct image *im, size_t field, uint32_t v)
{
	uint8_t *h = im->b + hdr_at(im);
	px_put_be32(h + field, v);
	put_checksum(h, 1024, 36);
}

static void patch_header_be64(struct image *im, size_t field, uint64_t v)
{
	uint8_t *h = im->b + hdr_at(im);
	px_put_be64(h + field, v);
	put_checksum(h, 1024, 36);
}

static size_t bat_at(const struct image *im)
{
	return (size_t)px_get_be64(im->b + hdr_at(im) + 16);
}

/* Expects the image to be refused, by the converter and by the buffer checker, with
 * PX_EXIT_INPUT and a message containing 'want'; the previous output must survive. */
static void expect_refused(const char *name, struct image im, const char *want)
{
	struct px_err *err = NULL;
	_cleanup_free_ char *in = xasprintf("%s/bad-%s.vhd", dir, name);
	_cleanup_free_ char *out = xasprintf("%s/bad-%s.raw", dir, name);
	ok(write_file(in, im.b, im.len) == 0 && write_file(out, "previous", 8) == 0, "%s: written",
	   name);

	int r = px_vhd_convert(in, out, NULL, &err);
	ok(r < 0 && err && err->exit_code == PX_EXIT_INPUT, "%s: refused with PX_EXIT_INPUT", name);
	like(err ? err->msg : NULL, want, "convert: the reason is given");
	like(err ? err->msg : NULL, in, "convert: the file is named");
	px_err_clear(&err);
	_cleanup_free_ char *data = NULL;
	size_t len = 0;
	ok(px_file_read(out, 64, &data, &len, &err) == 0 && len == 8 &&
	           memcmp(data, "previous", 8) == 0,
	   "%s: the previous output is intact", name);
	px_err_clear(&err);

	r = px_vhd_check_buffer(im.b, im.len, &err);
	ok(r < 0 && err && err->exit_code == PX_EXIT_INPUT, "%s: buffer check refuses it", name);
	like(err ? err->msg : NULL, want, "check_buffer: the reason is given");
	px_err_clear(&err);
	free(im.b);
}

static void hostile_cases(const char *base_name)
{
	struct image base = load(base_name);
	if (!ok(base.b != NULL, "load %s", base_name))
		return;
	struct px_err *err = NULL;
	ok(px_vhd_check_buffer(base.b, base.len, &err) == 0,
	   "the intact image passes the buffer check");
	px_err_clear(&err);
	size_t hdr = hdr_at(&base), bat = bat_at(&base);
	uint32_t entries = px_get_be32(base.b + hdr + 28);
	uint32_t block = px_get_be32(base.b + hdr + 32);
	/* The first and second allocated entries, and the last entry (unallocated). */
	uint32_t a0 = UINT32_MAX, a1 = UINT32_MAX;
	for (uint32_t i = 0; i < entries; i++) {
		if (px_get_be32(base.b + bat + i * 4) == 0xFFFFFFFF)
			continue;
		if (a0 == UINT32_MAX)
			a0 = i;
		else if (a1 == UINT32_MAX)
			a1 = i;
	}
	uint32_t last = entries - 1;
	ok(a1 != UINT32_MAX && px_get_be32(base.b + bat + last * 4) == 0xFFFFFFFF,
	   "base image has two allocated blocks and an unallocated last one");
	char want[256];

	struct image im = copy_of(&base);
	im.b[im.len - 512] = 'x';
	snprintf(want, sizeof(want), "offset %zu: bad footer cookie (expected \"conectix\")",
	         base.len - 512);
	expect_refused("footer-cookie", im, want);

	im = copy_of(&base);
	im.b[im.len - 512 + 100] ^= 1;
	snprintf(want, sizeof(want), "offset %zu: bad footer checksum", base.len - 512 + 64);
	expect_refused("footer-checksum", im, want);

	im = copy_of(&base);
	im.b[0 + 100] ^= 1;
	expect_refused("copy-checksum", im, "offset 64: bad footer checksum");

	im = copy_of(&base);
	im.b[hdr + 900] ^= 1;
	snprintf(want, sizeof(want), "offset %zu: bad dynamic header checksum", hdr + 36);
	expect_refused("header-checksum", im, want);

	im = copy_of(&base);
	im.b[hdr] = 'X';
	put_checksum(im.b + hdr, 1024, 36);
	expect_refused("header-cookie", im, "bad dynamic header cookie (expected \"cxsparse\")");

	im = copy_of(&base);
	patch_footers_be32(&im, 12, 0x00020000);
	expect_refused("footer-version", im, "unsupported footer version 0x00020000");

	im = copy_of(&base);
	patch_header_be32(&im, 24, 0x00020000);
	expect_refused("header-version", im, "unsupported dynamic header version");

	/* Cut inside the last block: the end holds data, not a footer. */
	im = copy_of(&base);
	im.len -= 512 + block / 2;
	expect_refused("cut-in-block", im, "the file is truncated");

	im = copy_of(&base);
	im.len -= 200;
	snprintf(want, sizeof(want), "offset %zu: VHD footer truncated (312 of 512 bytes present)",
	         base.len - 512);
	expect_refused("cut-in-footer", im, want);

	im = copy_of(&base);
	px_put_be32(im.b + bat + last * 4, (uint32_t)(base.len / 512) + 8);
	snprintf(want, sizeof(want),
	         "BAT entry %" PRIu32 " at offset %zu points past the end of the file", last,
	         bat + last * 4);
	expect_refused("bat-past-eof", im, want);

	im = copy_of(&base);
	px_put_be32(im.b + bat + last * 4, (uint32_t)(base.len / 512) - 1);
	expect_refused("bat-into-footer", im, "points past the end of the file");

	im = copy_of(&base);
	memcpy(im.b + bat + last * 4, im.b + bat + a0 * 4, 4);
	snprintf(want, sizeof(want),
	         "BAT entries %" PRIu32 " and %" PRIu32
	         " (at offsets %zu and %zu) point to overlapping blocks",
	         a0, last, bat + a0 * 4, bat + last * 4);
	expect_refused("bat-same-block", im, want);

	im = copy_of(&base);
	px_put_be32(im.b + bat + last * 4, px_get_be32(base.b + bat + a1 * 4) + 8);
	expect_refused("bat-overlap", im, "point to overlapping blocks");

	im = copy_of(&base);
	px_put_be32(im.b + bat + last * 4, (uint32_t)(bat / 512));
	expect_refused("bat-onto-bat", im, "overlaps the BAT");

	im = copy_of(&base);
	patch_header_be64(&im, 16, (uint64_t)base.len * 2);
	expect_refused("bat-offset-past-eof", im, "runs past the end of the file");

	im = copy_of(&base);
	patch_header_be32(&im, 28, 1);
	expect_refused("too-few-entries", im,
	               "max table entries 1 inconsistent with the virtual size");

	im = copy_of(&base);
	patch_header_be32(&im, 28, 0xFFFFFFF0);
	expect_refused("absurd-entries", im, "max table entries 4294967280 is absurd");

	im = copy_of(&base);
	patch_header_be32(&im, 32, 3u << 20);
	expect_refused("block-size-3m", im, "absurd block size 3145728");

	im = copy_of(&base);
	patch_header_be32(&im, 32, 512u << 20);
	expect_refused("block-size-512m", im, "absurd block size 536870912");

	/* "qemu" images are sized by geometry: the largest geometry defers to current_size. */
	im = copy_of(&base);
	uint8_t geom[4] = {0xff, 0xff, 16, 255};
	patch_footers_bytes(&im, 56, geom, 4);
	patch_footers_be64(&im, 48, 4ull << 40);
	expect_refused("virtual-size-4t", im, "absurd virtual size 4398046511104");

	im = copy_of(&base);
	patch_footers_bytes(&im, 28, "win ", 4);
	patch_footers_be64(&im, 48, 0);
	expect_refused("virtual-size-0", im, "absurd virtual size 0");

	im = copy_of(&base);
	patch_footers_be32(&im, 60, 4);
	expect_refused("differencing", im, "differencing VHD (disk type 4) needs its parent");

	im = copy_of(&base);
	patch_footers_be32(&im, 60, 9);
	expect_refused("disk-type-9", im, "unknown VHD disk type 9");

	im = copy_of(&base);
	patch_footers_be64(&im, 16, (uint64_t)base.len);
	expect_refused("header-offset", im, "dynamic header offset");

	im = copy_of(&base);
	im.len = 0;
	expect_refused("empty", im, "file is 0 bytes, too small");

	im = copy_of(&base);
	im.len = 511;
	expect_refused("511-bytes", im, "file is 511 bytes, too small");

	free(base.b);
}

/* A fixed VHD whose footer claims more data than the file holds. */
static void fixed_hostile(const char *name)
{
	struct image base = load(name);
	if (!ok(base.b != NULL, "load %s", name))
		return;
	struct image im = copy_of(&base);
	uint8_t *f = im.b + im.len - 512;
	memcpy(f + 28, "win ", 4);
	px_put_be64(f + 48, (uint64_t)base.len);
	put_checksum(f, 512, 64);
	expect_refused("fixed-too-small", im, "less than its virtual size");

	im = copy_of(&base);
	im.len -= 100;
	expect_refused("fixed-cut-in-footer", im,
	               "VHD footer truncated (412 of 512 bytes present)");
	free(base.b);
}

/* Sector bitmaps: sectors whose bit is clear read as zeros even when the file holds data
 * there (qemu-img ignores the bitmap, so this is checked against the spec directly). */
static void bitmap_case(void)
{
	struct px_err *err = NULL;
	const struct crafted_block blocks[] = {{1, 0xA5, 0x5A}, {3, 0x00, 0x33}, {2, 0xFF, 0x11}};
	size_t len;
	_cleanup_free_ uint8_t *b = craft_dynamic(32768, 4096, "win ", blocks, 3, &len);
	_cleanup_free_ char *in = path_in("bitmap.vhd");
	_cleanup_free_ char *out = path_in("bitmap.raw");
	ok(write_file(in, b, len) == 0, "crafted small-block VHD written");
	ok(px_vhd_check_buffer(b, len, &err) == 0, "crafted VHD passes the buffer check");
	px_err_clear(&err);
	uint64_t vsize = 0;
	ok(px_vhd_convert(in, out, &vsize, &err) == 0 && vsize == 32768, "crafted VHD converts");
	px_err_clear(&err);
	_cleanup_free_ char *data = NULL;
	size_t n = 0;
	ok(px_file_read(out, 1 << 20, &data, &n, &err) == 0 && n == 32768, "output read back");
	px_err_clear(&err);
	int bad = 0;
	for (size_t s = 0; data && s < n / 512; s++) {
		size_t blk = s / 8, bit = s % 8;
		uint8_t want = 0;
		if (blk == 1 && (0xA5 & (0x80 >> bit)))
			want = 0x5A;
		if (blk == 2)
			want = 0x11;
		for (size_t i = 0; i < 512; i++)
			if ((uint8_t)data[s * 512 + i] != want)
				bad++;
	}
	is_int(bad, 0, "bytes read as the sector bitmaps say (bit set: data; clear: zero)");
	/* Blocks with full bitmaps must agree with qemu-img too (it honours small blocks). */
	const struct crafted_block full[] = {{0, 0xFF, 0x42}, {5, 0xFF, 0x24}};
	_cleanup_free_ uint8_t *b2 = craft_dynamic(12 * 4096 + 1536, 4096, "win ", full, 2, &len);
	_cleanup_free_ char *in2 = path_in("small-blocks.vhd");
	ok(write_file(in2, b2, len) == 0, "crafted VHD with an odd size written");
	check_convert("small-blocks.vhd", PX_IMAGE_VHD_DYNAMIC);
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

int main(void)
{
	if (!px_have_program("qemu-img")) {
		printf("# needs qemu-img, which is not installed\n");
		return 77;
	}
	const char *src = getenv("PEXI_SRC");
	ok(mkdtemp(dir) != NULL, "temp dir");
	_cleanup_free_ char *gen = xasprintf("%s/tests/fixtures/make-alpine-disk", src ? src : ".");
	const char *mk[] = {"sh", gen, dir, NULL};
	ok(run(mk) == 0, "fixture built");

	check_convert("alpine-fixed.vhd", PX_IMAGE_VHD_FIXED);
	check_convert("alpine-dynamic.vhd", PX_IMAGE_VHD_DYNAMIC);
	check_convert("alpine.raw", PX_IMAGE_RAW);

	/* Scattered data: partially filled blocks and holes. */
	_cleanup_free_ char *raw = path_in("scattered.raw");
	_cleanup_free_ char *dyn = path_in("scattered-dynamic.vhd");
	_cleanup_free_ char *fix = path_in("scattered-fixed.vhd");
	_cleanup_free_ char *qem2 = path_in("scattered-qem2.vhd");
	_cleanup_free_ char *empty = path_in("empty-dynamic.vhd");
	ok(make_scattered_raw(raw, 40u << 20) == 0, "scattered raw written");
	const char *c1[] = {"qemu-img", "convert",           "-f", "raw", "-O", "vpc",
	                    "-o",       "subformat=dynamic", raw,  dyn,   NULL};
	const char *c2[] = {"qemu-img", "convert",         "-f", "raw", "-O", "vpc",
	                    "-o",       "subformat=fixed", raw,  fix,   NULL};
	const char *c3[] = {"qemu-img", "convert", "-f", "raw",
	                    "-O",       "vpc",     "-o", "subformat=dynamic,force_size=on",
	                    raw,        qem2,      NULL};
	const char *c4[] = {"qemu-img",          "create", "-q",   "-f", "vpc", "-o",
	                    "subformat=dynamic", empty,    "100M", NULL};
	ok(run(c1) == 0 && run(c2) == 0 && run(c3) == 0 && run(c4) == 0, "qemu-img made the VHDs");
	check_convert("scattered-dynamic.vhd", PX_IMAGE_VHD_DYNAMIC);
	check_convert("scattered-fixed.vhd", PX_IMAGE_VHD_FIXED);
	check_convert("scattered-qem2.vhd", PX_IMAGE_VHD_DYNAMIC);
	check_convert("empty-dynamic.vhd", PX_IMAGE_VHD_DYNAMIC);
	_cleanup_free_ char *empty_out = path_in("empty-dynamic.vhd.pexi.raw");
	is_int(allocated(empty_out), 0, "an empty VHD gives a file with no data allocated");

	/* Already converted output passes through unchanged. */
	check_convert("scattered-dynamic.vhd.pexi.raw", PX_IMAGE_RAW);

	bitmap_case();
	hostile_cases("scattered-dynamic.vhd");
	fixed_hostile("scattered-fixed.vhd");

	struct px_err *err = NULL;
	_cleanup_free_ char *missing = path_in("missing.vhd");
	enum px_image_format fmt;
	ok(px_image_detect(missing, &fmt, &err) < 0, "a missing file is an error");
	like(err ? err->msg : NULL, "missing.vhd", "the error names it");
	px_err_clear(&err);

	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return done_testing();
}
