/* The download stage against a loopback HTTP server with fault injection
 * (tests/http/server.py). The server logs every request, so the tests check what went over
 * the wire (Range headers, retries, requests that must not happen), and sha256sum checks
 * the digests independently of pexi. */
#include <ctype.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>

#include "core/common.h"

#include "core/file.h"
#include "core/log.h"
#include "core/sha256.h"
#include "core/spawn.h"
#include "image/fetch.h"
#include "tap.h"

extern char **environ;

#define PAYLOAD_SIZE ((3u << 20) + 12345u) /* a few MiB, not a multiple of any buffer */

static char tmp[] = "/tmp/pexi-test-fetch-XXXXXX";
static char *root, *log_path, *base;
static uint8_t *payload;
static char digest[PX_SHA256_HEX];
static pid_t server_pid = -1;
static int server_stdin = -1;

struct req {
	char path[256];
	char range[64]; /* "" when the request had no Range header */
	int status;
	uint64_t sent;
};

static void fill_payload(void)
{
	/* xorshift64: deterministic bytes that do not compress or repeat. */
	uint64_t x = 0x9e3779b97f4a7c15u;
	payload = xmalloc(PAYLOAD_SIZE);
	for (size_t i = 0; i < PAYLOAD_SIZE; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		payload[i] = (uint8_t)(x >> 24);
	}
}

/* The digest of a file as sha256sum computes it, so pexi is not checked with itself. */
static int sha256sum(const char *path, char out[PX_SHA256_HEX])
{
	const char *argv[] = {"sha256sum", path, NULL};
	_cleanup_free_ char *o = NULL;
	struct px_err *err = NULL;
	if (px_run(argv, &o, &err) < 0 || strlen(o) < 64) {
		px_err_free(err);
		return -1;
	}
	memcpy(out, o, 64);
	out[64] = '\0';
	return 0;
}

static int start_server(const char *script)
{
	int in[2], out[2];
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
		return -1;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
	posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
	const char *argv[] = {"python3", script,      "--root", root, "--log",
	                      log_path,  "--timeout", "120",    NULL};
	int rc = posix_spawnp(&server_pid, "python3", &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(in[0]);
	close(out[1]);
	if (rc != 0)
		return -1;
	/* Closing our end of its stdin (or dying) stops the server. */
	server_stdin = in[1];
	_cleanup_fclose_ FILE *f = fdopen(out[0], "r");
	char line[32];
	if (!f || !fgets(line, sizeof(line), f))
		return -1;
	int port = atoi(line);
	if (port <= 0)
		return -1;
	base = xasprintf("http://127.0.0.1:%d", port);
	return 0;
}

static void stop_server(void)
{
	if (server_stdin >= 0)
		close(server_stdin);
	if (server_pid > 0)
		waitpid(server_pid, NULL, 0);
}

/* Parses the server's request log (one JSON object per line, written by server.py in a
 * fixed key order) and returns the requests whose path is exactly 'path'. */
static int requests(const char *path, struct req *out, int max)
{
	_cleanup_free_ char *data = NULL;
	struct px_err *err = NULL;
	if (px_file_read(log_path, 1 << 20, &data, NULL, &err) < 0) {
		px_err_free(err);
		return 0;
	}
	int n = 0;
	for (char *line = data; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		struct req r = {0};
		char *p = strstr(line, "\"path\": \"");
		char *q = p ? strchr(p + 9, '"') : NULL;
		if (p && q && (size_t)(q - p - 9) < sizeof(r.path))
			memcpy(r.path, p + 9, (size_t)(q - p - 9));
		p = strstr(line, "\"range\": \"");
		q = p ? strchr(p + 10, '"') : NULL;
		if (p && q && (size_t)(q - p - 10) < sizeof(r.range))
			memcpy(r.range, p + 10, (size_t)(q - p - 10));
		p = strstr(line, "\"status\": ");
		r.status = p ? atoi(p + 10) : 0;
		p = strstr(line, "\"sent\": ");
		r.sent = p ? strtoull(p + 8, NULL, 10) : 0;
		if (strcmp(r.path, path) == 0) {
			if (n < max)
				out[n] = r;
			n++;
		}
		line = nl ? nl + 1 : NULL;
	}
	return n;
}

static int count(const char *path)
{
	struct req r[1];
	return requests(path, r, 0);
}

/* Whether 'path' holds exactly the first 'len' bytes of the payload. */
static bool holds_payload(const char *path, size_t len)
{
	_cleanup_free_ char *data = NULL;
	size_t n = 0;
	struct px_err *err = NULL;
	if (!path || px_file_read(path, PAYLOAD_SIZE + 1024, &data, &n, &err) < 0) {
		px_err_free(err);
		return false;
	}
	return n == len && memcmp(data, payload, len) == 0;
}

static bool exists(const char *path)
{
	return access(path, F_OK) == 0;
}

static char *cache(const char *name)
{
	return xasprintf("%s/%s", tmp, name);
}

static char *entry_of(const char *cache_dir)
{
	return xasprintf("%s/sha256/%s", cache_dir, digest);
}

static char *partial_of(const char *cache_dir)
{
	return xasprintf("%s/partial/%s.part", cache_dir, digest);
}

static void write_partial(const char *cache_dir, const void *data, size_t len)
{
	_cleanup_free_ char *dir = xasprintf("%s/partial", cache_dir);
	_cleanup_free_ char *part = partial_of(cache_dir);
	struct px_err *err = NULL;
	if (px_mkdir_p(dir, 0755, &err) < 0 || px_atomic_write_file(part, data, len, 0644, &err))
		printf("# cannot write '%s': %s\n", part, err->msg);
	px_err_free(err);
}

/* Runs one fetch of base+path (or a full URL when path contains "://"). */
static int fetch(const char *path, const char *cache_dir, bool offline, char **ret,
                 struct px_err **err)
{
	_cleanup_free_ char *url =
	        strstr(path, "://") ? xstrdup(path) : xasprintf("%s%s", base, path);
	struct px_fetch_opts o = {
	        .url = url,
	        .sha256 = digest,
	        .cache_dir = cache_dir,
	        .offline = offline,
	        .max_retries = 4,
	};
	*ret = NULL;
	return px_fetch(&o, ret, err);
}

static void test_plain_and_cache(void)
{
	_cleanup_free_ char *c = cache("plain");
	_cleanup_free_ char *want = entry_of(c);
	_cleanup_free_ char *part = partial_of(c);
	struct px_err *err = NULL;
	char *got = NULL;

	ok(fetch("/payload.bin", c, false, &got, &err) == 0, "plain download succeeds %s",
	   err ? err->msg : "");
	is_str(got, want, "the cache entry is named <cache>/sha256/<digest>");
	ok(holds_payload(got, PAYLOAD_SIZE), "the cache entry holds the served bytes");
	char sum[PX_SHA256_HEX] = "";
	sha256sum(want, sum);
	is_str(sum, digest, "sha256sum of the entry is the expected digest");
	ok(!exists(part), "no partial file is left behind");
	struct req r[4];
	is_int(requests("/payload.bin", r, 4), 1, "one request");
	is_str(r[0].range, "", "without a Range header");
	free(got);
	px_err_clear(&err);

	ok(fetch("/payload.bin", c, false, &got, &err) == 0, "a second fetch succeeds");
	is_str(got, want, "from the same cache entry");
	is_int(count("/payload.bin"), 1, "a verified cache hit does not contact the server");
	free(got);

	/* An uppercase digest names the same file. */
	char upper[PX_SHA256_HEX];
	for (size_t i = 0; i < sizeof(upper); i++)
		upper[i] = (char)toupper((unsigned char)digest[i]);
	_cleanup_free_ char *url = xasprintf("%s/payload.bin", base);
	struct px_fetch_opts o = {.url = url, .sha256 = upper, .cache_dir = c};
	ok(px_fetch(&o, &got, &err) == 0 && px_streq(got, want), "an uppercase digest is accepted");
	free(got);
	px_err_clear(&err);

	o.offline = true;
	ok(px_fetch(&o, &got, &err) == 0 && px_streq(got, want), "offline with a hit succeeds");
	is_int(count("/payload.bin"), 1, "offline does not contact the server");
	free(got);
	px_err_clear(&err);

	/* Damage one byte of the entry: the next use must notice. */
	_cleanup_close_ int fd = open(want, O_WRONLY | O_CLOEXEC);
	ok(fd >= 0 && pwrite(fd, "\xff", 1, 4096) == 1, "corrupt the cache entry");
	ok(fetch("/payload.bin", c, true, &got, &err) < 0, "offline: a corrupt entry fails");
	like(err ? err->msg : NULL, "is corrupt", "the error says the entry is corrupt");
	like(err ? err->msg : NULL, "--offline", "and why it is not downloaded again");
	is_int(err ? (int)err->exit_code : -1, PX_EXIT_INPUT, "exit code is PX_EXIT_INPUT");
	ok(!exists(want), "the corrupt entry is removed");
	px_err_clear(&err);

	close(steal_fd(&fd));
	fd = open(want, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	ok(fd >= 0 && write(fd, payload, 1000) == 1000, "put a truncated entry in the cache");
	ok(fetch("/payload.bin", c, false, &got, &err) == 0, "online: a corrupt entry is replaced");
	ok(holds_payload(got, PAYLOAD_SIZE), "by a correct download");
	is_int(count("/payload.bin"), 2, "which contacted the server once more");
	free(got);
	px_err_clear(&err);
}

static void test_offline_miss(void)
{
	_cleanup_free_ char *c = cache("offline-miss");
	struct px_err *err = NULL;
	char *got = NULL;
	ok(fetch("/offline.bin", c, true, &got, &err) < 0, "offline with a cache miss fails");
	like(err ? err->msg : NULL, "is not in the cache and --offline given",
	     "with a clear error");
	is_int(count("/offline.bin"), 0, "without contacting the server");
	px_err_clear(&err);
}

static void test_resume_after_drop(void)
{
	_cleanup_free_ char *c = cache("drop");
	struct px_err *err = NULL;
	char *got = NULL;
	const char *path = "/drop-after/1000000/payload.bin";
	setenv("PEXI_FETCH_BACKOFF_MS", "20", 1);
	ok(fetch(path, c, false, &got, &err) == 0, "a dropped connection is resumed %s",
	   err ? err->msg : "");
	ok(holds_payload(got, PAYLOAD_SIZE), "the resumed file is complete and correct");
	struct req r[4];
	is_int(requests(path, r, 4), 2, "two requests");
	is_int(r[0].sent, 1000000, "the first one was cut after 1000000 bytes");
	is_str(r[1].range, "bytes=1000000-", "the second asks for the rest with a Range header");
	is_int(r[1].status, 206, "and gets 206");
	is_int(r[1].sent, PAYLOAD_SIZE - 1000000, "so the first MB is not sent again");
	free(got);
	px_err_clear(&err);
}

static void test_http_errors(void)
{
	struct px_err *err = NULL;
	char *got = NULL;
	struct req r[8];

	_cleanup_free_ char *c1 = cache("500-once");
	const char *p500once = "/status/500-once/payload.bin";
	ok(fetch(p500once, c1, false, &got, &err) == 0, "a 500 once is retried");
	ok(holds_payload(got, PAYLOAD_SIZE), "and the file arrives");
	ok(requests(p500once, r, 8) == 2 && r[0].status == 500 && r[1].status == 200,
	   "two requests: 500 then 200");
	free(got);
	px_err_clear(&err);

	_cleanup_free_ char *c2 = cache("404");
	const char *p404 = "/status/404/payload.bin";
	ok(fetch(p404, c2, false, &got, &err) < 0, "404 fails");
	_cleanup_free_ char *url = xasprintf("%s%s", base, p404);
	like(err ? err->msg : NULL, "HTTP 404", "the error has the status");
	like(err ? err->msg : NULL, url, "and the URL");
	is_int(count(p404), 1, "404 is not retried");
	_cleanup_free_ char *e2 = entry_of(c2), *pp2 = partial_of(c2);
	ok(!exists(e2) && !exists(pp2), "nothing is left in the cache");
	px_err_clear(&err);

	_cleanup_free_ char *c3 = cache("500");
	const char *p500 = "/status/500/payload.bin";
	_cleanup_free_ char *url500 = xasprintf("%s%s", base, p500);
	struct px_fetch_opts o = {
	        .url = url500, .sha256 = digest, .cache_dir = c3, .max_retries = 2};
	ok(px_fetch(&o, &got, &err) < 0, "a persistent 500 fails");
	like(err ? err->msg : NULL, "HTTP 500", "with the status");
	like(err ? err->msg : NULL, "gave up after 3 attempts", "after the retries");
	is_int(count(p500), 3, "max_retries = 2 means 3 requests");
	px_err_clear(&err);
}

static void test_wrong_digest(void)
{
	_cleanup_free_ char *c = cache("mismatch");
	_cleanup_free_ char *url = xasprintf("%s/payload.bin?mismatch", base);
	uint8_t d[PX_SHA256_LEN];
	char wrong[PX_SHA256_HEX];
	px_sha256_buf("something else", 14, d);
	px_sha256_hex(d, wrong);
	struct px_fetch_opts o = {.url = url, .sha256 = wrong, .cache_dir = c};
	struct px_err *err = NULL;
	char *got = NULL;
	ok(px_fetch(&o, &got, &err) < 0, "a wrong digest fails");
	_cleanup_free_ char *msg =
	        xasprintf("sha256 mismatch for '%s': expected %s, got %s", url, wrong, digest);
	is_str(err ? err->msg : NULL, msg, "the error names the URL and both digests");
	is_int(err ? (int)err->exit_code : -1, PX_EXIT_INPUT, "exit code is PX_EXIT_INPUT");
	_cleanup_free_ char *entry = xasprintf("%s/sha256/%s", c, wrong);
	_cleanup_free_ char *part = xasprintf("%s/partial/%s.part", c, wrong);
	ok(!exists(part), "the partial file is deleted");
	ok(!exists(entry), "no cache entry is made");
	px_err_clear(&err);
}

static void test_file_url(void)
{
	_cleanup_free_ char *c = cache("file");
	_cleanup_free_ char *url = xasprintf("file://%s/payload.bin", root);
	struct px_err *err = NULL;
	char *got = NULL;
	ok(fetch(url, c, false, &got, &err) == 0, "a file:// URL works %s", err ? err->msg : "");
	ok(holds_payload(got, PAYLOAD_SIZE), "and copies the file into the cache");
	free(got);
	px_err_clear(&err);

	/* file:// resumes too (libcurl reads from the offset), and a partial file longer
	 * than the source is discarded. */
	_cleanup_free_ char *c3 = cache("file-resume");
	write_partial(c3, payload, 700000);
	ok(fetch(url, c3, false, &got, &err) == 0, "a file:// download resumes %s",
	   err ? err->msg : "");
	ok(holds_payload(got, PAYLOAD_SIZE), "into a correct file");
	free(got);
	px_err_clear(&err);
	_cleanup_free_ char *c4 = cache("file-too-long");
	_cleanup_free_ uint8_t *longer = xcalloc(1, PAYLOAD_SIZE + 10);
	memcpy(longer, payload, PAYLOAD_SIZE);
	write_partial(c4, longer, PAYLOAD_SIZE + 10);
	ok(fetch(url, c4, false, &got, &err) == 0, "a file:// partial longer than the source %s",
	   err ? err->msg : "");
	ok(holds_payload(got, PAYLOAD_SIZE), "is replaced by a correct file");
	free(got);
	px_err_clear(&err);

	_cleanup_free_ char *c2 = cache("file-missing");
	_cleanup_free_ char *missing = xasprintf("file://%s/no-such-file", root);
	ok(fetch(missing, c2, false, &got, &err) < 0, "a missing file:// source fails");
	like(err ? err->msg : NULL, "no-such-file", "naming the URL");
	px_err_clear(&err);
}

static void test_range_edge_cases(void)
{
	struct px_err *err = NULL;
	char *got = NULL;
	struct req r[4];

	/* A server that ignores Range sends the whole file with 200: start over. */
	_cleanup_free_ char *c1 = cache("no-range");
	write_partial(c1, payload, 700000);
	ok(fetch("/no-range/payload.bin", c1, false, &got, &err) == 0,
	   "a 200 answer to a Range request restarts from 0 %s", err ? err->msg : "");
	ok(holds_payload(got, PAYLOAD_SIZE), "and the file is correct");
	ok(requests("/no-range/payload.bin", r, 4) == 1 && px_streq(r[0].range, "bytes=700000-") &&
	           r[0].status == 200,
	   "one request, Range sent, 200 received");
	free(got);
	px_err_clear(&err);

	/* A partial file whose prefix is not the remote file's: the resumed digest fails, so
	 * one fresh download follows. */
	_cleanup_free_ char *c2 = cache("stale");
	_cleanup_free_ uint8_t *junk = xcalloc(1, 700000);
	write_partial(c2, junk, 700000);
	ok(fetch("/payload.bin?stale", c2, false, &got, &err) == 0,
	   "a stale partial file is replaced %s", err ? err->msg : "");
	ok(holds_payload(got, PAYLOAD_SIZE), "the file is correct");
	ok(requests("/payload.bin?stale", r, 4) == 2 && px_streq(r[0].range, "bytes=700000-") &&
	           r[1].range[0] == '\0',
	   "a resume, then one download from the start");
	free(got);
	px_err_clear(&err);

	/* Killed after the last byte but before the rename: 416, and the partial is used. */
	_cleanup_free_ char *c3 = cache("complete");
	write_partial(c3, payload, PAYLOAD_SIZE);
	ok(fetch("/payload.bin?complete", c3, false, &got, &err) == 0,
	   "a complete partial file is committed %s", err ? err->msg : "");
	ok(holds_payload(got, PAYLOAD_SIZE), "the file is correct");
	ok(requests("/payload.bin?complete", r, 4) == 1 && r[0].status == 416,
	   "after one 416 answer");
	free(got);
	px_err_clear(&err);

	/* A partial file longer than the remote file: 416, then a fresh download. */
	_cleanup_free_ char *c4 = cache("too-long");
	_cleanup_free_ uint8_t *longer = xcalloc(1, PAYLOAD_SIZE + 10);
	memcpy(longer, payload, PAYLOAD_SIZE);
	write_partial(c4, longer, PAYLOAD_SIZE + 10);
	ok(fetch("/payload.bin?too-long", c4, false, &got, &err) == 0,
	   "a partial file longer than the source is discarded %s", err ? err->msg : "");
	ok(holds_payload(got, PAYLOAD_SIZE), "the file is correct");
	ok(requests("/payload.bin?too-long", r, 4) == 2 && r[0].status == 416 && r[1].status == 200,
	   "416, then a download from the start");
	free(got);
	px_err_clear(&err);

	_cleanup_free_ char *c5 = cache("redirect");
	ok(fetch("/redirect/payload.bin", c5, false, &got, &err) == 0, "a redirect is followed");
	ok(holds_payload(got, PAYLOAD_SIZE), "the file is correct");
	free(got);
	px_err_clear(&err);
}

/* RLIMIT_FSIZE makes writes past 1 MiB fail with EFBIG, standing in for a full disk. */
static void test_write_error(void)
{
	_cleanup_free_ char *c = cache("write-error");
	_cleanup_free_ char *part = partial_of(c);
	struct px_err *err = NULL;
	char *got = NULL;
	struct rlimit old, lim;
	getrlimit(RLIMIT_FSIZE, &old);
	lim = old;
	lim.rlim_cur = 1 << 20;
	signal(SIGXFSZ, SIG_IGN);
	setrlimit(RLIMIT_FSIZE, &lim);
	int r = fetch("/payload.bin?write-error", c, false, &got, &err);
	setrlimit(RLIMIT_FSIZE, &old);
	ok(r < 0, "a write error fails the download");
	like(err ? err->msg : NULL, part, "the error names the partial file");
	like(err ? err->msg : NULL, "File too large", "and the reason");
	struct stat st;
	ok(stat(part, &st) == 0 && st.st_size > 0 && st.st_size <= (1 << 20),
	   "the partial file is kept");
	ok(holds_payload(part, (size_t)st.st_size), "and holds a consistent prefix");
	px_err_clear(&err);

	ok(fetch("/payload.bin?write-error", c, false, &got, &err) == 0,
	   "the next run completes %s", err ? err->msg : "");
	ok(holds_payload(got, PAYLOAD_SIZE), "with a correct file");
	struct req rq[4];
	_cleanup_free_ char *range = xasprintf("bytes=%jd-", (intmax_t)st.st_size);
	ok(requests("/payload.bin?write-error", rq, 4) == 2 && px_streq(rq[1].range, range),
	   "by resuming where the partial file ends");
	free(got);
	px_err_clear(&err);

	_cleanup_free_ char *c2 = cache("too-large");
	_cleanup_free_ char *url = xasprintf("%s/payload.bin?too-large", base);
	struct px_fetch_opts o = {.url = url, .sha256 = digest, .cache_dir = c2, .max_size = 1000};
	ok(px_fetch(&o, &got, &err) < 0, "a download over max_size fails");
	like(err ? err->msg : NULL, "larger than the limit", "with a clear error");
	_cleanup_free_ char *part2 = partial_of(c2);
	ok(!exists(part2), "an empty partial file is not kept");
	px_err_clear(&err);
}

/* Progress goes to stderr: capture it in a file for one download each way. */
static char *capture_progress(const char *query, enum px_log_level level)
{
	_cleanup_free_ char *c = xasprintf("%s/progress%s", tmp, query);
	_cleanup_free_ char *url = xasprintf("%s/payload.bin?%s", base, query);
	_cleanup_free_ char *out = xasprintf("%s/stderr-%s", tmp, query);
	struct px_fetch_opts o = {.url = url, .sha256 = digest, .cache_dir = c, .progress = true};
	struct px_err *err = NULL;
	char *got = NULL;
	fflush(stderr);
	int saved = dup(STDERR_FILENO);
	int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	dup2(fd, STDERR_FILENO);
	close(fd);
	px_log_init(level);
	int r = px_fetch(&o, &got, &err);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	px_log_init(PX_LOG_NORMAL);
	ok(r == 0, "download with progress=%s succeeds", query);
	free(got);
	px_err_clear(&err);
	char *data = NULL;
	if (px_file_read(out, 1 << 20, &data, NULL, &err) < 0)
		px_err_clear(&err);
	return data;
}

static void test_progress(void)
{
	_cleanup_free_ char *plain = capture_progress("normal", PX_LOG_NORMAL);
	int lines = 0;
	for (const char *p = plain; p && (p = strstr(p, "downloading payload.bin: ")); p++)
		lines++;
	ok(lines >= 5 && lines <= 12, "plain progress prints a line every tenth (%d lines)", lines);
	like(plain, "100% (3.0 MiB of 3.0 MiB", "and a final 100% line");
	ok(plain && !strchr(plain, '\r'), "without terminal control characters");

	_cleanup_free_ char *quiet = capture_progress("quiet", PX_LOG_QUIET);
	is_str(quiet, "", "quiet mode prints nothing");
}

static double now(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void test_stall(void)
{
	_cleanup_free_ char *c = cache("stall");
	struct px_err *err = NULL;
	char *got = NULL;
	const char *path = "/stall-after/1000/payload.bin";
	double t0 = now();
	ok(fetch(path, c, false, &got, &err) == 0, "a stalled transfer times out and resumes %s",
	   err ? err->msg : "");
	double dt = now() - t0;
	ok(dt >= 1 && dt < 5, "after the low-speed timeout (%.1f s)", dt);
	ok(holds_payload(got, PAYLOAD_SIZE), "the file is correct");
	struct req r[4];
	ok(requests(path, r, 4) == 2 && px_streq(r[1].range, "bytes=1000-"),
	   "the retry resumes at the stall point");
	free(got);
	px_err_clear(&err);
}

/* Two processes fetching the same file into one cache: the partial file's lock makes the
 * second wait, and it then finds the finished entry instead of downloading again. */
static void test_concurrent(void)
{
	_cleanup_free_ char *c = cache("concurrent");
	_cleanup_free_ char *want = entry_of(c);
	const char *path = "/stall-after/1000/payload.bin?concurrent";
	struct px_err *err = NULL;
	char *got = NULL;
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		int r = fetch(path, c, false, &got, &err);
		_exit(r == 0 && holds_payload(got, PAYLOAD_SIZE) ? 0 : 1);
	}
	usleep(300000);
	ok(fetch(path, c, false, &got, &err) == 0, "the parent's fetch succeeds %s",
	   err ? err->msg : "");
	is_str(got, want, "with the shared cache entry");
	int status = -1;
	waitpid(pid, &status, 0);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child's fetch succeeds");
	is_int(count(path), 2, "one download (a stall and its resume), not two");
	ok(holds_payload(want, PAYLOAD_SIZE), "the entry is correct");
	free(got);
	px_err_clear(&err);
}

/* On a terminal the bar is redrawn in place with \r and erase-to-end-of-line. */
static void test_progress_tty(void)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0) {
		ok(0, "cannot open a pseudo-terminal: %s", strerror(errno));
		return;
	}
	int s = open(ptsname(m), O_RDWR | O_NOCTTY | O_CLOEXEC);
	_cleanup_free_ char *c = cache("progress-tty");
	_cleanup_free_ char *url = xasprintf("%s/payload.bin?tty", base);
	struct px_fetch_opts o = {.url = url, .sha256 = digest, .cache_dir = c, .progress = true};
	struct px_err *err = NULL;
	char *got = NULL;
	fflush(stderr);
	int saved = dup(STDERR_FILENO);
	dup2(s, STDERR_FILENO);
	close(s);
	px_log_init(PX_LOG_NORMAL);
	int r = px_fetch(&o, &got, &err);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	px_log_init(PX_LOG_NORMAL);
	ok(r == 0, "download with a terminal on stderr succeeds");
	char out[8192];
	fcntl(m, F_SETFL, O_NONBLOCK);
	size_t n = 0;
	for (;;) {
		ssize_t k = read(m, out + n, sizeof(out) - 1 - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	out[n] = '\0';
	close(m);
	like(out, "\rdownloading payload.bin [", "the bar starts with a carriage return");
	like(out, "] 100% 3.0 MiB / 3.0 MiB", "and ends at 100% with sizes");
	like(out, "\033[K", "erasing the rest of the line");
	ok(n > 0 && out[n - 1] == '\n', "and a final newline");
	free(got);
	px_err_clear(&err);
}

static void test_arguments(void)
{
	struct px_err *err = NULL;
	char *got = NULL;
	_cleanup_free_ char *c = cache("args");
	struct px_fetch_opts o = {.url = "http://127.0.0.1:1/x", .sha256 = "abc", .cache_dir = c};
	ok(px_fetch(&o, &got, &err) < 0, "a short digest is refused");
	like(err ? err->msg : NULL, "invalid sha256 'abc'", "with the digest quoted");
	is_int(err ? (int)err->exit_code : -1, PX_EXIT_INPUT, "as bad input");
	px_err_clear(&err);

	o.url = "ftp://example.org/x";
	o.sha256 = digest;
	ok(px_fetch(&o, &got, &err) < 0, "an ftp URL is refused");
	like(err ? err->msg : NULL, "unsupported URL 'ftp://example.org/x'", "with the URL quoted");
	px_err_clear(&err);

	setenv("XDG_CACHE_HOME", "/xdg", 1);
	char *d = px_fetch_default_cache_dir("/proj");
	is_str(d, "/xdg/pexi", "XDG_CACHE_HOME/pexi when set");
	free(d);
	setenv("XDG_CACHE_HOME", "", 1);
	d = px_fetch_default_cache_dir("/proj");
	is_str(d, "/proj/cache", "an empty XDG_CACHE_HOME is ignored");
	free(d);
	unsetenv("XDG_CACHE_HOME");
	d = px_fetch_default_cache_dir(NULL);
	is_str(d, "cache", "cache/ without a project dir");
	free(d);
}

int main(void)
{
	const char *src = getenv("PEXI_SRC");
	_cleanup_free_ char *script = xasprintf("%s/tests/http/server.py", src ? src : ".");
	if (!px_have_program("python3")) {
		printf("# python3 not found: the test HTTP server needs it\n");
		return 77;
	}
	if (!exists(script)) {
		printf("# '%s' not found: set PEXI_SRC to the source tree\n", script);
		return 77;
	}
	if (!mkdtemp(tmp)) {
		perror("mkdtemp");
		return 1;
	}
	px_log_init(PX_LOG_NORMAL);
	setenv("PEXI_FETCH_BACKOFF_MS", "20", 1);
	setenv("PEXI_FETCH_STALL_S", "1", 1);
	root = xasprintf("%s/www", tmp);
	log_path = xasprintf("%s/requests.log", tmp);
	fill_payload();
	_cleanup_free_ char *file = xasprintf("%s/payload.bin", root);
	struct px_err *err = NULL;
	if (px_mkdir_p(root, 0755, &err) < 0 ||
	    px_atomic_write_file(file, payload, PAYLOAD_SIZE, 0644, &err) < 0) {
		printf("# %s\n", err->msg);
		return 1;
	}
	if (sha256sum(file, digest) < 0) {
		printf("# sha256sum failed\n");
		return 1;
	}
	if (start_server(script) < 0) {
		printf("Bail out! cannot start the test HTTP server\n");
		stop_server();
		return 1;
	}

	test_plain_and_cache();
	test_offline_miss();
	test_resume_after_drop();
	test_http_errors();
	test_wrong_digest();
	test_file_url();
	test_range_edge_cases();
	test_write_error();
	test_progress();
	test_progress_tty();
	test_stall();
	test_concurrent();
	test_arguments();

	stop_server();
	const char *rm[] = {"rm", "-rf", tmp, NULL};
	px_run(rm, NULL, &err);
	px_err_free(err);
	free(payload);
	free(root);
	free(log_path);
	free(base);
	return done_testing();
}
