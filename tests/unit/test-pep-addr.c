/* px_pep_addr_*: the deny model of notes/pep-security.md, checked against the corpus in
 * tests/pep/cases/addr.txt (every range at its edges) and local.txt (the host's own
 * addresses through the seam). Allowed addresses are cross-checked with Python's
 * ipaddress.is_global, and the interface list with `ip -o addr`. */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "tap.h"

#include "core/common.h"

#include "core/spawn.h"
#include "pep/addr.h"
#include "pep-cases.h"

struct ctx {
	const struct px_pep_addrs *local;
	char *allowed; /* newline-separated, for the Python oracle */
	size_t n_allowed;
};

static void addr_case(struct pep_case *c, void *vctx)
{
	struct ctx *ctx = vctx;
	if (c->n != 2) {
		ok(0, "line %d: want ADDRESS CLASS", c->line);
		return;
	}
	struct px_pep_addr a;
	if (!ok(px_pep_addr_parse(c->f[0], &a) == 0, "line %d: parse '%s'", c->line, c->f[0]))
		return;
	const char *want = case_opt(c->f[1]);
	const char *got = px_pep_addr_denied(&a, ctx->local);
	if (!ok(want ? px_streq(got, want) : got == NULL, "%s is %s", c->f[0], c->f[1]))
		printf("#   got: %s\n", got ? got : "- (allowed)");
	if (!want) {
		char *old = ctx->allowed;
		ctx->allowed = xasprintf("%s%s\n", old ? old : "", c->f[0]);
		free(old);
		ctx->n_allowed++;
	}
}

/* Python's ipaddress module must call every address we allow global. */
static void python_oracle(const char *allowed, size_t n)
{
	if (!px_have_program("python3")) {
		ok(!getenv("CI"), "python3 for the is_global oracle (missing; allowed outside CI)");
		return;
	}
	const char *const argv[] = {"python3", "-c",
	                            "import ipaddress, sys\n"
	                            "for a in sys.argv[1].split():\n"
	                            "    if not ipaddress.ip_address(a).is_global: print(a)\n",
	                            allowed, NULL};
	struct px_err *err = NULL;
	char *out = NULL;
	int rc = px_run(argv, &out, &err);
	ok(rc == 0 && out && !*out, "python agrees the %zu allowed addresses are global", n);
	if (out && *out)
		printf("#   not global per python:\n%s", out);
	if (err)
		printf("#   %s\n", err->msg);
	free(out);
	px_err_free(err);
}

static void test_parse_strict(void)
{
	static const char *const bad[] = {
	        "0x7f.1",       "127.1", "2130706433", "0177.0.0.1", "127.0.0.01", "[::1]",
	        "fe80::1%eth0", "",      "1.2.3.4 ",   " 1.2.3.4",   "1.2.3.4.5",  "256.0.0.1",
	        "::1/128",      "1.2.3", "%31.2.3.4",  "::ffff:1.2", "0x7f000001", "1.2.3.4\n",
	};
	for (size_t i = 0; i < PX_ARRAY_SIZE(bad); i++) {
		struct px_pep_addr a;
		ok(px_pep_addr_parse(bad[i], &a) < 0, "strict parse rejects bad[%zu]", i);
	}
	struct px_pep_addr a;
	char buf[PX_PEP_ADDR_STRLEN];
	ok(px_pep_addr_parse("::FFFF:127.0.0.1", &a) == 0, "parse mapped");
	px_pep_addr_format(&a, buf, sizeof(buf));
	is_str(buf, "::ffff:127.0.0.1", "format mapped");
	px_pep_addr_parse("2001:DB8:0:0:0:0:0:1", &a);
	px_pep_addr_format(&a, buf, sizeof(buf));
	is_str(buf, "2001:db8::1", "format is inet_ntop's canonical form");
	px_pep_addr_parse("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", &a);
	px_pep_addr_format(&a, buf, sizeof(buf));
	ok(strlen(buf) < PX_PEP_ADDR_STRLEN, "the longest form fits PX_PEP_ADDR_STRLEN");
}

static void test_sockaddr(void)
{
	struct px_pep_addr a, b, m;
	px_pep_addr_parse("192.0.2.7", &a);
	struct sockaddr_storage ss;
	socklen_t len = px_pep_addr_to_sockaddr(&a, 8080, &ss);
	is_int(len, sizeof(struct sockaddr_in), "sockaddr_in length");
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
	char buf[64];
	inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
	is_str(buf, "192.0.2.7", "sockaddr holds the address");
	is_int(ntohs(sin->sin_port), 8080, "sockaddr holds the port");
	uint16_t port = 0;
	ok(px_pep_addr_from_sockaddr((struct sockaddr *)&ss, len, &b, &port) == 0 &&
	           px_pep_addr_equal(&a, &b) && port == 8080,
	   "sockaddr round trip (v4)");
	ok(px_pep_addr_from_sockaddr((struct sockaddr *)&ss, len - 1, &b, &port) < 0,
	   "a short sockaddr is refused");

	px_pep_addr_parse("fe80::1", &a);
	len = px_pep_addr_to_sockaddr(&a, 443, &ss);
	((struct sockaddr_in6 *)&ss)->sin6_scope_id = 2;
	ok(px_pep_addr_from_sockaddr((struct sockaddr *)&ss, len, &b, NULL) == 0 &&
	           px_pep_addr_equal(&a, &b),
	   "sockaddr round trip (v6, scope id ignored)");

	struct sockaddr_un_like {
		sa_family_t family;
		char path[108];
	} un = {.family = AF_UNIX};
	ok(px_pep_addr_from_sockaddr((struct sockaddr *)&un, sizeof(un), &b, NULL) < 0,
	   "AF_UNIX is not an address");

	px_pep_addr_parse("127.0.0.1", &a);
	px_pep_addr_parse("::ffff:127.0.0.1", &m);
	ok(!px_pep_addr_equal(&a, &m), "a mapped address never equals its IPv4");
	ok(px_pep_addr_equal(&a, &a), "equal to itself");
}

static void test_local_addrs(void)
{
	struct px_pep_addrs local;
	struct px_err *err = NULL;
	int rc = px_pep_local_addrs(NULL, &local, &err);
	if (!ok(rc == 0, "px_pep_local_addrs"))
		printf("#   %s\n", err ? err->msg : "?");
	px_err_free(err);
	if (rc < 0)
		return;
	for (size_t i = 0; i < local.n; i++) {
		char buf[PX_PEP_ADDR_STRLEN];
		px_pep_addr_format(&local.v[i], buf, sizeof(buf));
		is_str(px_pep_addr_denied(&local.v[i], &local), "host_interface", buf);
	}
	/* Every address `ip` lists is denied, by class or as an interface address. */
	if (!px_have_program("ip")) {
		ok(!getenv("CI"),
		   "ip(8) to list interface addresses (missing; allowed outside CI)");
		return;
	}
	const char *const argv[] = {"ip", "-o", "addr", "show", NULL};
	char *out = NULL;
	err = NULL;
	if (!ok(px_run(argv, &out, &err) == 0, "ip -o addr show")) {
		px_err_free(err);
		return;
	}
	int seen = 0;
	for (char *l = out; l && *l;) {
		char *nl = strchr(l, '\n');
		if (nl)
			*nl = '\0';
		char *p = strstr(l, " inet6 ");
		if (!p)
			p = strstr(l, " inet ");
		if (p) {
			p = strchr(p + 1, ' ') + 1;
			char word[128];
			size_t k = strcspn(p, "/ ");
			if (k < sizeof(word)) {
				memcpy(word, p, k);
				word[k] = '\0';
				struct px_pep_addr a;
				if (px_pep_addr_parse(word, &a) == 0) {
					const char *cls = px_pep_addr_denied(&a, &local);
					if (!ok(cls != NULL, "interface address %s is denied",
					        word))
						printf("#   px_pep_local_addrs missed it\n");
					seen++;
				}
			}
		}
		l = nl ? nl + 1 : NULL;
	}
	ok(seen > 0, "ip listed %d addresses (at least loopback)", seen);
	free(out);
}

int main(void)
{
	struct ctx ctx = {0};
	int n = for_each_case("addr.txt", addr_case, &ctx);
	ok(n > 130, "addr.txt holds %d cases", n);
	python_oracle(ctx.allowed, ctx.n_allowed);
	free(ctx.allowed);

	struct px_pep_addrs local = {.n = 2};
	px_pep_addr_parse("8.8.4.4", &local.v[0]);
	px_pep_addr_parse("2001:4860:4860::8844", &local.v[1]);
	ctx = (struct ctx){.local = &local};
	for_each_case("local.txt", addr_case, &ctx);
	free(ctx.allowed);

	test_parse_strict();
	test_sockaddr();
	test_local_addrs();
	return done_testing();
}
