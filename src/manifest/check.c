#include <arpa/inet.h>
#include <ctype.h>
#include <strings.h>

#include "core/common.h"

#include "manifest/check.h"
#include "manifest/ynode.h"

#define MAX_URL  4096
#define MAX_PATH 4096

static bool all_chars(const char *s, const char *extra)
{
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr(extra, *s))
			return false;
	return true;
}

static bool has_control_or_space(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f)
			return true;
	return false;
}

static void lowercase(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* host[:port] of an http(s) URL: a DNS name, an IPv4 address or a bracketed IPv6 one. */
static int check_authority(const struct px_ynode *n, const char *what, const char *url,
                           const char *a, size_t len, struct px_err **err)
{
	_cleanup_free_ char *auth = xstrndup(a, len);
	if (strchr(auth, '@'))
		return px_ynode_error(err, n,
		                      "'%s': URL '%s' carries credentials (user@host): keep them "
		                      "out of the manifest",
		                      what, url);
	char *host = auth, *port = NULL;
	if (host[0] == '[') {
		char *close = strchr(host, ']');
		if (!close)
			goto bad_host;
		*close = '\0';
		host++;
		struct in6_addr a6;
		if (inet_pton(AF_INET6, host, &a6) != 1)
			goto bad_host;
		if (close[1] == ':')
			port = close + 2;
		else if (close[1])
			goto bad_host;
	} else {
		port = strchr(host, ':');
		if (port)
			*port++ = '\0';
		if (!*host || !all_chars(host, ".-_") || host[0] == '.' || host[0] == '-')
			goto bad_host;
	}
	if (port) {
		unsigned long v = 0;
		if (!*port || strlen(port) > 5)
			goto bad_port;
		for (const char *p = port; *p; p++) {
			if (!isdigit((unsigned char)*p))
				goto bad_port;
			v = v * 10 + (unsigned long)(*p - '0');
		}
		if (v == 0 || v > 65535)
			goto bad_port;
	}
	return 0;
bad_host:
	if (!*a || a[0] == '/')
		return px_ynode_error(err, n, "'%s': URL '%s' has no host", what, url);
	return px_ynode_error(err, n, "'%s': URL '%s' has an invalid host", what, url);
bad_port:
	return px_ynode_error(err, n, "'%s': URL '%s' has an invalid port", what, url);
}

int px_check_url(const struct px_ynode *n, const char *what, char *value, struct px_err **err)
{
	if (strlen(value) > MAX_URL)
		return px_ynode_error(err, n, "'%s': URL is longer than %d bytes", what, MAX_URL);
	for (const char *p = value; *p; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
			return px_ynode_error(
			        err, n,
			        "'%s': URL '%s' contains a space, control or non-ASCII "
			        "character (percent-encode it)",
			        what, value);
	const char *sep = strstr(value, "://");
	size_t slen = sep ? (size_t)(sep - value) : 0;
	bool scheme_ok = slen > 0 && isalpha((unsigned char)value[0]);
	for (size_t i = 0; scheme_ok && i < slen; i++)
		scheme_ok = isalnum((unsigned char)value[i]) || strchr("+.-", value[i]);
	if (!scheme_ok)
		return px_ynode_error(err, n,
		                      "'%s': '%s' is not a URL (expected http://, https:// or "
		                      "file://)",
		                      what, value);
	const char *rest = sep + 3;
	if ((slen == 4 && strncasecmp(value, "http", 4) == 0) ||
	    (slen == 5 && strncasecmp(value, "https", 5) == 0))
		return check_authority(n, what, value, rest, strcspn(rest, "/?#"), err);
	if (slen == 4 && strncasecmp(value, "file", 4) == 0) {
		if (strncmp(rest, "localhost/", 10) == 0)
			rest += 9;
		if (rest[0] != '/' || rest[1] == '\0')
			return px_ynode_error(err, n,
			                      "'%s': file URL '%s' must name an absolute path "
			                      "(file:///path)",
			                      what, value);
		return 0;
	}
	return px_ynode_error(err, n,
	                      "'%s': unsupported URL scheme '%.*s' in '%s' (use http, https or "
	                      "file)",
	                      what, (int)slen, value, value);
}

int px_check_sha256(const struct px_ynode *n, const char *what, char *value, struct px_err **err)
{
	size_t len = strlen(value);
	bool hex = all_chars(value, "");
	for (const char *p = value; hex && *p; p++)
		hex = isxdigit((unsigned char)*p);
	if (len != 64 || !hex)
		return px_ynode_error(err, n,
		                      "'%s' must be 64 hexadecimal digits (got %s%zu characters)",
		                      what, hex ? "" : "non-hex text, ", len);
	lowercase(value);
	return 0;
}

int px_check_name(const struct px_ynode *n, const char *what, char *value, struct px_err **err)
{
	size_t len = strlen(value);
	if (len == 0 || len > 63 || !isalnum((unsigned char)value[0]) || !all_chars(value, "._-") ||
	    strcmp(value, ".") == 0)
		return px_ynode_error(err, n,
		                      "'%s': invalid name '%s' (1-63 letters, digits, '.', '_' "
		                      "or '-', starting with a letter or digit)",
		                      what, value);
	return 0;
}

int px_check_user(const struct px_ynode *n, const char *what, char *value, struct px_err **err)
{
	size_t len = strlen(value);
	if (len == 0 || len > 32 || !(islower((unsigned char)value[0]) || value[0] == '_') ||
	    !all_chars(value, "_-"))
		return px_ynode_error(err, n,
		                      "'%s': invalid user name '%s' (lowercase letters, digits, "
		                      "'_' and '-', at most 32)",
		                      what, value);
	for (const char *p = value; *p; p++)
		if (isupper((unsigned char)*p))
			return px_ynode_error(err, n, "'%s': user name '%s' must be lowercase",
			                      what, value);
	return 0;
}

int px_check_token(const struct px_ynode *n, const char *what, char *value, struct px_err **err)
{
	if (!*value || has_control_or_space(value) || strlen(value) > 1024)
		return px_ynode_error(err, n,
		                      "'%s': '%s' must be one word without spaces or control "
		                      "characters",
		                      what, value);
	return 0;
}

int px_check_line(const struct px_ynode *n, const char *what, char *value, struct px_err **err)
{
	if (!*value)
		return px_ynode_error(err, n, "'%s' must not be empty", what);
	for (const char *p = value; *p; p++)
		if ((unsigned char)*p < ' ' && *p != '\t')
			return px_ynode_error(err, n, "'%s' must be a single line", what);
	return 0;
}

int px_check_path(const struct px_ynode *n, const char *what, char *value, struct px_err **err)
{
	if (!*value)
		return px_ynode_error(err, n, "'%s': empty path", what);
	if (strlen(value) > MAX_PATH)
		return px_ynode_error(err, n, "'%s': path is longer than %d bytes", what, MAX_PATH);
	for (const char *p = value; *p; p++)
		if ((unsigned char)*p < ' ' || *p == 0x7f)
			return px_ynode_error(err, n, "'%s': path contains a control character",
			                      what);
	return 0;
}

int px_check_guest_path(const struct px_ynode *n, const char *what, char *value,
                        struct px_err **err)
{
	if (px_check_path(n, what, value, err) < 0)
		return -1;
	if (value[0] != '/' || value[1] == '\0')
		return px_ynode_error(err, n,
		                      "'%s': '%s' must be an absolute path inside the guest "
		                      "(starting with '/')",
		                      what, value);
	for (const char *p = value; *p;) {
		while (*p == '/')
			p++;
		size_t k = strcspn(p, "/");
		if ((k == 2 && strncmp(p, "..", 2) == 0) || (k == 1 && *p == '.'))
			return px_ynode_error(err, n,
			                      "'%s': '%s' may not contain '.' or '..' components",
			                      what, value);
		p += k;
	}
	return 0;
}

int px_check_datasource(const struct px_ynode *n, const char *what, char *value,
                        struct px_err **err)
{
	lowercase(value);
	if (strcmp(value, "nocloud") != 0)
		return px_ynode_error(err, n,
		                      "'%s': unsupported datasource '%s' (only 'nocloud' is "
		                      "supported)",
		                      what, value);
	return 0;
}

int px_check_instance_id(const struct px_ynode *n, const char *what, char *value,
                         struct px_err **err)
{
	if (!*value || strlen(value) > 128 || !all_chars(value, "._-:"))
		return px_ynode_error(err, n,
		                      "'%s': invalid instance id '%s' (use 'auto', or up to 128 "
		                      "letters, digits, '.', '_', '-', ':')",
		                      what, value);
	return 0;
}

int px_check_package(const struct px_ynode *n, const char *what, char *value, struct px_err **err)
{
	if (!*value || strlen(value) > 256 || !isalnum((unsigned char)value[0]) ||
	    !all_chars(value, "+._-@=<>~"))
		return px_ynode_error(err, n,
		                      "'%s': invalid package '%s' (a name such as 'firefox', "
		                      "optionally with a version constraint such as 'nodejs>=20')",
		                      what, value);
	return 0;
}

int px_check_host_pattern(const struct px_ynode *n, const char *what, char *value,
                          struct px_err **err)
{
	/* The shape only; px_pep_policy_new checks the rest (public suffixes, numeric names). */
	_cleanup_free_ char *copy = xstrdup(value);
	char *host = copy;
	if (strncmp(host, "**.", 3) == 0)
		host += 3;
	else if (strncmp(host, "*.", 2) == 0)
		host += 2;
	char *colon = strrchr(host, ':');
	bool ok = true;
	if (colon) {
		*colon = '\0';
		ok = colon[1] && strlen(colon + 1) <= 5;
		for (const char *c = colon + 1; ok && *c; c++)
			ok = isdigit((unsigned char)*c);
		ok = ok && atoi(colon + 1) >= 1 && atoi(colon + 1) <= 65535;
	}
	size_t len = strlen(host);
	ok = ok && len > 0 && len <= 253 && all_chars(host, ".-_") && host[0] != '.' &&
	     host[0] != '-' && host[len - 1] != '.' && !strstr(host, "..");
	if (!ok)
		return px_ynode_error(err, n,
		                      "'%s': invalid host pattern '%s' (a name such as "
		                      "'example.com', '*.example.com' (subdomains), "
		                      "'**.example.com' (the name and its subdomains), optionally "
		                      "with ':PORT')",
		                      what, value);
	lowercase(value);
	return 0;
}

int px_check_address(const struct px_ynode *n, const char *what, char *value, struct px_err **err)
{
	_cleanup_free_ char *addr = xstrdup(value);
	char *slash = strchr(addr, '/');
	if (slash)
		*slash++ = '\0';
	/* IP:PORT and [IPv6]:PORT open exactly one port (the PEP's allow_addresses). */
	char *port = NULL, *colon = strchr(addr, ':');
	if (!slash && addr[0] == '[') {
		char *close = strchr(addr, ']');
		if (close && close[1] == ':') {
			*close = '\0';
			port = close + 2;
			memmove(addr, addr + 1, strlen(addr + 1) + 1);
		}
	} else if (!slash && colon && !strchr(colon + 1, ':')) {
		*colon = '\0';
		port = colon + 1;
	}
	if (port) {
		bool port_ok = *port && strlen(port) <= 5;
		for (const char *c = port; port_ok && *c; c++)
			port_ok = isdigit((unsigned char)*c);
		if (!port_ok || atoi(port) < 1 || atoi(port) > 65535)
			addr[0] = '\0'; /* reported below as an invalid address */
	}
	unsigned char buf[sizeof(struct in6_addr)];
	int max_prefix = 0;
	if (inet_pton(AF_INET, addr, buf) == 1)
		max_prefix = 32;
	else if (inet_pton(AF_INET6, addr, buf) == 1)
		max_prefix = 128;
	bool ok = max_prefix > 0;
	if (ok && slash) {
		int v = 0;
		ok = *slash && strlen(slash) <= 3;
		for (const char *p = slash; ok && *p; p++) {
			ok = isdigit((unsigned char)*p);
			v = v * 10 + (*p - '0');
		}
		ok = ok && v <= max_prefix;
	}
	if (!ok)
		return px_ynode_error(err, n,
		                      "'%s': invalid address '%s' (an IPv4 or IPv6 address, "
		                      "optionally with a /prefix or a port, e.g. 10.0.0.0/8, "
		                      "127.0.0.1:8080 or [::1]:8080)",
		                      what, value);
	return 0;
}

int px_check_method(const struct px_ynode *n, const char *what, char *value, struct px_err **err)
{
	size_t len = strlen(value);
	bool ok = len > 0 && len <= 32;
	for (const char *p = value; ok && *p; p++)
		ok = isupper((unsigned char)*p);
	if (!ok)
		return px_ynode_error(err, n,
		                      "'%s': invalid HTTP method '%s' (uppercase letters, e.g. "
		                      "GET)",
		                      what, value);
	return 0;
}

int px_check_permissions(const struct px_ynode *n, const char *what, char *value,
                         struct px_err **err)
{
	size_t len = strlen(value);
	bool ok = len >= 3 && len <= 4;
	for (const char *p = value; ok && *p; p++)
		ok = *p >= '0' && *p <= '7';
	if (!ok)
		return px_ynode_error(err, n,
		                      "'%s': invalid permissions '%s' (octal such as \"0644\")",
		                      what, value);
	return 0;
}

int px_check_owner(const struct px_ynode *n, const char *what, char *value, struct px_err **err)
{
	const char *colon = strchr(value, ':');
	bool ok = *value && *value != ':' && strlen(value) <= 65 && all_chars(value, "_-:") &&
	          (!colon || (colon[1] && !strchr(colon + 1, ':')));
	if (!ok)
		return px_ynode_error(err, n,
		                      "'%s': invalid owner '%s' (\"user\" or \"user:group\")", what,
		                      value);
	return 0;
}
