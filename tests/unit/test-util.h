/* Helpers shared by the unit tests that drive external tools on disk images (test-gpt,
 * test-fsgrow, test-seed): a temporary directory, running a program and capturing its
 * output, building the Alpine-shaped fixture, and comparing images with qemu-img. Include
 * after tap.h. */
#ifndef PX_TEST_UTIL_H
#define PX_TEST_UTIL_H

#include "core/common.h"

#include "core/spawn.h"
#include "image/sparse.h"

/* The test's temporary directory, made by tu_mkdtemp, and the fixture image in it, made by
 * tu_build_fixture. */
static char tmpdir[256];
static char *fixture PX_UNUSED;

/* Exits with 77 (a skip, the reason last) when 'prog' is not installed. */
static inline void tu_require(const char *prog)
{
	if (!px_have_program(prog)) {
		printf("# needs '%s', which is not installed\n", prog);
		exit(77);
	}
}

/* Makes tmpdir as /tmp/NAME.XXXXXX; bails out when it cannot. */
static inline void tu_mkdtemp(const char *name)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/%s.XXXXXX", name);
	if (!mkdtemp(tmpdir)) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		exit(1);
	}
}

/* Runs argv and returns its stdout (caller frees), or NULL (with the reason printed) when
 * it fails. */
static inline char *run_out(const char *const argv[])
{
	struct px_err *err = NULL;
	char *out = NULL;
	if (px_run(argv, &out, &err) < 0) {
		printf("# %s\n", err->msg);
		px_err_free(err);
		return NULL;
	}
	return out;
}

/* Removes tmpdir and everything in it, and forgets the fixture. */
static inline void tu_rm_tmpdir(void)
{
	const char *const rm[] = {"rm", "-rf", tmpdir, NULL};
	free(run_out(rm));
	free(fixture);
	fixture = NULL;
}

/* tmpdir/name (caller frees). */
static inline char *path_in(const char *name)
{
	return xasprintf("%s/%s", tmpdir, name);
}

/* Builds the Alpine-shaped fixture into tmpdir/fixture and points 'fixture' at its
 * alpine.raw; skips the test when it cannot be built. */
static inline void tu_build_fixture(void)
{
	const char *src = getenv("PEXI_SRC") ? getenv("PEXI_SRC") : ".";
	_cleanup_free_ char *gen = xasprintf("%s/tests/fixtures/make-alpine-disk", src);
	_cleanup_free_ char *fxdir = path_in("fixture");
	const char *const argv[] = {"sh", gen, fxdir, NULL};
	_cleanup_free_ char *out = run_out(argv);
	if (!out) {
		printf("# cannot build the fixture (needs sgdisk, mkfs.ext4, mkfs.vfat, mcopy, "
		       "qemu-img)\n");
		exit(77);
	}
	fixture = xasprintf("%s/alpine.raw", fxdir);
}

/* A sparse copy of 'from' at 'to' (taken over, returned); bails out when it fails. */
static inline char *tu_copy(const char *from, char *to)
{
	struct px_err *err = NULL;
	if (px_sparse_copy(from, to, &err) < 0) {
		printf("Bail out! %s\n", err->msg);
		exit(1);
	}
	return to;
}

/* A fresh copy of the fixture at tmpdir/name (caller frees). */
static inline char *copy_fixture(const char *name)
{
	return tu_copy(fixture, path_in(name));
}

/* A reference copy of an image, to compare against after an operation. */
static inline char *snapshot(const char *img)
{
	return tu_copy(img, xasprintf("%s.before", img));
}

/* Whether two images have the same size and the same bytes: qemu-img compare, which skips
 * holes, so a 2 GiB sparse image compares in milliseconds. */
static inline int same_image(const char *a, const char *b)
{
	struct stat sa, sb;
	if (stat(a, &sa) < 0 || stat(b, &sb) < 0 || sa.st_size != sb.st_size)
		return 0;
	const char *const argv[] = {"qemu-img", "compare", "-q", "-f", "raw",
	                            "-F",       "raw",     a,    b,    NULL};
	_cleanup_free_ char *out = run_out(argv);
	return out != NULL;
}

#endif
