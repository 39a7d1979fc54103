/* The compiled PEP policy: host rules, address exceptions, methods and limits, built once
 * from a manifest's pep section (px_manifest_load or px_manifest_load_pep) plus the
 * environment overrides, then read-only: one policy may serve many threads. SIGHUP
 * reloads build a new one and swap it. */
#ifndef PX_PEP_POLICY_H
#define PX_PEP_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pep/pep.h"

struct px_pep_policy;

struct px_pep_limits {
	uint64_t max_request_bytes;  /* request body */
	uint64_t max_response_bytes; /* response body, counted while streaming */
	size_t max_url_bytes;        /* the URL as the guest sent it */
	size_t max_headers;          /* request header count */
	size_t max_header_bytes;     /* sum of request header name + value lengths */
	uint32_t connect_timeout_ms;
	uint32_t total_timeout_ms;
	unsigned max_redirects; /* hops followed by the PEP, at most PX_PEP_MAX_HOPS */
	bool allow_https_to_http;
	bool report_only; /* mode: report: log what enforce would deny, allow it */
};

/* Compiles m->pep. Validates every entry (ASCII Punycode names only; a wildcard only as a
 * leading "*." (subdomains) or "**." (apex and subdomains) over at least two labels, never
 * a bare "*" or "*.com"; an optional ":port"; allow_addresses as "IP", "IP/prefix",
 * "IP:PORT" or "[IPv6]:PORT"), then applies the environment overrides
 * PEP_ALLOWED_DOMAINS (a comma list replacing allow), PEP_MAX_REQUEST_BYTES and
 * PEP_MAX_RESPONSE_BYTES. Errors name the entry (PX_EXIT_MANIFEST). */
int px_pep_policy_new(const struct px_manifest *m, struct px_pep_policy **ret, struct px_err **err);
void px_pep_policy_free(struct px_pep_policy *p);

const struct px_pep_limits *px_pep_policy_limits(const struct px_pep_policy *p);
/* Replaces the limits (the ones the manifest has no key for: URL, header and redirect
 * caps), before the policy is shared. max_redirects is capped at PX_PEP_MAX_HOPS. */
void px_pep_policy_set_limits(struct px_pep_policy *p, const struct px_pep_limits *limits);

/* Host rules for a normalised host (lowercase Punycode, no trailing dot, IPv6 without
 * brackets). Deny rules win. PX_PEP_OK, or PX_PEP_DENIED_BY_POLICY with 'reason' such as
 * "deny rule '*.x.com'" or "no allow rule matches". 'reason' may be NULL. */
enum px_pep_code px_pep_policy_check_host(const struct px_pep_policy *p, const char *host,
                                          uint16_t port, char *reason, size_t reason_len);

/* True when an allow_addresses entry names exactly this address (same family: a mapped or
 * NAT64 spelling never matches an IPv4 entry) and port (or any port when the entry has
 * none): the only way to reach an address px_pep_addr_denied denies. */
bool px_pep_policy_address_allowed(const struct px_pep_policy *p, const struct px_pep_addr *a,
                                   uint16_t port);

/* The whole address decision for one literal or resolved address: PX_PEP_OK when it is
 * in no denied class or an allow_addresses entry opens it, else PX_PEP_SSRF_BLOCKED with
 * the class in 'reason' ("loopback", "nat64:metadata", ...). 'local' may be NULL. */
enum px_pep_code px_pep_policy_check_addr(const struct px_pep_policy *p,
                                          const struct px_pep_addr *a, uint16_t port,
                                          const struct px_pep_addrs *local, char *reason,
                                          size_t reason_len);

/* Exact, case-sensitive match against the methods list. */
bool px_pep_policy_method_allowed(const struct px_pep_policy *p, const char *method);

#endif
