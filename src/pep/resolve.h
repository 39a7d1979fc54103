/* Name resolution for the PEP, behind the px_pep_env seam: the real resolver
 * (getaddrinfo with a deadline, so a stuck DNS server cannot hold a worker), the host's
 * own addresses (getifaddrs), and a hosts-file resolver for tests and offline use. */
#ifndef PX_PEP_RESOLVE_H
#define PX_PEP_RESOLVE_H

#include "pep/pep.h"

struct px_err;

/* The real seams: getaddrinfo bounded by the caller's timeout, getifaddrs. */
void px_pep_env_default(struct px_pep_env *ret);

/* A resolver seam read from a hosts file whose lines are
 * "NAME ADDR[,ADDR...] [ADDR[,ADDR...]]...": the n-th resolution of NAME returns the n-th
 * group (the last one repeats), which simulates DNS rebinding. Names absent from the file
 * fail to resolve; '#' starts a comment. local_addrs is the real getifaddrs source.
 * Release it with px_pep_env_free. */
int px_pep_env_hosts_file(const char *path, struct px_pep_env *ret, struct px_err **err);
/* Frees what px_pep_env_hosts_file allocated; harmless on a zeroed or default env. */
void px_pep_env_free(struct px_pep_env *env);
/* How many times 'host' was resolved through a hosts-file env (tests count calls); 0 for
 * other envs. */
unsigned px_pep_env_resolve_count(const struct px_pep_env *env, const char *host);

#endif
