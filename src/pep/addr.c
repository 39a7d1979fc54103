#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include "core/common.h"

#include "pep/addr.h"

const char *px_pep_addr_denied(const struct px_pep_addr *a, const struct px_pep_addrs *local)
{
	(void)a;
	(void)local;
	return "reserved"; /* filled in next */
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
	(void)err;
	*ret = (struct px_pep_addrs){0};
	return 0;
}
