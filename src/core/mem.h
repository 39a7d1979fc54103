/* Allocation that cannot fail: out of memory aborts with a message (STYLE.md), and
 * size arithmetic on untrusted numbers goes through the overflow-checked helpers. */
#ifndef PX_MEM_H
#define PX_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
/* Grows an array of 'size'-byte items; aborts when count * size overflows. */
void *xreallocarray(void *p, size_t count, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* True when a + b or a * b overflows 64 bits; the result is stored only otherwise. */
static inline bool px_add_overflow(uint64_t a, uint64_t b, uint64_t *ret)
{
	return __builtin_add_overflow(a, b, ret);
}
static inline bool px_mul_overflow(uint64_t a, uint64_t b, uint64_t *ret)
{
	return __builtin_mul_overflow(a, b, ret);
}

#endif
