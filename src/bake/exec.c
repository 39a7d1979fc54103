#include "bake/exec.h"

#include "core/common.h"
#include "core/spawn.h"

/* The line that says why: the last one mentioning an error (apk's "ERROR: ...", the
 * script's own "error: ..."; its very last line only says the image is unchanged), else
 * the last line a tool printed. */
static char *why(const char *errout)
{
	_cleanup_free_ char *best = NULL, *last = NULL;
	for (const char *p = errout; *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		if (n > 0 && strncmp(p, "pexi-bake: failed;", 18) != 0) {
			char *line = xstrndup(p, n);
			if (strcasestr(line, "error")) {
				free(best);
				best = xstrdup(line);
			}
			free(last);
			last = line;
		}
		p += n + (nl ? 1 : 0);
	}
	if (best)
		return steal_ptr(&best);
	return last ? steal_ptr(&last) : xstrdup("");
}

int px_bake_exec_script(const char *const argv[], const char *script, const char *work_dir,
                        struct px_err **err)
{
	_cleanup_free_ char *path = xasprintf("%s/bake-XXXXXX.sh", work_dir);
	_cleanup_close_ int fd = mkostemps(path, 3, O_CLOEXEC);
	if (fd < 0)
		return px_err_errno(err, errno, "cannot create a script file in '%s'", work_dir);
	size_t len = strlen(script);
	for (size_t off = 0; off < len;) {
		ssize_t n = write(fd, script + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			unlink(path);
			return px_err_errno(err, e, "cannot write '%s'", path);
		}
		off += (size_t)n;
	}

	struct px_spawn_result r = {0};
	int rc = px_spawn_stdin(argv, path, 0, &r, err);
	unlink(path);
	if (rc < 0)
		return -1;
	if (r.exit_status != 0) {
		_cleanup_free_ char *line = why(r.errout);
		px_err_set(err, PX_EXIT_FAILURE, "'%s' failed with status %d%s%s", argv[0],
		           r.exit_status, line[0] ? ": " : "", line);
		px_spawn_result_free(&r);
		return -1;
	}
	px_spawn_result_free(&r);
	return 0;
}
