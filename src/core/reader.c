#include "reader.h"

#include "common.h"

void px_reader_init(struct px_reader *r, const void *buf, size_t len, uint64_t base,
                    const char *what)
{
	r->buf = buf;
	r->len = len;
	r->pos = 0;
	r->base = base;
	r->what = what ? what : "data";
}

size_t px_reader_remaining(const struct px_reader *r)
{
	return r->len - r->pos;
}

uint64_t px_reader_offset(const struct px_reader *r)
{
	return r->base + r->pos;
}

static int need(struct px_reader *r, size_t n, struct px_err **err)
{
	if (n <= r->len - r->pos)
		return 0;
	return px_err_set(err, PX_EXIT_INPUT,
	                  "%s: truncated at offset %" PRIu64 ": need %zu bytes, %zu remain",
	                  r->what, px_reader_offset(r), n, r->len - r->pos);
}

int px_reader_span(struct px_reader *r, size_t n, const uint8_t **ret, struct px_err **err)
{
	if (need(r, n, err) < 0)
		return -1;
	*ret = r->buf + r->pos;
	r->pos += n;
	return 0;
}

int px_reader_bytes(struct px_reader *r, void *out, size_t n, struct px_err **err)
{
	const uint8_t *p;
	if (px_reader_span(r, n, &p, err) < 0)
		return -1;
	if (n)
		memcpy(out, p, n);
	return 0;
}

int px_reader_skip(struct px_reader *r, size_t n, struct px_err **err)
{
	const uint8_t *p;
	return px_reader_span(r, n, &p, err);
}

int px_reader_seek(struct px_reader *r, size_t pos, struct px_err **err)
{
	if (pos > r->len)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "%s: offset %" PRIu64 " is past the end (%zu bytes)", r->what,
		                  r->base + pos, r->len);
	r->pos = pos;
	return 0;
}

/* One reader per width and byte order, generated so each stays a two-line function. */
#define PX_READER_INT(name, type, width, decode)                                  \
	int px_reader_##name(struct px_reader *r, type *ret, struct px_err **err) \
	{                                                                         \
		const uint8_t *p;                                                 \
		if (px_reader_span(r, width, &p, err) < 0)                        \
			return -1;                                                \
		*ret = decode(p);                                                 \
		return 0;                                                         \
	}

static inline uint8_t get_u8(const uint8_t *p)
{
	return p[0];
}

PX_READER_INT(u8, uint8_t, 1, get_u8)
PX_READER_INT(be16, uint16_t, 2, px_get_be16)
PX_READER_INT(be32, uint32_t, 4, px_get_be32)
PX_READER_INT(be64, uint64_t, 8, px_get_be64)
PX_READER_INT(le16, uint16_t, 2, px_get_le16)
PX_READER_INT(le32, uint32_t, 4, px_get_le32)
PX_READER_INT(le64, uint64_t, 8, px_get_le64)
