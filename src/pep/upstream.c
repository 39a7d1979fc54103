#include <arpa/inet.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/socket.h>

#include "core/common.h"

#include "pep/addr.h"
#include "pep/upstream.h"

/* Why a transfer stopped early, set by the callbacks and read after curl returns. */
enum stop {
	STOP_NONE,
	STOP_ADDR,          /* open-socket or pre-request check refused the address */
	STOP_BODY_LIMIT,    /* response body over max_response_bytes */
	STOP_HEADER_LIMIT,  /* response header count or bytes over the cap */
	STOP_BAD_RESPONSE,  /* a response header we cannot accept */
	STOP_SOCKET_FAILED, /* socket() itself failed */
};

struct xfer {
	const struct px_pep_hop *hop;
	enum stop stop;
	bool in_prereq;   /* the stop came from the pre-request check */
	char *connection; /* the Connection header values of the response, ','-joined */
	size_t connection_len;
	char stop_reason[64];
	/* Headers of the response being received; reset at each status line so only the
	 * final (non-1xx) response's headers remain. */
	struct px_pep_headers headers;
	size_t header_lines, header_bytes;
	unsigned char *body;
	size_t body_len, body_cap;
};

static void stop_with(struct xfer *x, enum stop s, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void stop_with(struct xfer *x, enum stop s, const char *fmt, ...)
{
	if (x->stop != STOP_NONE)
		return;
	x->stop = s;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(x->stop_reason, sizeof(x->stop_reason), fmt, ap);
	va_end(ap);
}

/* The address check both callbacks share: the address curl is about to use must be the
 * pin (family, bytes and port) and, unless the caller exempted the pin, in no denied
 * class (the class check is redundant when the pin was judged, and stays as a second
 * line should the pin ever be wrong). */
static bool addr_acceptable(struct xfer *x, const struct px_pep_addr *a, uint16_t port)
{
	const struct px_pep_hop *hop = x->hop;
	if (!px_pep_addr_equal(a, &hop->pinned) || port != hop->port) {
		stop_with(x, STOP_ADDR, "address is not the pinned one");
		return false;
	}
	if (!hop->pinned_exempt) {
		const char *cls = px_pep_addr_denied(a, hop->local);
		if (cls) {
			stop_with(x, STOP_ADDR, "%s", cls);
			return false;
		}
	}
	return true;
}

static curl_socket_t on_opensocket(void *clientp, curlsocktype purpose,
                                   struct curl_sockaddr *address)
{
	struct xfer *x = clientp;
	struct px_pep_addr a;
	uint16_t port = 0;
	if (purpose != CURLSOCKTYPE_IPCXN ||
	    px_pep_addr_from_sockaddr(&address->addr, address->addrlen, &a, &port) < 0) {
		stop_with(x, STOP_ADDR, "unexpected socket");
		return CURL_SOCKET_BAD;
	}
	if (!addr_acceptable(x, &a, port))
		return CURL_SOCKET_BAD;
	int fd = socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
	if (fd < 0) {
		stop_with(x, STOP_SOCKET_FAILED, "cannot create a socket");
		return CURL_SOCKET_BAD;
	}
	return fd;
}

static int on_prereq(void *clientp, char *conn_primary_ip, char *conn_local_ip PX_UNUSED,
                     int conn_primary_port, int conn_local_port PX_UNUSED)
{
	struct xfer *x = clientp;
	struct px_pep_addr a;
	if (conn_primary_ip && px_pep_addr_parse(conn_primary_ip, &a) == 0 &&
	    conn_primary_port > 0 && conn_primary_port <= 65535 &&
	    addr_acceptable(x, &a, (uint16_t)conn_primary_port))
		return CURL_PREREQFUNC_OK;
	stop_with(x, STOP_ADDR, "connection address unknown");
	x->in_prereq = true;
	return CURL_PREREQFUNC_ABORT;
}

/* Hop-by-hop response headers: the PEP hands the guest a whole body, so how it was
 * framed on the upstream connection is none of the guest's business. */
static bool hop_by_hop(const char *name)
{
	static const char *const names[] = {
	        "connection", "keep-alive", "transfer-encoding", "te",
	        "trailer",    "upgrade",    "proxy-connection",  "proxy-authenticate"};
	for (size_t i = 0; i < PX_ARRAY_SIZE(names); i++)
		if (strcasecmp(name, names[i]) == 0)
			return true;
	return false;
}

static size_t on_header(char *data, size_t size, size_t nitems, void *userdata)
{
	struct xfer *x = userdata;
	size_t n = size * nitems;
	const struct px_pep_hop *hop = x->hop;

	/* A new status line starts a new response (after 1xx interim ones): only the
	 * final response's headers count and are kept. */
	if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
		px_pep_headers_free(&x->headers);
		free(x->connection);
		x->connection = NULL;
		x->connection_len = 0;
		x->header_lines = 0;
		x->header_bytes = 0;
	}
	x->header_bytes += n;
	if (x->header_bytes > hop->max_header_bytes) {
		stop_with(x, STOP_HEADER_LIMIT, "response headers over %zu bytes",
		          hop->max_header_bytes);
		return 0;
	}
	size_t len = n;
	while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
		len--;
	if (len == 0 || (n >= 5 && memcmp(data, "HTTP/", 5) == 0))
		return n;
	if (++x->header_lines > hop->max_headers) {
		stop_with(x, STOP_HEADER_LIMIT, "more than %zu response headers", hop->max_headers);
		return 0;
	}
	if (data[0] == ' ' || data[0] == '\t') {
		stop_with(x, STOP_BAD_RESPONSE, "folded response header");
		return 0;
	}
	const char *colon = memchr(data, ':', len);
	if (!colon || colon == data || memchr(data, '\0', len)) {
		stop_with(x, STOP_BAD_RESPONSE, "malformed response header");
		return 0;
	}
	size_t nlen = (size_t)(colon - data);
	const char *v = colon + 1, *end = data + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	_cleanup_free_ char *name = xstrndup(data, nlen);
	if (strcasecmp(name, "connection") == 0) {
		/* The names it lists are hop-by-hop too (RFC 9110 7.6.1): dropped at the end,
		 * wherever they appear. Bounded by max_header_bytes like every header. */
		size_t vlen = (size_t)(end - v);
		x->connection = xrealloc(x->connection, x->connection_len + vlen + 2);
		x->connection[x->connection_len++] = ',';
		memcpy(x->connection + x->connection_len, v, vlen);
		x->connection_len += vlen;
		x->connection[x->connection_len] = '\0';
	}
	if (hop_by_hop(name))
		return n;

	/* Refuse a declared body over the limit before any of it arrives. */
	if (strcasecmp(name, "content-length") == 0 && strcmp(hop->method, "HEAD") != 0) {
		_cleanup_free_ char *cl = xstrndup(v, (size_t)(end - v));
		char *e = NULL;
		errno = 0;
		unsigned long long declared = strtoull(cl, &e, 10);
		if (errno == 0 && e != cl && *e == '\0' && declared > hop->max_response_bytes) {
			stop_with(x, STOP_BODY_LIMIT, "response body over %" PRIu64 " bytes",
			          hop->max_response_bytes);
			return 0;
		}
	}
	x->headers.v = xreallocarray(x->headers.v, x->headers.n + 1, sizeof(*x->headers.v));
	x->headers.v[x->headers.n++] = (struct px_pep_header){
	        .name = steal_ptr(&name), .value = xstrndup(v, (size_t)(end - v))};
	return n;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct xfer *x = userdata;
	size_t n = size * nmemb;
	if (n > x->hop->max_response_bytes - x->body_len) {
		/* limit+1 bytes would be held: abort now, nothing past the limit is kept. */
		stop_with(x, STOP_BODY_LIMIT, "response body over %" PRIu64 " bytes",
		          x->hop->max_response_bytes);
		return 0;
	}
	if (x->body_len + n > x->body_cap) {
		size_t cap = x->body_cap ? x->body_cap : 16384;
		while (cap < x->body_len + n)
			cap *= 2;
		if (cap > x->hop->max_response_bytes)
			cap = (size_t)x->hop->max_response_bytes;
		x->body = xrealloc(x->body, cap ? cap : 1);
		x->body_cap = cap;
	}
	memcpy(x->body + x->body_len, data, n);
	x->body_len += n;
	return n;
}

/* Removes the headers the response's Connection header names. */
static void drop_connection_listed(struct xfer *x)
{
	if (!x->connection)
		return;
	size_t k = 0;
	for (size_t i = 0; i < x->headers.n; i++) {
		bool listed = false;
		const char *name = x->headers.v[i].name;
		size_t nlen = strlen(name);
		for (const char *p = x->connection; *p && !listed;) {
			p += strspn(p, ", \t");
			size_t tlen = strcspn(p, ", \t");
			listed = tlen == nlen && strncasecmp(p, name, nlen) == 0;
			p += tlen;
		}
		if (listed) {
			free(x->headers.v[i].name);
			free(x->headers.v[i].value);
		} else {
			x->headers.v[k++] = x->headers.v[i];
		}
	}
	x->headers.n = k;
}

/* "Name: value" for CURLOPT_HTTPHEADER; curl sends "Name;" as a header with an empty
 * value (a bare "Name:" would remove it instead). */
static char *header_line(const struct px_pep_header *h)
{
	if (!h->value[0])
		return xasprintf("%s;", h->name);
	return xasprintf("%s: %s", h->name, h->value);
}

static bool has_header(const struct px_pep_headers *hs, const char *name)
{
	for (size_t i = 0; hs && i < hs->n; i++)
		if (strcasecmp(hs->v[i].name, name) == 0)
			return true;
	return false;
}

static void slist_freep(struct curl_slist **l)
{
	curl_slist_free_all(*l);
}

/* Each thread keeps one curl handle, so that its connection cache and TLS sessions serve
 * the next request: a fresh TCP (and TLS) connection per request costs more than the
 * whole decision. Reuse is safe because the pre-request callback re-checks every
 * transfer, reused connection or not, against the current pin; the pin entry of the last
 * request is removed from the handle's DNS cache before the next one adds its own, so the
 * cache holds one entry at most. */
struct thread_curl {
	CURL *c;
	char *pin_key; /* "host:port" of the CURLOPT_RESOLVE entry in c's DNS cache, or NULL */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static pthread_key_t thread_curl_key;

static void thread_curl_free(void *p)
{
	struct thread_curl *t = p;
	curl_easy_cleanup(t->c);
	free(t->pin_key);
	free(t);
}

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
	if (curl_init_rc == CURLE_OK && pthread_key_create(&thread_curl_key, thread_curl_free) != 0)
		curl_init_rc = CURLE_FAILED_INIT;
}

static struct thread_curl *thread_curl(void)
{
	struct thread_curl *t = pthread_getspecific(thread_curl_key);
	if (t)
		return t;
	CURL *c = curl_easy_init();
	if (!c)
		return NULL;
	t = xcalloc(1, sizeof(*t));
	t->c = c;
	if (pthread_setspecific(thread_curl_key, t) != 0) {
		thread_curl_free(t);
		return NULL;
	}
	return t;
}

#define SETOPT(c, opt, val)                                                      \
	do {                                                                     \
		if (curl_easy_setopt((c), (opt), (val)) != CURLE_OK) {           \
			snprintf(msg, msg_len, "upstream request not possible"); \
			return PX_PEP_HTTP_ERROR;                                \
		}                                                                \
	} while (0)

/* One transfer on the thread's handle (options already reset). *ret_retry is set when the
 * pre-request check refused a reused connection: the pin changed since that connection
 * was made, and a fresh one may be tried (nothing was sent). */
static enum px_pep_code fetch_once(struct thread_curl *tc, const struct px_pep_hop *hop, bool fresh,
                                   struct px_pep_upstream_result *ret, char *msg, size_t msg_len,
                                   bool *ret_retry)
{
	CURL *c = tc->c;
	struct xfer x = {.hop = hop};
	_cleanup_(slist_freep) struct curl_slist *resolve = NULL;
	_cleanup_(slist_freep) struct curl_slist *headers = NULL;

	SETOPT(c, CURLOPT_CURLU, hop->url);
	SETOPT(c, CURLOPT_PROTOCOLS_STR, "http,https");
	SETOPT(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	SETOPT(c, CURLOPT_FOLLOWLOCATION, 0L);
	SETOPT(c, CURLOPT_PROXY, "");
	SETOPT(c, CURLOPT_NETRC, (long)CURL_NETRC_IGNORED);
	SETOPT(c, CURLOPT_AUTOREFERER, 0L);
	SETOPT(c, CURLOPT_HTTP_CONTENT_DECODING, 0L);
	SETOPT(c, CURLOPT_NOSIGNAL, 1L);
	SETOPT(c, CURLOPT_NOPROGRESS, 1L);
	/* Few idle connections per thread, not kept long: they hold descriptors. */
	SETOPT(c, CURLOPT_MAXCONNECTS, 4L);
	SETOPT(c, CURLOPT_MAXAGE_CONN, 30L);
	if (fresh)
		SETOPT(c, CURLOPT_FRESH_CONNECT, 1L);
	SETOPT(c, CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (hop->ca_file)
		SETOPT(c, CURLOPT_CAINFO, hop->ca_file);

	/* The pin: curl looks the host up in its own cache, filled here, and never asks DNS.
	 * The previous request's entry goes first ("-host:port" removes it). */
	if (tc->pin_key) {
		_cleanup_free_ char *rm = xasprintf("-%s", tc->pin_key);
		resolve = curl_slist_append(NULL, rm);
		if (!resolve)
			abort();
		free(tc->pin_key);
		tc->pin_key = NULL;
	}
	if (hop->host) {
		char abuf[PX_PEP_ADDR_STRLEN];
		px_pep_addr_format(&hop->pinned, abuf, sizeof(abuf));
		tc->pin_key = xasprintf("%s:%u", hop->host, (unsigned)hop->port);
		_cleanup_free_ char *entry = hop->pinned.family == AF_INET6
		                                     ? xasprintf("%s:[%s]", tc->pin_key, abuf)
		                                     : xasprintf("%s:%s", tc->pin_key, abuf);
		struct curl_slist *l = curl_slist_append(resolve, entry);
		if (!l)
			abort();
		resolve = l;
	}
	if (resolve)
		SETOPT(c, CURLOPT_RESOLVE, resolve);
	SETOPT(c, CURLOPT_OPENSOCKETFUNCTION, on_opensocket);
	SETOPT(c, CURLOPT_OPENSOCKETDATA, &x);
	SETOPT(c, CURLOPT_PREREQFUNCTION, on_prereq);
	SETOPT(c, CURLOPT_PREREQDATA, &x);
	SETOPT(c, CURLOPT_HEADERFUNCTION, on_header);
	SETOPT(c, CURLOPT_HEADERDATA, &x);
	SETOPT(c, CURLOPT_WRITEFUNCTION, on_write);
	SETOPT(c, CURLOPT_WRITEDATA, &x);

	SETOPT(c, CURLOPT_CONNECTTIMEOUT_MS, (long)hop->connect_timeout_ms);
	SETOPT(c, CURLOPT_TIMEOUT_MS, (long)(hop->timeout_ms ? hop->timeout_ms : 1));
	/* A peer that trickles under 1 byte/s for 10 s (or the total time) is dead. */
	long low = hop->timeout_ms / 1000 < 10 ? (long)(hop->timeout_ms / 1000) : 10L;
	SETOPT(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	SETOPT(c, CURLOPT_LOW_SPEED_TIME, low > 0 ? low : 1L);
	SETOPT(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)hop->max_response_bytes);

	/* The method and body exactly as decided; curl adds nothing of its own. */
	if (strcmp(hop->method, "HEAD") == 0) {
		SETOPT(c, CURLOPT_NOBODY, 1L);
	} else if (hop->body) {
		SETOPT(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)hop->body_len);
		SETOPT(c, CURLOPT_POSTFIELDS, (const char *)hop->body);
		if (strcmp(hop->method, "POST") != 0)
			SETOPT(c, CURLOPT_CUSTOMREQUEST, hop->method);
	} else if (strcmp(hop->method, "GET") == 0) {
		SETOPT(c, CURLOPT_HTTPGET, 1L);
	} else {
		SETOPT(c, CURLOPT_CUSTOMREQUEST, hop->method);
	}
	for (size_t i = 0; hop->headers && i < hop->headers->n; i++) {
		_cleanup_free_ char *line = header_line(&hop->headers->v[i]);
		struct curl_slist *l = curl_slist_append(headers, line);
		if (!l)
			abort();
		headers = l;
	}
	/* Headers curl would add by itself: Accept always, Content-Type for a body,
	 * Expect for a large body. An empty "Name:" removes them. */
	static const char *const suppress[] = {"Accept", "Content-Type", "Expect"};
	for (size_t i = 0; i < PX_ARRAY_SIZE(suppress); i++) {
		if (has_header(hop->headers, suppress[i]))
			continue;
		_cleanup_free_ char *line = xasprintf("%s:", suppress[i]);
		struct curl_slist *l = curl_slist_append(headers, line);
		if (!l)
			abort();
		headers = l;
	}
	SETOPT(c, CURLOPT_HTTPHEADER, headers);

	CURLcode rc = curl_easy_perform(c);
	long new_conns = 0;
	curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &new_conns);
	if (x.stop == STOP_ADDR && x.in_prereq && new_conns == 0 && !fresh) {
		px_pep_headers_free(&x.headers);
		free(x.connection);
		free(x.body);
		*ret_retry = true;
		return PX_PEP_SSRF_BLOCKED;
	}
	if (rc != CURLE_OK || x.stop != STOP_NONE) {
		enum px_pep_code code = PX_PEP_HTTP_ERROR;
		switch (x.stop) {
		case STOP_ADDR:
			code = PX_PEP_SSRF_BLOCKED;
			snprintf(msg, msg_len, "destination address is not allowed (%s)",
			         x.stop_reason);
			break;
		case STOP_BODY_LIMIT:
		case STOP_HEADER_LIMIT:
			code = PX_PEP_CONSTRAINT_VIOLATION;
			snprintf(msg, msg_len, "%s", x.stop_reason);
			break;
		case STOP_BAD_RESPONSE:
			snprintf(msg, msg_len, "upstream sent a %s", x.stop_reason);
			break;
		case STOP_SOCKET_FAILED:
			snprintf(msg, msg_len, "%s", x.stop_reason);
			break;
		case STOP_NONE:
			if (rc == CURLE_FILESIZE_EXCEEDED) {
				code = PX_PEP_CONSTRAINT_VIOLATION;
				snprintf(msg, msg_len, "response body over %" PRIu64 " bytes",
				         hop->max_response_bytes);
			} else if (rc == CURLE_COULDNT_CONNECT && hop->ret_unreachable) {
				*hop->ret_unreachable = true;
				snprintf(msg, msg_len, "upstream failed: %s",
				         curl_easy_strerror(rc));
			} else if (rc == CURLE_OPERATION_TIMEDOUT) {
				/* Timed out before a connection existed: nothing was sent. */
				curl_off_t conn_us = 0;
				curl_easy_getinfo(c, CURLINFO_CONNECT_TIME_T, &conn_us);
				if (conn_us == 0 && hop->ret_unreachable)
					*hop->ret_unreachable = true;
				snprintf(msg, msg_len, "upstream timed out");
			} else {
				/* curl's text, never its verbose buffer: it names no address
				 * beyond what the guest asked for. */
				snprintf(msg, msg_len, "upstream failed: %s",
				         curl_easy_strerror(rc));
			}
			break;
		}
		px_pep_headers_free(&x.headers);
		free(x.connection);
		free(x.body);
		return code;
	}

	long status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_off_t connect_us = 0, upload = 0;
	curl_easy_getinfo(c, CURLINFO_CONNECT_TIME_T, &connect_us);
	curl_easy_getinfo(c, CURLINFO_SIZE_UPLOAD_T, &upload);

	drop_connection_listed(&x);
	*ret = (struct px_pep_upstream_result){
	        .status = (int)status,
	        .headers = x.headers,
	        .body = x.body,
	        .body_len = x.body_len,
	        .bytes_out = (uint64_t)upload,
	        .connect_ms = (double)connect_us / 1000.0,
	};
	for (size_t i = 0; i < x.headers.n; i++)
		if (strcasecmp(x.headers.v[i].name, "location") == 0) {
			ret->location = xstrdup(x.headers.v[i].value);
			break;
		}
	free(x.connection);
	return PX_PEP_OK;
}

enum px_pep_code px_pep_upstream_fetch(const struct px_pep_hop *hop,
                                       struct px_pep_upstream_result *ret, char *msg,
                                       size_t msg_len)
{
	pthread_once(&curl_once, curl_init);
	struct thread_curl *tc = curl_init_rc == CURLE_OK ? thread_curl() : NULL;
	if (!tc) {
		snprintf(msg, msg_len, "upstream fetching is unavailable");
		return PX_PEP_HTTP_ERROR;
	}
	bool retry = false;
	enum px_pep_code code = fetch_once(tc, hop, false, ret, msg, msg_len, &retry);
	/* Drop every option (and so every pointer to this request's data) now; the
	 * connections, TLS sessions and the one pin entry stay. */
	curl_easy_reset(tc->c);
	if (retry) {
		code = fetch_once(tc, hop, true, ret, msg, msg_len, &retry);
		curl_easy_reset(tc->c);
	}
	return code;
}

void px_pep_upstream_result_free(struct px_pep_upstream_result *r)
{
	if (!r)
		return;
	px_pep_headers_free(&r->headers);
	free(r->body);
	free(r->location);
	*r = (struct px_pep_upstream_result){0};
}
