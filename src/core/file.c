#include <libgen.h>

#include "file.h"

#include "buf.h"
#include "common.h"

int px_file_open(const char *path, int flags, struct stat *ret_st, struct px_err **err)
{
	_cleanup_close_ int fd = open(path, flags | O_CLOEXEC);
	if (fd < 0)
		return px_err_errno(err, errno, "cannot open '%s'", path);
	if (fstat(fd, ret_st) < 0)
		return px_err_errno(err, errno, "cannot stat '%s'", path);
	return steal_fd(&fd);
}

int px_file_next_data(int fd, off_t from, off_t end, const char *name, off_t *ret_data,
                      off_t *ret_hole, struct px_err **err)
{
	off_t data = lseek(fd, from, SEEK_DATA);
	if (data < 0 && errno == EINVAL) {
		/* No SEEK_DATA here: everything is data. */
		*ret_data = from;
		*ret_hole = end;
		return 0;
	}
	if (data < 0 && errno != ENXIO)
		return px_err_errno(err, errno, "cannot scan '%s'", name);
	if (data < 0 || data >= end) {
		/* ENXIO: only a hole remains past 'from'. */
		*ret_data = end;
		*ret_hole = end;
		return 0;
	}
	/* A failed or odd answer (the file changed under us) ends the extent at 'end': reading
	 * a hole as data is slow but right. */
	off_t hole = lseek(fd, data, SEEK_HOLE);
	if (hole < 0 || hole > end || hole <= data)
		hole = end;
	*ret_data = data;
	*ret_hole = hole;
	return 0;
}

int px_file_zero_range(int fd, off_t off, off_t len)
{
#ifdef FALLOC_FL_PUNCH_HOLE
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len) == 0)
		return 0;
#endif
	static const char zeros[65536];
	for (off_t done = 0; done < len;) {
		size_t want =
		        (size_t)(len - done) < sizeof(zeros) ? (size_t)(len - done) : sizeof(zeros);
		ssize_t n = pwrite(fd, zeros, want, off + done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		done += n;
	}
	return 0;
}

int px_file_read(const char *path, size_t max, char **ret_data, size_t *ret_len,
                 struct px_err **err)
{
	struct stat st = {0}; /* the analyser cannot see that fd < 0 on every failure */
	_cleanup_close_ int fd = px_file_open(path, O_RDONLY, &st, err);
	if (fd < 0)
		return fd;
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

int px_file_sync_dir(const char *path, struct px_err **err)
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
		r = px_file_sync_dir(a->path, err);
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
