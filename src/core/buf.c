#include "buf.h"

#include <stdarg.h>

#include "common.h"

static void reserve(struct px_buf *b, size_t extra)
{
	size_t need;
	if (__builtin_add_overflow(b->len, extra + 1, &need)) {
		fprintf(stderr, "fatal: buffer size overflow\n");
		abort();
	}
	if (need <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	b->data = xrealloc(b->data, cap);
	b->cap = cap;
}

int px_buf_append(struct px_buf *b, const void *p, size_t n, struct px_err **err)
{
	if (b->max && (n > b->max || b->len > b->max - n))
		return px_err_set(err, PX_EXIT_INPUT, "more than %zu bytes", b->max);
	reserve(b, n);
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

void px_buf_puts(struct px_buf *b, const char *s)
{
	size_t n = strlen(s);
	reserve(b, n);
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void px_buf_printf(struct px_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	reserve(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

char *px_buf_steal(struct px_buf *b, size_t *ret_len)
{
	reserve(b, 0);
	/* An empty buffer that never grew has no terminator yet. */
	b->data[b->len] = '\0';
	char *p = b->data;
	if (ret_len)
		*ret_len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}

void px_buf_free(struct px_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}
