/* The frame codec: length prefix limits, request and control decoding, every refusal, and
 * encodings read back by independent code (OpenSSL's base64, cJSON's parser). */
#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "core/common.h"

#include "core/buf.h"
#include "pep/frame.h"
#include "tap.h"

static const struct px_frame_limits lim = {
        .max_frame = 4096,
        .max_headers = 4,
        .max_body = 16,
};

static int decode(const char *json, struct px_frame *f, char **ret_msg)
{
	struct px_err *err = NULL;
	int rc = px_frame_decode((const uint8_t *)json, strlen(json), &lim, f, &err);
	if (ret_msg)
		*ret_msg = err ? xstrdup(err->msg) : NULL;
	px_err_free(err);
	return rc;
}

static void refused(const char *json, const char *why, const char *name)
{
	struct px_frame f;
	char *msg = NULL;
	ok(decode(json, &f, &msg) < 0, "refuses %s", name);
	like(msg, why, name);
	free(msg);
	px_frame_free(&f);
}

static void test_length(void)
{
	struct px_err *err = NULL;
	uint32_t len = 0;
	const uint8_t small[4] = {0, 0, 0x10, 0};
	ok(px_frame_length(small, 4096, &len, &err) == 0 && len == 4096, "length at the limit");
	const uint8_t over[4] = {0, 0, 0x10, 1};
	ok(px_frame_length(over, 4096, &len, &err) < 0, "length one past the limit");
	like(err ? err->msg : NULL, "4097 bytes is over the limit of 4096", "limit message");
	px_err_clear(&err);
	const uint8_t huge[4] = {0xff, 0xff, 0xff, 0xff};
	ok(px_frame_length(huge, 4096, &len, &err) < 0, "a 4 GiB length is refused");
	px_err_clear(&err);
	const uint8_t zero[4] = {0, 0, 0, 0};
	ok(px_frame_length(zero, 4096, &len, &err) < 0, "an empty frame is refused");
	px_err_clear(&err);
}

static void test_request(void)
{
	struct px_frame f;
	char *msg = NULL;
	int rc = decode("{\"id\":\"a1\",\"method\":\"POST\",\"url\":\"https://example.com/x\","
	                "\"headers\":[[\"Accept\",\"*/*\"],[\"X-A\",\"caf\\u00e9\"]],"
	                "\"body_base64\":\"aGVsbG8=\",\"extra\":1}",
	                &f, &msg);
	ok(rc == 0, "decodes a full request (%s)", msg ? msg : "ok");
	free(msg);
	is_int(f.type, PX_FRAME_REQUEST, "type is request");
	is_str(f.id, "a1", "string id");
	ok(!f.id_numeric, "string id is not numeric");
	is_str(f.req.id, "a1", "request carries the id");
	is_str(f.req.method, "POST", "method");
	is_str(f.req.url, "https://example.com/x", "url");
	is_int(f.req.headers.n, 2, "two headers");
	is_str(f.req.headers.v[1].value, "caf\xc3\xa9", "unicode escape decoded to UTF-8");
	ok(f.req.body_len == 5 && memcmp(f.req.body, "hello", 5) == 0, "body decoded");
	px_frame_free(&f);

	ok(decode("{\"id\":42,\"method\":\"GET\",\"url\":\"http://a/\"}", &f, NULL) == 0,
	   "numeric id, no headers, no body");
	ok(f.id_numeric && px_streq(f.id, "42"), "numeric id kept as 42");
	ok(f.req.body_len == 0 && f.req.headers.n == 0, "no headers, empty body");
	px_frame_free(&f);

	ok(decode("{\"method\":\"GET\",\"url\":\"http://a/\",\"body_base64\":\"aGk\"}", &f, NULL) ==
	                   0 &&
	           f.req.body_len == 2 && f.id == NULL,
	   "unpadded base64 and no id");
	px_frame_free(&f);
	ok(decode("{\"method\":\"GET\",\"url\":\"http://a/\",\"body_base64\":"
	          "\"MDEyMzQ1Njc4OWFiY2RlZg==\"}",
	          &f, NULL) == 0 &&
	           f.req.body_len == 16,
	   "body at the limit");
	px_frame_free(&f);
}

static void test_control(void)
{
	struct px_frame f;
	ok(decode("{\"type\":\"hello\",\"instance_id\":\"vm-1\",\"guest\":\"pexi-guest/0.1\"}", &f,
	          NULL) == 0,
	   "hello decodes");
	is_int(f.type, PX_FRAME_HELLO, "hello type");
	is_str(f.instance_id, "vm-1", "instance id");
	is_str(f.guest, "pexi-guest/0.1", "guest");
	px_frame_free(&f);
	ok(decode("{\"type\":\"hello\"}", &f, NULL) == 0 && px_streq(f.instance_id, ""),
	   "hello without instance id");
	px_frame_free(&f);
	ok(decode("{\"type\":\"poweroff\"}", &f, NULL) == 0 && f.type == PX_FRAME_POWEROFF,
	   "poweroff decodes");
	px_frame_free(&f);
}

static void test_refusals(void)
{
	refused("{\"method\":\"GET\"", "not valid JSON", "truncated JSON");
	refused("[1,2]", "not a JSON object", "an array");
	refused("{\"url\":\"http://a/\"}", "no 'method'", "missing method");
	refused("{\"method\":\"GET\",\"url\":7}", "'url' is not a string", "numeric url");
	refused("{\"method\":\"GET\",\"url\":\"http://a/\",\"headers\":{}}", "not an array",
	        "headers as object");
	refused("{\"method\":\"GET\",\"url\":\"http://a/\",\"headers\":[[\"a\"]]}",
	        "header 1 is not", "one-element header");
	refused("{\"method\":\"GET\",\"url\":\"http://a/\",\"headers\":[[\"a\",1]]}",
	        "header 1 is not", "numeric header value");
	refused("{\"method\":\"GET\",\"url\":\"http://a/"
	        "\",\"headers\":[[\"a\",\"1\"],[\"a\",\"1\"],"
	        "[\"a\",\"1\"],[\"a\",\"1\"],[\"a\",\"1\"]]}",
	        "more than 4 headers", "too many headers");
	refused("{\"method\":\"GET\",\"url\":\"http://a/\",\"body_base64\":\"a$==\"}",
	        "invalid base64", "bad base64 byte");
	refused("{\"method\":\"GET\",\"url\":\"http://a/\",\"body_base64\":\"aGVsbG9=\"}",
	        "padding bits", "non-canonical base64");
	refused("{\"method\":\"GET\",\"url\":\"http://a/\",\"body_base64\":"
	        "\"MDEyMzQ1Njc4OWFiY2RlZmc=\"}",
	        "17 bytes is over the limit of 16", "body one past the limit");
	refused("{\"method\":\"GET\",\"url\":\"http://a/\\u0000.evil\"}", "may not contain NUL",
	        "NUL escape in url");
	refused("{\"id\":1.5,\"method\":\"GET\",\"url\":\"http://a/\"}", "whole number",
	        "fractional id");
	refused("{\"id\":-1,\"method\":\"GET\",\"url\":\"http://a/\"}", "whole number",
	        "negative id");
	refused("{\"type\":\"reboot\"}", "unknown frame type", "unknown control type");
	/* One object, each member once: no reader may see a different request than ours. */
	refused("{\"method\":\"GET\",\"url\":\"http://ok.test/\",\"url\":\"http://127.0.0.1/\"}",
	        "names 'url' twice", "a second url");
	refused("{\"method\":\"GET\",\"method\":\"DELETE\",\"url\":\"http://a/\"}",
	        "names 'method' twice", "a second method");
	refused("{\"method\":\"GET\",\"url\":\"http://a/\"} "
	        "{\"method\":\"GET\",\"url\":\"http://b/\"}",
	        "bytes after its JSON object", "a second object after the first");
	refused("{\"method\":\"GET\",\"url\":\"http://a/\"}x", "bytes after its JSON object",
	        "trailing garbage");
	refused("\xef\xbb\xbf{\"method\":\"GET\",\"url\":\"http://a/\"}", "byte order mark",
	        "a leading byte order mark");
	{
		struct px_buf many = {.max = 0};
		px_buf_puts(&many, "{\"method\":\"GET\",\"url\":\"http://a/\"");
		for (int i = 0; i < PX_FRAME_MAX_MEMBERS; i++)
			px_buf_printf(&many, ",\"x%d\":0", i);
		px_buf_puts(&many, "}");
		refused(many.data, "more than 32 members", "too many members");
		px_buf_free(&many);
	}
	refused("{\"type\":\"hello\",\"instance_id\":5}", "not a string", "numeric instance id");

	/* A refused frame still yields its id, so the refusal can be answered to it. */
	struct px_frame f;
	ok(decode("{\"id\":\"r9\",\"method\":5}", &f, NULL) < 0 && px_streq(f.id, "r9"),
	   "id survives a refusal");
	px_frame_free(&f);

	char longid[PX_FRAME_MAX_ID + 40];
	int n = snprintf(longid, sizeof(longid), "{\"id\":\"%0*d\"}", PX_FRAME_MAX_ID + 1, 0);
	ok(n > 0, "built a long id");
	refused(longid, "id is longer", "overlong id");

	/* An escaped backslash before u0000 is not a NUL. */
	ok(decode("{\"method\":\"GET\",\"url\":\"http://a/\\\\u0000\"}", &f, NULL) == 0,
	   "escaped backslash then u0000 is text");
	px_frame_free(&f);
}

static void test_base64_vs_openssl(void)
{
	unsigned char data[300];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i * 37 + 11);
	int all = 1;
	for (size_t n = 0; n < sizeof(data); n += 7) {
		struct px_buf b = PX_BUF_INIT;
		px_base64_encode(data, n, &b);
		unsigned char ref[420];
		int rn = EVP_EncodeBlock(ref, data, (int)n);
		if (rn < 0 || (size_t)rn != b.len || memcmp(ref, b.data, b.len) != 0)
			all = 0;
		unsigned char *back = NULL;
		size_t blen = 0;
		if (px_base64_decode(b.data, b.len, n, &back, &blen, NULL) < 0 || blen != n ||
		    memcmp(back, data, n) != 0)
			all = 0;
		free(back);
		px_buf_free(&b);
	}
	ok(all, "base64 matches OpenSSL's EVP_EncodeBlock and decodes back, 0..300 bytes");
}

static void test_encode(void)
{
	struct px_pep_header hv[2] = {{"Content-Type", "text/plain"}, {"X-Latin", "a\xe9\x01\"b"}};
	struct px_pep_response r = {
	        .status = 200,
	        .headers = {hv, 2},
	        .body = (unsigned char *)"hello",
	        .body_len = 5,
	};
	struct px_buf b = PX_BUF_INIT;
	ok(px_frame_encode_response("7", true, &r, &b, NULL) == 0, "encodes a response");
	uint32_t len = 0;
	ok(px_frame_length((const uint8_t *)b.data, UINT32_MAX, &len, NULL) == 0 &&
	           len == b.len - 4,
	   "length prefix matches");
	cJSON *j = cJSON_ParseWithLength(b.data + 4, b.len - 4);
	ok(j != NULL, "cJSON parses the response");
	ok(cJSON_GetObjectItem(j, "id") && cJSON_IsNumber(cJSON_GetObjectItem(j, "id")) &&
	           cJSON_GetObjectItem(j, "id")->valueint == 7,
	   "numeric id echoed as a number");
	is_int(cJSON_GetObjectItem(j, "status")->valueint, 200, "status");
	is_str(cJSON_GetObjectItem(j, "body_base64")->valuestring, "aGVsbG8=", "body");
	ok(cJSON_IsNull(cJSON_GetObjectItem(j, "error")), "error is null");
	const cJSON *h1 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "headers"), 1);
	is_str(cJSON_GetArrayItem(h1, 1)->valuestring, "a\xc3\xa9\x01\"b",
	       "latin-1 byte escaped as U+00E9, control and quote escaped");
	cJSON_Delete(j);
	px_buf_free(&b);

	px_frame_encode_error("q\"1", false, PX_PEP_SSRF_BLOCKED, "blocked", &b);
	j = cJSON_ParseWithLength(b.data + 4, b.len - 4);
	ok(j != NULL, "cJSON parses the error frame");
	is_str(cJSON_GetObjectItem(j, "id")->valuestring, "q\"1", "string id escaped");
	is_int(cJSON_GetObjectItem(j, "status")->valueint, 0, "status 0");
	is_str(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "code")->valuestring,
	       "ssrf_blocked", "error code");
	cJSON_Delete(j);
	px_buf_free(&b);

	/* A request encoded by us decodes to the same request. */
	struct px_pep_header rh[1] = {{"Accept", "x"}};
	struct px_pep_request q = {.method = "PUT",
	                           .url = "http://h/p",
	                           .headers = {rh, 1},
	                           .body = (unsigned char *)"abc",
	                           .body_len = 3};
	ok(px_frame_encode_request("z", false, &q, &b, NULL) == 0, "encodes a request");
	struct px_frame f;
	struct px_err *err = NULL;
	ok(px_frame_decode((uint8_t *)b.data + 4, b.len - 4, &lim, &f, &err) == 0 &&
	           px_streq(f.req.method, "PUT") && px_streq(f.req.url, "http://h/p") &&
	           f.req.body_len == 3 && px_streq(f.id, "z") && f.req.headers.n == 1,
	   "request round trip");
	px_err_free(err);
	px_frame_free(&f);
	px_buf_free(&b);

	px_frame_encode_hello_ok(&b);
	px_frame_encode_poweroff(&b);
	ok(b.len == 4 + 26 + 4 + 19 &&
	           memcmp(b.data + 4, "{\"type\":\"hello\",\"ok\":true}", 26) == 0 &&
	           memcmp(b.data + 34, "{\"type\":\"poweroff\"}", 19) == 0,
	   "hello and poweroff frames back to back");
	px_buf_free(&b);
}

int main(void)
{
	test_length();
	test_request();
	test_control();
	test_refusals();
	test_base64_vs_openssl();
	test_encode();
	return done_testing();
}
