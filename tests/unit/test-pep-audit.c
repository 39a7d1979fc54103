/* The audit log: fields of a record, header values never logged, the hash chain checked by
 * independent code (OpenSSL's SHA-256 over the text, cJSON for the fields), continuing a
 * chain after reopening, concurrent writers, and the verifier naming the first broken line
 * for each kind of tampering. */
#include <cjson/cJSON.h>
#include <openssl/sha.h>
#include <pthread.h>

#include "core/common.h"

#include "core/file.h"
#include "pep/audit.h"
#include "tap.h"

static char dir[64];
static char logpath[128];

static void fill(struct px_pep_request *req, struct px_pep_response *resp, struct px_pep_trace *t,
                 struct px_pep_header *hv)
{
	hv[0] = (struct px_pep_header){"Authorization", "Bearer SECRET-TOKEN-1"};
	hv[1] = (struct px_pep_header){"Cookie", "session=SECRET-COOKIE-2"};
	*req = (struct px_pep_request){.id = "r1",
	                               .method = "GET",
	                               .url = "https://user:SECRET-PW@example.com/a?q=1",
	                               .headers = {hv, 2}};
	*resp = (struct px_pep_response){.status = 200};
	*t = (struct px_pep_trace){.decision = "allow",
	                           .host = "example.com",
	                           .port = 443,
	                           .path = "/a",
	                           .bytes_in = 1234,
	                           .total_ms = 1.23456};
	memcpy(t->scheme, "https", 6);
	t->resolved.n = 2;
	t->resolved.v[0].family = AF_INET;
	t->resolved.v[0].u.v4.s_addr = htonl(0x5db8d822); /* 93.184.216.34 */
	t->resolved.v[1].family = AF_INET6;
	t->resolved.v[1].u.v6.s6_addr[0] = 0x26;
	t->resolved.v[1].u.v6.s6_addr[15] = 1;
	t->pinned = t->resolved.v[0];
	t->has_pinned = true;
}

static int record(struct px_audit *a, int n)
{
	struct px_pep_header hv[2];
	struct px_pep_request req;
	struct px_pep_response resp;
	struct px_pep_trace t;
	fill(&req, &resp, &t, hv);
	for (int i = 0; i < n; i++)
		if (px_audit_record(a, &req, &resp, &t, NULL) < 0)
			return -1;
	return 0;
}

static char *slurp(void)
{
	char *data = NULL;
	size_t len;
	if (px_file_read(logpath, 64u << 20, &data, &len, NULL) < 0)
		return xstrdup("");
	return data;
}

/* Recomputes the chain with OpenSSL directly: each line's hash covers its text up to
 * ',"hash":', and the next line's prev_hash repeats it. */
static int independent_chain_ok(const char *text, int *ret_lines)
{
	char prev[65];
	memset(prev, '0', 64);
	prev[64] = 0;
	int n = 0;
	for (const char *p = text; *p;) {
		const char *nl = strchr(p, '\n');
		if (!nl)
			return 0;
		const char *h = strstr(p, ",\"hash\":\"");
		if (!h || h > nl)
			return 0;
		unsigned char d[SHA256_DIGEST_LENGTH];
		SHA256((const unsigned char *)p, (size_t)(h - p), d);
		char hex[65];
		for (int i = 0; i < 32; i++)
			snprintf(hex + 2 * i, 3, "%02x", d[i]);
		if (strncmp(h + 9, hex, 64) != 0)
			return 0;
		cJSON *j = cJSON_ParseWithLength(p, (size_t)(nl - p));
		const cJSON *ph = cJSON_GetObjectItem(j, "prev_hash");
		const cJSON *seq = cJSON_GetObjectItem(j, "seq");
		int good = j && cJSON_IsString(ph) && strcmp(ph->valuestring, prev) == 0 &&
		           cJSON_IsNumber(seq) && seq->valueint == n + 1;
		cJSON_Delete(j);
		if (!good)
			return 0;
		memcpy(prev, hex, 65);
		n++;
		p = nl + 1;
	}
	*ret_lines = n;
	return 1;
}

static void test_fields(void)
{
	struct px_audit *a = NULL;
	struct px_err *err = NULL;
	ok(px_audit_open(logpath, "vm-7", &a, &err) == 0, "opens a new log");
	ok(record(a, 1) == 0, "records one request");
	px_audit_close(a);
	_cleanup_free_ char *text = slurp();
	cJSON *j = cJSON_Parse(text);
	ok(j != NULL, "the line is JSON");
	is_int(cJSON_GetObjectItem(j, "seq")->valueint, 1, "seq starts at 1");
	is_str(cJSON_GetObjectItem(j, "instance")->valuestring, "vm-7", "instance");
	is_str(cJSON_GetObjectItem(j, "method")->valuestring, "GET", "method");
	is_str(cJSON_GetObjectItem(j, "host")->valuestring, "example.com", "host");
	is_int(cJSON_GetObjectItem(j, "port")->valueint, 443, "port");
	is_str(cJSON_GetObjectItem(j, "decision")->valuestring, "allow", "decision");
	ok(cJSON_IsNull(cJSON_GetObjectItem(j, "code")), "no error code");
	is_int(cJSON_GetObjectItem(j, "status")->valueint, 200, "status");
	is_str(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "resolved"), 1)->valuestring, "2600::1",
	       "IPv6 answer in its text form");
	is_str(cJSON_GetObjectItem(j, "pinned")->valuestring, "93.184.216.34", "pinned");
	ok(cJSON_GetObjectItem(j, "total_ms")->valuedouble == 1.235, "timing rounded to µs");
	is_str(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "headers"), 0)->valuestring,
	       "Authorization", "header names are logged");
	like(cJSON_GetObjectItem(j, "time")->valuestring, "Z", "UTC time");
	cJSON_Delete(j);
	ok(!strstr(text, "SECRET"), "no Authorization, Cookie or userinfo value in the log");
	px_err_free(err);
}

struct worker {
	struct px_audit *a;
	int rc;
};

static void *hammer(void *p)
{
	struct worker *w = p;
	w->rc = record(w->a, 200);
	return NULL;
}

static void test_chain(void)
{
	struct px_audit *a = NULL;
	struct px_err *err = NULL;
	ok(px_audit_open(logpath, NULL, &a, &err) == 0, "reopens the log");
	ok(record(a, 2) == 0, "appends two more");
	px_audit_close(a);
	uint64_t lines = 0, bad = 0;
	ok(px_audit_verify(logpath, &lines, &bad, &err) == 0 && lines == 3,
	   "the continued chain verifies (3 lines)");

	ok(px_audit_open(logpath, NULL, &a, &err) == 0, "reopens again");
	struct worker w[4];
	pthread_t th[4];
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){a, -1};
		pthread_create(&th[i], NULL, hammer, &w[i]);
	}
	int all = 1;
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		all &= w[i].rc == 0;
	}
	px_audit_close(a);
	ok(all, "four threads wrote 800 lines");
	ok(px_audit_verify(logpath, &lines, &bad, &err) == 0 && lines == 803,
	   "the chain of 803 lines verifies");
	_cleanup_free_ char *text = slurp();
	int n = 0;
	ok(independent_chain_ok(text, &n) && n == 803, "OpenSSL and cJSON agree on the chain");
	px_err_free(err);
}

/* Writes 'text' as the log and checks which line the verifier blames. */
static void expect_bad(const char *text, uint64_t line, const char *why, const char *name)
{
	px_atomic_write_file(logpath, text, strlen(text), 0600, NULL);
	uint64_t lines = 0, bad = 0;
	struct px_err *err = NULL;
	ok(px_audit_verify(logpath, &lines, &bad, &err) < 0 && bad == line, "%s: line %" PRIu64,
	   name, line);
	like(err ? err->msg : NULL, why, name);
	px_err_free(err);
}

static void test_tamper(void)
{
	unlink(logpath);
	struct px_audit *a = NULL;
	px_audit_open(logpath, NULL, &a, NULL);
	record(a, 4);
	px_audit_close(a);
	_cleanup_free_ char *orig = slurp();
	size_t len = strlen(orig);
	char *l2 = strchr(orig, '\n') + 1;
	char *l3 = strchr(l2, '\n') + 1;
	char *l4 = strchr(l3, '\n') + 1;

	_cleanup_free_ char *edited = xstrdup(orig);
	char *st = strstr(edited + (l2 - orig), "\"status\":200");
	st[10] = '4';
	expect_bad(edited, 2, "does not match its hash", "an edited line");

	_cleanup_free_ char *removed = xasprintf("%.*s%s", (int)(l2 - orig), orig, l3);
	expect_bad(removed, 2, "wrong seq", "a removed line");

	_cleanup_free_ char *swapped = xasprintf("%.*s%.*s%.*s%s", (int)(l2 - orig), orig,
	                                         (int)(l4 - l3), l3, (int)(l3 - l2), l2, l4);
	expect_bad(swapped, 2, "wrong seq", "swapped lines");

	_cleanup_free_ char *torn = xstrndup(orig, len - 5);
	expect_bad(torn, 4, "incomplete", "a torn last line");

	_cleanup_free_ char *headless = xstrdup(l2);
	expect_bad(headless, 1, "wrong seq", "the first line removed");

	/* The same removal with seq renumbered still breaks the chain. */
	_cleanup_free_ char *garbage = xasprintf("%.*snot json\n%s", (int)(l2 - orig), orig, l3);
	expect_bad(garbage, 2, "not an audit record", "a foreign line");

	/* A line past the 4 MiB cap is reported, not read whole. */
	size_t big = (5u << 20);
	char *huge = xmalloc((size_t)(l2 - orig) + big + 2);
	memcpy(huge, orig, (size_t)(l2 - orig));
	memset(huge + (l2 - orig), 'x', big);
	huge[(l2 - orig) + big] = '\n';
	huge[(l2 - orig) + big + 1] = '\0';
	expect_bad(huge, 2, "is too long", "an overlong line");
	free(huge);

	/* A torn tail also stops the daemon from continuing the chain. */
	px_atomic_write_file(logpath, torn, strlen(torn), 0600, NULL);
	struct px_err *err = NULL;
	ok(px_audit_open(logpath, NULL, &a, &err) < 0, "refuses to continue after a torn line");
	like(err ? err->msg : NULL, "incomplete line", "torn tail message");
	px_err_free(err);
	unlink(logpath);
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/test-pep-audit.XXXXXX");
	if (!mkdtemp(dir)) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	snprintf(logpath, sizeof(logpath), "%s/audit.jsonl", dir);
	test_fields();
	test_chain();
	test_tamper();
	unlink(logpath);
	rmdir(dir);
	return done_testing();
}
