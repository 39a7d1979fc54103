/* Parsing and validating VHD footers, dynamic headers and block allocation tables, and
 * reading the virtual disk chunk by chunk. See vhd-format.h for the layout. */
#include "core/common.h"

#include "core/file.h"
#include "core/reader.h"
#include "image/vhd-format.h"

static const char FOOTER_COOKIE[8] = {'c', 'o', 'n', 'e', 'c', 't', 'i', 'x'};
static const char DYNHDR_COOKIE[8] = {'c', 'x', 's', 'p', 'a', 'r', 's', 'e'};
#define VHD_VERSION      0x00010000u
#define VHD_TYPE_FIXED   2u
#define VHD_TYPE_DYNAMIC 3u
#define VHD_TYPE_DIFF    4u
#define FOOTER_CKSUM_AT  64u
#define DYNHDR_CKSUM_AT  36u
/* 65535 cylinders x 16 heads x 255 sectors: the largest geometry, used by images whose
 * size does not fit CHS; their real size is the footer's current size. */
#define VHD_MAX_GEOMETRY (65535ull * 16 * 255)

void px_vhd_src_file(struct px_vhd_src *s, const char *name, int fd, uint64_t size)
{
	s->name = name;
	s->size = size;
	s->fd = fd;
	s->mem = NULL;
}

void px_vhd_src_mem(struct px_vhd_src *s, const char *name, const uint8_t *mem, size_t len)
{
	s->name = name;
	s->size = len;
	s->fd = -1;
	s->mem = mem;
}

static bool range_ok(const struct px_vhd_src *s, uint64_t off, uint64_t n)
{
	return off <= s->size && n <= s->size - off;
}

static int read_fd(const struct px_vhd_src *s, uint64_t off, uint8_t *buf, size_t n,
                   const char *what, struct px_err **err)
{
	while (n > 0) {
		ssize_t r = pread(s->fd, buf, n, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return px_err_errno(err, errno, "'%s': offset %" PRIu64 ": cannot read %s",
			                    s->name, off, what);
		if (r == 0)
			return px_err_set(err, PX_EXIT_INPUT,
			                  "'%s': offset %" PRIu64 ": file ends inside the %s",
			                  s->name, off, what);
		buf += r;
		off += (uint64_t)r;
		n -= (size_t)r;
	}
	return 0;
}

int px_vhd_src_read(const struct px_vhd_src *s, uint64_t off, void *buf, size_t n, const char *what,
                    struct px_err **err)
{
	if (!range_ok(s, off, n))
		return px_err_set(err, PX_EXIT_INPUT,
		                  "'%s': offset %" PRIu64 ": %s of %zu bytes runs past the end of "
		                  "the file (%" PRIu64 " bytes)",
		                  s->name, off, what, n, s->size);
	if (s->fd < 0) {
		if (n)
			memcpy(buf, s->mem + off, n);
		return 0;
	}
	return read_fd(s, off, buf, n, what, err);
}

int px_vhd_src_read_sparse(const struct px_vhd_src *s, uint64_t off, uint8_t *buf, size_t n,
                           bool *ret_hole, struct px_err **err)
{
	if (!range_ok(s, off, n))
		return px_err_set(err, PX_EXIT_INPUT,
		                  "'%s': offset %" PRIu64 ": data of %zu bytes runs past the end "
		                  "of the file (%" PRIu64 " bytes)",
		                  s->name, off, n, s->size);
	if (s->fd < 0) {
		memcpy(buf, s->mem + off, n);
		*ret_hole = false;
		return 0;
	}
	/* Ask the filesystem where the data is, so that holes of a sparse image file (qemu-img
	 * leaves many) cost neither a read nor a zero scan later. Where it cannot say, the
	 * rest of the range is read. */
	off_t end = (off_t)(off + n), pos = (off_t)off;
	*ret_hole = true;
	while (pos < end) {
		off_t data, hole;
		if (px_file_next_data(s->fd, pos, end, s->name, &data, &hole, NULL) < 0) {
			data = pos;
			hole = end;
		}
		if (data == end && *ret_hole)
			return 0; /* all a hole: buf is left alone */
		*ret_hole = false;
		memset(buf + (pos - (off_t)off), 0, (size_t)(data - pos));
		if (data == end)
			break;
		if (read_fd(s, (uint64_t)data, buf + (data - (off_t)off), (size_t)(hole - data),
		            "data", err) < 0)
			return -1;
		pos = hole;
	}
	return 0;
}

static uint32_t checksum(const uint8_t *p, size_t n, size_t skip_at)
{
	uint32_t sum = 0;
	for (size_t i = 0; i < n; i++)
		if (i < skip_at || i >= skip_at + 4)
			sum += p[i];
	return ~sum;
}

static bool footer_cookie_at(const struct px_vhd_src *s, uint64_t off)
{
	uint8_t c[8] = {0};
	if (!range_ok(s, off, sizeof(c)) ||
	    px_vhd_src_read(s, off, c, sizeof(c), "cookie", NULL) < 0)
		return false;
	return memcmp(c, FOOTER_COOKIE, sizeof(c)) == 0;
}

static int too_small(const struct px_vhd_src *s, struct px_err **err)
{
	return px_err_set(err, PX_EXIT_INPUT,
	                  "'%s': file is %" PRIu64 " bytes, too small for a disk image (one "
	                  "512-byte sector at least)",
	                  s->name, s->size);
}

/* Explains a missing footer cookie as well as the file allows. */
static int bad_footer_cookie(const struct px_vhd_src *s, struct px_err **err)
{
	uint64_t foot = s->size - PX_VHD_FOOTER_SIZE;
	uint64_t tail = s->size % PX_VHD_SECTOR;
	if (tail >= sizeof(FOOTER_COOKIE) && footer_cookie_at(s, s->size - tail))
		return px_err_set(err, PX_EXIT_INPUT,
		                  "'%s': offset %" PRIu64 ": VHD footer truncated (%" PRIu64
		                  " of 512 bytes present)",
		                  s->name, s->size - tail, tail);
	if (footer_cookie_at(s, 0))
		return px_err_set(
		        err, PX_EXIT_INPUT,
		        "'%s': offset %" PRIu64 ": bad footer cookie (expected "
		        "\"conectix\"), but the footer copy at offset 0 has one: the file "
		        "is truncated or its end overwritten",
		        s->name, foot);
	return px_err_set(err, PX_EXIT_INPUT,
	                  "'%s': offset %" PRIu64 ": bad footer cookie (expected \"conectix\")",
	                  s->name, foot);
}

/* The disk type of a footer whose cookie matched: fixed and dynamic are read, a
 * differencing or unknown type is refused with the offset of the field. */
static int footer_type(const struct px_vhd_src *s, uint64_t foot, const uint8_t *f,
                       enum px_image_format *ret, struct px_err **err)
{
	uint32_t type = px_get_be32(f + 60);
	if (type == VHD_TYPE_FIXED) {
		*ret = PX_IMAGE_VHD_FIXED;
		return 0;
	}
	if (type == VHD_TYPE_DYNAMIC) {
		*ret = PX_IMAGE_VHD_DYNAMIC;
		return 0;
	}
	if (type == VHD_TYPE_DIFF)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "'%s': offset %" PRIu64 ": differencing VHD (disk type 4) needs "
		                  "its parent disk, which pexi does not read: merge it into a "
		                  "standalone image first (qemu-img convert -O vpc)",
		                  s->name, foot + 60);
	return px_err_set(err, PX_EXIT_INPUT,
	                  "'%s': offset %" PRIu64 ": unknown VHD disk type %" PRIu32
	                  " (expected 2 fixed or 3 dynamic)",
	                  s->name, foot + 60, type);
}

int px_vhd_probe(const struct px_vhd_src *s, enum px_image_format *ret, struct px_err **err)
{
	if (s->size < PX_VHD_SECTOR)
		return too_small(s, err);
	uint64_t foot = s->size - PX_VHD_FOOTER_SIZE;
	uint8_t f[PX_VHD_FOOTER_SIZE] = {0};
	if (px_vhd_src_read(s, foot, f, sizeof(f), "footer", err) < 0)
		return -1;
	if (memcmp(f, FOOTER_COOKIE, sizeof(FOOTER_COOKIE)) != 0) {
		/* A dynamic disk starts with a copy of its footer, and a cut through the
		 * footer leaves its cookie on a sector boundary: either is a damaged VHD, to
		 * be refused with the reason, not a raw disk to pass through. */
		uint64_t tail = s->size % PX_VHD_SECTOR;
		if ((tail >= sizeof(FOOTER_COOKIE) && footer_cookie_at(s, s->size - tail)) ||
		    footer_cookie_at(s, 0))
			return bad_footer_cookie(s, err);
		*ret = PX_IMAGE_RAW;
		return 0;
	}
	return footer_type(s, foot, f, ret, err);
}

/* Checks one 512-byte footer (the trailing one or the copy at 0). */
static int check_footer(const struct px_vhd_src *s, uint64_t off, const uint8_t *f,
                        struct px_err **err)
{
	if (memcmp(f, FOOTER_COOKIE, sizeof(FOOTER_COOKIE)) != 0)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "'%s': offset %" PRIu64 ": bad footer cookie (expected "
		                  "\"conectix\")",
		                  s->name, off);
	uint32_t stored = px_get_be32(f + FOOTER_CKSUM_AT);
	uint32_t computed = checksum(f, PX_VHD_FOOTER_SIZE, FOOTER_CKSUM_AT);
	if (stored != computed)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "'%s': offset %" PRIu64
		                  ": bad footer checksum (stored 0x%08" PRIx32
		                  ", computed 0x%08" PRIx32 ")",
		                  s->name, off + FOOTER_CKSUM_AT, stored, computed);
	uint32_t version = px_get_be32(f + 12);
	if (version != VHD_VERSION)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "'%s': offset %" PRIu64
		                  ": unsupported footer version 0x%08" PRIx32
		                  " (expected 0x00010000)",
		                  s->name, off + 12, version);
	return 0;
}

/* The size a guest sees, decided as qemu-img decides it (see vhd.h). */
static uint64_t footer_virtual_size(const uint8_t *f)
{
	uint64_t chs = (uint64_t)px_get_be16(f + 56) * f[58] * f[59];
	bool use_chs = memcmp(f + 28, "vpc ", 4) == 0 || memcmp(f + 28, "qemu", 4) == 0;
	if (!use_chs || chs == VHD_MAX_GEOMETRY)
		return px_get_be64(f + 48) / PX_VHD_SECTOR * PX_VHD_SECTOR;
	return chs * PX_VHD_SECTOR;
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

struct bat_ref {
	uint64_t start;
	uint32_t index;
};

static int by_start(const void *a, const void *b)
{
	const struct bat_ref *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

/* Every allocated block must lie in the file before the trailing footer, clear of the
 * footer copy, the dynamic header and the BAT, and clear of every other block. */
static int check_bat(struct px_vhd *v, uint64_t hdr_off, struct px_err **err)
{
	const struct px_vhd_src *s = v->src;
	uint64_t span = (uint64_t)v->bitmap_size + v->block_size;
	uint64_t bat_len = (uint64_t)v->n_entries * 4;
	size_t allocated = 0;
	for (uint32_t i = 0; i < v->n_entries; i++)
		allocated += v->bat[i] != PX_VHD_UNALLOCATED;
	_cleanup_free_ struct bat_ref *refs =
	        xreallocarray(NULL, allocated ? allocated : 1, sizeof(*refs));
	size_t n = 0;
	for (uint32_t i = 0; i < v->n_entries; i++) {
		if (v->bat[i] == PX_VHD_UNALLOCATED)
			continue;
		uint64_t at = v->bat_offset + (uint64_t)i * 4;
		uint64_t start = (uint64_t)v->bat[i] * PX_VHD_SECTOR;
		if (start > v->data_end || span > v->data_end - start)
			return px_err_set(
			        err, PX_EXIT_INPUT,
			        "'%s': BAT entry %" PRIu32 " at offset %" PRIu64
			        " points past the end of the file (block at offset %" PRIu64
			        ", %" PRIu64 " bytes, data ends at %" PRIu64 ")",
			        s->name, i, at, start, span, v->data_end);
		const char *what = NULL;
		if (overlaps(start, span, 0, PX_VHD_FOOTER_SIZE))
			what = "the footer copy";
		else if (overlaps(start, span, hdr_off, PX_VHD_DYNHDR_SIZE))
			what = "the dynamic header";
		else if (overlaps(start, span, v->bat_offset, bat_len))
			what = "the BAT";
		if (what)
			return px_err_set(err, PX_EXIT_INPUT,
			                  "'%s': BAT entry %" PRIu32 " at offset %" PRIu64
			                  " points to a block at offset %" PRIu64
			                  " that overlaps %s",
			                  s->name, i, at, start, what);
		refs[n].start = start;
		refs[n].index = i;
		n++;
	}
	qsort(refs, n, sizeof(*refs), by_start);
	for (size_t k = 1; k < n; k++) {
		if (refs[k].start < refs[k - 1].start + span) {
			uint32_t a = refs[k - 1].index, b = refs[k].index;
			if (a > b) {
				uint32_t t = a;
				a = b;
				b = t;
			}
			return px_err_set(
			        err, PX_EXIT_INPUT,
			        "'%s': BAT entries %" PRIu32 " and %" PRIu32 " (at offsets %" PRIu64
			        " and %" PRIu64 ") point to overlapping blocks at offsets %" PRIu64
			        " and %" PRIu64,
			        s->name, a, b, v->bat_offset + (uint64_t)a * 4,
			        v->bat_offset + (uint64_t)b * 4, refs[k - 1].start, refs[k].start);
		}
	}
	return 0;
}

static int open_dynamic(struct px_vhd *v, const uint8_t *footer, struct px_err **err)
{
	const struct px_vhd_src *s = v->src;
	uint64_t foot = v->data_end;

	/* The copy of the footer at offset 0 must be sound too: tools read either. */
	uint8_t copy[PX_VHD_FOOTER_SIZE] = {0};
	if (foot < PX_VHD_FOOTER_SIZE + PX_VHD_DYNHDR_SIZE)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "'%s': file is %" PRIu64 " bytes, too small for a dynamic VHD "
		                  "(footer copy, dynamic header and footer take 2048)",
		                  s->name, s->size);
	if (px_vhd_src_read(s, 0, copy, sizeof(copy), "footer copy", err) < 0 ||
	    check_footer(s, 0, copy, err) < 0)
		return -1;
	if (px_get_be32(copy + 60) != VHD_TYPE_DYNAMIC)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "'%s': offset 60: the footer copy says disk type %" PRIu32
		                  ", the footer at offset %" PRIu64 " says 3 (dynamic)",
		                  s->name, px_get_be32(copy + 60), foot);

	uint64_t hdr_off = px_get_be64(footer + 16);
	if (hdr_off < PX_VHD_FOOTER_SIZE || hdr_off > foot - PX_VHD_DYNHDR_SIZE)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "'%s': offset %" PRIu64 ": dynamic header offset %" PRIu64
		                  " is outside the file's metadata area (512 to %" PRIu64 ")",
		                  s->name, foot + 16, hdr_off, foot - PX_VHD_DYNHDR_SIZE);
	uint8_t h[PX_VHD_DYNHDR_SIZE] = {0};
	if (px_vhd_src_read(s, hdr_off, h, sizeof(h), "dynamic header", err) < 0)
		return -1;
	struct px_reader r;
	px_reader_init(&r, h, sizeof(h), hdr_off, s->name);
	if (memcmp(h, DYNHDR_COOKIE, sizeof(DYNHDR_COOKIE)) != 0)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "'%s': offset %" PRIu64 ": bad dynamic header cookie (expected "
		                  "\"cxsparse\")",
		                  s->name, hdr_off);
	uint32_t stored = px_get_be32(h + DYNHDR_CKSUM_AT);
	uint32_t computed = checksum(h, sizeof(h), DYNHDR_CKSUM_AT);
	if (stored != computed)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "'%s': offset %" PRIu64 ": bad dynamic header checksum (stored "
		                  "0x%08" PRIx32 ", computed 0x%08" PRIx32 ")",
		                  s->name, hdr_off + DYNHDR_CKSUM_AT, stored, computed);
	uint64_t table_off;
	uint32_t version, entries, block_size;
	if (px_reader_seek(&r, 16, err) < 0 || px_reader_be64(&r, &table_off, err) < 0 ||
	    px_reader_be32(&r, &version, err) < 0 || px_reader_be32(&r, &entries, err) < 0 ||
	    px_reader_be32(&r, &block_size, err) < 0)
		return -1;
	if (version != VHD_VERSION)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "'%s': offset %" PRIu64 ": unsupported dynamic header version "
		                  "0x%08" PRIx32 " (expected 0x00010000)",
		                  s->name, hdr_off + 24, version);
	if (block_size < PX_VHD_SECTOR || block_size > PX_VHD_MAX_BLOCK ||
	    (block_size & (block_size - 1)) != 0)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "'%s': offset %" PRIu64 ": absurd block size %" PRIu32
		                  " (expected a power of two from 512 bytes to 256 MiB)",
		                  s->name, hdr_off + 32, block_size);
	uint64_t needed = (v->virtual_size + block_size - 1) / block_size;
	if (entries < needed)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "'%s': offset %" PRIu64 ": max table entries %" PRIu32
		                  " inconsistent with the virtual size %" PRIu64 " (needs %" PRIu64
		                  " blocks of %" PRIu32 " bytes)",
		                  s->name, hdr_off + 28, entries, v->virtual_size, needed,
		                  block_size);
	uint64_t bat_len = (uint64_t)entries * 4;
	if (entries > PX_VHD_MAX_SIZE / block_size || bat_len > PX_VHD_MAX_BAT_BYTES)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "'%s': offset %" PRIu64 ": max table entries %" PRIu32
		                  " is absurd (a BAT of %" PRIu64 " bytes; pexi reads at most %u "
		                  "MiB and 2040 GiB of disk)",
		                  s->name, hdr_off + 28, entries, bat_len,
		                  PX_VHD_MAX_BAT_BYTES >> 20);
	if (table_off > foot || bat_len > foot - table_off)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "'%s': offset %" PRIu64 ": BAT at offset %" PRIu64 " (%" PRIu64
		                  " bytes) runs past the end of the file",
		                  s->name, hdr_off + 16, table_off, bat_len);
	if (overlaps(table_off, bat_len, 0, PX_VHD_FOOTER_SIZE) ||
	    overlaps(table_off, bat_len, hdr_off, PX_VHD_DYNHDR_SIZE))
		return px_err_set(err, PX_EXIT_INPUT,
		                  "'%s': offset %" PRIu64 ": BAT at offset %" PRIu64 " (%" PRIu64
		                  " bytes) overlaps the footer copy or the dynamic header",
		                  s->name, hdr_off + 16, table_off, bat_len);

	v->block_size = block_size;
	/* One bit per sector, rounded up to whole sectors. */
	uint32_t bits_bytes = (block_size / PX_VHD_SECTOR + 7) / 8;
	v->bitmap_size = (bits_bytes + PX_VHD_SECTOR - 1) / PX_VHD_SECTOR * PX_VHD_SECTOR;
	v->n_entries = entries;
	v->bat_offset = table_off;
	v->chunk_size = block_size < PX_VHD_CHUNK ? block_size : PX_VHD_CHUNK;

	_cleanup_free_ uint8_t *raw = xmalloc(bat_len ? bat_len : 1);
	if (px_vhd_src_read(s, table_off, raw, bat_len, "BAT", err) < 0)
		return -1;
	v->bat = xreallocarray(NULL, entries ? entries : 1, sizeof(uint32_t));
	for (uint32_t i = 0; i < entries; i++)
		v->bat[i] = px_get_be32(raw + (size_t)i * 4);
	v->bitmap = xmalloc(v->bitmap_size);
	v->bitmap_block = UINT64_MAX;
	return check_bat(v, hdr_off, err);
}

int px_vhd_open(struct px_vhd *v, const struct px_vhd_src *src, struct px_err **err)
{
	memset(v, 0, sizeof(*v));
	v->src = src;
	v->bitmap_block = UINT64_MAX;
	if (src->size < PX_VHD_FOOTER_SIZE)
		return too_small(src, err);
	uint64_t foot = src->size - PX_VHD_FOOTER_SIZE;
	uint8_t f[PX_VHD_FOOTER_SIZE] = {0};
	if (px_vhd_src_read(src, foot, f, sizeof(f), "footer", err) < 0)
		return -1;
	if (memcmp(f, FOOTER_COOKIE, sizeof(FOOTER_COOKIE)) != 0)
		return bad_footer_cookie(src, err);
	if (check_footer(src, foot, f, err) < 0)
		return -1;
	enum px_image_format fmt = PX_IMAGE_RAW;
	if (footer_type(src, foot, f, &fmt, err) < 0)
		return -1;
	v->format = fmt;
	v->data_end = foot;
	v->virtual_size = footer_virtual_size(f);
	if (v->virtual_size == 0 || v->virtual_size > PX_VHD_MAX_SIZE)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "'%s': offset %" PRIu64 ": absurd virtual size %" PRIu64
		                  " (expected 512 bytes to 2040 GiB)",
		                  src->name, foot + 48, v->virtual_size);
	if (fmt == PX_IMAGE_VHD_FIXED) {
		if (v->virtual_size > foot)
			return px_err_set(err, PX_EXIT_INPUT,
			                  "'%s': fixed VHD holds %" PRIu64
			                  " bytes before its footer, "
			                  "less than its virtual size %" PRIu64 ": the file is "
			                  "truncated",
			                  src->name, foot, v->virtual_size);
		v->chunk_size = PX_VHD_CHUNK;
		return 0;
	}
	if (open_dynamic(v, f, err) < 0) {
		px_vhd_close(v);
		return -1;
	}
	return 0;
}

void px_vhd_close(struct px_vhd *v)
{
	free(v->bat);
	free(v->bitmap);
	v->bat = NULL;
	v->bitmap = NULL;
}

static bool all_bytes(const uint8_t *p, size_t n, uint8_t value)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != value)
			return false;
	return true;
}

int px_vhd_read_chunk(struct px_vhd *v, uint64_t i, uint8_t *buf, size_t *ret_len, bool *ret_hole,
                      struct px_err **err)
{
	uint64_t voff = i * v->chunk_size;
	if (voff >= v->virtual_size)
		return px_err_set(err, PX_EXIT_FAILURE, "'%s': chunk %" PRIu64 " is past the end",
		                  v->src->name, i);
	uint64_t left = v->virtual_size - voff;
	size_t len = left < v->chunk_size ? (size_t)left : v->chunk_size;
	*ret_len = len;

	if (v->format == PX_IMAGE_VHD_FIXED)
		return px_vhd_src_read_sparse(v->src, voff, buf, len, ret_hole, err);

	uint64_t block = voff / v->block_size;
	uint32_t in_block = (uint32_t)(voff % v->block_size);
	if (block >= v->n_entries || v->bat[block] == PX_VHD_UNALLOCATED) {
		*ret_hole = true;
		return 0;
	}
	uint64_t start = (uint64_t)v->bat[block] * PX_VHD_SECTOR;
	if (v->bitmap_block != block) {
		if (px_vhd_src_read(v->src, start, v->bitmap, v->bitmap_size, "sector bitmap",
		                    err) < 0)
			return -1;
		v->bitmap_block = block;
	}
	/* The bits of this chunk's sectors: chunks are whole sectors and start on a byte of
	 * the bitmap unless the block is smaller than 8 sectors (then one chunk, bit 0). */
	uint32_t first = in_block / PX_VHD_SECTOR;
	uint32_t sectors = (uint32_t)((len + PX_VHD_SECTOR - 1) / PX_VHD_SECTOR);
	const uint8_t *bits = v->bitmap + first / 8;
	size_t whole = sectors / 8;
	if (first % 8 == 0 && sectors % 8 == 0 && all_bytes(bits, whole, 0x00)) {
		*ret_hole = true;
		return 0;
	}
	if (px_vhd_src_read_sparse(v->src, start + v->bitmap_size + in_block, buf, len, ret_hole,
	                           err) < 0)
		return -1;
	if (*ret_hole || (first % 8 == 0 && sectors % 8 == 0 && all_bytes(bits, whole, 0xff)))
		return 0;
	/* Sectors the bitmap marks absent read as zeros, whatever the file holds there. */
	for (uint32_t k = 0; k < sectors; k++) {
		uint32_t bit = first + k;
		if (!(v->bitmap[bit / 8] & (0x80u >> (bit % 8)))) {
			size_t at = (size_t)k * PX_VHD_SECTOR;
			size_t n = len - at < PX_VHD_SECTOR ? len - at : PX_VHD_SECTOR;
			memset(buf + at, 0, n);
		}
	}
	return 0;
}

int px_vhd_check_buffer(const uint8_t *buf, size_t len, struct px_err **err)
{
	struct px_vhd_src src;
	px_vhd_src_mem(&src, "buffer", buf, len);
	struct px_vhd v;
	if (px_vhd_open(&v, &src, err) < 0)
		return -1;
	_cleanup_free_ uint8_t *chunk = xmalloc(v.chunk_size);
	uint64_t n = px_vhd_chunk_count(&v);
	int r = 0;
	for (uint64_t i = 0; i < n && r == 0; i++) {
		size_t got;
		bool hole;
		r = px_vhd_read_chunk(&v, i, chunk, &got, &hole, err);
	}
	px_vhd_close(&v);
	return r;
}
