#include <arpa/inet.h>
#include <ctype.h>
#include <idn2.h>
#include <stdarg.h>
#include <strings.h>

#include "core/common.h"

#include "pep/addr.h"
#include "pep/policy.h"
#include "pep/target.h"

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

static void curl_freep(char **p)
{
	curl_free(*p);
}
#define _cleanup_curl_ _cleanup_(curl_freep)

static void urlp(CURLU **u)
{
	curl_url_cleanup(*u);
}

/* Characters never allowed in a URL as the guest sends it: controls, space, DEL (curl
 * would reject some; refusing all here keeps the decision ours), and the backslash, which
 * WHATWG parsers read as '/' in http URLs and curl does not: a parser differential. */
static bool bad_url_char(unsigned char c)
{
	return c <= 0x20 || c == 0x7f || c == '\\';
}

/* The authority of an absolute http(s) URL, checked before curl sees it: non-empty, no
 * userinfo ('@'), not starting with another '/'. 'rest' follows "scheme://". */
static bool authority_ok(const char *rest)
{
	size_t k = strcspn(rest, "/?#");
	return k > 0 && !memchr(rest, '@', k);
}

/* One part of a numeric IPv4 host in the WHATWG sense: decimal, 0x hex or 0 octal.
 * Returns false when the part is no number. */
static bool ipv4_number(const char *s, size_t len, uint64_t *ret)
{
	unsigned base = 10;
	if (len >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
		len -= 2;
	} else if (len >= 2 && s[0] == '0') {
		base = 8;
		s++;
		len--;
	}
	if (len == 0) {
		*ret = 0; /* "0x" is zero */
		return base == 16;
	}
	uint64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		int d;
		char c = (char)tolower((unsigned char)s[i]);
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else
			return false;
		if ((unsigned)d >= base)
			return false;
		v = v * base + (unsigned)d;
		if (v > 0xffffffffULL)
			v = 0x100000000ULL; /* saturate: too large either way */
	}
	*ret = v;
	return true;
}

/* Whether the last label makes the host an IPv4 address in WHATWG terms (all digits, or
 * a valid number such as 0x7f): then the whole host must parse as one, since glibc's
 * resolver would read it as an address (inet_aton) rather than a name. */
static bool ends_in_number(const char *host)
{
	const char *last = strrchr(host, '.');
	last = last ? last + 1 : host;
	size_t len = strlen(last);
	if (!len)
		return false;
	bool digits = true;
	for (size_t i = 0; i < len; i++)
		digits = digits && isdigit((unsigned char)last[i]);
	uint64_t v;
	return digits || ipv4_number(last, len, &v);
}

/* Parses every spelling inet_aton and browsers accept: 1 to 4 parts, each decimal, octal
 * or hex, the last filling the remaining bytes. */
static bool parse_numeric_ipv4(const char *host, struct in_addr *ret)
{
	uint64_t parts[4];
	size_t n = 0;
	for (const char *p = host;;) {
		size_t k = strcspn(p, ".");
		if (n == 4 || !ipv4_number(p, k, &parts[n]))
			return false;
		n++;
		if (!p[k])
			break;
		p += k + 1;
	}
	uint64_t v = 0;
	for (size_t i = 0; i + 1 < n; i++) {
		if (parts[i] > 255)
			return false;
		v |= parts[i] << (8 * (3 - i));
	}
	uint64_t last_max = (1ULL << (8 * (5 - n))) - 1;
	if (parts[n - 1] > last_max)
		return false;
	v |= parts[n - 1];
	ret->s_addr = htonl((uint32_t)v);
	return true;
}

/* A DNS name of ASCII letters, digits, '-' and '_' in 1..63-byte labels. */
static const char *name_problem(const char *host)
{
	size_t len = strlen(host);
	if (len == 0)
		return "empty host";
	if (len > 253)
		return "host name longer than 253 characters";
	for (const char *label = host;;) {
		size_t k = strcspn(label, ".");
		if (k == 0)
			return "empty label in host name";
		if (k > 63)
			return "host label longer than 63 characters";
		for (size_t i = 0; i < k; i++) {
			unsigned char c = (unsigned char)label[i];
			if (!(islower(c) || isdigit(c) || c == '-' || c == '_'))
				return "invalid character in host name";
		}
		if (!label[k])
			return NULL;
		label += k + 1;
	}
}

static int idn_lookup(const char *in, char **ret)
{
	int rc = idn2_lookup_u8((const uint8_t *)in, (uint8_t **)ret,
	                        IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
	if (rc != IDN2_OK)
		rc = idn2_lookup_u8((const uint8_t *)in, (uint8_t **)ret,
		                    IDN2_NFC_INPUT | IDN2_TRANSITIONAL);
	return rc;
}

/* Every "xn--" label must decode: a name no resolver could look up is refused here. Other
 * labels are not run through IDNA, which forbids names such as "ab--cd" that DNS has. */
static bool punycode_ok(const char *host)
{
	for (const char *label = host; *label;) {
		size_t k = strcspn(label, ".");
		if (k >= 4 && strncmp(label, "xn--", 4) == 0) {
			_cleanup_free_ char *one = xstrndup(label, k);
			char *out = NULL;
			int rc = idn_lookup(one, &out);
			idn2_free(out);
			if (rc != IDN2_OK)
				return false;
		}
		label += k;
		if (*label)
			label++;
	}
	return true;
}

/* Turns the host curl parsed into the form the policy judges and curl then uses; fills
 * t->host, t->host_is_ip and t->ip. */
static enum px_pep_code normalise_host(const char *raw, struct px_pep_target *t, char *msg,
                                       size_t msg_len)
{
	size_t len = strlen(raw);
	if (raw[0] == '[') {
		if (len < 3 || raw[len - 1] != ']') {
			say(msg, msg_len, "invalid IPv6 address");
			return PX_PEP_INVALID_URL;
		}
		_cleanup_free_ char *inner = xstrndup(raw + 1, len - 2);
		struct px_pep_addr a;
		if (px_pep_addr_parse(inner, &a) < 0 || a.family != AF_INET6) {
			say(msg, msg_len, "brackets must hold an IPv6 address");
			return PX_PEP_INVALID_URL;
		}
		char buf[PX_PEP_ADDR_STRLEN];
		px_pep_addr_format(&a, buf, sizeof(buf));
		t->host = xstrdup(buf);
		t->host_is_ip = true;
		t->ip = a;
		return PX_PEP_OK;
	}
	_cleanup_free_ char *host = NULL;
	bool ascii = true;
	for (const char *c = raw; *c; c++)
		ascii = ascii && (unsigned char)*c < 0x80;
	if (ascii) {
		host = xstrdup(raw);
	} else {
		/* IDNA2008 with the TR46 mappings, as curl does it, but from UTF-8 whatever
		 * the locale: curl's own conversion fails in the C locale. */
		char *out = NULL;
		int rc = idn_lookup(raw, &out);
		if (rc != IDN2_OK) {
			say(msg, msg_len, "invalid internationalised host name (%s)",
			    idn2_strerror(rc));
			return PX_PEP_INVALID_URL;
		}
		host = xstrdup(out);
		idn2_free(out);
	}
	for (char *c = host; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	len = strlen(host);
	if (len && host[len - 1] == '.')
		host[--len] = '\0'; /* the absolute form names the same host */
	if (strchr(host, '%')) {
		say(msg, msg_len, "percent-encoded host name");
		return PX_PEP_INVALID_URL;
	}
	const char *why = name_problem(host);
	if (why || !punycode_ok(host)) {
		say(msg, msg_len, "%s", why ? why : "invalid Punycode label in host name");
		return PX_PEP_INVALID_URL;
	}
	if (ends_in_number(host)) {
		struct in_addr v4;
		if (!parse_numeric_ipv4(host, &v4)) {
			say(msg, msg_len, "host ends in a number but is no IPv4 address");
			return PX_PEP_INVALID_URL;
		}
		t->ip = (struct px_pep_addr){.family = AF_INET, .u.v4 = v4};
		t->host_is_ip = true;
		char buf[PX_PEP_ADDR_STRLEN];
		px_pep_addr_format(&t->ip, buf, sizeof(buf));
		t->host = xstrdup(buf);
		return PX_PEP_OK;
	}
	t->host = steal_ptr(&host);
	return PX_PEP_OK;
}

/* Validates a parsed handle and fills 'ret' from it, taking 'u' over on success. */
static enum px_pep_code from_handle(CURLU **u, struct px_pep_target *ret, char *msg, size_t msg_len)
{
	_cleanup_curl_ char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *zone = NULL,
	                    *user = NULL, *full = NULL;
	if (curl_url_get(*u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
		say(msg, msg_len, "only http and https URLs are allowed");
		return PX_PEP_INVALID_URL;
	}
	if (curl_url_get(*u, CURLUPART_USER, &user, 0) != CURLUE_NO_USER) {
		say(msg, msg_len, "credentials in the URL are not allowed");
		return PX_PEP_INVALID_URL;
	}
	if (curl_url_get(*u, CURLUPART_ZONEID, &zone, 0) != CURLUE_NO_ZONEID) {
		say(msg, msg_len, "IPv6 zone ids are not allowed");
		return PX_PEP_INVALID_URL;
	}
	if (curl_url_get(*u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host) {
		say(msg, msg_len, "URL has no host");
		return PX_PEP_INVALID_URL;
	}
	if (curl_url_get(*u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
		say(msg, msg_len, "URL has no port");
		return PX_PEP_INVALID_URL;
	}
	char *end;
	errno = 0;
	unsigned long pnum = strtoul(port, &end, 10);
	if (errno || *end || !isdigit((unsigned char)port[0]) || pnum < 1 || pnum > 65535) {
		say(msg, msg_len, "port must be 1 to 65535");
		return PX_PEP_INVALID_URL;
	}
	struct px_pep_target t = {.port = (uint16_t)pnum};
	snprintf(t.scheme, sizeof(t.scheme), "%s", scheme);
	enum px_pep_code code = normalise_host(host, &t, msg, msg_len);
	if (code != PX_PEP_OK) {
		px_pep_target_free(&t);
		return code;
	}
	/* From here on the handle holds the host as judged: curl connects to, resolves
	 * (through the pin) and names in Host exactly this. */
	_cleanup_free_ char *set = t.host_is_ip && t.ip.family == AF_INET6
	                                   ? xasprintf("[%s]", t.host)
	                                   : xstrdup(t.host);
	if (curl_url_set(*u, CURLUPART_HOST, set, 0) != CURLUE_OK ||
	    curl_url_get(*u, CURLUPART_PATH, &path, 0) != CURLUE_OK ||
	    curl_url_get(*u, CURLUPART_URL, &full, 0) != CURLUE_OK) {
		px_pep_target_free(&t);
		say(msg, msg_len, "invalid URL");
		return PX_PEP_INVALID_URL;
	}
	t.path = xstrdup(path);
	t.url_str = xstrdup(full);
	t.url = steal_ptr(u);
	*ret = t;
	return PX_PEP_OK;
}

/* The checks on the raw string: length, bytes, an absolute http(s) URL with a plain
 * authority. 'absolute' is false for a redirect's Location, which may be relative. */
static enum px_pep_code raw_checks(const struct px_pep_policy *p, const char *url, bool absolute,
                                   char *msg, size_t msg_len)
{
	size_t len = strlen(url);
	if (len > px_pep_policy_limits(p)->max_url_bytes) {
		say(msg, msg_len, "URL longer than %zu bytes",
		    px_pep_policy_limits(p)->max_url_bytes);
		return PX_PEP_CONSTRAINT_VIOLATION;
	}
	for (size_t i = 0; i < len; i++)
		if (bad_url_char((unsigned char)url[i])) {
			say(msg, msg_len, "URL contains a control byte, space or backslash");
			return PX_PEP_INVALID_URL;
		}
	const char *rest = NULL;
	if (strncasecmp(url, "http://", 7) == 0)
		rest = url + 7;
	else if (strncasecmp(url, "https://", 8) == 0)
		rest = url + 8;
	else if (strncmp(url, "//", 2) == 0 && !absolute)
		rest = url + 2;
	if (absolute && !rest) {
		say(msg, msg_len, "only absolute http:// and https:// URLs are allowed");
		return PX_PEP_INVALID_URL;
	}
	if (!rest && !absolute) {
		/* A relative reference, or another scheme that from_handle refuses. */
		size_t k = strcspn(url, ":/?#");
		if (url[k] == ':') {
			say(msg, msg_len, "only http and https URLs are allowed");
			return PX_PEP_INVALID_URL;
		}
		return PX_PEP_OK;
	}
	if (!authority_ok(rest)) {
		say(msg, msg_len, "URL must have a host and no credentials");
		return PX_PEP_INVALID_URL;
	}
	return PX_PEP_OK;
}

static enum px_pep_code set_error(CURLUcode rc, char *msg, size_t msg_len)
{
	switch (rc) {
	case CURLUE_USER_NOT_ALLOWED:
		say(msg, msg_len, "credentials in the URL are not allowed");
		break;
	case CURLUE_BAD_PORT_NUMBER:
		say(msg, msg_len, "port must be 1 to 65535");
		break;
	case CURLUE_UNSUPPORTED_SCHEME:
		say(msg, msg_len, "only http and https URLs are allowed");
		break;
	default:
		say(msg, msg_len, "invalid URL (%s)", curl_url_strerror(rc));
		break;
	}
	return PX_PEP_INVALID_URL;
}

enum px_pep_code px_pep_target_parse(const struct px_pep_policy *p, const char *url,
                                     struct px_pep_target *ret, char *msg, size_t msg_len)
{
	enum px_pep_code code = raw_checks(p, url, true, msg, msg_len);
	if (code != PX_PEP_OK)
		return code;
	_cleanup_(urlp) CURLU *u = curl_url();
	if (!u)
		abort(); /* out of memory, as xmalloc */
	CURLUcode rc = curl_url_set(u, CURLUPART_URL, url, CURLU_DISALLOW_USER);
	if (rc != CURLUE_OK)
		return set_error(rc, msg, msg_len);
	return from_handle(&u, ret, msg, msg_len);
}

enum px_pep_code px_pep_target_redirect(const struct px_pep_policy *p,
                                        const struct px_pep_target *base, const char *location,
                                        struct px_pep_target *ret, char *msg, size_t msg_len)
{
	enum px_pep_code code = raw_checks(p, location, false, msg, msg_len);
	if (code != PX_PEP_OK)
		return code;
	_cleanup_(urlp) CURLU *u = curl_url_dup(base->url);
	if (!u)
		abort();
	CURLUcode rc = curl_url_set(u, CURLUPART_URL, location, CURLU_DISALLOW_USER);
	if (rc != CURLUE_OK)
		return set_error(rc, msg, msg_len);
	_cleanup_curl_ char *full = NULL;
	if (curl_url_get(u, CURLUPART_URL, &full, 0) != CURLUE_OK) {
		say(msg, msg_len, "invalid redirect target");
		return PX_PEP_INVALID_URL;
	}
	/* The resolved URL gets the whole check of a guest URL, its length cap included. */
	return px_pep_target_parse(p, full, ret, msg, msg_len);
}

enum px_pep_code px_pep_target_check(const struct px_pep_policy *p, const struct px_pep_target *t,
                                     const struct px_pep_addrs *local, char *reason,
                                     size_t reason_len)
{
	if (t->host_is_ip) {
		const char *cls = px_pep_addr_denied(&t->ip, local);
		if (px_pep_policy_address_allowed(p, &t->ip, t->port)) {
			say(reason, reason_len, "allow_addresses");
			return PX_PEP_OK;
		}
		if (cls) {
			say(reason, reason_len, "%s", cls);
			return PX_PEP_SSRF_BLOCKED;
		}
	}
	return px_pep_policy_check_host(p, t->host, t->port, reason, reason_len);
}

void px_pep_target_free(struct px_pep_target *t)
{
	if (!t)
		return;
	curl_url_cleanup(t->url);
	free(t->host);
	free(t->path);
	free(t->url_str);
	*t = (struct px_pep_target){0};
}

/* RFC 9110 tchar. */
static bool is_tchar(unsigned char c)
{
	return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_token(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!is_tchar((unsigned char)*s))
			return false;
	return true;
}

/* Headers the guest never sets: Host comes from the URL (no URL-vs-Host differential),
 * the hop-by-hop ones belong to the connection the PEP makes. */
static bool dropped_header(const char *name, const char *connection)
{
	static const char *const names[] = {
	        "host",    "connection", "keep-alive", "transfer-encoding", "te",
	        "trailer", "upgrade",    "expect",     "content-length",    "http2-settings",
	};
	for (size_t i = 0; i < PX_ARRAY_SIZE(names); i++)
		if (strcasecmp(name, names[i]) == 0)
			return true;
	if (strncasecmp(name, "proxy-", 6) == 0)
		return true;
	/* Connection: the names it lists are hop-by-hop too (RFC 9110 7.6.1). */
	size_t nlen = strlen(name);
	for (const char *c = connection; c && *c;) {
		while (*c == ' ' || *c == '\t' || *c == ',')
			c++;
		size_t k = strcspn(c, " \t,");
		if (k == nlen && strncasecmp(c, name, k) == 0)
			return true;
		c += k;
	}
	return false;
}

enum px_pep_code px_pep_request_check(const struct px_pep_policy *p,
                                      const struct px_pep_request *req,
                                      struct px_pep_headers *ret_upstream, char *msg,
                                      size_t msg_len)
{
	const struct px_pep_limits *lim = px_pep_policy_limits(p);
	if (!req->method || strlen(req->method) > 32 || !is_token(req->method)) {
		say(msg, msg_len, "method is not an HTTP token");
		return PX_PEP_INVALID_METHOD;
	}
	if (!px_pep_policy_method_allowed(p, req->method)) {
		say(msg, msg_len, "method '%s' is not allowed", req->method);
		return PX_PEP_INVALID_METHOD;
	}
	if (req->body_len > lim->max_request_bytes) {
		say(msg, msg_len, "request body larger than %" PRIu64 " bytes",
		    lim->max_request_bytes);
		return PX_PEP_CONSTRAINT_VIOLATION;
	}
	if (req->headers.n > lim->max_headers) {
		say(msg, msg_len, "more than %zu request headers", lim->max_headers);
		return PX_PEP_CONSTRAINT_VIOLATION;
	}
	uint64_t bytes = 0;
	const char *connection = NULL;
	for (size_t i = 0; i < req->headers.n; i++) {
		const struct px_pep_header *h = &req->headers.v[i];
		if (!h->name || !h->value || !is_token(h->name)) {
			say(msg, msg_len, "header %zu: name is not an HTTP token", i);
			return PX_PEP_CONSTRAINT_VIOLATION;
		}
		for (const char *c = h->value; *c; c++) {
			unsigned char b = (unsigned char)*c;
			if ((b < 0x20 && b != '\t') || b == 0x7f) {
				say(msg, msg_len, "header '%s': control byte in value", h->name);
				return PX_PEP_CONSTRAINT_VIOLATION;
			}
		}
		bytes += strlen(h->name) + strlen(h->value);
		if (strcasecmp(h->name, "connection") == 0)
			connection = h->value;
	}
	if (bytes > lim->max_header_bytes) {
		say(msg, msg_len, "request headers larger than %zu bytes", lim->max_header_bytes);
		return PX_PEP_CONSTRAINT_VIOLATION;
	}
	struct px_pep_headers out = {0};
	out.v = xcalloc(req->headers.n + 1, sizeof(*out.v));
	for (size_t i = 0; i < req->headers.n; i++) {
		const struct px_pep_header *h = &req->headers.v[i];
		if (dropped_header(h->name, connection))
			continue;
		const char *v = h->value;
		size_t len = strlen(v);
		while (len && (*v == ' ' || *v == '\t')) {
			v++;
			len--;
		}
		while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
			len--;
		out.v[out.n].name = xstrdup(h->name);
		out.v[out.n].value = xstrndup(v, len);
		out.n++;
	}
	*ret_upstream = out;
	return PX_PEP_OK;
}
