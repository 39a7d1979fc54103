/* The VHD parser behind src/image/vhd.h, shared by the converter (over a file) and the
 * fuzzer (over bytes in memory): both read through one "read N bytes at offset" source, so
 * the fuzzer exercises exactly the code that converts real images.
 *
 * Layout facts (Microsoft's "Virtual Hard Disk Image Format Specification"), all big-endian:
 *   footer (512 bytes, at the end; dynamic disks also keep a copy at offset 0):
 *     0 cookie "conectix", 8 features, 12 version 0x00010000, 16 data offset (u64),
 *     24 timestamp, 28 creator app, 32 creator version, 36 creator OS, 40 original size,
 *     48 current size, 56 cylinders (u16), 58 heads, 59 sectors per track, 60 disk type
 *     (2 fixed, 3 dynamic, 4 differencing), 64 checksum, 68 unique id, 84 saved state
 *   dynamic header (1024 bytes, at the footer's data offset):
 *     0 cookie "cxsparse", 8 data offset, 16 table offset, 24 version 0x00010000,
 *     28 max table entries, 32 block size, 36 checksum, 40 parent id, 64 parent name...
 *   BAT: max-table-entries u32 sector numbers, 0xFFFFFFFF for a block not allocated; each
 *     allocated block is a sector bitmap (one bit per sector, most significant bit first,
 *     rounded up to whole sectors) followed by block-size bytes of data.
 *   Checksums are the one's complement of the byte sum with the checksum field zeroed. */
#ifndef PX_VHD_FORMAT_H
#define PX_VHD_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image/vhd.h"

struct px_err;

#define PX_VHD_SECTOR        512u
#define PX_VHD_FOOTER_SIZE   512u
#define PX_VHD_DYNHDR_SIZE   1024u
#define PX_VHD_MAX_SIZE      (2040ull << 30) /* the format's limit: 2040 GiB */
#define PX_VHD_MAX_BLOCK     (256u << 20)
#define PX_VHD_MAX_BAT_BYTES (32u << 20) /* 8 Mi entries: 16 TiB of 2 MiB blocks */
#define PX_VHD_CHUNK         (4u << 20)  /* the unit of reading: bounds memory per read */
#define PX_VHD_UNALLOCATED   0xFFFFFFFFu

/* Where the bytes come from: an open file or a buffer. */
struct px_vhd_src {
	const char *name; /* shown in messages */
	uint64_t size;
	int fd;             /* a file when >= 0 */
	const uint8_t *mem; /* else these bytes */
};

void px_vhd_src_file(struct px_vhd_src *s, const char *name, int fd, uint64_t size);
void px_vhd_src_mem(struct px_vhd_src *s, const char *name, const uint8_t *mem, size_t len);
/* Reads exactly n bytes at off; a range past the end fails as truncated. */
int px_vhd_src_read(const struct px_vhd_src *s, uint64_t off, void *buf, size_t n, const char *what,
                    struct px_err **err);

/* Decides what the source holds from its footer (see px_image_detect). */
int px_vhd_probe(const struct px_vhd_src *s, enum px_image_format *ret, struct px_err **err);

struct px_vhd {
	const struct px_vhd_src *src;
	enum px_image_format format;
	uint64_t virtual_size;
	uint64_t data_end;   /* offset of the trailing footer: no data may reach it */
	uint32_t chunk_size; /* bytes per px_vhd_read_chunk */
	/* Dynamic disks only. */
	uint32_t block_size;
	uint32_t bitmap_size; /* bytes, whole sectors */
	uint32_t n_entries;
	uint64_t bat_offset;
	uint32_t *bat; /* host byte order */
	uint8_t *bitmap;
	uint64_t bitmap_block; /* which block 'bitmap' holds, or UINT64_MAX */
};

/* Parses and validates every structure of a fixed or dynamic VHD. */
int px_vhd_open(struct px_vhd *v, const struct px_vhd_src *src, struct px_err **err);
void px_vhd_close(struct px_vhd *v);

static inline uint64_t px_vhd_chunk_count(const struct px_vhd *v)
{
	return v->chunk_size ? (v->virtual_size + v->chunk_size - 1) / v->chunk_size : 0;
}

/* Reads chunk i of the virtual disk into buf (chunk_size bytes). *ret_len is the number of
 * bytes of the chunk (the last one may be short). When the whole chunk is known to be zero
 * (a block not allocated, a bitmap with no bit set, a hole of the source file) *ret_hole is
 * set and buf is not written. Sectors whose bitmap bit is clear read as zeros. */
int px_vhd_read_chunk(struct px_vhd *v, uint64_t i, uint8_t *buf, size_t *ret_len, bool *ret_hole,
                      struct px_err **err);

/* Reads n bytes at off like px_vhd_src_read, but regions that are holes in the source file
 * are zero-filled without reading them; *ret_hole says the whole range was a hole. */
int px_vhd_src_read_sparse(const struct px_vhd_src *s, uint64_t off, uint8_t *buf, size_t n,
                           bool *ret_hole, struct px_err **err);

#endif
