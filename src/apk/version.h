/* apk's version ordering and dependency constraints.
 *
 * A version is digit{.digit}...{letter}{_suffix{number}}...{~hash}{-rN}. Components compare
 * left to right: numbers numerically (but as strings when either has a leading zero),
 * letters by code, suffixes in the order _alpha < _beta < _pre < _rc < (none) < _cvs <
 * _svn < _git < _hg < _p, then the ~hash as a string, then the -rN revision. When one
 * version runs out first, the longer one is greater unless what it has next is a
 * pre-release suffix. */
#ifndef PX_APK_VERSION_H
#define PX_APK_VERSION_H

#include <stdbool.h>

/* Result and constraint bits, apk's encoding: a constraint is the set of comparison
 * results (candidate compared to the constraint's version) it accepts. */
enum {
	PX_APK_VER_EQUAL = 1,
	PX_APK_VER_LESS = 2,
	PX_APK_VER_GREATER = 4,
	PX_APK_VER_FUZZY = 8,     /* '~': the constraint's version is a prefix to match */
	PX_APK_VER_CONFLICT = 16, /* '!name': the match is inverted */
};
#define PX_APK_DEP_ANY (PX_APK_VER_EQUAL | PX_APK_VER_LESS | PX_APK_VER_GREATER)
/* "name><Q1...": a dependency pinned to a package checksum rather than a version. */
#define PX_APK_DEP_CHECKSUM (PX_APK_VER_LESS | PX_APK_VER_GREATER)

/* True when v is a well-formed apk version. */
bool px_apk_version_valid(const char *v);
/* Compares two versions: PX_APK_VER_LESS, _EQUAL or _GREATER (a relative to b). Invalid
 * versions compare as apk does (by the valid prefix, then by which part is invalid). */
int px_apk_version_cmp(const char *a, const char *b);
/* Parses an operator ("=", "<", ">", "<=", ">=", "~", "=~", "<~", ">~", "><") into its
 * bits, or returns 0 when op is not one. */
int px_apk_version_op_parse(const char *op, size_t len);
/* The canonical text of an operator's bits (the conflict bit ignored): "" for any. */
const char *px_apk_version_op_name(int op);
/* True when version 'v' satisfies "op ref" (with FUZZY, ref a prefix); the CONFLICT bit
 * inverts the answer; op PX_APK_DEP_ANY matches everything. */
bool px_apk_version_match(const char *v, int op, const char *ref);

#endif
