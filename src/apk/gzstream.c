#include <zlib.h>

#include "core/common.h"

#include "apk/gzstream.h"

/* Inflates one gzip member starting at buf[off]. Output goes to 'out' (a growing buffer)
 * when ret_out is not NULL, else to a scratch block that is thrown away. Reports the
 * compressed length consumed and the inflated size. */
static int inflate_member(const uint8_t *buf, size_t len, size_t off, const char *what,
                          uint64_t max, size_t *ret_clen, uint64_t *ret_total, uint8_t **ret_out,
                          struct px_err **err)
{
	z_stream zs = {0};
	uint8_t scratch[16384];
	_cleanup_free_ uint8_t *out = NULL;
	size_t cap = 0;
	uint64_t total = 0;
	int r;

	if (len - off > UINT_MAX)
		return px_err_set(err, PX_EXIT_INPUT, "'%s': larger than 4 GiB", what);

	/* 16 + MAX_WBITS: a gzip wrapper only, so inflate stops at the member's end and
	 * does not go on into the next member the way gzread would. */
	if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
		return px_err_set(err, PX_EXIT_FAILURE, "cannot initialise zlib");
	zs.next_in = (Bytef *)(uintptr_t)(buf + off);
	zs.avail_in = (uInt)(len - off);
	for (;;) {
		uint8_t *dst = scratch;
		size_t room = sizeof(scratch);
		if (ret_out) {
			if (cap - total < 16384) {
				cap = cap ? cap * 2 : 65536;
				out = xrealloc(out, cap + 1);
			}
			dst = out + total;
			room = cap - total;
		}
		zs.next_out = dst;
		zs.avail_out = room > UINT_MAX ? UINT_MAX : (uInt)room;
		r = inflate(&zs, Z_NO_FLUSH);
		total += (size_t)(zs.next_out - dst);
		if (total > max) {
			inflateEnd(&zs);
			return px_err_set(err, PX_EXIT_INPUT,
			                  "'%s': gzip member at offset %zu inflates past %" PRIu64
			                  " bytes",
			                  what, off, max);
		}
		if (r == Z_STREAM_END)
			break;
		if (r == Z_OK)
			continue;
		/* No progress is possible with output room left: the input ran out. */
		if (r == Z_BUF_ERROR) {
			inflateEnd(&zs);
			return px_err_set(err, PX_EXIT_INPUT,
			                  "'%s': gzip member at offset %zu is truncated", what,
			                  off);
		}
		const char *why = zs.msg ? zs.msg : "corrupt data";
		_cleanup_free_ char *msg = xstrdup(why);
		inflateEnd(&zs);
		return px_err_set(err, PX_EXIT_INPUT, "'%s': gzip member at offset %zu: %s", what,
		                  off, msg);
	}
	*ret_clen = (size_t)((const uint8_t *)zs.next_in - (buf + off));
	inflateEnd(&zs);
	*ret_total = total;
	if (ret_out) {
		if (!out)
			out = xmalloc(1);
		out[total] = 0;
		*ret_out = steal_ptr(&out);
	}
	return 0;
}

int px_gzstream_split(const void *buf, size_t len, const char *what, uint64_t max_inflated,
                      struct px_gz_member **ret, size_t *ret_n, struct px_err **err)
{
	const uint8_t *p = buf;
	_cleanup_free_ struct px_gz_member *v = NULL;
	size_t n = 0, off = 0;

	if (!max_inflated)
		max_inflated = PX_GZ_DEFAULT_MAX;
	if (len == 0)
		return px_err_set(err, PX_EXIT_INPUT, "'%s': empty file, expected gzip data", what);
	while (off < len) {
		if (len - off < 2 || p[off] != 0x1f || p[off + 1] != 0x8b) {
			if (n == 0)
				return px_err_set(err, PX_EXIT_INPUT, "'%s' is not gzip data",
				                  what);
			return px_err_set(err, PX_EXIT_INPUT,
			                  "'%s': %zu bytes of trailing garbage at offset %zu", what,
			                  len - off, off);
		}
		if (n == PX_GZ_MAX_MEMBERS)
			return px_err_set(err, PX_EXIT_INPUT, "'%s': more than %d gzip members",
			                  what, PX_GZ_MAX_MEMBERS);
		size_t clen;
		uint64_t total;
		if (inflate_member(p, len, off, what, max_inflated, &clen, &total, NULL, err) < 0)
			return -1;
		v = xreallocarray(v, n + 1, sizeof(*v));
		v[n++] = (struct px_gz_member){.offset = off, .len = clen, .inflated = total};
		off += clen;
	}
	*ret = steal_ptr(&v);
	*ret_n = n;
	return 0;
}

int px_gzstream_inflate(const void *buf, const struct px_gz_member *m, const char *what,
                        uint64_t max_inflated, uint8_t **ret, size_t *ret_len, struct px_err **err)
{
	size_t clen = 0;
	uint64_t total = 0;
	uint8_t *out = NULL;

	if (!max_inflated)
		max_inflated = PX_GZ_DEFAULT_MAX;
	if (inflate_member(buf, m->offset + m->len, m->offset, what, max_inflated, &clen, &total,
	                   &out, err) < 0)
		return -1;
	*ret = out;
	*ret_len = (size_t)total;
	return 0;
}
