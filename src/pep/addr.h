/* Destination addresses, judged as binary values (never as strings): the SSRF deny model
 * of notes/pep-security.md. A caller classifies every literal and every resolved answer
 * with px_pep_addr_denied, and only an exact allow_addresses entry of the policy
 * (px_pep_policy_address_allowed) may open a denied one. */
#ifndef PX_PEP_ADDR_H
#define PX_PEP_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "pep/pep.h"

/* Room for any address px_pep_addr_format writes, with its NUL (INET6_ADDRSTRLEN). */
#define PX_PEP_ADDR_STRLEN 46

/* NULL when 'a' may be dialled, else the name of the denied class: "loopback",
 * "private", "cgnat", "link_local", "metadata", "multicast", "reserved", "documentation",
 * "unspecified", "this_network", "benchmarking", "ietf_protocol", "6to4_relay",
 * "broadcast", "unique_local", "site_local", "ipv4_mapped", "ipv4_compatible",
 * "ipv4_translated", "nat64", "nat64_local", "teredo", "6to4", "not_global_unicast",
 * "host_interface". An address that embeds an IPv4 one (mapped, compatible, NAT64,
 * 6to4, Teredo) is always denied; when the embedded address is itself denied the name
 * says both, e.g. "ipv4_mapped:loopback", "nat64:metadata". 'local' (may be NULL) lists
 * the host's own addresses, which are denied as "host_interface". */
const char *px_pep_addr_denied(const struct px_pep_addr *a, const struct px_pep_addrs *local);

/* Reads an AF_INET/AF_INET6 sockaddr (an IPv6 scope id is ignored: link-local addresses
 * are denied anyway). 'ret_port' may be NULL. Returns -1 for other families or a short
 * 'len'. */
int px_pep_addr_from_sockaddr(const struct sockaddr *sa, socklen_t len, struct px_pep_addr *ret,
                              uint16_t *ret_port);

/* Fills 'ret' (a sockaddr_storage or larger) for connect(); returns its length. */
socklen_t px_pep_addr_to_sockaddr(const struct px_pep_addr *a, uint16_t port,
                                  struct sockaddr_storage *ret);

/* Same family and the same bytes. An IPv4-mapped IPv6 address never equals its IPv4. */
bool px_pep_addr_equal(const struct px_pep_addr *a, const struct px_pep_addr *b);

/* The inet_ntop form, without brackets ("127.0.0.1", "::1") into buf (at least
 * PX_PEP_ADDR_STRLEN bytes for any address). */
void px_pep_addr_format(const struct px_pep_addr *a, char *buf, size_t len);

/* Parses the strict inet_pton forms only: a dotted quad of four decimal parts, or an IPv6
 * address without brackets or zone id. No octal, hex or short IPv4 forms (those are URL
 * spellings: see px_pep_target_parse). Returns 0 or -1. */
int px_pep_addr_parse(const char *s, struct px_pep_addr *ret);

/* The default px_pep_env.local_addrs seam: the host's interface addresses from
 * getifaddrs(), keeping only those no class already denies (loopback, private and
 * link-local addresses are denied anyway), so the bounded list holds what matters. Fails
 * closed when more than PX_PEP_MAX_ADDRS such addresses exist. 'ctx' is unused. */
int px_pep_local_addrs(void *ctx, struct px_pep_addrs *ret, struct px_err **err);

#endif
