#include <curl/curl.h>

#include "core/common.h"

#include "apk/repo.h"
#include "core/buf.h"
#include "core/file.h"
#include "image/fetch.h"

#define MAX_REDIRECTS     5
#define CONNECT_TIMEOUT_S 30
#define TOTAL_TIMEOUT_S   300
#define ATTEMPTS          3

static char *base_url(const char *url)
{
	size_t l = strlen(url);
	while (l > 1 && url[l - 1] == '/')
		l--;
	if (url[0] == '/')
		return xasprintf("file://%.*s", (int)l, url);
	return xstrndup(url, l);
}

char *px_apk_repo_index_url(const char *url, const char *arch)
{
	_cleanup_free_ char *b = base_url(url);
	return xasprintf("%s/%s/APKINDEX.tar.gz", b, arch);
}

char *px_apk_repo_package_url(const char *url, const char *arch, const struct px_apk_pkg *p)
{
	_cleanup_free_ char *b = base_url(url);
	return xasprintf("%s/%s/%s-%s.apk", b, arch, p->name, p->version);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct px_buf *b = userdata;
	size_t n = size * nmemb;
	if (px_buf_append(b, data, n, NULL) < 0)
		return 0; /* past the cap: libcurl stops with a write error */
	return n;
}

static void curl_cleanupp(CURL **c)
{
	if (*c)
		curl_easy_cleanup(*c);
}

/* One GET into memory; libcurl's result is interpreted here only. */
static int download_once(const char *url, struct px_buf *b, bool *ret_transient,
                         struct px_err **err)
{
	static bool global_done;
	char errbuf[CURL_ERROR_SIZE] = "";
	long code = 0;

	*ret_transient = false;
	if (!global_done) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return px_err_set(err, PX_EXIT_FAILURE, "cannot initialise libcurl");
		global_done = true;
	}
	_cleanup_(curl_cleanupp) CURL *c = curl_easy_init();
	if (!c)
		return px_err_set(err, PX_EXIT_FAILURE, "cannot initialise libcurl");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https,file");
	/* A redirect must never lead to a local file. */
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(c, CURLOPT_MAXREDIRS, (long)MAX_REDIRECTS);
	curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)CONNECT_TIMEOUT_S);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)TOTAL_TIMEOUT_S);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "pexi/" PX_VERSION);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
	CURLcode r = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	if (r == CURLE_OK)
		return 0;
	if (r == CURLE_WRITE_ERROR && b->len + CURL_MAX_WRITE_SIZE > b->max)
		return px_err_set(err, PX_EXIT_INPUT, "'%s' is larger than %zu bytes", url, b->max);
	*ret_transient = r == CURLE_COULDNT_CONNECT || r == CURLE_OPERATION_TIMEDOUT ||
	                 r == CURLE_PARTIAL_FILE || r == CURLE_RECV_ERROR ||
	                 r == CURLE_SEND_ERROR || r == CURLE_GOT_NOTHING ||
	                 (r == CURLE_HTTP_RETURNED_ERROR && (code == 429 || code >= 500));
	return px_err_set(err, PX_EXIT_FAILURE, "cannot download '%s': %s", url,
	                  errbuf[0] ? errbuf : curl_easy_strerror(r));
}

static int download(const char *url, struct px_buf *b, struct px_err **err)
{
	for (unsigned i = 1;; i++) {
		bool transient;
		b->len = 0;
		if (download_once(url, b, &transient, err) == 0)
			return 0;
		if (!transient || i == ATTEMPTS)
			return -1;
		px_err_clear(err);
		usleep(500000u << (i - 1));
	}
}

static char *ref_path(const char *cache_dir, const char *url)
{
	uint8_t d[PX_SHA256_LEN];
	char hex[PX_SHA256_HEX];
	px_sha256_buf(url, strlen(url), d);
	px_sha256_hex(d, hex);
	return xasprintf("%s/apk-index/%s", cache_dir, hex);
}

/* The digest the reference file records for url, or -1 with an error. */
static int read_ref(const char *path, const char *url, char out[PX_SHA256_HEX], struct px_err **err)
{
	_cleanup_free_ char *data = NULL;
	size_t len;
	if (px_file_read(path, 64 * 1024, &data, &len, err) < 0)
		return -1;
	size_t ul = strlen(url);
	if (len < 66 || data[64] != ' ' || len < 65 + ul || memcmp(data + 65, url, ul) != 0 ||
	    (data[65 + ul] != '\n' && data[65 + ul] != 0))
		return px_err_set(err, PX_EXIT_INPUT, "cache reference '%s' is corrupt", path);
	for (size_t i = 0; i < 64; i++)
		if (!((data[i] >= '0' && data[i] <= '9') || (data[i] >= 'a' && data[i] <= 'f')))
			return px_err_set(err, PX_EXIT_INPUT, "cache reference '%s' is corrupt",
			                  path);
	memcpy(out, data, 64);
	out[64] = 0;
	return 0;
}

int px_apk_repo_fetch_index(const struct px_apk_repo_opts *o, struct px_apk_index *ret,
                            char ret_sha256[PX_SHA256_HEX], struct px_err **err)
{
	_cleanup_free_ char *url = px_apk_repo_index_url(o->url, o->arch);
	_cleanup_free_ char *ref = ref_path(o->cache_dir, url);
	_cleanup_free_ char *cached = NULL;
	char hex[PX_SHA256_HEX];

	if (o->offline) {
		struct px_err *e = NULL;
		if (read_ref(ref, url, hex, &e) < 0) {
			int r = px_err_set(
			        err, PX_EXIT_FAILURE,
			        "no cached copy of '%s' for an offline build (%s); run once "
			        "online first",
			        url, e->msg);
			px_err_free(e);
			return r;
		}
		struct px_fetch_opts fo = {.url = url,
		                           .sha256 = hex,
		                           .cache_dir = o->cache_dir,
		                           .offline = true,
		                           .max_size = PX_APK_REPO_MAX_INDEX};
		if (px_fetch(&fo, &cached, err) < 0)
			return px_err_wrap(err, "repository index '%s'", url);
		if (px_apk_index_load(o->keys, cached, o->allow_untrusted, o->repo, ret, err) < 0)
			return px_err_wrap(err, "cached index of '%s'", url);
		free(ret->what);
		ret->what = xstrdup(url);
		if (ret_sha256)
			memcpy(ret_sha256, hex, PX_SHA256_HEX);
		return 0;
	}

	struct px_buf b = {.max = PX_APK_REPO_MAX_INDEX};
	if (download(url, &b, err) < 0) {
		px_buf_free(&b);
		return -1;
	}
	/* Verify before anything reaches the cache: a bad index must not become the copy an
	 * offline build trusts later. */
	struct px_apk_index idx;
	if (px_apk_index_read_targz(o->keys, b.data ? b.data : "", b.len, url, o->allow_untrusted,
	                            o->repo, &idx, err) < 0) {
		px_buf_free(&b);
		return -1;
	}
	uint8_t d[PX_SHA256_LEN];
	px_sha256_buf(b.data ? b.data : "", b.len, d);
	px_sha256_hex(d, hex);

	/* Into the content-addressed store, laid out as image/fetch.h documents it (the
	 * atomic write is its fsync-and-rename), where px_fetch finds and re-verifies it. */
	_cleanup_free_ char *store = xasprintf("%s/sha256", o->cache_dir);
	_cleanup_free_ char *refdir = xasprintf("%s/apk-index", o->cache_dir);
	cached = xasprintf("%s/%s", store, hex);
	int r = px_mkdir_p(store, 0755, err);
	if (r == 0)
		r = px_mkdir_p(refdir, 0755, err);
	if (r == 0)
		r = px_atomic_write_file(cached, b.data ? b.data : "", b.len, 0644, err);
	px_buf_free(&b);
	if (r == 0) {
		_cleanup_free_ char *line = xasprintf("%s %s\n", hex, url);
		r = px_atomic_write_file(ref, line, strlen(line), 0644, err);
	}
	if (r < 0) {
		px_apk_index_free(&idx);
		return px_err_wrap(err, "caching the index of '%s'", url);
	}
	*ret = idx;
	if (ret_sha256)
		memcpy(ret_sha256, hex, PX_SHA256_HEX);
	return 0;
}
