/* Stage 1 of `pexi build`: download a file into a content-addressed cache.
 *
 * Layout of the cache (shared by every project and CI job that points at it):
 *
 *   <cache_dir>/sha256/<digest>         verified files, named by their SHA-256
 *   <cache_dir>/partial/<digest>.part   an interrupted download, resumed with a Range
 *                                        request on the next run
 *
 * A file enters sha256/ only after its digest matched, by fsync and rename, so an entry is
 * never half-written; it is verified again whenever it is reused. http://, https:// and
 * file:// URLs all go through libcurl. */
#ifndef PX_FETCH_H
#define PX_FETCH_H

#include <stdbool.h>
#include <stdint.h>

struct px_err;

#define PX_FETCH_DEFAULT_RETRIES 4
/* The largest download accepted, so that a hostile server cannot fill the disk. */
#define PX_FETCH_DEFAULT_MAX_SIZE (UINT64_C(64) << 30)

struct px_fetch_opts {
	const char *url;       /* http://, https:// or file:// */
	const char *sha256;    /* expected digest, 64 hex digits: mandatory */
	const char *cache_dir; /* content-addressed cache root, created when missing */
	bool offline;          /* use only the cache, never the network */
	unsigned max_retries;  /* retries after a transient failure (0: none; callers normally
	                          pass PX_FETCH_DEFAULT_RETRIES); backoff doubles
	                          from 0.5 s, or from $PEXI_FETCH_BACKOFF_MS milliseconds. A
	                          transfer below 1 KiB/s for 60 s ($PEXI_FETCH_STALL_S) is one */
	bool progress;         /* a bar on a terminal, a line every 10% otherwise; nothing in
	                          quiet mode */
	uint64_t max_size;     /* refuse larger downloads; 0 means PX_FETCH_DEFAULT_MAX_SIZE */
};

/* Makes the file with digest opts->sha256 available in the cache, downloading it from
 * opts->url unless a verified copy is already there, and returns its path
 * (<cache_dir>/sha256/<digest>, caller frees) in *ret_path. A digest mismatch is
 * PX_EXIT_INPUT and names both digests; HTTP 4xx errors are not retried. */
int px_fetch(const struct px_fetch_opts *opts, char **ret_path, struct px_err **err);

/* The default cache root: $XDG_CACHE_HOME/pexi when XDG_CACHE_HOME is set and not empty,
 * else "cache" under project_dir (or "cache" when project_dir is NULL). Caller frees. */
char *px_fetch_default_cache_dir(const char *project_dir);

#endif
