/* Whole-file reads with a size cap, and atomic writes: a file is written under a temporary
 * name in the same directory, fsynced, then renamed over the target, and the directory is
 * fsynced, so a crash or kill at any moment leaves either the old file or the new one. */
#ifndef PX_FILE_H
#define PX_FILE_H

#include <stddef.h>
#include <sys/types.h>

struct px_err;
struct stat;

/* Opens 'path' (O_CLOEXEC is added to flags) and fstat()s it into *ret_st. Returns the fd,
 * or a negative value with "cannot open" / "cannot stat" set in err. */
int px_file_open(const char *path, int flags, struct stat *ret_st, struct px_err **err);

/* Finds the first data extent of fd in [from, end): *ret_data is where it starts and
 * *ret_hole where it ends (at most end); *ret_data == end when only a hole remains. Where
 * the filesystem has no SEEK_DATA, all of [from, end) counts as data. Any other lseek
 * failure is reported as "cannot scan 'name'". */
int px_file_next_data(int fd, off_t from, off_t end, const char *name, off_t *ret_data,
                      off_t *ret_hole, struct px_err **err);

/* Makes [off, off+len) of fd read as zeros: a hole where the filesystem can punch one,
 * written zeros elsewhere. Returns 0 or a negative errno, for the caller to word the error
 * in its own terms. */
int px_file_zero_range(int fd, off_t off, off_t len);

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

/* fsyncs the directory holding 'path', so a rename into it survives a crash. */
int px_file_sync_dir(const char *path, struct px_err **err);

/* mkdir -p; existing directories are fine. */
int px_mkdir_p(const char *path, mode_t mode, struct px_err **err);

#endif
