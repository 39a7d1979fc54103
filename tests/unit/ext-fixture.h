/* Helpers shared by the ext4 unit tests (test-extfs, test-patch): build the Alpine-shaped
 * fixture disk, copy it, and look at the result with e2fsprogs' own tools (debugfs, e2fsck,
 * dumpe2fs), never with pexi's code. Include after tap.h. */
#ifndef PX_TEST_EXT_FIXTURE_H
#define PX_TEST_EXT_FIXTURE_H

#include <sys/wait.h>
#include <time.h>

#include "core/common.h"

#include "core/buf.h"
#include "core/file.h"
#include "core/spawn.h"

/* Where the root filesystem starts in the fixture: GPT partition 2 at sector 67584. */
#define FX_OFFSET (67584ull * 512)

static char fx_dir[256];

static inline void fx_skip(const char *why)
{
	printf("# %s\n", why);
	exit(77);
}

static inline void fx_require(const char *prog)
{
	if (!px_have_program(prog)) {
		printf("# needs '%s', which is not installed\n", prog);
		exit(77);
	}
}

static inline void fx_cleanup(void)
{
	if (fx_dir[0]) {
		const char *argv[] = {"rm", "-rf", fx_dir, NULL};
		px_run(argv, NULL, NULL);
	}
}

/* Makes a temporary directory, builds the fixture into it (64 MiB disk) and returns the
 * path of alpine.raw. Skips the test when a tool it needs is missing. */
static inline char *fx_build(void)
{
	const char *src = getenv("PEXI_SRC");
	struct px_err *err = NULL;

	fx_require("debugfs");
	fx_require("e2fsck");
	fx_require("dumpe2fs");
	fx_require("mkfs.ext4");
	fx_require("sgdisk");
	fx_require("mkfs.vfat");
	fx_require("mcopy");
	fx_require("qemu-img");
	snprintf(fx_dir, sizeof(fx_dir), "%s/pexi-extfs.XXXXXX",
	         getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(fx_dir)) {
		fx_dir[0] = '\0';
		fx_skip("cannot create a temporary directory");
	}
	atexit(fx_cleanup);
	char *script = xasprintf("%s/tests/fixtures/make-alpine-disk", src ? src : ".");
	char *out = xasprintf("%s/fixture", fx_dir);
	const char *argv[] = {"sh", script, out, "64", NULL};
	if (px_run(argv, NULL, &err) < 0) {
		printf("# fixture build failed: %s\n", err->msg);
		fx_skip("cannot build the fixture disk with tests/fixtures/make-alpine-disk");
	}
	free(script);
	char *raw = xasprintf("%s/alpine.raw", out);
	free(out);
	return raw;
}

/* A fresh sparse copy of the fixture under a new name in the temp directory. */
static inline char *fx_copy(const char *raw, const char *name)
{
	char *dst = xasprintf("%s/%s", fx_dir, name);
	const char *argv[] = {"cp", "--sparse=always", raw, dst, NULL};
	struct px_err *err = NULL;
	if (px_run(argv, NULL, &err) < 0) {
		printf("# %s\n", err->msg);
		exit(1);
	}
	return dst;
}

/* "IMAGE?offset=N", the way e2fsprogs' tools take a filesystem inside a disk image. */
static inline char *fx_spec(const char *image)
{
	return xasprintf("%s?offset=%llu", image, FX_OFFSET);
}

/* Runs debugfs -R CMD (read-only) and returns its stdout, or NULL. */
__attribute__((noinline)) static char *fx_debugfs(const char *image, const char *cmd)
{
	char *spec = fx_spec(image), *out = NULL;
	const char *argv[] = {"debugfs", "-R", cmd, spec, NULL};
	struct px_err *err = NULL;
	if (px_run(argv, &out, &err) < 0) {
		printf("# debugfs -R '%s': %s\n", cmd, err->msg);
		px_err_free(err);
	}
	free(spec);
	return out;
}

/* Runs the debugfs commands in 'script' (one per line) with -w. */
static inline int fx_debugfs_w(const char *image, const char *script)
{
	char *spec = fx_spec(image), *cmds = xasprintf("%s/cmds", fx_dir);
	struct px_err *err = NULL;
	int r = px_atomic_write_file(cmds, script, strlen(script), 0644, &err);
	if (r == 0) {
		const char *argv[] = {"debugfs", "-w", "-f", cmds, spec, NULL};
		char *out = NULL;
		r = px_run(argv, &out, &err);
		free(out);
	}
	if (r < 0)
		printf("# debugfs -w: %s\n", err->msg);
	px_err_free(err);
	free(spec);
	free(cmds);
	return r;
}

static inline char *fx_cat(const char *image, const char *path)
{
	char *cmd = xasprintf("cat %s", path);
	char *out = fx_debugfs(image, cmd);
	free(cmd);
	return out;
}

/* e2fsck -fn on the filesystem: true when it finds nothing to fix (exit status 0). */
static inline bool fx_fsck_clean(const char *image)
{
	char *spec = fx_spec(image);
	const char *argv[] = {"e2fsck", "-fn", spec, NULL};
	struct px_spawn_result res = {0};
	struct px_err *err = NULL;
	bool clean = false;
	if (px_spawn(argv, 1, &res, &err) == 0) {
		clean = res.exit_status == 0;
		if (!clean)
			printf("# e2fsck -fn exit %d:\n# %s\n# %s\n", res.exit_status,
			       res.out ? res.out : "", res.errout ? res.errout : "");
	}
	px_spawn_result_free(&res);
	px_err_free(err);
	free(spec);
	return clean;
}

/* Attributes of 'path' as debugfs' stat prints them. */
struct fx_stat {
	char type[32];
	unsigned mode, uid, gid, links;
	unsigned long long size;
	unsigned long mtime, atime, ctime, crtime;
	unsigned generation;
};

static inline bool fx_stat(const char *image, const char *path, struct fx_stat *st)
{
	char *cmd = xasprintf("stat %s", path);
	char *out = fx_debugfs(image, cmd);
	const char *p;
	bool okay = out != NULL;

	free(cmd);
	memset(st, 0, sizeof(*st));
	if (!out)
		return false;
	okay = okay && (p = strstr(out, "Type: ")) && sscanf(p, "Type: %31s", st->type) == 1;
	okay = okay && (p = strstr(out, "Mode: ")) && sscanf(p, "Mode: %o", &st->mode) == 1;
	okay = okay && (p = strstr(out, "Generation: ")) &&
	       sscanf(p, "Generation: %u", &st->generation) == 1;
	okay = okay && (p = strstr(out, "User: ")) &&
	       sscanf(p, "User: %u Group: %u", &st->uid, &st->gid) == 2;
	okay = okay && (p = strstr(out, "Size: ")) && sscanf(p, "Size: %llu", &st->size) == 1;
	okay = okay && (p = strstr(out, "Links: ")) && sscanf(p, "Links: %u", &st->links) == 1;
	okay = okay && (p = strstr(out, " ctime: 0x")) &&
	       sscanf(p, " ctime: 0x%lx", &st->ctime) == 1;
	okay = okay && (p = strstr(out, " atime: 0x")) &&
	       sscanf(p, " atime: 0x%lx", &st->atime) == 1;
	okay = okay && (p = strstr(out, " mtime: 0x")) &&
	       sscanf(p, " mtime: 0x%lx", &st->mtime) == 1;
	if (okay && (p = strstr(out, "crtime: 0x")))
		sscanf(p, "crtime: 0x%lx", &st->crtime);
	if (!okay)
		printf("# cannot parse debugfs stat output:\n%s\n", out);
	free(out);
	return okay;
}

/* sha256sum of a file, as the independent tool computes it. */
static inline char *fx_sha256(const char *path)
{
	const char *argv[] = {"sha256sum", path, NULL};
	char *out = NULL;
	struct px_err *err = NULL;
	if (px_run(argv, &out, &err) < 0) {
		px_err_free(err);
		return NULL;
	}
	char *sp = strchr(out, ' ');
	if (sp)
		*sp = '\0';
	return out;
}

/* The superblock's last write time as dumpe2fs prints it, in UTC. */
static inline char *fx_last_write_time(const char *image)
{
	char *spec = fx_spec(image), *out = NULL, *line = NULL;
	const char *argv[] = {"dumpe2fs", "-h", spec, NULL};
	struct px_err *err = NULL;
	setenv("TZ", "UTC", 1);
	if (px_run(argv, &out, &err) == 0) {
		const char *p = strstr(out, "Last write time:");
		if (p) {
			p += strlen("Last write time:");
			while (*p == ' ')
				p++;
			line = xstrndup(p, strcspn(p, "\n"));
		}
	}
	px_err_free(err);
	free(out);
	free(spec);
	return line;
}

static inline double fx_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
