/* One parse of the guest's URL and the hygiene of its request. The URL is parsed once
 * with curl_url(); the same CURLU handle, rewritten to the normalised host, goes to curl
 * with CURLOPT_CURLU, so what the policy judged is what curl dials and sends. */
#ifndef PX_PEP_TARGET_H
#define PX_PEP_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "pep/pep.h"

struct px_pep_policy;

struct px_pep_target {
	CURLU *url;     /* owned; give to curl with CURLOPT_CURLU */
	char scheme[8]; /* "http" or "https" */
	char *host;     /* normalised: lowercase Punycode, no trailing dot; an IP literal
	                   in canonical form without brackets ("127.0.0.1", "::1") */
	uint16_t port;  /* explicit or the scheme's default, never 0 */
	bool host_is_ip;
	struct px_pep_addr ip; /* when host_is_ip: the address every spelling stood for */
	char *path;            /* path only, no query ("/a/b") */
	char *url_str;         /* the normalised URL as curl will use it (for logs and hops) */
};

/* Parses 'url' (at most the policy's max_url_bytes) into 'ret'. invalid_url for: a scheme
 * other than http/https, userinfo, control bytes, spaces or backslashes, no host, an empty
 * label, a bracketed name that is not an IPv6 address, a zone id, a port outside 1..65535,
 * a percent-encoded host, a name that is not valid Punycode after IDN conversion. A host
 * that is numeric in any spelling (2130706433, 0177.0.0.1, 0x7f.1, 127.1) is turned into
 * the address it means (host_is_ip, canonical host) so the binary address is judged;
 * a numeric-looking host that is no valid address is invalid_url. Over max_url_bytes:
 * constraint_violation. No policy rule is applied here (see px_pep_target_check). 'msg'
 * says why in words the guest may see. 'ret' is filled only on PX_PEP_OK. */
enum px_pep_code px_pep_target_parse(const struct px_pep_policy *p, const char *url,
                                     struct px_pep_target *ret, char *msg, size_t msg_len);

/* Resolves a redirect 'location' (absolute or relative) against 'base' and parses the
 * result exactly like px_pep_target_parse. */
enum px_pep_code px_pep_target_redirect(const struct px_pep_policy *p,
                                        const struct px_pep_target *base, const char *location,
                                        struct px_pep_target *ret, char *msg, size_t msg_len);

/* The policy decision that needs no DNS: for an IP literal, the address decision
 * (px_pep_policy_check_addr; an allow_addresses entry also satisfies the host rules), then
 * for a public literal or a name the host rules (px_pep_policy_check_host). Resolved
 * answers of a name are judged afterwards with px_pep_policy_check_addr. 'local' may be
 * NULL. */
enum px_pep_code px_pep_target_check(const struct px_pep_policy *p, const struct px_pep_target *t,
                                     const struct px_pep_addrs *local, char *reason,
                                     size_t reason_len);

void px_pep_target_free(struct px_pep_target *t);

/* Request hygiene. The method must be an RFC 9110 token and on the allowlist
 * (invalid_method). Header names must be tokens and values free of CR, LF, NUL and other
 * control bytes but tab (constraint_violation, nothing is sent); Host, the hop-by-hop
 * headers (Connection and the names it lists, Keep-Alive, Transfer-Encoding, TE, Trailer,
 * Upgrade, Expect, Content-Length, Proxy-*) are dropped, never forwarded; header count and
 * bytes and body size are capped (constraint_violation). On PX_PEP_OK 'ret_upstream'
 * holds copies of the headers to send, values trimmed of surrounding spaces and tabs. */
enum px_pep_code px_pep_request_check(const struct px_pep_policy *p,
                                      const struct px_pep_request *req,
                                      struct px_pep_headers *ret_upstream, char *msg,
                                      size_t msg_len);

#endif
