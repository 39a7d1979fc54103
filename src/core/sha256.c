#include <openssl/evp.h>

#include "sha256.h"

#include "common.h"
#include "file.h"

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

/* Feeds 'len' zero bytes: a hole costs no read and no kernel page zeroing. */
static void update_zeros(struct px_sha256 *h, uint64_t len)
{
	static const uint8_t zeros[1 << 16];
	while (len > 0) {
		size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);
		px_sha256_update(h, zeros, n);
		len -= n;
	}
}

/* Hashes [off, end) of fd with reads. */
static int update_range(struct px_sha256 *h, int fd, off_t off, off_t end, uint8_t *buf, size_t cap,
                        const char *path, struct px_err **err)
{
	while (off < end) {
		size_t want = (size_t)(end - off) < cap ? (size_t)(end - off) : cap;
		ssize_t n = pread(fd, buf, want, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return px_err_errno(err, errno, "cannot read '%s'", path);
		if (n == 0)
			return px_err_set(err, PX_EXIT_FAILURE, "'%s' shrank while being hashed",
			                  path);
		px_sha256_update(h, buf, (size_t)n);
		off += n;
	}
	return 0;
}

int px_sha256_file(const char *path, uint8_t out[PX_SHA256_LEN], struct px_err **err)
{
	struct stat st;
	_cleanup_close_ int fd = px_file_open(path, O_RDONLY, &st, err);
	if (fd < 0)
		return fd;
	enum { CHUNK = 1 << 20 };
	_cleanup_free_ uint8_t *buf = xmalloc(CHUNK);
	struct px_sha256 h;
	px_sha256_init(&h);
	int r = 0;
	if (!S_ISREG(st.st_mode)) {
		/* A pipe or device: read to the end. */
		for (;;) {
			ssize_t n = read(fd, buf, CHUNK);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				r = px_err_errno(err, errno, "cannot read '%s'", path);
				break;
			}
			if (n == 0)
				break;
			px_sha256_update(&h, buf, (size_t)n);
		}
	} else {
		/* Disk images are mostly holes: walk the data extents and hash the holes
		 * between them as zeros without reading them. */
		off_t off = 0;
		while (r == 0 && off < st.st_size) {
			off_t data, hole;
			/* Hashing never fails for want of extent information: read it all. */
			if (px_file_next_data(fd, off, st.st_size, path, &data, &hole, NULL) < 0) {
				data = off;
				hole = st.st_size;
			}
			update_zeros(&h, (uint64_t)(data - off));
			if (data >= st.st_size)
				break;
			r = update_range(&h, fd, data, hole, buf, CHUNK, path, err);
			off = hole;
		}
	}
	px_sha256_final(&h, out);
	return r;
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
	uint8_t d[PX_SHA256_LEN] = {0};
	if (px_sha256_file(path, d, err) < 0)
		return -1;
	px_sha256_hex(d, out);
	return 0;
}
