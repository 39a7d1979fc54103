#include <cJSON.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#if defined(__linux__)
#include <sys/prctl.h>
#include <sys/signalfd.h>
#endif

#include "core/common.h"

#include "core/buf.h"
#include "core/file.h"
#include "image/sparse.h"
#include "manifest/manifest.h"
#include "vm/instance.h"
#include "vm/supervisor.h"
#include "vm/vm.h"

#define PEP_LISTEN_TIMEOUT_MS 15000
#define CONSOLE_POLL_MS       250
#define TERM_GRACE_MS         3000
#define PEP_STOP_MS           5000
#define DEFAULT_DOWN_MS       30000
#define MAX_CLIENTS           8
#define TAIL_LINES            25

struct sup {
	const struct px_manifest *m;
	struct px_instance *in;
	struct px_vm *vm;
	struct px_instance_state st;
	char *self; /* the pexi binary, for `pexi pep` */
	int report_fd;
	int ready_fd;
	int sig_fd;
	int ctl_fd;
	int clients[MAX_CLIENTS];
	pid_t pep, vmpid;
	bool pep_exited, vm_exited;
	int pep_status, vm_status;
	bool hello;
	bool down_requested, force;
	int down_timeout_ms;
	bool terminate; /* a signal asked us to stop */
	struct px_buf ready_line;
	off_t console_off;
};

/* Timestamped lines in supervisor.log (the supervisor's stderr). */
__attribute__((format(printf, 2, 3))) static void slog(const struct sup *s, const char *fmt, ...)
{
	(void)s;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char when[32];
	strftime(when, sizeof(when), "%H:%M:%S", &tm);
	va_list ap;
	va_start(ap, fmt);
	_cleanup_free_ char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s.%03ld supervisor: %s\n", when, ts.tv_nsec / 1000000, msg);
	fflush(stderr);
}

static void tell_clients(struct sup *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tell_clients(struct sup *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	_cleanup_free_ char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	slog(s, "%s", msg);
	for (int i = 0; i < MAX_CLIENTS; i++) {
		if (s->clients[i] < 0)
			continue;
		_cleanup_free_ char *line = xasprintf("%s\n", msg);
		if (send(s->clients[i], line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
			close(s->clients[i]);
			s->clients[i] = -1;
		}
	}
}

static void save_state(struct sup *s)
{
	struct px_err *e = NULL;
	if (px_instance_write_state(s->in, &s->st, &e) < 0) {
		slog(s, "cannot write the state: %s", e->msg);
		px_err_free(e);
	}
}

static void set_reason(struct sup *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_reason(struct sup *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	free(s->st.reason);
	s->st.reason = xvasprintf(fmt, ap);
	va_end(ap);
}

/* Describes a wait status for people. */
static char *status_text(int status)
{
	if (WIFSIGNALED(status))
		return xasprintf("killed by signal %d", WTERMSIG(status));
	return xasprintf("exit status %d", WEXITSTATUS(status));
}

/* Forks a child that dies with us: stdin from /dev/null, stdout and stderr to out_fd, and
 * keep_fd (when >= 0) as its fd 3. The parent-death signal is set in the child and checked
 * against getppid, in case we died between fork and prctl. */
static pid_t spawn_child(char *const argv[], int out_fd, int keep_fd, int deathsig)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid != 0)
		return pid;
#if defined(__linux__)
	if (prctl(PR_SET_PDEATHSIG, deathsig) < 0)
		_exit(127);
#else
	(void)deathsig;
#endif
	if (getppid() != parent)
		_exit(127);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	int null = open("/dev/null", O_RDONLY);
	if (null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(out_fd, STDOUT_FILENO) < 0 ||
	    dup2(out_fd, STDERR_FILENO) < 0)
		_exit(127);
	if (keep_fd == 3) {
		fcntl(3, F_SETFD, 0);
	} else if (keep_fd >= 0 && dup2(keep_fd, 3) < 0) {
		_exit(127);
	}
	execvp(argv[0], argv);
	dprintf(STDERR_FILENO, "cannot run '%s': %s\n", argv[0], strerror(errno));
	_exit(127);
}

/* Reaps whichever children have exited. */
static void reap(struct sup *s)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		_cleanup_free_ char *how = status_text(status);
		if (pid == s->pep) {
			s->pep_exited = true;
			s->pep_status = status;
			slog(s, "the PEP (pid %d) exited: %s", (int)pid, how);
		} else if (pid == s->vmpid) {
			s->vm_exited = true;
			s->vm_status = status;
			slog(s, "the hypervisor (pid %d) exited: %s", (int)pid, how);
		}
	}
}

/* Reads a down request ("down [force] [timeout=MS]") from a new control connection. */
static void accept_client(struct sup *s)
{
	int fd = accept4(s->ctl_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	char line[256];
	size_t len = 0;
	int64_t deadline = px_mono_ms() + 2000;
	while (len < sizeof(line) - 1 && !memchr(line, '\n', len)) {
		int64_t left = deadline - px_mono_ms();
		struct pollfd p = {fd, POLLIN, 0};
		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		ssize_t n = read(fd, line + len, sizeof(line) - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	line[len] = '\0';
	if (strncmp(line, "down", 4) != 0) {
		slog(s, "ignored a control request: %.40s", line);
		close(fd);
		return;
	}
	int slot = -1;
	for (int i = 0; i < MAX_CLIENTS && slot < 0; i++)
		if (s->clients[i] < 0)
			slot = i;
	if (slot < 0) {
		close(fd);
		return;
	}
	s->clients[slot] = fd;
	s->down_requested = true;
	if (strstr(line, " force"))
		s->force = true;
	const char *t = strstr(line, " timeout=");
	if (t) {
		long ms = strtol(t + 9, NULL, 10);
		if (ms > 0 && ms < 86400000)
			s->down_timeout_ms = (int)ms;
	}
	slog(s, "down requested%s (timeout %d ms)", s->force ? " with force" : "",
	     s->down_timeout_ms);
}

/* The PEP writes "hello INSTANCE_ID\n" to the ready pipe when the guest says hello. */
static void read_ready(struct sup *s)
{
	char chunk[512];
	ssize_t n = read(s->ready_fd, chunk, sizeof(chunk));
	if (n <= 0) {
		if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
			close(s->ready_fd);
			s->ready_fd = -1;
		}
		return;
	}
	if (px_buf_append(&s->ready_line, chunk, (size_t)n, NULL) < 0) {
		s->ready_line.len = 0;
		return;
	}
	char *nl;
	while (s->ready_line.data && (nl = memchr(s->ready_line.data, '\n', s->ready_line.len))) {
		*nl = '\0';
		const char *line = s->ready_line.data;
		if (strncmp(line, "hello", 5) == 0) {
			const char *id = line + 5;
			while (*id == ' ')
				id++;
			if (!s->hello) {
				free(s->st.instance_id);
				s->st.instance_id = *id ? xstrdup(id) : NULL;
				s->hello = true;
			}
			slog(s, "the guest said hello (instance-id '%s')", id);
		}
		size_t used = (size_t)(nl - s->ready_line.data) + 1;
		memmove(s->ready_line.data, nl + 1, s->ready_line.len - used + 1);
		s->ready_line.len -= used;
	}
}

/* Waits up to timeout_ms (-1: forever) for one round of events and handles them. */
static void wait_events(struct sup *s, int timeout_ms)
{
	struct pollfd p[3] = {
	        {s->sig_fd, POLLIN, 0}, {s->ctl_fd, POLLIN, 0}, {s->ready_fd, POLLIN, 0}};
	int r = poll(p, 3, timeout_ms);
	if (r <= 0)
		return;
#if defined(__linux__)
	if (p[0].revents & POLLIN) {
		struct signalfd_siginfo si;
		while (read(s->sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
			if (si.ssi_signo == SIGCHLD)
				continue;
			slog(s, "signal %u: stopping", si.ssi_signo);
			s->down_requested = true;
			s->terminate = true;
		}
	}
#endif
	reap(s);
	if (p[1].revents & POLLIN)
		accept_client(s);
	if (p[2].revents & (POLLIN | POLLHUP))
		read_ready(s);
}

/* Whether the console shows the readiness marker; scans only what is new. */
static bool console_marker(struct sup *s)
{
	_cleanup_close_ int fd = open(s->in->console_log, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	size_t overlap = strlen(PX_CONSOLE_MARKER);
	off_t from = s->console_off > (off_t)overlap ? s->console_off - (off_t)overlap : 0;
	char buf[65536 + 1];
	for (;;) {
		ssize_t n = pread(fd, buf, sizeof(buf) - 1, from);
		if (n <= 0)
			return false;
		buf[n] = '\0';
		if (memmem(buf, (size_t)n, PX_CONSOLE_MARKER, overlap))
			return true;
		from += n;
		s->console_off = from;
		if ((size_t)n < sizeof(buf) - 1)
			return false;
		from -= (off_t)overlap;
	}
}

static bool child_alive(bool exited, pid_t pid)
{
	return pid > 0 && !exited;
}

/* Waits until the hypervisor has exited, at most ms; returns early on a forced down. */
static bool wait_vm(struct sup *s, int ms, bool stop_on_force)
{
	int64_t deadline = px_mono_ms() + ms;
	while (!s->vm_exited) {
		if (stop_on_force && s->force)
			return false;
		int64_t left = deadline - px_mono_ms();
		if (left <= 0)
			return false;
		wait_events(s, (int)(left < 100 ? left : 100));
	}
	return true;
}

static bool wait_pep(struct sup *s, int ms)
{
	int64_t deadline = px_mono_ms() + ms;
	while (!s->pep_exited) {
		int64_t left = deadline - px_mono_ms();
		if (left <= 0)
			return false;
		wait_events(s, (int)(left < 100 ? left : 100));
	}
	return true;
}

/* Sends sig and waits grace_ms; then SIGKILL and a bounded wait. */
static void stop_vm_hard(struct sup *s)
{
	if (!child_alive(s->vm_exited, s->vmpid))
		return;
	kill(s->vmpid, SIGTERM);
	if (wait_vm(s, TERM_GRACE_MS, false))
		return;
	kill(s->vmpid, SIGKILL);
	wait_vm(s, 10000, false);
}

static void stop_pep(struct sup *s)
{
	if (!child_alive(s->pep_exited, s->pep))
		return;
	/* SIGTERM lets the PEP finish what is in flight and flush its audit log. */
	kill(s->pep, SIGTERM);
	if (wait_pep(s, PEP_STOP_MS))
		return;
	slog(s, "the PEP did not stop within %d ms: killing it", PEP_STOP_MS);
	kill(s->pep, SIGKILL);
	wait_pep(s, 10000);
}

/* The stop ladder. Returns which rung stopped the guest. */
static const char *ladder(struct sup *s)
{
	free(s->st.state);
	s->st.state = xstrdup("stopping");
	save_state(s);
	int total = s->down_timeout_ms > 0 ? s->down_timeout_ms : DEFAULT_DOWN_MS;
	const char *how = "the guest had already stopped";

	if (!s->vm_exited && !s->force && s->hello && child_alive(s->pep_exited, s->pep)) {
		tell_clients(s,
		             "rung guest-poweroff: asking the guest to power off over the channel");
		kill(s->pep, SIGUSR1);
		if (wait_vm(s, total / 2, true))
			how = "the guest powered off when asked over the channel";
	}
	if (!s->vm_exited && !s->force) {
		tell_clients(s, "rung powerdown: asking %s to power the guest off",
		             s->vm->ops->name);
		struct px_err *e = NULL;
		if (s->vm->ops->powerdown(s->vm, s->vmpid, &e) < 0) {
			tell_clients(s, "power button failed: %s", e->msg);
			px_err_free(e);
		} else if (wait_vm(s, s->hello ? total / 2 : total, true)) {
			how = "the guest powered off on the power button";
		}
	}
	if (!s->vm_exited) {
		tell_clients(s, "rung kill: terminating the hypervisor");
		stop_vm_hard(s);
		how = "the hypervisor was killed";
	}
	tell_clients(s, "stopping the PEP");
	stop_pep(s);
	return how;
}

/* The readiness report to `pexi up`: "ok\n", or "error\n" and the message. */
static void report(struct sup *s, bool ok, const char *msg)
{
	if (s->report_fd < 0)
		return;
	_cleanup_free_ char *text = xasprintf("%s\n%s", ok ? "ok" : "error", msg ? msg : "");
	struct px_err *e = NULL;
	if (px_write_all(s->report_fd, text, strlen(text), "the report", &e) < 0)
		px_err_free(e);
	close(s->report_fd);
	s->report_fd = -1;
}

/* The failure message: the reason, then the last lines of the console and, when the
 * hypervisor or PEP complained, of their logs. */
static char *failure_text(struct sup *s, const char *reason, bool with_sup_log, bool with_pep_log)
{
	struct px_buf b = PX_BUF_INIT;
	px_buf_printf(&b, "%s", reason);
	_cleanup_free_ char *con = px_instance_tail(s->in->console_log, TAIL_LINES);
	if (con)
		px_buf_printf(&b, "\nlast lines of the console (%s):\n%s", s->in->console_log, con);
	else
		px_buf_printf(&b, "\nthe console (%s) is empty", s->in->console_log);
	if (with_sup_log) {
		_cleanup_free_ char *t = px_instance_tail(s->in->supervisor_log, 8);
		if (t)
			px_buf_printf(&b, "\nlast lines of %s:\n%s", s->in->supervisor_log, t);
	}
	if (with_pep_log) {
		_cleanup_free_ char *t = px_instance_tail(s->in->pep_log, 8);
		if (t)
			px_buf_printf(&b, "\nlast lines of %s:\n%s", s->in->pep_log, t);
	}
	return px_buf_steal(&b, NULL);
}

/* Tears everything down after a failed start and reports why. */
static int fail_start(struct sup *s, const char *reason, bool sup_log, bool pep_log)
{
	slog(s, "start failed: %s", reason);
	stop_vm_hard(s);
	stop_pep(s);
	_cleanup_free_ char *msg = failure_text(s, reason, sup_log, pep_log);
	free(s->st.state);
	s->st.state = xstrdup("failed");
	set_reason(s, "%s", reason);
	s->st.stopped_ms = px_now_ms();
	save_state(s);
	report(s, false, msg);
	return 1;
}

static int listen_unix(const char *path, int *ret, struct px_err **err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return px_err_set(
		        err, PX_EXIT_FAILURE,
		        "socket path '%s' is too long (a unix socket path has at most %zu "
		        "bytes): move the project to a shorter path",
		        path, sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return px_err_errno(err, errno, "cannot create a socket");
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0)
		return px_err_errno(err, errno, "cannot listen on '%s'", path);
	*ret = steal_fd(&fd);
	return 0;
}

static bool can_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return false;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	return fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
}

static int start_pep(struct sup *s)
{
	const char *prog = getenv("PEXI_PEP_PROGRAM");
	if (!prog || !*prog)
		prog = s->self;
	_cleanup_free_ char *listen = xasprintf("unix:%s", s->in->pep_sock);
	_cleanup_free_ char *vsock = xasprintf("vsock:%" PRIu32, s->m->vm.vsock_port);
	/* With vhost-vsock the guest reaches the PEP on the host's vsock port directly; the
	 * AVF runner bridges vsock to the unix socket itself. */
	bool pep_vsock = s->vm->vsock && s->vm->ops == &px_vm_qemu_ops;
	char *argv[] = {(char *)prog,
	                "pep",
	                "--policy",
	                s->in->policy,
	                "--audit",
	                s->in->audit_log,
	                "--ready-fd",
	                "3",
	                "--instance",
	                s->in->name,
	                "--listen",
	                listen,
	                pep_vsock ? "--listen" : NULL,
	                vsock,
	                NULL};
	int ready[2];
	if (pipe2(ready, O_CLOEXEC) < 0)
		return fail_start(s, "cannot create the PEP's ready pipe", false, false);
	_cleanup_close_ int log =
	        open(s->in->pep_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (log < 0) {
		close(ready[0]);
		close(ready[1]);
		return fail_start(s, "cannot open the PEP's log", false, false);
	}
	s->pep = spawn_child(argv, log, ready[1], SIGTERM);
	close(ready[1]);
	if (s->pep < 0) {
		close(ready[0]);
		return fail_start(s, "cannot fork the PEP", false, false);
	}
	s->ready_fd = ready[0];
	fcntl(s->ready_fd, F_SETFL, O_NONBLOCK);
	slog(s, "started the PEP (pid %d): %s pep --listen %s", (int)s->pep, prog, listen);

	int64_t deadline = px_mono_ms() + PEP_LISTEN_TIMEOUT_MS;
	while (!can_connect(s->in->pep_sock)) {
		if (s->pep_exited) {
			_cleanup_free_ char *how = status_text(s->pep_status);
			_cleanup_free_ char *why =
			        xasprintf("the PEP exited before listening (%s)", how);
			return fail_start(s, why, false, true);
		}
		if (s->down_requested)
			return fail_start(s, "stopped by a down request while starting", false,
			                  false);
		if (px_mono_ms() >= deadline)
			return fail_start(s, "the PEP did not listen on its socket in time", false,
			                  true);
		wait_events(s, 20);
	}
	return 0;
}

static int start_vm(struct sup *s)
{
	_cleanup_close_ int log =
	        open(s->in->supervisor_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (log < 0)
		return fail_start(s, "cannot open the supervisor log", false, false);
	s->vmpid = spawn_child(s->vm->argv, log, -1, SIGKILL);
	if (s->vmpid < 0)
		return fail_start(s, "cannot fork the hypervisor", false, false);
	_cleanup_free_ char *line = NULL;
	struct px_buf b = PX_BUF_INIT;
	for (char **a = s->vm->argv; *a; a++)
		px_buf_printf(&b, "%s%s", a == s->vm->argv ? "" : " ", *a);
	line = px_buf_steal(&b, NULL);
	slog(s, "started the hypervisor (pid %d): %s", (int)s->vmpid, line);
	return 0;
}

/* Waits for the guest's hello (or the console marker) until the deadline. */
static int await_ready(struct sup *s, int timeout_ms)
{
	int64_t deadline = px_mono_ms() + timeout_ms;
	for (;;) {
		if (s->hello) {
			s->st.ready_by = xstrdup("hello");
			return 0;
		}
		if (console_marker(s)) {
			slog(s, "the console shows '%s'", PX_CONSOLE_MARKER);
			s->st.ready_by = xstrdup("console");
			return 0;
		}
		if (s->vm_exited) {
			_cleanup_free_ char *how = status_text(s->vm_status);
			_cleanup_free_ char *why = xasprintf(
			        "the hypervisor exited (%s) before the guest was ready", how);
			return fail_start(s, why, true, false);
		}
		if (s->pep_exited) {
			_cleanup_free_ char *how = status_text(s->pep_status);
			_cleanup_free_ char *why =
			        xasprintf("the PEP exited (%s) before the guest was ready", how);
			return fail_start(s, why, false, true);
		}
		if (s->down_requested) {
			const char *how = ladder(s);
			set_reason(s, "stopped while starting: %s", how);
			free(s->st.state);
			s->st.state = xstrdup("stopped");
			s->st.stopped_ms = px_now_ms();
			save_state(s);
			report(s, false, "stopped by a down request before the guest was ready");
			return 1;
		}
		int64_t left = deadline - px_mono_ms();
		if (left <= 0) {
			_cleanup_free_ char *why =
			        xasprintf("the guest did not say hello within %d s (no hello over "
			                  "the channel "
			                  "and no '%s' on the console)",
			                  (timeout_ms + 999) / 1000, PX_CONSOLE_MARKER);
			return fail_start(s, why, false, false);
		}
		wait_events(s, (int)(left < CONSOLE_POLL_MS ? left : CONSOLE_POLL_MS));
	}
}

static int setup_signals(struct sup *s)
{
#if defined(__linux__)
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	s->sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	signal(SIGPIPE, SIG_IGN);
	return s->sig_fd < 0 ? -1 : 0;
#else
	(void)s;
	return -1;
#endif
}

/* The supervisor's life, in the daemonised grandchild of `pexi up`. Returns its exit
 * status. */
static int supervise(struct sup *s, int timeout_ms)
{
	s->st.supervisor_pid = getpid();
	save_state(s);
	slog(s, "instance '%s' (backend %s, accel %s, channel %s)", s->in->name, s->vm->ops->name,
	     s->vm->accel, s->st.channel);
	if (setup_signals(s) < 0)
		return fail_start(s, "cannot set up signal handling", false, false);
	struct px_err *e = NULL;
	if (listen_unix(s->in->control_sock, &s->ctl_fd, &e) < 0) {
		_cleanup_free_ char *why = xstrdup(e->msg);
		px_err_free(e);
		return fail_start(s, why, false, false);
	}
	if (start_pep(s) != 0 || start_vm(s) != 0)
		return 1;
	s->st.pep_pid = s->pep;
	s->st.vm_pid = s->vmpid;
	save_state(s);

	if (await_ready(s, timeout_ms) != 0)
		return 1;
	free(s->st.state);
	s->st.state = xstrdup("running");
	s->st.ready_ms = px_now_ms();
	save_state(s);
	slog(s, "ready after %.2f s (%s)", (double)(s->st.ready_ms - s->st.started_ms) / 1000,
	     s->st.ready_by);
	report(s, true, NULL);

	for (;;) {
		if (s->down_requested) {
			const char *how = ladder(s);
			set_reason(s, "%s: %s", s->terminate ? "stopped by a signal" : "pexi down",
			           how);
			break;
		}
		if (s->vm_exited) {
			_cleanup_free_ char *st = status_text(s->vm_status);
			set_reason(s, "the hypervisor exited by itself (%s)", st);
			stop_pep(s);
			break;
		}
		if (s->pep_exited) {
			_cleanup_free_ char *st = status_text(s->pep_status);
			set_reason(s,
			           "the PEP exited (%s): the guest was stopped, it had no egress "
			           "left",
			           st);
			s->force = true;
			ladder(s);
			break;
		}
		wait_events(s, -1);
	}
	free(s->st.state);
	s->st.state = xstrdup("stopped");
	s->st.stopped_ms = px_now_ms();
	save_state(s);
	tell_clients(s, "stopped: %s", s->st.reason);
	unlink(s->in->control_sock);
	unlink(s->in->qmp_sock);
	unlink(s->in->pep_sock);
	return 0;
}

/* Daemonises (the caller forked once already and we are in the child): a new session, a
 * second fork so the supervisor can never reacquire a terminal, stdio to the log. */
static void become_supervisor(struct sup *s, int timeout_ms)
{
	if (setsid() < 0)
		_exit(1);
	pid_t pid = fork();
	if (pid < 0)
		_exit(1);
	if (pid > 0)
		_exit(0);
	/* Whatever else `pexi up` inherited (a caller's pipe, say) must not be held open
	 * for the supervisor's whole life: only the lock and the report pipe stay. */
	long maxfd = sysconf(_SC_OPEN_MAX);
	if (maxfd < 0 || maxfd > 65536)
		maxfd = 65536;
	for (int fd = 3; fd < maxfd; fd++)
		if (fd != s->in->lock_fd && fd != s->report_fd)
			close(fd);
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int log = open(s->in->supervisor_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (null < 0 || log < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(log, STDOUT_FILENO) < 0 ||
	    dup2(log, STDERR_FILENO) < 0)
		_exit(1);
	close(null);
	close(log);
	if (chdir("/") < 0)
		_exit(1);
	_exit(supervise(s, timeout_ms));
}

/* The pep section of the manifest as the PEP's policy file: YAML whose strings are JSON
 * strings, which YAML reads as double-quoted scalars with the same escapes. */
static char *policy_text(const struct px_manifest *m)
{
	struct px_buf b = PX_BUF_INIT;
	px_buf_puts(&b, "# written by pexi up from the manifest's pep section\n");
	const struct {
		const char *key;
		const struct px_strv *v;
	} lists[] = {{"allow", &m->pep.allow},
	             {"deny", &m->pep.deny},
	             {"allow_addresses", &m->pep.allow_addresses},
	             {"methods", &m->pep.methods}};
	for (size_t i = 0; i < PX_ARRAY_SIZE(lists); i++) {
		if (lists[i].v->n == 0)
			continue;
		px_buf_printf(&b, "%s:\n", lists[i].key);
		for (size_t j = 0; j < lists[i].v->n; j++) {
			cJSON *str = cJSON_CreateString(lists[i].v->v[j]);
			char *q = cJSON_PrintUnformatted(str);
			px_buf_printf(&b, "  - %s\n", q);
			cJSON_free(q);
			cJSON_Delete(str);
		}
	}
	px_buf_printf(&b, "max_request_bytes: %" PRIu64 "\n", m->pep.max_request_bytes);
	px_buf_printf(&b, "max_response_bytes: %" PRIu64 "\n", m->pep.max_response_bytes);
	px_buf_printf(&b, "timeouts:\n  connect: %" PRIu32 "ms\n  total: %" PRIu32 "ms\n",
	              m->pep.connect_timeout_ms, m->pep.total_timeout_ms);
	px_buf_printf(&b, "mode: %s\n", m->pep.mode == PX_PEP_REPORT ? "report" : "enforce");
	return px_buf_steal(&b, NULL);
}

static char *self_exe(void)
{
#if defined(__linux__)
	char buf[4096];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
	if (n > 0) {
		buf[n] = '\0';
		return xstrdup(buf);
	}
#endif
	return xstrdup("pexi");
}

/* The manifest's absolute path, for state.json (m->path is as the user typed it). */
static char *manifest_path(const struct px_manifest *m)
{
	if (!m->path)
		return NULL;
	if (m->path[0] == '/')
		return xstrdup(m->path);
	const char *base = strrchr(m->path, '/');
	return xasprintf("%s/%s", m->dir, base ? base + 1 : m->path);
}

static bool is_file(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Reads the supervisor's report until it closes the pipe. */
static int read_report(int fd, char **ret)
{
	struct px_buf b = PX_BUF_INIT;
	b.max = 1u << 20;
	for (;;) {
		char chunk[4096];
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (px_buf_append(&b, chunk, (size_t)n, NULL) < 0)
			break;
	}
	*ret = px_buf_steal(&b, NULL);
	return 0;
}

int px_supervisor_up(const struct px_manifest *m, const struct px_up_opts *o,
                     struct px_instance_state *ret, struct px_err **err)
{
	const struct px_vm_ops *ops;
	if (px_vm_select(m, &ops, err) < 0)
		return -1;
	const char *bdir = m->build.dir ? m->build.dir : ".pexi/build";
	_cleanup_free_ char *build_dir =
	        bdir[0] == '/' ? xstrdup(bdir) : xasprintf("%s/%s", m->dir, bdir);
	_cleanup_free_ char *disk = xasprintf("%s/disk.raw", build_dir);
	_cleanup_free_ char *seed = xasprintf("%s/seed.iso", build_dir);
	if (!is_file(disk) || !is_file(seed))
		return px_err_set(err, PX_EXIT_FAILURE,
		                  "no built image in '%s' (run 'pexi build' first)", build_dir);

	const char *name = o->name ? o->name : m->name;
	struct px_instance *in = px_instance_for_manifest(m, name);
	struct px_vm vm = {0};
	struct sup s = {.m = m,
	                .in = in,
	                .vm = &vm,
	                .report_fd = -1,
	                .ready_fd = -1,
	                .sig_fd = -1,
	                .ctl_fd = -1};
	for (int i = 0; i < MAX_CLIENTS; i++)
		s.clients[i] = -1;
	int rc = -1;
	bool stale = false;
	_cleanup_free_ char *policy = NULL;
	_cleanup_free_ char *msg = NULL;
	if (px_instance_lock(in, &stale, err) < 0)
		goto out;
	if (stale && o->notice) {
		_cleanup_free_ char *note = xasprintf(
		        "instance '%s' had crashed (its lock was free but its state said it was "
		        "alive): cleaned up its leftovers",
		        name);
		o->notice(note);
	}
	if (px_sparse_copy(disk, in->disk, err) < 0) {
		px_err_wrap(err, "copying the disk for instance '%s'", name);
		goto out;
	}
	policy = policy_text(m);
	if (px_atomic_write_file(in->policy, policy, strlen(policy), 0644, err) < 0)
		goto out;
	if (px_vm_prepare(&vm, ops, m, in, in->disk, seed, err) < 0)
		goto out;
	if (vm.warning && o->notice)
		o->notice(vm.warning);
	const char *logs[] = {in->console_log, in->pep_log, in->supervisor_log,
	                      in->audit_log_kept ? NULL : in->audit_log};
	if (in->audit_log_kept) {
		_cleanup_free_ char *dir = xstrdup(in->audit_log);
		*strrchr(dir, '/') = '\0';
		if (px_mkdir_p(dir, 0755, err) < 0) {
			px_err_wrap(err, "pep.audit_log '%s'", in->audit_log);
			goto out;
		}
	}
	for (size_t i = 0; i < PX_ARRAY_SIZE(logs) && logs[i]; i++) {
		int fd = open(logs[i], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0) {
			px_err_errno(err, errno, "cannot create '%s'", logs[i]);
			goto out;
		}
		close(fd);
	}

	s.self = self_exe();
	s.st = (struct px_instance_state){
	        .state = xstrdup("starting"),
	        .name = xstrdup(name),
	        .backend = xstrdup(ops->name),
	        .accel = xstrdup(vm.accel),
	        .channel = xstrdup(vm.vsock ? "vsock" : "virtio-serial"),
	        .manifest = manifest_path(m),
	        .started_ms = px_now_ms(),
	};
	s.down_timeout_ms = DEFAULT_DOWN_MS;
	if (px_instance_write_state(in, &s.st, err) < 0)
		goto out;

	int report[2];
	if (pipe2(report, O_CLOEXEC) < 0) {
		px_err_errno(err, errno, "cannot create a pipe");
		goto out;
	}
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) {
		px_err_errno(err, errno, "cannot fork the supervisor");
		close(report[0]);
		close(report[1]);
		goto out;
	}
	if (pid == 0) {
		close(report[0]);
		s.report_fd = report[1];
		become_supervisor(&s, o->ready_timeout_ms > 0 ? o->ready_timeout_ms : 300000);
	}
	close(report[1]);
	/* The supervisor holds the lock now (the same open file description); ours goes. */
	close(in->lock_fd);
	in->lock_fd = -1;
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	read_report(report[0], &msg);
	close(report[0]);

	if (strncmp(msg, "ok\n", 3) == 0) {
		rc = px_instance_read_state(in, ret, err);
	} else if (strncmp(msg, "error\n", 6) == 0) {
		rc = px_err_set(err, PX_EXIT_FAILURE, "instance '%s' did not start: %s", name,
		                msg + 6);
	} else {
		_cleanup_free_ char *tail = px_instance_tail(in->supervisor_log, 10);
		rc = px_err_set(err, PX_EXIT_FAILURE,
		                "the supervisor of instance '%s' died before reporting%s%s", name,
		                tail ? "; last lines of supervisor.log:\n" : "", tail ? tail : "");
	}
out:
	px_instance_state_clear(&s.st);
	free(s.self);
	px_vm_free(&vm);
	px_instance_free(in);
	return rc;
}

/* Sends the down request over control.sock and relays the supervisor's progress until it
 * closes the connection (it exits) or the deadline passes. */
static int request_down(const struct px_instance *in, const struct px_down_opts *o,
                        int64_t deadline, struct px_err **err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(in->control_sock) >= sizeof(sa.sun_path))
		return px_err_set(err, PX_EXIT_FAILURE, "socket path '%s' is too long",
		                  in->control_sock);
	memcpy(sa.sun_path, in->control_sock, strlen(in->control_sock) + 1);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return px_err_errno(err, errno, "cannot create a socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return px_err_errno(err, errno, "cannot connect to '%s'", in->control_sock);
	_cleanup_free_ char *req =
	        xasprintf("down%s timeout=%d\n", o->force ? " force" : "", o->timeout_ms);
	if (px_write_all(fd, req, strlen(req), "the down request", err) < 0)
		return -1;
	struct px_buf line = PX_BUF_INIT;
	line.max = 1u << 16;
	for (;;) {
		int64_t left = deadline - px_mono_ms();
		if (left <= 0)
			break;
		struct pollfd p = {fd, POLLIN, 0};
		int r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		char chunk[1024];
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (px_buf_append(&line, chunk, (size_t)n, NULL) < 0)
			line.len = 0;
		char *nl;
		while (line.data && (nl = memchr(line.data, '\n', line.len))) {
			*nl = '\0';
			if (o->progress)
				o->progress(line.data);
			size_t used = (size_t)(nl - line.data) + 1;
			memmove(line.data, nl + 1, line.len - used + 1);
			line.len -= used;
		}
	}
	px_buf_free(&line);
	return 0;
}

int px_supervisor_down(const struct px_instance *in, const struct px_down_opts *o,
                       bool *ret_was_running, struct px_err **err)
{
	if (!px_instance_locked(in)) {
		*ret_was_running = false;
		return 0;
	}
	*ret_was_running = true;
	int timeout = o->timeout_ms > 0 ? o->timeout_ms : DEFAULT_DOWN_MS;
	/* The gentle rungs take up to 'timeout'; killing and reaping need a little more. */
	int64_t deadline = px_mono_ms() + timeout + TERM_GRACE_MS + PEP_STOP_MS + 5000;
	struct px_err *e = NULL;
	if (request_down(in, o, deadline, &e) < 0) {
		/* No control socket yet (the supervisor is still starting): the signal does the
		 * same, with the default timeout. The pid is the lock holder's own record. */
		struct px_instance_state st = {0};
		struct px_err *e2 = NULL;
		if (px_instance_read_state(in, &st, &e2) < 0 || st.supervisor_pid <= 0) {
			px_err_free(e2);
			px_instance_state_clear(&st);
			int rc = px_err_set(err, PX_EXIT_FAILURE,
			                    "cannot reach the supervisor of instance '%s': %s",
			                    in->name, e->msg);
			px_err_free(e);
			return rc;
		}
		px_err_free(e);
		if (px_instance_locked(in))
			kill(st.supervisor_pid, SIGTERM);
		px_instance_state_clear(&st);
	}
	int64_t left = deadline - px_mono_ms();
	return px_instance_wait_unlocked(in, left > 0 ? (int)left : 0, err);
}
