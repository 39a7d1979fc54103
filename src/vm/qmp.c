#include <cJSON.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "core/common.h"

#include "core/buf.h"
#include "vm/instance.h"
#include "vm/qmp.h"

#define QMP_LINE_MAX (1u << 20)

struct qmp {
	int fd;
	int64_t deadline;
	struct px_buf in;
	const char *path;
};

/* Reads one line (QMP ends each message with CRLF) into a fresh string. */
static int read_line(struct qmp *q, char **ret, struct px_err **err)
{
	for (;;) {
		char *nl = q->in.data ? memchr(q->in.data, '\n', q->in.len) : NULL;
		if (nl) {
			size_t n = (size_t)(nl - q->in.data) + 1;
			*ret = xstrndup(q->in.data, n);
			memmove(q->in.data, q->in.data + n, q->in.len - n + 1);
			q->in.len -= n;
			return 0;
		}
		int64_t left = q->deadline - px_mono_ms();
		if (left <= 0)
			return px_err_set(err, PX_EXIT_FAILURE, "QMP '%s': no answer in time",
			                  q->path);
		struct pollfd p = {q->fd, POLLIN, 0};
		int r = poll(&p, 1, (int)left);
		if (r < 0 && errno != EINTR)
			return px_err_errno(err, errno, "QMP '%s': poll", q->path);
		if (r <= 0)
			continue;
		char chunk[4096];
		ssize_t n = read(q->fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return px_err_errno(err, errno, "QMP '%s': read", q->path);
		if (n == 0)
			return px_err_set(err, PX_EXIT_FAILURE,
			                  "QMP '%s': QEMU closed the connection", q->path);
		if (px_buf_append(&q->in, chunk, (size_t)n, err) < 0)
			return px_err_wrap(err, "QMP '%s'", q->path);
	}
}

/* Sends {"execute": command} and waits for its return, skipping asynchronous events. */
static int execute(struct qmp *q, const char *command, char **ret_json, struct px_err **err)
{
	_cleanup_free_ char *msg = xasprintf("{\"execute\": \"%s\"}\r\n", command);
	size_t len = strlen(msg), off = 0;
	while (off < len) {
		ssize_t n = send(q->fd, msg + off, len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return px_err_errno(err, errno, "QMP '%s': send", q->path);
		off += (size_t)n;
	}
	for (;;) {
		_cleanup_free_ char *line = NULL;
		if (read_line(q, &line, err) < 0)
			return px_err_wrap(err, "'%s'", command);
		cJSON *o = cJSON_Parse(line);
		if (!cJSON_IsObject(o)) {
			cJSON_Delete(o);
			return px_err_set(err, PX_EXIT_FAILURE, "QMP '%s': not JSON: %.80s",
			                  q->path, line);
		}
		const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "return");
		if (r) {
			if (ret_json) {
				char *text = cJSON_PrintUnformatted(r);
				*ret_json = xstrdup(text ? text : "null");
				cJSON_free(text);
			}
			cJSON_Delete(o);
			return 0;
		}
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");
		if (e) {
			const cJSON *desc = cJSON_GetObjectItemCaseSensitive(e, "desc");
			int rc = px_err_set(err, PX_EXIT_FAILURE, "QMP '%s': %s failed: %s",
			                    q->path, command,
			                    cJSON_IsString(desc) ? desc->valuestring : "error");
			cJSON_Delete(o);
			return rc;
		}
		cJSON_Delete(o); /* an event: keep waiting for the return */
	}
}

int px_qmp_command(const char *path, const char *command, int timeout_ms, char **ret_json,
                   struct px_err **err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return px_err_set(err, PX_EXIT_FAILURE, "QMP socket path '%s' is too long", path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return px_err_errno(err, errno, "cannot create a socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return px_err_errno(err, errno, "cannot connect to QMP '%s'", path);

	struct qmp q = {.fd = fd, .deadline = px_mono_ms() + timeout_ms, .path = path};
	q.in.max = QMP_LINE_MAX;
	_cleanup_free_ char *greeting = NULL;
	int rc = read_line(&q, &greeting, err);
	if (rc == 0 && (!greeting || !strstr(greeting, "\"QMP\"")))
		rc = px_err_set(err, PX_EXIT_FAILURE, "QMP '%s': unexpected greeting", path);
	if (rc == 0)
		rc = execute(&q, "qmp_capabilities", NULL, err);
	if (rc == 0)
		rc = execute(&q, command, ret_json, err);
	px_buf_free(&q.in);
	return rc;
}
