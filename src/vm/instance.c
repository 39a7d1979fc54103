#include <cJSON.h>
#include <poll.h>
#include <sys/file.h>
#include <time.h>

#include "core/common.h"

#include "core/file.h"
#include "manifest/manifest.h"
#include "vm/instance.h"

#define STATE_MAX (1u << 20)

struct px_instance *px_instance_new(const char *base, const char *name)
{
	struct px_instance *in = xcalloc(1, sizeof(*in));
	in->name = xstrdup(name);
	in->dir = xasprintf("%s/.pexi/instances/%s", base, name);
	in->lock_path = xasprintf("%s/lock", in->dir);
	in->state_path = xasprintf("%s/state.json", in->dir);
	in->console_log = xasprintf("%s/console.log", in->dir);
	in->pep_log = xasprintf("%s/pep.log", in->dir);
	in->audit_log = xasprintf("%s/audit.jsonl", in->dir);
	in->supervisor_log = xasprintf("%s/supervisor.log", in->dir);
	in->pep_sock = xasprintf("%s/pep.sock", in->dir);
	in->qmp_sock = xasprintf("%s/qmp.sock", in->dir);
	in->control_sock = xasprintf("%s/control.sock", in->dir);
	in->browser_sock = xasprintf("%s/browser.sock", in->dir);
	in->policy = xasprintf("%s/policy.yml", in->dir);
	in->disk = xasprintf("%s/disk.raw", in->dir);
	in->efi_vars = xasprintf("%s/efi-vars.fd", in->dir);
	in->machine_id = xasprintf("%s/machine-id", in->dir);
	in->lock_fd = -1;
	return in;
}

void px_instance_free(struct px_instance *in)
{
	if (!in)
		return;
	if (in->lock_fd >= 0)
		close(in->lock_fd);
	char **strs[] = {&in->name,        &in->dir,      &in->lock_path,    &in->state_path,
	                 &in->console_log, &in->pep_log,  &in->audit_log,    &in->supervisor_log,
	                 &in->pep_sock,    &in->qmp_sock, &in->control_sock, &in->browser_sock,
	                 &in->policy,      &in->disk,     &in->efi_vars,     &in->machine_id};
	for (size_t i = 0; i < PX_ARRAY_SIZE(strs); i++)
		free(*strs[i]);
	free(in);
}

struct px_instance *px_instance_for_manifest(const struct px_manifest *m, const char *name)
{
	struct px_instance *in = px_instance_new(m->dir, name ? name : m->name);
	if (m->pep.audit_log) {
		free(in->audit_log);
		in->audit_log = m->pep.audit_log[0] == '/'
		                        ? xstrdup(m->pep.audit_log)
		                        : xasprintf("%s/%s", m->dir, m->pep.audit_log);
		in->audit_log_kept = true;
	}
	return in;
}

int px_instance_from_manifest(const char *manifest_path, const char *name,
                              struct px_manifest **ret_m, struct px_instance **ret,
                              struct px_err **err)
{
	struct px_manifest *m = NULL;
	if (px_manifest_load(manifest_path, &m, err) < 0)
		return -1;
	*ret = px_instance_for_manifest(m, name);
	if (ret_m)
		*ret_m = m;
	else
		px_manifest_free(m);
	return 0;
}

/* Removes what one run leaves behind; the firmware state and the lock file stay. */
static void remove_run_files(const struct px_instance *in)
{
	const char *files[] = {in->state_path,     in->console_log, in->pep_log,  in->audit_log,
	                       in->supervisor_log, in->pep_sock,    in->qmp_sock, in->control_sock,
	                       in->browser_sock,   in->policy,      in->disk};
	for (size_t i = 0; i < PX_ARRAY_SIZE(files); i++)
		if (files[i] != in->audit_log || !in->audit_log_kept)
			unlink(files[i]);
}

int px_instance_lock(struct px_instance *in, bool *ret_stale, struct px_err **err)
{
	if (px_mkdir_p(in->dir, 0755, err) < 0)
		return px_err_wrap(err, "instance '%s'", in->name);
	_cleanup_close_ int fd = open(in->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return px_err_errno(err, errno, "cannot open '%s'", in->lock_path);
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			return px_err_set(err, PX_EXIT_FAILURE,
			                  "instance '%s' is already running (see 'pexi status')",
			                  in->name);
		return px_err_errno(err, errno, "cannot lock '%s'", in->lock_path);
	}

	/* Nobody holds the lock, so any state that says the instance is alive is a
	 * crashed run's: its supervisor died without writing "stopped". */
	bool stale = false;
	struct px_instance_state st = {0};
	struct px_err *e = NULL;
	if (px_instance_read_state(in, &st, &e) == 0)
		stale = !px_streq(st.state, "stopped") && !px_streq(st.state, "failed");
	px_err_free(e);
	px_instance_state_clear(&st);
	remove_run_files(in);

	in->lock_fd = steal_fd(&fd);
	if (ret_stale)
		*ret_stale = stale;
	return 0;
}

bool px_instance_locked(const struct px_instance *in)
{
	_cleanup_close_ int fd = open(in->lock_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	/* A shared lock conflicts only with the supervisor's exclusive one. Being a fresh
	 * open file description, it conflicts even with a lock this process holds. */
	if (flock(fd, LOCK_SH | LOCK_NB) < 0)
		return errno == EWOULDBLOCK;
	flock(fd, LOCK_UN);
	return false;
}

int px_instance_wait_unlocked(const struct px_instance *in, int timeout_ms, struct px_err **err)
{
	int64_t deadline = px_mono_ms() + timeout_ms;
	while (px_instance_locked(in)) {
		if (px_mono_ms() >= deadline)
			return px_err_set(err, PX_EXIT_FAILURE,
			                  "instance '%s' still holds its lock after %d ms",
			                  in->name, timeout_ms);
		poll(NULL, 0, 20);
	}
	return 0;
}

static void add_str(cJSON *o, const char *key, const char *v)
{
	if (v)
		cJSON_AddStringToObject(o, key, v);
	else
		cJSON_AddNullToObject(o, key);
}

static void add_int(cJSON *o, const char *key, int64_t v)
{
	if (v > 0)
		cJSON_AddNumberToObject(o, key, (double)v);
	else
		cJSON_AddNullToObject(o, key);
}

char *px_instance_state_json(const struct px_instance_state *st)
{
	cJSON *o = cJSON_CreateObject();
	add_str(o, "name", st->name);
	add_str(o, "state", st->state);
	add_str(o, "backend", st->backend);
	add_str(o, "accel", st->accel);
	add_str(o, "channel", st->channel);
	add_str(o, "manifest", st->manifest);
	add_str(o, "instance_id", st->instance_id);
	add_str(o, "ready_by", st->ready_by);
	add_str(o, "reason", st->reason);
	add_int(o, "supervisor_pid", st->supervisor_pid);
	add_int(o, "pep_pid", st->pep_pid);
	add_int(o, "vm_pid", st->vm_pid);
	add_int(o, "started_ms", st->started_ms);
	add_int(o, "ready_ms", st->ready_ms);
	add_int(o, "stopped_ms", st->stopped_ms);
	char *text = cJSON_Print(o);
	cJSON_Delete(o);
	if (!text)
		abort();
	char *out = xasprintf("%s\n", text);
	cJSON_free(text);
	return out;
}

int px_instance_write_state(const struct px_instance *in, const struct px_instance_state *st,
                            struct px_err **err)
{
	_cleanup_free_ char *text = px_instance_state_json(st);
	return px_atomic_write_file(in->state_path, text, strlen(text), 0644, err);
}

static char *get_str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? xstrdup(v->valuestring) : NULL;
}

static int64_t get_int(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsNumber(v) && v->valuedouble > 0 ? (int64_t)v->valuedouble : 0;
}

int px_instance_read_state(const struct px_instance *in, struct px_instance_state *ret,
                           struct px_err **err)
{
	_cleanup_free_ char *text = NULL;
	size_t len;
	if (px_file_read(in->state_path, STATE_MAX, &text, &len, err) < 0)
		return -1;
	cJSON *o = cJSON_ParseWithLength(text, len);
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		return px_err_set(err, PX_EXIT_INPUT, "'%s' is not a JSON object", in->state_path);
	}
	struct px_instance_state st = {
	        .state = get_str(o, "state"),
	        .name = get_str(o, "name"),
	        .backend = get_str(o, "backend"),
	        .accel = get_str(o, "accel"),
	        .channel = get_str(o, "channel"),
	        .manifest = get_str(o, "manifest"),
	        .instance_id = get_str(o, "instance_id"),
	        .ready_by = get_str(o, "ready_by"),
	        .reason = get_str(o, "reason"),
	        .supervisor_pid = (pid_t)get_int(o, "supervisor_pid"),
	        .pep_pid = (pid_t)get_int(o, "pep_pid"),
	        .vm_pid = (pid_t)get_int(o, "vm_pid"),
	        .started_ms = get_int(o, "started_ms"),
	        .ready_ms = get_int(o, "ready_ms"),
	        .stopped_ms = get_int(o, "stopped_ms"),
	};
	cJSON_Delete(o);
	*ret = st;
	return 0;
}

void px_instance_state_clear(struct px_instance_state *st)
{
	char **strs[] = {&st->state,    &st->name,        &st->backend,  &st->accel, &st->channel,
	                 &st->manifest, &st->instance_id, &st->ready_by, &st->reason};
	for (size_t i = 0; i < PX_ARRAY_SIZE(strs); i++) {
		free(*strs[i]);
		*strs[i] = NULL;
	}
}

char *px_instance_tail(const char *path, int lines)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	off_t size = lseek(fd, 0, SEEK_END);
	if (size <= 0)
		return NULL;
	off_t from = size > 65536 ? size - 65536 : 0;
	size_t want = (size_t)(size - from);
	char *buf = xmalloc(want + 1);
	ssize_t n = pread(fd, buf, want, from);
	if (n <= 0) {
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	/* Terminal control bytes from firmware would garble the message: keep text only. */
	for (ssize_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)buf[i];
		if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f)
			buf[i] = c == '\r' ? '\n' : ' ';
	}
	size_t end = (size_t)n;
	while (end > 0 && (buf[end - 1] == '\n' || buf[end - 1] == ' '))
		end--;
	buf[end] = '\0';
	if (end == 0) {
		free(buf);
		return NULL;
	}
	size_t start = end;
	int seen = 0;
	while (start > 0) {
		if (buf[start - 1] == '\n' && ++seen == lines)
			break;
		start--;
	}
	char *out = xstrdup(buf + start);
	free(buf);
	return out;
}
