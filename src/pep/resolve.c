#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>

#include "core/common.h"

#include "pep/addr.h"
#include "pep/resolve.h"

/* getaddrinfo cannot be cancelled, so a lookup runs on a detached helper thread and the
 * caller waits on a condition variable until its deadline. A lookup the caller gave up on
 * finishes on its own and frees the shared state (the last of the two references does).
 * Abandoned lookups are capped so that a dead DNS server cannot pile up threads. */
#define RESOLVE_MAX_THREADS 64

static atomic_uint resolve_threads;

struct lookup {
	pthread_mutex_t lock;
	pthread_cond_t done_cond;
	int refs;
	bool done;
	int rc; /* getaddrinfo's result */
	struct px_pep_addrs addrs;
	char host[];
};

static void lookup_unref(struct lookup *l)
{
	pthread_mutex_lock(&l->lock);
	int refs = --l->refs;
	pthread_mutex_unlock(&l->lock);
	if (refs == 0) {
		pthread_mutex_destroy(&l->lock);
		pthread_cond_destroy(&l->done_cond);
		free(l);
	}
}

static void addrs_add(struct px_pep_addrs *a, const struct px_pep_addr *x)
{
	for (size_t i = 0; i < a->n; i++)
		if (a->v[i].family == x->family &&
		    memcmp(&a->v[i].u, &x->u,
		           x->family == AF_INET ? sizeof(x->u.v4) : sizeof(x->u.v6)) == 0)
			return;
	if (a->n < PX_PEP_MAX_ADDRS)
		a->v[a->n++] = *x;
}

/* Takes one AF_INET/AF_INET6 sockaddr into a; other families are ignored. */
static void addrs_add_sockaddr(struct px_pep_addrs *a, const struct sockaddr *sa)
{
	struct px_pep_addr x = {0};
	if (!sa)
		return;
	if (sa->sa_family == AF_INET) {
		x.family = AF_INET;
		x.u.v4 = ((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	} else if (sa->sa_family == AF_INET6) {
		x.family = AF_INET6;
		x.u.v6 = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
	} else {
		return;
	}
	addrs_add(a, &x);
}

static void *lookup_run(void *arg)
{
	struct lookup *l = arg;
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res = NULL;
	struct px_pep_addrs addrs = {0};

	int rc = getaddrinfo(l->host, NULL, &hints, &res);
	if (rc == 0) {
		for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
			addrs_add_sockaddr(&addrs, ai->ai_addr);
		freeaddrinfo(res);
	}
	pthread_mutex_lock(&l->lock);
	l->rc = rc;
	l->addrs = addrs;
	l->done = true;
	pthread_cond_signal(&l->done_cond);
	pthread_mutex_unlock(&l->lock);
	lookup_unref(l);
	atomic_fetch_sub(&resolve_threads, 1);
	return NULL;
}

static int resolve_system(void *ctx PX_UNUSED, const char *host, uint32_t timeout_ms,
                          struct px_pep_addrs *ret, struct px_err **err)
{
	size_t hlen = strlen(host);
	if (hlen == 0 || hlen > 253)
		return px_err_set(err, PX_EXIT_FAILURE, "cannot resolve '%s': bad name", host);
	if (atomic_fetch_add(&resolve_threads, 1) >= RESOLVE_MAX_THREADS) {
		atomic_fetch_sub(&resolve_threads, 1);
		return px_err_set(err, PX_EXIT_FAILURE,
		                  "cannot resolve '%s': too many lookups in progress", host);
	}

	struct lookup *l = xcalloc(1, sizeof(*l) + hlen + 1);
	memcpy(l->host, host, hlen + 1);
	l->refs = 2;
	pthread_mutex_init(&l->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->done_cond, &ca);
	pthread_condattr_destroy(&ca);

	pthread_attr_t attr;
	pthread_t tid;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	int rc = pthread_create(&tid, &attr, lookup_run, l);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		atomic_fetch_sub(&resolve_threads, 1);
		l->refs = 1;
		lookup_unref(l);
		return px_err_errno(err, rc, "cannot resolve '%s': cannot start a lookup", host);
	}

	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&l->lock);
	while (!l->done)
		if (pthread_cond_timedwait(&l->done_cond, &l->lock, &deadline) == ETIMEDOUT)
			break;
	bool done = l->done;
	int grc = l->rc;
	struct px_pep_addrs addrs = l->addrs;
	pthread_mutex_unlock(&l->lock);
	lookup_unref(l);

	if (!done)
		return px_err_set(err, PX_EXIT_FAILURE,
		                  "cannot resolve '%s': timed out after %u ms", host, timeout_ms);
	if (grc != 0)
		return px_err_set(err, PX_EXIT_FAILURE, "cannot resolve '%s': %s", host,
		                  gai_strerror(grc));
	if (addrs.n == 0)
		return px_err_set(err, PX_EXIT_FAILURE, "cannot resolve '%s': no address", host);
	*ret = addrs;
	return 0;
}

void px_pep_env_default(struct px_pep_env *ret)
{
	*ret = (struct px_pep_env){.resolve = resolve_system, .local_addrs = px_pep_local_addrs};
}

/* The hosts-file resolver. Groups are the successive answers; a group "!fail" is a
 * resolution failure and "!stall" waits out the caller's timeout, then fails, so tests can
 * exercise DNS errors and a resolver that never answers. */
struct hosts_group {
	struct px_pep_addrs addrs;
	bool fail, stall;
};

struct hosts_entry {
	char *name;
	struct hosts_group *groups;
	size_t n_groups;
	unsigned calls; /* under hosts.lock */
};

struct hosts {
	pthread_mutex_t lock;
	struct hosts_entry *v;
	size_t n;
};

static int resolve_hosts(void *ctx, const char *host, uint32_t timeout_ms, struct px_pep_addrs *ret,
                         struct px_err **err)
{
	struct hosts *h = ctx;
	struct hosts_group g = {0};
	bool found = false;

	pthread_mutex_lock(&h->lock);
	for (size_t i = 0; i < h->n; i++) {
		struct hosts_entry *e = &h->v[i];
		if (strcasecmp(e->name, host) != 0)
			continue;
		size_t k = e->calls < e->n_groups ? e->calls : e->n_groups - 1;
		g = e->groups[k];
		e->calls++;
		found = true;
		break;
	}
	pthread_mutex_unlock(&h->lock);

	if (!found)
		return px_err_set(err, PX_EXIT_FAILURE, "cannot resolve '%s': unknown host", host);
	if (g.stall) {
		struct timespec ts = {.tv_sec = timeout_ms / 1000,
		                      .tv_nsec = (long)(timeout_ms % 1000) * 1000000L};
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		return px_err_set(err, PX_EXIT_FAILURE,
		                  "cannot resolve '%s': timed out after %u ms", host, timeout_ms);
	}
	if (g.fail || g.addrs.n == 0)
		return px_err_set(err, PX_EXIT_FAILURE, "cannot resolve '%s': no address", host);
	*ret = g.addrs;
	return 0;
}

static int parse_group(const char *path, unsigned line, char *tok, struct hosts_group *g,
                       struct px_err **err)
{
	if (strcmp(tok, "!fail") == 0) {
		g->fail = true;
		return 0;
	}
	if (strcmp(tok, "!stall") == 0) {
		g->stall = true;
		return 0;
	}
	char *save = NULL;
	for (char *a = strtok_r(tok, ",", &save); a; a = strtok_r(NULL, ",", &save)) {
		struct px_pep_addr x = {0};
		if (inet_pton(AF_INET, a, &x.u.v4) == 1)
			x.family = AF_INET;
		else if (inet_pton(AF_INET6, a, &x.u.v6) == 1)
			x.family = AF_INET6;
		else
			return px_err_set(err, PX_EXIT_INPUT,
			                  "hosts file '%s':%u: bad address '%s'", path, line, a);
		if (g->addrs.n == PX_PEP_MAX_ADDRS)
			return px_err_set(err, PX_EXIT_INPUT,
			                  "hosts file '%s':%u: more than %d addresses in a group",
			                  path, line, PX_PEP_MAX_ADDRS);
		addrs_add(&g->addrs, &x);
	}
	return 0;
}

static void hosts_free(struct hosts *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->n; i++) {
		free(h->v[i].name);
		free(h->v[i].groups);
	}
	free(h->v);
	pthread_mutex_destroy(&h->lock);
	free(h);
}
PX_DEFINE_CLEANUP(struct hosts *, hosts_free)

int px_pep_env_hosts_file(const char *path, struct px_pep_env *ret, struct px_err **err)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (!f)
		return px_err_errno(err, errno, "cannot open hosts file '%s'", path);

	_cleanup_(hosts_freep) struct hosts *h = xcalloc(1, sizeof(*h));
	pthread_mutex_init(&h->lock, NULL);
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	unsigned lineno = 0;
	while (getline(&line, &cap, f) >= 0) {
		lineno++;
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		char *save = NULL;
		char *name = strtok_r(line, " \t\r\n", &save);
		if (!name)
			continue;
		struct hosts_entry e = {.name = xstrdup(name)};
		for (char *p = e.name; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		for (char *tok = strtok_r(NULL, " \t\r\n", &save); tok;
		     tok = strtok_r(NULL, " \t\r\n", &save)) {
			e.groups = xreallocarray(e.groups, e.n_groups + 1, sizeof(*e.groups));
			e.groups[e.n_groups] = (struct hosts_group){0};
			if (parse_group(path, lineno, tok, &e.groups[e.n_groups], err) < 0) {
				free(e.name);
				free(e.groups);
				return -1;
			}
			e.n_groups++;
		}
		if (e.n_groups == 0) {
			free(e.name);
			free(e.groups);
			return px_err_set(err, PX_EXIT_INPUT,
			                  "hosts file '%s':%u: no address for '%s'", path, lineno,
			                  name);
		}
		h->v = xreallocarray(h->v, h->n + 1, sizeof(*h->v));
		h->v[h->n++] = e;
	}
	if (ferror(f))
		return px_err_errno(err, errno, "cannot read hosts file '%s'", path);

	*ret = (struct px_pep_env){
	        .resolve = resolve_hosts, .local_addrs = px_pep_local_addrs, .ctx = steal_ptr(&h)};
	return 0;
}

void px_pep_env_free(struct px_pep_env *env)
{
	if (!env)
		return;
	if (env->resolve == resolve_hosts)
		hosts_free(env->ctx);
	*env = (struct px_pep_env){0};
}

unsigned px_pep_env_resolve_count(const struct px_pep_env *env, const char *host)
{
	if (!env || env->resolve != resolve_hosts)
		return 0;
	struct hosts *h = env->ctx;
	unsigned calls = 0;
	pthread_mutex_lock(&h->lock);
	for (size_t i = 0; i < h->n; i++)
		if (strcasecmp(h->v[i].name, host) == 0)
			calls = h->v[i].calls;
	pthread_mutex_unlock(&h->lock);
	return calls;
}
