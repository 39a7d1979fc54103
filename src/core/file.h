/* Whole-file reads with a size cap, and atomic writes: a file is written under a temporary
 * name in the same directory, fsynced, then renamed over the target, and the directory is
 * fsynced, so a crash or kill at any moment leaves either the old file or the new one. */
#ifndef PX_FILE_H
#define PX_FILE_H

#include <stddef.h>
#include <sys/types.h>

struct px_err;

/* Reads all of 'path' into a NUL-terminated buffer; fails when it is larger than max. */
int px_file_read(const char *path, size_t max, char **ret_data, size_t *ret_len,
                 struct px_err **err);

/* Writes len bytes to fd, retrying on short writes and EINTR. */
int px_write_all(int fd, const void *buf, size_t len, const char *what, struct px_err **err);

struct px_atomic {
	char *path;
	char *tmp;
	int fd;
};

/* Creates a temporary file beside 'path' for writing; nothing is visible at 'path' until
 * px_atomic_commit. */
int px_atomic_open(struct px_atomic *a, const char *path, mode_t mode, struct px_err **err);
/* fsync, rename over the target, fsync the directory. The handle is released either way. */
int px_atomic_commit(struct px_atomic *a, struct px_err **err);
/* Removes the temporary file; safe on a handle already committed or never opened. */
void px_atomic_abort(struct px_atomic *a);

/* Writes a whole buffer to 'path' atomically. */
int px_atomic_write_file(const char *path, const void *buf, size_t len, mode_t mode,
                         struct px_err **err);

/* mkdir -p; existing directories are fine. */
int px_mkdir_p(const char *path, mode_t mode, struct px_err **err);

#endif
