/* The one header every pexi source includes. It pulls in the system headers nearly every
 * file needs, the core helpers, and banned.h last, so that a banned call anywhere after it
 * is a compile error. */
#ifndef PX_COMMON_H
#define PX_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "cleanup.h"
#include "err.h"
#include "mem.h"

#define PX_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define PX_UNUSED        __attribute__((unused))

static inline bool px_streq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

#include "banned.h"

#endif
