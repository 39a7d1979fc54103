/* The bake stage: installs the manifest's packages into the image's ext4 root, between
 * patch and seed. Two methods behind one entry point:
 *
 *   offline  (offline.c) pexi is the package installer: APKINDEX, signatures, solver,
 *            .apk verification, files written through libext2fs; rootless, any arch.
 *   chroot   (chroot.c)  the seeds' method: a generated POSIX shell script (loop mount,
 *            binds, apk add) run by an executor: local (root), lima (macOS), guestfs.
 *
 * Both work on a raw disk image file in place; the pipeline hands them a private copy
 * and renames it into place only on success. */
#ifndef PX_BAKE_H
#define PX_BAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct px_err;
struct px_manifest;

/* One installed package as pexi.lock records it. */
struct px_bake_pkg {
	char *name;
	char *version;
	char *checksum; /* the index's C: field, e.g. "Q1...=" */
	char *repository;
};

/* A locked package set (from pexi.lock) for `pexi build --frozen`. */
struct px_bake_lock {
	struct px_bake_pkg *v;
	size_t n;
};

struct px_bake_ctx {
	const struct px_manifest *m;
	const char *disk_path;             /* raw disk image, modified in place */
	uint64_t root_offset;              /* byte offset of the ext4 root filesystem */
	uint64_t root_size;                /* its size in bytes */
	const char *cache_dir;             /* download cache (indexes and .apk files by digest) */
	const char *work_dir;              /* scratch space on a local filesystem */
	int64_t source_date_epoch;         /* clamps every timestamp written */
	bool offline;                      /* only the cache may be used */
	const struct px_bake_lock *frozen; /* non-NULL: install exactly this set or fail */
};

struct px_bake_result {
	struct px_bake_pkg *pkgs; /* everything installed, sorted by name */
	size_t n_pkgs;
	char **deferred; /* "pkg.post-install" scripts queued for pexi-firstboot */
	size_t n_deferred;
};

/* Installs ctx->m->packages.add by ctx->m->packages.method. */
int px_bake_run(const struct px_bake_ctx *ctx, struct px_bake_result *ret, struct px_err **err);
int px_bake_offline(const struct px_bake_ctx *ctx, struct px_bake_result *ret, struct px_err **err);
int px_bake_chroot(const struct px_bake_ctx *ctx, struct px_bake_result *ret, struct px_err **err);
void px_bake_result_free(struct px_bake_result *r);
void px_bake_lock_free(struct px_bake_lock *l);

/* What the offline method's result depends on upstream: one line per repository with the
 * SHA-256 of its APKINDEX.tar.gz as fetched now (from the cache when ctx->offline), for the
 * stage key. The indexes are kept for the bake that follows in the same process. */
int px_bake_index_digests(const struct px_bake_ctx *ctx, char **ret, struct px_err **err);

#endif
