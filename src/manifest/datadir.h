/* Where shipped data (recipes/, templates/) is found, in order: beside the manifest, the
 * directory named by $PEXI_DATADIR, beside the pexi binary (a checkout: the binary sits in
 * the repository root or one build directory below it), then the installed data directory
 * PX_DATADIR (the Makefile's DATADIR, /usr/local/share/pexi by default). */
#ifndef PX_MANIFEST_DATADIR_H
#define PX_MANIFEST_DATADIR_H

/* Finds 'sub'/'name' (e.g. "recipes", "alpine-minimal.yml") in the data directories
 * above, 'manifest_dir' first. Returns 0 and the path, or -1 with *ret_searched set to the
 * directories tried (comma-separated, for the error message). */
int px_datadir_find(const char *manifest_dir, const char *sub, const char *name, char **ret_path,
                    char **ret_searched);

#endif
