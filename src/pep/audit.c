#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <pthread.h>
#include <time.h>

#include "core/common.h"

#include "core/buf.h"
#include "core/sha256.h"
#include "pep/audit.h"

PX_DEFINE_CLEANUP(cJSON *, cJSON_Delete)

#define HASH_KEY   ",\"hash\":\""
#define MAX_LINE   (4u << 20)
#define TAIL_BYTES (4u << 20)
#define ZERO_HASH  "0000000000000000000000000000000000000000000000000000000000000000"

struct px_audit {
	pthread_mutex_t lock;
	int fd;
	char *path;
	char *instance;
	uint64_t seq;             /* of the last line written */
	char prev[PX_SHA256_HEX]; /* its hash */
};

/* Splits a line (without its newline) into the hashed prefix and the hash it claims.
 * Returns the prefix length, or 0 when the line does not end in ,"hash":"<64 hex>"}. */
static size_t split_hash(const char *line, size_t len, char hash[PX_SHA256_HEX])
{
	const size_t tail = strlen(HASH_KEY) + 64 + 2;
	if (len < tail + 1)
		return 0;
	size_t pre = len - tail;
	if (memcmp(line + pre, HASH_KEY, strlen(HASH_KEY)) != 0 ||
	    memcmp(line + len - 2, "\"}", 2) != 0)
		return 0;
	const char *h = line + pre + strlen(HASH_KEY);
	for (size_t i = 0; i < 64; i++)
		if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
			return 0;
	memcpy(hash, h, 64);
	hash[64] = '\0';
	return pre;
}

static void hash_hex(const char *p, size_t n, char out[PX_SHA256_HEX])
{
	uint8_t d[PX_SHA256_LEN];
	px_sha256_buf(p, n, d);
	px_sha256_hex(d, out);
}

/* Checks one record's own hash and reads its seq and prev_hash. 'why' gets the reason. */
static int check_line(const char *line, size_t len, uint64_t *ret_seq, char prev[PX_SHA256_HEX],
                      char hash[PX_SHA256_HEX], const char **why)
{
	size_t pre = split_hash(line, len, hash);
	if (!pre) {
		*why = "is not an audit record (no hash at its end)";
		return -1;
	}
	char want[PX_SHA256_HEX];
	hash_hex(line, pre, want);
	if (strcmp(want, hash) != 0) {
		*why = "does not match its hash (the line was changed)";
		return -1;
	}
	_cleanup_(cJSON_Deletep) cJSON *j = cJSON_ParseWithLength(line, len);
	const cJSON *seq = cJSON_GetObjectItemCaseSensitive(j, "seq");
	const cJSON *ph = cJSON_GetObjectItemCaseSensitive(j, "prev_hash");
	if (!j || !cJSON_IsNumber(seq) || seq->valuedouble < 1 || !cJSON_IsString(ph) ||
	    strlen(ph->valuestring) != 64) {
		*why = "is not an audit record (no seq or prev_hash)";
		return -1;
	}
	*ret_seq = (uint64_t)seq->valuedouble;
	memcpy(prev, ph->valuestring, PX_SHA256_HEX);
	return 0;
}

/* Finds the last record of an existing log so the chain continues where it stopped. */
static int read_last(struct px_audit *a, struct px_err **err)
{
	struct stat st;
	if (fstat(a->fd, &st) < 0)
		return px_err_errno(err, errno, "cannot stat audit log '%s'", a->path);
	a->seq = 0;
	memcpy(a->prev, ZERO_HASH, PX_SHA256_HEX);
	if (st.st_size == 0)
		return 0;
	size_t n = (size_t)(st.st_size < TAIL_BYTES ? st.st_size : TAIL_BYTES);
	_cleanup_free_ char *buf = xmalloc(n + 1);
	ssize_t got = pread(a->fd, buf, n, st.st_size - (off_t)n);
	if (got != (ssize_t)n)
		return px_err_errno(err, got < 0 ? errno : EIO, "cannot read audit log '%s'",
		                    a->path);
	if (buf[n - 1] != '\n')
		return px_err_set(err, PX_EXIT_INPUT,
		                  "audit log '%s' ends with an incomplete line; move it aside to "
		                  "start a new chain",
		                  a->path);
	size_t end = n - 1, start = end;
	while (start > 0 && buf[start - 1] != '\n')
		start--;
	if (start == 0 && (off_t)n < st.st_size)
		return px_err_set(err, PX_EXIT_INPUT, "audit log '%s' has a line over %u bytes",
		                  a->path, TAIL_BYTES);
	char prev[PX_SHA256_HEX], hash[PX_SHA256_HEX];
	const char *why = NULL;
	uint64_t seq;
	if (check_line(buf + start, end - start, &seq, prev, hash, &why) < 0)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "audit log '%s': its last line %s; move it aside to start a new "
		                  "chain",
		                  a->path, why);
	a->seq = seq;
	memcpy(a->prev, hash, PX_SHA256_HEX);
	return 0;
}

int px_audit_open(const char *path, const char *instance, struct px_audit **ret,
                  struct px_err **err)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return px_err_errno(err, errno, "cannot open audit log '%s'", path);
	/* The tail is read through a second descriptor: the log's own is write-only. */
	_cleanup_close_ int rfd = open(path, O_RDONLY | O_CLOEXEC);
	if (rfd < 0)
		return px_err_errno(err, errno, "cannot open audit log '%s'", path);
	struct px_audit *a = xcalloc(1, sizeof(*a));
	a->path = xstrdup(path);
	a->instance = instance ? xstrdup(instance) : NULL;
	a->fd = rfd;
	if (read_last(a, err) < 0) {
		free(a->path);
		free(a->instance);
		free(a);
		return -1;
	}
	a->fd = steal_fd(&fd);
	pthread_mutex_init(&a->lock, NULL);
	*ret = a;
	return 0;
}

int px_audit_sync(struct px_audit *a, struct px_err **err)
{
	if (a && fsync(a->fd) < 0)
		return px_err_errno(err, errno, "cannot sync audit log '%s'", a->path);
	return 0;
}

void px_audit_close(struct px_audit *a)
{
	if (!a)
		return;
	px_audit_sync(a, NULL);
	close(a->fd);
	pthread_mutex_destroy(&a->lock);
	free(a->path);
	free(a->instance);
	free(a);
}

static void add_str(cJSON *o, const char *k, const char *v)
{
	if (v)
		cJSON_AddStringToObject(o, k, v);
	else
		cJSON_AddNullToObject(o, k);
}

static void add_addr(cJSON *arr, const struct px_pep_addr *a)
{
	char s[INET6_ADDRSTRLEN] = "?";
	inet_ntop(a->family, a->family == AF_INET ? (const void *)&a->u.v4 : (const void *)&a->u.v6,
	          s, sizeof(s));
	cJSON_AddItemToArray(arr, cJSON_CreateString(s));
}

static double ms3(double v)
{
	return (double)(int64_t)(v * 1000.0 + 0.5) / 1000.0;
}

/* The record's fields after seq, as JSON text without the braces. */
static char *record_body(const struct px_audit *a, const struct px_pep_request *req,
                         const struct px_pep_response *resp, const struct px_pep_trace *t)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char when[96];
	snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);

	_cleanup_(cJSON_Deletep) cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "time", when);
	add_str(o, "instance", a->instance);
	add_str(o, "id", req ? req->id : NULL);
	add_str(o, "method", req ? req->method : NULL);
	add_str(o, "scheme", t->scheme[0] ? t->scheme : NULL);
	add_str(o, "host", t->host);
	if (t->port)
		cJSON_AddNumberToObject(o, "port", t->port);
	else
		cJSON_AddNullToObject(o, "port");
	add_str(o, "path", t->path);
	/* Header names only: values may carry credentials (Authorization, Cookie, API keys). */
	cJSON *hn = cJSON_AddArrayToObject(o, "headers");
	for (size_t i = 0; req && i < req->headers.n; i++)
		cJSON_AddItemToArray(
		        hn,
		        cJSON_CreateString(req->headers.v[i].name ? req->headers.v[i].name : ""));
	add_str(o, "decision",
	        t->decision ? t->decision : (resp->code == PX_PEP_OK ? "allow" : "deny"));
	add_str(o, "code", px_pep_code_name(resp->code));
	add_str(o, "reason", t->reason[0] ? t->reason : NULL);
	cJSON *res = cJSON_AddArrayToObject(o, "resolved");
	for (size_t i = 0; i < t->resolved.n && i < PX_PEP_MAX_ADDRS; i++)
		add_addr(res, &t->resolved.v[i]);
	if (t->has_pinned) {
		cJSON *one = cJSON_CreateArray();
		add_addr(one, &t->pinned);
		cJSON_AddItemToObject(o, "pinned", cJSON_DetachItemFromArray(one, 0));
		cJSON_Delete(one);
	} else {
		cJSON_AddNullToObject(o, "pinned");
	}
	cJSON *hops = cJSON_AddArrayToObject(o, "hops");
	for (size_t i = 0; i < t->n_hops && i < PX_PEP_MAX_HOPS; i++)
		cJSON_AddItemToArray(hops, cJSON_CreateString(t->hops[i] ? t->hops[i] : ""));
	if (resp->code == PX_PEP_OK)
		cJSON_AddNumberToObject(o, "status", resp->status);
	else
		cJSON_AddNullToObject(o, "status");
	cJSON_AddNumberToObject(o, "bytes_out", (double)t->bytes_out);
	cJSON_AddNumberToObject(o, "bytes_in", (double)t->bytes_in);
	cJSON_AddNumberToObject(o, "resolve_ms", ms3(t->resolve_ms));
	cJSON_AddNumberToObject(o, "connect_ms", ms3(t->connect_ms));
	cJSON_AddNumberToObject(o, "total_ms", ms3(t->total_ms));
	char *text = cJSON_PrintUnformatted(o);
	if (!text)
		abort(); /* cJSON fails only when out of memory */
	return text;
}

int px_audit_record(struct px_audit *a, const struct px_pep_request *req,
                    const struct px_pep_response *resp, const struct px_pep_trace *trace,
                    struct px_err **err)
{
	static const struct px_pep_trace empty;
	_cleanup_free_ char *body = record_body(a, req, resp, trace ? trace : &empty);
	size_t blen = strlen(body); /* "{...}": the fields sit between the braces */

	pthread_mutex_lock(&a->lock);
	struct px_buf line = PX_BUF_INIT;
	px_buf_printf(&line, "{\"seq\":%" PRIu64 ",", a->seq + 1);
	px_buf_append(&line, body + 1, blen - 2, NULL);
	px_buf_printf(&line, ",\"prev_hash\":\"%s\"", a->prev);
	char hash[PX_SHA256_HEX];
	hash_hex(line.data, line.len, hash);
	px_buf_printf(&line, HASH_KEY "%s\"}\n", hash);
	/* One write() to an O_APPEND file: the line lands whole or, on a short write, the
	 * chain stays where it was and the next open refuses the torn tail. */
	ssize_t w = write(a->fd, line.data, line.len);
	int rc = 0;
	if (w == (ssize_t)line.len) {
		a->seq++;
		memcpy(a->prev, hash, PX_SHA256_HEX);
	} else {
		rc = px_err_errno(err, w < 0 ? errno : EIO, "cannot write audit log '%s'", a->path);
	}
	pthread_mutex_unlock(&a->lock);
	px_buf_free(&line);
	return rc;
}

/* Reads one line, newline included, into buf (MAX_LINE + 2 bytes); a longer line is cut
 * at MAX_LINE + 1 bytes, which the caller reports, so a huge line costs no more memory.
 * Returns the length, or -1 at the end of the file. */
static ssize_t read_line(FILE *f, char *buf)
{
	size_t n = 0;
	int ch;
	while (n < MAX_LINE + 1 && (ch = getc_unlocked(f)) != EOF) {
		buf[n++] = (char)ch;
		if (ch == '\n')
			break;
	}
	buf[n] = '\0';
	return n ? (ssize_t)n : -1;
}

int px_audit_verify(const char *path, uint64_t *ret_lines, uint64_t *ret_bad_line,
                    struct px_err **err)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (!f)
		return px_err_errno(err, errno, "cannot open audit log '%s'", path);
	_cleanup_free_ char *line = xmalloc(MAX_LINE + 2);
	char prev[PX_SHA256_HEX];
	memcpy(prev, ZERO_HASH, PX_SHA256_HEX);
	uint64_t n = 0;
	ssize_t len;
	errno = 0;
	while ((len = read_line(f, line)) >= 0) {
		n++;
		const char *why = NULL;
		char claimed_prev[PX_SHA256_HEX], hash[PX_SHA256_HEX];
		uint64_t seq = 0;
		if ((size_t)len > MAX_LINE)
			why = "is too long";
		else if (line[len - 1] != '\n')
			why = "is incomplete (no newline: a torn write or a truncated file)";
		else if (memchr(line, '\0', (size_t)len))
			why = "contains a NUL byte";
		else if (check_line(line, (size_t)len - 1, &seq, claimed_prev, hash, &why) < 0)
			;
		else if (seq != n)
			why = "has the wrong seq (lines were removed, inserted or reordered)";
		else if (strcmp(claimed_prev, prev) != 0)
			why = "does not chain to the line before it (lines were removed or "
			      "replaced)";
		if (why) {
			if (ret_bad_line)
				*ret_bad_line = n;
			return px_err_set(err, PX_EXIT_INPUT, "audit log '%s': line %" PRIu64 " %s",
			                  path, n, why);
		}
		memcpy(prev, hash, PX_SHA256_HEX);
	}
	if (ferror(f))
		return px_err_errno(err, errno, "cannot read audit log '%s'", path);
	*ret_lines = n;
	return 0;
}
