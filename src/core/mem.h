/* Allocation that cannot fail: out of memory aborts with a message (STYLE.md), and
 * size arithmetic on untrusted numbers goes through the overflow-checked helpers. */
#ifndef PX_MEM_H
#define PX_MEM_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void *xmalloc(size_t n) __attribute__((returns_nonnull));
void *xcalloc(size_t n, size_t size) __attribute__((returns_nonnull));
void *xrealloc(void *p, size_t n) __attribute__((returns_nonnull));
/* Grows an array of 'size'-byte items; aborts when count * size overflows. */
void *xreallocarray(void *p, size_t count, size_t size) __attribute__((returns_nonnull));
char *xstrdup(const char *s) __attribute__((returns_nonnull));
char *xstrndup(const char *s, size_t n) __attribute__((returns_nonnull));
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2), returns_nonnull));
/* xasprintf for a va_list, for functions that take a format of their own. */
char *xvasprintf(const char *fmt, va_list ap)
        __attribute__((format(printf, 1, 0), returns_nonnull));

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
