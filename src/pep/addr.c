#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include "core/common.h"

#include "pep/addr.h"

/* A prefix of the address space and the class it belongs to. Tables are searched in
 * order, so a more specific entry (a metadata address) comes before its enclosing range. */
struct range4 {
	uint32_t net;
	unsigned prefix;
	const char *cls;
};

struct range6 {
	uint8_t net[16];
	unsigned prefix;
	const char *cls;
	/* Where an embedded IPv4 address sits, if any; judged to add to the class name. */
	enum { EMB_NONE, EMB_LOW32, EMB_6TO4, EMB_TEREDO } embedded;
};

#define V4(a, b, c, d) (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | (d))

static const struct range4 ranges4[] = {
        {V4(169, 254, 169, 254), 32, "metadata"}, /* AWS, GCP, Azure IMDS */
        {V4(100, 100, 100, 200), 32, "metadata"}, /* Alibaba Cloud */
        {V4(192, 0, 0, 192), 32, "metadata"},     /* Oracle Cloud */
        {V4(168, 63, 129, 16), 32, "metadata"},   /* Azure wireserver, in public space */
        {V4(255, 255, 255, 255), 32, "broadcast"},
        {V4(0, 0, 0, 0), 8, "this_network"},
        {V4(10, 0, 0, 0), 8, "private"},
        {V4(100, 64, 0, 0), 10, "cgnat"},
        {V4(127, 0, 0, 0), 8, "loopback"},
        {V4(169, 254, 0, 0), 16, "link_local"},
        {V4(172, 16, 0, 0), 12, "private"},
        {V4(192, 0, 0, 0), 24, "ietf_protocol"},
        {V4(192, 0, 2, 0), 24, "documentation"},
        {V4(192, 88, 99, 0), 24, "6to4_relay"},
        {V4(192, 168, 0, 0), 16, "private"},
        {V4(198, 18, 0, 0), 15, "benchmarking"},
        {V4(198, 51, 100, 0), 24, "documentation"},
        {V4(203, 0, 113, 0), 24, "documentation"},
        {V4(224, 0, 0, 0), 4, "multicast"},
        {V4(240, 0, 0, 0), 4, "reserved"},
};

/* IPv6 is allowed only inside 2000::/3 (global unicast) minus the ranges below it; every
 * other address is denied, the named ranges only give a more useful class. */
static const struct range6 ranges6[] = {
        {{0}, 128, "unspecified", EMB_NONE},
        {{[15] = 1}, 128, "loopback", EMB_NONE},
        {{[10] = 0xff, [11] = 0xff}, 96, "ipv4_mapped", EMB_LOW32},
        {{[8] = 0xff, [9] = 0xff}, 96, "ipv4_translated", EMB_LOW32},
        {{0}, 96, "ipv4_compatible", EMB_LOW32},
        {{0x00, 0x64, 0xff, 0x9b}, 96, "nat64", EMB_LOW32},
        {{0x00, 0x64, 0xff, 0x9b, 0x00, 0x01}, 48, "nat64_local", EMB_LOW32},
        {{0xfd, 0x00, 0x0e, 0xc2, [15] = 0x54, [14] = 0x02}, 128, "metadata", EMB_NONE},
        {{0xfc}, 7, "unique_local", EMB_NONE},
        {{0xfe, 0x80}, 10, "link_local", EMB_NONE},
        {{0xfe, 0xc0}, 10, "site_local", EMB_NONE},
        {{0xff}, 8, "multicast", EMB_NONE},
        {{0x20, 0x01, 0x00, 0x00}, 32, "teredo", EMB_TEREDO},
        {{0x20, 0x01, 0x0d, 0xb8}, 32, "documentation", EMB_NONE},
        {{0x20, 0x01, 0x00, 0x00}, 23, "ietf_protocol", EMB_NONE},
        {{0x20, 0x02}, 16, "6to4", EMB_6TO4},
        {{0x3f, 0xff}, 20, "documentation", EMB_NONE},
};

static bool match6(const uint8_t *a, const uint8_t *net, unsigned prefix)
{
	unsigned full = prefix / 8, rest = prefix % 8;
	if (memcmp(a, net, full) != 0)
		return false;
	if (!rest)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (a[full] & mask) == (net[full] & mask);
}

static bool is_local(const struct px_pep_addr *a, const struct px_pep_addrs *local)
{
	for (size_t i = 0; local && i < local->n && i < PX_PEP_MAX_ADDRS; i++)
		if (px_pep_addr_equal(a, &local->v[i]))
			return true;
	return false;
}

static const char *denied4(uint32_t host, const struct px_pep_addrs *local)
{
	for (size_t i = 0; i < PX_ARRAY_SIZE(ranges4); i++) {
		uint32_t mask = ranges4[i].prefix ? ~(uint32_t)0 << (32 - ranges4[i].prefix) : 0;
		if ((host & mask) == ranges4[i].net)
			return ranges4[i].cls;
	}
	struct px_pep_addr a = {.family = AF_INET, .u.v4.s_addr = htonl(host)};
	return is_local(&a, local) ? "host_interface" : NULL;
}

static uint32_t be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Class names with an embedded part ("nat64:loopback"): one static string per pair, so
 * the result needs no allocation and stays valid for the caller. */
static const char *joined(const char *outer, const char *inner)
{
	static const char *const names[][3] = {
#define J(o, i) {o, i, o ":" i}
#define ALL(o)                                                                                     \
	J(o, "metadata"), J(o, "broadcast"), J(o, "this_network"), J(o, "private"), J(o, "cgnat"), \
	        J(o, "loopback"), J(o, "link_local"), J(o, "ietf_protocol"),                       \
	        J(o, "documentation"), J(o, "6to4_relay"), J(o, "benchmarking"),                   \
	        J(o, "multicast"), J(o, "reserved"), J(o, "host_interface")
	        ALL("ipv4_mapped"), ALL("ipv4_translated"), ALL("ipv4_compatible"),
	        ALL("nat64"),       ALL("nat64_local"),     ALL("teredo"),
	        ALL("6to4"),
#undef ALL
#undef J
	};
	for (size_t i = 0; i < PX_ARRAY_SIZE(names); i++)
		if (strcmp(names[i][0], outer) == 0 && strcmp(names[i][1], inner) == 0)
			return names[i][2];
	return outer;
}

const char *px_pep_addr_denied(const struct px_pep_addr *a, const struct px_pep_addrs *local)
{
	if (a->family == AF_INET)
		return denied4(ntohl(a->u.v4.s_addr), local);
	if (a->family != AF_INET6)
		return "reserved";
	const uint8_t *b = a->u.v6.s6_addr;
	for (size_t i = 0; i < PX_ARRAY_SIZE(ranges6); i++) {
		const struct range6 *r = &ranges6[i];
		if (!match6(b, r->net, r->prefix))
			continue;
		uint32_t v4;
		switch (r->embedded) {
		case EMB_NONE:
			return r->cls;
		case EMB_LOW32:
			v4 = be32(b + 12);
			break;
		case EMB_6TO4:
			v4 = be32(b + 2);
			break;
		case EMB_TEREDO:
			/* The Teredo server sits in bits 32..63, the client (obfuscated) in
			 * the last 32 bits: either may be the internal target. */
			if (denied4(be32(b + 4), local))
				return joined(r->cls, denied4(be32(b + 4), local));
			v4 = ~be32(b + 12);
			break;
		default:
			return r->cls;
		}
		const char *inner = denied4(v4, local);
		return inner ? joined(r->cls, inner) : r->cls;
	}
	if ((b[0] & 0xe0) != 0x20)
		return "not_global_unicast";
	return is_local(a, local) ? "host_interface" : NULL;
}

int px_pep_addr_from_sockaddr(const struct sockaddr *sa, socklen_t len, struct px_pep_addr *ret,
                              uint16_t *ret_port)
{
	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)sa;
		*ret = (struct px_pep_addr){.family = AF_INET, .u.v4 = s->sin_addr};
		if (ret_port)
			*ret_port = ntohs(s->sin_port);
		return 0;
	}
	if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;
		*ret = (struct px_pep_addr){.family = AF_INET6, .u.v6 = s->sin6_addr};
		if (ret_port)
			*ret_port = ntohs(s->sin6_port);
		return 0;
	}
	return -1;
}

socklen_t px_pep_addr_to_sockaddr(const struct px_pep_addr *a, uint16_t port,
                                  struct sockaddr_storage *ret)
{
	memset(ret, 0, sizeof(*ret));
	if (a->family == AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)ret;
		s->sin_family = AF_INET;
		s->sin_port = htons(port);
		s->sin_addr = a->u.v4;
		return sizeof(*s);
	}
	struct sockaddr_in6 *s = (struct sockaddr_in6 *)ret;
	s->sin6_family = AF_INET6;
	s->sin6_port = htons(port);
	s->sin6_addr = a->u.v6;
	return sizeof(*s);
}

bool px_pep_addr_equal(const struct px_pep_addr *a, const struct px_pep_addr *b)
{
	if (a->family != b->family)
		return false;
	if (a->family == AF_INET)
		return a->u.v4.s_addr == b->u.v4.s_addr;
	return memcmp(&a->u.v6, &b->u.v6, sizeof(a->u.v6)) == 0;
}

void px_pep_addr_format(const struct px_pep_addr *a, char *buf, size_t len)
{
	if (!len)
		return;
	if (!inet_ntop(a->family,
	               a->family == AF_INET ? (const void *)&a->u.v4 : (const void *)&a->u.v6, buf,
	               (socklen_t)len))
		buf[0] = '\0';
}

int px_pep_addr_parse(const char *s, struct px_pep_addr *ret)
{
	struct px_pep_addr a = {0};
	if (inet_pton(AF_INET, s, &a.u.v4) == 1) {
		a.family = AF_INET;
	} else if (inet_pton(AF_INET6, s, &a.u.v6) == 1) {
		a.family = AF_INET6;
	} else {
		return -1;
	}
	*ret = a;
	return 0;
}

int px_pep_local_addrs(void *ctx, struct px_pep_addrs *ret, struct px_err **err)
{
	(void)ctx;
	struct ifaddrs *list;
	if (getifaddrs(&list) < 0)
		return px_err_errno(err, errno, "cannot list the host's interface addresses");
	struct px_pep_addrs out = {0};
	int rc = 0;
	for (struct ifaddrs *i = list; i; i = i->ifa_next) {
		struct px_pep_addr a;
		if (!i->ifa_addr ||
		    px_pep_addr_from_sockaddr(i->ifa_addr, sizeof(struct sockaddr_storage), &a,
		                              NULL) < 0)
			continue;
		if (px_pep_addr_denied(&a, &out))
			continue; /* denied by class already, or listed */
		if (out.n == PX_PEP_MAX_ADDRS) {
			rc = px_err_set(err, PX_EXIT_FAILURE,
			                "the host has more than %d public interface addresses: "
			                "cannot deny them all",
			                PX_PEP_MAX_ADDRS);
			break;
		}
		out.v[out.n++] = a;
	}
	freeifaddrs(list);
	if (rc == 0)
		*ret = out;
	return rc;
}
