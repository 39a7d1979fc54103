#include <ctype.h>
#include <libgen.h>
#include <strings.h>
#include <sys/file.h>
#include <time.h>

#include <curl/curl.h>

#include "core/common.h"

#include "core/file.h"
#include "core/log.h"
#include "core/sha256.h"
#include "image/fetch.h"
#include "image/progress.h"

#define CONNECT_TIMEOUT_S  30
#define LOW_SPEED_BYTES    1024 /* a transfer slower than this ... */
#define LOW_SPEED_TIME_S   60   /* ... for this long is a timeout, and retried */
#define MAX_REDIRECTS      10
#define BACKOFF_DEFAULT_MS 500
#define BACKOFF_MAX_MS     8000

/* One transfer attempt. The partial file always holds a prefix of the remote file, and
 * 'h' is the digest state over exactly those 'size' bytes. */
struct transfer {
	CURL *curl;
	const char *url;
	const char *part;
	int fd;
	bool http;
	uint64_t start; /* offset asked for with a Range request (0: the whole file) */
	uint64_t size;  /* bytes in the partial file */
	uint64_t total; /* expected final size, 0 when unknown */
	uint64_t max_size;
	bool started; /* the first body bytes arrived */
	struct px_sha256 h;
	struct px_progress *progress;
	struct px_err *err; /* why the write callback stopped the transfer */
};

/* Test knobs: the tests shrink the backoff and the stall timeout through the environment
 * so that fault injection runs in seconds. */
static unsigned env_uint(const char *name, unsigned def, unsigned max)
{
	const char *s = getenv(name);
	if (s && *s) {
		char *end;
		unsigned long v = strtoul(s, &end, 10);
		if (*end == '\0' && v <= max)
			return (unsigned)v;
	}
	return def;
}

static int curl_init_once(struct px_err **err)
{
	static bool done;
	if (done)
		return 0;
	CURLcode c = curl_global_init(CURL_GLOBAL_DEFAULT);
	if (c != CURLE_OK)
		return px_err_set(err, PX_EXIT_FAILURE, "cannot initialise libcurl: %s",
		                  curl_easy_strerror(c));
	done = true;
	return 0;
}

char *px_fetch_default_cache_dir(const char *project_dir)
{
	const char *xdg = getenv("XDG_CACHE_HOME");
	if (xdg && xdg[0])
		return xasprintf("%s/pexi", xdg);
	if (!project_dir || !project_dir[0])
		return xstrdup("cache");
	return xasprintf("%s/cache", project_dir);
}

/* Accepts 64 hex digits in either case and returns them in lowercase, the form used for
 * cache names and comparisons. */
static int parse_digest(const char *s, char out[PX_SHA256_HEX], struct px_err **err)
{
	if (!s || strlen(s) != PX_SHA256_HEX - 1)
		return px_err_set(err, PX_EXIT_INPUT, "invalid sha256 '%s': expected 64 hex digits",
		                  s ? s : "");
	for (size_t i = 0; i < PX_SHA256_HEX - 1; i++) {
		if (!isxdigit((unsigned char)s[i]))
			return px_err_set(err, PX_EXIT_INPUT,
			                  "invalid sha256 '%s': '%c' is not a hex digit", s, s[i]);
		out[i] = (char)tolower((unsigned char)s[i]);
	}
	out[PX_SHA256_HEX - 1] = '\0';
	return 0;
}

static bool has_prefix_ci(const char *s, const char *prefix)
{
	return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/* The last path component of a URL, for progress lines: the whole URL rarely fits. */
static char *url_name(const char *url)
{
	size_t end = strcspn(url, "?#");
	while (end > 0 && url[end - 1] == '/')
		end--;
	size_t start = end;
	while (start > 0 && url[start - 1] != '/')
		start--;
	if (start == end)
		return xstrdup(url);
	return xstrndup(url + start, end - start);
}

/* Returns 1 when a verified copy is in the cache, 0 when there is none (a corrupt entry is
 * removed first), negative on error. */
static int cache_lookup(const char *path, const char *want, bool offline, struct px_err **err)
{
	if (access(path, F_OK) < 0) {
		if (errno == ENOENT)
			return 0;
		return px_err_errno(err, errno, "cannot access cache entry '%s'", path);
	}
	char got[PX_SHA256_HEX];
	if (px_sha256_file_hex(path, got, err) < 0)
		return px_err_wrap(err, "verifying cache entry");
	if (strcmp(got, want) == 0)
		return 1;
	/* Entries are named by their digest, so a different digest means the file was damaged
	 * after it was verified: it is useless and goes. */
	if (unlink(path) < 0)
		return px_err_errno(err, errno, "cannot remove corrupt cache entry '%s'", path);
	if (offline)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "cache entry '%s' is corrupt (its sha256 is %s) and was removed; "
		                  "cannot download it again because --offline was given",
		                  path, got);
	px_log_warn("cache entry '%s' is corrupt (its sha256 is %s): downloading it again", path,
	            got);
	return 0;
}

/* Opens and locks the partial file, so that two builds sharing a cache never write the
 * same partial file; the second one waits and then finds the finished entry. */
static int lock_partial(const char *part, int *ret_fd, struct px_err **err)
{
	for (;;) {
		_cleanup_close_ int fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0)
			return px_err_errno(err, errno, "cannot open '%s'", part);
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			if (errno != EWOULDBLOCK)
				return px_err_errno(err, errno, "cannot lock '%s'", part);
			px_log_info("waiting for another pexi downloading into '%s'", part);
			while (flock(fd, LOCK_EX) < 0)
				if (errno != EINTR)
					return px_err_errno(err, errno, "cannot lock '%s'", part);
		}
		/* The holder may have renamed or removed the file meanwhile: our lock is then on
		 * an orphan, and we start over with whatever the name holds now. */
		struct stat a, b;
		if (fstat(fd, &a) < 0)
			return px_err_errno(err, errno, "cannot stat '%s'", part);
		if (!S_ISREG(a.st_mode))
			return px_err_set(err, PX_EXIT_FAILURE, "'%s' is not a regular file", part);
		if (stat(part, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
			*ret_fd = steal_fd(&fd);
			return 0;
		}
	}
}

/* Reads the partial file from the start into t->h, leaving the file offset at its end. */
static int hash_partial(struct transfer *t, struct px_err **err)
{
	if (lseek(t->fd, 0, SEEK_SET) < 0)
		return px_err_errno(err, errno, "cannot seek in '%s'", t->part);
	_cleanup_free_ uint8_t *buf = xmalloc(1 << 20);
	px_sha256_init(&t->h);
	t->size = 0;
	for (;;) {
		ssize_t n = read(t->fd, buf, 1 << 20);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			uint8_t discard[PX_SHA256_LEN];
			px_sha256_final(&t->h, discard);
			return px_err_errno(err, e, "cannot read '%s'", t->part);
		}
		if (n == 0)
			return 0;
		px_sha256_update(&t->h, buf, (size_t)n);
		t->size += (uint64_t)n;
	}
}

/* Empties the partial file and the digest state: the next bytes start the file. */
static int truncate_partial(struct transfer *t, struct px_err **err)
{
	if (ftruncate(t->fd, 0) < 0 || lseek(t->fd, 0, SEEK_SET) < 0)
		return px_err_errno(err, errno, "cannot truncate '%s'", t->part);
	uint8_t discard[PX_SHA256_LEN];
	px_sha256_final(&t->h, discard);
	px_sha256_init(&t->h);
	t->size = 0;
	return 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct transfer *t = userdata;
	size_t len = size * nmemb;
	if (!t->started) {
		t->started = true;
		long code = 0;
		curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &code);
		/* A server that ignores Range answers 200 with the whole file: start over. */
		if (t->http && t->start > 0 && code == 200) {
			px_log_debug("'%s' ignored the range request: downloading from the start",
			             t->url);
			if (truncate_partial(t, &t->err) < 0)
				return 0;
			t->start = 0;
		}
		curl_off_t cl = -1;
		if (curl_easy_getinfo(t->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) ==
		            CURLE_OK &&
		    cl >= 0)
			t->total = t->start + (uint64_t)cl;
	}
	if (t->size + len > t->max_size) {
		char lim[16];
		px_progress_size(t->max_size, lim, sizeof(lim));
		px_err_set(&t->err, PX_EXIT_INPUT, "'%s' is larger than the limit of %s", t->url,
		           lim);
		return 0;
	}
	if (px_write_all(t->fd, data, len, t->part, &t->err) < 0) {
		if (t->err->errnum == ENOSPC || t->err->errnum == EDQUOT)
			px_err_set(&t->err, PX_EXIT_FAILURE,
			           "%s (free some space and run again: the download resumes)",
			           t->err->msg);
		return 0;
	}
	px_sha256_update(&t->h, data, len);
	t->size += len;
	px_progress_update(t->progress, t->size, t->total);
	return len;
}

/* What an attempt came to. */
enum outcome {
	DONE,          /* the whole file is in the partial file */
	RANGE_INVALID, /* the partial file is not shorter than the remote file */
	TRANSIENT,     /* worth another attempt */
	FATAL,
};

static bool http_transient(long code)
{
	return code == 408 || code == 429 || code >= 500;
}

static bool curl_transient(CURLcode c)
{
	switch (c) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_PARTIAL_FILE:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return true;
	default:
		return false;
	}
}

/* Runs one request from the partial file's current size. Translates libcurl's result into
 * an outcome and, unless DONE, a px_err: this is the one place CURLcode is interpreted. */
static enum outcome attempt(struct transfer *t, struct px_err **err)
{
	CURL *curl = curl_easy_init();
	if (!curl) {
		px_err_set(err, PX_EXIT_FAILURE, "cannot initialise libcurl");
		return FATAL;
	}
	char errbuf[CURL_ERROR_SIZE] = "";
	char range[32];
	snprintf(range, sizeof(range), "%" PRIu64 "-", t->start);
	t->curl = curl;
	t->started = false;
	curl_easy_setopt(curl, CURLOPT_URL, t->url);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https,file");
	/* A redirect must never lead a download to a local file. */
	curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(curl, CURLOPT_MAXREDIRS, (long)MAX_REDIRECTS);
	curl_easy_setopt(curl, CURLOPT_FAILONERROR, 1L);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, (long)CONNECT_TIMEOUT_S);
	curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, (long)LOW_SPEED_BYTES);
	curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME,
	                 (long)env_uint("PEXI_FETCH_STALL_S", LOW_SPEED_TIME_S, 3600));
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "pexi/" PX_VERSION);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, t);
	/* CURLOPT_RANGE rather than RESUME_FROM: with the latter libcurl itself fails when the
	 * server ignores the range, and we would rather restart than give up. */
	if (t->start > 0)
		curl_easy_setopt(curl, CURLOPT_RANGE, range);

	CURLcode c = curl_easy_perform(curl);
	long code = 0;
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(curl);
	t->curl = NULL;

	if (t->err) {
		/* Our write callback stopped the transfer (disk full, size limit). */
		*err = steal_ptr(&t->err);
		return FATAL;
	}
	if (c == CURLE_OK) {
		if (t->http && code != 200 && code != 206) {
			px_err_set(err, PX_EXIT_FAILURE, "'%s': unexpected HTTP status %ld", t->url,
			           code);
			return FATAL;
		}
		return DONE;
	}
	if ((c == CURLE_HTTP_RETURNED_ERROR && code == 416) || c == CURLE_BAD_DOWNLOAD_RESUME)
		return RANGE_INVALID;
	if (c == CURLE_HTTP_RETURNED_ERROR) {
		px_err_set(err, PX_EXIT_FAILURE, "cannot download '%s': HTTP %ld", t->url, code);
		return http_transient(code) ? TRANSIENT : FATAL;
	}
	px_err_set(err, PX_EXIT_FAILURE, "cannot download '%s': %s", t->url,
	           errbuf[0] ? errbuf : curl_easy_strerror(c));
	return curl_transient(c) ? TRANSIENT : FATAL;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* fsync, then rename into the cache and sync the cache directory, so the entry appears
 * whole or not at all. */
static int commit(int fd, const char *part, const char *path, struct px_err **err)
{
	if (fsync(fd) < 0)
		return px_err_errno(err, errno, "cannot sync '%s'", part);
	if (rename(part, path) < 0)
		return px_err_errno(err, errno, "cannot rename '%s' to '%s'", part, path);
	_cleanup_free_ char *copy = xstrdup(path);
	const char *dir = dirname(copy);
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || (fsync(dfd) < 0 && errno != EINVAL))
		return px_err_errno(err, errno, "cannot sync directory '%s'", dir);
	return 0;
}

static int mismatch(const char *url, const char *want, const char *got, struct px_err **err)
{
	return px_err_set(err, PX_EXIT_INPUT, "sha256 mismatch for '%s': expected %s, got %s", url,
	                  want, got);
}

/* Releases a digest state that may or may not be live. */
static void hash_discard(struct px_sha256 *h)
{
	uint8_t discard[PX_SHA256_LEN];
	if (h->ctx)
		px_sha256_final(h, discard);
}

/* Downloads into the locked partial file 'fd' until it holds the whole file with the
 * expected digest, then moves it into the cache. */
static int download(const struct px_fetch_opts *o, const char *want, int fd, const char *part,
                    const char *path, struct px_err **err)
{
	_cleanup_free_ char *name = url_name(o->url);
	_cleanup_free_ char *label = xasprintf("downloading %s", name);
	struct px_progress progress;
	struct transfer t = {
	        .url = o->url,
	        .part = part,
	        .fd = fd,
	        .http = !has_prefix_ci(o->url, "file://"),
	        .max_size = o->max_size ? o->max_size : PX_FETCH_DEFAULT_MAX_SIZE,
	        .progress = &progress,
	};
	struct stat st;
	px_progress_start(&progress, label, o->progress,
	                  fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0);
	/* A resumed file that ends up wrong may have a stale prefix (the remote file changed,
	 * or the disk lost a write): it deserves one fresh download before we give up. */
	bool fresh_done = false;
	unsigned failures = 0;
	unsigned base_ms = env_uint("PEXI_FETCH_BACKOFF_MS", BACKOFF_DEFAULT_MS, BACKOFF_MAX_MS);
	int r = -1;

	/* The partial file is hashed once; from then on on_body hashes exactly what it writes,
	 * so after a dropped connection the digest state already covers the file. */
	if (hash_partial(&t, err) < 0) {
		hash_discard(&t.h);
		px_progress_finish(&progress, t.size, false);
		return -1;
	}
	for (;;) {
		t.start = t.size;
		if (t.start > 0)
			px_log_debug("resuming '%s' at byte %" PRIu64, o->url, t.start);

		struct px_err *aerr = NULL;
		enum outcome oc = attempt(&t, &aerr);
		if (oc == FATAL) {
			*err = aerr;
			/* Keep the partial file only while it is a consistent prefix: the failed
			 * write may have left bytes beyond what was hashed. */
			if (t.size == 0 || ftruncate(fd, (off_t)t.size) < 0)
				unlink(part);
			break;
		}
		if (oc == TRANSIENT) {
			if (failures >= o->max_retries) {
				px_err_set(err, PX_EXIT_FAILURE, "%s (gave up after %u attempt%s)",
				           aerr->msg, failures + 1, failures ? "s" : "");
				px_err_free(aerr);
				break;
			}
			unsigned ms = base_ms << (failures < 8 ? failures : 8);
			if (ms > BACKOFF_MAX_MS)
				ms = BACKOFF_MAX_MS;
			failures++;
			px_log_warn("%s; retrying in %.1f s (retry %u of %u)", aerr->msg,
			            ms / 1000.0, failures, o->max_retries);
			px_err_free(aerr);
			sleep_ms(ms);
			continue;
		}

		/* DONE or RANGE_INVALID: the partial file now holds all we will get. */
		uint8_t digest[PX_SHA256_LEN];
		char got[PX_SHA256_HEX];
		px_sha256_final(&t.h, digest);
		px_sha256_hex(digest, got);
		if (strcmp(got, want) == 0) {
			r = commit(fd, part, path, err);
			break;
		}
		if (t.start > 0 && !fresh_done) {
			fresh_done = true;
			px_log_debug("resumed '%s' does not match: downloading from the start",
			             o->url);
			/* The digest was finalised above: start a new one with the file. */
			if (ftruncate(fd, 0) < 0 || lseek(fd, 0, SEEK_SET) < 0) {
				px_err_errno(err, errno, "cannot truncate '%s'", part);
				break;
			}
			px_sha256_init(&t.h);
			t.size = 0;
			continue;
		}
		unlink(part);
		mismatch(o->url, want, got, err);
		break;
	}
	hash_discard(&t.h);
	px_progress_finish(&progress, t.size, r == 0);
	return r;
}

int px_fetch(const struct px_fetch_opts *o, char **ret_path, struct px_err **err)
{
	char want[PX_SHA256_HEX];
	if (!o->url || !o->url[0])
		return px_err_set(err, PX_EXIT_INPUT, "no URL to download");
	if (parse_digest(o->sha256, want, err) < 0)
		return px_err_wrap(err, "'%s'", o->url);
	if (!has_prefix_ci(o->url, "http://") && !has_prefix_ci(o->url, "https://") &&
	    !has_prefix_ci(o->url, "file://"))
		return px_err_set(err, PX_EXIT_INPUT,
		                  "unsupported URL '%s': expected http://, https:// or file://",
		                  o->url);
	if (!o->cache_dir || !o->cache_dir[0])
		return px_err_set(err, PX_EXIT_FAILURE, "no cache directory for '%s'", o->url);

	_cleanup_free_ char *path = xasprintf("%s/sha256/%s", o->cache_dir, want);
	int r = cache_lookup(path, want, o->offline, err);
	if (r < 0)
		return r;
	if (r == 1) {
		*ret_path = steal_ptr(&path);
		return 0;
	}
	if (o->offline)
		return px_err_set(err, PX_EXIT_FAILURE,
		                  "'%s' (sha256 %s) is not in the cache and --offline given "
		                  "(looked for '%s')",
		                  o->url, want, path);

	if (curl_init_once(err) < 0)
		return -1;
	_cleanup_free_ char *dir = xasprintf("%s/sha256", o->cache_dir);
	_cleanup_free_ char *pdir = xasprintf("%s/partial", o->cache_dir);
	if (px_mkdir_p(dir, 0755, err) < 0 || px_mkdir_p(pdir, 0755, err) < 0)
		return px_err_wrap(err, "preparing the download cache");
	_cleanup_free_ char *part = xasprintf("%s/%s.part", pdir, want);
	_cleanup_close_ int fd = -1;
	if (lock_partial(part, &fd, err) < 0)
		return -1;

	/* Another pexi may have completed this download while we waited for the lock; the
	 * partial file we now hold is then an empty leftover. */
	r = cache_lookup(path, want, false, err);
	if (r < 0)
		return r;
	if (r == 0 && download(o, want, fd, part, path, err) < 0)
		return -1;
	if (r == 1)
		unlink(part);
	*ret_path = steal_ptr(&path);
	return 0;
}
