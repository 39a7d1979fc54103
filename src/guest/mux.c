#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guest/mux.h"

/* Deeper nesting than this is refused rather than scanned: no frame the PEP accepts comes
 * near it. */
#define MAX_DEPTH 256

struct px_mux_pending {
	struct px_mux_pending *next;
	uint64_t tag;
	int conn;
	char *client_id; /* the app's own id as raw JSON text; NULL: it sent none */
	size_t client_id_len;
	char *answer; /* held until earlier id-less answers of the connection are out */
	size_t answer_len;
};

static void *xalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) {
		fputs("pexi-guest: out of memory\n", stderr);
		abort();
	}
	return p;
}

static size_t skip_ws(const char *t, size_t len, size_t i)
{
	while (i < len && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r'))
		i++;
	return i;
}

/* t[i] is the opening quote; returns the index after the closing one, or 0 (never a valid
 * end) when the string does not end. *escaped tells whether it held a backslash. */
static size_t skip_string(const char *t, size_t len, size_t i, bool *escaped)
{
	*escaped = false;
	for (i++; i < len; i++) {
		if (t[i] == '\\') {
			*escaped = true;
			i++;
		} else if (t[i] == '"') {
			return i + 1;
		}
	}
	return 0;
}

/* Skips one value starting at t[i]; returns the index after it, or 0. Containers are
 * skipped by counting brackets outside strings, without checking what is inside. */
static size_t skip_value(const char *t, size_t len, size_t i)
{
	bool esc;
	if (i >= len)
		return 0;
	if (t[i] == '"')
		return skip_string(t, len, i, &esc);
	if (t[i] == '{' || t[i] == '[') {
		char stack[MAX_DEPTH];
		size_t depth = 0;
		while (i < len) {
			char c = t[i];
			if (c == '"') {
				i = skip_string(t, len, i, &esc);
				if (!i)
					return 0;
				continue;
			}
			if (c == '{' || c == '[') {
				if (depth == MAX_DEPTH)
					return 0;
				stack[depth++] = c == '{' ? '}' : ']';
			} else if (c == '}' || c == ']') {
				if (depth == 0 || stack[depth - 1] != c)
					return 0;
				if (--depth == 0)
					return i + 1;
			}
			i++;
		}
		return 0;
	}
	size_t start = i;
	while (i < len && !strchr(",}] \t\r\n", t[i]))
		i++;
	return i > start ? i : 0;
}

/* Calls fn for each top-level member of the object text[0..len); stops and returns -1
 * when the text is not an object, a key has an escape, or fn returns non-zero. */
typedef int (*member_fn)(void *ctx, const char *key, size_t key_len,
                         const struct px_json_member *m);

static int each_member(const char *t, size_t len, member_fn fn, void *ctx)
{
	size_t i = skip_ws(t, len, 0);
	if (i >= len || t[i] != '{')
		return -1;
	i = skip_ws(t, len, i + 1);
	if (i < len && t[i] == '}') {
		i = skip_ws(t, len, i + 1);
		return i == len ? 0 : -1;
	}
	for (;;) {
		struct px_json_member m = {.found = true};
		bool esc;
		if (i >= len || t[i] != '"')
			return -1;
		m.start = i;
		size_t kend = skip_string(t, len, i, &esc);
		if (!kend || esc)
			return -1;
		i = skip_ws(t, len, kend);
		if (i >= len || t[i] != ':')
			return -1;
		m.vstart = skip_ws(t, len, i + 1);
		m.vend = skip_value(t, len, m.vstart);
		if (!m.vend)
			return -1;
		m.end = m.vend;
		if (fn(ctx, t + m.start + 1, kend - m.start - 2, &m))
			return -1;
		i = skip_ws(t, len, m.vend);
		if (i < len && t[i] == ',') {
			i = skip_ws(t, len, i + 1);
			continue;
		}
		if (i < len && t[i] == '}') {
			i = skip_ws(t, len, i + 1);
			return i == len ? 0 : -1;
		}
		return -1;
	}
}

struct find_ctx {
	const char *key;
	struct px_json_member *ret;
};

static int find_cb(void *ctx, const char *key, size_t key_len, const struct px_json_member *m)
{
	struct find_ctx *f = ctx;
	if (strlen(f->key) != key_len || memcmp(f->key, key, key_len) != 0)
		return 0;
	if (f->ret->found)
		return 1; /* the same key twice: the host might read the other one */
	*f->ret = *m;
	return 0;
}

int px_json_find(const char *text, size_t len, const char *key, struct px_json_member *ret)
{
	struct px_json_member m = {.found = false};
	struct find_ctx f = {.key = key, .ret = &m};
	if (each_member(text, len, find_cb, &f) < 0)
		return -1;
	*ret = m;
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static long hex4(const char *t, size_t len, size_t i)
{
	if (i + 4 > len)
		return -1;
	long v = 0;
	for (size_t k = 0; k < 4; k++) {
		int h = hexval(t[i + k]);
		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

static size_t put_utf8(char *out, unsigned long cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

char *px_json_string(const char *t, size_t len)
{
	if (len < 2 || t[0] != '"' || t[len - 1] != '"')
		return NULL;
	/* Decoding never makes text longer: \uXXXX (6 bytes) is at most 3 bytes of UTF-8, a
	 * surrogate pair (12 bytes) 4. */
	char *out = xalloc(len);
	size_t o = 0;
	for (size_t i = 1; i < len - 1; i++) {
		char c = t[i];
		if (c == '\0')
			goto bad;
		if (c != '\\') {
			out[o++] = c;
			continue;
		}
		if (++i >= len - 1)
			goto bad;
		switch (t[i]) {
		case '"':
		case '\\':
		case '/':
			out[o++] = t[i];
			break;
		case 'b':
			out[o++] = '\b';
			break;
		case 'f':
			out[o++] = '\f';
			break;
		case 'n':
			out[o++] = '\n';
			break;
		case 'r':
			out[o++] = '\r';
			break;
		case 't':
			out[o++] = '\t';
			break;
		case 'u': {
			long cp = hex4(t, len - 1, i + 1);
			if (cp <= 0)
				goto bad; /* malformed, or \u0000 */
			i += 4;
			if (cp >= 0xd800 && cp <= 0xdbff && i + 2 < len - 1 && t[i + 1] == '\\' &&
			    t[i + 2] == 'u') {
				long lo = hex4(t, len - 1, i + 3);
				if (lo >= 0xdc00 && lo <= 0xdfff) {
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
					i += 6;
				}
			}
			if (cp >= 0xd800 && cp <= 0xdfff)
				cp = 0xfffd;
			o += put_utf8(out + o, (unsigned long)cp);
			break;
		}
		default:
			goto bad;
		}
	}
	out[o] = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

size_t px_json_quote(const char *text, size_t len, char *out, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
#define PUT(c)                        \
	do {                          \
		if (o + 1 >= cap)     \
			return 0;     \
		out[o++] = (char)(c); \
	} while (0)
	PUT('"');
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];
		if (c == '"' || c == '\\') {
			PUT('\\');
			PUT(c);
		} else if (c < 0x20 || c == 0x7f) {
			PUT('\\');
			PUT('u');
			PUT('0');
			PUT('0');
			PUT(hex[c >> 4]);
			PUT(hex[c & 15]);
		} else {
			PUT(c);
		}
	}
	PUT('"');
#undef PUT
	out[o] = '\0';
	return o;
}

void px_mux_init(struct px_mux *m)
{
	memset(m, 0, sizeof(*m));
}

static void pending_free(struct px_mux_pending *p)
{
	free(p->client_id);
	free(p->answer);
	free(p);
}

void px_mux_free(struct px_mux *m)
{
	struct px_mux_pending *p = m->head;
	while (p) {
		struct px_mux_pending *next = p->next;
		pending_free(p);
		p = next;
	}
	px_mux_init(m);
}

/* A growing output string for the rewritten frames. Sizes come from frames already
 * bounded by the caller, so a plain doubling buffer is enough. */
struct out {
	char *s;
	size_t len, cap;
};

static void out_put(struct out *o, const char *s, size_t n)
{
	if (o->len + n + 1 > o->cap) {
		size_t cap = o->cap ? o->cap : 64;
		while (cap < o->len + n + 1)
			cap *= 2;
		char *ns = xalloc(cap);
		if (o->s)
			memcpy(ns, o->s, o->len);
		free(o->s);
		o->s = ns;
		o->cap = cap;
	}
	memcpy(o->s + o->len, s, n);
	o->len += n;
	o->s[o->len] = '\0';
}

static void out_str(struct out *o, const char *s)
{
	out_put(o, s, strlen(s));
}

/* Copies every top-level member except "id" after whatever o already holds, each preceded
 * by a comma when o already holds a member (*first false). */
struct copy_ctx {
	struct out *o;
	const char *text;
	bool first;
};

static int copy_cb(void *ctx, const char *key, size_t key_len, const struct px_json_member *m)
{
	struct copy_ctx *c = ctx;
	if (key_len == 2 && memcmp(key, "id", 2) == 0)
		return 0;
	if (!c->first)
		out_str(c->o, ",");
	c->first = false;
	out_put(c->o, c->text + m->start, m->end - m->start);
	return 0;
}

/* The frame text with its "id" member replaced by id (raw JSON, first member), or removed
 * when id is NULL. NULL when the text is not an object. */
static char *with_id(const char *text, size_t len, const char *id, size_t id_len, size_t *ret_len)
{
	struct out o = {0};
	out_str(&o, "{");
	if (id) {
		out_str(&o, "\"id\":");
		out_put(&o, id, id_len);
	}
	struct copy_ctx c = {.o = &o, .text = text, .first = id == NULL};
	if (each_member(text, len, copy_cb, &c) < 0) {
		free(o.s);
		return NULL;
	}
	out_str(&o, "}");
	*ret_len = o.len;
	return o.s;
}

enum px_mux_verdict px_mux_request(struct px_mux *m, int conn, const char *frame, size_t len,
                                   char **ret, size_t *ret_len)
{
	struct px_json_member id, type;
	if (px_json_find(frame, len, "id", &id) < 0 || px_json_find(frame, len, "type", &type) < 0)
		return PX_MUX_INVALID;
	if (type.found)
		return PX_MUX_CONTROL;

	uint64_t tag = ++m->next_tag;
	char tagged[32];
	int n = snprintf(tagged, sizeof(tagged), "\"g%" PRIu64 "\"", tag);
	size_t out_len;
	char *out = with_id(frame, len, tagged, (size_t)n, &out_len);
	if (!out)
		return PX_MUX_INVALID;

	struct px_mux_pending *p = xalloc(sizeof(*p));
	memset(p, 0, sizeof(*p));
	p->tag = tag;
	p->conn = conn;
	if (id.found) {
		p->client_id_len = id.vend - id.vstart;
		p->client_id = xalloc(p->client_id_len + 1);
		memcpy(p->client_id, frame + id.vstart, p->client_id_len);
		p->client_id[p->client_id_len] = '\0';
	}
	if (m->tail)
		m->tail->next = p;
	else
		m->head = p;
	m->tail = p;
	m->n++;
	*ret = out;
	*ret_len = out_len;
	return PX_MUX_FORWARD;
}

static void unlink_pending(struct px_mux *m, struct px_mux_pending *p)
{
	struct px_mux_pending **pp = &m->head, *prev = NULL;
	while (*pp && *pp != p) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	if (!*pp)
		return;
	*pp = p->next;
	if (m->tail == p)
		m->tail = prev;
	m->n--;
}

/* Delivers, in request order, the held answers of 'conn' that no earlier id-less request
 * of that connection still waits for. */
static void flush_conn(struct px_mux *m, int conn, px_mux_deliver_fn deliver, void *ctx)
{
	struct px_mux_pending *p = m->head;
	while (p) {
		struct px_mux_pending *next = p->next;
		if (p->conn == conn && !p->client_id) {
			if (!p->answer)
				return;
			unlink_pending(m, p);
			deliver(ctx, conn, p->answer, p->answer_len);
			p->answer = NULL;
			pending_free(p);
		}
		p = next;
	}
}

/* Parses our own tag out of an id value: exactly "g" and 1 to 19 decimal digits. */
static bool parse_tag(const char *v, size_t len, uint64_t *ret)
{
	if (len < 4 || len > 22 || v[0] != '"' || v[1] != 'g' || v[len - 1] != '"')
		return false;
	uint64_t tag = 0;
	for (size_t i = 2; i < len - 1; i++) {
		if (v[i] < '0' || v[i] > '9')
			return false;
		tag = tag * 10 + (uint64_t)(v[i] - '0');
	}
	*ret = tag;
	return true;
}

static void settle(struct px_mux *m, struct px_mux_pending *p, char *answer, size_t len,
                   px_mux_deliver_fn deliver, void *ctx)
{
	if (p->client_id) {
		/* An answer to a request with an id may overtake everything else. */
		unlink_pending(m, p);
		deliver(ctx, p->conn, answer, len);
		pending_free(p);
		return;
	}
	free(p->answer);
	p->answer = answer;
	p->answer_len = len;
	flush_conn(m, p->conn, deliver, ctx);
}

enum px_mux_verdict px_mux_answer(struct px_mux *m, const char *frame, size_t len,
                                  px_mux_deliver_fn deliver, void *ctx)
{
	struct px_json_member id, type;
	if (px_json_find(frame, len, "id", &id) < 0 || px_json_find(frame, len, "type", &type) < 0)
		return PX_MUX_INVALID;
	uint64_t tag;
	if (!id.found || !parse_tag(frame + id.vstart, id.vend - id.vstart, &tag))
		return type.found ? PX_MUX_CONTROL : PX_MUX_UNKNOWN;
	struct px_mux_pending *p = m->head;
	while (p && p->tag != tag)
		p = p->next;
	if (!p || p->answer)
		return PX_MUX_UNKNOWN; /* not ours any more, or answered twice */

	size_t out_len;
	char *out = with_id(frame, len, p->client_id, p->client_id_len, &out_len);
	if (!out)
		return PX_MUX_INVALID;
	settle(m, p, out, out_len, deliver, ctx);
	return PX_MUX_ROUTED;
}

/* An error answer for pending request p: its own id (or none), status 0, the error. */
static void error_answer(struct px_mux_pending *p, const char *code, const char *message)
{
	char quoted[512];
	if (!px_json_quote(message, strlen(message), quoted, sizeof(quoted)))
		px_json_quote("channel error", 13, quoted, sizeof(quoted));
	struct out o = {0};
	out_str(&o, "{");
	if (p->client_id) {
		out_str(&o, "\"id\":");
		out_put(&o, p->client_id, p->client_id_len);
		out_str(&o, ",");
	}
	out_str(&o, "\"status\":0,\"headers\":[],\"body_base64\":\"\",\"error\":{\"code\":\"");
	out_str(&o, code);
	out_str(&o, "\",\"message\":");
	out_str(&o, quoted);
	out_str(&o, "}}");
	free(p->answer);
	p->answer = o.s;
	p->answer_len = o.len;
}

void px_mux_fail_all(struct px_mux *m, const char *message, px_mux_deliver_fn deliver, void *ctx)
{
	/* Every request that has no answer yet gets this one; then all of them go out in list
	 * order, which is request order within each connection. */
	for (struct px_mux_pending *p = m->head; p; p = p->next)
		if (!p->answer)
			error_answer(p, "http_error", message);
	while (m->head) {
		struct px_mux_pending *p = m->head;
		unlink_pending(m, p);
		deliver(ctx, p->conn, p->answer, p->answer_len);
		p->answer = NULL;
		pending_free(p);
	}
}

void px_mux_fail_one(struct px_mux *m, uint64_t tag, const char *code, const char *message,
                     px_mux_deliver_fn deliver, void *ctx)
{
	struct px_mux_pending *p = m->head;
	while (p && p->tag != tag)
		p = p->next;
	if (!p || p->answer)
		return;
	error_answer(p, code, message);
	char *answer = p->answer;
	p->answer = NULL;
	settle(m, p, answer, p->answer_len, deliver, ctx);
}

bool px_mux_prefix_tag(const char *t, size_t len, uint64_t *ret)
{
	size_t i = skip_ws(t, len, 0);
	if (i >= len || t[i] != '{')
		return false;
	i = skip_ws(t, len, i + 1);
	if (len - i < 4 || memcmp(t + i, "\"id\"", 4) != 0)
		return false;
	i = skip_ws(t, len, i + 4);
	if (i >= len || t[i] != ':')
		return false;
	i = skip_ws(t, len, i + 1);
	size_t end = i + 1;
	while (end < len && end - i < 22 && t[end] != '"')
		end++;
	return end < len && parse_tag(t + i, end - i + 1, ret);
}

void px_mux_drop_conn(struct px_mux *m, int conn)
{
	struct px_mux_pending *p = m->head;
	while (p) {
		struct px_mux_pending *next = p->next;
		if (p->conn == conn) {
			unlink_pending(m, p);
			pending_free(p);
		}
		p = next;
	}
}

size_t px_mux_pending(const struct px_mux *m, int conn, size_t *ret_held_bytes)
{
	size_t n = 0, held = 0;
	for (const struct px_mux_pending *p = m->head; p; p = p->next) {
		if (p->conn != conn)
			continue;
		n++;
		if (p->answer)
			held += p->answer_len;
	}
	if (ret_held_bytes)
		*ret_held_bytes = held;
	return n;
}
