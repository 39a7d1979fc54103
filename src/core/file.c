#include <libgen.h>

#include "file.h"

#include "buf.h"
#include "common.h"

int px_file_read(const char *path, size_t max, char **ret_data, size_t *ret_len,
                 struct px_err **err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return px_err_errno(err, errno, "cannot open '%s'", path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return px_err_errno(err, errno, "cannot stat '%s'", path);
	if (S_ISDIR(st.st_mode))
		return px_err_set(err, PX_EXIT_INPUT, "'%s' is a directory", path);
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > max)
		return px_err_set(err, PX_EXIT_INPUT, "'%s' is too large (%jd bytes, limit %zu)",
		                  path, (intmax_t)st.st_size, max);

	_cleanup_buf_ struct px_buf b = PX_BUF_INIT;
	b.max = max;
	char chunk[65536];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return px_err_errno(err, errno, "cannot read '%s'", path);
		if (n == 0)
			break;
		if (px_buf_append(&b, chunk, (size_t)n, err) < 0)
			return px_err_wrap(err, "'%s' is too large", path);
	}
	size_t len;
	char *data = px_buf_steal(&b, &len);
	*ret_data = data;
	if (ret_len)
		*ret_len = len;
	return 0;
}

int px_write_all(int fd, const void *buf, size_t len, const char *what, struct px_err **err)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return px_err_errno(err, errno, "cannot write '%s'", what);
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int fsync_parent(const char *path, struct px_err **err)
{
	_cleanup_free_ char *copy = xstrdup(path);
	const char *dir = dirname(copy);
	_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return px_err_errno(err, errno, "cannot open directory '%s'", dir);
	if (fsync(fd) < 0 && errno != EINVAL)
		return px_err_errno(err, errno, "cannot sync directory '%s'", dir);
	return 0;
}

int px_atomic_open(struct px_atomic *a, const char *path, mode_t mode, struct px_err **err)
{
	a->path = NULL;
	a->tmp = NULL;
	a->fd = -1;
	/* The temporary name carries the pid so that two builds never share one, and a
	 * leading dot so that directory listings do not show it as an output. */
	_cleanup_free_ char *copy = xstrdup(path);
	_cleanup_free_ char *copy2 = xstrdup(path);
	char *tmp = xasprintf("%s/.%s.tmp.%ld", dirname(copy), basename(copy2), (long)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0) {
		int e = errno;
		free(tmp);
		return px_err_errno(err, e, "cannot create a temporary file for '%s'", path);
	}
	a->path = xstrdup(path);
	a->tmp = tmp;
	a->fd = fd;
	return 0;
}

int px_atomic_commit(struct px_atomic *a, struct px_err **err)
{
	int r = 0;
	if (fsync(a->fd) < 0)
		r = px_err_errno(err, errno, "cannot sync '%s'", a->path);
	if (r == 0 && close(a->fd) < 0)
		r = px_err_errno(err, errno, "cannot close '%s'", a->path);
	else if (r < 0)
		close(a->fd);
	a->fd = -1;
	if (r == 0 && rename(a->tmp, a->path) < 0)
		r = px_err_errno(err, errno, "cannot rename '%s' to '%s'", a->tmp, a->path);
	if (r == 0)
		r = fsync_parent(a->path, err);
	if (r < 0 && a->tmp)
		unlink(a->tmp);
	free(a->tmp);
	free(a->path);
	a->tmp = a->path = NULL;
	return r;
}

void px_atomic_abort(struct px_atomic *a)
{
	if (a->fd >= 0)
		close(a->fd);
	if (a->tmp)
		unlink(a->tmp);
	free(a->tmp);
	free(a->path);
	a->tmp = a->path = NULL;
	a->fd = -1;
}

int px_atomic_write_file(const char *path, const void *buf, size_t len, mode_t mode,
                         struct px_err **err)
{
	struct px_atomic a;
	if (px_atomic_open(&a, path, mode, err) < 0)
		return -1;
	if (px_write_all(a.fd, buf, len, path, err) < 0) {
		px_atomic_abort(&a);
		return -1;
	}
	return px_atomic_commit(&a, err);
}

int px_mkdir_p(const char *path, mode_t mode, struct px_err **err)
{
	_cleanup_free_ char *p = xstrdup(path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return px_err_errno(err, errno, "cannot create directory '%s'", p);
		*s = '/';
	}
	if (mkdir(p, mode) < 0 && errno != EEXIST)
		return px_err_errno(err, errno, "cannot create directory '%s'", p);
	return 0;
}
