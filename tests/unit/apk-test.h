/* Helpers shared by the apk unit tests: where the real Alpine data lives, reading files,
 * and building signed gzip streams with independent tools (openssl, tar, gzip) the way
 * abuild-sign does. Include after tap.h and test-util.h. */
#ifndef PX_APK_TEST_H
#define PX_APK_TEST_H

#include "core/common.h"

#include "core/buf.h"
#include "core/file.h"

/* ../shared/data/apk beside the source tree, or NULL when it is absent (caller frees). */
static inline char *apk_data_dir(void)
{
	const char *src = getenv("PEXI_SRC") ? getenv("PEXI_SRC") : ".";
	char *dir = xasprintf("%s/../shared/data/apk", src);
	struct stat st;
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		free(dir);
		return NULL;
	}
	return dir;
}

/* Prints one TAP skip line. */
static inline void skip(const char *why)
{
	printf("ok %d # skip %s\n", ++tap_count, why);
}

/* Reads a whole file; bails out when it cannot. */
static inline char *slurp(const char *path, size_t *ret_len)
{
	struct px_err *err = NULL;
	char *data = NULL;
	if (px_file_read(path, 256u << 20, &data, ret_len, &err) < 0) {
		printf("Bail out! %s\n", err->msg);
		exit(1);
	}
	return data;
}

static inline void spew(const char *path, const void *p, size_t len)
{
	struct px_err *err = NULL;
	if (px_atomic_write_file(path, p, len, 0644, &err) < 0) {
		printf("Bail out! %s\n", err->msg);
		exit(1);
	}
}

/* Concatenates files into 'out'; bails out when one cannot be read. */
static inline void concat(const char *out, const char *const files[])
{
	struct px_buf b = PX_BUF_INIT;
	for (size_t i = 0; files[i]; i++) {
		size_t len;
		_cleanup_free_ char *d = slurp(files[i], &len);
		px_buf_append(&b, d, len, NULL);
	}
	spew(out, b.data ? b.data : "", b.len);
	px_buf_free(&b);
}

/* Writes tmpdir/NAME.sig.gz: a gzip member holding a tar with the one file 'entry'
 * (".SIGN.RSA.<key>") whose contents are the file 'sig'. Returns its path. */
static inline char *make_sig_member(const char *name, const char *entry, const char *sig)
{
	_cleanup_free_ char *dir = xasprintf("%s/%s.d", tmpdir, name);
	_cleanup_free_ char *file = xasprintf("%s/%s", dir, entry);
	_cleanup_free_ char *tar = xasprintf("%s/%s.sig.tar", tmpdir, name);
	char *gz = xasprintf("%s.gz", tar);
	struct px_err *err = NULL;
	size_t len;
	_cleanup_free_ char *s = slurp(sig, &len);
	if (px_mkdir_p(dir, 0755, &err) < 0) {
		printf("Bail out! %s\n", err->msg);
		exit(1);
	}
	spew(file, s, len);
	const char *const t[] = {"tar", "--format=ustar", "-cf", tar, "-C", dir, entry, NULL};
	const char *const z[] = {"gzip", "-n", "-f", tar, NULL};
	_cleanup_free_ char *o1 = run_out(t);
	_cleanup_free_ char *o2 = o1 ? run_out(z) : NULL;
	if (!o2) {
		printf("Bail out! cannot build the signature member with tar and gzip\n");
		exit(1);
	}
	return gz;
}

#endif
