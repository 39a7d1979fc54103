/* Reading the small tar archives apk keeps inside gzip members (the signature tar, the
 * control tar with .PKGINFO or APKINDEX) from memory, through libarchive. apk cuts these
 * tars short (no end-of-archive blocks), which libarchive reads as a normal end. */
#ifndef PX_APK_TARMEM_H
#define PX_APK_TARMEM_H

#include <stddef.h>
#include <stdint.h>

struct px_err;

/* Called for each regular file: name without a leading "./", its whole contents. Returns
 * 0 to go on, 1 to stop early, or -1 with err set to fail. */
typedef int (*px_tarmem_fn)(void *ctx, const char *name, const uint8_t *data, size_t len,
                            struct px_err **err);

/* Walks the uncompressed tar in buf. A regular file larger than max_entry, more than 10 000
 * entries, or a corrupt header is a PX_EXIT_INPUT error naming 'what'. */
int px_tarmem_each(const void *buf, size_t len, const char *what, size_t max_entry, px_tarmem_fn fn,
                   void *ctx, struct px_err **err);

#endif
