#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include "spawn.h"

#include "buf.h"
#include "common.h"

extern char **environ;

#define ERR_TAIL_MAX (64u << 10)

/* Keeps only the last ERR_TAIL_MAX bytes of a program's stderr: the end holds the reason. */
static void append_tail(struct px_buf *b, const char *p, size_t n)
{
	px_buf_append(b, p, n, NULL);
	if (b->len > ERR_TAIL_MAX) {
		size_t drop = b->len - ERR_TAIL_MAX;
		memmove(b->data, b->data + drop, b->len - drop + 1);
		b->len -= drop;
	}
}

int px_spawn(const char *const argv[], int capture_stdout, struct px_spawn_result *ret,
             struct px_err **err)
{
	return px_spawn_stdin(argv, NULL, capture_stdout, ret, err);
}

int px_spawn_stdin(const char *const argv[], const char *stdin_path, int capture_stdout,
                   struct px_spawn_result *ret, struct px_err **err)
{
	int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
	if (pipe2(err_pipe, O_CLOEXEC) < 0)
		return px_err_errno(err, errno, "cannot create a pipe for '%s'", argv[0]);
	if (capture_stdout && pipe2(out_pipe, O_CLOEXEC) < 0) {
		int e = errno;
		close(err_pipe[0]);
		close(err_pipe[1]);
		return px_err_errno(err, e, "cannot create a pipe for '%s'", argv[0]);
	}

	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, stdin_path ? stdin_path : "/dev/null",
	                                 O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, capture_stdout ? out_pipe[1] : STDERR_FILENO,
	                                 STDOUT_FILENO);
	posix_spawn_file_actions_adddup2(&fa, err_pipe[1], STDERR_FILENO);

	pid_t pid;
	int rc = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(err_pipe[1]);
	if (capture_stdout)
		close(out_pipe[1]);
	if (rc != 0) {
		close(err_pipe[0]);
		if (capture_stdout)
			close(out_pipe[0]);
		return px_err_errno(err, rc, "cannot run '%s'", argv[0]);
	}

	_cleanup_buf_ struct px_buf out = PX_BUF_INIT;
	_cleanup_buf_ struct px_buf errout = PX_BUF_INIT;
	out.max = PX_SPAWN_OUT_MAX;
	struct pollfd fds[2] = {{err_pipe[0], POLLIN, 0}, {out_pipe[0], POLLIN, 0}};
	int open_fds = capture_stdout ? 2 : 1;
	int overflow = 0, poll_errno = 0;
	while (open_fds > 0) {
		if (poll(fds, capture_stdout ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			poll_errno = errno;
			break;
		}
		for (int i = 0; i < (capture_stdout ? 2 : 1); i++) {
			if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			char chunk[16384];
			ssize_t n = read(fds[i].fd, chunk, sizeof(chunk));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				close(fds[i].fd);
				fds[i].fd = -1;
				open_fds--;
				continue;
			}
			if (i == 0)
				append_tail(&errout, chunk, (size_t)n);
			else if (px_buf_append(&out, chunk, (size_t)n, NULL) < 0)
				overflow = 1;
		}
	}
	for (int i = 0; i < 2; i++)
		if (fds[i].fd >= 0)
			close(fds[i].fd);

	int status;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return px_err_errno(err, errno, "cannot wait for '%s'", argv[0]);
	}
	if (poll_errno)
		return px_err_errno(err, poll_errno, "cannot read the output of '%s'", argv[0]);
	if (overflow)
		return px_err_set(err, PX_EXIT_FAILURE, "'%s' wrote more than %u bytes of output",
		                  argv[0], PX_SPAWN_OUT_MAX);

	ret->exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	ret->out = capture_stdout ? px_buf_steal(&out, &ret->out_len) : NULL;
	if (!capture_stdout)
		ret->out_len = 0;
	ret->errout = px_buf_steal(&errout, NULL);
	return 0;
}

void px_spawn_result_free(struct px_spawn_result *r)
{
	free(r->out);
	free(r->errout);
	r->out = r->errout = NULL;
}

/* The last non-empty line of a program's stderr, which is nearly always the reason. */
static const char *last_line(char *s)
{
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
	char *nl = strrchr(s, '\n');
	return nl ? nl + 1 : s;
}

int px_run(const char *const argv[], char **ret_out, struct px_err **err)
{
	struct px_spawn_result r = {0};
	if (px_spawn(argv, ret_out != NULL, &r, err) < 0)
		return -1;
	if (r.exit_status != 0) {
		px_err_set(err, PX_EXIT_FAILURE, "'%s' failed with status %d%s%s", argv[0],
		           r.exit_status, r.errout[0] ? ": " : "", last_line(r.errout));
		px_spawn_result_free(&r);
		return -1;
	}
	if (ret_out)
		*ret_out = steal_ptr(&r.out);
	px_spawn_result_free(&r);
	return 0;
}

int px_have_program(const char *name)
{
	const char *path = getenv("PATH");
	if (!path || strchr(name, '/'))
		return access(name, X_OK) == 0;
	_cleanup_free_ char *copy = xstrdup(path);
	for (char *dir = copy, *next; dir; dir = next) {
		next = strchr(dir, ':');
		if (next)
			*next++ = '\0';
		_cleanup_free_ char *candidate = xasprintf("%s/%s", *dir ? dir : ".", name);
		if (access(candidate, X_OK) == 0)
			return 1;
	}
	return 0;
}
