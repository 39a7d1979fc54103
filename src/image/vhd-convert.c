/* The convert stage: a VHD (or a raw image) in, a sparse raw file out, written atomically.
 * Data is read a chunk (up to 4 MiB) at a time into a staging buffer; when the buffer is
 * flushed, every all-zero 4 KiB run is skipped (left a hole) and each run of non-zero data
 * goes out in one pwrite, so the cost is a few syscalls per chunk, never one per sector. */
#include <linux/fs.h>
#include <sys/ioctl.h>

#include "core/common.h"

#include "core/file.h"
#include "image/vhd-format.h"
#include "image/vhd.h"

#ifndef FICLONE
#define FICLONE _IOW(0x94, 9, int)
#endif

#define ZERO_UNIT  4096u      /* a filesystem block: the smallest hole worth making */
#define STAGE_SIZE (8u << 20) /* at least two chunks */

struct sparse_out {
	int fd;
	const char *path;
	uint8_t *buf;
	size_t len;
	uint64_t off; /* where buf[0] goes in the output */
};

static bool is_zero(const uint8_t *p, size_t n)
{
	/* OR whole words together: the compiler vectorises this, and one test per unit
	 * keeps the loop branch-free. */
	uint64_t acc = 0;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		acc |= w;
	}
	for (; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

static int pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off, const char *path,
                      struct px_err **err)
{
	while (n > 0) {
		ssize_t w = pwrite(fd, p, n, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return px_err_errno(err, errno, "cannot write '%s' at offset %" PRIu64,
			                    path, off);
		p += w;
		off += (uint64_t)w;
		n -= (size_t)w;
	}
	return 0;
}

/* Writes the staged bytes, leaving every all-zero 4 KiB unit (aligned in the output) a
 * hole, and empties the stage. */
static int out_flush(struct sparse_out *o, struct px_err **err)
{
	size_t pos = 0, run = 0;
	bool in_run = false;
	while (pos < o->len) {
		uint64_t abs = o->off + pos;
		size_t unit = ZERO_UNIT - (size_t)(abs % ZERO_UNIT);
		if (unit > o->len - pos)
			unit = o->len - pos;
		bool zero = is_zero(o->buf + pos, unit);
		if (!zero && !in_run) {
			run = pos;
			in_run = true;
		} else if (zero && in_run) {
			if (pwrite_all(o->fd, o->buf + run, pos - run, o->off + run, o->path, err) <
			    0)
				return -1;
			in_run = false;
		}
		pos += unit;
	}
	if (in_run && pwrite_all(o->fd, o->buf + run, pos - run, o->off + run, o->path, err) < 0)
		return -1;
	o->len = 0;
	return 0;
}

/* Returns room for n bytes destined for output offset off, flushing first when the stage
 * is full or the bytes would not follow what is staged. */
static int out_reserve(struct sparse_out *o, uint64_t off, size_t n, uint8_t **ret,
                       struct px_err **err)
{
	if (o->len > 0 && (o->off + o->len != off || o->len + n > STAGE_SIZE))
		if (out_flush(o, err) < 0)
			return -1;
	if (o->len == 0)
		o->off = off;
	*ret = o->buf + o->len;
	return 0;
}

static int out_finish(struct sparse_out *o, uint64_t size, struct px_err **err)
{
	if (out_flush(o, err) < 0)
		return -1;
	/* Holes at the end exist only once the size is set. */
	if (ftruncate(o->fd, (off_t)size) < 0)
		return px_err_errno(err, errno, "cannot set the size of '%s'", o->path);
	return 0;
}

static int convert_vhd(const struct px_vhd_src *src, struct sparse_out *o, uint64_t *ret_size,
                       struct px_err **err)
{
	struct px_vhd v;
	if (px_vhd_open(&v, src, err) < 0)
		return -1;
	uint64_t n = px_vhd_chunk_count(&v);
	int r = 0;
	for (uint64_t i = 0; i < n && r == 0; i++) {
		uint8_t *dst;
		size_t len;
		bool hole;
		r = out_reserve(o, i * v.chunk_size, v.chunk_size, &dst, err);
		if (r == 0)
			r = px_vhd_read_chunk(&v, i, dst, &len, &hole, err);
		if (r == 0 && !hole)
			o->len += len;
	}
	if (r == 0)
		r = out_finish(o, v.virtual_size, err);
	if (r == 0)
		*ret_size = v.virtual_size;
	px_vhd_close(&v);
	return r;
}

/* A raw image is copied as it is: a reflink shares its extents at no cost where the
 * filesystem allows (btrfs, XFS); otherwise only its data extents are read, and zero runs
 * inside them still become holes. */
static int copy_raw(const struct px_vhd_src *src, struct sparse_out *o, struct px_err **err)
{
	if (ioctl(o->fd, FICLONE, src->fd) == 0)
		return 0;
	off_t size = (off_t)src->size, pos = 0;
	while (pos < size) {
		off_t data, end;
		/* Any failure to find the extents: copy it all, zero runs still become holes. */
		if (px_file_next_data(src->fd, pos, size, src->name, &data, &end, NULL) < 0) {
			data = pos;
			end = size;
		}
		if (data >= size)
			break;
		for (pos = data; pos < end;) {
			size_t n = (uint64_t)(end - pos) < PX_VHD_CHUNK ? (size_t)(end - pos)
			                                                : PX_VHD_CHUNK;
			uint8_t *dst;
			if (out_reserve(o, (uint64_t)pos, n, &dst, err) < 0 ||
			    px_vhd_src_read(src, (uint64_t)pos, dst, n, "data", err) < 0)
				return -1;
			o->len += n;
			pos += (off_t)n;
		}
	}
	return out_finish(o, src->size, err);
}

static int open_input(const char *path, int *ret_fd, uint64_t *ret_size, struct px_err **err)
{
	struct stat st;
	_cleanup_close_ int fd = px_file_open(path, O_RDONLY, &st, err);
	if (fd < 0)
		return fd;
	if (!S_ISREG(st.st_mode))
		return px_err_set(err, PX_EXIT_INPUT, "'%s' is not a regular file", path);
	*ret_size = (uint64_t)st.st_size;
	*ret_fd = steal_fd(&fd);
	return 0;
}

int px_image_detect(const char *path, enum px_image_format *ret, struct px_err **err)
{
	_cleanup_close_ int fd = -1;
	uint64_t size = 0;
	if (open_input(path, &fd, &size, err) < 0)
		return -1;
	struct px_vhd_src src;
	px_vhd_src_file(&src, path, fd, size);
	return px_vhd_probe(&src, ret, err);
}

int px_vhd_convert(const char *in_path, const char *out_path, uint64_t *ret_virtual_size,
                   struct px_err **err)
{
	_cleanup_close_ int fd = -1;
	uint64_t size = 0;
	if (open_input(in_path, &fd, &size, err) < 0)
		return -1;
	struct px_vhd_src src;
	px_vhd_src_file(&src, in_path, fd, size);
	enum px_image_format fmt = PX_IMAGE_RAW;
	if (px_vhd_probe(&src, &fmt, err) < 0)
		return -1;

	struct px_atomic a;
	if (px_atomic_open(&a, out_path, 0644, err) < 0)
		return -1;
	_cleanup_free_ uint8_t *stage = xmalloc(STAGE_SIZE);
	struct sparse_out o = {.fd = a.fd, .path = out_path, .buf = stage};
	uint64_t vsize = size;
	int r = fmt == PX_IMAGE_RAW ? copy_raw(&src, &o, err) : convert_vhd(&src, &o, &vsize, err);
	if (r < 0) {
		px_atomic_abort(&a);
		return -1;
	}
	if (px_atomic_commit(&a, err) < 0)
		return -1;
	if (ret_virtual_size)
		*ret_virtual_size = vsize;
	return 0;
}
