#include <cjson/cJSON.h>

#include "core/common.h"

#include "core/buf.h"
#include "pep/frame.h"

PX_DEFINE_CLEANUP(cJSON *, cJSON_Delete)

int px_frame_length(const uint8_t hdr[PX_FRAME_HEADER], uint32_t max, uint32_t *ret_len,
                    struct px_err **err)
{
	uint32_t len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 |
	               (uint32_t)hdr[3];
	if (len == 0)
		return px_err_set(err, PX_EXIT_INPUT, "empty frame");
	if (len > max)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "frame of %" PRIu32 " bytes is over the limit of %" PRIu32, len,
		                  max);
	*ret_len = len;
	return 0;
}

/* cJSON turns the escape \u0000 into a NUL that silently ends the C string, so "a\u0000b"
 * would reach the policy as "a": a parser differential. Such frames are refused instead.
 * The scan follows string boundaries so an escaped backslash before "u0000" is fine. */
static bool has_nul_escape(const uint8_t *p, size_t n)
{
	bool in_str = false;
	for (size_t i = 0; i < n; i++) {
		if (!in_str) {
			if (p[i] == '"')
				in_str = true;
			continue;
		}
		if (p[i] == '"') {
			in_str = false;
		} else if (p[i] == '\\' && i + 1 < n) {
			if (p[i + 1] == 'u' && i + 5 < n && p[i + 2] == '0' && p[i + 3] == '0' &&
			    p[i + 4] == '0' && p[i + 5] == '0')
				return true;
			i++;
		} else if (p[i] == 0) {
			return true;
		}
	}
	return false;
}

/* The length of the valid UTF-8 sequence starting at p (a lead byte >= 0x80) within
 * avail bytes, or 0 when it is not one: no overlongs, surrogates or code points past
 * U+10FFFF. A NUL byte ends a sequence, so NUL-terminated text needs no length. */
static size_t utf8_seq(const unsigned char *p, size_t avail)
{
	unsigned char c = p[0];
	if (c < 0xc2 || c > 0xf4)
		return 0;
	size_t want = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
	if (want > avail)
		return 0;
	for (size_t k = 1; k < want; k++)
		if ((p[k] & 0xc0) != 0x80)
			return 0;
	if (want == 3 && ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] >= 0xa0)))
		return 0;
	if (want == 4 && ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] >= 0x90)))
		return 0;
	return want;
}

static bool valid_utf8(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n;) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		size_t k = utf8_seq(p + i, n - i);
		if (!k)
			return false;
		i += k;
	}
	return true;
}

static int get_string(const cJSON *obj, const char *key, bool required, size_t max, char **ret,
                      struct px_err **err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (!v || cJSON_IsNull(v)) {
		if (required)
			return px_err_set(err, PX_EXIT_INPUT, "frame has no '%s'", key);
		*ret = NULL;
		return 0;
	}
	if (!cJSON_IsString(v) || !v->valuestring)
		return px_err_set(err, PX_EXIT_INPUT, "frame field '%s' is not a string", key);
	if (max && strlen(v->valuestring) > max)
		return px_err_set(err, PX_EXIT_INPUT, "frame field '%s' is longer than %zu bytes",
		                  key, max);
	*ret = xstrdup(v->valuestring);
	return 0;
}

static int get_id(const cJSON *obj, struct px_frame *f, struct px_err **err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "id");
	if (!v || cJSON_IsNull(v))
		return 0;
	if (cJSON_IsString(v) && v->valuestring) {
		if (strlen(v->valuestring) > PX_FRAME_MAX_ID)
			return px_err_set(err, PX_EXIT_INPUT, "frame id is longer than %d bytes",
			                  PX_FRAME_MAX_ID);
		f->id = xstrdup(v->valuestring);
		return 0;
	}
	/* Numeric ids must be exact integers JSON peers agree on (within 2^53). */
	if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble <= 9007199254740992.0 &&
	    v->valuedouble == (double)(uint64_t)v->valuedouble) {
		f->id = xasprintf("%" PRIu64, (uint64_t)v->valuedouble);
		f->id_numeric = true;
		return 0;
	}
	return px_err_set(err, PX_EXIT_INPUT, "frame id is neither a string nor a whole number");
}

static int get_headers(const cJSON *obj, size_t max, struct px_pep_headers *ret,
                       struct px_err **err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "headers");
	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsArray(v))
		return px_err_set(err, PX_EXIT_INPUT, "frame field 'headers' is not an array");
	size_t n = (size_t)cJSON_GetArraySize(v);
	if (n > max)
		return px_err_set(err, PX_EXIT_INPUT, "frame has more than %zu headers", max);
	if (n == 0)
		return 0;
	ret->v = xcalloc(n, sizeof(*ret->v));
	const cJSON *pair;
	cJSON_ArrayForEach(pair, v)
	{
		const cJSON *k = cJSON_GetArrayItem(pair, 0), *val = cJSON_GetArrayItem(pair, 1);
		if (!cJSON_IsArray(pair) || cJSON_GetArraySize(pair) != 2 || !cJSON_IsString(k) ||
		    !cJSON_IsString(val) || !k->valuestring || !val->valuestring)
			return px_err_set(err, PX_EXIT_INPUT,
			                  "frame header %zu is not a [name, value] pair of strings",
			                  ret->n + 1);
		ret->v[ret->n].name = xstrdup(k->valuestring);
		ret->v[ret->n].value = xstrdup(val->valuestring);
		ret->n++;
	}
	return 0;
}

/* A frame is one JSON object and nothing else, each member named once: a reader that
 * kept the last of two "url" members, or read on past the object, would act on a
 * different request than the one checked here. The member count is capped so the
 * duplicate check stays cheap. */
static int one_object(const uint8_t *buf, size_t len, cJSON **ret, struct px_err **err)
{
	const char *end = NULL;
	if (len >= 3 && buf[0] == 0xef && buf[1] == 0xbb && buf[2] == 0xbf)
		return px_err_set(err, PX_EXIT_INPUT, "frame starts with a byte order mark");
	cJSON *root = cJSON_ParseWithLengthOpts((const char *)buf, len, &end, false);
	if (!root)
		return px_err_set(err, PX_EXIT_INPUT, "frame is not valid JSON");
	while (end < (const char *)buf + len && strchr(" \t\r\n", *end) && *end)
		end++;
	if (end != (const char *)buf + len) {
		cJSON_Delete(root);
		return px_err_set(err, PX_EXIT_INPUT, "frame has bytes after its JSON object");
	}
	size_t n = 0;
	for (const cJSON *a = root->child; cJSON_IsObject(root) && a; a = a->next, n++) {
		if (n >= PX_FRAME_MAX_MEMBERS) {
			cJSON_Delete(root);
			return px_err_set(err, PX_EXIT_INPUT, "frame has more than %d members",
			                  PX_FRAME_MAX_MEMBERS);
		}
		for (const cJSON *b = root->child; b != a; b = b->next)
			if (strcmp(a->string, b->string) == 0) {
				px_err_set(err, PX_EXIT_INPUT, "frame names '%.32s' twice",
				           a->string);
				cJSON_Delete(root);
				return -1;
			}
	}
	*ret = root;
	return 0;
}

int px_frame_decode(const uint8_t *buf, size_t len, const struct px_frame_limits *lim,
                    struct px_frame *ret, struct px_err **err)
{
	*ret = (struct px_frame){0};
	if (len == 0 || len > lim->max_frame)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "frame of %zu bytes is over the limit of %" PRIu32, len,
		                  lim->max_frame);
	if (!valid_utf8(buf, len))
		return px_err_set(err, PX_EXIT_INPUT, "frame is not valid UTF-8");
	_cleanup_(cJSON_Deletep) cJSON *root = NULL;
	if (one_object(buf, len, &root, err) < 0)
		return -1;
	if (!cJSON_IsObject(root))
		return px_err_set(err, PX_EXIT_INPUT, "frame is not a JSON object");
	/* The id first, so that every later refusal can still be answered to it. */
	if (get_id(root, ret, err) < 0)
		return -1;
	if (has_nul_escape(buf, len))
		return px_err_set(err, PX_EXIT_INPUT, "frame strings may not contain NUL");

	const cJSON *type = cJSON_GetObjectItemCaseSensitive(root, "type");
	if (type && !cJSON_IsNull(type)) {
		if (!cJSON_IsString(type) || !type->valuestring)
			return px_err_set(err, PX_EXIT_INPUT, "frame field 'type' is not a string");
		if (strcmp(type->valuestring, "hello") == 0) {
			ret->type = PX_FRAME_HELLO;
			if (get_string(root, "instance_id", false, PX_FRAME_MAX_INSTANCE,
			               &ret->instance_id, err) < 0 ||
			    get_string(root, "guest", false, PX_FRAME_MAX_INSTANCE, &ret->guest,
			               err) < 0)
				return -1;
			if (!ret->instance_id)
				ret->instance_id = xstrdup("");
			return 0;
		}
		if (strcmp(type->valuestring, "poweroff") == 0) {
			ret->type = PX_FRAME_POWEROFF;
			return 0;
		}
		return px_err_set(err, PX_EXIT_INPUT, "unknown frame type");
	}

	ret->type = PX_FRAME_REQUEST;
	struct px_pep_request *r = &ret->req;
	if (get_string(root, "method", true, 0, &r->method, err) < 0 ||
	    get_string(root, "url", true, 0, &r->url, err) < 0 ||
	    get_headers(root, lim->max_headers, &r->headers, err) < 0)
		return -1;
	_cleanup_free_ char *b64 = NULL;
	if (get_string(root, "body_base64", false, 0, &b64, err) < 0)
		return -1;
	if (b64 &&
	    px_base64_decode(b64, strlen(b64), lim->max_body, &r->body, &r->body_len, err) < 0)
		return px_err_wrap(err, "frame field 'body_base64'");
	if (ret->id)
		r->id = xstrdup(ret->id);
	return 0;
}

void px_frame_free(struct px_frame *f)
{
	if (!f)
		return;
	free(f->id);
	px_pep_request_free(&f->req);
	free(f->instance_id);
	free(f->guest);
	*f = (struct px_frame){0};
}

/* ---- encoding ---- */

static const char b64_alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void px_base64_encode(const unsigned char *p, size_t n, struct px_buf *out)
{
	size_t olen = (n + 2) / 3 * 4;
	size_t start = out->len;
	/* Reserve in one step: the body of a 1 MiB response is the bulk of its frame. */
	if (out->cap < start + olen + 1) {
		out->data = xrealloc(out->data, start + olen + 1);
		out->cap = start + olen + 1;
	}
	char *o = out->data + start;
	size_t i = 0;
	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		*o++ = b64_alphabet[v >> 18];
		*o++ = b64_alphabet[(v >> 12) & 63];
		*o++ = b64_alphabet[(v >> 6) & 63];
		*o++ = b64_alphabet[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
		*o++ = b64_alphabet[v >> 18];
		*o++ = b64_alphabet[(v >> 12) & 63];
		*o++ = i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=';
		*o++ = '=';
	}
	out->len = start + olen;
	out->data[out->len] = '\0';
}

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int px_base64_decode(const char *s, size_t n, size_t max, unsigned char **ret, size_t *ret_len,
                     struct px_err **err)
{
	if (n % 4 == 0 && n >= 1 && s[n - 1] == '=')
		n -= (n >= 2 && s[n - 2] == '=') ? 2 : 1;
	if (n % 4 == 1)
		return px_err_set(err, PX_EXIT_INPUT, "invalid base64 length");
	size_t olen = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
	if (olen > max)
		return px_err_set(err, PX_EXIT_INPUT, "body of %zu bytes is over the limit of %zu",
		                  olen, max);
	_cleanup_free_ unsigned char *o = xmalloc(olen ? olen : 1);
	size_t w = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		int v = b64_value((unsigned char)s[i]);
		if (v < 0)
			return px_err_set(err, PX_EXIT_INPUT, "invalid base64 at byte %zu", i);
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			o[w++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* Leftover bits must be zero, so each body has exactly one spelling. */
	if (acc != 0)
		return px_err_set(err, PX_EXIT_INPUT, "invalid base64 padding bits");
	*ret = steal_ptr(&o);
	*ret_len = w;
	return 0;
}

/* Appends s as a JSON string. Bytes that are not valid UTF-8 (upstream header values may be
 * Latin-1) are written as \u00XX, so the frame is always valid JSON. */
static void json_str(struct px_buf *out, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	px_buf_puts(out, "\"");
	size_t run = 0; /* start of bytes copied verbatim */
	size_t i = 0;
	while (p[i]) {
		unsigned char c = p[i];
		size_t seq = 0;
		if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
			i++;
			continue;
		}
		if (c >= 0x80)
			seq = utf8_seq(p + i, SIZE_MAX);
		if (seq) {
			i += seq;
			continue;
		}
		px_buf_append(out, s + run, i - run, NULL);
		char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
		if (c == '"' || c == '\\') {
			esc[1] = (char)c;
			px_buf_append(out, esc, 2, NULL);
		} else if (c == '\n') {
			px_buf_puts(out, "\\n");
		} else if (c == '\r') {
			px_buf_puts(out, "\\r");
		} else if (c == '\t') {
			px_buf_puts(out, "\\t");
		} else {
			esc[1] = 'u';
			esc[2] = '0';
			esc[3] = '0';
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			px_buf_append(out, esc, 6, NULL);
		}
		i++;
		run = i;
	}
	px_buf_append(out, s + run, i - run, NULL);
	px_buf_puts(out, "\"");
}

static void put_id(struct px_buf *out, const char *id, bool numeric)
{
	if (!id)
		return;
	px_buf_puts(out, "\"id\":");
	if (numeric)
		px_buf_puts(out, id);
	else
		json_str(out, id);
	px_buf_puts(out, ",");
}

static void put_headers(struct px_buf *out, const struct px_pep_headers *h)
{
	px_buf_puts(out, "\"headers\":[");
	for (size_t i = 0; i < h->n; i++) {
		px_buf_puts(out, i ? ",[" : "[");
		json_str(out, h->v[i].name ? h->v[i].name : "");
		px_buf_puts(out, ",");
		json_str(out, h->v[i].value ? h->v[i].value : "");
		px_buf_puts(out, "]");
	}
	px_buf_puts(out, "]");
}

static size_t begin(struct px_buf *out)
{
	size_t start = out->len;
	px_buf_append(out, "\0\0\0\0", PX_FRAME_HEADER, NULL);
	return start;
}

static int finish(struct px_buf *out, size_t start, struct px_err **err)
{
	size_t len = out->len - start - PX_FRAME_HEADER;
	if (len > UINT32_MAX) {
		out->len = start;
		out->data[start] = '\0';
		return px_err_set(err, PX_EXIT_INPUT, "frame of %zu bytes does not fit 32 bits",
		                  len);
	}
	uint8_t *h = (uint8_t *)out->data + start;
	h[0] = (uint8_t)(len >> 24);
	h[1] = (uint8_t)(len >> 16);
	h[2] = (uint8_t)(len >> 8);
	h[3] = (uint8_t)len;
	return 0;
}

int px_frame_encode_response(const char *id, bool id_numeric, const struct px_pep_response *r,
                             struct px_buf *out, struct px_err **err)
{
	size_t start = begin(out);
	px_buf_puts(out, "{");
	put_id(out, id, id_numeric);
	px_buf_printf(out, "\"status\":%d,", r->code == PX_PEP_OK ? r->status : 0);
	if (r->code == PX_PEP_OK) {
		put_headers(out, &r->headers);
		px_buf_puts(out, ",\"body_base64\":\"");
		px_base64_encode(r->body, r->body_len, out);
		px_buf_puts(out, "\",\"error\":null}");
	} else {
		px_buf_puts(out, "\"headers\":[],\"body_base64\":\"\",\"error\":{\"code\":");
		json_str(out, px_pep_code_name(r->code));
		px_buf_puts(out, ",\"message\":");
		json_str(out, r->message ? r->message : px_pep_code_name(r->code));
		px_buf_puts(out, "}}");
	}
	return finish(out, start, err);
}

void px_frame_encode_error(const char *id, bool id_numeric, enum px_pep_code code,
                           const char *message, struct px_buf *out)
{
	struct px_pep_response r = {.code = code, .message = (char *)message};
	/* An error frame has no body, so it always fits. */
	px_frame_encode_response(id, id_numeric, &r, out, NULL);
}

int px_frame_encode_request(const char *id, bool id_numeric, const struct px_pep_request *r,
                            struct px_buf *out, struct px_err **err)
{
	size_t start = begin(out);
	px_buf_puts(out, "{");
	put_id(out, id, id_numeric);
	px_buf_puts(out, "\"method\":");
	json_str(out, r->method ? r->method : "");
	px_buf_puts(out, ",\"url\":");
	json_str(out, r->url ? r->url : "");
	px_buf_puts(out, ",");
	put_headers(out, &r->headers);
	px_buf_puts(out, ",\"body_base64\":\"");
	px_base64_encode(r->body, r->body_len, out);
	px_buf_puts(out, "\"}");
	return finish(out, start, err);
}

void px_frame_encode_hello_ok(struct px_buf *out)
{
	size_t start = begin(out);
	px_buf_puts(out, "{\"type\":\"hello\",\"ok\":true}");
	finish(out, start, NULL);
}

void px_frame_encode_poweroff(struct px_buf *out)
{
	size_t start = begin(out);
	px_buf_puts(out, "{\"type\":\"poweroff\"}");
	finish(out, start, NULL);
}
