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

	_cleanup_free_ char *c1 = xasprintf("%s/a/b/c", dir), *c2 = xasprintf("%s/a/b", dir),
	                    *c3 = xasprintf("%s/a", dir);
	rmdir(c1);
	rmdir(c2);
	rmdir(c3);
	unlink(path);
	rmdir(dir);
	return done_testing();
}
