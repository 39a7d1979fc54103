#include <cjson/cJSON.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "core/common.h"

#include "browse/agent.h"
#include "core/buf.h"
#include "core/clock.h"
#include "pep/frame.h"

struct px_agent {
	int fd;
	int timeout_ms;
	char *path;
	struct px_buf in; /* bytes after the last answer line */
};

PX_DEFINE_CLEANUP(cJSON *, cJSON_Delete)

int px_agent_connect(const char *path, int timeout_ms, struct px_agent **ret, struct px_err **err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return px_err_set(err, PX_EXIT_FAILURE, "socket path '%s' is too long", path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return px_err_errno(err, errno, "cannot create a socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return px_err_errno(err, errno,
		                    "cannot reach the browser agent at '%s' (is the instance up "
		                    "with the alpine-firefox recipe?)",
		                    path);
	struct px_agent *a = xcalloc(1, sizeof(*a));
	a->fd = steal_fd(&fd);
	a->timeout_ms = timeout_ms;
	a->path = xstrdup(path);
	a->in.max = PX_AGENT_MAX_LINE;
	*ret = a;
	return 0;
}

void px_agent_close(struct px_agent *a)
{
	if (!a)
		return;
	if (a->fd >= 0)
		close(a->fd);
	free(a->path);
	px_buf_free(&a->in);
	free(a);
}

static int send_all(struct px_agent *a, const char *p, size_t n, struct px_err **err)
{
	while (n) {
		ssize_t w = send(a->fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return px_err_errno(err, errno, "cannot write to the browser agent at '%s'",
			                    a->path);
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads one answer line (without its newline) within the deadline. */
static int read_line(struct px_agent *a, char **ret, struct px_err **err)
{
	int64_t deadline = px_mono_ms() + a->timeout_ms;
	for (;;) {
		char *nl = a->in.len ? memchr(a->in.data, '\n', a->in.len) : NULL;
		if (nl) {
			size_t n = (size_t)(nl - a->in.data);
			*ret = xstrndup(a->in.data, n);
			memmove(a->in.data, nl + 1, a->in.len - n - 1);
			a->in.len -= n + 1;
			a->in.data[a->in.len] = '\0';
			return 0;
		}
		int64_t left = deadline - px_mono_ms();
		if (left <= 0)
			return px_err_set(err, PX_EXIT_FAILURE,
			                  "the browser agent did not answer within %d s",
			                  a->timeout_ms / 1000);
		struct pollfd p = {.fd = a->fd, .events = POLLIN};
		int r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return px_err_errno(err, errno, "cannot wait for the browser agent");
		if (r == 0)
			continue;
		char chunk[65536];
		ssize_t got = read(a->fd, chunk, sizeof(chunk));
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return px_err_errno(err, errno, "cannot read from the browser agent");
		if (got == 0)
			return px_err_set(err, PX_EXIT_FAILURE,
			                  "the browser agent closed the connection");
		if (px_buf_append(&a->in, chunk, (size_t)got, err) < 0)
			return px_err_wrap(err, "the browser agent's answer is too long");
	}
}

/* Sends one command and returns its answer, which said ok: true. */
static int command(struct px_agent *a, cJSON *cmd, cJSON **ret, struct px_err **err)
{
	_cleanup_free_ char *text = cJSON_PrintUnformatted(cmd);
	if (!text)
		return px_err_set(err, PX_EXIT_FAILURE, "out of memory encoding a command");
	_cleanup_free_ char *line = xasprintf("%s\n", text);
	_cleanup_free_ char *answer = NULL;
	if (send_all(a, line, strlen(line), err) < 0 || read_line(a, &answer, err) < 0)
		return -1;
	cJSON *o = cJSON_Parse(answer);
	if (!o || !cJSON_IsObject(o)) {
		cJSON_Delete(o);
		return px_err_set(err, PX_EXIT_INPUT,
		                  "the browser agent answered something not JSON");
	}
	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "ok"))) {
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");
		px_err_set(err, PX_EXIT_FAILURE, "the browser agent refused: %s",
		           cJSON_IsString(e) ? e->valuestring : "no reason given");
		cJSON_Delete(o);
		return -1;
	}
	*ret = o;
	return 0;
}

/* The answer's string member 'key', copied. */
static int answer_string(const cJSON *o, const char *key, char **ret, struct px_err **err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!cJSON_IsString(v))
		return px_err_set(err, PX_EXIT_INPUT, "the browser agent's answer lacks '%s'", key);
	*ret = xstrdup(v->valuestring);
	return 0;
}

int px_agent_navigate(struct px_agent *a, const char *url, char **ret_url, struct px_err **err)
{
	_cleanup_(cJSON_Deletep) cJSON *cmd = cJSON_CreateObject();
	_cleanup_(cJSON_Deletep) cJSON *o = NULL;
	cJSON_AddStringToObject(cmd, "cmd", "navigate");
	cJSON_AddStringToObject(cmd, "url", url);
	if (command(a, cmd, &o, err) < 0)
		return px_err_wrap(err, "cannot open '%s' in the sandboxed browser", url);
	return answer_string(o, "url", ret_url, err);
}

int px_agent_text(struct px_agent *a, char **ret_text, struct px_err **err)
{
	_cleanup_(cJSON_Deletep) cJSON *cmd = cJSON_CreateObject();
	_cleanup_(cJSON_Deletep) cJSON *o = NULL;
	cJSON_AddStringToObject(cmd, "cmd", "text");
	if (command(a, cmd, &o, err) < 0)
		return px_err_wrap(err, "cannot read the page text");
	return answer_string(o, "text", ret_text, err);
}

int px_agent_screenshot(struct px_agent *a, unsigned char **ret_png, size_t *ret_len,
                        struct px_err **err)
{
	_cleanup_(cJSON_Deletep) cJSON *cmd = cJSON_CreateObject();
	_cleanup_(cJSON_Deletep) cJSON *o = NULL;
	cJSON_AddStringToObject(cmd, "cmd", "screenshot");
	if (command(a, cmd, &o, err) < 0)
		return px_err_wrap(err, "cannot take a screenshot");
	const cJSON *b64 = cJSON_GetObjectItemCaseSensitive(o, "png_base64");
	if (!cJSON_IsString(b64))
		return px_err_set(err, PX_EXIT_INPUT,
		                  "the browser agent's answer lacks 'png_base64'");
	unsigned char *png = NULL;
	size_t len = 0;
	if (px_base64_decode(b64->valuestring, strlen(b64->valuestring), PX_AGENT_MAX_LINE, &png,
	                     &len, err) < 0)
		return px_err_wrap(err, "the browser agent's screenshot is not base64");
	static const unsigned char magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
	if (len < sizeof(magic) || memcmp(png, magic, sizeof(magic)) != 0) {
		free(png);
		return px_err_set(err, PX_EXIT_INPUT,
		                  "the browser agent's screenshot is not a PNG");
	}
	*ret_png = png;
	*ret_len = len;
	return 0;
}
