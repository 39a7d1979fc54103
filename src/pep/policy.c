#include <arpa/inet.h>
#include <ctype.h>

#include "core/common.h"

#include "core/size.h"
#include "manifest/manifest.h"
#include "pep/addr.h"
#include "pep/policy.h"

/* Defaults for the limits the manifest does not name. */
#define DEFAULT_MAX_URL_BYTES    8192
#define DEFAULT_MAX_HEADERS      100
#define DEFAULT_MAX_HEADER_BYTES (64 * 1024)
#define DEFAULT_MAX_REDIRECTS    5
#define MAX_SIZE_OVERRIDE        (1ULL << 40) /* as the manifest's max_*_bytes */

enum rule_kind {
	RULE_EXACT, /* example.com */
	RULE_SUB,   /* *.example.com: subdomains only */
	RULE_APEX,  /* **.example.com: the apex and its subdomains */
};

struct rule {
	enum rule_kind kind;
	char *domain;  /* normalised, without the wildcard */
	uint32_t port; /* 0: any port */
	char *text;    /* the entry as written, for reasons and logs */
};

struct rules {
	struct rule *v;
	size_t n;
};

struct addr_rule {
	struct px_pep_addr addr;
	unsigned prefix; /* 32 or 128 for an exact address */
	uint32_t port;   /* 0: any port */
};

struct px_pep_policy {
	struct px_pep_limits limits;
	struct rules allow, deny;
	struct addr_rule *addrs;
	size_t n_addrs;
	char **methods;
	size_t n_methods;
};

static void rules_free(struct rules *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->v[i].domain);
		free(r->v[i].text);
	}
	free(r->v);
}

void px_pep_policy_free(struct px_pep_policy *p)
{
	if (!p)
		return;
	rules_free(&p->allow);
	rules_free(&p->deny);
	free(p->addrs);
	for (size_t i = 0; i < p->n_methods; i++)
		free(p->methods[i]);
	free(p->methods);
	free(p);
}
PX_DEFINE_CLEANUP(struct px_pep_policy *, px_pep_policy_free)

/* A decimal port 1..65535 without sign or spaces; 0 when invalid. */
static uint32_t parse_port(const char *s)
{
	size_t len = strlen(s);
	if (len == 0 || len > 5)
		return 0;
	uint32_t v = 0;
	for (const char *c = s; *c; c++) {
		if (*c < '0' || *c > '9')
			return 0;
		v = v * 10 + (uint32_t)(*c - '0');
	}
	return v <= 65535 ? v : 0;
}

/* Second-level labels under which registries sell names in many two-letter country
 * domains (co.uk, com.au, ac.jp, ...): a wildcard over them covers strangers' names.
 * Without a public suffix list this catches the common cases, not all of them. */
static bool looks_public_suffix(const char *domain)
{
	static const char *const second[] = {"co",  "com", "net", "org", "gov", "edu",
	                                     "ac",  "or",  "ne",  "go",  "gob", "mil",
	                                     "nic", "ltd", "plc", "gv",  "info"};
	const char *dot = strchr(domain, '.');
	if (!dot || strchr(dot + 1, '.') || strlen(dot + 1) != 2)
		return false;
	for (size_t i = 0; i < PX_ARRAY_SIZE(second); i++)
		if (strlen(second[i]) == (size_t)(dot - domain) &&
		    strncmp(domain, second[i], (size_t)(dot - domain)) == 0)
			return true;
	return false;
}

static bool all_digits(const char *s, size_t len)
{
	if (!len)
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* Checks a DNS name of ASCII labels; on failure returns why. */
static const char *check_name(const char *name)
{
	size_t len = strlen(name);
	if (len == 0)
		return "empty name";
	if (len > 253)
		return "longer than 253 characters";
	for (const char *p = name; *p; p++)
		if ((unsigned char)*p >= 0x80)
			return "not ASCII: write an internationalised name in Punycode "
			       "(xn--...)";
	for (const char *label = name;;) {
		size_t k = strcspn(label, ".");
		if (k == 0)
			return "empty label";
		if (k > 63)
			return "label longer than 63 characters";
		for (size_t i = 0; i < k; i++) {
			char c = label[i];
			if (c == '*')
				return "a wildcard may only be a leading '*.' or '**.'";
			if (!(islower((unsigned char)c) || isdigit((unsigned char)c) || c == '-' ||
			      c == '_'))
				return "invalid character";
		}
		if (label[0] == '-' || label[k - 1] == '-')
			return "label starts or ends with '-'";
		if (!label[k])
			break;
		label += k + 1;
	}
	return NULL;
}

/* Parses one host pattern; on failure returns why. */
static const char *parse_rule(const char *entry, struct rule *ret)
{
	_cleanup_free_ char *s = xstrdup(entry);
	for (char *c = s; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	struct rule r = {.kind = RULE_EXACT};
	char *colon = strrchr(s, ':');
	if (colon) {
		*colon = '\0';
		r.port = parse_port(colon + 1);
		if (!r.port)
			return "invalid port (1 to 65535)";
	}
	char *name = s;
	if (strncmp(name, "**.", 3) == 0) {
		r.kind = RULE_APEX;
		name += 3;
	} else if (strncmp(name, "*.", 2) == 0) {
		r.kind = RULE_SUB;
		name += 2;
	} else if (strcmp(name, "*") == 0 || strcmp(name, "**") == 0) {
		return "a bare wildcard would allow every host";
	}
	size_t len = strlen(name);
	if (len && name[len - 1] == '.')
		name[--len] = '\0'; /* the absolute form names the same host */
	const char *why = check_name(name);
	if (why)
		return why;
	const char *last = strrchr(name, '.');
	last = last ? last + 1 : name;
	if (all_digits(last, strlen(last))) {
		struct in_addr a;
		if (r.kind != RULE_EXACT || inet_pton(AF_INET, name, &a) != 1)
			return "a numeric name must be an exact dotted-quad address";
	}
	if (r.kind != RULE_EXACT && !strchr(name, '.'))
		return "a wildcard must cover at least two labels (e.g. '*.example.com')";
	if (r.kind != RULE_EXACT && looks_public_suffix(name))
		return "a wildcard over a public suffix would allow strangers' names";
	r.domain = xstrdup(name);
	r.text = xstrdup(entry);
	*ret = r;
	return NULL;
}

static int add_rule(struct rules *rules, const char *what, size_t index, const char *entry,
                    struct px_err **err)
{
	struct rule r;
	const char *why = parse_rule(entry, &r);
	if (why)
		return px_err_set(err, PX_EXIT_MANIFEST, "'%s[%zu]': invalid host pattern '%s': %s",
		                  what, index, entry, why);
	rules->v = xreallocarray(rules->v, rules->n + 1, sizeof(*rules->v));
	rules->v[rules->n++] = r;
	return 0;
}

/* "IP", "IP/prefix", "IP:PORT", "[IPv6]", "[IPv6]:PORT"; on failure returns why. */
static const char *parse_addr_rule(const char *entry, struct addr_rule *ret)
{
	_cleanup_free_ char *s = xstrdup(entry);
	struct addr_rule r = {0};
	char *host = s, *port = NULL, *prefix = NULL;
	if (s[0] == '[') {
		char *close = strchr(s, ']');
		if (!close)
			return "missing ']'";
		*close = '\0';
		host = s + 1;
		if (close[1] == ':')
			port = close + 2;
		else if (close[1])
			return "unexpected text after ']'";
	} else if ((prefix = strchr(s, '/'))) {
		*prefix++ = '\0';
	} else {
		char *colon = strchr(s, ':');
		if (colon && !strchr(colon + 1, ':')) {
			*colon = '\0';
			port = colon + 1;
		}
	}
	if (px_pep_addr_parse(host, &r.addr) < 0)
		return "not an IPv4 or IPv6 address";
	if (s[0] == '[' && r.addr.family != AF_INET6)
		return "brackets hold an IPv6 address";
	unsigned max = r.addr.family == AF_INET ? 32 : 128;
	r.prefix = max;
	if (prefix) {
		if (!all_digits(prefix, strlen(prefix)) || strlen(prefix) > 3 ||
		    (unsigned)atoi(prefix) > max)
			return "invalid prefix length";
		r.prefix = (unsigned)atoi(prefix);
	}
	if (port && !(r.port = parse_port(port)))
		return "invalid port (1 to 65535)";
	*ret = r;
	return NULL;
}

static bool in_prefix(const struct px_pep_addr *a, const struct addr_rule *r)
{
	if (a->family != r->addr.family)
		return false;
	const uint8_t *x =
	        a->family == AF_INET ? (const uint8_t *)&a->u.v4 : (const uint8_t *)a->u.v6.s6_addr;
	const uint8_t *y = r->addr.family == AF_INET ? (const uint8_t *)&r->addr.u.v4
	                                             : (const uint8_t *)r->addr.u.v6.s6_addr;
	unsigned full = r->prefix / 8, rest = r->prefix % 8;
	if (memcmp(x, y, full) != 0)
		return false;
	if (!rest)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (x[full] & mask) == (y[full] & mask);
}

static int size_override(const char *var, uint64_t *val, struct px_err **err)
{
	const char *s = getenv(var);
	if (!s)
		return 0;
	uint64_t v;
	_cleanup_err_ struct px_err *e = NULL;
	if (px_size_parse(s, &v, &e) < 0 || v == 0 || v > MAX_SIZE_OVERRIDE)
		return px_err_set(err, PX_EXIT_MANIFEST,
		                  "'%s': invalid size '%s' (1 byte to 1 TiB, e.g. 10M)", var, s);
	*val = v;
	return 0;
}

/* PEP_ALLOWED_DOMAINS: a comma list that replaces the allow rules (the vsock-stub's
 * variable). Empty entries are skipped; an empty list allows no host. */
static int allow_override(struct px_pep_policy *p, struct px_err **err)
{
	const char *s = getenv("PEP_ALLOWED_DOMAINS");
	if (!s)
		return 0;
	rules_free(&p->allow);
	p->allow = (struct rules){0};
	_cleanup_free_ char *copy = xstrdup(s);
	size_t index = 0;
	for (char *item = copy; item;) {
		char *comma = strchr(item, ',');
		if (comma)
			*comma = '\0';
		while (*item == ' ' || *item == '\t')
			item++;
		size_t len = strlen(item);
		while (len && (item[len - 1] == ' ' || item[len - 1] == '\t'))
			item[--len] = '\0';
		if (*item && add_rule(&p->allow, "PEP_ALLOWED_DOMAINS", index++, item, err) < 0)
			return -1;
		item = comma ? comma + 1 : NULL;
	}
	return 0;
}

int px_pep_policy_new(const struct px_manifest *m, struct px_pep_policy **ret, struct px_err **err)
{
	_cleanup_(px_pep_policy_freep) struct px_pep_policy *p = xcalloc(1, sizeof(*p));
	p->limits = (struct px_pep_limits){
	        .max_request_bytes = m->pep.max_request_bytes,
	        .max_response_bytes = m->pep.max_response_bytes,
	        .max_url_bytes = DEFAULT_MAX_URL_BYTES,
	        .max_headers = DEFAULT_MAX_HEADERS,
	        .max_header_bytes = DEFAULT_MAX_HEADER_BYTES,
	        .connect_timeout_ms = m->pep.connect_timeout_ms,
	        .total_timeout_ms = m->pep.total_timeout_ms,
	        .max_redirects = DEFAULT_MAX_REDIRECTS,
	        .allow_https_to_http = false,
	        .report_only = m->pep.mode == PX_PEP_REPORT,
	};
	for (size_t i = 0; i < m->pep.allow.n; i++)
		if (add_rule(&p->allow, "pep.allow", i, m->pep.allow.v[i], err) < 0)
			return -1;
	for (size_t i = 0; i < m->pep.deny.n; i++)
		if (add_rule(&p->deny, "pep.deny", i, m->pep.deny.v[i], err) < 0)
			return -1;
	p->addrs = xcalloc(m->pep.allow_addresses.n + 1, sizeof(*p->addrs));
	for (size_t i = 0; i < m->pep.allow_addresses.n; i++) {
		const char *entry = m->pep.allow_addresses.v[i];
		const char *why = parse_addr_rule(entry, &p->addrs[p->n_addrs]);
		if (why)
			return px_err_set(
			        err, PX_EXIT_MANIFEST,
			        "'pep.allow_addresses[%zu]': invalid address '%s': %s (use "
			        "IP:PORT such as 127.0.0.1:8080 or [::1]:8080)",
			        i, entry, why);
		p->n_addrs++;
	}
	p->methods = xcalloc(m->pep.methods.n + 1, sizeof(*p->methods));
	for (size_t i = 0; i < m->pep.methods.n; i++)
		p->methods[p->n_methods++] = xstrdup(m->pep.methods.v[i]);
	if (allow_override(p, err) < 0 ||
	    size_override("PEP_MAX_REQUEST_BYTES", &p->limits.max_request_bytes, err) < 0 ||
	    size_override("PEP_MAX_RESPONSE_BYTES", &p->limits.max_response_bytes, err) < 0)
		return -1;
	*ret = steal_ptr(&p);
	return 0;
}

const struct px_pep_limits *px_pep_policy_limits(const struct px_pep_policy *p)
{
	return &p->limits;
}

void px_pep_policy_set_limits(struct px_pep_policy *p, const struct px_pep_limits *limits)
{
	p->limits = *limits;
	if (p->limits.max_redirects > PX_PEP_MAX_HOPS)
		p->limits.max_redirects = PX_PEP_MAX_HOPS;
}

static bool rule_matches(const struct rule *r, const char *host, size_t hlen, uint16_t port)
{
	if (r->port && r->port != port)
		return false;
	size_t dlen = strlen(r->domain);
	bool exact = hlen == dlen && memcmp(host, r->domain, dlen) == 0;
	bool sub = hlen > dlen + 1 && host[hlen - dlen - 1] == '.' &&
	           memcmp(host + hlen - dlen, r->domain, dlen) == 0;
	switch (r->kind) {
	case RULE_EXACT:
		return exact;
	case RULE_SUB:
		return sub;
	case RULE_APEX:
		return exact || sub;
	}
	return false;
}

static void say(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *buf, size_t len, const char *fmt, ...)
{
	if (!buf || !len)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

enum px_pep_code px_pep_policy_check_host(const struct px_pep_policy *p, const char *host,
                                          uint16_t port, char *reason, size_t reason_len)
{
	size_t hlen = strlen(host);
	for (size_t i = 0; i < p->deny.n; i++)
		if (rule_matches(&p->deny.v[i], host, hlen, port)) {
			say(reason, reason_len, "deny rule '%s'", p->deny.v[i].text);
			return PX_PEP_DENIED_BY_POLICY;
		}
	for (size_t i = 0; i < p->allow.n; i++)
		if (rule_matches(&p->allow.v[i], host, hlen, port)) {
			say(reason, reason_len, "allow rule '%s'", p->allow.v[i].text);
			return PX_PEP_OK;
		}
	say(reason, reason_len, "no allow rule matches");
	return PX_PEP_DENIED_BY_POLICY;
}

bool px_pep_policy_address_allowed(const struct px_pep_policy *p, const struct px_pep_addr *a,
                                   uint16_t port)
{
	for (size_t i = 0; i < p->n_addrs; i++)
		if ((!p->addrs[i].port || p->addrs[i].port == port) && in_prefix(a, &p->addrs[i]))
			return true;
	return false;
}

enum px_pep_code px_pep_policy_check_addr(const struct px_pep_policy *p,
                                          const struct px_pep_addr *a, uint16_t port,
                                          const struct px_pep_addrs *local, char *reason,
                                          size_t reason_len)
{
	const char *cls = px_pep_addr_denied(a, local);
	if (!cls)
		return PX_PEP_OK;
	if (px_pep_policy_address_allowed(p, a, port)) {
		say(reason, reason_len, "allow_addresses (%s)", cls);
		return PX_PEP_OK;
	}
	say(reason, reason_len, "%s", cls);
	return PX_PEP_SSRF_BLOCKED;
}

bool px_pep_policy_method_allowed(const struct px_pep_policy *p, const char *method)
{
	for (size_t i = 0; i < p->n_methods; i++)
		if (strcmp(p->methods[i], method) == 0)
			return true;
	return false;
}
