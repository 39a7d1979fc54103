/* The offline bake method: pexi is the package installer (see bake.h). */
#include <curl/curl.h>

#include "core/common.h"

#include "apk/db.h"
#include "apk/index.h"
#include "apk/install.h"
#include "apk/package.h"
#include "apk/repo.h"
#include "apk/sign.h"
#include "apk/solver.h"
#include "bake/bake.h"
#include "core/buf.h"
#include "core/file.h"
#include "core/log.h"
#include "core/sha256.h"
#include "image/extfs.h"
#include "manifest/datadir.h"
#include "manifest/manifest.h"

#define INDEX_MAX     (UINT64_C(256) << 20) /* the installed database */
#define PACKAGE_MAX   (UINT64_C(2) << 30)
#define FIRSTBOOT_DIR "/var/lib/pexi/firstboot"

/* Bytes downloaded into memory with a cap. */
struct dl {
	struct px_buf buf;
	bool too_big;
};

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
	struct dl *d = ctx;
	if (px_buf_append(&d->buf, p, size * n, NULL) < 0) {
		d->too_big = true;
		return 0;
	}
	return size * n;
}

static void curl_cleanupp(CURL **c)
{
	if (*c)
		curl_easy_cleanup(*c);
}

/* GETs url (http, https or file) into *ret (at most max bytes). */
static int download(const char *url, uint64_t max, struct px_buf *ret, struct px_err **err)
{
	_cleanup_(curl_cleanupp) CURL *curl = curl_easy_init();
	char errbuf[CURL_ERROR_SIZE] = "";
	struct dl d = {.buf = {NULL, 0, 0, (size_t)max}};
	if (!curl)
		abort();
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https,file");
	curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(curl, CURLOPT_FAILONERROR, 1L);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 30L);
	curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1024L);
	curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, 60L);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "pexi/" PX_VERSION);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &d);
	CURLcode c = curl_easy_perform(curl);
	if (c != CURLE_OK) {
		px_buf_free(&d.buf);
		if (d.too_big)
			return px_err_set(err, PX_EXIT_INPUT,
			                  "'%s' is larger than %" PRIu64 " bytes", url, max);
		return px_err_set(err, PX_EXIT_FAILURE, "cannot download '%s': %s", url,
		                  errbuf[0] ? errbuf : curl_easy_strerror(c));
	}
	*ret = d.buf;
	return 0;
}

static int load_keys(const struct px_manifest *m, struct px_apk_keyring *kr, struct px_err **err)
{
	for (size_t i = 0; i < m->packages.keys.n; i++) {
		const char *name = m->packages.keys.v[i];
		_cleanup_free_ char *path = NULL, *searched = NULL;
		_cleanup_free_ char *beside =
		        name[0] == '/' ? xstrdup(name)
		                       : xasprintf("%s/%s", m->dir ? m->dir : ".", name);
		if (access(beside, R_OK) == 0) {
			path = steal_ptr(&beside);
		} else if (px_datadir_find(m->dir, "keys", name, &path, &searched) < 0) {
			/* Recipes name the keys of every architecture; only the signer matters. */
			px_log_warn(
			        "packages.keys: '%s' not found (looked beside the manifest and in "
			        "%s); indexes signed with it will not verify",
			        name, searched ? searched : "keys/");
			continue;
		}
		if (px_apk_keyring_add_file(kr, path, err) < 0)
			return px_err_wrap(err, "packages.keys '%s'", name);
	}
	return 0;
}

/* Indexes fetched while computing the stage key are kept for the bake that follows in the
 * same process, so each is downloaded and verified once per build. */
struct memo {
	char *repo;
	struct px_apk_index idx;
	char sha256[PX_SHA256_HEX];
	enum px_arch arch;
	bool offline;
	bool taken;
};
static struct memo *memos;
static size_t n_memos;

static int get_index(const struct px_bake_ctx *ctx, const struct px_apk_keyring *kr, size_t i,
                     struct memo **ret, struct px_err **err)
{
	const struct px_manifest *m = ctx->m;
	const char *repo = m->packages.repositories.v[i];
	for (size_t k = 0; k < n_memos; k++) {
		if (strcmp(memos[k].repo, repo) == 0 && memos[k].arch == m->arch &&
		    memos[k].offline == ctx->offline && !memos[k].taken) {
			*ret = &memos[k];
			return 0;
		}
	}
	struct px_apk_repo_opts o = {
	        .url = repo,
	        .arch = px_arch_name(m->arch),
	        .cache_dir = ctx->cache_dir,
	        .offline = ctx->offline,
	        .keys = kr,
	        .allow_untrusted = m->packages.allow_untrusted,
	        .repo = (int)i,
	};
	struct memo mm = {.repo = xstrdup(repo), .arch = m->arch, .offline = ctx->offline};
	if (px_apk_repo_fetch_index(&o, &mm.idx, mm.sha256, err) < 0) {
		free(mm.repo);
		return -1;
	}
	memos = xreallocarray(memos, n_memos + 1, sizeof(*memos));
	memos[n_memos] = mm;
	*ret = &memos[n_memos++];
	return 0;
}

int px_bake_index_digests(const struct px_bake_ctx *ctx, char **ret, struct px_err **err)
{
	const struct px_manifest *m = ctx->m;
	struct px_buf out = PX_BUF_INIT;
	struct px_apk_keyring *kr = px_apk_keyring_new();
	int r = load_keys(m, kr, err);
	for (size_t i = 0; r == 0 && i < m->packages.repositories.n; i++) {
		struct memo *mm;
		r = get_index(ctx, kr, i, &mm, err);
		if (r == 0)
			px_buf_printf(&out, "index=%s %s\n", mm->repo, mm->sha256);
	}
	px_apk_keyring_free(kr);
	if (r < 0) {
		px_buf_free(&out);
		return -1;
	}
	*ret = px_buf_steal(&out, NULL);
	return 0;
}

struct bake {
	const struct px_bake_ctx *ctx;
	struct px_apk_keyring *kr;
	struct px_apk_repos *repos;
	struct px_extfs *fs;
	struct px_apk_db *db;
	struct px_apk_installer *in;
	struct px_apk_index installed;
	bool have_installed;
	struct px_apk_solution sol;
	bool have_sol;
	struct px_buf firstboot; /* the list of deferred scripts */
	unsigned n_deferred;
	struct px_bake_result *res;
};

static void bake_free(struct bake *b)
{
	if (b->have_sol)
		px_apk_solution_free(&b->sol);
	px_apk_installer_free(b->in);
	px_apk_db_free(b->db);
	px_extfs_abort(b->fs);
	if (b->have_installed)
		px_apk_index_free(&b->installed);
	px_apk_repos_free(b->repos);
	px_apk_keyring_free(b->kr);
	px_buf_free(&b->firstboot);
}

static const char *repo_url(const struct bake *b, int repo)
{
	const struct px_manifest *m = b->ctx->m;
	return repo >= 0 && (size_t)repo < m->packages.repositories.n
	               ? m->packages.repositories.v[repo]
	               : "installed";
}

static int load_repos(struct bake *b, struct px_err **err)
{
	const struct px_manifest *m = b->ctx->m;
	b->kr = px_apk_keyring_new();
	b->repos = px_apk_repos_new();
	if (load_keys(m, b->kr, err) < 0)
		return -1;
	for (size_t i = 0; i < m->packages.repositories.n; i++) {
		struct memo *mm;
		if (get_index(b->ctx, b->kr, i, &mm, err) < 0)
			return -1;
		if (mm->idx.sig_status != PX_APK_SIG_OK)
			px_log_warn("index of '%s' is not trusted (%s), used because "
			            "packages.allow_untrusted is set",
			            mm->repo, px_apk_sig_status_name(mm->idx.sig_status));
		mm->taken = true;
		px_apk_repos_add(b->repos, &mm->idx);
	}
	return 0;
}

static int open_image(struct bake *b, struct px_err **err)
{
	const struct px_bake_ctx *ctx = b->ctx;
	if (px_extfs_open(ctx->disk_path, ctx->root_offset, true, &b->fs, err) < 0)
		return -1;
	px_extfs_set_time(b->fs, ctx->source_date_epoch);
	if (px_apk_db_load(b->fs, &b->db, err) < 0)
		return -1;
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	struct px_err *e = NULL;
	if (px_extfs_read_file(b->fs, "/lib/apk/db/installed", INDEX_MAX, &text, &len, &e) < 0) {
		if (!e || e->errnum != ENOENT) {
			*err = e;
			return -1;
		}
		px_err_free(e);
		return 0;
	}
	if (px_apk_index_parse(text, len, "/lib/apk/db/installed", PX_APK_REPO_INSTALLED,
	                       &b->installed, err) < 0)
		return px_err_wrap(err, "reading the image's installed packages");
	b->have_installed = true;
	return 0;
}

static int solve(struct bake *b, struct px_err **err)
{
	const struct px_manifest *m = b->ctx->m;
	_cleanup_buf_ struct px_buf w = PX_BUF_INIT;
	struct px_apk_deps world = {0};
	char *const *have;
	size_t n_have = 0;
	/* As apk add does, the image's own world counts, so nothing it needs is dropped or
	 * contradicted; an entry the image does not actually have installed (a base image
	 * whose world and database disagree) is left out rather than fetched. */
	px_apk_db_world_list(b->db, &have, &n_have);
	for (size_t i = 0; i < n_have; i++) {
		struct px_apk_dep d = {0};
		if (px_apk_dep_parse(have[i], strlen(have[i]), &d, NULL) == 0 &&
		    px_apk_db_version(b->db, d.name))
			px_buf_printf(&w, "%s ", have[i]);
		else
			px_log_debug("/etc/apk/world: '%s' is not installed in the image; not "
			             "resolving it",
			             have[i]);
		px_apk_dep_free(&d);
	}
	for (size_t i = 0; i < m->packages.add.n; i++)
		px_buf_printf(&w, "%s ", m->packages.add.v[i]);
	if (px_apk_deps_parse(w.data ? w.data : "", w.len, &world, err) < 0)
		return px_err_wrap(err, "packages.add");
	struct px_apk_solve_opts o = {
	        .repos = b->repos,
	        .installed = b->have_installed ? &b->installed : NULL,
	        .world = world.v,
	        .n_world = world.n,
	        .arch = px_arch_name(m->arch),
	};
	int r = px_apk_solve(&o, &b->sol, err);
	px_apk_deps_free(&world);
	if (r < 0)
		return -1;
	b->have_sol = true;
	/* pexi only adds: what apk would remove as no longer needed stays installed. */
	for (size_t i = 0; i < b->sol.n_remove; i++)
		px_log_debug("'%s' is no longer required by the world; left installed",
		             b->sol.remove[i]->name);
	return 0;
}

/* The locked set instead of a solution: every locked package must still be in its
 * repository with the same version and checksum. */
static int frozen_set(struct bake *b, const struct px_apk_pkg ***ret, size_t *ret_n,
                      struct px_err **err)
{
	const struct px_bake_lock *lock = b->ctx->frozen;
	_cleanup_buf_ struct px_buf why = PX_BUF_INIT;
	const struct px_apk_pkg **v = xcalloc(lock->n + 1, sizeof(*v));
	size_t n = 0;
	for (size_t i = 0; i < lock->n; i++) {
		const struct px_bake_pkg *l = &lock->v[i];
		const struct px_apk_provider *pv;
		size_t np = 0;
		const struct px_apk_pkg *found = NULL, *other = NULL;
		px_apk_repos_providers(b->repos, l->name, &pv, &np);
		for (size_t k = 0; k < np; k++) {
			const struct px_apk_pkg *p = pv[k].pkg;
			if (pv[k].provide || !px_streq(p->name, l->name))
				continue;
			if (px_streq(p->version, l->version) && px_streq(p->checksum, l->checksum))
				found = p;
			else if (!other)
				other = p;
		}
		if (found) {
			v[n++] = found;
			continue;
		}
		if (other && px_streq(other->version, l->version))
			px_buf_printf(&why,
			              "; '%s-%s' was rebuilt upstream (checksum %s, locked %s)",
			              l->name, l->version,
			              other->checksum ? other->checksum : "none", l->checksum);
		else if (other)
			px_buf_printf(&why, "; '%s' is now %s upstream (locked %s)", l->name,
			              other->version, l->version);
		else
			px_buf_printf(&why, "; '%s-%s' is no longer in any repository", l->name,
			              l->version);
	}
	if (why.len) {
		free(v);
		return px_err_set(err, PX_EXIT_INPUT,
		                  "--frozen: the locked package set cannot be installed%s",
		                  why.data);
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

/* --frozen after the locked packages were all found: the solver must still choose exactly
 * them (it installs in dependency order); anything else it would choose is what changed. */
static int frozen_matches(struct bake *b, struct px_err **err)
{
	const struct px_bake_lock *lock = b->ctx->frozen;
	_cleanup_buf_ struct px_buf why = PX_BUF_INIT;
	for (size_t i = 0; i < b->sol.n; i++) {
		const struct px_apk_pkg *p = b->sol.pkgs[i];
		bool locked = false;
		if (p->repo == PX_APK_REPO_INSTALLED)
			continue;
		for (size_t k = 0; k < lock->n && !locked; k++)
			locked = px_streq(lock->v[k].name, p->name) &&
			         px_streq(lock->v[k].version, p->version) &&
			         px_streq(lock->v[k].checksum, p->checksum);
		if (!locked)
			px_buf_printf(&why,
			              "; upstream now resolves to '%s-%s', which is not locked",
			              p->name, p->version);
	}
	if (why.len)
		return px_err_set(err, PX_EXIT_INPUT, "--frozen: the package set changed%s",
		                  why.data);
	return 0;
}

/* Reads and verifies a package: its control member against the index's C:, its data
 * against .PKGINFO's datahash. */
static int load_verified(const char *buf, size_t len, const char *what, const char *checksum,
                         struct px_apk_package **ret, struct px_err **err)
{
	struct px_apk_package *p = NULL;
	if (px_apk_package_read(buf, len, what, &p, err) < 0)
		return -1;
	if (px_apk_package_verify(p, checksum, err) < 0) {
		px_apk_package_free(p);
		return -1;
	}
	*ret = p;
	return 0;
}

/* The package's bytes (*ret_buf, which *ret points into) from the cache, or downloaded and
 * cached once verified. A cached copy is named by its control checksum and checked like a
 * download; a bad one is dropped and fetched again. */
static int get_package(struct bake *b, const struct px_apk_pkg *ip, char **ret_buf,
                       struct px_apk_package **ret, struct px_err **err)
{
	const struct px_bake_ctx *ctx = b->ctx;
	const char *repo = repo_url(b, ip->repo);
	_cleanup_free_ char *stem = px_apk_pkg_filename(ip);
	_cleanup_free_ char *url = px_apk_repo_package_url(repo, px_arch_name(ctx->m->arch), ip);
	char hex[2 * 32 + 1] = "";
	for (size_t i = 0; i < ip->csum_len; i++)
		snprintf(hex + 2 * i, 3, "%02x", ip->csum[i]);
	_cleanup_free_ char *dir = xasprintf("%s/apk", ctx->cache_dir);
	_cleanup_free_ char *path = xasprintf("%s/pkg-%s-%s.apk", dir, stem, hex);
	_cleanup_free_ char *data = NULL;
	size_t len = 0;
	struct px_err *e = NULL;

	if (px_file_read(path, PACKAGE_MAX, &data, &len, &e) == 0) {
		if (load_verified(data, len, stem, ip->checksum, ret, &e) == 0) {
			*ret_buf = steal_ptr(&data);
			return 0;
		}
		px_log_warn("dropping the cached '%s': %s", path, e && e->msg ? e->msg : "bad");
		unlink(path);
		free(steal_ptr(&data));
	}
	px_err_clear(&e);
	if (ctx->offline) {
		px_err_set(err, PX_EXIT_FAILURE, "offline, and '%s' is not in the cache", url);
		return -1;
	}
	struct px_buf buf = PX_BUF_INIT;
	if (download(url, PACKAGE_MAX, &buf, err) < 0)
		return -1;
	len = buf.len;
	data = px_buf_steal(&buf, NULL);
	if (load_verified(data, len, stem, ip->checksum, ret, err) < 0)
		return -1;
	if (px_mkdir_p(dir, 0755, err) < 0 ||
	    px_atomic_write_file(path, data, len, 0644, err) < 0) {
		px_apk_package_free(*ret);
		*ret = NULL;
		return -1;
	}
	*ret_buf = steal_ptr(&data);
	return 0;
}

/* Queues the package's install scripts for pexi-firstboot. */
static int defer_scripts(struct bake *b, const struct px_apk_package *p, struct px_err **err)
{
	static const enum px_apk_script_type order[] = {PX_APK_PRE_INSTALL, PX_APK_POST_INSTALL,
	                                                PX_APK_TRIGGER};
	struct px_extfs_attrs a = {0700, 0, 0, b->ctx->source_date_epoch};
	for (size_t k = 0; k < PX_ARRAY_SIZE(order); k++) {
		const struct px_apk_script *s = &p->scripts[order[k]];
		if (!s->body || (order[k] == PX_APK_TRIGGER && !p->info.triggers.n))
			continue;
		const char *action = px_apk_script_name(order[k]);
		/* Triggers run after every install script, as apk runs them at the end. */
		unsigned seq = order[k] == PX_APK_TRIGGER ? 5000 + b->n_deferred : b->n_deferred;
		_cleanup_free_ char *name = xasprintf("%04u-%s.%s", seq, p->info.name, action);
		_cleanup_free_ char *path = xasprintf("%s/%s", FIRSTBOOT_DIR, name);
		if (px_extfs_write_file(b->fs, path, s->body, s->len, &a, err) < 0)
			return -1;
		/* What apk passes: the new version to install scripts, the watched directories
		 * (globs, expanded by the service) to a trigger. */
		_cleanup_buf_ struct px_buf args = PX_BUF_INIT;
		if (order[k] == PX_APK_TRIGGER)
			for (size_t t = 0; t < p->info.triggers.n; t++)
				px_buf_printf(&args, "%s\n", p->info.triggers.v[t]);
		else
			px_buf_printf(&args, "%s\n", p->info.version);
		_cleanup_free_ char *apath = xasprintf("%s.args", path);
		struct px_extfs_attrs aa = {0600, 0, 0, a.mtime};
		if (px_extfs_write_file(b->fs, apath, args.data, args.len, &aa, err) < 0)
			return -1;
		b->n_deferred++;
		b->res->deferred = xreallocarray(b->res->deferred, b->res->n_deferred + 1,
		                                 sizeof(*b->res->deferred));
		b->res->deferred[b->res->n_deferred++] = xasprintf("%s.%s", p->info.name, action);
	}
	return 0;
}

static int install_firstboot_service(struct bake *b, struct px_err **err)
{
	const struct px_manifest *m = b->ctx->m;
	_cleanup_free_ char *tpl = NULL, *searched = NULL;
	int64_t t = b->ctx->source_date_epoch;
	struct px_extfs_attrs exe = {0755, 0, 0, t}, dir = {0755, 0, 0, t};
	if (px_datadir_find(m->dir, "templates", "openrc/pexi-firstboot", &tpl, &searched) < 0)
		return px_err_set(err, PX_EXIT_FAILURE,
		                  "template 'openrc/pexi-firstboot' not found (looked in %s)",
		                  searched ? searched : "templates/");
	if (px_extfs_write_host_file(b->fs, "/etc/init.d/pexi-firstboot", tpl, &exe, err) < 0 ||
	    px_extfs_mkdir_p(b->fs, "/etc/runlevels/default", &dir, err) < 0 ||
	    px_extfs_symlink(b->fs, "/etc/runlevels/default/pexi-firstboot",
	                     "/etc/init.d/pexi-firstboot", &dir, err) < 0)
		return px_err_wrap(err, "installing the pexi-firstboot service");
	return 0;
}

static int cmp_pkg(const void *a, const void *b)
{
	const struct px_bake_pkg *x = a, *y = b;
	return strcmp(x->name, y->name);
}

static int install_all(struct bake *b, const struct px_apk_pkg *const *v, size_t n,
                       struct px_err **err)
{
	if (px_apk_installer_new(b->fs, b->db, b->ctx->source_date_epoch, &b->in, err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const struct px_apk_pkg *ip = v[i];
		if (ip->repo == PX_APK_REPO_INSTALLED)
			continue;
		const char *have = px_apk_db_checksum(b->db, ip->name);
		if (have && px_streq(have, ip->checksum))
			continue;
		_cleanup_free_ char *buf = NULL;
		struct px_apk_package *p = NULL;
		_cleanup_free_ char *what = px_apk_pkg_filename(ip);
		if (get_package(b, ip, &buf, &p, err) < 0 || !p) {
			px_err_wrap(err, "package '%s'", what);
			return -1;
		}
		if (px_apk_install(b->in, p, err) < 0 || defer_scripts(b, p, err) < 0) {
			px_apk_package_free(p);
			return -1;
		}
		px_log_debug("installed %s (%s)", what, repo_url(b, ip->repo));
		px_apk_package_free(p);
		struct px_bake_result *r = b->res;
		r->pkgs = xreallocarray(r->pkgs, r->n_pkgs + 1, sizeof(*r->pkgs));
		r->pkgs[r->n_pkgs++] = (struct px_bake_pkg){
		        xstrdup(ip->name), xstrdup(ip->version),
		        xstrdup(ip->checksum ? ip->checksum : ""), xstrdup(repo_url(b, ip->repo))};
	}
	qsort(b->res->pkgs, b->res->n_pkgs, sizeof(*b->res->pkgs), cmp_pkg);
	return 0;
}

int px_bake_offline(const struct px_bake_ctx *ctx, struct px_bake_result *ret, struct px_err **err)
{
	const struct px_manifest *m = ctx->m;
	struct px_bake_result res = {0};
	struct bake b = {.ctx = ctx, .res = &res};
	_cleanup_free_ const struct px_apk_pkg **frozen = NULL;
	const struct px_apk_pkg *const *set;
	size_t n_set = 0;
	int r = -1;

	if (load_repos(&b, err) < 0 || open_image(&b, err) < 0)
		goto out;
	if (ctx->frozen && frozen_set(&b, &frozen, &n_set, err) < 0)
		goto out;
	if (solve(&b, err) < 0)
		goto out;
	if (ctx->frozen && frozen_matches(&b, err) < 0)
		goto out;
	set = b.sol.pkgs;
	n_set = b.sol.n;
	if (install_all(&b, set, n_set, err) < 0)
		goto out;
	for (size_t i = 0; i < m->packages.add.n; i++) {
		const char *w = m->packages.add.v[i];
		px_apk_db_world_add(b.db, w);
	}
	if (b.n_deferred && install_firstboot_service(&b, err) < 0)
		goto out;
	if (px_apk_db_write(b.db, b.fs, ctx->source_date_epoch, err) < 0)
		goto out;
	struct px_extfs *fs = steal_ptr(&b.fs);
	if (px_extfs_close(fs, err) < 0)
		goto out;
	*ret = res;
	memset(&res, 0, sizeof(res));
	r = 0;
out:
	bake_free(&b);
	px_bake_result_free(&res);
	return r;
}
