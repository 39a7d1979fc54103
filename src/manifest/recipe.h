/* Recipes: reusable manifest layers. `recipe: NAME` (or a list of names) merges
 * recipes/NAME.yml beneath the manifest: mappings merge key by key with the manifest
 * winning, lists append (recipe items first), and any other value from the manifest
 * replaces the recipe's. Several recipes stack in order, later ones above earlier ones.
 * Recipes may use recipes themselves, up to PX_RECIPE_MAX_DEPTH levels, without cycles;
 * each recipe applies once however often it is named. */
#ifndef PX_MANIFEST_RECIPE_H
#define PX_MANIFEST_RECIPE_H

struct px_err;
struct px_strv;
struct px_ynode;
struct px_ysource;

#define PX_RECIPE_MAX_DEPTH 8
#define PX_RECIPE_MAX_COUNT 64

/* Where the parse keeps the sources every node points at, so they outlive the trees. */
struct px_recipe_ctx {
	const char *manifest_dir;
	struct px_ysource **sources;
	size_t n_sources;
	struct px_strv *applied; /* names of the recipes applied, innermost first */
};

/* Resolves the 'recipe' key of tree *root (a mapping), replacing *root with the merged
 * tree without that key. */
int px_recipe_resolve(struct px_recipe_ctx *ctx, struct px_ynode **root, struct px_err **err);
void px_recipe_ctx_free(struct px_recipe_ctx *ctx);

/* Merges 'over' onto 'under' as described above; consumes both, returns the result. */
struct px_ynode *px_recipe_merge(struct px_ynode *under, struct px_ynode *over);

#endif
