/* A YAML document as a small tree of nodes that remember where they came from (file, line,
 * column), built from libyaml's event stream. libyaml reports syntax errors but accepts
 * duplicate keys and expands aliases; this layer refuses both, and caps input size,
 * nesting depth and node count, so every later stage works on bounded, well-formed data.
 * Internal to src/manifest. */
#ifndef PX_MANIFEST_YNODE_H
#define PX_MANIFEST_YNODE_H

#include <stdbool.h>
#include <stddef.h>

struct px_err;

/* Limits on untrusted manifest text. */
#define PX_MANIFEST_MAX_BYTES (1024u * 1024u) /* 1 MiB: manifests are a few KiB */
#define PX_MANIFEST_MAX_DEPTH 32
#define PX_MANIFEST_MAX_NODES 100000u
#define PX_MANIFEST_MAX_KEYS  1024u /* entries of one mapping */

enum px_ynode_kind { PX_YNODE_SCALAR, PX_YNODE_SEQ, PX_YNODE_MAP };

/* The file a node came from. "kind" is "manifest" or "recipe"; it starts every message. */
struct px_ysource {
	const char *kind;
	char *path;
};

struct px_ynode;

struct px_ypair {
	struct px_ynode *key; /* always a scalar */
	struct px_ynode *value;
};

struct px_ynode {
	enum px_ynode_kind kind;
	const struct px_ysource *src;
	int line, col; /* 1-based */
	/* PX_YNODE_SCALAR */
	char *str;
	size_t len;
	bool plain;   /* unquoted: may be null, bool or a number */
	bool is_null; /* plain "", "~" or "null" */
	/* PX_YNODE_SEQ */
	struct px_ynode **items;
	/* PX_YNODE_MAP */
	struct px_ypair *pairs;
	size_t n;   /* items or pairs */
	size_t cap; /* allocated items or pairs */
};

/* Reads the file src->path (at most PX_MANIFEST_MAX_BYTES) into a NUL-terminated buffer;
 * errors say "cannot read KIND" or "file is too large" in the manifest's style. */
int px_ysource_read(const struct px_ysource *src, char **ret, size_t *ret_len, struct px_err **err);

/* Parses one YAML document from buf into a tree whose nodes point at 'src' (which must
 * outlive the tree). An empty document yields an error. */
int px_ynode_parse(const char *buf, size_t len, const struct px_ysource *src, struct px_ynode **ret,
                   struct px_err **err);
void px_ynode_free(struct px_ynode *n);
PX_DEFINE_CLEANUP(struct px_ynode *, px_ynode_free)

/* The value of 'key' in a mapping, or NULL. */
struct px_ynode *px_ynode_get(const struct px_ynode *map, const char *key);
/* A deep copy (used when merging recipes). */
struct px_ynode *px_ynode_dup(const struct px_ynode *n);
/* "a mapping", "a list", "a string", "null": for type errors. */
const char *px_ynode_kind_name(const struct px_ynode *n);

/* Sets an error "KIND 'PATH': message" about a whole file (the manifest's exit code). */
int px_ysource_error(struct px_err **err, const struct px_ysource *src, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* Sets an error "KIND 'PATH':LINE:COL: message" at node n (the manifest's exit code). */
int px_ynode_error(struct px_err **err, const struct px_ynode *n, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

#endif
