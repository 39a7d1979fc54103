/* Loading a manifest: read (bounded), parse into a positioned tree, merge recipes beneath,
 * then walk the schema into struct px_manifest. */
#include <libgen.h>
#include <limits.h>

#include "core/common.h"

#include "manifest/manifest.h"
#include "manifest/recipe.h"
#include "manifest/schema.h"
#include "manifest/ynode.h"

const char *px_arch_name(enum px_arch arch)
{
	switch (arch) {
	case PX_ARCH_X86_64:
		return "x86_64";
	case PX_ARCH_AARCH64:
		return "aarch64";
	}
	return "unknown";
}

static void strv_free(struct px_strv *v)
{
	for (size_t i = 0; i < v->n; i++)
		free(v->v[i]);
	free(v->v);
}

void px_manifest_free(struct px_manifest *m)
{
	if (!m)
		return;
	free(m->path);
	free(m->dir);
	strv_free(&m->recipes);
	free(m->name);
	free(m->base.url);
	free(m->base.sha256);
	free(m->boot.console);
	strv_free(&m->boot.kernel_args);
	free(m->cloud_init.datasource);
	free(m->cloud_init.user);
	strv_free(&m->cloud_init.ssh_keys);
	strv_free(&m->cloud_init.runcmd);
	for (size_t i = 0; i < m->cloud_init.n_write_files; i++) {
		struct px_write_file *w = &m->cloud_init.write_files[i];
		free(w->path);
		free(w->content);
		free(w->permissions);
		free(w->owner);
	}
	free(m->cloud_init.write_files);
	free(m->cloud_init.instance_id);
	free(m->cloud_init.network_config);
	strv_free(&m->packages.repositories);
	strv_free(&m->packages.keys);
	strv_free(&m->packages.add);
	for (size_t i = 0; i < m->n_files; i++) {
		struct px_file_entry *f = &m->files[i];
		free(f->path);
		free(f->content);
		free(f->source);
		free(f->template);
		free(f->symlink);
	}
	free(m->files);
	free(m->vm.shared_dir);
	free(m->vm.firmware);
	free(m->vm.kernel);
	free(m->vm.initrd);
	free(m->vm.cmdline);
	strv_free(&m->pep.allow);
	strv_free(&m->pep.deny);
	strv_free(&m->pep.allow_addresses);
	strv_free(&m->pep.methods);
	free(m->pep.audit_log);
	free(m->build.dir);
	free(m);
}
PX_DEFINE_CLEANUP(struct px_manifest *, px_manifest_free)

/* An absolute form of dir, so relative paths in the manifest mean the same thing whatever
 * the working directory of the code that reads them later. */
static char *absolute_dir(const char *dir)
{
	char buf[PATH_MAX];
	if (realpath(dir, buf))
		return xstrdup(buf);
	if (dir[0] == '/')
		return xstrdup(dir);
	if (!getcwd(buf, sizeof(buf)))
		return xstrdup(dir);
	return xasprintf("%s/%s", buf, dir);
}

static int parse_with_source(const char *buf, size_t len, struct px_ysource *src, const char *dir,
                             struct px_manifest **ret, struct px_err **err)
{
	_cleanup_(px_manifest_freep) struct px_manifest *m = xcalloc(1, sizeof(*m));
	m->path = xstrdup(src->path);
	m->dir = absolute_dir(dir ? dir : ".");
	px_schema_defaults(m);

	struct px_recipe_ctx ctx = {.manifest_dir = m->dir, .applied = &m->recipes};
	_cleanup_(px_ynode_freep) struct px_ynode *root = NULL;
	int r = px_ynode_parse(buf, len, src, &root, err);
	if (r == 0)
		r = px_recipe_resolve(&ctx, &root, err);
	if (r == 0)
		r = px_schema_apply(m, root, err);
	/* The tree points at the sources: free it first. */
	px_ynode_free(steal_ptr(&root));
	px_recipe_ctx_free(&ctx);
	if (r < 0)
		return -1;
	*ret = steal_ptr(&m);
	return 0;
}

int px_manifest_parse(const char *buf, size_t len, const char *name, const char *dir,
                      struct px_manifest **ret, struct px_err **err)
{
	struct px_ysource src = {.kind = "manifest", .path = (char *)(name ? name : "<input>")};
	return parse_with_source(buf, len, &src, dir, ret, err);
}

int px_manifest_load(const char *path, struct px_manifest **ret, struct px_err **err)
{
	struct px_ysource src = {.kind = "manifest", .path = (char *)path};
	_cleanup_free_ char *buf = NULL;
	size_t len;
	if (px_ysource_read(&src, &buf, &len, err) < 0) {
		/* A newcomer's first command in an empty directory lands here: say what to do. */
		if (access(path, F_OK) < 0 && errno == ENOENT) {
			px_err_clear(err);
			return px_err_set(
			        err, PX_EXIT_MANIFEST,
			        "cannot read manifest '%s': No such file or directory (start "
			        "from pexi.yml.example, or name a manifest with -f)",
			        path);
		}
		return -1;
	}
	_cleanup_free_ char *copy = xstrdup(path);
	return parse_with_source(buf, len, &src, dirname(copy), ret, err);
}

int px_manifest_load_pep(const char *path, struct px_manifest **ret, struct px_err **err)
{
	struct px_ysource src = {.kind = "policy", .path = (char *)path};
	_cleanup_free_ char *buf = NULL;
	size_t len;
	if (px_ysource_read(&src, &buf, &len, err) < 0)
		return -1;
	_cleanup_(px_manifest_freep) struct px_manifest *m = xcalloc(1, sizeof(*m));
	_cleanup_free_ char *copy = xstrdup(path);
	m->path = xstrdup(path);
	m->dir = absolute_dir(dirname(copy));
	px_schema_defaults(m);
	_cleanup_(px_ynode_freep) struct px_ynode *root = NULL;
	if (px_ynode_parse(buf, len, &src, &root, err) < 0 || px_schema_apply_pep(m, root, err) < 0)
		return -1;
	*ret = steal_ptr(&m);
	return 0;
}
