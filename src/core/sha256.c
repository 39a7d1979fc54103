#include <openssl/evp.h>

#include "sha256.h"

#include "common.h"

void px_sha256_init(struct px_sha256 *h)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		fprintf(stderr, "fatal: cannot initialise SHA-256\n");
		abort();
	}
	h->ctx = ctx;
}

void px_sha256_update(struct px_sha256 *h, const void *p, size_t n)
{
	EVP_DigestUpdate(h->ctx, p, n);
}

void px_sha256_final(struct px_sha256 *h, uint8_t out[PX_SHA256_LEN])
{
	unsigned int len = PX_SHA256_LEN;
	EVP_DigestFinal_ex(h->ctx, out, &len);
	EVP_MD_CTX_free(h->ctx);
	h->ctx = NULL;
}

void px_sha256_buf(const void *p, size_t n, uint8_t out[PX_SHA256_LEN])
{
	struct px_sha256 h;
	px_sha256_init(&h);
	px_sha256_update(&h, p, n);
	px_sha256_final(&h, out);
}

int px_sha256_file(const char *path, uint8_t out[PX_SHA256_LEN], struct px_err **err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return px_err_errno(err, errno, "cannot open '%s'", path);
	struct px_sha256 h;
	px_sha256_init(&h);
	static uint8_t chunk[1 << 20];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			px_sha256_final(&h, out);
			return px_err_errno(err, e, "cannot read '%s'", path);
		}
		if (n == 0)
			break;
		px_sha256_update(&h, chunk, (size_t)n);
	}
	px_sha256_final(&h, out);
	return 0;
}

void px_sha256_hex(const uint8_t digest[PX_SHA256_LEN], char out[PX_SHA256_HEX])
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < PX_SHA256_LEN; i++) {
		out[2 * i] = digits[digest[i] >> 4];
		out[2 * i + 1] = digits[digest[i] & 15];
	}
	out[64] = '\0';
}

int px_sha256_file_hex(const char *path, char out[PX_SHA256_HEX], struct px_err **err)
{
	uint8_t d[PX_SHA256_LEN];
	if (px_sha256_file(path, d, err) < 0)
		return -1;
	px_sha256_hex(d, out);
	return 0;
}
