/* Byte sizes as people write them. "2G", "2GiB" and "2g" are all 2 * 1024^3, as qemu-img
 * and most disk tools read them; "2GB" is 2 * 1000^3. A bare number is bytes. */
#ifndef PX_SIZE_H
#define PX_SIZE_H

#include <stddef.h>
#include <stdint.h>

struct px_err;

/* Parses 's' into bytes; rejects signs, fractions, unknown suffixes and overflow. */
int px_size_parse(const char *s, uint64_t *ret, struct px_err **err);
/* Formats a size for people ("2.0 GiB", "512 B") into buf. */
void px_size_format(uint64_t bytes, char *buf, size_t len);

#endif
