/* SHA-256 through OpenSSL's libcrypto, streaming or one-shot, and its hex form. */
#ifndef PX_SHA256_H
#define PX_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct px_err;

#define PX_SHA256_LEN 32
#define PX_SHA256_HEX 65 /* 64 digits and a NUL */

struct px_sha256 {
	void *ctx; /* EVP_MD_CTX, opaque so callers need not include OpenSSL headers */
};

void px_sha256_init(struct px_sha256 *h);
void px_sha256_update(struct px_sha256 *h, const void *p, size_t n);
/* Writes the digest and releases the context. */
void px_sha256_final(struct px_sha256 *h, uint8_t out[PX_SHA256_LEN]);

void px_sha256_buf(const void *p, size_t n, uint8_t out[PX_SHA256_LEN]);
int px_sha256_file(const char *path, uint8_t out[PX_SHA256_LEN], struct px_err **err);
/* Lowercase hex of a digest into a 65-byte buffer. */
void px_sha256_hex(const uint8_t digest[PX_SHA256_LEN], char out[PX_SHA256_HEX]);
/* Convenience: the hex digest of a file into out. */
int px_sha256_file_hex(const char *path, char out[PX_SHA256_HEX], struct px_err **err);

#endif
