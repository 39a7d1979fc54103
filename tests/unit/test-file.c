#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>

#include "core/common.h"

#include "core/file.h"
#include "tap.h"

static char dir[] = "/tmp/pexi-file.XXXXXX";

static int count_entries(void)
{
	int n = 0;
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	struct dirent *e;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* px_file_open, px_file_next_data and px_file_zero_range on a file with one data extent in
 * a hole; the hole assertions hold only where the filesystem keeps holes (st_blocks). */
static void test_extents(void)
{
	struct px_err *err = NULL;
	enum { SIZE = 1 << 20, AT = 512 << 10, LEN = 4096 };
	_cleanup_free_ char *path = xasprintf("%s/sparse", dir);
	int w = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	static uint8_t pat[65536];
	for (size_t i = 0; i < sizeof(pat); i++)
		pat[i] = (uint8_t)(i * 7 + 1);
	ok(w >= 0 && ftruncate(w, SIZE) == 0 && pwrite(w, pat, LEN, AT) == LEN,
	   "create a 1 MiB file with 4 KiB of data in the middle");
	if (w >= 0)
		close(w);

	struct stat st;
	int fd = px_file_open(path, O_RDWR, &st, &err);
	ok(fd >= 0 && st.st_size == SIZE, "px_file_open opens and stats");
	bool sparse = (uint64_t)st.st_blocks * 512 < SIZE;
	off_t data = -1, hole = -1;
	int r = px_file_next_data(fd, 0, SIZE, path, &data, &hole, &err);
	ok(r == 0 && data <= AT && hole >= AT + LEN && hole <= SIZE,
	   "the first extent covers the data (%jd..%jd)", (intmax_t)data, (intmax_t)hole);
	if (sparse) {
		ok(px_file_next_data(fd, 0, 4096, path, &data, &hole, &err) == 0 && data == 4096 &&
		           hole == 4096,
		   "a range inside the leading hole has no data");
		ok(px_file_next_data(fd, AT + 65536, SIZE, path, &data, &hole, &err) == 0 &&
		           data == SIZE && hole == SIZE,
		   "past the data only a hole remains");
	}

	ok(pwrite(fd, pat, sizeof(pat), 0) == (ssize_t)sizeof(pat), "write a pattern");
	ok(px_file_zero_range(fd, 1000, 50000) == 0, "px_file_zero_range");
	uint8_t back[65536];
	ok(pread(fd, back, sizeof(back), 0) == (ssize_t)sizeof(back), "read it back");
	bool zeros = true, kept = true;
	for (size_t i = 0; i < sizeof(back); i++) {
		if (i >= 1000 && i < 51000)
			zeros = zeros && back[i] == 0;
		else
			kept = kept && back[i] == pat[i];
	}
	ok(zeros, "the range reads as zeros");
	ok(kept, "the bytes around it are untouched");
	ok(fstat(fd, &st) == 0 && st.st_size == SIZE, "the size is unchanged");
	if (fd >= 0)
		close(fd);
	unlink(path);

	ok(px_file_open("/nonexistent/x", O_RDONLY, &st, &err) < 0, "a missing file fails");
	like(err ? err->msg : NULL, "cannot open '/nonexistent/x'", "names the file");
	px_err_clear(&err);
}

int main(void)
{
	struct px_err *err = NULL;
	ok(mkdtemp(dir) != NULL, "temp dir");
	_cleanup_free_ char *path = xasprintf("%s/out.txt", dir);

	ok(px_atomic_write_file(path, "first\n", 6, 0640, &err) == 0, "atomic write");
	char *data = NULL;
	size_t len = 0;
	ok(px_file_read(path, 1024, &data, &len, &err) == 0 && len == 6 &&
	           strcmp(data, "first\n") == 0,
	   "read back");
	free(data);
	struct stat st;
	ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0640, "mode honoured");

	/* An aborted write leaves the old content and no temporary file. */
	struct px_atomic a;
	ok(px_atomic_open(&a, path, 0644, &err) == 0, "open for replace");
	ok(px_write_all(a.fd, "partial", 7, path, &err) == 0, "write part");
	px_atomic_abort(&a);
	ok(px_file_read(path, 1024, &data, &len, &err) == 0 && strcmp(data, "first\n") == 0,
	   "abort keeps the old file");
	free(data);
	is_int(count_entries(), 1, "no temporary file left behind");

	/* A writer killed mid-way leaves the old content too. */
	pid_t pid = fork();
	if (pid == 0) {
		struct px_atomic b;
		if (px_atomic_open(&b, path, 0644, NULL) == 0)
			px_write_all(b.fd, "doomed", 6, path, NULL);
		raise(SIGKILL);
	}
	int status;
	waitpid(pid, &status, 0);
	ok(WIFSIGNALED(status), "child was killed");
	ok(px_file_read(path, 1024, &data, &len, &err) == 0 && strcmp(data, "first\n") == 0,
	   "a killed writer leaves the old file");
	free(data);

	ok(px_file_read(path, 3, &data, &len, &err) < 0, "cap enforced");
	like(err ? err->msg : NULL, "is too large", "cap message");
	px_err_clear(&err);
	ok(px_file_read(dir, 3, &data, &len, &err) < 0, "a directory is refused");
	like(err ? err->msg : NULL, "is a directory", "directory message");
	px_err_clear(&err);

	_cleanup_free_ char *deep = xasprintf("%s/a/b/c", dir);
	ok(px_mkdir_p(deep, 0755, &err) == 0 && stat(deep, &st) == 0 && S_ISDIR(st.st_mode),
	   "mkdir -p");
	ok(px_mkdir_p(deep, 0755, &err) == 0, "mkdir -p is idempotent");

	/* /dev/full reports ENOSPC on write: the error must say so. */
	int fd = open("/dev/full", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		ok(px_write_all(fd, "x", 1, "/dev/full", &err) < 0, "ENOSPC is an error");
		like(err ? err->msg : NULL, "No space left on device", "ENOSPC message");
		px_err_clear(&err);
		close(fd);
	}

	test_extents();

	_cleanup_free_ char *c1 = xasprintf("%s/a/b/c", dir), *c2 = xasprintf("%s/a/b", dir),
	                    *c3 = xasprintf("%s/a", dir);
	rmdir(c1);
	rmdir(c2);
	rmdir(c3);
	unlink(path);
	rmdir(dir);
	return done_testing();
}
