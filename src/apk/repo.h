/* Fetching a repository's APKINDEX.tar.gz through the download cache.
 *
 * An index is not content-addressed upstream: the same URL serves new bytes whenever the
 * repository changes. So the download is verified (signature, parse) first, then stored
 * in the content-addressed cache (<cache>/sha256/<digest>, through px_fetch), and a small
 * reference file records which digest the URL served last:
 *
 *   <cache>/apk-index/<sha256 of the URL>     "<digest> <url>\n"
 *
 * Offline, the reference names the cached copy to use; online, the index is downloaded
 * again every time (it is small) and the reference moves to the new digest. */
#ifndef PX_APK_REPO_H
#define PX_APK_REPO_H

#include <stdbool.h>

#include "apk/index.h"
#include "core/sha256.h"

struct px_err;

/* The largest APKINDEX.tar.gz accepted (Alpine's community index is a few MiB). */
#define PX_APK_REPO_MAX_INDEX (UINT64_C(64) << 20)

struct px_apk_repo_opts {
	const char *url;       /* repository base: "https://.../alpine/v3.23/main", a file://
	                          URL or an absolute directory path */
	const char *arch;      /* "x86_64": the index is <url>/<arch>/APKINDEX.tar.gz */
	const char *cache_dir; /* the download cache root (px_fetch's) */
	bool offline;          /* only the cached copy may be used */
	const struct px_apk_keyring *keys;
	bool allow_untrusted;
	int repo; /* repository number given to the packages */
};

/* "<url>/<arch>/APKINDEX.tar.gz" (caller frees); an absolute path becomes a file:// URL. */
char *px_apk_repo_index_url(const char *url, const char *arch);
/* "<url>/<arch>/<name>-<version>.apk" for a package of that repository (caller frees). */
char *px_apk_repo_package_url(const char *url, const char *arch, const struct px_apk_pkg *p);

/* Downloads (or, offline, takes from the cache) the repository's index, checks its
 * signature and parses it into *ret; ret_sha256 (may be NULL) receives the digest of the
 * APKINDEX.tar.gz used. Errors name the URL; an offline run without a cached copy says
 * so. */
int px_apk_repo_fetch_index(const struct px_apk_repo_opts *o, struct px_apk_index *ret,
                            char ret_sha256[PX_SHA256_HEX], struct px_err **err);

#endif
