/* Repository index fetching through the cache: a file:// repository (libcurl reads it like
 * any URL) made from the real third-party repository; the cached copy's digest checked
 * with sha256sum; offline reuse after the upstream changed; a tampered upstream refused
 * without disturbing the cached copy; offline without a cache refused. */
#include "core/common.h"

#include "apk/repo.h"
#include "tap.h"
#include "test-util.h"
#include "apk-test.h"

static int fetch(const char *url, const char *cache, bool offline, struct px_apk_keyring *kr,
                 struct px_apk_index *idx, char hex[PX_SHA256_HEX], struct px_err **err)
{
	struct px_apk_repo_opts o = {
	        .url = url, .arch = "x86_64", .cache_dir = cache, .offline = offline, .keys = kr};
	return px_apk_repo_fetch_index(&o, idx, hex, err);
}

static char *sha256sum(const char *path)
{
	const char *const argv[] = {"sha256sum", path, NULL};
	char *out = run_out(argv);
	if (out && strlen(out) >= 64)
		out[64] = 0;
	return out;
}

int main(void)
{
	tu_require("sha256sum");
	tu_require("cp");
	_cleanup_free_ char *data = apk_data_dir();
	if (!data) {
		printf("# ../shared/data/apk is absent: no real repository to serve\n");
		return 77;
	}
	tu_mkdtemp("test-apk-repo");
	_cleanup_free_ char *repo = path_in("repo");
	_cleanup_free_ char *cache = path_in("cache");
	_cleanup_free_ char *src = xasprintf("%s/thirdparty", data);
	const char *const cp[] = {"cp", "-r", src, repo, NULL};
	free(run_out(cp));
	const char *const chmod_[] = {"chmod", "-R", "u+w", repo, NULL};
	free(run_out(chmod_));
	_cleanup_free_ char *key = xasprintf("%s/antkss.rsa.pub", repo);
	_cleanup_free_ char *index = xasprintf("%s/x86_64/APKINDEX.tar.gz", repo);
	struct px_apk_keyring *kr = px_apk_keyring_new();
	struct px_err *err = NULL;
	struct px_apk_index idx;
	char hex[PX_SHA256_HEX], hex2[PX_SHA256_HEX];

	if (px_apk_keyring_add_file(kr, key, &err) < 0) {
		printf("Bail out! %s\n", err->msg);
		return 1;
	}
	_cleanup_free_ char *u = px_apk_repo_index_url(repo, "x86_64");
	_cleanup_free_ char *want_u = xasprintf("file://%s/x86_64/APKINDEX.tar.gz", repo);
	is_str(u, want_u, "a directory becomes a file:// index URL");
	_cleanup_free_ char *u2 =
	        px_apk_repo_index_url("https://dl.example/alpine/v3.23/main/", "aarch64");
	is_str(u2, "https://dl.example/alpine/v3.23/main/aarch64/APKINDEX.tar.gz",
	       "a trailing slash is not doubled");

	ok(fetch(repo, cache, true, kr, &idx, hex, &err) < 0, "offline with an empty cache fails");
	like(err ? err->msg : NULL, "no cached copy", "saying there is no cached copy");
	px_err_clear(&err);

	ok(fetch(repo, cache, false, kr, &idx, hex, &err) == 0, "online fetch of a file:// repo");
	if (err)
		printf("# %s\n", err->msg);
	px_err_clear(&err);
	is_int(idx.n, 17, "17 packages");
	is_str(idx.signer, "antkss.rsa.pub", "signature checked");
	if (idx.n > 0) {
		_cleanup_free_ char *pu = px_apk_repo_package_url(repo, "x86_64", idx.pkgs[0]);
		_cleanup_free_ char *want = xasprintf("file://%s/x86_64/8821cu-src-0-r1.apk", repo);
		is_str(pu, want, "package URL");
	}
	px_apk_index_free(&idx);
	_cleanup_free_ char *sum = sha256sum(index);
	is_str(hex, sum, "the digest reported is sha256sum's");
	_cleanup_free_ char *stored = xasprintf("%s/sha256/%s", cache, hex);
	_cleanup_free_ char *stored_sum = sha256sum(stored);
	is_str(stored_sum, sum, "the cache holds the same bytes under that digest");

	/* Upstream changes (here: disappears); offline still has the old copy. */
	_cleanup_free_ char *moved = xasprintf("%s.old", index);
	rename(index, moved);
	ok(fetch(repo, cache, true, kr, &idx, hex2, &err) == 0 && idx.n == 17,
	   "offline uses the cached copy");
	is_str(hex2, hex, "the same digest");
	px_apk_index_free(&idx);
	px_err_clear(&err);
	ok(fetch(repo, cache, false, kr, &idx, hex2, &err) < 0, "online with upstream gone fails");
	like(err ? err->msg : NULL, "APKINDEX.tar.gz", "naming the URL");
	px_err_clear(&err);

	/* A tampered upstream is refused and leaves the cached reference alone. */
	size_t len;
	_cleanup_free_ char *bytes = slurp(moved, &len);
	bytes[len - 20] ^= 0x40;
	spew(index, bytes, len);
	ok(fetch(repo, cache, false, kr, &idx, hex2, &err) < 0, "a corrupted index is refused");
	like(err ? err->msg : NULL, "APKINDEX.tar.gz", "the error names the URL");
	px_err_clear(&err);
	/* A stream signed by a key we do not have: one of the packages stands in for it. */
	_cleanup_free_ char *apk = xasprintf("%s/x86_64/libglvnd-0-r1.apk", repo);
	_cleanup_free_ char *other = slurp(apk, &len);
	spew(index, other, len);
	ok(fetch(repo, cache, false, kr, &idx, hex2, &err) < 0,
	   "an index signed by an unknown key is refused");
	like(err ? err->msg : NULL, "lmao@gmail.com-68218a1b.rsa.pub", "the error names the key");
	px_err_clear(&err);
	ok(fetch(repo, cache, true, kr, &idx, hex2, &err) == 0 && strcmp(hex2, hex) == 0,
	   "offline still gets the good copy");
	px_apk_index_free(&idx);
	px_err_clear(&err);

	/* A cached copy that rots on disk is caught when reused offline. */
	_cleanup_free_ char *rot = slurp(stored, &len);
	rot[10] ^= 1;
	chmod(stored, 0644);
	spew(stored, rot, len);
	ok(fetch(repo, cache, true, kr, &idx, hex2, &err) < 0, "a corrupted cache entry fails");
	px_err_clear(&err);

	px_apk_keyring_free(kr);
	tu_rm_tmpdir();
	return done_testing();
}
