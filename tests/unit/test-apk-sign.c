/* apk signatures: the real Alpine 3.23.3 index signature with Alpine's key (cross-checked
 * with openssl), a flipped byte, an unknown signer, the real third-party repository and
 * packages, and the RSA256 variant with a key generated here by openssl. */
#include "core/common.h"

#include "apk/index.h"
#include "apk/sign.h"
#include "tap.h"
#include "test-util.h"
#include "apk-test.h"

#define ALPINE_KEY "alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub"

static void alpine_checks(const char *data)
{
	_cleanup_free_ char *dir = xasprintf("%s/alpine-3.23.3-x86_64", data);
	_cleanup_free_ char *key = xasprintf("%s/%s", dir, ALPINE_KEY);
	_cleanup_free_ char *ctl_path = xasprintf("%s/APKINDEX.control.tar.gz", dir);
	_cleanup_free_ char *sig_path = xasprintf("%s/SIGN.RSA.%s.sig", dir, ALPINE_KEY);
	struct px_apk_keyring *kr = px_apk_keyring_new();
	struct px_err *err = NULL;
	enum px_apk_sig_status st;
	size_t ctl_len, sig_len;
	_cleanup_free_ char *ctl = slurp(ctl_path, &ctl_len);
	_cleanup_free_ char *sig = slurp(sig_path, &sig_len);

	/* The independent verdict first, so a failure below is ours. */
	const char *const ossl[] = {"openssl",    "dgst",   "-sha1",  "-verify", key,
	                            "-signature", sig_path, ctl_path, NULL};
	_cleanup_free_ char *out = run_out(ossl);
	like(out, "Verified OK", "openssl verifies the real Alpine index signature");

	ok(px_apk_keyring_add_dir(kr, dir, &err) == 0, "key directory loads");
	is_int(px_apk_keyring_count(kr), 1, "one key in the Alpine data directory");
	ok(px_apk_keyring_has(kr, ALPINE_KEY), "the key is named by its file name");

	ok(px_apk_sign_verify(kr, ".SIGN.RSA." ALPINE_KEY, sig, sig_len, ctl, ctl_len, "APKINDEX",
	                      &st, &err) == 0,
	   "the real Alpine 3.23.3 index signature verifies");
	is_int(st, PX_APK_SIG_OK, "status ok");
	px_err_clear(&err);

	/* One flipped bit anywhere in the signed bytes must break it. */
	ctl[ctl_len / 2] ^= 0x01;
	ok(px_apk_sign_verify(kr, ".SIGN.RSA." ALPINE_KEY, sig, sig_len, ctl, ctl_len, "APKINDEX",
	                      &st, &err) < 0,
	   "a flipped byte in the control stream fails");
	is_int(st, PX_APK_SIG_BAD, "status bad signature");
	like(err ? err->msg : NULL, "bad signature", "the error says bad signature");
	like(err ? err->msg : NULL, ALPINE_KEY, "the error names the key");
	like(err ? err->msg : NULL, "APKINDEX", "the error names the file");
	ok(err && err->exit_code == PX_EXIT_INPUT, "a bad signature is bad input");
	px_err_clear(&err);
	ctl[ctl_len / 2] ^= 0x01;

	/* The same signature under SHA-256 does not verify: the digest is part of it. */
	ok(px_apk_sign_verify(kr, ".SIGN.RSA256." ALPINE_KEY, sig, sig_len, ctl, ctl_len,
	                      "APKINDEX", &st, &err) < 0 &&
	           st == PX_APK_SIG_BAD,
	   "a SHA-1 signature read as RSA256 is bad");
	px_err_clear(&err);

	struct px_apk_keyring *empty = px_apk_keyring_new();
	ok(px_apk_sign_verify(empty, ".SIGN.RSA." ALPINE_KEY, sig, sig_len, ctl, ctl_len,
	                      "APKINDEX", &st, &err) < 0,
	   "no key: fails");
	is_int(st, PX_APK_SIG_UNKNOWN_SIGNER, "status unknown signer");
	like(err ? err->msg : NULL, "unknown key '" ALPINE_KEY "'", "the error names the key");
	px_err_clear(&err);

	/* The full APKINDEX.tar.gz as apk fetches it: signature member + control member. */
	_cleanup_free_ char *sigmember =
	        make_sig_member("alpine", ".SIGN.RSA." ALPINE_KEY, sig_path);
	_cleanup_free_ char *full = path_in("APKINDEX.tar.gz");
	const char *const parts[] = {sigmember, ctl_path, NULL};
	concat(full, parts);
	size_t full_len;
	_cleanup_free_ char *buf = slurp(full, &full_len);
	struct px_apk_signed s;
	ok(px_apk_sign_check_stream(kr, buf, full_len, full, false, &s, &err) == 0,
	   "the assembled signed index checks");
	if (err)
		printf("# %s\n", err->msg);
	px_err_clear(&err);
	is_int(s.n_members, 2, "two gzip members");
	is_int(s.control, 1, "the control member is the second");
	is_str(s.signer, ALPINE_KEY, "signer reported");
	is_int(s.members[1].len, ctl_len, "control member range is the exact control bytes");
	ok(s.members[1].offset + s.members[1].len == full_len, "and it ends the file");
	px_apk_signed_free(&s);

	ok(px_apk_sign_check_stream(empty, buf, full_len, full, false, &s, &err) < 0,
	   "unknown signer refused without allow_untrusted");
	like(err ? err->msg : NULL, ALPINE_KEY, "naming the key");
	px_err_clear(&err);
	ok(px_apk_sign_check_stream(empty, buf, full_len, full, true, &s, &err) == 0 &&
	           s.status == PX_APK_SIG_UNKNOWN_SIGNER && px_streq(s.signer, ALPINE_KEY),
	   "allow_untrusted lets it through, status unknown signer");
	px_apk_signed_free(&s);
	px_err_clear(&err);

	ok(px_apk_sign_check_stream(kr, ctl, ctl_len, ctl_path, false, &s, &err) < 0,
	   "the control stream alone is unsigned: refused");
	like(err ? err->msg : NULL, "not signed", "the error says not signed");
	px_err_clear(&err);
	ok(px_apk_sign_check_stream(kr, ctl, ctl_len, ctl_path, true, &s, &err) == 0 &&
	           s.status == PX_APK_SIG_UNSIGNED && s.control == 0,
	   "unsigned with allow_untrusted: control is member 0");
	px_apk_signed_free(&s);
	px_err_clear(&err);

	px_apk_keyring_free(empty);
	px_apk_keyring_free(kr);
}

static void thirdparty_checks(const char *data)
{
	_cleanup_free_ char *key = xasprintf("%s/thirdparty/antkss.rsa.pub", data);
	_cleanup_free_ char *idx = xasprintf("%s/thirdparty/x86_64/APKINDEX.tar.gz", data);
	_cleanup_free_ char *apk = xasprintf("%s/thirdparty/x86_64/libglvnd-0-r1.apk", data);
	struct px_apk_keyring *kr = px_apk_keyring_new();
	struct px_err *err = NULL;
	struct px_apk_signed s;
	size_t len;

	ok(px_apk_keyring_add_file(kr, key, &err) == 0, "third-party key loads");
	_cleanup_free_ char *buf = slurp(idx, &len);
	ok(px_apk_sign_check_stream(kr, buf, len, idx, false, &s, &err) == 0,
	   "the third-party APKINDEX.tar.gz verifies");
	is_str(s.signer, "antkss.rsa.pub", "signed by antkss.rsa.pub");
	px_apk_signed_free(&s);
	px_err_clear(&err);

	/* The packages were signed by a key the repository does not publish: apk installs
	 * them on the strength of the index C: checksum, and so must we. */
	_cleanup_free_ char *pkg = slurp(apk, &len);
	ok(px_apk_sign_check_stream(kr, pkg, len, apk, false, &s, &err) < 0,
	   "the .apk's own signature is by an unknown key");
	like(err ? err->msg : NULL, "lmao@gmail.com-68218a1b.rsa.pub", "named in the error");
	px_err_clear(&err);
	ok(px_apk_sign_check_stream(kr, pkg, len, apk, true, &s, &err) == 0 && s.n_members == 3 &&
	           s.control == 1,
	   "with allow_untrusted: three members, control second");
	px_apk_signed_free(&s);
	px_err_clear(&err);
	px_apk_keyring_free(kr);
}

/* RSA256 with a key made here: the variant no real data in ../shared uses. */
static void rsa256_checks(void)
{
	_cleanup_free_ char *priv = path_in("test.rsa");
	_cleanup_free_ char *pubdir = path_in("keys");
	_cleanup_free_ char *pub = path_in("keys/pexi-test-0001.rsa.pub");
	_cleanup_free_ char *data = path_in("control.tar.gz");
	_cleanup_free_ char *sig256 = path_in("sig256");
	_cleanup_free_ char *sig1 = path_in("sig1");
	struct px_err *err = NULL;
	struct px_apk_signed s;

	mkdir(pubdir, 0755);
	const char *const gen[] = {"openssl", "genrsa", "-out", priv, "2048", NULL};
	const char *const ex[] = {"openssl", "rsa", "-in", priv, "-pubout", "-out", pub, NULL};
	free(run_out(gen));
	free(run_out(ex));
	/* Any gzip member will do as the signed control stream. */
	const char *const mk[] = {"sh", "-c", "echo 'P:x' | gzip -n > \"$1\"", "sh", data, NULL};
	free(run_out(mk));
	const char *const s256[] = {"openssl", "dgst", "-sha256", "-sign", priv,
	                            "-out",    sig256, data,      NULL};
	const char *const s1[] = {"openssl", "dgst", "-sha1", "-sign", priv,
	                          "-out",    sig1,   data,    NULL};
	free(run_out(s256));
	free(run_out(s1));

	struct px_apk_keyring *kr = px_apk_keyring_new();
	ok(px_apk_keyring_add_dir(kr, pubdir, &err) == 0, "generated key loads");
	px_err_clear(&err);
	_cleanup_free_ char *m256 =
	        make_sig_member("k256", ".SIGN.RSA256.pexi-test-0001.rsa.pub", sig256);
	_cleanup_free_ char *m1 = make_sig_member("k1", ".SIGN.RSA.pexi-test-0001.rsa.pub", sig1);
	_cleanup_free_ char *mbad =
	        make_sig_member("kbad", ".SIGN.RSA256.pexi-test-0001.rsa.pub", sig1);
	_cleanup_free_ char *f256 = path_in("s256.tar.gz");
	_cleanup_free_ char *f1 = path_in("s1.tar.gz");
	_cleanup_free_ char *fbad = path_in("sbad.tar.gz");
	concat(f256, (const char *const[]){m256, data, NULL});
	concat(f1, (const char *const[]){m1, data, NULL});
	concat(fbad, (const char *const[]){mbad, data, NULL});

	size_t len;
	_cleanup_free_ char *b256 = slurp(f256, &len);
	ok(px_apk_sign_check_stream(kr, b256, len, f256, false, &s, &err) == 0 &&
	           px_streq(s.signer, "pexi-test-0001.rsa.pub"),
	   ".SIGN.RSA256 (SHA-256) verifies");
	if (err)
		printf("# %s\n", err->msg);
	px_apk_signed_free(&s);
	px_err_clear(&err);
	_cleanup_free_ char *b1 = slurp(f1, &len);
	ok(px_apk_sign_check_stream(kr, b1, len, f1, false, &s, &err) == 0,
	   ".SIGN.RSA (SHA-1) by the same key verifies");
	px_apk_signed_free(&s);
	px_err_clear(&err);
	_cleanup_free_ char *bbad = slurp(fbad, &len);
	ok(px_apk_sign_check_stream(kr, bbad, len, fbad, false, &s, &err) < 0,
	   "a SHA-1 signature named RSA256 fails");
	like(err ? err->msg : NULL, "bad signature", "as a bad signature");
	like(err ? err->msg : NULL, "pexi-test-0001.rsa.pub", "naming the key");
	px_err_clear(&err);
	ok(px_apk_sign_check_stream(kr, bbad, len, fbad, true, &s, &err) == 0 &&
	           s.status == PX_APK_SIG_BAD,
	   "allow_untrusted reports the bad status instead");
	px_apk_signed_free(&s);
	px_err_clear(&err);

	ok(px_apk_keyring_add_file(kr, priv, &err) < 0, "a private key file is not a public key");
	px_err_clear(&err);
	px_apk_keyring_free(kr);
}

int main(void)
{
	tu_require("openssl");
	tu_require("tar");
	tu_require("gzip");
	tu_mkdtemp("test-apk-sign");
	_cleanup_free_ char *data = apk_data_dir();
	if (data) {
		alpine_checks(data);
		thirdparty_checks(data);
	} else {
		skip("../shared/data/apk is absent: real Alpine signature checks not run");
	}
	rsa256_checks();
	tu_rm_tmpdir();
	return done_testing();
}
