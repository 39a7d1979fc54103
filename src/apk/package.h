/* An Alpine package (.apk, format v2) read from memory: three concatenated gzip members.
 *
 *   1. the signature tar (.SIGN.RSA.<key>), which signs member 2; pexi trusts the package
 *      through the signed index instead, whose C: field is the SHA-1 of member 2
 *   2. the control tar: .PKGINFO ("key = value" lines) and the package scripts
 *      (.pre-install, .post-install, .trigger, ...)
 *   3. the data tar, whose SHA-256 (of the compressed member) is .PKGINFO's datahash; each
 *      entry carries its SHA-1 in a PAX header APK-TOOLS.checksum.SHA1, extended attributes
 *      as SCHILY.xattr.NAME
 *
 * The control and data tars end without the end-of-archive blocks (apk cuts them so the
 * streams can be concatenated); the reader accepts both forms. Everything here is
 * untrusted input: sizes are capped, names are checked before anyone writes them. */
#ifndef PX_APK_PACKAGE_H
#define PX_APK_PACKAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "manifest/manifest.h"

struct px_err;

#define PX_APK_SHA1_LEN 20
/* "Q1" + base64 of a SHA-1 (28 characters) + NUL. */
#define PX_APK_QSUM_LEN 31
/* The largest decompressed control member and script accepted. */
#define PX_APK_CONTROL_MAX (16u << 20)

/* The scripts apk knows, in the order of their names in the control tar. */
enum px_apk_script_type {
	PX_APK_PRE_INSTALL,
	PX_APK_POST_INSTALL,
	PX_APK_PRE_DEINSTALL,
	PX_APK_POST_DEINSTALL,
	PX_APK_PRE_UPGRADE,
	PX_APK_POST_UPGRADE,
	PX_APK_TRIGGER,
	PX_APK_SCRIPT_COUNT,
};

/* "pre-install", "post-install", ... */
const char *px_apk_script_name(enum px_apk_script_type t);

struct px_apk_script {
	char *body; /* NULL when the package has no such script */
	size_t len;
};

/* What .PKGINFO says, with the index field letter each maps to. */
struct px_apk_pkginfo {
	char *name;                 /* pkgname  P */
	char *version;              /* pkgver   V */
	char *arch;                 /* arch     A */
	char *description;          /* pkgdesc  T */
	char *url;                  /* url      U */
	char *license;              /* license  L */
	char *origin;               /* origin   o */
	char *maintainer;           /* maintainer m */
	char *commit;               /* commit   c */
	char *datahash;             /* 64 hex digits */
	uint64_t installed_size;    /* size I */
	int64_t build_time;         /* builddate t */
	uint64_t provider_priority; /* k; 0 when absent */
	bool has_provider_priority;
	uint32_t replaces_priority; /* q */
	struct px_strv depends;     /* D, one dependency per item */
	struct px_strv provides;    /* p */
	struct px_strv install_if;  /* i */
	struct px_strv replaces;    /* r */
	struct px_strv triggers;    /* directories (globs) watched by the .trigger script */
};

struct px_apk_package {
	struct px_apk_pkginfo info;
	struct px_apk_script scripts[PX_APK_SCRIPT_COUNT];
	char checksum[PX_APK_QSUM_LEN]; /* "Q1..." of the control member: the index's C: */
	char datahash[65];              /* SHA-256 hex of the data member as it is */
	uint64_t file_size;             /* S: the size of the whole .apk */
	const uint8_t *data;            /* the compressed data member (points into the buffer
	                                   the package was read from) */
	size_t data_len;
};

/* One extended attribute of a data entry. */
struct px_apk_xattr {
	char *name;
	uint8_t *value;
	size_t len;
};

enum px_apk_entry_type { PX_APK_REG, PX_APK_DIR, PX_APK_SYMLINK, PX_APK_HARDLINK };

/* One entry of the data tar, valid during the callback only. */
struct px_apk_entry {
	const char *path; /* relative, normalised: no leading "./" or "/", no trailing "/" */
	enum px_apk_entry_type type;
	uint32_t mode; /* permission bits (07777) */
	uint32_t uid, gid;
	const char *uname, *gname; /* NULL when the archive names none */
	int64_t mtime;
	const char *link;       /* symlink target, or the path (normalised) a hard link points to */
	const uint8_t *content; /* regular files: the bytes */
	size_t size;
	bool has_sha1;
	uint8_t sha1[PX_APK_SHA1_LEN]; /* APK-TOOLS.checksum.SHA1 */
	const struct px_apk_xattr *xattrs;
	size_t n_xattrs;
};

/* Reads the package in buf (len bytes, kept alive by the caller while the package is used):
 * splits the members, computes the control checksum and the data hash, parses .PKGINFO and
 * the scripts. 'what' names it in messages. Bad input is PX_EXIT_INPUT. */
int px_apk_package_read(const void *buf, size_t len, const char *what, struct px_apk_package **ret,
                        struct px_err **err);
void px_apk_package_free(struct px_apk_package *p);

/* Checks the control member against the index's C: field ("Q1..." base64 SHA-1) and the
 * data member against .PKGINFO's datahash; either mismatch names both values. */
int px_apk_package_verify(const struct px_apk_package *p, const char *index_checksum,
                          struct px_err **err);

/* Calls fn for each data entry in archive order; a non-zero return stops the walk and is
 * returned. Paths are checked (no "..", no control characters, not empty); a bad one, an
 * entry of another type (device, fifo) or a regular file larger than max_file bytes is an
 * error. */
typedef int (*px_apk_entry_fn)(void *ctx, const struct px_apk_entry *e, struct px_err **err);
int px_apk_package_foreach(const struct px_apk_package *p, size_t max_file, px_apk_entry_fn fn,
                           void *ctx, struct px_err **err);

/* "Q1" + base64 of a 20-byte SHA-1 into out (PX_APK_QSUM_LEN bytes). */
void px_apk_qsum(const uint8_t sha1[PX_APK_SHA1_LEN], char out[PX_APK_QSUM_LEN]);

#endif
