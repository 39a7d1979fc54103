/* px_pep_policy_*: host rules (tests/pep/cases/host.txt), invalid entries named in errors
 * (bad-rules.txt, bad-addresses.txt), allow_addresses, methods, limits and the vsock-stub
 * environment overrides. Policies come from YAML through px_manifest_load_pep, as the
 * daemon loads them. */
#include "tap.h"

#include "core/common.h"

#include "core/file.h"
#include "manifest/manifest.h"
#include "pep/addr.h"
#include "pep/policy.h"
#include "pep-cases.h"

static char dir[] = "/tmp/test-pep-policy.XXXXXX";

/* Compiles a policy file holding 'yaml'; NULL with the error in *err. */
static struct px_pep_policy *compile(const char *yaml, struct px_err **err)
{
	_cleanup_free_ char *path = xasprintf("%s/policy.yml", dir);
	struct px_manifest *m = NULL;
	struct px_pep_policy *p = NULL;
	if (px_atomic_write_file(path, yaml, strlen(yaml), 0644, err) == 0 &&
	    px_manifest_load_pep(path, &m, err) == 0)
		px_pep_policy_new(m, &p, err);
	px_manifest_free(m);
	unlink(path);
	return p;
}

static struct px_pep_policy *host_policy;

static void host_case(struct pep_case *c, void *ctx)
{
	(void)ctx;
	if (c->n < 3) {
		ok(0, "host.txt:%d: want HOST PORT RESULT [REASON]", c->line);
		return;
	}
	char reason[128] = "";
	enum px_pep_code got = px_pep_policy_check_host(
	        host_policy, c->f[0], (uint16_t)atoi(c->f[1]), reason, sizeof(reason));
	enum px_pep_code want = strcmp(c->f[2], "ok") == 0 ? PX_PEP_OK : PX_PEP_DENIED_BY_POLICY;
	if (!ok(got == want, "host.txt:%d: %s:%s %s", c->line, c->f[0], c->f[1], c->f[2]))
		printf("#   got: %d (%s)\n", got, reason);
	if (c->n > 3)
		is_str(reason, c->f[3], "  reason");
}

static void bad_rule_case(struct pep_case *c, void *ctx)
{
	(void)ctx;
	setenv("PEP_ALLOWED_DOMAINS", c->f[0], 1);
	struct px_err *err = NULL;
	struct px_pep_policy *p = compile("allow: [example.com]\n", &err);
	ok(p == NULL, "bad-rules.txt:%d: refused", c->line);
	_cleanup_free_ char *named = xasprintf("'%s'", c->f[0]);
	like(err ? err->msg : NULL, named, "  the error names the entry");
	like(err ? err->msg : NULL, c->f[1], "  and says why");
	like(err ? err->msg : NULL, "PEP_ALLOWED_DOMAINS", "  and where it came from");
	ok(err && err->exit_code == PX_EXIT_MANIFEST, "  as a manifest error");
	px_err_free(err);
	px_pep_policy_free(p);
	unsetenv("PEP_ALLOWED_DOMAINS");
}

static void bad_addr_case(struct pep_case *c, void *ctx)
{
	(void)ctx;
	/* Straight to the compiler: a manifest struct built by hand, as the schema check in
	 * front is looser. */
	struct px_manifest m = {0};
	char *v[] = {c->f[0]};
	m.pep.allow_addresses = (struct px_strv){.v = v, .n = 1};
	m.pep.max_request_bytes = m.pep.max_response_bytes = 1024;
	struct px_err *err = NULL;
	struct px_pep_policy *p = NULL;
	ok(px_pep_policy_new(&m, &p, &err) < 0 && !p, "bad-addresses.txt:%d: refused", c->line);
	_cleanup_free_ char *named =
	        xasprintf("'pep.allow_addresses[0]': invalid address '%s'", c->f[0]);
	like(err ? err->msg : NULL, named, "  the error names the entry");
	like(err ? err->msg : NULL, c->f[1], "  and says why");
	px_err_free(err);
	px_pep_policy_free(p);
}

static void test_manifest_entry_named(void)
{
	struct px_err *err = NULL;
	struct px_pep_policy *p = compile("allow: [example.com, '*.com']\n", &err);
	ok(!p, "'*.com' passes the schema's shape check but not the compiler");
	is_str(err ? err->msg : NULL,
	       "'pep.allow[1]': invalid host pattern '*.com': a wildcard must cover at least two "
	       "labels (e.g. '*.example.com')",
	       "the error names pep.allow[1]");
	px_err_clear(&err);
	p = compile("deny: ['**.co.uk']\n", &err);
	like(err ? err->msg : NULL, "'pep.deny[0]': invalid host pattern '**.co.uk'",
	     "deny entries are checked too");
	px_err_clear(&err);
	px_pep_policy_free(p);
	p = compile("allow: ['*']\n", &err);
	ok(!p && err, "bare '*' refused (by the schema or the compiler)");
	px_err_clear(&err);
}

static void test_addresses(void)
{
	struct px_err *err = NULL;
	struct px_pep_policy *p =
	        compile("allow_addresses: ['127.0.0.1:18080', '[::1]:8080', '10.1.0.0/16', "
	                "'192.168.1.5', 'fd00::5']\n",
	                &err);
	if (!ok(p != NULL, "policy with allow_addresses")) {
		printf("#   %s\n", err ? err->msg : "?");
		px_err_free(err);
		return;
	}
	static const struct {
		const char *addr;
		uint16_t port;
		bool allowed;
		const char *code;
	} cases[] = {
	        {"127.0.0.1", 18080, true, "ok"},
	        {"127.0.0.1", 18081, false, "ssrf_blocked"},
	        {"127.0.0.2", 18080, false, "ssrf_blocked"},
	        {"::ffff:127.0.0.1", 18080, false, "ssrf_blocked"}, /* never earns the v4 entry */
	        {"::127.0.0.1", 18080, false, "ssrf_blocked"},
	        {"64:ff9b::7f00:1", 18080, false, "ssrf_blocked"},
	        {"2002:7f00:1::", 18080, false, "ssrf_blocked"},
	        {"::1", 8080, true, "ok"},
	        {"::1", 80, false, "ssrf_blocked"},
	        {"10.1.0.0", 1, true, "ok"},
	        {"10.1.255.255", 65535, true, "ok"},
	        {"10.2.0.0", 80, false, "ssrf_blocked"},
	        {"10.0.255.255", 80, false, "ssrf_blocked"},
	        {"192.168.1.5", 443, true, "ok"},
	        {"192.168.1.6", 443, false, "ssrf_blocked"},
	        {"fd00::5", 1234, true, "ok"},
	        {"fd00::6", 1234, false, "ssrf_blocked"},
	        {"8.8.8.8", 53, false, "ok"}, /* not denied: no exception needed */
	};
	for (size_t i = 0; i < PX_ARRAY_SIZE(cases); i++) {
		struct px_pep_addr a;
		px_pep_addr_parse(cases[i].addr, &a);
		ok(px_pep_policy_address_allowed(p, &a, cases[i].port) == cases[i].allowed,
		   "address_allowed %s port %u: %s", cases[i].addr, cases[i].port,
		   cases[i].allowed ? "yes" : "no");
		char reason[64] = "";
		enum px_pep_code code = px_pep_policy_check_addr(p, &a, cases[i].port, NULL, reason,
		                                                 sizeof(reason));
		const char *name = code == PX_PEP_OK ? "ok" : px_pep_code_name(code);
		if (!ok(px_streq(name, cases[i].code), "check_addr %s port %u: %s", cases[i].addr,
		        cases[i].port, cases[i].code))
			printf("#   got %s (%s)\n", name, reason);
	}
	struct px_pep_addr a;
	char reason[64];
	px_pep_addr_parse("::ffff:127.0.0.1", &a);
	px_pep_policy_check_addr(p, &a, 18080, NULL, reason, sizeof(reason));
	is_str(reason, "ipv4_mapped:loopback", "the reason names the class");
	struct px_pep_addrs local = {.n = 1};
	px_pep_addr_parse("8.8.4.4", &local.v[0]);
	px_pep_addr_parse("8.8.4.4", &a);
	is_int(px_pep_policy_check_addr(p, &a, 80, &local, reason, sizeof(reason)),
	       PX_PEP_SSRF_BLOCKED, "the host's own address is blocked");
	is_str(reason, "host_interface", "  as host_interface");
	px_pep_policy_free(p);
}

static void test_methods_limits_mode(void)
{
	struct px_err *err = NULL;
	struct px_pep_policy *p = compile("methods: [GET, PROPFIND]\n"
	                                  "max_request_bytes: 2K\n"
	                                  "max_response_bytes: 3M\n"
	                                  "timeouts: {connect: 2s, total: 9s}\n"
	                                  "mode: report\n",
	                                  &err);
	if (!ok(p != NULL, "policy with methods and limits")) {
		printf("#   %s\n", err ? err->msg : "?");
		px_err_free(err);
		return;
	}
	ok(px_pep_policy_method_allowed(p, "GET"), "GET allowed");
	ok(px_pep_policy_method_allowed(p, "PROPFIND"), "PROPFIND allowed");
	ok(!px_pep_policy_method_allowed(p, "POST"), "POST not listed");
	ok(!px_pep_policy_method_allowed(p, "get"), "methods are case-sensitive");
	ok(!px_pep_policy_method_allowed(p, "GET "), "no trimming");
	const struct px_pep_limits *l = px_pep_policy_limits(p);
	is_int(l->max_request_bytes, 2048, "max_request_bytes");
	is_int(l->max_response_bytes, 3 << 20, "max_response_bytes");
	is_int(l->connect_timeout_ms, 2000, "connect timeout");
	is_int(l->total_timeout_ms, 9000, "total timeout");
	ok(l->report_only, "mode: report");
	ok(!l->allow_https_to_http, "https to http denied by default");
	ok(l->max_redirects > 0 && l->max_redirects <= PX_PEP_MAX_HOPS, "redirect cap");
	ok(l->max_url_bytes >= 2048 && l->max_headers > 0 && l->max_header_bytes > 0,
	   "URL and header caps");
	struct px_pep_limits nl = *l;
	nl.max_redirects = 1000;
	px_pep_policy_set_limits(p, &nl);
	is_int(px_pep_policy_limits(p)->max_redirects, PX_PEP_MAX_HOPS,
	       "set_limits caps max_redirects at PX_PEP_MAX_HOPS");
	px_pep_policy_free(p);

	p = compile("allow: [example.com]\n", &err);
	ok(p && !px_pep_policy_limits(p)->report_only, "enforce by default");
	ok(p && px_pep_policy_method_allowed(p, "GET") && px_pep_policy_method_allowed(p, "HEAD") &&
	           px_pep_policy_method_allowed(p, "POST"),
	   "default methods");
	px_pep_policy_free(p);
	px_err_clear(&err);
}

static void test_env(void)
{
	struct px_err *err = NULL;
	setenv("PEP_ALLOWED_DOMAINS", " other.example , **.api.example,,", 1);
	setenv("PEP_MAX_REQUEST_BYTES", "100", 1);
	setenv("PEP_MAX_RESPONSE_BYTES", "1M", 1);
	struct px_pep_policy *p = compile("allow: [example.com]\nmax_request_bytes: 5M\n", &err);
	if (ok(p != NULL, "env overrides apply")) {
		is_int(px_pep_policy_check_host(p, "example.com", 80, NULL, 0),
		       PX_PEP_DENIED_BY_POLICY, "PEP_ALLOWED_DOMAINS replaces allow");
		is_int(px_pep_policy_check_host(p, "other.example", 80, NULL, 0), PX_PEP_OK,
		       "  first entry (spaces trimmed)");
		is_int(px_pep_policy_check_host(p, "api.example", 80, NULL, 0), PX_PEP_OK,
		       "  second entry (apex)");
		is_int(px_pep_policy_check_host(p, "x.api.example", 80, NULL, 0), PX_PEP_OK,
		       "  second entry (subdomain)");
		is_int(px_pep_policy_limits(p)->max_request_bytes, 100, "PEP_MAX_REQUEST_BYTES");
		is_int(px_pep_policy_limits(p)->max_response_bytes, 1 << 20,
		       "PEP_MAX_RESPONSE_BYTES");
	}
	px_pep_policy_free(p);
	px_err_clear(&err);

	setenv("PEP_ALLOWED_DOMAINS", "", 1);
	p = compile("allow: [example.com]\n", &err);
	ok(p && px_pep_policy_check_host(p, "example.com", 80, NULL, 0) == PX_PEP_DENIED_BY_POLICY,
	   "an empty PEP_ALLOWED_DOMAINS allows no host");
	px_pep_policy_free(p);
	px_err_clear(&err);
	unsetenv("PEP_ALLOWED_DOMAINS");

	static const char *const bad[] = {"0", "-1", "abc", "2T", "1.5K", ""};
	for (size_t i = 0; i < PX_ARRAY_SIZE(bad); i++) {
		setenv("PEP_MAX_RESPONSE_BYTES", bad[i], 1);
		p = compile("allow: [example.com]\n", &err);
		ok(!p, "PEP_MAX_RESPONSE_BYTES='%s' refused", bad[i]);
		like(err ? err->msg : NULL, "'PEP_MAX_RESPONSE_BYTES': invalid size", "  named");
		px_pep_policy_free(p);
		px_err_clear(&err);
	}
	unsetenv("PEP_MAX_REQUEST_BYTES");
	unsetenv("PEP_MAX_RESPONSE_BYTES");
}

int main(void)
{
	unsetenv("PEP_ALLOWED_DOMAINS");
	unsetenv("PEP_MAX_REQUEST_BYTES");
	unsetenv("PEP_MAX_RESPONSE_BYTES");
	if (!mkdtemp(dir)) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	struct px_err *err = NULL;
	host_policy = compile("allow: [example.com, '*.example.net', '**.example.org',\n"
	                      "        'api.example.io:8443', 'Mixed.Example.EDU',\n"
	                      "        '**.deny-inside.example', xn--bcher-kva.de, 93.184.216.34]\n"
	                      "deny: ['*.deny-inside.example', blocked.example.org,\n"
	                      "       'example.org:8080']\n",
	                      &err);
	if (!host_policy) {
		printf("Bail out! host policy: %s\n", err ? err->msg : "?");
		return 1;
	}
	/* A trailing-dot entry cannot pass the manifest's shape check; the compiler takes it
	 * from the environment-free path through a hand-built manifest. */
	{
		struct px_manifest m = {0};
		char *v[] = {"trailing.example."};
		m.pep.allow = (struct px_strv){.v = v, .n = 1};
		struct px_pep_policy *t = NULL;
		ok(px_pep_policy_new(&m, &t, &err) == 0 &&
		           px_pep_policy_check_host(t, "trailing.example", 80, NULL, 0) ==
		                   PX_PEP_OK,
		   "an entry's trailing dot is stripped");
		px_pep_policy_free(t);
	}
	int n = for_each_case("host.txt", host_case, NULL);
	ok(n >= 30, "host.txt holds %d cases", n);
	px_pep_policy_free(host_policy);
	n = for_each_case("bad-rules.txt", bad_rule_case, NULL);
	ok(n >= 25, "bad-rules.txt holds %d cases", n);
	n = for_each_case("bad-addresses.txt", bad_addr_case, NULL);
	ok(n >= 10, "bad-addresses.txt holds %d cases", n);
	test_manifest_entry_named();
	test_addresses();
	test_methods_limits_mode();
	test_env();
	rmdir(dir);
	return done_testing();
}
