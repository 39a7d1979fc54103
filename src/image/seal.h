/* The seal: build.json (inputs, per-stage keys, timings, cache hits, output digests and the
 * identity of each output file) and pexi.lock (what the build pinned: the base image
 * digest, later package versions). Reading the previous build.json is how an unchanged
 * rebuild knows, without hashing gigabytes, that an output is still the one it made. */
#ifndef PX_SEAL_H
#define PX_SEAL_H

#include <stdbool.h>

#include "bake/bake.h"

struct px_err;
struct px_manifest;
struct px_build_report;

struct px_seal_previous {
	void *root; /* the parsed previous build.json (cJSON), or NULL */
};

/* Reads BUILD_DIR/build.json. A missing or unreadable one is not an error: it only means
 * nothing can be trusted as current, so everything is rebuilt. */
int px_seal_read_previous(const char *build_dir, struct px_seal_previous *ret, struct px_err **err);
void px_seal_previous_free(struct px_seal_previous *p);
/* True when the previous build recorded output 'name' for 'key' and the file at 'path' is
 * still that very file (same device, inode, size and modification time). */
bool px_seal_output_current(const struct px_seal_previous *p, const char *name, const char *path,
                            const char *key);
/* The previously recorded digest of output 'name', or "". */
const char *px_seal_previous_digest(const struct px_seal_previous *p, const char *name);

/* Reads the package list of BUILD_DIR/pexi.lock (for --frozen); a missing lock or one
 * without a package list is a PX_EXIT_USAGE error. */
int px_seal_read_lock(const char *build_dir, struct px_bake_lock *ret, struct px_err **err);

/* Writes pexi.lock (only when its content changes) and build.json, both atomically. */
int px_seal_write(const struct px_manifest *m, const struct px_build_report *r,
                  struct px_err **err);

/* The report as JSON (the body of build.json; also what `pexi build --json` prints).
 * The caller frees the string. */
char *px_seal_report_json(const struct px_manifest *m, const struct px_build_report *r);

#endif
