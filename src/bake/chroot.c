#include <sys/statfs.h>
#include <sys/utsname.h>

#include "bake/bake.h"

#include "bake/chroot-script.h"
#include "bake/exec.h"
#include "core/buf.h"
#include "core/common.h"
#include "core/file.h"
#include "image/extfs.h"
#include "manifest/datadir.h"
#include "manifest/manifest.h"

#define INSTALLED_DB  "/lib/apk/db/installed"
#define INSTALLED_MAX (64u << 20)

/* Filesystems a work copy must not sit on: the seeds lost 16 000 files baking on a
 * virtiofs share. FUSE (virtiofs is FUSE), 9p, NFS, SMB, CIFS, SMB2. */
static const struct {
	unsigned long magic;
	const char *name;
} shared_fs[] = {
        {0x65735546UL, "FUSE or virtiofs"},
        {0x01021997UL, "9p"},
        {0x6969UL, "NFS"},
        {0x517bUL, "SMB"},
        {0xff534d42UL, "CIFS"},
        {0xfe534d42UL, "SMB2"},
};

static int check_local_fs(const char *dir, struct px_err **err)
{
	struct statfs st;
	if (statfs(dir, &st) < 0)
		return px_err_errno(err, errno, "cannot stat the filesystem of '%s'", dir);
	for (size_t i = 0; i < PX_ARRAY_SIZE(shared_fs); i++)
		if ((unsigned long)st.f_type == shared_fs[i].magic)
			return px_err_set(err, PX_EXIT_FAILURE,
			                  "work directory '%s' is on %s; the chroot method needs a "
			                  "local filesystem (set build.dir elsewhere)",
			                  dir, shared_fs[i].name);
	return 0;
}

static const struct px_bake_exec *pick_exec(enum px_pkg_executor e)
{
	switch (e) {
	case PX_EXEC_LIMA:
		return &px_bake_exec_lima;
	case PX_EXEC_GUESTFS:
		return &px_bake_exec_guestfs;
	case PX_EXEC_LOCAL:
		break;
	}
	return &px_bake_exec_local;
}

/* The local and guestfs executors run the image's own apk on this machine's CPU. */
static int check_arch(const struct px_manifest *m, struct px_err **err)
{
	struct utsname u;
	const char *want = px_arch_name(m->arch);
	if (uname(&u) < 0 || strcmp(u.machine, want) == 0)
		return 0;
	_cleanup_free_ char *binfmt = xasprintf("/proc/sys/fs/binfmt_misc/qemu-%s", want);
	if (access(binfmt, F_OK) == 0)
		return 0;
	return px_err_set(err, PX_EXIT_FAILURE,
	                  "the chroot method runs the image's own %s apk, which this %s host "
	                  "cannot (no binfmt_misc qemu-%s); use packages.method: offline",
	                  want, u.machine, want);
}

static void flush_pkg(struct px_bake_pkg *cur, struct px_bake_pkg **v, size_t *n)
{
	if (cur->name) {
		*v = xreallocarray(*v, *n + 1, sizeof(**v));
		(*v)[(*n)++] = *cur;
	} else {
		free(cur->version);
		free(cur->checksum);
		free(cur->repository);
	}
	memset(cur, 0, sizeof(*cur));
}

/* The "P:name" / "V:version" / "C:checksum" fields of an apk installed database, whose
 * entries are separated by blank lines. */
static void parse_installed(const char *db, struct px_bake_pkg **ret, size_t *ret_n)
{
	struct px_bake_pkg *v = NULL, cur = {0};
	size_t n = 0;
	for (const char *p = db; *p;) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		if (len == 0) {
			flush_pkg(&cur, &v, &n);
		} else if (len > 2 && p[1] == ':') {
			char **field = p[0] == 'P'   ? &cur.name
			               : p[0] == 'V' ? &cur.version
			               : p[0] == 'C' ? &cur.checksum
			                             : NULL;
			if (field) {
				free(*field);
				*field = xstrndup(p + 2, len - 2);
			}
		}
		p += len + (nl ? 1 : 0);
	}
	flush_pkg(&cur, &v, &n);
	*ret = v;
	*ret_n = n;
}

static int read_installed(const char *image, uint64_t offset, char **ret, struct px_err **err)
{
	struct px_extfs *fs = NULL;
	if (px_extfs_open(image, offset, false, &fs, err) < 0)
		return -1;
	char *data = NULL;
	size_t len;
	struct px_err *e = NULL;
	int rc = px_extfs_read_file(fs, INSTALLED_DB, INSTALLED_MAX, &data, &len, &e);
	px_extfs_abort(fs);
	if (rc < 0 && e->errnum == ENOENT) {
		px_err_free(e);
		*ret = xstrdup("");
		return 0;
	}
	if (rc < 0) {
		*err = e;
		return -1;
	}
	*ret = data;
	return 0;
}

static int pkg_cmp(const void *a, const void *b)
{
	const struct px_bake_pkg *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : strcmp(x->version ? x->version : "", y->version ? y->version : "");
}

/* Fills 'ret' with what the installed database lists after the bake and did not before. */
static void diff_installed(const char *before, const char *after, struct px_bake_result *ret)
{
	struct px_bake_pkg *old = NULL, *now = NULL;
	size_t n_old = 0, n_now = 0;
	parse_installed(before, &old, &n_old);
	parse_installed(after, &now, &n_now);
	for (size_t i = 0; i < n_now; i++) {
		bool had = false;
		for (size_t j = 0; j < n_old && !had; j++)
			had = px_streq(now[i].name, old[j].name) &&
			      px_streq(now[i].version, old[j].version);
		if (had) {
			free(now[i].name);
			free(now[i].version);
			free(now[i].checksum);
			continue;
		}
		ret->pkgs = xreallocarray(ret->pkgs, ret->n_pkgs + 1, sizeof(*ret->pkgs));
		ret->pkgs[ret->n_pkgs++] = now[i];
	}
	free(now);
	for (size_t j = 0; j < n_old; j++) {
		free(old[j].name);
		free(old[j].version);
		free(old[j].checksum);
	}
	free(old);
	if (ret->n_pkgs > 1)
		qsort(ret->pkgs, ret->n_pkgs, sizeof(*ret->pkgs), pkg_cmp);
}

/* Keys are found as the offline method finds them: an absolute path, beside the manifest,
 * then in the data directories' keys/. A bare name found nowhere must already be in the
 * image's /etc/apk/keys, which the script trusts as well. */
static char **resolve_keys(const struct px_manifest *m, size_t *ret_n)
{
	char **v = xcalloc(m->packages.keys.n + 1, sizeof(*v));
	size_t n = 0;
	for (size_t i = 0; i < m->packages.keys.n; i++) {
		const char *k = m->packages.keys.v[i];
		_cleanup_free_ char *beside = xasprintf("%s/%s", m->dir ? m->dir : ".", k);
		char *path = NULL, *searched = NULL;
		if (k[0] == '/')
			path = xstrdup(k);
		else if (access(beside, F_OK) == 0 || strchr(k, '/'))
			path = steal_ptr(&beside);
		else if (px_datadir_find(m->dir, "keys", k, &path, &searched) < 0)
			path = NULL;
		free(searched);
		if (path)
			v[n++] = path;
	}
	*ret_n = n;
	return v;
}

static void free_strs(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

int px_bake_chroot(const struct px_bake_ctx *ctx, struct px_bake_result *ret, struct px_err **err)
{
	const struct px_manifest *m = ctx->m;
	const struct px_bake_exec *ex = pick_exec(m->packages.executor);
	const char *why = NULL;
	if (!ex->available(&why))
		return px_err_set(err, PX_EXIT_FAILURE, "chroot bake (executor %s): %s", ex->name,
		                  why);
	if (m->packages.add.n == 0)
		return px_err_set(err, PX_EXIT_MANIFEST, "chroot bake: packages.add is empty");
	if (ex != &px_bake_exec_lima && check_arch(m, err) < 0)
		return -1;

	_cleanup_free_ char *image = realpath(ctx->disk_path, NULL);
	if (!image)
		return px_err_errno(err, errno, "cannot resolve '%s'", ctx->disk_path);
	if (px_mkdir_p(ctx->work_dir, 0700, err) < 0)
		return -1;
	_cleanup_free_ char *work = realpath(ctx->work_dir, NULL);
	if (!work)
		return px_err_errno(err, errno, "cannot resolve work directory '%s'",
		                    ctx->work_dir);
	if (check_local_fs(work, err) < 0)
		return -1;

	_cleanup_free_ char *before = NULL;
	if (read_installed(image, ctx->root_offset, &before, err) < 0)
		return px_err_wrap(err, "reading the installed packages of '%s'", image);

	size_t n_keys = 0;
	char **keys = resolve_keys(m, &n_keys);
	for (size_t i = 0; i < n_keys; i++) {
		if (access(keys[i], R_OK) < 0) {
			int e = errno;
			px_err_errno(err, e, "cannot read key '%s'", keys[i]);
			free_strs(keys, n_keys);
			return -1;
		}
	}
	struct px_chroot_script s = {
	        .image = image,
	        .work_base = work,
	        .root_offset = ctx->root_offset,
	        .root_size = ctx->root_size,
	        .repositories = (const char *const *)m->packages.repositories.v,
	        .n_repositories = m->packages.repositories.n,
	        .keys = (const char *const *)keys,
	        .n_keys = n_keys,
	        .packages = (const char *const *)m->packages.add.v,
	        .n_packages = m->packages.add.n,
	        .allow_untrusted = m->packages.allow_untrusted,
	};
	int rc = ex->run(&s, work, err);
	free_strs(keys, n_keys);
	if (rc < 0)
		return px_err_wrap(err, "chroot bake (executor %s)", ex->name);

	_cleanup_free_ char *after = NULL;
	if (read_installed(image, ctx->root_offset, &after, err) < 0)
		return px_err_wrap(err, "reading the installed packages of '%s'", image);
	struct px_bake_result r = {0};
	diff_installed(before, after, &r);
	*ret = r;
	return 0;
}
