/* libFuzzer target for URL -> decision: px_pep_target_parse, px_pep_target_check,
 * px_pep_target_redirect and px_pep_request_check. The input is lines: the URL, a redirect
 * Location, the method, then "Name: value" headers. Beyond "no crash, no leak", a parsed
 * target must be normalised (lowercase, no trailing dot, port 1..65535, http or https), an
 * IP host must print as its address, and curl must read the URL it will use back to the
 * very host that was judged: any difference is a parser differential and aborts. */
#include <ctype.h>

#include "core/common.h"

#include "manifest/manifest.h"
#include "pep/addr.h"
#include "pep/policy.h"
#include "pep/target.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct px_pep_policy *policy(void)
{
	static struct px_pep_policy *p;
	if (p)
		return p;
	static char *allow[] = {"example.com", "**.example.org", "*.example.net", "93.184.216.34"};
	static char *deny[] = {"bad.example.org"};
	static char *addrs[] = {"127.0.0.1:18080", "[::1]:8080"};
	static char *methods[] = {"GET", "HEAD", "POST", "PUT", "DELETE"};
	struct px_manifest m = {0};
	m.pep.allow = (struct px_strv){.v = allow, .n = PX_ARRAY_SIZE(allow)};
	m.pep.deny = (struct px_strv){.v = deny, .n = PX_ARRAY_SIZE(deny)};
	m.pep.allow_addresses = (struct px_strv){.v = addrs, .n = PX_ARRAY_SIZE(addrs)};
	m.pep.methods = (struct px_strv){.v = methods, .n = PX_ARRAY_SIZE(methods)};
	m.pep.max_request_bytes = 1024;
	m.pep.max_response_bytes = 1024;
	if (px_pep_policy_new(&m, &p, NULL) < 0)
		abort();
	struct px_pep_limits l = *px_pep_policy_limits(p);
	l.max_url_bytes = 2048;
	l.max_headers = 16;
	l.max_header_bytes = 1024;
	px_pep_policy_set_limits(p, &l);
	return p;
}

static void check_target(const struct px_pep_target *t)
{
	if (strcmp(t->scheme, "http") != 0 && strcmp(t->scheme, "https") != 0)
		abort();
	if (t->port == 0 || !t->host || !*t->host || !t->path || !t->url_str || !t->url)
		abort();
	size_t len = strlen(t->host);
	for (size_t i = 0; i < len; i++)
		if (isupper((unsigned char)t->host[i]) || (unsigned char)t->host[i] >= 0x80 ||
		    t->host[i] == '%' || t->host[i] == '@')
			abort();
	if (t->host[len - 1] == '.')
		abort();
	if (t->host_is_ip) {
		char buf[PX_PEP_ADDR_STRLEN];
		px_pep_addr_format(&t->ip, buf, sizeof(buf));
		if (strcmp(buf, t->host) != 0)
			abort();
	} else {
		struct px_pep_addr a;
		if (px_pep_addr_parse(t->host, &a) == 0)
			abort(); /* an address must never pass as a name */
	}
	/* curl's own reading of the URL it will be handed. */
	CURLU *u = curl_url();
	char *h = NULL, *port = NULL;
	if (curl_url_set(u, CURLUPART_URL, t->url_str, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK)
		abort();
	size_t hl = strlen(h);
	bool same = h[0] == '[' ? hl == len + 2 && strncmp(h + 1, t->host, len) == 0
	                        : strcmp(h, t->host) == 0;
	if (!same || atoi(port) != t->port)
		abort();
	curl_free(h);
	curl_free(port);
	curl_url_cleanup(u);
	char reason[128];
	px_pep_target_check(policy(), t, NULL, reason, sizeof(reason));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 8192)
		return 0;
	char *buf = xmalloc(size + 1);
	memcpy(buf, data, size);
	buf[size] = '\0';
	char *lines[32];
	size_t n = 0;
	for (char *p = buf; p && n < PX_ARRAY_SIZE(lines);) {
		lines[n++] = p;
		p = strchr(p, '\n');
		if (p)
			*p++ = '\0';
	}
	struct px_pep_target t = {0}, next = {0};
	char msg[256];
	if (px_pep_target_parse(policy(), lines[0], &t, msg, sizeof(msg)) == PX_PEP_OK) {
		check_target(&t);
		if (n > 1 && px_pep_target_redirect(policy(), &t, lines[1], &next, msg,
		                                    sizeof(msg)) == PX_PEP_OK)
			check_target(&next);
	} else if (!msg[0]) {
		abort(); /* a refusal always says why */
	}
	px_pep_target_free(&next);
	px_pep_target_free(&t);

	struct px_pep_header hs[29];
	struct px_pep_request req = {.method = n > 2 ? lines[2] : "GET", .headers.v = hs};
	for (size_t i = 3; i < n; i++) {
		char *colon = strchr(lines[i], ':');
		hs[req.headers.n].name = lines[i];
		hs[req.headers.n].value = colon ? colon + 1 : "";
		if (colon)
			*colon = '\0';
		req.headers.n++;
	}
	req.body_len = size;
	struct px_pep_headers out = {0};
	if (px_pep_request_check(policy(), &req, &out, msg, sizeof(msg)) == PX_PEP_OK) {
		for (size_t i = 0; i < out.n; i++)
			for (const char *c = out.v[i].value; *c; c++)
				if (*c == '\r' || *c == '\n')
					abort();
	}
	px_pep_headers_free(&out);
	free(buf);
	return 0;
}
