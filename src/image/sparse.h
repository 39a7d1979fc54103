/* Copying disk images without filling their holes: a reflink where the filesystem offers one
 * (btrfs, XFS), else a copy of only the data extents found with SEEK_DATA/SEEK_HOLE. */
#ifndef PX_SPARSE_H
#define PX_SPARSE_H

#include <stdbool.h>
#include <sys/types.h>

struct px_err;

/* Copies 'src' to 'dst' (created or truncated, mode 0644), keeping holes. */
int px_sparse_copy(const char *src, const char *dst, struct px_err **err);

/* Copies [in_off, in_off+len) of in to out at out_off, data extents only, in the kernel
 * (copy_file_range) where it can. With zero_holes, the holes of the source are zeroed in
 * the destination too, for a destination that may hold old bytes there; without, they
 * are left as they are. 'src' and 'dst' name the files in errors. */
int px_sparse_copy_range(int in, off_t in_off, int out, off_t out_off, off_t len, bool zero_holes,
                         const char *src, const char *dst, struct px_err **err);

#endif
