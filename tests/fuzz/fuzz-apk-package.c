/* libFuzzer target for the .apk reader: .PKGINFO parsing, script extraction, the checks
 * against an index checksum, and the walk over the data tar with its path checks. It must
 * never crash, hang or leak, and every refusal must say why.
 *
 * Random bytes rarely survive gzip, so an input whose first byte is 'T' is taken as two
 * uncompressed tars (a 2-byte big-endian length, the control tar, then the data tar) and
 * compressed here first; any other input is read as an .apk as it is. */
#include <zlib.h>

#include "core/common.h"

#include "apk/package.h"
#include "core/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void gzip_into(struct px_buf *out, const uint8_t *p, size_t n)
{
	z_stream zs = {0};
	uint8_t chunk[16384];
	if (deflateInit2(&zs, 1, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		abort();
	zs.next_in = (Bytef *)(uintptr_t)p;
	zs.avail_in = (uInt)n;
	int r;
	do {
		zs.next_out = chunk;
		zs.avail_out = sizeof(chunk);
		r = deflate(&zs, Z_FINISH);
		px_buf_append(out, chunk, sizeof(chunk) - zs.avail_out, NULL);
	} while (r == Z_OK);
	deflateEnd(&zs);
}

static int count(void *ctx, const struct px_apk_entry *e, struct px_err **err)
{
	(void)err;
	size_t *n = ctx;
	/* Touch everything the installer would use. */
	if (!e->path || !*e->path || strstr(e->path, "..") == e->path)
		abort();
	if (e->link)
		(void)strlen(e->link);
	for (size_t i = 0; i < e->n_xattrs; i++)
		(void)strlen(e->xattrs[i].name);
	(*n)++;
	return 0;
}

static void check(const uint8_t *p, size_t n)
{
	struct px_err *err = NULL;
	struct px_apk_package *pkg = NULL;
	if (px_apk_package_read(p, n, "fuzz.apk", &pkg, &err) < 0) {
		if (!err || !err->msg || !err->msg[0])
			abort();
		px_err_free(err);
		return;
	}
	size_t entries = 0;
	if (px_apk_package_verify(pkg, "Q1AAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", &err) < 0) {
		if (!err || !err->msg || !err->msg[0])
			abort();
		px_err_clear(&err);
	}
	if (px_apk_package_foreach(pkg, 1u << 20, count, &entries, &err) < 0) {
		if (!err || !err->msg || !err->msg[0])
			abort();
		px_err_clear(&err);
	}
	px_apk_package_free(pkg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size >= 3 && data[0] == 'T') {
		size_t clen = (size_t)data[1] << 8 | data[2];
		if (clen > size - 3)
			clen = size - 3;
		struct px_buf b = PX_BUF_INIT;
		gzip_into(&b, data + 3, clen);
		gzip_into(&b, data + 3 + clen, size - 3 - clen);
		check((const uint8_t *)b.data, b.len);
		px_buf_free(&b);
		return 0;
	}
	check(data, size);
	return 0;
}
