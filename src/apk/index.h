/* APKINDEX: apk's repository index, and the package-level part of /lib/apk/db/installed
 * (the same "X:value" line format, one blank-line separated stanza per package; the
 * installed database adds file lines F: R: a: M: Z: ... which this parser skips: writing
 * that database, file lines included, belongs to apk/db.c).
 *
 * An APKINDEX.tar.gz is a signature gzip member (tar with .SIGN.RSA*.<key>) followed by a
 * control member (tar with DESCRIPTION and APKINDEX). */
#ifndef PX_APK_INDEX_H
#define PX_APK_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "apk/sign.h"

struct px_err;

/* Caps on untrusted index data. */
#define PX_APK_INDEX_MAX_TEXT (UINT64_C(256) << 20)
#define PX_APK_INDEX_MAX_PKGS 1000000

/* The repository number of packages read from the installed database. */
#define PX_APK_REPO_INSTALLED (-1)

/* One dependency, provide, install-if or replaces entry: "[!]name[op version]". */
struct px_apk_dep {
	char *name;    /* "musl", "so:libc.musl-x86_64.so.1", "cmd:sh", "pc:zlib", "/bin/sh" */
	char *version; /* NULL when unversioned */
	int op;        /* PX_APK_VER_* bits (apk/version.h); PX_APK_DEP_ANY when unversioned;
	                  PX_APK_VER_CONFLICT set for "!name" */
	bool conflict; /* "!name": the name must not be installed (op has the CONFLICT bit) */
};

struct px_apk_deps {
	struct px_apk_dep *v;
	size_t n;
};

/* Parses one "[!]name[op version]" of len bytes. A bad operator or empty name is a
 * PX_EXIT_INPUT error; an unparsable version is kept as text (apk marks it broken). */
int px_apk_dep_parse(const char *s, size_t len, struct px_apk_dep *ret, struct px_err **err);
/* Parses a space-separated list (D:, p:, i:, r: values, /etc/apk/world). */
int px_apk_deps_parse(const char *s, size_t len, struct px_apk_deps *ret, struct px_err **err);
/* "name", "!name", "name>=1.2" (caller frees). */
char *px_apk_dep_format(const struct px_apk_dep *d);
void px_apk_dep_free(struct px_apk_dep *d);
void px_apk_deps_free(struct px_apk_deps *d);

struct px_apk_pkg {
	char *name;                  /* P: */
	char *version;               /* V: */
	char *arch;                  /* A: (NULL when absent) */
	uint64_t size;               /* S: the .apk's size */
	uint64_t installed_size;     /* I: */
	char *description;           /* T: */
	char *url;                   /* U: */
	char *license;               /* L: */
	char *origin;                /* o: */
	char *maintainer;            /* m: */
	int64_t build_time;          /* t: */
	char *commit;                /* c: */
	char *checksum;              /* C: as written, "Q1<base64 SHA-1>" or "Q2<base64 SHA-256>" */
	uint8_t csum[32];            /* C: decoded: the digest of the .apk's control member */
	size_t csum_len;             /* 20 (SHA-1), 32 (SHA-256) or 0 (no C:) */
	struct px_apk_deps depends;  /* D: */
	struct px_apk_deps provides; /* p: */
	struct px_apk_deps install_if; /* i: */
	struct px_apk_deps replaces;   /* r: */
	int provider_priority;         /* k: (0 when absent) */
	bool has_provider_priority;
	int replaces_priority; /* q: */
	int repo;              /* index in its px_apk_repos, or PX_APK_REPO_INSTALLED */
	unsigned line;         /* line of its P: in the index text, for messages */
};

void px_apk_pkg_free(struct px_apk_pkg *p);
/* "name-version" (caller frees): apk's file name stem; the .apk is "<this>.apk". */
char *px_apk_pkg_filename(const struct px_apk_pkg *p);

struct px_apk_index {
	struct px_apk_pkg **pkgs; /* in file order */
	size_t n;
	char *description; /* the tar.gz's DESCRIPTION, or NULL */
	char *what;        /* path or URL, for messages */
	char *signer;      /* the key that verified the tar.gz, NULL for plain text */
	enum px_apk_sig_status sig_status;
};

/* Parses APKINDEX text (or /lib/apk/db/installed) of len bytes. Every package gets repo
 * number 'repo'. A stanza without P: or V:, a bad C: or numeric field, a bad dependency
 * or a field line without ':' is a PX_EXIT_INPUT error naming 'what' and the line.
 * Unknown field letters are skipped, as apk does. */
int px_apk_index_parse(const char *text, size_t len, const char *what, int repo,
                       struct px_apk_index *ret, struct px_err **err);
/* Reads an APKINDEX.tar.gz from memory: checks its signature with kr (see
 * px_apk_sign_check_stream; allow_untrusted lets an unsigned, unknown or bad signature
 * through, recorded in ret->sig_status), then parses the APKINDEX inside. */
int px_apk_index_read_targz(const struct px_apk_keyring *kr, const void *buf, size_t len,
                            const char *what, bool allow_untrusted, int repo,
                            struct px_apk_index *ret, struct px_err **err);
/* px_apk_index_read_targz on a file. */
int px_apk_index_load(const struct px_apk_keyring *kr, const char *path, bool allow_untrusted,
                      int repo, struct px_apk_index *ret, struct px_err **err);
void px_apk_index_free(struct px_apk_index *idx);

/* "Q1..."/"Q2..." into raw digest bytes; returns the length (20 or 32) or -1. */
int px_apk_checksum_decode(const char *text, uint8_t out[32]);
/* Raw SHA-1 (20 bytes) or SHA-256 (32 bytes) digest into apk's "Q1"/"Q2" text. */
char *px_apk_checksum_encode(const uint8_t *digest, size_t len);

/* Several indexes in priority order (the first added wins ties), with lookups by name. */
struct px_apk_repos;

struct px_apk_repos *px_apk_repos_new(void);
void px_apk_repos_free(struct px_apk_repos *r);
/* Takes ownership of idx (and frees *idx's storage on return, leaving it empty); renumbers
 * its packages' repo to the returned position. */
int px_apk_repos_add(struct px_apk_repos *r, struct px_apk_index *idx);
size_t px_apk_repos_count(const struct px_apk_repos *r);
const struct px_apk_index *px_apk_repos_get(const struct px_apk_repos *r, size_t i);

/* A package that provides a name: by its own P: (provide == NULL) or by one of its p:
 * entries. */
struct px_apk_provider {
	const struct px_apk_pkg *pkg;
	const struct px_apk_dep *provide; /* the p: entry, NULL when pkg->name is the name */
};

/* Every package of every repository that provides 'name', in repository order then file
 * order. *ret_v points into the set (valid until the next px_apk_repos_add). */
void px_apk_repos_providers(const struct px_apk_repos *r, const char *name,
                            const struct px_apk_provider **ret_v, size_t *ret_n);

#endif
