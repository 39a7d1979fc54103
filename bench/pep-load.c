/* Load generator and loopback upstream for bench/pep. Not part of pexi: a standalone
 * program the bench script compiles with cc.
 *
 *   pep-load serve PORTFILE              HTTP/1.1 keep-alive upstream on 127.0.0.1, any port
 *                                        (written to PORTFILE); GET /N answers N bytes
 *   pep-load run MODE TARGET URL CONC SECS
 *        MODE direct: HTTP/1.1 to TARGET (host:port), request target = URL's path
 *             proxy:  HTTP/1.1 to the forward proxy at TARGET (host:port), absolute URL
 *             pep:    frames to the PEP's unix socket TARGET, {"method":"GET","url":URL}
 *                     (TARGET tcp:HOST:PORT: frames over TCP, e.g. to pexi-guest)
 *             hello:  hello frames to the PEP (its frame layer alone, no fetch)
 *        CONC closed-loop clients, one connection each, for SECS seconds. Prints one line:
 *        "requests N rps R p50_ms A p99_ms B errors E".
 *   pep-load idle MODE TARGET N          opens N idle connections, prints "ready", waits for
 *                                        stdin to close
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int read_full(int fd, void *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, (char *)buf + got, n - got);
		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			return -1;
		}
		got += (size_t)r;
	}
	return 0;
}

static int write_full(int fd, const void *buf, size_t n)
{
	size_t put = 0;
	while (put < n) {
		ssize_t w = write(fd, (const char *)buf + put, n - put);
		if (w <= 0) {
			if (w < 0 && errno == EINTR)
				continue;
			return -1;
		}
		put += (size_t)w;
	}
	return 0;
}

/* ---- upstream ---- */

static char *payload;
#define MAX_PAYLOAD (8u << 20)

static void *serve_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[8192];
	size_t have = 0;
	for (;;) {
		char *end = have ? memmem(buf, have, "\r\n\r\n", 4) : NULL;
		if (!end) {
			if (have == sizeof(buf))
				break;
			ssize_t r = read(fd, buf + have, sizeof(buf) - have);
			if (r <= 0)
				break;
			have += (size_t)r;
			continue;
		}
		size_t hlen = (size_t)(end - buf) + 4;
		unsigned long n = 0;
		char *sp = memchr(buf, ' ', hlen);
		if (sp && sp[1] == '/')
			n = strtoul(sp + 2, NULL, 10);
		if (n > MAX_PAYLOAD)
			n = MAX_PAYLOAD;
		char hdr[160];
		int hl = snprintf(hdr, sizeof(hdr),
		                  "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
		                  "Content-Length: %lu\r\n\r\n",
		                  n);
		if (write_full(fd, hdr, (size_t)hl) < 0 || write_full(fd, payload, n) < 0)
			break;
		memmove(buf, buf + hlen, have - hlen);
		have -= hlen;
	}
	close(fd);
	return NULL;
}

static int serve(const char *portfile)
{
	payload = malloc(MAX_PAYLOAD);
	for (size_t i = 0; i < MAX_PAYLOAD; i++)
		payload[i] = (char)('a' + i % 26);
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	if (bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 1024) < 0)
		return perror("bind"), 1;
	socklen_t sl = sizeof(sa);
	getsockname(ls, (struct sockaddr *)&sa, &sl);
	FILE *f = fopen(portfile, "w");
	fprintf(f, "%u\n", ntohs(sa.sin_port));
	fclose(f);
	for (;;) {
		int fd = accept(ls, NULL, NULL);
		if (fd < 0)
			continue;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		pthread_t t;
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&at, 256 * 1024);
		pthread_create(&t, &at, serve_conn, (void *)(intptr_t)fd);
	}
}

/* ---- clients ---- */

enum mode { DIRECT, PROXY, PEP, HELLO };

static enum mode mode;
static const char *target;
static const char *url;
static double deadline;
static char req[2048];
static size_t req_len;
static atomic_long errors;

static int connect_target(void)
{
	int fd;
	const char *t = target;
	/* "tcp:HOST:PORT" speaks frames over TCP (pexi-guest's 127.0.0.1:4040, bench/guest). */
	if ((mode == PEP || mode == HELLO) && strncmp(t, "tcp:", 4) == 0) {
		t += 4;
	} else if (mode == PEP || mode == HELLO) {
		struct sockaddr_un su = {.sun_family = AF_UNIX};
		snprintf(su.sun_path, sizeof(su.sun_path), "%s", target);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (connect(fd, (struct sockaddr *)&su, sizeof(su)) < 0)
			return close(fd), -1;
		return fd;
	}
	char host[64];
	const char *colon = strrchr(t, ':');
	snprintf(host, sizeof(host), "%.*s", (int)(colon - t), t);
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)atoi(colon + 1))};
	inet_pton(AF_INET, host, &sa.sin_addr);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return close(fd), -1;
	return fd;
}

static void build_request(void)
{
	if (mode == PEP || mode == HELLO) {
		char json[1024];
		int n = mode == HELLO
		                ? snprintf(json, sizeof(json), "{\"type\":\"hello\"}")
		                : snprintf(json, sizeof(json),
		                           "{\"method\":\"GET\",\"url\":\"%s\",\"headers\":[],"
		                           "\"body_base64\":\"\"}",
		                           url);
		req[0] = (char)(n >> 24);
		req[1] = (char)(n >> 16);
		req[2] = (char)(n >> 8);
		req[3] = (char)n;
		memcpy(req + 4, json, (size_t)n);
		req_len = 4 + (size_t)n;
		return;
	}
	/* url = http://HOST:PORT/PATH */
	const char *hp = url + 7;
	const char *path = strchr(hp, '/');
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %.*s\r\n\r\n",
	                 mode == DIRECT ? path : url, (int)(path - hp), hp);
	req_len = (size_t)n;
}

/* One exchange on fd; returns 0 when a full, successful answer came back. */
static int exchange(int fd, char *buf, size_t cap)
{
	if (write_full(fd, req, req_len) < 0)
		return -1;
	if (mode == PEP || mode == HELLO) {
		unsigned char h[4];
		if (read_full(fd, h, 4) < 0)
			return -1;
		size_t n = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
		if (n > cap)
			return -1;
		if (read_full(fd, buf, n) < 0)
			return -1;
		if (mode == HELLO)
			return memmem(buf, n, "\"ok\":true", 9) ? 0 : -1;
		return memmem(buf, n < 64 ? n : 64, "\"status\":200", 12) ? 0 : -1;
	}
	size_t have = 0;
	char *end = NULL;
	while (!end) {
		ssize_t r = read(fd, buf + have, 4096);
		if (r <= 0)
			return -1;
		have += (size_t)r;
		end = memmem(buf, have, "\r\n\r\n", 4);
	}
	size_t hlen = (size_t)(end - buf) + 4;
	char *cl = memmem(buf, hlen, "Content-Length: ", 16);
	if (!cl || strncmp(buf + 9, "200", 3) != 0)
		return -1;
	size_t body = strtoul(cl + 16, NULL, 10);
	if (hlen + body > cap)
		return -1;
	if (have < hlen + body && read_full(fd, buf + have, hlen + body - have) < 0)
		return -1;
	return 0;
}

struct client {
	pthread_t t;
	double *lat;
	size_t n, cap;
};

static void *client_main(void *arg)
{
	struct client *c = arg;
	size_t cap = 4u << 20;
	char *buf = malloc(cap);
	int fd = -1;
	while (now() < deadline) {
		if (fd < 0 && (fd = connect_target()) < 0) {
			atomic_fetch_add(&errors, 1);
			usleep(1000);
			continue;
		}
		double t0 = now();
		if (exchange(fd, buf, cap) < 0) {
			atomic_fetch_add(&errors, 1);
			close(fd);
			fd = -1;
			continue;
		}
		if (c->n == c->cap) {
			c->cap = c->cap ? c->cap * 2 : 4096;
			c->lat = realloc(c->lat, c->cap * sizeof(double));
		}
		c->lat[c->n++] = now() - t0;
	}
	if (fd >= 0)
		close(fd);
	free(buf);
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int parse_mode(const char *s)
{
	if (strcmp(s, "direct") == 0)
		mode = DIRECT;
	else if (strcmp(s, "proxy") == 0)
		mode = PROXY;
	else if (strcmp(s, "pep") == 0)
		mode = PEP;
	else if (strcmp(s, "hello") == 0)
		mode = HELLO;
	else
		return -1;
	return 0;
}

static int run(int conc, double secs)
{
	build_request();
	struct client *cs = calloc((size_t)conc, sizeof(*cs));
	double start = now();
	deadline = start + secs;
	for (int i = 0; i < conc; i++)
		pthread_create(&cs[i].t, NULL, client_main, &cs[i]);
	size_t total = 0;
	for (int i = 0; i < conc; i++) {
		pthread_join(cs[i].t, NULL);
		total += cs[i].n;
	}
	double elapsed = now() - start;
	double *all = malloc((total ? total : 1) * sizeof(double));
	size_t k = 0;
	for (int i = 0; i < conc; i++) {
		memcpy(all + k, cs[i].lat, cs[i].n * sizeof(double));
		k += cs[i].n;
		free(cs[i].lat);
	}
	qsort(all, total, sizeof(double), cmp_double);
	double p50 = total ? all[total / 2] : 0, p99 = total ? all[total * 99 / 100] : 0;
	printf("requests %zu rps %.0f p50_ms %.3f p99_ms %.3f errors %ld\n", total,
	       (double)total / elapsed, p50 * 1000, p99 * 1000, atomic_load(&errors));
	free(all);
	free(cs);
	return 0;
}

static int idle(int n)
{
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	int ok = 0;
	for (int i = 0; i < n; i++)
		if (connect_target() >= 0)
			ok++;
	printf("ready %d\n", ok);
	fflush(stdout);
	char c;
	while (read(0, &c, 1) > 0)
		;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "serve") == 0)
		return serve(argv[2]);
	if (argc == 7 && strcmp(argv[1], "run") == 0 && parse_mode(argv[2]) == 0) {
		target = argv[3];
		url = argv[4];
		return run(atoi(argv[5]), atof(argv[6]));
	}
	if (argc == 5 && strcmp(argv[1], "idle") == 0 && parse_mode(argv[2]) == 0) {
		target = argv[3];
		return idle(atoi(argv[4]));
	}
	fprintf(stderr, "usage: see the comment at the top of bench/pep-load.c\n");
	return 2;
}
