#include <cJSON.h>

#include "core/common.h"

#include "core/file.h"
#include "image/pipeline.h"
#include "image/seal.h"
#include "manifest/manifest.h"

#define BUILD_JSON_MAX (1u << 20)

int px_seal_read_previous(const char *build_dir, struct px_seal_previous *ret, struct px_err **err)
{
	(void)err;
	ret->root = NULL;
	_cleanup_free_ char *path = xasprintf("%s/build.json", build_dir);
	_cleanup_free_ char *text = NULL;
	struct px_err *ignored = NULL;
	if (px_file_read(path, BUILD_JSON_MAX, &text, NULL, &ignored) < 0) {
		px_err_free(ignored);
		return 0;
	}
	ret->root = cJSON_Parse(text);
	return 0;
}

void px_seal_previous_free(struct px_seal_previous *p)
{
	cJSON_Delete(p->root);
	p->root = NULL;
}

static const cJSON *previous_output(const struct px_seal_previous *p, const char *name)
{
	const cJSON *outputs = cJSON_GetObjectItemCaseSensitive(p->root, "outputs");
	return cJSON_GetObjectItemCaseSensitive(outputs, name);
}

static const char *string(const cJSON *o, const char *key)
{
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
	return s ? s : "";
}

/* A file's identity: numbers that change whenever anything rewrites or replaces it.
 * Stored as strings because JSON numbers lose precision past 2^53. */
static void identity(const struct stat *st, char *buf, size_t len)
{
	snprintf(buf, len, "%ju:%ju:%jd:%jd.%09ld", (uintmax_t)st->st_dev, (uintmax_t)st->st_ino,
	         (intmax_t)st->st_size, (intmax_t)st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
}

bool px_seal_output_current(const struct px_seal_previous *p, const char *name, const char *path,
                            const char *key)
{
	const cJSON *o = previous_output(p, name);
	struct stat st;
	if (!o || stat(path, &st) < 0)
		return false;
	char id[128];
	identity(&st, id, sizeof(id));
	return px_streq(string(o, "key"), key) && px_streq(string(o, "identity"), id) &&
	       strlen(string(o, "sha256")) == 64;
}

const char *px_seal_previous_digest(const struct px_seal_previous *p, const char *name)
{
	return string(previous_output(p, name), "sha256");
}

static void add_output(cJSON *outputs, const char *name, const char *path, const char *key,
                       const char *digest)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return;
	char id[128];
	identity(&st, id, sizeof(id));
	cJSON *o = cJSON_AddObjectToObject(outputs, name);
	cJSON_AddStringToObject(o, "path", path);
	cJSON_AddNumberToObject(o, "size", (double)st.st_size);
	cJSON_AddStringToObject(o, "sha256", digest);
	cJSON_AddStringToObject(o, "key", key);
	cJSON_AddStringToObject(o, "identity", id);
}

char *px_seal_report_json(const struct px_manifest *m, const struct px_build_report *r)
{
	cJSON *root = cJSON_CreateObject();
	cJSON_AddStringToObject(root, "pexi_version", PX_VERSION);
	cJSON_AddStringToObject(root, "manifest", m->path ? m->path : "");
	cJSON_AddStringToObject(root, "name", m->name ? m->name : "");
	cJSON_AddNumberToObject(root, "source_date_epoch", (double)r->source_date_epoch);
	cJSON *base = cJSON_AddObjectToObject(cJSON_AddObjectToObject(root, "inputs"), "base");
	cJSON_AddStringToObject(base, "url", m->base.url ? m->base.url : "");
	cJSON_AddStringToObject(base, "sha256", m->base.sha256 ? m->base.sha256 : "");

	cJSON *stages = cJSON_AddArrayToObject(root, "stages");
	for (int i = 0; i < PX_STAGE_COUNT; i++) {
		const struct px_stage_report *s = &r->stages[i];
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", s->name);
		if (s->key[0])
			cJSON_AddStringToObject(o, "key", s->key);
		cJSON_AddBoolToObject(o, "cached", s->cached);
		cJSON_AddNumberToObject(o, "seconds", (double)(int64_t)(s->seconds * 1e4) / 1e4);
		if (s->output[0]) {
			cJSON_AddStringToObject(o, "output", s->output_name ? s->output_name : "");
			cJSON_AddStringToObject(o, "sha256", s->output);
		}
		cJSON_AddItemToArray(stages, o);
	}
	cJSON *outputs = cJSON_AddObjectToObject(root, "outputs");
	add_output(outputs, "disk.raw", r->disk_path, r->stages[PX_STAGE_BAKE].key,
	           r->stages[PX_STAGE_BAKE].output);
	add_output(outputs, "seed.iso", r->seed_path, r->stages[PX_STAGE_SEED].key,
	           r->stages[PX_STAGE_SEED].output);
	if (!r->stages[PX_STAGE_BAKE].cached && r->stages[PX_STAGE_BAKE].key[0]) {
		cJSON *bake = cJSON_AddObjectToObject(root, "bake");
		cJSON_AddNumberToObject(bake, "installed", (double)r->bake.n_pkgs);
		cJSON *d = cJSON_AddArrayToObject(bake, "deferred_scripts");
		for (size_t i = 0; i < r->bake.n_deferred; i++)
			cJSON_AddItemToArray(d, cJSON_CreateString(r->bake.deferred[i]));
	}
	cJSON_AddNumberToObject(root, "seconds", (double)(int64_t)(r->seconds * 1e4) / 1e4);
	char *text = cJSON_Print(root);
	cJSON_Delete(root);
	if (!text)
		abort();
	return text;
}

static cJSON *pkg_json(const struct px_bake_pkg *p)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", p->name);
	cJSON_AddStringToObject(o, "version", p->version);
	cJSON_AddStringToObject(o, "checksum", p->checksum);
	cJSON_AddStringToObject(o, "repository", p->repository);
	return o;
}

static char *lock_path(const char *build_dir)
{
	return xasprintf("%s/pexi.lock", build_dir);
}

static cJSON *read_lock_json(const char *build_dir)
{
	_cleanup_free_ char *path = lock_path(build_dir);
	_cleanup_free_ char *text = NULL;
	struct px_err *ignored = NULL;
	if (px_file_read(path, BUILD_JSON_MAX, &text, NULL, &ignored) < 0) {
		px_err_free(ignored);
		return NULL;
	}
	return cJSON_Parse(text);
}

/* pexi.lock: the base image and every package the bake stage installed. When the bake
 * stage was cached, the image still holds the packages of the previous lock, so those are
 * carried over. */
static char *lock_json(const struct px_manifest *m, const struct px_build_report *r)
{
	cJSON *root = cJSON_CreateObject();
	cJSON_AddNumberToObject(root, "lockfile_version", 1);
	cJSON *base = cJSON_AddObjectToObject(root, "base");
	cJSON_AddStringToObject(base, "url", m->base.url ? m->base.url : "");
	cJSON_AddStringToObject(base, "sha256", m->base.sha256 ? m->base.sha256 : "");
	if (r->stages[PX_STAGE_BAKE].cached) {
		cJSON *prev = read_lock_json(r->build_dir);
		cJSON *pkgs = cJSON_DetachItemFromObjectCaseSensitive(prev, "packages");
		cJSON_Delete(prev);
		if (!cJSON_IsArray(pkgs)) {
			cJSON_Delete(pkgs);
			pkgs = cJSON_CreateArray();
		}
		cJSON_AddItemToObject(root, "packages", pkgs);
	} else {
		cJSON *pkgs = cJSON_AddArrayToObject(root, "packages");
		for (size_t i = 0; i < r->bake.n_pkgs; i++)
			cJSON_AddItemToArray(pkgs, pkg_json(&r->bake.pkgs[i]));
	}
	char *text = cJSON_Print(root);
	cJSON_Delete(root);
	if (!text)
		abort();
	return text;
}

int px_seal_read_lock(const char *build_dir, struct px_bake_lock *ret, struct px_err **err)
{
	_cleanup_free_ char *path = lock_path(build_dir);
	cJSON *root = read_lock_json(build_dir);
	const cJSON *pkgs = cJSON_GetObjectItemCaseSensitive(root, "packages");
	if (!cJSON_IsArray(pkgs)) {
		cJSON_Delete(root);
		return px_err_set(err, PX_EXIT_USAGE,
		                  "--frozen needs the package list of '%s'; run 'pexi build' "
		                  "once without --frozen to write it",
		                  path);
	}
	struct px_bake_lock l = {0};
	l.v = xcalloc((size_t)cJSON_GetArraySize(pkgs) + 1, sizeof(*l.v));
	const cJSON *p;
	cJSON_ArrayForEach(p, pkgs)
	{
		const char *name = string(p, "name"), *version = string(p, "version");
		if (!*name || !*version) {
			px_bake_lock_free(&l);
			cJSON_Delete(root);
			return px_err_set(err, PX_EXIT_INPUT,
			                  "'%s': a package without name or version", path);
		}
		l.v[l.n++] = (struct px_bake_pkg){xstrdup(name), xstrdup(version),
		                                  xstrdup(string(p, "checksum")),
		                                  xstrdup(string(p, "repository"))};
	}
	cJSON_Delete(root);
	*ret = l;
	return 0;
}

/* Writes path atomically unless it already holds exactly 'text' (keeps its mtime). */
static int write_if_changed(const char *path, const char *text, struct px_err **err)
{
	_cleanup_free_ char *old = NULL;
	struct px_err *ignored = NULL;
	if (px_file_read(path, BUILD_JSON_MAX, &old, NULL, &ignored) == 0 && strcmp(old, text) == 0)
		return 0;
	px_err_free(ignored);
	return px_atomic_write_file(path, text, strlen(text), 0644, err);
}

int px_seal_write(const struct px_manifest *m, const struct px_build_report *r, struct px_err **err)
{
	_cleanup_free_ char *lpath = lock_path(r->build_dir);
	_cleanup_free_ char *lock = lock_json(m, r);
	_cleanup_free_ char *lock_text = xasprintf("%s\n", lock);
	if (write_if_changed(lpath, lock_text, err) < 0)
		return -1;
	_cleanup_free_ char *json_path = xasprintf("%s/build.json", r->build_dir);
	_cleanup_free_ char *json = px_seal_report_json(m, r);
	_cleanup_free_ char *json_text = xasprintf("%s\n", json);
	return px_atomic_write_file(json_path, json_text, strlen(json_text), 0644, err);
}
