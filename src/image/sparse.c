#include <linux/fs.h>
#include <sys/ioctl.h>

#include "core/common.h"

#include "core/file.h"
#include "image/sparse.h"

#define COPY_CHUNK (4u << 20)

/* Copies len bytes from in at in_off to out at out_off: in the kernel where it can, else
 * through *buf, allocated on first use. */
static int copy_data(int in, off_t in_off, int out, off_t out_off, off_t len, uint8_t **buf,
                     const char *src, const char *dst, struct px_err **err)
{
	while (len > 0) {
		size_t want = (size_t)len < (1u << 30) ? (size_t)len : (1u << 30);
		ssize_t n = copy_file_range(in, &in_off, out, &out_off, want, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 &&
		    (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP))
			break;
		if (n < 0)
			return px_err_errno(err, errno, "cannot copy '%s' to '%s'", src, dst);
		if (n == 0)
			return px_err_set(err, PX_EXIT_FAILURE, "'%s' ended early while copying",
			                  src);
		len -= n;
	}
	if (len > 0 && !*buf)
		*buf = xmalloc(COPY_CHUNK);
	while (len > 0) {
		size_t want = (size_t)len < COPY_CHUNK ? (size_t)len : COPY_CHUNK;
		ssize_t n = pread(in, *buf, want, in_off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return px_err_errno(err, errno, "cannot read '%s'", src);
		if (n == 0)
			return px_err_set(err, PX_EXIT_FAILURE, "'%s' ended early while copying",
			                  src);
		for (ssize_t done = 0; done < n;) {
			ssize_t w = pwrite(out, *buf + done, (size_t)(n - done), out_off + done);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				return px_err_errno(err, errno, "cannot write '%s'", dst);
			done += w;
		}
		in_off += n;
		out_off += n;
		len -= n;
	}
	return 0;
}

int px_sparse_copy_range(int in, off_t in_off, int out, off_t out_off, off_t len, bool zero_holes,
                         const char *src, const char *dst, struct px_err **err)
{
	_cleanup_free_ uint8_t *buf = NULL;
	off_t end = in_off + len, pos = in_off;
	while (pos < end) {
		off_t data, hole;
		if (px_file_next_data(in, pos, end, src, &data, &hole, err) < 0)
			return -1;
		if (data > pos && zero_holes) {
			int r = px_file_zero_range(out, out_off + (pos - in_off), data - pos);
			if (r < 0)
				return px_err_errno(err, -r, "cannot write '%s'", dst);
		}
		if (data == end)
			break;
		if (copy_data(in, data, out, out_off + (data - in_off), hole - data, &buf, src, dst,
		              err) < 0)
			return -1;
		pos = hole;
	}
	return 0;
}

int px_sparse_copy(const char *src, const char *dst, struct px_err **err)
{
	struct stat st;
	_cleanup_close_ int in = px_file_open(src, O_RDONLY, &st, err);
	if (in < 0)
		return in;
	_cleanup_close_ int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0)
		return px_err_errno(err, errno, "cannot create '%s'", dst);

	if (ioctl(out, FICLONE, in) == 0)
		return 0;

	if (ftruncate(out, st.st_size) < 0)
		return px_err_errno(err, errno, "cannot size '%s'", dst);
	return px_sparse_copy_range(in, 0, out, 0, st.st_size, false, src, dst, err);
}
