/* The PEP's decision and fetch for one request (handle.c, upstream.c, resolve.c) against
 * a real loopback upstream (tests/pep/upstream.py, HTTP and HTTPS with a test CA made by
 * the openssl CLI) that logs every request it receives, and a fake resolver that counts
 * its calls. Each case checks the answer, the trace, and what the upstream saw, or that
 * it saw nothing. */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>

#include "core/common.h"

#include "core/file.h"
#include "manifest/manifest.h"
#include "pep/addr.h"
#include "pep/handle.h"
#include "pep/upstream.h"
#include "tap.h"

extern char **environ;

static char tmp[] = "/tmp/pexi-test-pep-handle-XXXXXX";
static char *log_path, *ca_path;
static int http_port[3], https_port, http6_port;
static pid_t server_pid = -1;
static int server_stdin = -1;

/* The fake resolver: per name, the successive answers (the last repeats), and a count. */
struct fake_name {
	const char *name;
	const char *answers[4]; /* each "A[,A...]"; NULL ends; "!fail" fails */
	unsigned calls;
};

static struct fake_name names[] = {
        {"upstream.test", {"127.0.0.1"}, 0},
        {"other.upstream.test", {"127.0.0.1"}, 0},
        {"rebind.test", {"1.1.1.1", "127.0.0.1"}, 0},
        {"rebind-local.test", {"127.0.0.1", "127.0.0.2"}, 0},
        {"mixed.test", {"127.0.0.1,1.1.1.1"}, 0},
        {"public-then.test", {"1.1.1.1,127.0.0.1"}, 0},
        {"metadata.test", {"169.254.169.254"}, 0},
        {"mapped.test", {"::ffff:127.0.0.1"}, 0},
        {"v6.test", {"::1"}, 0},
        {"nxdomain.test", {"!fail"}, 0},
        {"denied.test", {"127.0.0.1"}, 0},
        {"fallback.test", {"127.0.0.2,127.0.0.1"}, 0},
        {"deadend.test", {"127.0.0.2"}, 0},
};
static pthread_mutex_t names_lock = PTHREAD_MUTEX_INITIALIZER;

static int fake_resolve(void *ctx PX_UNUSED, const char *host, uint32_t timeout_ms PX_UNUSED,
                        struct px_pep_addrs *ret, struct px_err **err)
{
	pthread_mutex_lock(&names_lock);
	struct fake_name *f = NULL;
	for (size_t i = 0; i < PX_ARRAY_SIZE(names); i++)
		if (strcmp(names[i].name, host) == 0)
			f = &names[i];
	const char *ans = NULL;
	if (f) {
		size_t n = 0;
		while (n < PX_ARRAY_SIZE(f->answers) && f->answers[n])
			n++;
		ans = f->answers[f->calls < n ? f->calls : n - 1];
		f->calls++;
	}
	pthread_mutex_unlock(&names_lock);
	if (!ans || strcmp(ans, "!fail") == 0)
		return px_err_set(err, PX_EXIT_FAILURE, "no such name '%s'", host);
	struct px_pep_addrs a = {0};
	_cleanup_free_ char *copy = xstrdup(ans);
	char *save = NULL;
	for (char *s = strtok_r(copy, ",", &save); s; s = strtok_r(NULL, ",", &save))
		if (px_pep_addr_parse(s, &a.v[a.n]) == 0)
			a.n++;
	*ret = a;
	return 0;
}

static int fake_local(void *ctx PX_UNUSED, struct px_pep_addrs *ret, struct px_err **err PX_UNUSED)
{
	/* 203.0.113.0/24 is denied anyway; 8.8.4.4 stands for a public address the host owns. */
	*ret = (struct px_pep_addrs){0};
	px_pep_addr_parse("8.8.4.4", &ret->v[ret->n++]);
	return 0;
}

static unsigned calls(const char *name)
{
	unsigned c = 0;
	pthread_mutex_lock(&names_lock);
	for (size_t i = 0; i < PX_ARRAY_SIZE(names); i++)
		if (strcmp(names[i].name, name) == 0)
			c = names[i].calls;
	pthread_mutex_unlock(&names_lock);
	return c;
}

static const struct px_pep_env fake_env = {.resolve = fake_resolve, .local_addrs = fake_local};

static int start_server(void)
{
	int in[2];
	if (pipe2(in, O_CLOEXEC) < 0)
		return -1;
	_cleanup_free_ char *ready = xasprintf("%s/ready.json", tmp);
	_cleanup_free_ char *tls = xasprintf("%s/tls", tmp);
	_cleanup_free_ char *script = xasprintf("%s/tests/pep/upstream.py",
	                                        getenv("PEXI_SRC") ? getenv("PEXI_SRC") : ".");
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
	const char *argv[] = {"python3", script,   "--log",   log_path, "--ready-file", ready,
	                      "--http",  "3",      "--https", "1",      "--ipv6",       "--tls-dir",
	                      tls,       "--root", tmp,       NULL};
	int rc = posix_spawnp(&server_pid, "python3", &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(in[0]);
	if (rc != 0)
		return -1;
	server_stdin = in[1];
	for (int i = 0; i < 300 && access(ready, F_OK) != 0; i++)
		usleep(50000);
	_cleanup_free_ char *data = NULL;
	struct px_err *err = NULL;
	if (px_file_read(ready, 4096, &data, NULL, &err) < 0) {
		px_err_free(err);
		return -1;
	}
	cJSON *j = cJSON_Parse(data);
	if (!j)
		return -1;
	for (int i = 0; i < 3; i++)
		http_port[i] = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "http"), i)->valueint;
	https_port = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "https"), 0)->valueint;
	http6_port = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "http6"), 0)->valueint;
	cJSON_Delete(j);
	ca_path = xasprintf("%s/ca.pem", tls);
	return 0;
}

static void stop_server(void)
{
	if (server_stdin >= 0)
		close(server_stdin);
	if (server_pid > 0)
		waitpid(server_pid, NULL, 0);
}

/* The upstream's log as a JSON array of the requests it received, oldest first. */
static cJSON *upstream_log(void)
{
	_cleanup_free_ char *data = NULL;
	struct px_err *err = NULL;
	cJSON *arr = cJSON_CreateArray();
	if (px_file_read(log_path, 64 << 20, &data, NULL, &err) < 0) {
		px_err_free(err);
		return arr;
	}
	for (char *line = data, *nl; line && *line; line = nl ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		cJSON *e = cJSON_Parse(line);
		if (e)
			cJSON_AddItemToArray(arr, e);
	}
	return arr;
}

static void clear_log(void)
{
	if (truncate(log_path, 0) < 0)
		printf("# cannot truncate the upstream log\n");
}

static int log_count(void)
{
	cJSON *l = upstream_log();
	int n = cJSON_GetArraySize(l);
	cJSON_Delete(l);
	return n;
}

/* The value of header 'name' in log entry 'e' (caller frees), or NULL. */
static char *log_header(const cJSON *e, const char *name)
{
	const cJSON *h;
	cJSON_ArrayForEach(h, cJSON_GetObjectItem(e, "headers"))
	{
		const char *k = cJSON_GetArrayItem(h, 0)->valuestring;
		if (strcasecmp(k, name) == 0)
			return xstrdup(cJSON_GetArrayItem(h, 1)->valuestring);
	}
	return NULL;
}

static const char *log_str(const cJSON *e, const char *key)
{
	const cJSON *v = cJSON_GetObjectItem(e, key);
	return cJSON_IsString(v) ? v->valuestring : "";
}

static struct px_pep_handler *handler(const char *yaml, const char *ca)
{
	_cleanup_free_ char *path = xasprintf("%s/policy.yml", tmp);
	struct px_err *err = NULL;
	struct px_manifest *m = NULL;
	struct px_pep_handler *h = NULL;
	if (px_atomic_write_file(path, yaml, strlen(yaml), 0644, &err) < 0 ||
	    px_manifest_load_pep(path, &m, &err) < 0 ||
	    px_pep_handler_new(m, &fake_env, ca, &h, &err) < 0) {
		printf("# policy: %s\n", err ? err->msg : "?");
		px_err_free(err);
		px_manifest_free(m);
		return NULL;
	}
	px_manifest_free(m);
	return h;
}

/* A policy allowing upstream.test and its subdomains, the loopback listeners http 0 and 1
 * and https by exact address and port, every method, plus 'extra' YAML lines. */
static struct px_pep_handler *std_handler(const char *extra)
{
	_cleanup_free_ char *yaml = xasprintf(
	        "allow: ['**.upstream.test', 'rebind.test', 'rebind-local.test', 'mixed.test',\n"
	        "        'public-then.test', 'metadata.test', 'mapped.test', 'v6.test',\n"
	        "        'nxdomain.test', 'fallback.test', 'deadend.test', '127.0.0.1', "
	        "'1.1.1.1']\n"
	        "deny: ['denied.test']\n"
	        "allow_addresses: ['127.0.0.1:%d', '127.0.0.1:%d', '127.0.0.1:%d', '[::1]:%d',\n"
	        "                  '127.0.0.2:%d']\n"
	        "methods: [GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS]\n"
	        "timeouts: {connect: 2s, total: 4s}\n%s",
	        http_port[0], http_port[1], https_port, http6_port, http_port[0],
	        extra ? extra : "");
	return handler(yaml, ca_path);
}

struct result {
	struct px_pep_response resp;
	struct px_pep_trace trace;
};

static void result_free(struct result *r)
{
	px_pep_response_free(&r->resp);
	px_pep_trace_free(&r->trace);
}

static struct result do_req(struct px_pep_handler *h, const char *method, const char *url,
                            const char *const *hdrs, const void *body, size_t body_len)
{
	struct px_pep_request req = {.method = xstrdup(method), .url = xstrdup(url)};
	for (size_t i = 0; hdrs && hdrs[i]; i += 2) {
		req.headers.v =
		        xreallocarray(req.headers.v, req.headers.n + 1, sizeof(*req.headers.v));
		req.headers.v[req.headers.n++] =
		        (struct px_pep_header){xstrdup(hdrs[i]), xstrdup(hdrs[i + 1])};
	}
	if (body) {
		req.body = xmalloc(body_len ? body_len : 1);
		memcpy(req.body, body, body_len);
		req.body_len = body_len;
	}
	struct result r;
	clear_log();
	px_pep_handle(h, &req, &r.resp, &r.trace);
	if (r.resp.code != PX_PEP_OK)
		printf("# %s %s -> %s: %s [%s]\n", method, url, px_pep_code_name(r.resp.code),
		       r.resp.message, r.trace.reason);
	px_pep_request_free(&req);
	return r;
}

static struct result get(struct px_pep_handler *h, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
static struct result get(struct px_pep_handler *h, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	_cleanup_free_ char *url = xvasprintf(fmt, ap);
	va_end(ap);
	return do_req(h, "GET", url, NULL, NULL, 0);
}

static bool is_pattern(const unsigned char *b, size_t n, size_t want)
{
	if (n != want)
		return false;
	for (size_t i = 0; i < n; i++)
		if (b[i] != (unsigned char)((i * 167 + i / 256) % 256))
			return false;
	return true;
}

/* The message the guest sees never names an internal address. */
static void no_address_in(const struct result *r, const char *what)
{
	const char *m = r->resp.message ? r->resp.message : "";
	ok(!strstr(m, "127.0.0") && !strstr(m, "::1") && !strstr(m, "169.254"),
	   "%s: the message names no internal address", what);
}

static void test_allowed(struct px_pep_handler *h)
{
	struct result r = get(h, "http://upstream.test:%d/bytes/300000", http_port[0]);
	is_int(r.resp.code, PX_PEP_OK, "allowed fetch");
	is_int(r.resp.status, 200, "status 200");
	ok(is_pattern(r.resp.body, r.resp.body_len, 300000), "the exact 300000 body bytes");
	is_str(r.trace.decision, "allow", "trace: allow");
	is_str(r.trace.host, "upstream.test", "trace: host");
	is_int(r.trace.port, http_port[0], "trace: port");
	ok(r.trace.has_pinned && r.trace.pinned.family == AF_INET &&
	           r.trace.pinned.u.v4.s_addr == htonl(0x7f000001),
	   "trace: pinned 127.0.0.1");
	is_int(r.trace.bytes_in, 300000, "trace: bytes in");
	cJSON *l = upstream_log();
	is_int(cJSON_GetArraySize(l), 1, "the upstream got one request");
	_cleanup_free_ char *host = log_header(cJSON_GetArrayItem(l, 0), "Host");
	_cleanup_free_ char *want = xasprintf("upstream.test:%d", http_port[0]);
	is_str(host, want, "Host is the URL's host");
	_cleanup_free_ char *accept = log_header(cJSON_GetArrayItem(l, 0), "Accept");
	_cleanup_free_ char *ua = log_header(cJSON_GetArrayItem(l, 0), "User-Agent");
	ok(!accept && !ua, "curl added no Accept or User-Agent of its own");
	cJSON_Delete(l);
	result_free(&r);

	/* A binary file with every byte value, served from disk and compared. */
	unsigned char bin[4096];
	for (size_t i = 0; i < sizeof(bin); i++)
		bin[i] = (unsigned char)(255 - i % 256);
	_cleanup_free_ char *fp = xasprintf("%s/bin.dat", tmp);
	struct px_err *err = NULL;
	px_atomic_write_file(fp, bin, sizeof(bin), 0644, &err);
	px_err_free(err);
	r = get(h, "http://upstream.test:%d/file/bin.dat", http_port[0]);
	ok(r.resp.body_len == sizeof(bin) && memcmp(r.resp.body, bin, sizeof(bin)) == 0,
	   "binary file body is exact");
	result_free(&r);

	/* Upstream 4xx/5xx are ordinary responses. */
	r = get(h, "http://upstream.test:%d/status/503", http_port[0]);
	ok(r.resp.code == PX_PEP_OK && r.resp.status == 503, "upstream 503 is passed through");
	result_free(&r);
	r = get(h, "http://upstream.test:%d/status/404", http_port[0]);
	ok(r.resp.code == PX_PEP_OK && r.resp.status == 404, "upstream 404 is passed through");
	result_free(&r);
}

static void test_https(struct px_pep_handler *h)
{
	struct result r = get(h, "https://upstream.test:%d/echo", https_port);
	is_int(r.resp.code, PX_PEP_OK, "https fetch with the test CA");
	is_int(r.resp.status, 200, "https status 200");
	ok(log_count() == 1, "the https upstream got the request");
	result_free(&r);

	_cleanup_free_ char *yaml = xasprintf(
	        "allow: ['upstream.test']\nallow_addresses: ['127.0.0.1:%d']\n", https_port);
	struct px_pep_handler *noca = handler(yaml, NULL);
	if (!noca) {
		ok(0, "handler without CA");
		return;
	}
	r = get(noca, "https://upstream.test:%d/echo", https_port);
	is_int(r.resp.code, PX_PEP_HTTP_ERROR, "an unknown CA is an http_error");
	is_int(log_count(), 0, "nothing reached the upstream without a trusted certificate");
	result_free(&r);
	px_pep_handler_free(noca);
}

static void test_denied(struct px_pep_handler *h)
{
	unsigned before = calls("denied.test");
	struct result r = get(h, "http://denied.test:%d/", http_port[0]);
	is_int(r.resp.code, PX_PEP_DENIED_BY_POLICY, "deny rule");
	is_str(r.trace.decision, "deny", "trace: deny");
	is_int(calls("denied.test"), before, "a denied name is never resolved");
	is_int(log_count(), 0, "denied: the upstream saw nothing");
	result_free(&r);

	r = get(h, "http://nowhere.test:%d/", http_port[0]);
	is_int(r.resp.code, PX_PEP_DENIED_BY_POLICY, "no allow rule");
	result_free(&r);

	/* Literal loopback on a port allow_addresses does not open. */
	r = get(h, "http://127.0.0.1:%d/", http_port[2]);
	is_int(r.resp.code, PX_PEP_SSRF_BLOCKED,
	       "allow_addresses is exact: another port is denied");
	is_int(log_count(), 0, "other port: the upstream saw nothing");
	no_address_in(&r, "other port");
	result_free(&r);

	r = get(h, "http://upstream.test:%d/", http_port[2]);
	is_int(r.resp.code, PX_PEP_SSRF_BLOCKED, "a name resolving to loopback, port not opened");
	is_int(log_count(), 0, "name, other port: the upstream saw nothing");
	result_free(&r);

	r = get(h, "http://metadata.test:%d/", http_port[0]);
	is_int(r.resp.code, PX_PEP_SSRF_BLOCKED, "metadata address");
	no_address_in(&r, "metadata");
	result_free(&r);

	r = get(h, "http://mapped.test:%d/", http_port[0]);
	is_int(r.resp.code, PX_PEP_SSRF_BLOCKED, "IPv4-mapped loopback answer");
	result_free(&r);

	r = get(h, "http://nxdomain.test:%d/", http_port[0]);
	is_int(r.resp.code, PX_PEP_HTTP_ERROR, "DNS failure is an http_error");
	result_free(&r);

	/* 127.0.0.2 is allowed but nothing listens there: the next answer is tried. */
	r = get(h, "http://fallback.test:%d/echo", http_port[0]);
	is_int(r.resp.code, PX_PEP_OK, "an unreachable first answer falls back to the next");
	ok(r.trace.pinned.u.v4.s_addr == htonl(0x7f000001), "trace: the answer used is pinned");
	is_int(log_count(), 1, "fallback: one request reached the upstream");
	result_free(&r);
	r = get(h, "http://deadend.test:%d/echo", http_port[0]);
	is_int(r.resp.code, PX_PEP_HTTP_ERROR, "no reachable answer is an http_error");
	result_free(&r);

	r = get(h, "http://v6.test:%d/", http6_port);
	is_int(r.resp.code, PX_PEP_OK, "[::1]:port opened exactly by allow_addresses");
	result_free(&r);
}

static void test_rebinding(struct px_pep_handler *h)
{
	/* First answer public, second loopback: the PEP asks once, pins the public answer
	 * (unreachable here), and curl never asks again. */
	struct result r = get(h, "http://rebind.test:%d/", http_port[0]);
	ok(r.resp.code == PX_PEP_HTTP_ERROR || r.resp.code == PX_PEP_OK,
	   "rebinding: the public answer is the one used");
	is_int(calls("rebind.test"), 1, "rebinding: the resolver was called once");
	is_int(log_count(), 0, "rebinding: the loopback upstream was never dialled");
	result_free(&r);

	r = get(h, "http://rebind-local.test:%d/echo", http_port[0]);
	is_int(r.resp.code, PX_PEP_OK, "pinned first answer is used");
	is_int(calls("rebind-local.test"), 1, "one resolution for one request");
	is_int(log_count(), 1, "the pinned address was dialled");
	result_free(&r);

	r = get(h, "http://mixed.test:%d/", http_port[2]);
	is_int(r.resp.code, PX_PEP_SSRF_BLOCKED, "mixed answers: one denied answer denies");
	is_int(log_count(), 0, "mixed answers: nothing dialled");
	result_free(&r);

	r = get(h, "http://public-then.test:%d/", http_port[2]);
	is_int(r.resp.code, PX_PEP_SSRF_BLOCKED, "public first, loopback second: denied");
	ok(r.trace.resolved.n == 2, "trace lists every answer");
	result_free(&r);
}

static struct result redirect(struct px_pep_handler *h, const char *method, int code,
                              const char *to, const char *const *hdrs, const char *body)
{
	char *enc = curl_easy_escape(NULL, to, 0);
	_cleanup_free_ char *url =
	        xasprintf("http://upstream.test:%d/redirect/%d?to=%s", http_port[0], code, enc);
	curl_free(enc);
	return do_req(h, method, url, hdrs, body, body ? strlen(body) : 0);
}

static void test_redirects(struct px_pep_handler *h)
{
	char to[256];
	struct result r;
	cJSON *l;

	snprintf(to, sizeof(to), "http://denied.test:%d/echo", http_port[0]);
	r = redirect(h, "GET", 302, to, NULL, NULL);
	is_int(r.resp.code, PX_PEP_REDIRECT_BLOCKED, "redirect to a denied host");
	is_int(log_count(), 1, "only the first hop reached the upstream");
	is_int(r.trace.n_hops, 1, "trace: one hop");
	result_free(&r);

	snprintf(to, sizeof(to), "http://127.0.0.1:%d/echo", http_port[2]);
	r = redirect(h, "GET", 301, to, NULL, NULL);
	is_int(r.resp.code, PX_PEP_REDIRECT_BLOCKED, "redirect to loopback");
	is_int(log_count(), 1, "redirect to loopback: not followed");
	no_address_in(&r, "redirect to loopback");
	result_free(&r);

	static const int post_to_get[] = {301, 302, 303};
	for (size_t i = 0; i < PX_ARRAY_SIZE(post_to_get); i++) {
		const char *hd[] = {"Content-Type", "text/plain", NULL};
		r = redirect(h, "POST", post_to_get[i], "/echo", hd, "payload");
		l = upstream_log();
		const cJSON *e = cJSON_GetArrayItem(l, 1);
		_cleanup_free_ char *ct = e ? log_header(e, "Content-Type") : NULL;
		ok(r.resp.code == PX_PEP_OK && cJSON_GetArraySize(l) == 2 &&
		           strcmp(log_str(e, "method"), "GET") == 0 &&
		           cJSON_GetObjectItem(e, "body_len")->valueint == 0 && !ct,
		   "%d: POST becomes GET without body or Content-Type", post_to_get[i]);
		cJSON_Delete(l);
		result_free(&r);
	}
	static const int keep[] = {307, 308};
	for (size_t i = 0; i < PX_ARRAY_SIZE(keep); i++) {
		r = redirect(h, "POST", keep[i], "/echo", NULL, "payload");
		l = upstream_log();
		const cJSON *e = cJSON_GetArrayItem(l, 1);
		ok(r.resp.code == PX_PEP_OK && cJSON_GetArraySize(l) == 2 &&
		           strcmp(log_str(e, "method"), "POST") == 0 &&
		           strcmp(log_str(e, "body_base64"), "cGF5bG9hZA==") == 0,
		   "%d: POST and its body are kept", keep[i]);
		cJSON_Delete(l);
		result_free(&r);
	}
	r = redirect(h, "PUT", 303, "/echo", NULL, "x");
	l = upstream_log();
	ok(r.resp.code == PX_PEP_OK &&
	           strcmp(log_str(cJSON_GetArrayItem(l, 1), "method"), "GET") == 0,
	   "303: PUT becomes GET");
	cJSON_Delete(l);
	result_free(&r);

	/* Credentials: stripped across origins, kept on the same origin. */
	const char *cred[] = {"Authorization", "Bearer s3cret", "Cookie", "sid=1", NULL};
	snprintf(to, sizeof(to), "http://other.upstream.test:%d/echo", http_port[1]);
	r = redirect(h, "GET", 302, to, cred, NULL);
	l = upstream_log();
	{
		const cJSON *e0 = cJSON_GetArrayItem(l, 0), *e1 = cJSON_GetArrayItem(l, 1);
		_cleanup_free_ char *a0 = e0 ? log_header(e0, "Authorization") : NULL;
		_cleanup_free_ char *a1 = e1 ? log_header(e1, "Authorization") : NULL;
		_cleanup_free_ char *c1 = e1 ? log_header(e1, "Cookie") : NULL;
		ok(r.resp.code == PX_PEP_OK && cJSON_GetArraySize(l) == 2, "cross-origin redirect");
		is_str(a0, "Bearer s3cret", "the first hop got Authorization");
		ok(!a1 && !c1, "cross-origin hop: Authorization and Cookie stripped");
		ok(e1 && cJSON_GetObjectItem(e1, "port")->valueint == http_port[1],
		   "the second hop went to the other listener");
	}
	cJSON_Delete(l);
	result_free(&r);

	r = redirect(h, "GET", 302, "/echo", cred, NULL);
	l = upstream_log();
	{
		const cJSON *e1 = cJSON_GetArrayItem(l, 1);
		_cleanup_free_ char *a1 = e1 ? log_header(e1, "Authorization") : NULL;
		_cleanup_free_ char *c1 = e1 ? log_header(e1, "Cookie") : NULL;
		is_str(a1, "Bearer s3cret", "same-origin hop keeps Authorization");
		is_str(c1, "sid=1", "same-origin hop keeps Cookie");
	}
	cJSON_Delete(l);
	result_free(&r);

	/* Same host, other port: another origin. */
	snprintf(to, sizeof(to), "http://upstream.test:%d/echo", http_port[1]);
	r = redirect(h, "GET", 307, to, cred, NULL);
	l = upstream_log();
	{
		const cJSON *e1 = cJSON_GetArrayItem(l, 1);
		_cleanup_free_ char *a1 = e1 ? log_header(e1, "Authorization") : NULL;
		ok(r.resp.code == PX_PEP_OK && e1 && !a1, "another port is another origin");
	}
	cJSON_Delete(l);
	result_free(&r);

	/* The hop limit (default 5 unless the policy says otherwise). */
	unsigned before = calls("upstream.test");
	r = get(h, "http://upstream.test:%d/loop/0", http_port[0]);
	is_int(r.resp.code, PX_PEP_REDIRECT_BLOCKED, "endless redirects are cut");
	int n = log_count();
	ok(n >= 2 && n <= PX_PEP_MAX_HOPS + 1, "a bounded number of hops (%d)", n);
	is_int(calls("upstream.test") - before, 1, "same-host hops reuse the one resolution");
	result_free(&r);

	/* https to http. */
	char *enc = NULL;
	snprintf(to, sizeof(to), "http://upstream.test:%d/echo", http_port[0]);
	enc = curl_easy_escape(NULL, to, 0);
	r = get(h, "https://upstream.test:%d/redirect/302?to=%s", https_port, enc);
	curl_free(enc);
	is_int(r.resp.code, PX_PEP_REDIRECT_BLOCKED, "https to http is denied");
	l = upstream_log();
	is_int(cJSON_GetArraySize(l), 1, "downgrade: the http upstream saw nothing");
	cJSON_Delete(l);
	result_free(&r);

	r = redirect(h, "GET", 302, "gopher://upstream.test/", NULL, NULL);
	is_int(r.resp.code, PX_PEP_REDIRECT_BLOCKED, "redirect to another scheme");
	result_free(&r);
}

static void test_hygiene(struct px_pep_handler *h)
{
	_cleanup_free_ char *url = xasprintf("http://upstream.test:%d/echo", http_port[0]);
	const char *hd[] = {"Host",    "evil.test", "Connection", "close, X-Drop", "X-Drop", "1",
	                    "Upgrade", "h2c",       "X-Keep",     "yes",           NULL};
	struct result r = do_req(h, "GET", url, hd, NULL, 0);
	cJSON *l = upstream_log();
	{
		const cJSON *e = cJSON_GetArrayItem(l, 0);
		_cleanup_free_ char *host = e ? log_header(e, "Host") : NULL;
		_cleanup_free_ char *up = e ? log_header(e, "Upgrade") : NULL;
		_cleanup_free_ char *keep = e ? log_header(e, "X-Keep") : NULL;
		_cleanup_free_ char *want = xasprintf("upstream.test:%d", http_port[0]);
		is_int(r.resp.code, PX_PEP_OK, "hop-by-hop headers are dropped, not refused");
		is_str(host, want, "the guest's Host never reaches the upstream");
		ok(!up, "Upgrade never reaches the upstream");
		is_str(keep, "yes", "end-to-end headers are forwarded");
	}
	cJSON_Delete(l);
	result_free(&r);

	const char *inj[] = {"X-A", "1\r\nX-Injected: 1", NULL};
	r = do_req(h, "GET", url, inj, NULL, 0);
	is_int(r.resp.code, PX_PEP_CONSTRAINT_VIOLATION, "CR LF in a header value");
	is_int(log_count(), 0, "header injection: nothing sent");
	result_free(&r);

	r = do_req(h, "GE T", url, NULL, NULL, 0);
	is_int(r.resp.code, PX_PEP_INVALID_METHOD, "method not a token");
	result_free(&r);
	r = do_req(h, "TRACE", url, NULL, NULL, 0);
	is_int(r.resp.code, PX_PEP_INVALID_METHOD, "method not on the allowlist");
	is_int(log_count(), 0, "invalid method: nothing sent");
	result_free(&r);

	r = do_req(h, "HEAD", url, NULL, NULL, 0);
	ok(r.resp.code == PX_PEP_OK && r.resp.body_len == 0, "HEAD has no body");
	result_free(&r);
}

static void test_limits(void)
{
	struct px_pep_handler *h =
	        std_handler("max_request_bytes: 100\nmax_response_bytes: 1000\n");
	if (!h) {
		ok(0, "limits policy");
		return;
	}
	char body[101];
	memset(body, 'b', sizeof(body));
	_cleanup_free_ char *url = xasprintf("http://upstream.test:%d/echo", http_port[0]);
	_cleanup_free_ char *small = xasprintf("http://upstream.test:%d/status/200", http_port[0]);
	struct result r = do_req(h, "POST", small, NULL, body, 100);
	cJSON *l = upstream_log();
	ok(r.resp.code == PX_PEP_OK && cJSON_GetArraySize(l) == 1 &&
	           cJSON_GetObjectItem(cJSON_GetArrayItem(l, 0), "body_len")->valueint == 100,
	   "a request body of exactly the limit is sent");
	is_int(r.trace.bytes_out, 100, "trace: bytes out");
	cJSON_Delete(l);
	result_free(&r);
	r = do_req(h, "POST", url, NULL, body, 101);
	is_int(r.resp.code, PX_PEP_CONSTRAINT_VIOLATION, "one byte over the request limit");
	is_int(log_count(), 0, "oversized request: nothing sent");
	result_free(&r);

	r = get(h, "http://upstream.test:%d/bytes/1000", http_port[0]);
	ok(r.resp.code == PX_PEP_OK && is_pattern(r.resp.body, r.resp.body_len, 1000),
	   "a response of exactly the limit");
	result_free(&r);
	r = get(h, "http://upstream.test:%d/bytes/1001", http_port[0]);
	is_int(r.resp.code, PX_PEP_CONSTRAINT_VIOLATION, "one byte over the response limit");
	ok(r.resp.body == NULL, "no partial body is returned");
	result_free(&r);
	r = get(h, "http://upstream.test:%d/declared?len=5000&send=0", http_port[0]);
	is_int(r.resp.code, PX_PEP_CONSTRAINT_VIOLATION, "declared length over the limit");
	result_free(&r);

	double t0 = (double)time(NULL);
	r = get(h, "http://upstream.test:%d/chunked-endless", http_port[0]);
	is_int(r.resp.code, PX_PEP_CONSTRAINT_VIOLATION, "endless chunked body");
	ok((double)time(NULL) - t0 < 3, "endless chunked is cut at once");
	result_free(&r);
	px_pep_handler_free(h);
}

static void test_faults(struct px_pep_handler *h)
{
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	struct result r = get(h, "http://upstream.test:%d/stall?secs=20", http_port[0]);
	clock_gettime(CLOCK_MONOTONIC, &b);
	double secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	is_int(r.resp.code, PX_PEP_HTTP_ERROR, "a stalled upstream is an http_error");
	ok(secs < 6, "within the total timeout of 4 s (%.1f s)", secs);
	result_free(&r);

	r = get(h, "http://upstream.test:%d/stall?secs=20&when=body", http_port[0]);
	is_int(r.resp.code, PX_PEP_HTTP_ERROR, "a stall mid-body is an http_error");
	result_free(&r);

	r = get(h, "http://upstream.test:%d/reset", http_port[0]);
	is_int(r.resp.code, PX_PEP_HTTP_ERROR, "a reset is an http_error");
	result_free(&r);
	r = get(h, "http://upstream.test:%d/reset-body", http_port[0]);
	is_int(r.resp.code, PX_PEP_HTTP_ERROR, "a reset mid-body is an http_error");
	result_free(&r);

	r = get(h, "http://upstream.test:%d/headers?n=5000&size=10", http_port[0]);
	is_int(r.resp.code, PX_PEP_CONSTRAINT_VIOLATION, "a header flood");
	result_free(&r);
	r = get(h, "http://upstream.test:%d/headers?n=20&size=20000", http_port[0]);
	is_int(r.resp.code, PX_PEP_CONSTRAINT_VIOLATION, "huge response headers");
	result_free(&r);
	r = get(h, "http://upstream.test:%d/headers?n=20&size=10", http_port[0]);
	is_int(r.resp.code, PX_PEP_OK, "a few response headers are fine");
	result_free(&r);
}

/* Workers share one handler: each thread checks its own bodies while the others run. */
#define CONC_THREADS  8
#define CONC_REQUESTS 25

static struct px_pep_handler *conc_handler;
static void *conc_worker(void *arg)
{
	size_t k = (size_t)(uintptr_t)arg, good = 0;
	for (size_t i = 0; i < CONC_REQUESTS; i++) {
		size_t n = 1000 + k * 7919 + i * 131;
		_cleanup_free_ char *url =
		        xasprintf("http://upstream.test:%d/bytes/%zu", http_port[i % 2], n);
		struct px_pep_request req = {.method = (char *)"GET", .url = url};
		struct px_pep_response resp;
		struct px_pep_trace tr;
		px_pep_handle(conc_handler, &req, &resp, &tr);
		if (resp.code == PX_PEP_OK && resp.status == 200 &&
		    is_pattern(resp.body, resp.body_len, n))
			good++;
		px_pep_response_free(&resp);
		px_pep_trace_free(&tr);
	}
	return (void *)(uintptr_t)good;
}

static void test_concurrent(struct px_pep_handler *h)
{
	pthread_t t[CONC_THREADS];
	size_t good = 0;
	conc_handler = h;
	clear_log();
	for (size_t k = 0; k < CONC_THREADS; k++)
		pthread_create(&t[k], NULL, conc_worker, (void *)(uintptr_t)k);
	for (size_t k = 0; k < CONC_THREADS; k++) {
		void *g = NULL;
		pthread_join(t[k], &g);
		good += (size_t)(uintptr_t)g;
	}
	is_int(good, CONC_THREADS * CONC_REQUESTS,
	       "concurrent requests on one handler: every body exact");
	is_int(log_count(), CONC_THREADS * CONC_REQUESTS, "each reached the upstream once");
}

static void test_report(void)
{
	struct px_pep_handler *h = std_handler("mode: report\n");
	if (!h) {
		ok(0, "report policy");
		return;
	}
	struct result r = get(h, "http://127.0.0.1:%d/echo", http_port[2]);
	is_int(r.resp.code, PX_PEP_OK, "report mode: loopback on an unopened port is fetched");
	is_str(r.trace.decision, "report", "trace: report");
	like(r.trace.reason, "ssrf_blocked", "trace: what enforce would have said");
	is_int(log_count(), 1, "report mode: the upstream got it");
	result_free(&r);

	_cleanup_free_ char *echo = xasprintf("http://upstream.test:%d/echo", http_port[0]);
	r = do_req(h, "PURGE", echo, NULL, NULL, 0);
	cJSON *l = upstream_log();
	ok(r.resp.code == PX_PEP_OK && cJSON_GetArraySize(l) == 1 &&
	           strcmp(log_str(cJSON_GetArrayItem(l, 0), "method"), "PURGE") == 0,
	   "report mode: a method off the allowlist is sent");
	like(r.trace.reason, "invalid_method", "report mode: the method is reported");
	cJSON_Delete(l);
	result_free(&r);
	r = do_req(h, "GE T", echo, NULL, NULL, 0);
	is_int(r.resp.code, PX_PEP_INVALID_METHOD, "report mode: a method that is no token");
	result_free(&r);

	r = get(h, "http://upstream.test:%d/echo", http_port[0]);
	is_str(r.trace.decision, "allow", "report mode: an allowed request is 'allow'");
	result_free(&r);
	px_pep_handler_free(h);
}

/* The upstream module alone: the callbacks refuse what is not the pin. */
static void test_upstream_pin(void)
{
	CURLU *u = curl_url();
	_cleanup_free_ char *url = xasprintf("http://127.0.0.1:%d/echo", http_port[0]);
	curl_url_set(u, CURLUPART_URL, url, 0);
	struct px_pep_hop hop = {
	        .url = u,
	        .port = (uint16_t)http_port[0],
	        .pinned_exempt = true,
	        .method = "GET",
	        .max_response_bytes = 1 << 20,
	        .max_headers = 100,
	        .max_header_bytes = 65536,
	        .connect_timeout_ms = 2000,
	        .timeout_ms = 4000,
	};
	px_pep_addr_parse("127.0.0.1", &hop.pinned);
	struct px_pep_upstream_result res = {0};
	char msg[256];
	clear_log();
	enum px_pep_code c = px_pep_upstream_fetch(&hop, &res, msg, sizeof(msg));
	ok(c == PX_PEP_OK && res.status == 200 && log_count() == 1, "exempt pin: fetched");
	px_pep_upstream_result_free(&res);

	px_pep_addr_parse("127.0.0.2", &hop.pinned);
	clear_log();
	c = px_pep_upstream_fetch(&hop, &res, msg, sizeof(msg));
	is_int(c, PX_PEP_SSRF_BLOCKED, "open-socket: an address other than the pin is refused");
	is_int(log_count(), 0, "pin mismatch: nothing dialled");

	px_pep_addr_parse("127.0.0.1", &hop.pinned);
	hop.port = (uint16_t)http_port[1];
	c = px_pep_upstream_fetch(&hop, &res, msg, sizeof(msg));
	is_int(c, PX_PEP_SSRF_BLOCKED, "open-socket: another port than the pin is refused");

	hop.port = (uint16_t)http_port[0];
	hop.pinned_exempt = false;
	c = px_pep_upstream_fetch(&hop, &res, msg, sizeof(msg));
	is_int(c, PX_PEP_SSRF_BLOCKED, "open-socket: a denied class is refused even when pinned");
	is_int(log_count(), 0, "denied class: nothing dialled");

	/* The name is pinned through CURLOPT_RESOLVE: DNS is never asked. */
	_cleanup_free_ char *named = xasprintf("http://pin.invalid:%d/echo", http_port[0]);
	curl_url_set(u, CURLUPART_URL, named, 0);
	hop.host = "pin.invalid";
	hop.pinned_exempt = true;
	clear_log();
	c = px_pep_upstream_fetch(&hop, &res, msg, sizeof(msg));
	ok(c == PX_PEP_OK && res.status == 200, "a name that DNS does not know is pinned");
	px_pep_upstream_result_free(&res);
	c = px_pep_upstream_fetch(&hop, &res, msg, sizeof(msg));
	px_pep_upstream_result_free(&res);
	cJSON *l = upstream_log();
	ok(c == PX_PEP_OK && cJSON_GetArraySize(l) == 2 &&
	           cJSON_GetObjectItem(cJSON_GetArrayItem(l, 0), "client_port")->valueint ==
	                   cJSON_GetObjectItem(cJSON_GetArrayItem(l, 1), "client_port")->valueint,
	   "the same pin reuses the thread's connection");
	cJSON_Delete(l);

	/* The name now pins another address: the live connection to the old one must not
	 * carry the request (the pre-request check refuses it), and a fresh connection to
	 * the new pin is judged by the open-socket check (127.0.0.2 is loopback). */
	clear_log();
	px_pep_addr_parse("127.0.0.2", &hop.pinned);
	hop.pinned_exempt = false;
	c = px_pep_upstream_fetch(&hop, &res, msg, sizeof(msg));
	is_int(c, PX_PEP_SSRF_BLOCKED, "a changed pin never rides the old connection");
	is_int(log_count(), 0, "changed pin: nothing sent");
	px_pep_addr_parse("127.0.0.1", &hop.pinned);
	hop.pinned_exempt = true;
	c = px_pep_upstream_fetch(&hop, &res, msg, sizeof(msg));
	ok(c == PX_PEP_OK && log_count() == 1, "the original pin works again");
	px_pep_upstream_result_free(&res);
	curl_url_cleanup(u);
}

static void test_hosts_file(void)
{
	_cleanup_free_ char *path = xasprintf("%s/hosts", tmp);
	const char *text = "# test hosts\nA.test 1.2.3.4,::1 127.0.0.1\nfail.test !fail\n";
	struct px_err *err = NULL;
	px_atomic_write_file(path, text, strlen(text), 0644, &err);
	struct px_pep_env env = {0};
	ok(px_pep_env_hosts_file(path, &env, &err) == 0, "hosts file loads");
	struct px_pep_addrs a = {0};
	ok(env.resolve(env.ctx, "a.test", 1000, &a, &err) == 0 && a.n == 2, "first group");
	ok(env.resolve(env.ctx, "a.test", 1000, &a, &err) == 0 && a.n == 1 &&
	           a.v[0].u.v4.s_addr == htonl(0x7f000001),
	   "second group");
	ok(env.resolve(env.ctx, "a.test", 1000, &a, &err) == 0 && a.n == 1, "last group repeats");
	is_int(px_pep_env_resolve_count(&env, "a.test"), 3, "calls are counted");
	ok(env.resolve(env.ctx, "fail.test", 1000, &a, &err) < 0, "!fail fails");
	px_err_clear(&err);
	ok(env.resolve(env.ctx, "b.test", 1000, &a, &err) < 0, "unknown names fail");
	px_err_clear(&err);
	px_pep_env_free(&env);

	const char *bad = "x.test 1.2.3.999\n";
	px_atomic_write_file(path, bad, strlen(bad), 0644, &err);
	ok(px_pep_env_hosts_file(path, &env, &err) < 0 && err && strstr(err->msg, ":1:"),
	   "a bad address names its line");
	px_err_clear(&err);

	/* The real resolver honours its deadline and resolves localhost. */
	struct px_pep_env real;
	px_pep_env_default(&real);
	ok(real.resolve(real.ctx, "localhost", 5000, &a, &err) == 0 && a.n >= 1,
	   "system resolver: localhost");
	px_err_clear(&err);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	if (!mkdtemp(tmp)) {
		printf("Bail out! mkdtemp\n");
		return 1;
	}
	log_path = xasprintf("%s/upstream.jsonl", tmp);
	if (start_server() < 0) {
		printf("Bail out! cannot start tests/pep/upstream.py\n");
		return 1;
	}

	test_hosts_file();
	test_upstream_pin();
	struct px_pep_handler *h = std_handler(NULL);
	ok(h != NULL, "handler from a policy");
	if (h) {
		test_allowed(h);
		test_https(h);
		test_denied(h);
		test_rebinding(h);
		test_redirects(h);
		test_hygiene(h);
		test_faults(h);
		test_concurrent(h);
		px_pep_handler_free(h);
	}
	test_limits();
	test_report();

	stop_server();
	const char *rm[] = {"rm", "-rf", tmp, NULL};
	pid_t pid;
	if (posix_spawnp(&pid, "rm", NULL, NULL, (char *const *)rm, environ) == 0)
		waitpid(pid, NULL, 0);
	return done_testing();
}
