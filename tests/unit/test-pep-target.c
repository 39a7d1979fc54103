/* px_pep_target_parse / _check / _redirect and px_pep_request_check over the corpora in
 * tests/pep/cases/url.txt and request.txt. Numeric IPv4 spellings are cross-checked with
 * glibc's inet_aton (what the resolver would make of them), and the URL curl will use is
 * re-read with a fresh curl_url() to show it names the host that was judged. */
#include <arpa/inet.h>
#include <ctype.h>

#include "tap.h"

#include "core/common.h"

#include "core/file.h"
#include "manifest/manifest.h"
#include "pep/addr.h"
#include "pep/policy.h"
#include "pep/target.h"
#include "pep-cases.h"

static struct px_pep_policy *policy;

static const char policy_yaml[] =
        "allow: [example.com, '**.example.org', '*.example.net',\n"
        "        xn--bcher-kva.de, 93.184.216.34, 'api.example.io:8443']\n"
        "deny: [bad.example.org]\n"
        "allow_addresses: ['127.0.0.1:18080', '[::1]:8080']\n"
        "methods: [GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS]\n"
        "max_request_bytes: 1024\n";

static struct px_pep_policy *load_policy(void)
{
	char dir[] = "/tmp/test-pep-target.XXXXXX";
	if (!mkdtemp(dir)) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		exit(1);
	}
	_cleanup_free_ char *path = xasprintf("%s/policy.yml", dir);
	struct px_err *err = NULL;
	struct px_manifest *m = NULL;
	struct px_pep_policy *p = NULL;
	if (px_atomic_write_file(path, policy_yaml, strlen(policy_yaml), 0644, &err) < 0 ||
	    px_manifest_load_pep(path, &m, &err) < 0 || px_pep_policy_new(m, &p, &err) < 0) {
		printf("Bail out! policy: %s\n", err ? err->msg : "?");
		exit(1);
	}
	px_manifest_free(m);
	unlink(path);
	rmdir(dir);
	struct px_pep_limits lim = *px_pep_policy_limits(p);
	lim.max_headers = 8;
	lim.max_header_bytes = 256;
	px_pep_policy_set_limits(p, &lim);
	return p;
}

static enum px_pep_code code_of(const char *name)
{
	if (strcmp(name, "ok") == 0)
		return PX_PEP_OK;
	for (int c = PX_PEP_DENIED_BY_POLICY; c <= PX_PEP_HTTP_ERROR; c++)
		if (strcmp(px_pep_code_name((enum px_pep_code)c), name) == 0)
			return (enum px_pep_code)c;
	printf("Bail out! unknown code '%s'\n", name);
	exit(1);
}

static const char *name_of(enum px_pep_code c)
{
	return c == PX_PEP_OK ? "ok" : px_pep_code_name(c);
}

/* The host of the URL curl will use, read back with a parser of its own. */
static char *reparsed_host(const char *url)
{
	CURLU *u = curl_url();
	char *h = NULL, *ret = NULL;
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK) {
		size_t len = strlen(h);
		ret = h[0] == '[' ? xstrndup(h + 1, len - 2) : xstrdup(h);
	}
	curl_free(h);
	curl_url_cleanup(u);
	return ret;
}

static void url_case(struct pep_case *c, void *ctx)
{
	(void)ctx;
	if (c->n != 2 && c->n != 5) {
		ok(0, "url.txt:%d: want URL PARSE [HOST PORT DECISION]", c->line);
		return;
	}
	struct px_pep_target t = {0};
	char msg[256] = "";
	enum px_pep_code want = code_of(c->f[1]);
	enum px_pep_code got = px_pep_target_parse(policy, c->f[0], &t, msg, sizeof(msg));
	if (!ok(got == want, "url.txt:%d: parse %s", c->line, c->f[1]))
		printf("#   got: %s (%s)\n", name_of(got), msg);
	if (got != PX_PEP_OK) {
		ok(msg[0] != '\0', "url.txt:%d: the error says why", c->line);
		return;
	}
	if (c->n == 5) {
		is_str(t.host, c->f[2], "  host");
		is_int(t.port, atoi(c->f[3]), "  port");
		char reason[128] = "";
		enum px_pep_code d = px_pep_target_check(policy, &t, NULL, reason, sizeof(reason));
		if (!ok(d == code_of(c->f[4]), "  decision %s", c->f[4]))
			printf("#   got: %s (%s)\n", name_of(d), reason);
		/* The handle names exactly the judged host: no second interpretation. */
		_cleanup_free_ char *h = reparsed_host(t.url_str);
		is_str(h, t.host, "  curl reads the judged host back");
		char *h2 = NULL;
		curl_url_get(t.url, CURLUPART_HOST, &h2, 0);
		ok(h2 && strstr(h2, t.host), "  the handle holds the normalised host");
		curl_free(h2);
		if (t.host_is_ip) {
			char buf[PX_PEP_ADDR_STRLEN];
			px_pep_addr_format(&t.ip, buf, sizeof(buf));
			is_str(buf, t.host, "  ip matches host");
		}
	}
	px_pep_target_free(&t);
}

/* Every numeric spelling means what glibc's inet_aton (the resolver's reading) says. */
static void test_inet_aton_oracle(void)
{
	static const char *const spellings[] = {
	        "2130706433",
	        "0177.0.0.1",
	        "0x7f.1",
	        "127.1",
	        "127.0.1",
	        "0x7f000001",
	        "0",
	        "017700000001",
	        "0xa9.0xfe.0xa9.0xfe",
	        "2852039166",
	        "1.2.3",
	        "0x1.0x2.0x3.0x4",
	        "00000000000000000001",
	        "0x00000000000007f.1",
	        "255.255.255.255",
	        "0xffffffff",
	        "1.0x10000",
	};
	for (size_t i = 0; i < PX_ARRAY_SIZE(spellings); i++) {
		struct in_addr want;
		_cleanup_free_ char *url = xasprintf("http://%s/", spellings[i]);
		struct px_pep_target t = {0};
		int aton = inet_aton(spellings[i], &want);
		enum px_pep_code got = px_pep_target_parse(policy, url, &t, NULL, 0);
		if (aton) {
			ok(got == PX_PEP_OK && t.host_is_ip && t.ip.family == AF_INET &&
			           t.ip.u.v4.s_addr == want.s_addr,
			   "'%s' is inet_aton's %s", spellings[i], inet_ntoa(want));
		} else {
			ok(got == PX_PEP_INVALID_URL, "'%s' is refused, as inet_aton refuses it",
			   spellings[i]);
		}
		px_pep_target_free(&t);
	}
}

static void test_length_cap(void)
{
	size_t cap = px_pep_policy_limits(policy)->max_url_bytes;
	const char *prefix = "http://example.com/";
	char *url = xmalloc(cap + 2);
	memcpy(url, prefix, strlen(prefix));
	memset(url + strlen(prefix), 'a', cap - strlen(prefix));
	url[cap] = '\0';
	struct px_pep_target t = {0};
	is_int(px_pep_target_parse(policy, url, &t, NULL, 0), PX_PEP_OK, "URL of exactly the cap");
	px_pep_target_free(&t);
	url[cap] = 'a';
	url[cap + 1] = '\0';
	is_int(px_pep_target_parse(policy, url, &t, NULL, 0), PX_PEP_CONSTRAINT_VIOLATION,
	       "URL one byte over the cap");
	free(url);

	/* Host name length: 253 bytes pass, 254 do not; a label of 63 passes, 64 not. */
	char host[300];
	memset(host, 'a', sizeof(host));
	for (size_t i = 63; i < sizeof(host); i += 64)
		host[i] = '.';
	host[253] = '\0';
	_cleanup_free_ char *u253 = xasprintf("http://%s/", host);
	is_int(px_pep_target_parse(policy, u253, &t, NULL, 0), PX_PEP_OK, "253-byte host name");
	px_pep_target_free(&t);
	host[253] = 'a';
	host[254] = '\0';
	_cleanup_free_ char *u254 = xasprintf("http://%s/", host);
	is_int(px_pep_target_parse(policy, u254, &t, NULL, 0), PX_PEP_INVALID_URL,
	       "254-byte host name");
	memset(host, 'b', 64);
	memcpy(host + 64, ".com", 5);
	_cleanup_free_ char *l64 = xasprintf("http://%s/", host);
	is_int(px_pep_target_parse(policy, l64, &t, NULL, 0), PX_PEP_INVALID_URL, "64-byte label");
	_cleanup_free_ char *l63 = xasprintf("http://%s/", host + 1);
	is_int(px_pep_target_parse(policy, l63, &t, NULL, 0), PX_PEP_OK, "63-byte label");
	px_pep_target_free(&t);
}

static void test_parts(void)
{
	struct px_pep_target t = {0};
	char msg[128];
	if (ok(px_pep_target_parse(policy, "HTTPS://Example.COM.:8443/a/../b/%2e%2e/c?x=1&y=2#f",
	                           &t, msg, sizeof(msg)) == PX_PEP_OK,
	       "parse a full URL")) {
		is_str(t.scheme, "https", "scheme lowercased");
		is_str(t.host, "example.com", "host normalised");
		is_int(t.port, 8443, "explicit port");
		ok(!t.host_is_ip, "a name is no IP");
		is_str(t.path, "/b/%2e%2e/c", "path: dot segments removed, query dropped");
		like(t.url_str, "https://example.com:8443/b/%2e%2e/c?x=1&y=2", "url_str");
	}
	px_pep_target_free(&t);
	px_pep_target_free(&t); /* idempotent */
	px_pep_target_free(NULL);
}

static void test_redirect(void)
{
	struct px_pep_target base = {0}, t = {0};
	char msg[128];
	px_pep_target_parse(policy, "https://example.com/a/b?q=1", &base, msg, sizeof(msg));
	static const struct {
		const char *location;
		const char *code;
		const char *url;
	} cases[] = {
	        {"../c", "ok", "https://example.com/c"},
	        {"/d?x=2", "ok", "https://example.com/d?x=2"},
	        {"e", "ok", "https://example.com/a/e"},
	        {"?z", "ok", "https://example.com/a/b?z"},
	        {"//Example.ORG./x", "ok", "https://example.org/x"},
	        {"http://a.example.net/", "ok", "http://a.example.net/"},
	        {"//0x7f.1:18080/", "ok", "https://127.0.0.1:18080/"},
	        {"http://user@example.com/", "invalid_url", NULL},
	        {"//user:pw@example.com/", "invalid_url", NULL},
	        {"ftp://example.com/", "invalid_url", NULL},
	        {"file:///etc/passwd", "invalid_url", NULL},
	        {"javascript:alert(1)", "invalid_url", NULL},
	        {"/x\r\nSet-Cookie: a=b", "invalid_url", NULL},
	        {"\\\\evil.com/", "invalid_url", NULL},
	        {"//[example.com]/", "invalid_url", NULL},
	        {"https://example.com:0/", "invalid_url", NULL},
	};
	for (size_t i = 0; i < PX_ARRAY_SIZE(cases); i++) {
		enum px_pep_code got = px_pep_target_redirect(policy, &base, cases[i].location, &t,
		                                              msg, sizeof(msg));
		if (!ok(got == code_of(cases[i].code), "redirect '%zu' -> %s", i, cases[i].code))
			printf("#   got %s (%s)\n", name_of(got), msg);
		if (got == PX_PEP_OK && cases[i].url)
			is_str(t.url_str, cases[i].url, "  resolved against the base");
		px_pep_target_free(&t);
	}
	px_pep_target_free(&base);
}

static void split_forwarded(const struct px_pep_headers *h, char *buf, size_t len)
{
	buf[0] = '\0';
	size_t used = 0;
	for (size_t i = 0; i < h->n; i++) {
		_cleanup_free_ char *lname = xstrdup(h->v[i].name);
		for (char *c = lname; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		used += (size_t)snprintf(buf + used, len - used, "%s%s=%s", i ? "," : "", lname,
		                         h->v[i].value);
		if (used >= len)
			return;
	}
	if (!h->n)
		snprintf(buf, len, "-");
}

static void request_case(struct pep_case *c, void *ctx)
{
	(void)ctx;
	if (c->n < 4) {
		ok(0, "request.txt:%d: want CODE METHOD BODY_LEN FORWARDED HEADER...", c->line);
		return;
	}
	struct px_pep_request req = {.method = c->f[1], .body_len = (size_t)atol(c->f[2])};
	struct px_pep_header hs[CASE_MAX_FIELDS];
	for (size_t i = 4; i < c->n; i++) {
		char *colon = strchr(c->f[i], ':');
		if (!colon) {
			ok(0, "request.txt:%d: header without ':'", c->line);
			return;
		}
		*colon = '\0';
		hs[req.headers.n].name = c->f[i];
		hs[req.headers.n].value = colon + 1;
		req.headers.n++;
	}
	req.headers.v = hs;
	struct px_pep_headers out = {0};
	char msg[256] = "";
	enum px_pep_code want = code_of(c->f[0]);
	enum px_pep_code got = px_pep_request_check(policy, &req, &out, msg, sizeof(msg));
	if (!ok(got == want, "request.txt:%d: %s", c->line, c->f[0]))
		printf("#   got: %s (%s)\n", name_of(got), msg);
	if (got == PX_PEP_OK) {
		char fw[1024];
		split_forwarded(&out, fw, sizeof(fw));
		is_str(fw, c->f[3], "  forwarded headers");
	} else {
		ok(msg[0] != '\0', "  the error says why");
	}
	px_pep_headers_free(&out);
}

static void test_header_bytes(void)
{
	/* 256 bytes of names and values pass, 257 do not. */
	char value[300];
	memset(value, 'v', sizeof(value));
	value[256 - 1] = '\0'; /* name "X" + 255 bytes */
	struct px_pep_header h = {.name = "X", .value = value};
	struct px_pep_request req = {.method = "GET", .headers = {.v = &h, .n = 1}};
	struct px_pep_headers out = {0};
	is_int(px_pep_request_check(policy, &req, &out, NULL, 0), PX_PEP_OK,
	       "header bytes at the cap");
	px_pep_headers_free(&out);
	value[256 - 1] = 'v';
	value[256] = '\0';
	is_int(px_pep_request_check(policy, &req, &out, NULL, 0), PX_PEP_CONSTRAINT_VIOLATION,
	       "header bytes one past the cap");
	ok(out.n == 0 && out.v == NULL, "nothing returned on failure");
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	policy = load_policy();
	int n = for_each_case("url.txt", url_case, NULL);
	ok(n > 140, "url.txt holds %d cases", n);
	test_inet_aton_oracle();
	test_length_cap();
	test_parts();
	test_redirect();
	n = for_each_case("request.txt", request_case, NULL);
	ok(n > 40, "request.txt holds %d cases", n);
	test_header_bytes();
	px_pep_policy_free(policy);
	curl_global_cleanup();
	return done_testing();
}
