/* A small writer for an ext2/3/4 filesystem inside a disk image, through libext2fs: the
 * filesystem starts at a byte offset of the image file (a partition), so nothing is
 * mounted and no root is needed.
 *
 * Paths are absolute guest paths. Empty and "." components are dropped; "..", relative
 * paths and components longer than 255 bytes are refused, and so is any path that passes
 * through a symbolic link: nothing here ever follows a link, so a hostile image cannot
 * redirect a write outside the directory it names.
 *
 * Every inode this module writes gets its times from the caller, and the superblock's write
 * time comes from px_extfs_set_time, so the same operations on the same image produce the
 * same bytes. A failed operation can leave the filesystem half-modified: callers patch a
 * temporary copy of the image and rename it into place when everything succeeded. */
#ifndef PX_EXTFS_H
#define PX_EXTFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct px_err;
struct px_extfs;

/* Ownership, permissions and the time stamped on an inode. 'mode' holds permission bits
 * (07777) when passed in; px_extfs_stat also returns the file type bits (S_IFREG, ...).
 * 'mtime' (seconds since the epoch) becomes atime, mtime, ctime and, for new inodes, the
 * creation time. */
struct px_extfs_attrs {
	uint32_t mode;
	uint32_t uid;
	uint32_t gid;
	int64_t mtime;
};

/* Opens the filesystem that starts 'offset' bytes into 'image'. A writable open refuses a
 * filesystem whose journal needs recovery or that is marked as having errors. */
int px_extfs_open(const char *image, uint64_t offset, bool writable, struct px_extfs **ret,
                  struct px_err **err);

/* Sets the time libext2fs stamps on the superblock (last write time) and on anything it
 * creates by itself. Time 0 cannot be expressed to libext2fs 1.47.0 ("now" means unset),
 * so it is stored as 1. */
void px_extfs_set_time(struct px_extfs *fs, int64_t now);

/* Writes everything out (bitmaps, group descriptors, superblock), syncs and closes. The
 * handle is released even when this fails. */
int px_extfs_close(struct px_extfs *fs, struct px_err **err);

/* Releases the handle without writing the superblock or bitmaps. Accepts NULL. */
void px_extfs_abort(struct px_extfs *fs);

/* Returns the attributes of 'path' (its type bits included), without following a final
 * symbolic link. A missing path fails with (*err)->errnum == ENOENT. */
int px_extfs_stat(struct px_extfs *fs, const char *path, struct px_extfs_attrs *ret,
                  struct px_err **err);

/* Reads the regular file 'path' into a NUL-terminated buffer; fails when it is larger than
 * max bytes. A missing file fails with (*err)->errnum == ENOENT and the message
 * "'PATH' not found in the root filesystem of 'IMAGE'". */
int px_extfs_read_file(struct px_extfs *fs, const char *path, size_t max, char **ret_data,
                       size_t *ret_len, struct px_err **err);

/* Creates or replaces the regular file 'path' with len bytes of data. Missing parent
 * directories are created (0755, owner and time from attrs). The new content goes into a
 * new inode which replaces the old directory entry only once it is complete; the old inode
 * (a file, a symbolic link — never followed — or a special file) loses that link and is
 * freed with its blocks when it was the last. An existing directory at 'path' is an error. */
int px_extfs_write_file(struct px_extfs *fs, const char *path, const void *data, size_t len,
                        const struct px_extfs_attrs *attrs, struct px_err **err);

/* The same, streaming the content from the host file 'host_path' (a regular file). */
int px_extfs_write_host_file(struct px_extfs *fs, const char *path, const char *host_path,
                             const struct px_extfs_attrs *attrs, struct px_err **err);

/* mkdir -p: creates every missing directory of 'path' with attrs (mode 07777 bits, owner,
 * time). Directories that exist are left as they are; a non-directory on the way is an
 * error. */
int px_extfs_mkdir_p(struct px_extfs *fs, const char *path, const struct px_extfs_attrs *attrs,
                     struct px_err **err);

/* Creates or replaces 'path' with a symbolic link to 'target' (any text shorter than a
 * block; it is stored, not resolved). The link's mode is 0777; owner and time from attrs. */
int px_extfs_symlink(struct px_extfs *fs, const char *path, const char *target,
                     const struct px_extfs_attrs *attrs, struct px_err **err);

/* Creates or replaces 'path' with a new hard link to the existing regular file 'target'
 * (neither is followed if it is a symbolic link; target must be a regular file). Missing
 * parent directories are created as px_extfs_write_file does. */
int px_extfs_hardlink(struct px_extfs *fs, const char *path, const char *target,
                      const struct px_extfs_attrs *attrs, struct px_err **err);

/* Removes the file, symbolic link or special file 'path' (not followed; a directory is
 * an error); its inode and blocks are freed with the last link. A missing path fails with
 * errnum ENOENT. */
int px_extfs_unlink(struct px_extfs *fs, const char *path, int64_t mtime, struct px_err **err);

/* Reads the target of the symbolic link 'path' (itself not followed) into a new
 * NUL-terminated string. Anything but a symbolic link is an error (EINVAL in errnum). */
int px_extfs_readlink(struct px_extfs *fs, const char *path, char **ret, struct px_err **err);

/* Sets extended attributes on 'path' (not followed if it is a symbolic link): n entries of
 * full names ("user.x", "security.capability", ...), values and value lengths. Attributes
 * not named are left alone. */
int px_extfs_set_xattrs(struct px_extfs *fs, const char *path, const char *const *names,
                        const void *const *values, const size_t *lens, size_t n,
                        struct px_err **err);

#endif
