#include "core/common.h"

#include "core/buf.h"
#include "manifest/yemit.h"
#include "manifest/ynode.h"

/* A plain scalar whose characters cannot change meaning in block context. */
static bool safe_plain(const struct px_ynode *n)
{
	if (!n->plain || !n->len)
		return false;
	for (const char *p = n->str; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || strchr("_./+-~", *p)))
			return false;
	/* A lone "-" would read as a sequence entry. */
	return strcmp(n->str, "-") != 0;
}

static void quoted(struct px_buf *b, const char *s)
{
	px_buf_puts(b, "\"");
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			px_buf_printf(b, "\\%c", *p);
		else if (*p == '\n')
			px_buf_puts(b, "\\n");
		else if (*p == '\t')
			px_buf_puts(b, "\\t");
		else if (*p < 0x20 || *p == 0x7f)
			px_buf_printf(b, "\\u%04x", *p);
		else
			px_buf_printf(b, "%c", *p);
	}
	px_buf_puts(b, "\"");
}

static void scalar(struct px_buf *b, const struct px_ynode *n)
{
	if (n->is_null)
		px_buf_puts(b, "null");
	else if (safe_plain(n))
		px_buf_puts(b, n->str);
	else
		quoted(b, n->str);
}

static void indent(struct px_buf *b, int depth)
{
	for (int i = 0; i < depth; i++)
		px_buf_puts(b, "  ");
}

static void emit(struct px_buf *b, const struct px_ynode *n, int depth);

/* The value after "key:" or "-": scalars and empty containers inline, others below. */
static void emit_value(struct px_buf *b, const struct px_ynode *n, int depth)
{
	if (n->kind == PX_YNODE_SCALAR) {
		px_buf_puts(b, " ");
		scalar(b, n);
		px_buf_puts(b, "\n");
	} else if (n->n == 0) {
		px_buf_puts(b, n->kind == PX_YNODE_MAP ? " {}\n" : " []\n");
	} else {
		px_buf_puts(b, "\n");
		emit(b, n, depth + 1);
	}
}

static void emit(struct px_buf *b, const struct px_ynode *n, int depth)
{
	if (n->kind == PX_YNODE_SCALAR) {
		indent(b, depth);
		scalar(b, n);
		px_buf_puts(b, "\n");
		return;
	}
	if (n->n == 0) {
		indent(b, depth);
		px_buf_puts(b, n->kind == PX_YNODE_MAP ? "{}\n" : "[]\n");
		return;
	}
	for (size_t i = 0; i < n->n; i++) {
		indent(b, depth);
		if (n->kind == PX_YNODE_SEQ) {
			px_buf_puts(b, "-");
			emit_value(b, n->items[i], depth);
		} else {
			const struct px_ynode *k = n->pairs[i].key;
			if (safe_plain(k))
				px_buf_puts(b, k->str);
			else
				quoted(b, k->str);
			px_buf_puts(b, ":");
			emit_value(b, n->pairs[i].value, depth);
		}
	}
}

char *px_yemit(const struct px_ynode *n)
{
	struct px_buf b = PX_BUF_INIT;
	emit(&b, n, 0);
	return px_buf_steal(&b, NULL);
}
