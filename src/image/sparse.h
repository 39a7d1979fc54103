/* Copying disk images without filling their holes: a reflink where the filesystem offers one
 * (btrfs, XFS), else a copy of only the data extents found with SEEK_DATA/SEEK_HOLE. */
#ifndef PX_SPARSE_H
#define PX_SPARSE_H

struct px_err;

/* Copies 'src' to 'dst' (created or truncated, mode 0644), keeping holes. */
int px_sparse_copy(const char *src, const char *dst, struct px_err **err);

#endif
