/* Growing the ext2/3/4 filesystem of a partition to fill it, without a loop device or root.
 *
 * libext2fs has no resize API, so e2fsprogs' resize2fs does the work. It cannot be pointed
 * at the partition inside the image with "image?offset=N": on a regular file, resize2fs
 * truncates the file to the new filesystem size, ignoring the offset (resize/main.c,
 * e2fsprogs 1.47.0 to 1.47.4), which would cut off the end of the disk. So the filesystem
 * is copied into a sparse temporary file beside the image (data extents only), checked and
 * resized there, and copied back, holes included. */
#ifndef PX_FSGROW_H
#define PX_FSGROW_H

#include <stdint.h>

struct px_err;

/* Grows the filesystem that starts 'offset' bytes into 'image' to fill 'size' bytes (its
 * partition), rounded down to whole filesystem blocks.
 *
 * Refused with PX_EXIT_INPUT, before anything is written: a filesystem whose journal needs
 * recovery or that has orphan inodes (it was not cleanly unmounted), one marked as having
 * errors or not clean, one that fails a forced read-only check (e2fsck -fn), one larger
 * than 'size', and one without the 64bit feature that would pass 2^32 blocks. A filesystem
 * that already fills 'size' is left alone, byte for byte.
 *
 * 'epoch' is the time resize2fs stamps on what it writes (the superblock's write time, the
 * resize inode), so the same input gives the same bytes. Needs e2fsck and resize2fs in
 * PATH. */
int px_fs_grow(const char *image, uint64_t offset, uint64_t size, int64_t epoch,
               struct px_err **err);

#endif
