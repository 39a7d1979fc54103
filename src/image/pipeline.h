/* The `pexi build` pipeline: fetch -> convert -> grow -> fsgrow -> patch -> bake -> seed ->
 * seal.
 *
 * Every stage is a function of its inputs. Its key is the SHA-256 of the stage's name and
 * version, the previous stage's key and the stage's own parameters, so an input change
 * invalidates exactly the stages after it. Stage outputs live in the build dir:
 *
 *   stages/convert-KEY.raw   the base image as a sparse raw file
 *   stages/fsgrow-KEY.raw    grown GPT and ext4 (grow and fsgrow share one work file)
 *   disk.raw                 patched and baked image (the bake key and its file identity
 *                            are in build.json; patch and bake run on one work copy)
 *   seed.iso                 the cidata seed
 *   pexi.lock, build.json    the seal
 *
 * Every output is written under a temporary name and renamed into place, so a build
 * killed at any moment leaves the previous outputs intact and the next run completes. */
#ifndef PX_PIPELINE_H
#define PX_PIPELINE_H

#include <stdbool.h>
#include <stdint.h>

#include "bake/bake.h"
#include "core/sha256.h"

struct px_err;
struct px_manifest;

enum px_stage {
	PX_STAGE_FETCH,
	PX_STAGE_CONVERT,
	PX_STAGE_GROW,
	PX_STAGE_FSGROW,
	PX_STAGE_PATCH,
	PX_STAGE_BAKE,
	PX_STAGE_SEED,
	PX_STAGE_SEAL,
	PX_STAGE_COUNT,
};

struct px_build_opts {
	bool offline;   /* use only the download cache */
	bool plan_only; /* compute keys and report what would run; change nothing */
	const struct px_bake_lock *frozen; /* --frozen: install exactly this package set */
};

struct px_stage_report {
	const char *name;
	char key[PX_SHA256_HEX];
	bool cached;                /* output already there for this key: no work done */
	double seconds;             /* wall time spent in the stage */
	char output[PX_SHA256_HEX]; /* digest of the stage's output where one is computed */
	const char *output_name;    /* what 'output' is the digest of */
};

struct px_build_report {
	struct px_stage_report stages[PX_STAGE_COUNT];
	char *build_dir;
	char *disk_path;
	char *seed_path;
	int64_t source_date_epoch;
	double seconds;
	struct px_bake_result bake; /* what the bake stage installed (empty when cached) */
};

/* Runs (or with plan_only, plans) the pipeline for a loaded manifest. */
int px_build_run(const struct px_manifest *m, const struct px_build_opts *opts,
                 struct px_build_report *ret, struct px_err **err);
void px_build_report_free(struct px_build_report *r);
const char *px_stage_name(enum px_stage s);

/* Reads the package set of the build dir's pexi.lock (for --frozen). A missing lock is a
 * PX_EXIT_USAGE error saying a build must have written one first. */
int px_build_read_lock(const struct px_manifest *m, struct px_bake_lock *ret, struct px_err **err);

/* The build's fixed timestamp: $SOURCE_DATE_EPOCH, else build.source_date_epoch, else a
 * value derived from the base image digest (fixed for fixed inputs). */
int px_build_epoch(const struct px_manifest *m, int64_t *ret, struct px_err **err);

#endif
