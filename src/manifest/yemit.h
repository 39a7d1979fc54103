/* Writes a node tree back out as block YAML text (for values kept verbatim, such as
 * cloud_init.network_config). Plain scalars stay plain, so true, 2 and null keep their
 * YAML types; anything else is double-quoted with JSON escapes, which YAML reads back. */
#ifndef PX_MANIFEST_YEMIT_H
#define PX_MANIFEST_YEMIT_H

struct px_ynode;

/* Returns the YAML text of n, ending in a newline; the caller frees it. */
char *px_yemit(const struct px_ynode *n);

#endif
