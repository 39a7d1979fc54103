/* apk signatures: a key ring of RSA public keys named as apk names them (the file name,
 * e.g. "alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub"), and verification of the
 * signature member of an APKINDEX.tar.gz or a .apk. That member is a tar holding one file
 * ".SIGN.RSA.<keyname>" (RSA PKCS#1 v1.5 over SHA-1) or ".SIGN.RSA256.<keyname>" (over
 * SHA-256); the signed bytes are exactly the compressed bytes of the next gzip member (the
 * control member). */
#ifndef PX_APK_SIGN_H
#define PX_APK_SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "apk/gzstream.h"

struct px_err;
struct px_apk_keyring;

enum px_apk_sig_status {
	PX_APK_SIG_OK = 0,
	PX_APK_SIG_UNSIGNED,       /* no .SIGN.* entry at all */
	PX_APK_SIG_UNKNOWN_SIGNER, /* signed, but by no key in the ring */
	PX_APK_SIG_BAD,            /* a key in the ring, and the signature does not verify */
};

/* "ok", "unsigned", "unknown signer", "bad signature". */
const char *px_apk_sig_status_name(enum px_apk_sig_status s);

/* An empty key ring (never NULL). */
struct px_apk_keyring *px_apk_keyring_new(void);
void px_apk_keyring_free(struct px_apk_keyring *kr);
/* Adds one PEM public key file; its key name is the file's base name. */
int px_apk_keyring_add_file(struct px_apk_keyring *kr, const char *path, struct px_err **err);
/* Adds a PEM public key under an explicit name (for keys not read from files). */
int px_apk_keyring_add_pem(struct px_apk_keyring *kr, const char *name, const void *pem, size_t len,
                           struct px_err **err);
/* Adds every regular file in dir whose name ends in ".pub" (apk's /etc/apk/keys layout). */
int px_apk_keyring_add_dir(struct px_apk_keyring *kr, const char *dir, struct px_err **err);
size_t px_apk_keyring_count(const struct px_apk_keyring *kr);
bool px_apk_keyring_has(const struct px_apk_keyring *kr, const char *name);

/* Verifies one signature entry: entry_name is the tar member's name (".SIGN.RSA.<key>" or
 * ".SIGN.RSA256.<key>"), sig its contents, data the signed bytes. Returns 0 when it
 * verifies; otherwise -1 with a PX_EXIT_INPUT error naming the key and 'what', and
 * *ret_status (always written) says why. */
int px_apk_sign_verify(const struct px_apk_keyring *kr, const char *entry_name, const void *sig,
                       size_t sig_len, const void *data, size_t data_len, const char *what,
                       enum px_apk_sig_status *ret_status, struct px_err **err);

/* The result of checking a signed gzip stream (APKINDEX.tar.gz or .apk). */
struct px_apk_signed {
	struct px_gz_member *members; /* every gzip member of the stream */
	size_t n_members;
	size_t control; /* index in members of the signed (control) member */
	char *signer;   /* the key name that verified, or the first one named; NULL if none */
	enum px_apk_sig_status status;
};

/* Splits buf into gzip members; when the first one is a signature tar (entries named
 * .SIGN.*), verifies each entry in turn against the next member until one verifies with a
 * key of the ring. A stream without a signature member has control == 0 and status
 * PX_APK_SIG_UNSIGNED. Anything but PX_APK_SIG_OK is an error (PX_EXIT_INPUT, naming the
 * key and 'what') unless allow_untrusted, in which case ret->status tells the caller. A
 * corrupt stream is always an error. Caller frees with px_apk_signed_free. */
int px_apk_sign_check_stream(const struct px_apk_keyring *kr, const void *buf, size_t len,
                             const char *what, bool allow_untrusted, struct px_apk_signed *ret,
                             struct px_err **err);
void px_apk_signed_free(struct px_apk_signed *s);

#endif
