/* libyaml's event stream turned into a bounded node tree with positions. */
#include <stdarg.h>
#include <yaml.h>

#include "core/common.h"

#include "core/file.h"
#include "manifest/ynode.h"

int px_ysource_error(struct px_err **err, const struct px_ysource *src, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	_cleanup_free_ char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	return px_err_set(err, PX_EXIT_MANIFEST, "%s '%s': %s", src->kind, src->path, msg);
}

int px_ynode_error(struct px_err **err, const struct px_ynode *n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	_cleanup_free_ char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	return px_err_set(err, PX_EXIT_MANIFEST, "%s '%s':%d:%d: %s", n->src->kind, n->src->path,
	                  n->line, n->col, msg);
}

void px_ynode_free(struct px_ynode *n)
{
	if (!n)
		return;
	free(n->str);
	for (size_t i = 0; i < n->n; i++) {
		if (n->kind == PX_YNODE_SEQ) {
			px_ynode_free(n->items[i]);
		} else if (n->kind == PX_YNODE_MAP) {
			px_ynode_free(n->pairs[i].key);
			px_ynode_free(n->pairs[i].value);
		}
	}
	free(n->items);
	free(n->pairs);
	free(n);
}

struct px_ynode *px_ynode_get(const struct px_ynode *map, const char *key)
{
	if (!map || map->kind != PX_YNODE_MAP)
		return NULL;
	for (size_t i = 0; i < map->n; i++)
		if (strcmp(map->pairs[i].key->str, key) == 0)
			return map->pairs[i].value;
	return NULL;
}

struct px_ynode *px_ynode_dup(const struct px_ynode *n)
{
	struct px_ynode *d = xmalloc(sizeof(*d));
	*d = *n;
	d->str = n->str ? xstrndup(n->str, n->len) : NULL;
	d->items = NULL;
	d->pairs = NULL;
	d->cap = n->n;
	if (n->kind == PX_YNODE_SEQ && n->n) {
		d->items = xreallocarray(NULL, n->n, sizeof(*d->items));
		for (size_t i = 0; i < n->n; i++)
			d->items[i] = px_ynode_dup(n->items[i]);
	} else if (n->kind == PX_YNODE_MAP && n->n) {
		d->pairs = xreallocarray(NULL, n->n, sizeof(*d->pairs));
		for (size_t i = 0; i < n->n; i++) {
			d->pairs[i].key = px_ynode_dup(n->pairs[i].key);
			d->pairs[i].value = px_ynode_dup(n->pairs[i].value);
		}
	}
	return d;
}

const char *px_ynode_kind_name(const struct px_ynode *n)
{
	switch (n->kind) {
	case PX_YNODE_MAP:
		return "a mapping";
	case PX_YNODE_SEQ:
		return "a list";
	case PX_YNODE_SCALAR:
		break;
	}
	return n->is_null ? "empty (null)" : "a string";
}

/* Checks the raw bytes before libyaml sees them: NUL bytes mean a binary file, and libyaml's
 * own complaint about bad UTF-8 names a byte offset, not a line. */
static int check_text(const char *buf, size_t len, const struct px_ysource *src,
                      struct px_err **err)
{
	int line = 1, col = 1;
	const unsigned char *p = (const unsigned char *)buf;
	for (size_t i = 0; i < len;) {
		unsigned c = p[i];
		size_t need;
		uint32_t cp, min;
		if (c == 0)
			return px_err_set(err, PX_EXIT_MANIFEST,
			                  "%s '%s':%d:%d: binary file: contains a NUL byte at "
			                  "offset %zu (a manifest is UTF-8 text)",
			                  src->kind, src->path, line, col, i);
		if (c < 0x80) {
			i++;
			if (c == '\n') {
				line++;
				col = 1;
			} else {
				col++;
			}
			continue;
		}
		if ((c & 0xE0) == 0xC0) {
			need = 1, cp = c & 0x1F, min = 0x80;
		} else if ((c & 0xF0) == 0xE0) {
			need = 2, cp = c & 0x0F, min = 0x800;
		} else if ((c & 0xF8) == 0xF0) {
			need = 3, cp = c & 0x07, min = 0x10000;
		} else {
			goto bad;
		}
		if (len - i <= need)
			goto bad;
		for (size_t k = 1; k <= need; k++) {
			if ((p[i + k] & 0xC0) != 0x80)
				goto bad;
			cp = (cp << 6) | (p[i + k] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			goto bad;
		i += need + 1;
		col++;
		continue;
	bad:
		return px_err_set(err, PX_EXIT_MANIFEST,
		                  "%s '%s':%d:%d: binary file: invalid UTF-8 byte 0x%02x at "
		                  "offset %zu (a manifest is UTF-8 text)",
		                  src->kind, src->path, line, col, c, i);
	}
	return 0;
}

struct builder {
	const struct px_ysource *src;
	struct px_ynode *root;
	struct px_ynode *stack[PX_MANIFEST_MAX_DEPTH + 1];
	struct px_ynode *pending_key[PX_MANIFEST_MAX_DEPTH + 1];
	size_t depth;
	size_t count;
};

static struct px_ynode *node_new(struct builder *b, enum px_ynode_kind kind, yaml_mark_t mark)
{
	struct px_ynode *n = xcalloc(1, sizeof(*n));
	n->kind = kind;
	n->src = b->src;
	/* libyaml marks are 0-based and bounded by the 1 MiB input. */
	n->line = (int)mark.line + 1;
	n->col = (int)mark.column + 1;
	return n;
}

static bool is_null_text(const char *s)
{
	return !*s || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
	       strcmp(s, "NULL") == 0;
}

/* Attaches a finished node to the open container (or makes it the root). Takes n. */
static int attach(struct builder *b, struct px_ynode *n, struct px_err **err)
{
	if (++b->count > PX_MANIFEST_MAX_NODES) {
		px_ynode_error(err, n, "too many YAML nodes (the limit is %u)",
		               PX_MANIFEST_MAX_NODES);
		px_ynode_free(n);
		return -1;
	}
	if (b->depth == 0) {
		b->root = n;
		return 0;
	}
	struct px_ynode *top = b->stack[b->depth - 1];
	if (top->kind == PX_YNODE_SEQ) {
		if (top->n == top->cap) {
			top->cap = top->cap ? top->cap * 2 : 4;
			top->items = xreallocarray(top->items, top->cap, sizeof(*top->items));
		}
		top->items[top->n++] = n;
		return 0;
	}
	struct px_ynode *key = b->pending_key[b->depth - 1];
	if (key) {
		b->pending_key[b->depth - 1] = NULL;
		if (top->n == top->cap) {
			top->cap = top->cap ? top->cap * 2 : 4;
			top->pairs = xreallocarray(top->pairs, top->cap, sizeof(*top->pairs));
		}
		top->pairs[top->n].key = key;
		top->pairs[top->n].value = n;
		top->n++;
		return 0;
	}
	/* n is a key. */
	int r = 0;
	if (n->kind != PX_YNODE_SCALAR)
		r = px_ynode_error(err, n, "mapping keys must be strings, not %s",
		                   px_ynode_kind_name(n));
	else if (n->len == 0)
		r = px_ynode_error(err, n, "empty mapping key");
	else if (top->n >= PX_MANIFEST_MAX_KEYS)
		r = px_ynode_error(err, n, "too many keys in one mapping (the limit is %u)",
		                   PX_MANIFEST_MAX_KEYS);
	for (size_t i = 0; r == 0 && i < top->n; i++) {
		const struct px_ynode *k = top->pairs[i].key;
		if (k->len == n->len && memcmp(k->str, n->str, n->len) == 0)
			r = px_ynode_error(err, n, "duplicate key '%s' (first defined at %d:%d)",
			                   n->str, k->line, k->col);
	}
	if (r < 0) {
		px_ynode_free(n);
		return r;
	}
	b->pending_key[b->depth - 1] = n;
	return 0;
}

static int on_event(struct builder *b, const yaml_event_t *ev, bool *done, struct px_err **err)
{
	struct px_ynode *n;
	switch (ev->type) {
	case YAML_STREAM_START_EVENT:
	case YAML_DOCUMENT_END_EVENT:
	case YAML_NO_EVENT:
		return 0;
	case YAML_STREAM_END_EVENT:
		*done = true;
		return 0;
	case YAML_DOCUMENT_START_EVENT:
		if (b->root) {
			n = node_new(b, PX_YNODE_SCALAR, ev->start_mark);
			px_ynode_error(
			        err, n,
			        "a second YAML document ('---'): a manifest is one document");
			px_ynode_free(n);
			return -1;
		}
		return 0;
	case YAML_ALIAS_EVENT:
		n = node_new(b, PX_YNODE_SCALAR, ev->start_mark);
		px_ynode_error(err, n,
		               "YAML alias '*%s' is not supported (aliases are refused so a "
		               "manifest cannot expand beyond its size): repeat the value",
		               (const char *)ev->data.alias.anchor);
		px_ynode_free(n);
		return -1;
	case YAML_SCALAR_EVENT: {
		n = node_new(b, PX_YNODE_SCALAR, ev->start_mark);
		n->len = ev->data.scalar.length;
		n->str = xstrndup((const char *)ev->data.scalar.value, n->len);
		if (strlen(n->str) != n->len) {
			px_ynode_error(err, n, "strings may not contain NUL characters");
			px_ynode_free(n);
			return -1;
		}
		n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
		n->is_null = n->plain && is_null_text(n->str);
		return attach(b, n, err);
	}
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		n = node_new(b, ev->type == YAML_MAPPING_START_EVENT ? PX_YNODE_MAP : PX_YNODE_SEQ,
		             ev->start_mark);
		if (b->depth >= PX_MANIFEST_MAX_DEPTH) {
			px_ynode_error(err, n, "nesting is too deep (the limit is %d levels)",
			               PX_MANIFEST_MAX_DEPTH);
			px_ynode_free(n);
			return -1;
		}
		if (attach(b, n, err) < 0)
			return -1;
		b->pending_key[b->depth] = NULL;
		b->stack[b->depth++] = n;
		return 0;
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		if (b->depth > 0)
			b->depth--;
		return 0;
	}
	return 0;
}

static int yaml_error(const yaml_parser_t *p, const struct px_ysource *src, struct px_err **err)
{
	const char *problem = p->problem ? p->problem : "unknown error";
	switch (p->error) {
	case YAML_MEMORY_ERROR:
		return px_ysource_error(err, src, "out of memory parsing YAML");
	case YAML_READER_ERROR:
		return px_ysource_error(err, src, "invalid text at offset %zu: %s",
		                        p->problem_offset, problem);
	default:
		break;
	}
	int line = (int)p->problem_mark.line + 1, col = (int)p->problem_mark.column + 1;
	if (p->context)
		return px_err_set(err, PX_EXIT_MANIFEST,
		                  "%s '%s':%d:%d: invalid YAML: %s (%s at %d:%d)", src->kind,
		                  src->path, line, col, problem, p->context,
		                  (int)p->context_mark.line + 1, (int)p->context_mark.column + 1);
	return px_err_set(err, PX_EXIT_MANIFEST, "%s '%s':%d:%d: invalid YAML: %s", src->kind,
	                  src->path, line, col, problem);
}

int px_ynode_parse(const char *buf, size_t len, const struct px_ysource *src, struct px_ynode **ret,
                   struct px_err **err)
{
	if (len > PX_MANIFEST_MAX_BYTES)
		return px_ysource_error(
		        err, src, "file is too large (%zu bytes; the limit is %u bytes, 1 MiB)",
		        len, PX_MANIFEST_MAX_BYTES);
	if (check_text(buf, len, src, err) < 0)
		return -1;

	yaml_parser_t parser;
	if (!yaml_parser_initialize(&parser))
		return px_ysource_error(err, src, "cannot initialise the YAML parser");
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);

	struct builder b = {.src = src};
	int r = 0;
	for (bool done = false; !done && r == 0;) {
		yaml_event_t ev;
		if (!yaml_parser_parse(&parser, &ev)) {
			r = yaml_error(&parser, src, err);
			break;
		}
		r = on_event(&b, &ev, &done, err);
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
	/* Keys still waiting for a value belong to no node yet. */
	for (size_t i = 0; i < b.depth; i++)
		px_ynode_free(b.pending_key[i]);
	if (r < 0) {
		px_ynode_free(b.root);
		return -1;
	}
	if (!b.root || (b.root->kind == PX_YNODE_SCALAR && b.root->is_null)) {
		px_ynode_free(b.root);
		return px_ysource_error(err, src, "file is empty (expected a mapping of sections)");
	}
	*ret = b.root;
	return 0;
}

int px_ysource_read(const struct px_ysource *src, char **ret, size_t *ret_len, struct px_err **err)
{
	struct stat st;
	if (stat(src->path, &st) < 0)
		return px_err_set(err, PX_EXIT_MANIFEST, "cannot read %s '%s': %s", src->kind,
		                  src->path, strerror(errno));
	if (S_ISDIR(st.st_mode))
		return px_err_set(err, PX_EXIT_MANIFEST, "%s '%s' is a directory, not a file",
		                  src->kind, src->path);
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > PX_MANIFEST_MAX_BYTES)
		return px_ysource_error(
		        err, src, "file is too large (%jd bytes; the limit is %u bytes, 1 MiB)",
		        (intmax_t)st.st_size, PX_MANIFEST_MAX_BYTES);
	_cleanup_err_ struct px_err *e = NULL;
	char *data = NULL;
	size_t len = 0;
	if (px_file_read(src->path, PX_MANIFEST_MAX_BYTES, &data, &len, &e) < 0) {
		if (e->errnum)
			return px_err_set(err, PX_EXIT_MANIFEST, "cannot read %s '%s': %s",
			                  src->kind, src->path, strerror(e->errnum));
		return px_ysource_error(err, src,
		                        "file is too large (the limit is %u bytes, 1 MiB)",
		                        PX_MANIFEST_MAX_BYTES);
	}
	*ret = data ? data : xstrdup("");
	*ret_len = len;
	return 0;
}
