/* A minimal TAP producer for the unit tests: each check prints "ok N - name" or
 * "not ok N - name" with the values compared, and done_testing() prints the plan and
 * returns the exit status prove expects. */
#ifndef PX_TAP_H
#define PX_TAP_H

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_count;
static int tap_failed;

__attribute__((format(printf, 2, 3))) static int ok(int cond, const char *fmt, ...)
{
	va_list ap;
	tap_count++;
	if (!cond)
		tap_failed++;
	printf("%sok %d - ", cond ? "" : "not ", tap_count);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	return cond;
}

#define is_int(got, want, name)                                                \
	do {                                                                   \
		long long g_ = (long long)(got), w_ = (long long)(want);       \
		if (!ok(g_ == w_, "%s", name))                                 \
			printf("#   got: %lld\n#   expected: %lld\n", g_, w_); \
	} while (0)

#define is_str(got, want, name)                                                           \
	do {                                                                              \
		const char *g_ = (got), *w_ = (want);                                     \
		if (!ok(g_ && w_ && strcmp(g_, w_) == 0, "%s", name))                     \
			printf("#   got: '%s'\n#   expected: '%s'\n", g_ ? g_ : "(null)", \
			       w_ ? w_ : "(null)");                                       \
	} while (0)

/* Checks that 'haystack' contains 'needle' (error messages are checked this way). */
#define like(haystack, needle, name)                                             \
	do {                                                                     \
		const char *h_ = (haystack), *n_ = (needle);                     \
		if (!ok(h_ && strstr(h_, n_) != NULL, "%s", name))               \
			printf("#   got: '%s'\n#   expected to contain: '%s'\n", \
			       h_ ? h_ : "(null)", n_);                          \
	} while (0)

static inline int done_testing(void)
{
	printf("1..%d\n", tap_count);
	if (tap_count == 0) {
		printf("# no test ran\n");
		return 1;
	}
	return tap_failed ? 1 : 0;
}

#endif
