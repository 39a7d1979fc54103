/* The manifest's schema as tables of fields, and the walk that turns a merged node tree
 * into struct px_manifest: types, ranges, enums, unknown keys (with a did-you-mean),
 * required keys, and the checks that span several fields. Keep it in step with
 * pexi.schema.json. */
#ifndef PX_MANIFEST_SCHEMA_H
#define PX_MANIFEST_SCHEMA_H

struct px_err;
struct px_manifest;
struct px_ynode;

/* Sets every default (documented in pexi.schema.json). */
void px_schema_defaults(struct px_manifest *m);
/* Fills m (holding defaults, path and dir) from the tree 'root', the manifest with its
 * recipes merged beneath and the 'recipe' key removed. */
int px_schema_apply(struct px_manifest *m, const struct px_ynode *root, struct px_err **err);

/* Fills m's pep section from 'root', a standalone policy file: the keys of the manifest's
 * pep section at the top level. */
int px_schema_apply_pep(struct px_manifest *m, const struct px_ynode *root, struct px_err **err);

#endif
