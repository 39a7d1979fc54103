#include <linux/fs.h>
#include <sys/ioctl.h>

#include "core/common.h"

#include "core/file.h"
#include "image/sparse.h"

#define COPY_CHUNK (4u << 20)

/* Copies [off, end) from in to out with pread/pwrite. */
static int copy_range(int in, int out, off_t off, off_t end, uint8_t *buf, const char *src,
                      const char *dst, struct px_err **err)
{
	while (off < end) {
		size_t want = (size_t)(end - off) < COPY_CHUNK ? (size_t)(end - off) : COPY_CHUNK;
		ssize_t n = pread(in, buf, want, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return px_err_errno(err, errno, "cannot read '%s'", src);
		if (n == 0)
			return px_err_set(err, PX_EXIT_FAILURE, "'%s' shrank while being copied",
			                  src);
		for (ssize_t done = 0; done < n;) {
			ssize_t w = pwrite(out, buf + done, (size_t)(n - done), off + done);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				return px_err_errno(err, errno, "cannot write '%s'", dst);
			done += w;
		}
		off += n;
	}
	return 0;
}

int px_sparse_copy(const char *src, const char *dst, struct px_err **err)
{
	_cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return px_err_errno(err, errno, "cannot open '%s'", src);
	struct stat st;
	if (fstat(in, &st) < 0)
		return px_err_errno(err, errno, "cannot stat '%s'", src);
	_cleanup_close_ int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0)
		return px_err_errno(err, errno, "cannot create '%s'", dst);

	if (ioctl(out, FICLONE, in) == 0)
		return 0;

	if (ftruncate(out, st.st_size) < 0)
		return px_err_errno(err, errno, "cannot size '%s'", dst);
	_cleanup_free_ uint8_t *buf = xmalloc(COPY_CHUNK);
	off_t off = 0;
	while (off < st.st_size) {
		off_t data = lseek(in, off, SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			break; /* only a hole remains */
		if (data < 0) {
			/* No SEEK_DATA here: copy everything. */
			if (errno == EINVAL)
				return copy_range(in, out, off, st.st_size, buf, src, dst, err);
			return px_err_errno(err, errno, "cannot scan '%s'", src);
		}
		off_t hole = lseek(in, data, SEEK_HOLE);
		if (hole < 0)
			hole = st.st_size;
		if (copy_range(in, out, data, hole, buf, src, dst, err) < 0)
			return -1;
		off = hole;
	}
	return 0;
}
