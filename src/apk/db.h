/* apk's installed-package database inside an image, read and written through libext2fs:
 *
 *   /lib/apk/db/installed    one stanza per package: the index fields (C: P: V: A: S: I:
 *                            T: U: L: o: m: t: c: k: D: p: i:), then r: q:, then its
 *                            files: "F:dir" followed by "M:uid:gid:mode[:xattrsum]" when
 *                            the directory is not 0755 root, and per file "R:name",
 *                            "a:uid:gid:mode[:xattrsum]" when not 0644 root, "Z:Q1..."
 *   /lib/apk/db/scripts.tar  the package scripts, named NAME-VERSION.Q1SUM.ACTION
 *   /lib/apk/db/triggers     "Q1SUM dir-glob..." per package with a .trigger script
 *   /etc/apk/world           the names the user asked for, one per line, sorted
 *
 * Stanzas already in the image are kept byte for byte (only their ownership of paths is
 * parsed); new ones are generated. Everything is written back sorted by package name,
 * as apk writes it, so `apk info`, `apk audit` and `apk add` in the guest see a
 * consistent system. */
#ifndef PX_APK_DB_H
#define PX_APK_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "apk/package.h"

struct px_err;
struct px_extfs;
struct px_apk_db;

/* Reads the database of the image's root (an image without one gets an empty database). */
int px_apk_db_load(struct px_extfs *fs, struct px_apk_db **ret, struct px_err **err);
void px_apk_db_free(struct px_apk_db *db);

/* The installed version of 'name', or NULL. */
const char *px_apk_db_version(const struct px_apk_db *db, const char *name);
/* The C: checksum of the installed 'name', or NULL. */
const char *px_apk_db_checksum(const struct px_apk_db *db, const char *name);

/* The package owning 'path' (relative to the root, no leading '/'), or NULL. */
const char *px_apk_db_owner(const struct px_apk_db *db, const char *path);
/* Whether the installed package 'owner' has an r: entry naming 'name'; its q: in *prio. */
bool px_apk_db_replaces(const struct px_apk_db *db, const char *owner, const char *name,
                        uint32_t *prio);
/* The origin (o:) of the installed 'name', or NULL. */
const char *px_apk_db_origin(const struct px_apk_db *db, const char *name);

/* Starts the record of package p (replacing a stanza of the same name: an upgrade). The
 * files added next belong to it until px_apk_db_end_package. */
void px_apk_db_begin_package(struct px_apk_db *db, const struct px_apk_package *p);
/* Records a directory of the current package with its owner and mode. */
void px_apk_db_add_dir(struct px_apk_db *db, const char *path, uint32_t uid, uint32_t gid,
                       uint32_t mode, const char *xattr_sum);
/* Records a file (or link) of the current package; sum ("Q1...", the Z: line) may be NULL;
 * xattr_sum "" or NULL when it has no extended attributes. Takes ownership of the path
 * from its old owner. */
void px_apk_db_add_file(struct px_apk_db *db, const char *path, uint32_t uid, uint32_t gid,
                        uint32_t mode, const char *sum, const char *xattr_sum);
/* The Z: sum recorded for 'path' of the current package ("" when none). */
const char *px_apk_db_file_sum(const struct px_apk_db *db, const char *path);
void px_apk_db_end_package(struct px_apk_db *db);
/* After an upgrade: the paths the old version owned that the new one did not write (caller
 * frees the vector and its strings); they are forgotten by the database. */
void px_apk_db_take_stale(struct px_apk_db *db, char ***ret, size_t *ret_n);

/* The entries of /etc/apk/world as read (and added to); valid until the next change. */
void px_apk_db_world_list(const struct px_apk_db *db, char *const **ret, size_t *ret_n);

/* Adds names to /etc/apk/world (kept sorted and unique). */
void px_apk_db_world_add(struct px_apk_db *db, const char *name);

/* Writes the four files back into the image (mode 0644, owner root, time mtime). */
int px_apk_db_write(struct px_apk_db *db, struct px_extfs *fs, int64_t mtime, struct px_err **err);

#endif
