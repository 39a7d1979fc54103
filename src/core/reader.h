/* A bounded reader over bytes we do not trust (VHD, GPT, frames, tar). Every read checks the
 * remaining length first and fails with the absolute offset and what was expected, so a
 * parser never needs its own bounds arithmetic and never casts a struct over disk bytes. */
#ifndef PX_READER_H
#define PX_READER_H

#include <stddef.h>
#include <stdint.h>

struct px_err;

struct px_reader {
	const uint8_t *buf;
	size_t len;
	size_t pos;
	uint64_t base;    /* absolute offset of buf[0] in its file, for error messages */
	const char *what; /* name of the thing being parsed, for error messages */
};

void px_reader_init(struct px_reader *r, const void *buf, size_t len, uint64_t base,
                    const char *what);
size_t px_reader_remaining(const struct px_reader *r);
/* Absolute offset of the next byte. */
uint64_t px_reader_offset(const struct px_reader *r);

int px_reader_u8(struct px_reader *r, uint8_t *ret, struct px_err **err);
int px_reader_be16(struct px_reader *r, uint16_t *ret, struct px_err **err);
int px_reader_be32(struct px_reader *r, uint32_t *ret, struct px_err **err);
int px_reader_be64(struct px_reader *r, uint64_t *ret, struct px_err **err);
int px_reader_le16(struct px_reader *r, uint16_t *ret, struct px_err **err);
int px_reader_le32(struct px_reader *r, uint32_t *ret, struct px_err **err);
int px_reader_le64(struct px_reader *r, uint64_t *ret, struct px_err **err);
/* Copies n bytes out. */
int px_reader_bytes(struct px_reader *r, void *out, size_t n, struct px_err **err);
/* Returns a pointer to the next n bytes and advances, or fails. */
int px_reader_span(struct px_reader *r, size_t n, const uint8_t **ret, struct px_err **err);
int px_reader_skip(struct px_reader *r, size_t n, struct px_err **err);
/* Moves to a position relative to buf[0]. */
int px_reader_seek(struct px_reader *r, size_t pos, struct px_err **err);

/* Fixed-position decoding for callers that have already checked the bounds. */
static inline uint16_t px_get_be16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}
static inline uint32_t px_get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t px_get_be64(const uint8_t *p)
{
	return (uint64_t)px_get_be32(p) << 32 | px_get_be32(p + 4);
}
static inline uint16_t px_get_le16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[1] << 8 | p[0]);
}
static inline uint32_t px_get_le32(const uint8_t *p)
{
	return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}
static inline uint64_t px_get_le64(const uint8_t *p)
{
	return (uint64_t)px_get_le32(p + 4) << 32 | px_get_le32(p);
}
static inline void px_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}
static inline void px_put_be64(uint8_t *p, uint64_t v)
{
	px_put_be32(p, (uint32_t)(v >> 32));
	px_put_be32(p + 4, (uint32_t)v);
}

#endif
