#include "core/common.h"

#include "core/spawn.h"
#include "image/sparse.h"
#include "tap.h"

/* Writes 'len' bytes of a pattern at 'off' into fd. */
static void put(int fd, off_t off, size_t len, uint8_t seed)
{
	uint8_t buf[8192];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(seed + i * 7);
	while (len > 0) {
		size_t n = len < sizeof(buf) ? len : sizeof(buf);
		if (pwrite(fd, buf, n, off) != (ssize_t)n)
			abort();
		off += (off_t)n;
		len -= n;
	}
}

int main(void)
{
	char dir[] = "/tmp/pexi-sparse.XXXXXX";
	ok(mkdtemp(dir) != NULL, "temp dir");
	_cleanup_free_ char *src = xasprintf("%s/src", dir), *dst = xasprintf("%s/dst", dir);

	/* 64 MiB with data at the start, the middle, and the very end, holes between. */
	int fd = open(src, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ok(fd >= 0 && ftruncate(fd, 64 << 20) == 0, "create a 64 MiB sparse source");
	put(fd, 0, 12345, 1);
	put(fd, 20 << 20, 1 << 20, 2);
	put(fd, (64 << 20) - 4096, 4096, 3);
	close(fd);

	struct px_err *err = NULL;
	ok(px_sparse_copy(src, dst, &err) == 0, "copy");
	const char *cmp[] = {"cmp", src, dst, NULL};
	ok(px_run(cmp, NULL, &err) == 0, "cmp finds the copy identical");
	struct stat a, b;
	ok(stat(src, &a) == 0 && stat(dst, &b) == 0 && a.st_size == b.st_size, "same size");
	ok(b.st_blocks <= a.st_blocks + 64, "holes stay holes (%jd vs %jd blocks)",
	   (intmax_t)b.st_blocks, (intmax_t)a.st_blocks);

	ok(px_sparse_copy("/nonexistent", dst, &err) < 0, "missing source fails");
	like(err ? err->msg : NULL, "cannot open '/nonexistent'", "names the source");
	px_err_free(err);
	unlink(src);
	unlink(dst);
	rmdir(dir);
	return done_testing();
}
