/* The guest helper's multiplexing core (src/guest/mux.c, compiled in here since the helper
 * is not part of libpexi). Rewritten frames are checked with cJSON, an independent JSON
 * parser, not with the scanner under test. */
#include <cjson/cJSON.h>
#include <stdlib.h>

#include "guest/mux.c"
#include "tap.h"

/* What the deliver callback saw, in order. */
struct seen {
	int conn[32];
	char *frame[32];
	size_t n;
};

static void record(void *ctx, int conn, char *frame, size_t len)
{
	struct seen *s = ctx;
	if (s->n < 32) {
		s->conn[s->n] = conn;
		s->frame[s->n] = strndup(frame, len);
		s->n++;
	}
	free(frame);
}

static void seen_reset(struct seen *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->frame[i]);
	s->n = 0;
}

static int find(const char *text, const char *key, struct px_json_member *m)
{
	return px_json_find(text, strlen(text), key, m);
}

/* The id member's raw JSON as cJSON prints it, or "(none)". */
static char *id_of(const char *frame)
{
	cJSON *j = cJSON_Parse(frame);
	if (!j)
		return strdup("(not JSON)");
	cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
	char *s = id ? cJSON_PrintUnformatted(id) : strdup("(none)");
	cJSON_Delete(j);
	return s;
}

static char *string_of(const char *frame, const char *key)
{
	cJSON *j = cJSON_Parse(frame);
	cJSON *v = j ? cJSON_GetObjectItemCaseSensitive(j, key) : NULL;
	char *s = cJSON_IsString(v) ? strdup(v->valuestring) : strdup("(none)");
	cJSON_Delete(j);
	return s;
}

static int count_members(const char *frame)
{
	cJSON *j = cJSON_Parse(frame);
	int n = j ? cJSON_GetArraySize(j) : -1;
	cJSON_Delete(j);
	return n;
}

/* Sends 'frame' as a request of conn and returns the tagged frame (or NULL). */
static char *req(struct px_mux *m, int conn, const char *frame)
{
	char *out = NULL;
	size_t len;
	if (px_mux_request(m, conn, frame, strlen(frame), &out, &len) != PX_MUX_FORWARD)
		return NULL;
	return out;
}

/* Answers the tagged request 'tagged' with status 'status'. */
static enum px_mux_verdict answer(struct px_mux *m, const char *tagged, int status, struct seen *s)
{
	char *tag = id_of(tagged);
	char frame[256];
	snprintf(frame, sizeof(frame),
	         "{ \"status\": %d, \"headers\": [[\"a\",\"}\"]], \"id\" : %s, \"error\": null }",
	         status, tag);
	free(tag);
	return px_mux_answer(m, frame, strlen(frame), record, s);
}

static int status_of(const char *frame)
{
	cJSON *j = cJSON_Parse(frame);
	cJSON *v = j ? cJSON_GetObjectItemCaseSensitive(j, "status") : NULL;
	int st = cJSON_IsNumber(v) ? v->valueint : -1;
	cJSON_Delete(j);
	return st;
}

static void test_find(void)
{
	struct px_json_member m;
	const char *t = "{\"method\":\"GET\",\"x\":{\"id\":7},\"id\":\"abc\",\"s\":\"}{\\\"\"}";
	ok(find(t, "id", &m) == 0 && m.found, "top-level id found");
	is_int(m.vend - m.vstart, 5, "its value is the 5 bytes \"abc\"");
	ok(strncmp(t + m.start, "\"id\":\"abc\"", m.end - m.start) == 0, "member span");
	ok(find(t, "type", &m) == 0 && !m.found, "absent key: found is false");
	ok(find("{\"x\":{\"type\":1}}", "type", &m) == 0 && !m.found,
	   "a nested key is not a top-level one");
	ok(find(" {} ", "id", &m) == 0 && !m.found, "empty object");
	ok(find("{\"i\\u0064\":1}", "id", &m) < 0, "a key written with an escape is refused");
	ok(find("{\"id\":1,\"id\":2}", "id", &m) < 0, "a duplicate key is refused");
	ok(find("{\"id\":1} x", "id", &m) < 0, "trailing text is refused");
	ok(find("[1]", "id", &m) < 0, "an array is not a frame");
	ok(find("{\"id\":}", "id", &m) < 0, "a missing value is refused");
	ok(find("{\"a\":[}", "id", &m) < 0, "unbalanced brackets are refused");
	ok(find("{\"a\":\"open}", "id", &m) < 0, "an unterminated string is refused");
	ok(find("", "id", &m) < 0, "empty text is refused");

	char deep[600];
	size_t n = 0;
	n += (size_t)snprintf(deep, sizeof(deep), "{\"a\":");
	for (int i = 0; i < 257; i++)
		deep[n++] = '[';
	for (int i = 0; i < 257; i++)
		deep[n++] = ']';
	deep[n++] = '}';
	ok(px_json_find(deep, n, "id", &m) < 0, "nesting deeper than 256 is refused");
	ok(px_json_find(deep + 2, 0, "id", &m) < 0, "zero length is refused");
}

static void test_string(void)
{
	const char *t = "\"a\\\"b\\\\c\\/d\\n\\u00e9\\ud83d\\ude00\"";
	char *s = px_json_string(t, strlen(t));
	is_str(s, "a\"b\\c/d\n\xc3\xa9\xf0\x9f\x98\x80", "escapes, \\u00e9 and a surrogate pair");
	free(s);
	s = px_json_string("\"\\u0000\"", 8);
	ok(s == NULL, "\\u0000 is refused");
	free(s);
	s = px_json_string("\"\\ud800x\"", 9);
	is_str(s, "\xef\xbf\xbdx", "a lone surrogate becomes U+FFFD");
	free(s);
	ok(px_json_string("abc", 3) == NULL, "not a string");
	ok(px_json_string("\"\\q\"", 4) == NULL, "an unknown escape is refused");

	char q[64];
	size_t n = px_json_quote("a\"\\\n\x01", 5, q, sizeof(q));
	is_str(q, "\"a\\\"\\\\\\u000a\\u0001\"", "quote escapes quotes, backslashes, controls");
	is_int(n, strlen(q), "quote returns the length");
	cJSON *j = cJSON_Parse(q);
	is_str(cJSON_IsString(j) ? j->valuestring : NULL, "a\"\\\n\x01", "cJSON reads it back");
	cJSON_Delete(j);
	is_int(px_json_quote("abcdef", 6, q, 6), 0, "quote reports what does not fit");
}

static void test_tagging(void)
{
	struct px_mux m;
	px_mux_init(&m);

	char *a = req(&m, 1, "{\"id\":\"client-1\",\"method\":\"GET\",\"url\":\"http://x/\"}");
	char *b = req(&m, 1, "{ \"method\" : \"GET\" , \"url\":\"http://y/\" }");
	char *c = req(&m, 2, "{\"method\":\"GET\",\"id\":{\"n\":[1,2]},\"url\":\"http://z/\"}");
	ok(a && b && c, "three requests forwarded");
	char *ia = id_of(a), *ib = id_of(b), *ic = id_of(c);
	is_str(ia, "\"g1\"", "the client's id is replaced by the tag");
	is_str(ib, "\"g2\"", "a frame without id gets one");
	is_str(ic, "\"g3\"", "an object id is replaced too");
	ok(strncmp(a, "{\"id\":\"g1\",", 11) == 0, "the tag is the first member");
	char *url = string_of(b, "url");
	is_str(url, "http://y/", "the other members pass unchanged");
	is_int(count_members(a), 3, "no member added or lost");
	is_int(m.n, 3, "three pending");
	size_t held;
	is_int(px_mux_pending(&m, 1, &held), 2, "two pending for connection 1");
	is_int(held, 0, "nothing held yet");

	char *out = NULL;
	size_t len;
	const char *ctl = "{\"type\":\"hello\",\"instance_id\":\"evil\"}";
	is_int(px_mux_request(&m, 1, ctl, strlen(ctl), &out, &len), PX_MUX_CONTROL,
	       "an app's control frame is not forwarded");
	is_int(px_mux_request(&m, 1, "{\"id\":1", 7, &out, &len), PX_MUX_INVALID,
	       "a broken frame is invalid");
	is_int(m.n, 3, "refused frames are not recorded");
	free(ia);
	free(ib);
	free(ic);
	free(url);
	free(a);
	free(b);
	free(c);
	px_mux_free(&m);
}

static void test_routing(void)
{
	struct px_mux m;
	struct seen s = {0};
	px_mux_init(&m);

	/* Connection 1: two requests with ids; connection 2: three without. */
	char *a1 = req(&m, 1, "{\"id\":\"x\",\"method\":\"GET\"}");
	char *a2 = req(&m, 1, "{\"id\":42,\"method\":\"GET\"}");
	char *b1 = req(&m, 2, "{\"method\":\"GET\",\"url\":\"1\"}");
	char *b2 = req(&m, 2, "{\"method\":\"GET\",\"url\":\"2\"}");
	char *b3 = req(&m, 2, "{\"method\":\"GET\",\"url\":\"3\"}");

	is_int(answer(&m, a2, 202, &s), PX_MUX_ROUTED, "answer to the second id'd request");
	is_int(s.n, 1, "an answer with an id goes out at once, out of order");
	is_int(s.conn[0], 1, "to its connection");
	char *id = id_of(s.frame[0]);
	is_str(id, "42", "with the app's own numeric id back");
	free(id);
	is_int(status_of(s.frame[0]), 202, "and the host's status");
	is_int(count_members(s.frame[0]), 4, "all members kept");
	seen_reset(&s);

	is_int(answer(&m, b3, 203, &s), PX_MUX_ROUTED, "answer to the third id-less request");
	is_int(answer(&m, b2, 202, &s), PX_MUX_ROUTED, "answer to the second id-less request");
	is_int(s.n, 0, "id-less answers wait for the first one");
	size_t held;
	is_int(px_mux_pending(&m, 2, &held), 3, "three pending on connection 2");
	ok(held > 0, "two held answers count their bytes");
	is_int(answer(&m, b1, 201, &s), PX_MUX_ROUTED, "answer to the first id-less request");
	is_int(s.n, 3, "then all three go out");
	ok(s.n == 3 && status_of(s.frame[0]) == 201 && status_of(s.frame[1]) == 202 &&
	           status_of(s.frame[2]) == 203,
	   "in request order");
	id = s.n ? id_of(s.frame[0]) : NULL;
	is_str(id, "(none)", "and without an id, as they were sent");
	free(id);
	seen_reset(&s);

	is_int(answer(&m, b1, 200, &s), PX_MUX_UNKNOWN, "a second answer to a request is unknown");
	const char *ctl = "{\"type\":\"poweroff\"}";
	is_int(px_mux_answer(&m, ctl, strlen(ctl), record, &s), PX_MUX_CONTROL,
	       "poweroff is a control frame");
	const char *hello = "{\"type\":\"hello\",\"ok\":true,\"id\":\"not-ours\"}";
	is_int(px_mux_answer(&m, hello, strlen(hello), record, &s), PX_MUX_CONTROL,
	       "a typed frame with a foreign id is a control frame");
	const char *stray = "{\"id\":\"g999\",\"status\":200}";
	is_int(px_mux_answer(&m, stray, strlen(stray), record, &s), PX_MUX_UNKNOWN,
	       "an unknown tag is unknown");
	is_int(px_mux_answer(&m, "{]", 2, record, &s), PX_MUX_INVALID, "garbage is invalid");
	is_int(s.n, 0, "none of those was delivered");

	/* Connection 1 closes: the late answer to its request is dropped. */
	px_mux_drop_conn(&m, 1);
	is_int(answer(&m, a1, 200, &s), PX_MUX_UNKNOWN, "answers for a closed connection");
	is_int(m.n, 0, "nothing left pending");

	free(a1);
	free(a2);
	free(b1);
	free(b2);
	free(b3);
	px_mux_free(&m);
}

static void test_fail_all(void)
{
	struct px_mux m;
	struct seen s = {0};
	px_mux_init(&m);
	char *a = req(&m, 5, "{\"method\":\"GET\"}");
	char *b = req(&m, 5, "{\"method\":\"GET\"}");
	char *c = req(&m, 6, "{\"id\":\"k\",\"method\":\"GET\"}");
	answer(&m, b, 299, &s);
	is_int(s.n, 0, "the second answer waits for the first");
	px_mux_fail_all(&m, "channel \"lost\"", record, &s);
	is_int(s.n, 3, "every pending request is answered");
	is_int(m.n, 0, "and forgotten");
	cJSON *j = s.n == 3 ? cJSON_Parse(s.frame[0]) : NULL;
	cJSON *e = j ? cJSON_GetObjectItemCaseSensitive(j, "error") : NULL;
	cJSON *code = e ? cJSON_GetObjectItemCaseSensitive(e, "code") : NULL;
	cJSON *msg = e ? cJSON_GetObjectItemCaseSensitive(e, "message") : NULL;
	is_str(cJSON_IsString(code) ? code->valuestring : NULL, "http_error",
	       "the first gets an http_error");
	is_str(cJSON_IsString(msg) ? msg->valuestring : NULL, "channel \"lost\"",
	       "with the message, quoted correctly");
	cJSON_Delete(j);
	ok(s.n == 3 && s.conn[0] == 5 && s.conn[1] == 5 && status_of(s.frame[1]) == 299,
	   "the held real answer follows in order");
	char *id = s.n == 3 ? id_of(s.frame[2]) : NULL;
	is_str(id, "\"k\"", "the failed id'd request gets its own id back");
	free(id);
	seen_reset(&s);
	free(a);
	free(b);
	free(c);
	px_mux_free(&m);
}

static void test_fail_one(void)
{
	struct px_mux m;
	struct seen s = {0};
	px_mux_init(&m);
	uint64_t tag = 0;
	ok(px_mux_prefix_tag(" { \"id\" : \"g42\", \"status\":200, \"body_base64\":\"AAAA", 37,
	                     &tag),
	   "the tag is read from the start of a frame");
	is_int(tag, 42, "tag 42");
	ok(!px_mux_prefix_tag("{\"status\":200,\"id\":\"g1\"}", 25, &tag),
	   "only a leading id counts");
	ok(!px_mux_prefix_tag("{\"id\":\"g12", 10, &tag), "a cut-off id is no tag");
	ok(!px_mux_prefix_tag("{\"id\":\"x1\"", 11, &tag), "a foreign id is no tag");

	char *a = req(&m, 3, "{\"method\":\"GET\"}");
	char *b = req(&m, 3, "{\"method\":\"GET\"}");
	char *c = req(&m, 4, "{\"id\":9,\"method\":\"GET\"}");
	px_mux_fail_one(&m, 3, "constraint_violation", "too big", record, &s);
	is_int(s.n, 1, "the failed id'd request is answered at once");
	char *id = s.n ? id_of(s.frame[0]) : NULL;
	is_str(id, "9", "with its own id");
	free(id);
	cJSON *j = s.n ? cJSON_Parse(s.frame[0]) : NULL;
	cJSON *e = j ? cJSON_GetObjectItemCaseSensitive(j, "error") : NULL;
	cJSON *code = e ? cJSON_GetObjectItemCaseSensitive(e, "code") : NULL;
	is_str(cJSON_IsString(code) ? code->valuestring : NULL, "constraint_violation",
	       "and the code given");
	cJSON_Delete(j);
	seen_reset(&s);
	px_mux_fail_one(&m, 2, "constraint_violation", "too big", record, &s);
	is_int(s.n, 0, "a failed id-less answer still waits for the one before it");
	answer(&m, a, 200, &s);
	ok(s.n == 2 && status_of(s.frame[0]) == 200 && status_of(s.frame[1]) == 0,
	   "then both go out in order");
	px_mux_fail_one(&m, 2, "constraint_violation", "again", record, &s);
	is_int(s.n, 2, "failing a request no longer pending does nothing");
	is_int(m.n, 0, "nothing pending");
	seen_reset(&s);
	free(a);
	free(b);
	free(c);
	px_mux_free(&m);
}

/* Many interleaved connections, answered in reverse: every connection gets exactly its
 * own answers, id-less ones in order. */
static void test_many(void)
{
	struct px_mux m;
	struct seen s = {0};
	px_mux_init(&m);
	char *tagged[30];
	char frame[64];
	for (int i = 0; i < 30; i++) {
		snprintf(frame, sizeof(frame), "{\"method\":\"GET\",\"url\":\"%d\"}", i);
		tagged[i] = req(&m, i % 3, frame);
	}
	for (int i = 29; i >= 0; i--)
		answer(&m, tagged[i], 100 + i, &s);
	is_int(s.n, 30, "thirty answers delivered");
	int bad = 0, last[3] = {-1, -1, -1};
	for (size_t k = 0; k < s.n; k++) {
		int st = status_of(s.frame[k]) - 100;
		if (st % 3 != s.conn[k] || st <= last[s.conn[k]])
			bad++;
		last[s.conn[k]] = st;
	}
	is_int(bad, 0, "each to its connection, in request order");
	seen_reset(&s);
	for (int i = 0; i < 30; i++)
		free(tagged[i]);
	px_mux_free(&m);
}

int main(void)
{
	test_find();
	test_string();
	test_tagging();
	test_routing();
	test_fail_all();
	test_fail_one();
	test_many();
	return done_testing();
}
