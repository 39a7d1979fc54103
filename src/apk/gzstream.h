/* Concatenated gzip members, as apk writes them: an APKINDEX.tar.gz is a signature member
 * followed by the control member; a .apk adds the data member. Signatures and the index
 * C: checksum cover the exact compressed bytes of one member, so the reader reports each
 * member's byte range in the original buffer rather than only the inflated stream. */
#ifndef PX_APK_GZSTREAM_H
#define PX_APK_GZSTREAM_H

#include <stddef.h>
#include <stdint.h>

struct px_err;

/* Caps on what one member may inflate to, so that a gzip bomb cannot exhaust memory. */
#define PX_GZ_MAX_MEMBERS 16
#define PX_GZ_DEFAULT_MAX (UINT64_C(256) << 20)

/* One gzip member: its compressed bytes are buf[offset, offset + len). */
struct px_gz_member {
	size_t offset;
	size_t len;
	uint64_t inflated; /* size of its decompressed contents */
};

/* Splits buf into its gzip members (at most PX_GZ_MAX_MEMBERS), inflating each to find its
 * exact end (inflated output is discarded; no member may inflate past max_inflated, 0 for
 * PX_GZ_DEFAULT_MAX). Bytes after the last member that do not start a gzip member, a
 * truncated member or a corrupt one are PX_EXIT_INPUT errors naming 'what' and the offset.
 * *ret (caller frees) and *ret_n are written on success. */
int px_gzstream_split(const void *buf, size_t len, const char *what, uint64_t max_inflated,
                      struct px_gz_member **ret, size_t *ret_n, struct px_err **err);

/* Inflates one member (m from px_gzstream_split over the same buf) into a new buffer
 * (caller frees, NUL-terminated for convenience; *ret_len excludes the NUL). */
int px_gzstream_inflate(const void *buf, const struct px_gz_member *m, const char *what,
                        uint64_t max_inflated, uint8_t **ret, size_t *ret_len, struct px_err **err);

#endif
