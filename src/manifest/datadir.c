#include <limits.h>
#include <libgen.h>

#include "core/common.h"

#include "core/buf.h"
#include "manifest/datadir.h"

#ifndef PX_DATADIR
#define PX_DATADIR "/usr/local/share/pexi"
#endif

/* The directory holding the running binary, or NULL where /proc is missing (macOS). */
static char *exe_dir(void)
{
	char buf[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	return xstrdup(dirname(buf));
}

int px_datadir_find(const char *manifest_dir, const char *sub, const char *name, char **ret_path,
                    char **ret_searched)
{
	_cleanup_free_ char *exe = exe_dir();
	_cleanup_free_ char *exe_up = exe ? xasprintf("%s/..", exe) : NULL;
	const char *env = getenv("PEXI_DATADIR");
	const char *roots[] = {manifest_dir ? manifest_dir : ".", env && *env ? env : NULL, exe,
	                       exe_up, PX_DATADIR};
	_cleanup_buf_ struct px_buf searched = PX_BUF_INIT;
	for (size_t i = 0; i < PX_ARRAY_SIZE(roots); i++) {
		if (!roots[i])
			continue;
		_cleanup_free_ char *dir = xasprintf("%s/%s", roots[i], sub);
		_cleanup_free_ char *path = xasprintf("%s/%s", dir, name);
		struct stat st;
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			*ret_path = steal_ptr(&path);
			return 0;
		}
		px_buf_printf(&searched, "%s'%s'", searched.len ? ", " : "", dir);
	}
	*ret_searched = px_buf_steal(&searched, NULL);
	return -1;
}
