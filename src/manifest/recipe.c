#include <ctype.h>

#include "core/common.h"

#include "manifest/datadir.h"
#include "manifest/manifest.h"
#include "manifest/recipe.h"
#include "manifest/ynode.h"

/* Frees a node shell whose children were moved elsewhere. */
static void free_shell(struct px_ynode *n)
{
	n->n = 0;
	px_ynode_free(n);
}

struct px_ynode *px_recipe_merge(struct px_ynode *under, struct px_ynode *over)
{
	if (!under)
		return over;
	/* A merged container is the manifest's: errors about it (a missing key) point there. */
	if (under->kind == over->kind && under->kind != PX_YNODE_SCALAR) {
		under->src = over->src;
		under->line = over->line;
		under->col = over->col;
	}
	if (under->kind == PX_YNODE_MAP && over->kind == PX_YNODE_MAP) {
		for (size_t i = 0; i < over->n; i++) {
			struct px_ypair *p = &over->pairs[i];
			size_t j = 0;
			while (j < under->n && strcmp(under->pairs[j].key->str, p->key->str) != 0)
				j++;
			if (j < under->n) {
				under->pairs[j].value =
				        px_recipe_merge(under->pairs[j].value, p->value);
				px_ynode_free(p->key);
				continue;
			}
			if (under->n == under->cap) {
				under->cap = under->cap ? under->cap * 2 : 4;
				under->pairs = xreallocarray(under->pairs, under->cap,
				                             sizeof(*under->pairs));
			}
			under->pairs[under->n++] = *p;
		}
		free_shell(over);
		return under;
	}
	if (under->kind == PX_YNODE_SEQ && over->kind == PX_YNODE_SEQ) {
		if (under->n + over->n > under->cap) {
			under->cap = under->n + over->n;
			under->items =
			        xreallocarray(under->items, under->cap, sizeof(*under->items));
		}
		for (size_t i = 0; i < over->n; i++)
			under->items[under->n++] = over->items[i];
		free_shell(over);
		return under;
	}
	px_ynode_free(under);
	return over;
}

void px_recipe_ctx_free(struct px_recipe_ctx *ctx)
{
	for (size_t i = 0; i < ctx->n_sources; i++) {
		free(ctx->sources[i]->path);
		free(ctx->sources[i]);
	}
	free(ctx->sources);
	ctx->sources = NULL;
	ctx->n_sources = 0;
}

static const struct px_ysource *add_source(struct px_recipe_ctx *ctx, const char *kind, char *path)
{
	struct px_ysource *s = xmalloc(sizeof(*s));
	s->kind = kind;
	s->path = path;
	ctx->sources = xreallocarray(ctx->sources, ctx->n_sources + 1, sizeof(*ctx->sources));
	ctx->sources[ctx->n_sources++] = s;
	return s;
}

static bool valid_name(const char *s)
{
	size_t len = strlen(s);
	if (len == 0 || len > 64 || !isalnum((unsigned char)s[0]))
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("._-", *s))
			return false;
	return true;
}

static int resolve(struct px_recipe_ctx *ctx, struct px_ynode **root, const char **chain,
                   size_t depth, struct px_err **err);

/* Loads one recipe with its own recipes resolved. */
static int load_one(struct px_recipe_ctx *ctx, const struct px_ynode *name, const char **chain,
                    size_t depth, struct px_ynode **ret, struct px_err **err)
{
	if (name->kind != PX_YNODE_SCALAR || name->is_null)
		return px_ynode_error(err, name, "'recipe' entries must be recipe names, not %s",
		                      px_ynode_kind_name(name));
	if (!valid_name(name->str))
		return px_ynode_error(err, name,
		                      "invalid recipe name '%s' (letters, digits, '.', '_' and "
		                      "'-'; it names recipes/NAME.yml)",
		                      name->str);
	for (size_t i = 0; i < depth; i++) {
		if (strcmp(chain[i], name->str) != 0)
			continue;
		_cleanup_free_ char *cycle = xstrdup(chain[i]);
		for (size_t k = i + 1; k < depth; k++) {
			char *next = xasprintf("%s -> %s", cycle, chain[k]);
			free(cycle);
			cycle = next;
		}
		return px_ynode_error(err, name, "recipe cycle: %s -> %s", cycle, name->str);
	}
	/* Each recipe applies once: two recipes sharing a third do not repeat its lists, and
	 * a wide lattice of recipes cannot multiply the work. */
	for (size_t i = 0; i < ctx->applied->n; i++)
		if (strcmp(ctx->applied->v[i], name->str) == 0)
			return 0;
	if (ctx->applied->n >= PX_RECIPE_MAX_COUNT)
		return px_ynode_error(err, name, "more than %d recipes", PX_RECIPE_MAX_COUNT);
	if (depth >= PX_RECIPE_MAX_DEPTH)
		return px_ynode_error(err, name, "recipes nest more than %d levels deep at '%s'",
		                      PX_RECIPE_MAX_DEPTH, name->str);

	_cleanup_free_ char *file = xasprintf("%s.yml", name->str);
	char *path = NULL;
	_cleanup_free_ char *searched = NULL;
	if (px_datadir_find(ctx->manifest_dir, "recipes", file, &path, &searched) < 0)
		return px_ynode_error(err, name, "recipe '%s' not found (looked in %s)", name->str,
		                      searched);
	const struct px_ysource *src = add_source(ctx, "recipe", path);
	_cleanup_free_ char *buf = NULL;
	size_t len;
	if (px_ysource_read(src, &buf, &len, err) < 0)
		return -1;
	_cleanup_(px_ynode_freep) struct px_ynode *tree = NULL;
	if (px_ynode_parse(buf, len, src, &tree, err) < 0)
		return -1;
	if (tree->kind != PX_YNODE_MAP)
		return px_ynode_error(err, tree, "a recipe must be a mapping of sections, not %s",
		                      px_ynode_kind_name(tree));
	chain[depth] = name->str;
	if (resolve(ctx, &tree, chain, depth + 1, err) < 0)
		return -1;
	struct px_strv *v = ctx->applied;
	v->v = xreallocarray(v->v, v->n + 2, sizeof(*v->v));
	v->v[v->n++] = xstrdup(name->str);
	v->v[v->n] = NULL;
	*ret = steal_ptr(&tree);
	return 0;
}

static int resolve(struct px_recipe_ctx *ctx, struct px_ynode **root, const char **chain,
                   size_t depth, struct px_err **err)
{
	struct px_ynode *t = *root;
	if (t->kind != PX_YNODE_MAP)
		return 0;
	size_t idx = 0;
	while (idx < t->n && strcmp(t->pairs[idx].key->str, "recipe") != 0)
		idx++;
	if (idx == t->n)
		return 0;
	px_ynode_free(t->pairs[idx].key);
	_cleanup_(px_ynode_freep) struct px_ynode *val = t->pairs[idx].value;
	memmove(&t->pairs[idx], &t->pairs[idx + 1], (t->n - idx - 1) * sizeof(*t->pairs));
	t->n--;

	const struct px_ynode *const *names;
	size_t count;
	if (val->kind == PX_YNODE_SEQ) {
		names = (const struct px_ynode *const *)val->items;
		count = val->n;
	} else if (val->kind == PX_YNODE_SCALAR) {
		names = (const struct px_ynode *const *)&val;
		count = val->is_null ? 0 : 1;
	} else {
		return px_ynode_error(err, val,
		                      "'recipe' must be a recipe name or a list of names, not %s",
		                      px_ynode_kind_name(val));
	}
	_cleanup_(px_ynode_freep) struct px_ynode *base = NULL;
	for (size_t i = 0; i < count; i++) {
		struct px_ynode *r = NULL;
		if (load_one(ctx, names[i], chain, depth, &r, err) < 0)
			return -1;
		if (r)
			base = px_recipe_merge(steal_ptr(&base), r);
	}
	if (base)
		*root = px_recipe_merge(steal_ptr(&base), t);
	return 0;
}

int px_recipe_resolve(struct px_recipe_ctx *ctx, struct px_ynode **root, struct px_err **err)
{
	const char *chain[PX_RECIPE_MAX_DEPTH + 1];
	return resolve(ctx, root, chain, 0, err);
}
