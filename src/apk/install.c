/* The package installer behind install.h. */
#include <openssl/evp.h>

#include "core/common.h"

#include "apk/db.h"
#include "apk/install.h"
#include "apk/package.h"
#include "core/buf.h"
#include "image/extfs.h"

/* The largest single file a package may carry. */
#define FILE_MAX     ((size_t)4 << 30)
#define ACCOUNTS_MAX (4u << 20)

struct id_name {
	char *name;
	uint32_t id;
};

struct px_apk_installer {
	struct px_extfs *fs;
	struct px_apk_db *db;
	int64_t epoch;
	struct id_name *users, *groups;
	size_t n_users, n_groups;
	const struct px_apk_package *pkg;
	struct px_strv own_links; /* symlinks the current package made: never followed */
};

static void ids_free(struct id_name *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
}

static void clear_links(struct px_apk_installer *in)
{
	for (size_t i = 0; i < in->own_links.n; i++)
		free(in->own_links.v[i]);
	free(in->own_links.v);
	in->own_links.v = NULL;
	in->own_links.n = 0;
}

void px_apk_installer_free(struct px_apk_installer *in)
{
	if (!in)
		return;
	ids_free(in->users, in->n_users);
	ids_free(in->groups, in->n_groups);
	clear_links(in);
	free(in);
}

/* Reads "name:x:id:..." lines (passwd and group share the first three fields). */
static void parse_accounts(const char *text, struct id_name **ret, size_t *ret_n)
{
	struct id_name *v = NULL;
	size_t n = 0;
	for (const char *l = text; l && *l;) {
		const char *nl = strchr(l, '\n');
		size_t len = nl ? (size_t)(nl - l) : strlen(l);
		_cleanup_free_ char *line = xstrndup(l, len);
		char *c1 = strchr(line, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (c1 && c2 && c2[1] >= '0' && c2[1] <= '9') {
			*c1 = 0;
			unsigned long id = strtoul(c2 + 1, NULL, 10);
			if (id < UINT32_MAX) {
				v = xreallocarray(v, n + 1, sizeof(*v));
				v[n++] = (struct id_name){xstrdup(line), (uint32_t)id};
			}
		}
		l = nl ? nl + 1 : NULL;
	}
	*ret = v;
	*ret_n = n;
}

static int read_accounts(struct px_extfs *fs, const char *path, struct id_name **ret, size_t *ret_n,
                         struct px_err **err)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	struct px_err *e = NULL;
	if (px_extfs_read_file(fs, path, ACCOUNTS_MAX, &text, &len, &e) < 0) {
		if (e && e->errnum == ENOENT) {
			px_err_free(e);
			*ret = NULL;
			*ret_n = 0;
			return 0;
		}
		*err = e;
		return -1;
	}
	parse_accounts(text, ret, ret_n);
	return 0;
}

int px_apk_installer_new(struct px_extfs *fs, struct px_apk_db *db, int64_t source_date_epoch,
                         struct px_apk_installer **ret, struct px_err **err)
{
	struct px_apk_installer *in = xcalloc(1, sizeof(*in));
	in->fs = fs;
	in->db = db;
	in->epoch = source_date_epoch;
	if (read_accounts(fs, "/etc/passwd", &in->users, &in->n_users, err) < 0 ||
	    read_accounts(fs, "/etc/group", &in->groups, &in->n_groups, err) < 0) {
		px_apk_installer_free(in);
		return -1;
	}
	*ret = in;
	return 0;
}

static uint32_t map_id(const struct id_name *v, size_t n, const char *name, uint32_t fallback)
{
	if (name && *name)
		for (size_t i = 0; i < n; i++)
			if (strcmp(v[i].name, name) == 0)
				return v[i].id;
	return fallback;
}

static int cmp_xattr(const void *a, const void *b)
{
	return strcmp(((const struct px_apk_xattr *)a)->name,
	              ((const struct px_apk_xattr *)b)->name);
}

static void hash_len_data(EVP_MD_CTX *ctx, const void *p, size_t len)
{
	uint8_t be[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
	                 (uint8_t)len};
	EVP_DigestUpdate(ctx, be, 4);
	EVP_DigestUpdate(ctx, p, len);
}

void px_apk_xattr_sum(const struct px_apk_xattr *x, size_t n, char out[31])
{
	out[0] = 0;
	if (n == 0)
		return;
	_cleanup_free_ struct px_apk_xattr *sorted = xcalloc(n, sizeof(*sorted));
	memcpy(sorted, x, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), cmp_xattr);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint8_t d[EVP_MAX_MD_SIZE];
	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) != 1)
		abort();
	for (size_t i = 0; i < n; i++) {
		hash_len_data(ctx, sorted[i].name, strlen(sorted[i].name));
		hash_len_data(ctx, sorted[i].value, sorted[i].len);
	}
	EVP_DigestFinal_ex(ctx, d, NULL);
	EVP_MD_CTX_free(ctx);
	px_apk_qsum(d, out);
}

/* apk's rule for a path that another installed package owns. Returns 1 to write it, 0 to
 * skip it (the owner wins), -1 for a conflict. */
static int may_replace(struct px_apk_installer *in, const char *path, struct px_err **err)
{
	const struct px_apk_pkginfo *i = &in->pkg->info;
	const char *owner = px_apk_db_owner(in->db, path);
	if (!owner || strcmp(owner, i->name) == 0)
		return 1;
	const char *origin = px_apk_db_origin(in->db, owner);
	if (origin && i->origin && strcmp(origin, i->origin) == 0)
		return 1;
	uint32_t owner_prio = 0;
	long opkg = px_apk_db_replaces(in->db, owner, i->name, &owner_prio) ? (long)owner_prio : -1;
	long npkg = -1;
	for (size_t k = 0; k < i->replaces.n; k++) {
		const char *r = i->replaces.v[k];
		size_t len = strcspn(r, "<>=~");
		if (strlen(owner) == len && strncmp(owner, r, len) == 0)
			npkg = i->replaces_priority;
	}
	if (opkg > npkg)
		return 0;
	if (npkg >= 0)
		return 1;
	return px_err_set(err, PX_EXIT_INPUT,
	                  "package '%s-%s' would overwrite '/%s', which belongs to package '%s' "
	                  "(neither replaces the other)",
	                  i->name, i->version, path, owner);
}

static int set_xattrs(struct px_apk_installer *in, const char *abs, const struct px_apk_entry *e,
                      struct px_err **err)
{
	const char *names[64];
	const void *values[64];
	size_t lens[64];
	size_t n = e->n_xattrs > 64 ? 64 : e->n_xattrs;
	for (size_t k = 0; k < n; k++) {
		names[k] = e->xattrs[k].name;
		values[k] = e->xattrs[k].value;
		lens[k] = e->xattrs[k].len;
	}
	return px_extfs_set_xattrs(in->fs, abs, names, values, lens, n, err);
}

/* A path being resolved: components on a stack, at most this many links followed. */
#define MAX_LINKS      40
#define MAX_COMPONENTS 256

struct comps {
	char *v[MAX_COMPONENTS];
	size_t n;
};

static void comps_clear(struct comps *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->v[i]);
	c->n = 0;
}

static char *comps_join(const struct comps *c, size_t n, const char *leaf)
{
	struct px_buf b = PX_BUF_INIT;
	for (size_t i = 0; i < n; i++)
		px_buf_printf(&b, "/%s", c->v[i]);
	if (leaf)
		px_buf_printf(&b, "/%s", leaf);
	if (!b.len)
		px_buf_puts(&b, "/");
	return px_buf_steal(&b, NULL);
}

/* Pushes the components of 'path' in front of the pending ones (kept reversed in todo). */
static int push_todo(struct comps *todo, const char *path)
{
	_cleanup_free_ char *copy = xstrdup(path);
	char *parts[MAX_COMPONENTS];
	size_t n = 0;
	for (char *save = NULL, *c = strtok_r(copy, "/", &save); c;
	     c = strtok_r(NULL, "/", &save)) {
		if (n == MAX_COMPONENTS)
			return -1;
		parts[n++] = c;
	}
	if (todo->n + n > MAX_COMPONENTS)
		return -1;
	while (n > 0)
		todo->v[todo->n++] = xstrdup(parts[--n]);
	return 0;
}

/* Where the parent directory of 'rel' really is in the image. Symbolic links already in
 * the image (a /usr-merged layout's /lib -> usr/lib) are followed the way the kernel
 * would inside a chroot: an absolute target starts again at the image's root and ".."
 * never goes above it, so nothing leaves the filesystem. A link the current package made
 * itself is never followed: a package cannot aim its own later entries elsewhere. Returns
 * the absolute path to write (caller frees). */
static int resolve(struct px_apk_installer *in, const char *rel, char **ret, struct px_err **err)
{
	struct comps done = {0}, todo = {0};
	const char *slash = strrchr(rel, '/');
	const char *leaf = slash ? slash + 1 : rel;
	_cleanup_free_ char *parent = slash ? xstrndup(rel, (size_t)(slash - rel)) : xstrdup("");
	int links = 0, r = -1;

	if (push_todo(&todo, parent) < 0)
		goto too_deep;
	while (todo.n > 0) {
		char *c = todo.v[--todo.n];
		if (strcmp(c, ".") == 0) {
			free(c);
			continue;
		}
		if (strcmp(c, "..") == 0) {
			free(c);
			if (done.n > 0)
				free(done.v[--done.n]);
			continue;
		}
		if (done.n == MAX_COMPONENTS) {
			free(c);
			goto too_deep;
		}
		done.v[done.n++] = c;
		_cleanup_free_ char *here = comps_join(&done, done.n, NULL);
		struct px_extfs_attrs st;
		struct px_err *e = NULL;
		if (px_extfs_stat(in->fs, here, &st, &e) < 0) {
			int missing = e && e->errnum == ENOENT;
			if (!missing) {
				*err = e;
				goto out;
			}
			px_err_free(e);
			continue; /* created on the way by the write */
		}
		if ((st.mode & S_IFMT) != S_IFLNK)
			continue;
		for (size_t i = 0; i < in->own_links.n; i++) {
			if (strcmp(in->own_links.v[i], here + 1) == 0) {
				px_err_set(err, PX_EXIT_INPUT,
				           "'%s' of package '%s' passes through the package's own "
				           "symbolic link '%s': refusing to follow it",
				           rel, in->pkg->info.name, here);
				goto out;
			}
		}
		_cleanup_free_ char *target = NULL;
		if (++links > MAX_LINKS || px_extfs_readlink(in->fs, here, &target, err) < 0) {
			if (links > MAX_LINKS)
				px_err_set(err, PX_EXIT_INPUT,
				           "'%s': more than %d symbolic links on the way", rel,
				           MAX_LINKS);
			goto out;
		}
		free(done.v[--done.n]);
		if (target[0] == '/')
			comps_clear(&done);
		if (push_todo(&todo, target) < 0)
			goto too_deep;
	}
	*ret = comps_join(&done, done.n, leaf);
	r = 0;
	goto out;
too_deep:
	px_err_set(err, PX_EXIT_INPUT, "'%s' is too deep", rel);
out:
	comps_clear(&done);
	comps_clear(&todo);
	return r;
}

static int install_entry(void *ctx, const struct px_apk_entry *e, struct px_err **err)
{
	struct px_apk_installer *in = ctx;
	const char *leaf = strrchr(e->path, '/');
	leaf = leaf ? leaf + 1 : e->path;
	/* What apk never installs from a data tar. */
	if (e->path[0] == '.' || (e->type != PX_APK_DIR && strncmp(leaf, ".keep_", 6) == 0))
		return 0;

	_cleanup_free_ char *abs = NULL;
	if (resolve(in, e->path, &abs, err) < 0)
		return -1;
	struct px_extfs_attrs a = {
	        .mode = e->mode,
	        .uid = map_id(in->users, in->n_users, e->uname, e->uid),
	        .gid = map_id(in->groups, in->n_groups, e->gname, e->gid),
	        .mtime = e->mtime > in->epoch ? in->epoch
	                 : e->mtime < 0       ? 0
	                                      : e->mtime,
	};
	char xsum[PX_APK_QSUM_LEN] = "";
	px_apk_xattr_sum(e->xattrs, e->n_xattrs, xsum);

	if (e->type == PX_APK_DIR) {
		struct px_extfs_attrs st;
		struct px_err *nf = NULL;
		bool exists = px_extfs_stat(in->fs, abs, &st, &nf) == 0;
		if (!exists && nf && nf->errnum != ENOENT) {
			*err = nf;
			return -1;
		}
		px_err_free(nf);
		if (!exists &&
		    (px_extfs_mkdir_p(in->fs, abs, &a, err) < 0 || set_xattrs(in, abs, e, err) < 0))
			return -1;
		px_apk_db_add_dir(in->db, e->path, a.uid, a.gid, e->mode, xsum);
		return 0;
	}

	int r = may_replace(in, e->path, err);
	if (r <= 0)
		return r;
	char sum[PX_APK_QSUM_LEN] = "";
	if (e->has_sha1)
		px_apk_qsum(e->sha1, sum);
	uint32_t mode = e->mode;
	switch (e->type) {
	case PX_APK_REG:
		r = px_extfs_write_file(in->fs, abs, e->content, e->size, &a, err);
		break;
	case PX_APK_SYMLINK:
		r = px_extfs_symlink(in->fs, abs, e->link, &a, err);
		mode = 0777;
		if (r == 0) {
			in->own_links.v = xreallocarray(in->own_links.v, in->own_links.n + 1,
			                                sizeof(*in->own_links.v));
			in->own_links.v[in->own_links.n++] = xstrdup(abs + 1);
		}
		break;
	case PX_APK_HARDLINK: {
		_cleanup_free_ char *target = NULL;
		if (resolve(in, e->link, &target, err) < 0)
			return -1;
		const char *tsum = px_apk_db_file_sum(in->db, e->link);
		if (!*tsum)
			return px_err_set(
			        err, PX_EXIT_INPUT,
			        "package '%s': hard link '%s' points to '%s', which is not "
			        "an earlier file of the package",
			        in->pkg->info.name, e->path, e->link);
		char q[PX_APK_QSUM_LEN];
		/* The link has its target's content, so its Z: is the target's. */
		snprintf(q, sizeof(q), "%s", tsum);
		if (px_extfs_hardlink(in->fs, abs, target, &a, err) < 0)
			return -1;
		px_apk_db_add_file(in->db, e->path, a.uid, a.gid, mode, q, xsum);
		return 0;
	}
	default:
		r = px_err_set(err, PX_EXIT_INPUT, "'%s': unsupported entry type", e->path);
	}
	if (r < 0)
		return -1;
	if (e->type == PX_APK_REG && set_xattrs(in, abs, e, err) < 0)
		return -1;
	px_apk_db_add_file(in->db, e->path, a.uid, a.gid, mode, sum[0] ? sum : NULL, xsum);
	return 0;
}

/* An upgrade removes what the old version had and the new one does not, as apk does. */
static int remove_stale(struct px_apk_installer *in, struct px_err **err)
{
	char **v = NULL;
	size_t n = 0;
	int r = 0;
	px_apk_db_take_stale(in->db, &v, &n);
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *abs = NULL;
		struct px_err *e = NULL;
		if (r == 0 && resolve(in, v[i], &abs, err) < 0)
			r = -1;
		if (r == 0 && px_extfs_unlink(in->fs, abs, in->epoch, &e) < 0) {
			/* Already gone or made a directory by someone else: nothing to remove. */
			if (e && (e->errnum == ENOENT || e->errnum == EISDIR))
				px_err_free(e);
			else {
				*err = e;
				r = -1;
			}
		}
		free(v[i]);
	}
	free(v);
	return r;
}

int px_apk_install(struct px_apk_installer *in, const struct px_apk_package *p, struct px_err **err)
{
	in->pkg = p;
	clear_links(in);
	px_apk_db_begin_package(in->db, p);
	int r = px_apk_package_foreach(p, FILE_MAX, install_entry, in, err);
	px_apk_db_end_package(in->db);
	if (r == 0)
		r = remove_stale(in, err);
	in->pkg = NULL;
	if (r < 0)
		return px_err_wrap(err, "installing '%s-%s'", p->info.name, p->info.version);
	return 0;
}
