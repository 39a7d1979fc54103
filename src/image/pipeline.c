#include <dirent.h>
#include <stdarg.h>
#include <sys/file.h>
#include <time.h>

#include "core/common.h"

#include "core/clock.h"
#include "core/buf.h"
#include "bake/bake.h"
#include "core/file.h"
#include "core/log.h"
#include "image/cloudinit.h"
#include "image/fetch.h"
#include "image/fsgrow.h"
#include "image/gpt.h"
#include "image/patch.h"
#include "image/pipeline.h"
#include "image/seal.h"
#include "image/seed.h"
#include "image/sparse.h"
#include "image/vhd.h"
#include "manifest/datadir.h"
#include "manifest/manifest.h"

/* Bumped when a stage's code changes what it writes, so old cached outputs are not reused. */
#define CONVERT_VERSION "convert/1"
#define GROW_VERSION    "grow/1"
#define FSGROW_VERSION  "fsgrow/1"
#define PATCH_VERSION   "patch/1"
#define BAKE_VERSION    "bake/1"
#define SEED_VERSION    "seed/1"

static const char *const stage_names[PX_STAGE_COUNT] = {
        "fetch", "convert", "grow", "fsgrow", "patch", "bake", "seed", "seal",
};

const char *px_stage_name(enum px_stage s)
{
	return s < PX_STAGE_COUNT ? stage_names[s] : "?";
}

/* State of one run. */
struct build {
	const struct px_manifest *m;
	const struct px_build_opts *opts;
	struct px_build_report *r;
	char *stages_dir;
	char *cache_dir;
	char *convert_path; /* stages/convert-KEY.raw */
	char *fsgrow_path;  /* stages/fsgrow-KEY.raw */
	struct px_seal_previous prev;
	struct px_seed_content seed;
	/* What a template may refer to: {{ name }}, {{ arch }}, {{ console }}, {{ user }}. They
	 * feed both the patch stage and its key, so they are made once. */
	char *template_var_v[4];
	struct px_strv template_vars;
	/* The manifest's files, plus the guest helper when the image runs pexi-boot. */
	struct px_file_entry *files;
	size_t n_files;
	struct px_file_entry guest_entry;
};

#define GUEST_SERVICE "/etc/init.d/pexi-boot"
#define GUEST_HELPER  "/usr/local/bin/pexi-guest"

/* The pexi-boot service (recipe alpine-minimal) runs pexi-guest, a static binary built for
 * the image's architecture (`make guest` puts it in guest/ARCH/ of the data directories).
 * Recipes cannot name it themselves: a recipe's source is one path for every arch, and it
 * must exist for `pexi validate` even where the helper for that arch was never built. So
 * the build adds it here, once it knows the arch, unless the manifest installs its own. */
static int make_files(struct build *b, struct px_err **err)
{
	const struct px_manifest *m = b->m;
	bool service = false, helper = false;
	for (size_t i = 0; i < m->n_files; i++) {
		service = service || px_streq(m->files[i].path, GUEST_SERVICE);
		helper = helper || px_streq(m->files[i].path, GUEST_HELPER);
	}
	b->files = m->files;
	b->n_files = m->n_files;
	if (!service || helper)
		return 0;
	_cleanup_free_ char *name = xasprintf("%s/pexi-guest", px_arch_name(m->arch));
	_cleanup_free_ char *searched = NULL;
	char *path = NULL;
	if (px_datadir_find(m->dir, "guest", name, &path, &searched) < 0)
		return px_err_set(err, PX_EXIT_FAILURE,
		                  "'%s' runs the guest helper, but no pexi-guest for %s was found "
		                  "(looked in %s): build it with 'make guest'",
		                  GUEST_SERVICE, px_arch_name(m->arch), searched);
	b->guest_entry = (struct px_file_entry){
	        .path = xstrdup(GUEST_HELPER), .source = path, .mode = 0755, .line = 0};
	b->files = xreallocarray(NULL, m->n_files + 1, sizeof(*b->files));
	if (m->n_files)
		memcpy(b->files, m->files, m->n_files * sizeof(*b->files));
	b->files[m->n_files] = b->guest_entry;
	b->n_files = m->n_files + 1;
	return 0;
}

static void make_template_vars(struct build *b)
{
	const struct px_manifest *m = b->m;
	b->template_var_v[0] = xasprintf("name=%s", m->name ? m->name : "");
	b->template_var_v[1] = xasprintf("arch=%s", px_arch_name(m->arch));
	b->template_var_v[2] = xasprintf("console=%s", m->boot.console ? m->boot.console : "");
	b->template_var_v[3] = xasprintf("user=%s", m->cloud_init.user ? m->cloud_init.user : "");
	b->template_vars.v = b->template_var_v;
	b->template_vars.n = PX_ARRAY_SIZE(b->template_var_v);
}

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* A stage key: SHA-256 over the parent key and the stage's parameters, one per line. */
static void make_key(char out[PX_SHA256_HEX], const char *parent, const char *params)
{
	struct px_sha256 h;
	uint8_t d[PX_SHA256_LEN] = {0};
	px_sha256_init(&h);
	px_sha256_update(&h, parent, strlen(parent));
	px_sha256_update(&h, "\n", 1);
	px_sha256_update(&h, params, strlen(params));
	px_sha256_final(&h, d);
	px_sha256_hex(d, out);
}

int px_build_epoch(const struct px_manifest *m, int64_t *ret, struct px_err **err)
{
	const char *env = getenv("SOURCE_DATE_EPOCH");
	if (env && *env) {
		char *end;
		errno = 0;
		long long v = strtoll(env, &end, 10);
		if (errno || *end || v < 0)
			return px_err_set(err, PX_EXIT_USAGE,
			                  "SOURCE_DATE_EPOCH='%s' is not a non-negative integer",
			                  env);
		*ret = v;
		return 0;
	}
	if (m->build.source_date_epoch >= 0) {
		*ret = m->build.source_date_epoch;
		return 0;
	}
	/* Derived from the base image digest: fixed while the inputs are, and a plausible date
	 * (between 2020 and 2030) so tools that dislike 1970 are not surprised. */
	uint32_t v = 0;
	for (int i = 0; i < 8 && m->base.sha256 && m->base.sha256[i]; i++) {
		char c = m->base.sha256[i];
		v = v * 16 + (uint32_t)(c <= '9' ? c - '0' : (c | 32) - 'a' + 10);
	}
	*ret = 1577836800 + (int64_t)(v % (10u * 365 * 86400));
	return 0;
}

/* Removes outputs of a stage kept under other keys, so the build dir holds one of each. */
static void prune(const char *dir, const char *prefix, const char *keep)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	size_t plen = strlen(prefix);
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, prefix, plen) != 0 || px_streq(e->d_name, keep))
			continue;
		_cleanup_free_ char *p = xasprintf("%s/%s", dir, e->d_name);
		if (unlink(p) == 0)
			px_log_debug("removed stale stage output '%s'", p);
	}
	closedir(d);
}

/* Temporary files of a build that was killed: we hold the lock, so none is in use. */
static void remove_stale_temporaries(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] != '.' || !strstr(e->d_name, ".tmp."))
			continue;
		_cleanup_free_ char *p = xasprintf("%s/%s", dir, e->d_name);
		if (unlink(p) == 0)
			px_log_debug("removed a killed build's temporary '%s'", p);
	}
	closedir(d);
}

static int lock_build_dir(const char *dir, int *ret_fd, struct px_err **err)
{
	_cleanup_free_ char *path = xasprintf("%s/lock", dir);
	_cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return px_err_errno(err, errno, "cannot open '%s'", path);
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			return px_err_set(err, PX_EXIT_FAILURE,
			                  "another build is running in '%s'; wait for it to finish",
			                  dir);
		return px_err_errno(err, errno, "cannot lock '%s'", path);
	}
	*ret_fd = steal_fd(&fd);
	return 0;
}

static char *temp_name(const char *dir, const char *name)
{
	return xasprintf("%s/.%s.tmp.%ld", dir, name, (long)getpid());
}

static int sync_and_rename(const char *tmp, const char *path, struct px_err **err)
{
	_cleanup_close_ int fd = open(tmp, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return px_err_errno(err, errno, "cannot open '%s'", tmp);
	if (fsync(fd) < 0)
		return px_err_errno(err, errno, "cannot sync '%s'", tmp);
	if (rename(tmp, path) < 0)
		return px_err_errno(err, errno, "cannot rename '%s' to '%s'", tmp, path);
	return px_file_sync_dir(path, err);
}

/* The patch stage's parameters, including the bytes of every file it writes, so that an
 * edit to a source or template file on the host invalidates the image. */
static int patch_params(const struct px_manifest *m, const struct px_file_entry *files,
                        size_t n_files, int64_t epoch, const struct px_strv *vars, char **ret,
                        struct px_err **err)
{
	_cleanup_buf_ struct px_buf b = PX_BUF_INIT;
	px_buf_printf(&b, "%s\nepoch=%" PRId64 "\nconsole=%s\n", PATCH_VERSION, epoch,
	              m->boot.console ? m->boot.console : "");
	for (size_t i = 0; i < vars->n; i++)
		px_buf_printf(&b, "var=%s\n", vars->v[i]);
	for (size_t i = 0; i < m->boot.kernel_args.n; i++)
		px_buf_printf(&b, "arg=%s\n", m->boot.kernel_args.v[i]);
	for (size_t i = 0; i < n_files; i++) {
		const struct px_file_entry *f = &files[i];
		char digest[PX_SHA256_HEX] = "";
		const char *file = f->source ? f->source : f->template;
		if (file) {
			if (px_sha256_file_hex(file, digest, err) < 0) {
				px_err_wrap(err, "files entry '%s'", f->path);
				return -1;
			}
		} else if (f->content || f->symlink) {
			const char *text = f->content ? f->content : f->symlink;
			uint8_t d[PX_SHA256_LEN] = {0};
			px_sha256_buf(text, strlen(text), d);
			px_sha256_hex(d, digest);
		}
		px_buf_printf(&b, "file=%s kind=%s mode=%o uid=%u gid=%u data=%s\n", f->path,
		              f->source     ? "source"
		              : f->template ? "template"
		              : f->symlink  ? "symlink"
		                            : "content",
		              f->mode, f->uid, f->gid, digest);
	}
	*ret = px_buf_steal(&b, NULL);
	return 0;
}

/* The bake stage's parameters: the package request, where packages come from and, for the
 * offline method, the digest of every repository index as it is now, so that a change
 * upstream rebuilds the image (and, with --frozen, fails naming what changed). */
static int bake_params(struct build *b, char **ret, struct px_err **err)
{
	const struct px_manifest *m = b->m;
	_cleanup_buf_ struct px_buf p = PX_BUF_INIT;
	px_buf_printf(&p, "%s\nmethod=%d\nexecutor=%d\nallow_untrusted=%d\narch=%s\n", BAKE_VERSION,
	              (int)m->packages.method, (int)m->packages.executor,
	              (int)m->packages.allow_untrusted, px_arch_name(m->arch));
	for (size_t i = 0; i < m->packages.add.n; i++)
		px_buf_printf(&p, "add=%s\n", m->packages.add.v[i]);
	for (size_t i = 0; i < m->packages.repositories.n; i++)
		px_buf_printf(&p, "repository=%s\n", m->packages.repositories.v[i]);
	for (size_t i = 0; i < m->packages.keys.n; i++)
		px_buf_printf(&p, "key=%s\n", m->packages.keys.v[i]);
	if (b->opts->frozen) {
		for (size_t i = 0; i < b->opts->frozen->n; i++) {
			const struct px_bake_pkg *l = &b->opts->frozen->v[i];
			px_buf_printf(&p, "frozen=%s %s %s\n", l->name, l->version, l->checksum);
		}
	}
	if (m->packages.add.n && m->packages.method == PX_PKG_OFFLINE) {
		_cleanup_free_ char *digests = NULL;
		struct px_bake_ctx ctx = {
		        .m = m, .cache_dir = b->cache_dir, .offline = b->opts->offline};
		if (px_bake_index_digests(&ctx, &digests, err) < 0) {
			px_err_wrap(err, "reading the package indexes");
			return -1;
		}
		px_buf_puts(&p, digests);
	}
	*ret = px_buf_steal(&p, NULL);
	return 0;
}

static int compute_keys(struct build *b, struct px_err **err)
{
	const struct px_manifest *m = b->m;
	struct px_stage_report *s = b->r->stages;
	_cleanup_free_ char *p = NULL;

	snprintf(s[PX_STAGE_FETCH].key, PX_SHA256_HEX, "%s", m->base.sha256);
	p = xasprintf("%s\nformat=%d", CONVERT_VERSION, (int)m->base.format);
	make_key(s[PX_STAGE_CONVERT].key, s[PX_STAGE_FETCH].key, p);
	free(p);
	p = xasprintf("%s\nsize=%" PRIu64 "\nroot=%d", GROW_VERSION, m->disk.size,
	              m->disk.root_partition);
	make_key(s[PX_STAGE_GROW].key, s[PX_STAGE_CONVERT].key, p);
	free(p);
	/* resize2fs stamps the build's time into the superblock, so the epoch is an input. */
	p = xasprintf("%s\nepoch=%" PRId64, FSGROW_VERSION, b->r->source_date_epoch);
	make_key(s[PX_STAGE_FSGROW].key, s[PX_STAGE_GROW].key, p);
	free(p);
	p = NULL;
	if (patch_params(m, b->files, b->n_files, b->r->source_date_epoch, &b->template_vars, &p,
	                 err) < 0)
		return -1;
	make_key(s[PX_STAGE_PATCH].key, s[PX_STAGE_FSGROW].key, p);
	free(p);
	p = NULL;
	if (bake_params(b, &p, err) < 0)
		return -1;
	make_key(s[PX_STAGE_BAKE].key, s[PX_STAGE_PATCH].key, p);

	/* The seed's key is its content: render it now (cheap) and hash what would be written. */
	if (px_cloudinit_render(m, NULL, &b->seed, err) < 0)
		return px_err_wrap(err, "rendering the cloud-init seed");
	struct px_sha256 h;
	uint8_t d[PX_SHA256_LEN] = {0};
	_cleanup_free_ char *epoch =
	        xasprintf("%s\n%" PRId64 "\n", SEED_VERSION, b->r->source_date_epoch);
	px_sha256_init(&h);
	px_sha256_update(&h, epoch, strlen(epoch));
	const char *parts[] = {b->seed.meta_data, b->seed.user_data, b->seed.network_config};
	for (size_t i = 0; i < PX_ARRAY_SIZE(parts); i++) {
		const char *part = parts[i] ? parts[i] : "";
		px_sha256_update(&h, part, strlen(part) + 1);
	}
	px_sha256_final(&h, d);
	px_sha256_hex(d, s[PX_STAGE_SEED].key);
	return 0;
}

static int run_fetch(struct build *b, struct px_err **err)
{
	struct px_stage_report *s = &b->r->stages[PX_STAGE_FETCH];
	struct px_fetch_opts fo = {
	        .url = b->m->base.url,
	        .sha256 = b->m->base.sha256,
	        .cache_dir = b->cache_dir,
	        .offline = b->opts->offline,
	        .max_retries = PX_FETCH_DEFAULT_RETRIES,
	        .progress = true,
	};
	_cleanup_free_ char *cached = xasprintf("%s/sha256/%s", b->cache_dir, b->m->base.sha256);
	s->cached = exists(cached);
	if (b->opts->plan_only)
		return 0;
	char *path = NULL;
	if (px_fetch(&fo, &path, err) < 0)
		return px_err_wrap(err, "fetching the base image");
	free(path);
	snprintf(s->output, PX_SHA256_HEX, "%s", b->m->base.sha256);
	s->output_name = "base image";
	return 0;
}

static int run_convert(struct build *b, struct px_err **err)
{
	_cleanup_free_ char *base = xasprintf("%s/sha256/%s", b->cache_dir, b->m->base.sha256);
	/* A declared format is a promise about the download: hold it to that, so a raw file
	 * is never mistaken for a damaged VHD's contents or the other way round. */
	enum px_image_format found;
	if (px_image_detect(base, &found, err) < 0)
		return px_err_wrap(err, "reading '%s'", b->m->base.url);
	bool is_vhd = found != PX_IMAGE_RAW;
	if (b->m->base.format == PX_FORMAT_VHD && !is_vhd)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "'%s' is not a VHD (no VHD footer found), but base.format is vhd",
		                  b->m->base.url);
	if (b->m->base.format == PX_FORMAT_RAW && is_vhd)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "'%s' is a VHD, but base.format is raw; use vhd or auto",
		                  b->m->base.url);
	if (px_vhd_convert(base, b->convert_path, NULL, err) < 0)
		return px_err_wrap(err, "converting '%s'", b->m->base.url);
	return 0;
}

static int run_grow(struct build *b, struct px_err **err)
{
	struct px_stage_report *s = b->r->stages;
	_cleanup_free_ char *tmp = temp_name(b->stages_dir, "fsgrow.raw");
	double t0 = px_mono_seconds();
	if (px_sparse_copy(b->convert_path, tmp, err) < 0)
		goto fail;
	struct px_partition part;
	if (px_gpt_grow(tmp, b->m->disk.size, b->m->disk.root_partition, &part, err) < 0) {
		px_err_wrap(err, "growing the disk to %" PRIu64 " bytes", b->m->disk.size);
		goto fail;
	}
	double t1 = px_mono_seconds();
	s[PX_STAGE_GROW].seconds = t1 - t0;
	if (px_fs_grow(tmp, part.start, part.size, b->r->source_date_epoch, err) < 0) {
		px_err_wrap(err, "growing the root filesystem (partition %zu)", part.index);
		goto fail;
	}
	if (sync_and_rename(tmp, b->fsgrow_path, err) < 0)
		goto fail;
	s[PX_STAGE_FSGROW].seconds = px_mono_seconds() - t1;
	return 0;
fail:
	unlink(tmp);
	return -1;
}

/* Patches the root filesystem of the work copy 'image' in place. */
static int patch_image(struct build *b, const char *image, struct px_err **err)
{
	const struct px_manifest *m = b->m;
	struct px_partition part;
	if (px_gpt_find_root(image, m->disk.root_partition, &part, err) < 0)
		return -1;
	struct px_patch_opts po = {
	        .image = image,
	        .fs_offset = part.start,
	        .console = m->boot.console,
	        .kernel_args = &m->boot.kernel_args,
	        .files = b->files,
	        .n_files = b->n_files,
	        .templates_dir = NULL, /* the manifest resolved every template's path */
	        .template_vars = &b->template_vars,
	        .mtime = b->r->source_date_epoch,
	};
	return px_patch(&po, err);
}

/* Installs the manifest's packages into the work copy 'image' in place. */
static int bake_image(struct build *b, const char *image, struct px_err **err)
{
	const struct px_manifest *m = b->m;
	struct px_partition part;
	if (px_gpt_find_root(image, m->disk.root_partition, &part, err) < 0)
		return -1;
	_cleanup_free_ char *work = xasprintf("%s/bake", b->stages_dir);
	struct px_bake_ctx ctx = {
	        .m = m,
	        .disk_path = image,
	        .root_offset = part.start,
	        .root_size = part.size,
	        .cache_dir = b->cache_dir,
	        .work_dir = work,
	        .source_date_epoch = b->r->source_date_epoch,
	        .offline = b->opts->offline,
	        .frozen = b->opts->frozen,
	};
	return px_bake_run(&ctx, &b->r->bake, err);
}

/* Patch and bake share one work copy of the grown image, renamed to disk.raw only when
 * both succeeded: a failed bake leaves the previous disk.raw untouched. */
static int run_patch(struct build *b, struct px_err **err)
{
	struct px_stage_report *s = b->r->stages;
	_cleanup_free_ char *tmp = temp_name(b->r->build_dir, "disk.raw");
	double t0 = px_mono_seconds();
	if (px_sparse_copy(b->fsgrow_path, tmp, err) < 0 || patch_image(b, tmp, err) < 0) {
		px_err_wrap(err, "stage 'patch'");
		goto fail;
	}
	double t1 = px_mono_seconds();
	s[PX_STAGE_PATCH].seconds = t1 - t0;
	if (bake_image(b, tmp, err) < 0) {
		px_err_wrap(err, "stage 'bake'");
		goto fail;
	}
	s[PX_STAGE_BAKE].seconds = px_mono_seconds() - t1;
	if (sync_and_rename(tmp, b->r->disk_path, err) < 0) {
		px_err_wrap(err, "stage 'bake'");
		goto fail;
	}
	return 0;
fail:
	unlink(tmp);
	return -1;
}

/* Runs one stage function and times it unless it timed itself. */
static int timed(struct build *b, enum px_stage st, int (*fn)(struct build *, struct px_err **),
                 struct px_err **err)
{
	double t0 = px_mono_seconds();
	int r = fn(b, err);
	if (b->r->stages[st].seconds == 0)
		b->r->stages[st].seconds = px_mono_seconds() - t0;
	if (r < 0)
		return px_err_wrap(err, "stage '%s'", stage_names[st]);
	return 0;
}

static int run_seed(struct build *b, struct px_err **err)
{
	if (px_seed_write(&b->seed, b->r->source_date_epoch, b->r->seed_path, err) < 0)
		return -1;
	return px_sha256_file_hex(b->r->seed_path, b->r->stages[PX_STAGE_SEED].output, err);
}

static int run_seal(struct build *b, struct px_err **err)
{
	struct px_stage_report *s = b->r->stages;
	/* The disk digest is recomputed only when the disk was rebuilt: hashing gigabytes is
	 * the one thing an unchanged rebuild must not do. */
	if (!s[PX_STAGE_BAKE].cached) {
		if (px_sha256_file_hex(b->r->disk_path, s[PX_STAGE_BAKE].output, err) < 0)
			return -1;
	}
	return px_seal_write(b->m, b->r, err);
}

static void resolve_dirs(struct build *b)
{
	const struct px_manifest *m = b->m;
	const char *dir = m->build.dir ? m->build.dir : ".pexi/build";
	b->r->build_dir = dir[0] == '/' ? xstrdup(dir) : xasprintf("%s/%s", m->dir, dir);
	b->r->disk_path = xasprintf("%s/disk.raw", b->r->build_dir);
	b->r->seed_path = xasprintf("%s/seed.iso", b->r->build_dir);
	b->stages_dir = xasprintf("%s/stages", b->r->build_dir);
	b->convert_path =
	        xasprintf("%s/convert-%s.raw", b->stages_dir, b->r->stages[PX_STAGE_CONVERT].key);
	b->fsgrow_path =
	        xasprintf("%s/fsgrow-%s.raw", b->stages_dir, b->r->stages[PX_STAGE_FSGROW].key);
}

static void build_free(struct build *b)
{
	for (size_t i = 0; i < b->template_vars.n; i++)
		free(b->template_var_v[i]);
	free(b->stages_dir);
	free(b->cache_dir);
	free(b->convert_path);
	free(b->fsgrow_path);
	px_seal_previous_free(&b->prev);
	px_seed_content_free(&b->seed);
	if (b->files != b->m->files)
		free(b->files);
	free(b->guest_entry.path);
	free(b->guest_entry.source);
}

/* Decides which stages must run, from the last one backwards: a stage whose output is
 * present for its key is cached, and then nothing before it is needed at all. */
static void decide(struct build *b, bool need[PX_STAGE_COUNT])
{
	struct px_stage_report *s = b->r->stages;
	need[PX_STAGE_BAKE] = !px_seal_output_current(&b->prev, "disk.raw", b->r->disk_path,
	                                              s[PX_STAGE_BAKE].key);
	need[PX_STAGE_PATCH] = need[PX_STAGE_BAKE];
	need[PX_STAGE_FSGROW] = need[PX_STAGE_PATCH] && !exists(b->fsgrow_path);
	need[PX_STAGE_GROW] = need[PX_STAGE_FSGROW];
	need[PX_STAGE_CONVERT] = need[PX_STAGE_FSGROW] && !exists(b->convert_path);
	need[PX_STAGE_FETCH] = need[PX_STAGE_CONVERT];
	need[PX_STAGE_SEED] = !px_seal_output_current(&b->prev, "seed.iso", b->r->seed_path,
	                                              s[PX_STAGE_SEED].key);
	need[PX_STAGE_SEAL] = true;
	for (int i = 0; i < PX_STAGE_COUNT; i++)
		s[i].cached = !need[i];
	if (!need[PX_STAGE_BAKE])
		snprintf(s[PX_STAGE_BAKE].output, PX_SHA256_HEX, "%s",
		         px_seal_previous_digest(&b->prev, "disk.raw"));
	if (!need[PX_STAGE_SEED])
		snprintf(s[PX_STAGE_SEED].output, PX_SHA256_HEX, "%s",
		         px_seal_previous_digest(&b->prev, "seed.iso"));
	s[PX_STAGE_BAKE].output_name = "disk.raw";
	s[PX_STAGE_SEED].output_name = "seed.iso";
}

int px_build_run(const struct px_manifest *m, const struct px_build_opts *opts,
                 struct px_build_report *ret, struct px_err **err)
{
	double start = px_mono_seconds();
	struct build b = {.m = m, .opts = opts, .r = ret};
	memset(ret, 0, sizeof(*ret));
	for (int i = 0; i < PX_STAGE_COUNT; i++)
		ret->stages[i].name = stage_names[i];

	int r = -1;
	_cleanup_close_ int lock_fd = -1;
	if (px_build_epoch(m, &ret->source_date_epoch, err) < 0)
		goto out;
	make_template_vars(&b);
	b.cache_dir = px_fetch_default_cache_dir(m->dir);
	if (make_files(&b, err) < 0 || compute_keys(&b, err) < 0)
		goto out;
	resolve_dirs(&b);
	if (!opts->plan_only) {
		if (px_mkdir_p(b.stages_dir, 0755, err) < 0)
			goto out;
		if (lock_build_dir(ret->build_dir, &lock_fd, err) < 0)
			goto out;
		remove_stale_temporaries(ret->build_dir);
		remove_stale_temporaries(b.stages_dir);
	}
	if (px_seal_read_previous(ret->build_dir, &b.prev, err) < 0)
		goto out;

	bool need[PX_STAGE_COUNT];
	decide(&b, need);
	if (opts->plan_only) {
		if (need[PX_STAGE_FETCH])
			run_fetch(&b, err); /* only looks at the cache in plan mode */
		r = 0;
		goto out;
	}

	if (need[PX_STAGE_FETCH] && timed(&b, PX_STAGE_FETCH, run_fetch, err) < 0)
		goto out;
	if (need[PX_STAGE_CONVERT]) {
		if (timed(&b, PX_STAGE_CONVERT, run_convert, err) < 0)
			goto out;
		prune(b.stages_dir, "convert-", strrchr(b.convert_path, '/') + 1);
	}
	if (need[PX_STAGE_FSGROW]) {
		if (timed(&b, PX_STAGE_FSGROW, run_grow, err) < 0)
			goto out;
		prune(b.stages_dir, "fsgrow-", strrchr(b.fsgrow_path, '/') + 1);
	}
	if (need[PX_STAGE_PATCH] && run_patch(&b, err) < 0)
		goto out;
	if (need[PX_STAGE_SEED] && timed(&b, PX_STAGE_SEED, run_seed, err) < 0)
		goto out;
	ret->seconds = px_mono_seconds() - start;
	if (timed(&b, PX_STAGE_SEAL, run_seal, err) < 0)
		goto out;
	r = 0;
out:
	ret->seconds = px_mono_seconds() - start;
	build_free(&b);
	return r;
}

void px_build_report_free(struct px_build_report *r)
{
	free(r->build_dir);
	free(r->disk_path);
	free(r->seed_path);
	r->build_dir = r->disk_path = r->seed_path = NULL;
	px_bake_result_free(&r->bake);
}

int px_build_read_lock(const struct px_manifest *m, struct px_bake_lock *ret, struct px_err **err)
{
	const char *dir = m->build.dir ? m->build.dir : ".pexi/build";
	_cleanup_free_ char *build_dir =
	        dir[0] == '/' ? xstrdup(dir) : xasprintf("%s/%s", m->dir, dir);
	return px_seal_read_lock(build_dir, ret, err);
}
