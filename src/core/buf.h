/* A growable byte buffer with a hard cap, for text we build (JSON, YAML, config files) and
 * for bytes read from places we do not trust. Always NUL-terminated for convenience. */
#ifndef PX_BUF_H
#define PX_BUF_H

#include <stddef.h>

struct px_err;

struct px_buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max; /* 0: unlimited (our own text); else appends past it fail */
};

#define PX_BUF_INIT           \
	{                     \
		NULL, 0, 0, 0 \
	}

/* Appends n bytes; returns -1 with an error when it would exceed b->max. */
int px_buf_append(struct px_buf *b, const void *p, size_t n, struct px_err **err);
/* Appends a string; for our own text (b->max == 0) this cannot fail. */
void px_buf_puts(struct px_buf *b, const char *s);
void px_buf_printf(struct px_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Returns the contents, leaving the buffer empty; the caller frees. */
char *px_buf_steal(struct px_buf *b, size_t *ret_len) __attribute__((returns_nonnull));
void px_buf_free(struct px_buf *b);

#define _cleanup_buf_ __attribute__((cleanup(px_buf_free)))

#endif
