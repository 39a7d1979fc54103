/* Writes the data of verified apk packages into an image's ext4 root through libext2fs,
 * following apk's rules, and records every path in the installed database:
 *
 * - paths come from px_apk_package_foreach (no "..", no absolute names); symbolic links
 *   already in the image are followed inside it as in a chroot (absolute targets start at
 *   the image's root, ".." stops there), so a /usr-merged image's /lib -> usr/lib works;
 *   a link the package itself made is never followed (refused), so a package cannot aim
 *   its own later entries at another package's files;
 * - owners: the archive's user and group names are looked up in the image's /etc/passwd
 *   and /etc/group, else the archive's numeric ids are used, as apk does;
 * - every timestamp is clamped to source_date_epoch (never later than the build);
 * - a path owned by another installed package is an error unless the new package
 *   replaces it (r:), the owner replaces the new package with a higher q: (the file is
 *   then skipped), or both come from the same origin (o:); an upgrade of the same name
 *   takes its files over;
 * - directories that exist keep their metadata; new ones get the archive's;
 * - names apk skips are skipped: top-level entries starting with '.', ".keep_*" files. */
#ifndef PX_APK_INSTALL_H
#define PX_APK_INSTALL_H

#include <stddef.h>
#include <stdint.h>

struct px_err;
struct px_extfs;
struct px_apk_db;
struct px_apk_package;
struct px_apk_installer;

/* Prepares installs into fs (reads /etc/passwd and /etc/group once). */
int px_apk_installer_new(struct px_extfs *fs, struct px_apk_db *db, int64_t source_date_epoch,
                         struct px_apk_installer **ret, struct px_err **err);
void px_apk_installer_free(struct px_apk_installer *in);

/* Installs one package (already verified) and records it in the database. */
int px_apk_install(struct px_apk_installer *in, const struct px_apk_package *p,
                   struct px_err **err);

/* apk's checksum of a set of extended attributes: SHA-1 over the attributes sorted by
 * name, each as a big-endian 32-bit name length, the name, a 32-bit value length and the
 * value; "Q1..." into out, or "" when n is 0. */
struct px_apk_xattr;
void px_apk_xattr_sum(const struct px_apk_xattr *x, size_t n, char out[31]);

#endif
