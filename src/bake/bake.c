/* The bake stage's entry point: dispatch on the manifest's packages.method. */
#include "core/common.h"

#include "bake/bake.h"
#include "manifest/manifest.h"

int px_bake_run(const struct px_bake_ctx *ctx, struct px_bake_result *ret, struct px_err **err)
{
	memset(ret, 0, sizeof(*ret));
	if (ctx->m->packages.add.n == 0 && !ctx->frozen)
		return 0;
	switch (ctx->m->packages.method) {
	case PX_PKG_OFFLINE:
		return px_bake_offline(ctx, ret, err);
	case PX_PKG_CHROOT:
		return px_bake_chroot(ctx, ret, err);
	}
	return px_err_set(err, PX_EXIT_MANIFEST, "unknown packages.method");
}

static void pkg_free(struct px_bake_pkg *p)
{
	free(p->name);
	free(p->version);
	free(p->checksum);
	free(p->repository);
}

void px_bake_result_free(struct px_bake_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_pkgs; i++)
		pkg_free(&r->pkgs[i]);
	free(r->pkgs);
	for (size_t i = 0; i < r->n_deferred; i++)
		free(r->deferred[i]);
	free(r->deferred);
	memset(r, 0, sizeof(*r));
}

void px_bake_lock_free(struct px_bake_lock *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		pkg_free(&l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}
