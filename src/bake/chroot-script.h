/* The chroot bake method's one generated POSIX shell script: what the seeds did by hand.
 * It copies the image to a private work dir on a local filesystem (refusing virtiofs, 9p,
 * FUSE and network filesystems), attaches the root partition at its offset on a loop
 * device, mounts it, binds /proc /sys /dev, copies the host's resolv.conf in (keeping the
 * image's own), runs `apk add --no-cache` in a chroot, restores resolv.conf, clears the apk
 * cache, unmounts everything in reverse order (a trap does it on every failure too), runs
 * `e2fsck -fn` and copies the image back. The original image is replaced only on success.
 *
 * Only the script's first lines carry data, every value single-quoted; the body is fixed
 * text that reads them from variables. */
#ifndef PX_BAKE_CHROOT_SCRIPT_H
#define PX_BAKE_CHROOT_SCRIPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct px_buf;
struct px_err;

struct px_chroot_script {
	const char *image;       /* absolute path of the raw disk image, as the shell sees it */
	const char *work_base;   /* absolute directory the script makes its work dir in */
	uint64_t root_offset;    /* byte offset of the ext4 root partition */
	uint64_t root_size;      /* its size in bytes */
	const char *resolv_conf; /* host file copied in; NULL: /etc/resolv.conf */
	const char *const *repositories; /* http(s):// passed on, file:// bind-mounted read-only */
	size_t n_repositories;
	const char *const *keys; /* absolute paths of public keys added to the image's keys */
	size_t n_keys;
	const char *const *packages; /* apk add arguments, e.g. "nodejs>=20" */
	size_t n_packages;
	bool allow_untrusted;
};

/* Appends 's' as one single-quoted POSIX shell word ('it'\''s'); any byte is safe. */
void px_sh_quote(struct px_buf *b, const char *s);

/* file:///path or file://localhost/path → "/path" (inside url); NULL for anything else. */
const char *px_chroot_file_url_path(const char *url);

/* Writes the script for 's' into *ret (caller frees). Fails on a relative image or work
 * path, a repository that is neither http(s):// nor file:///, or no packages. */
int px_chroot_script_build(const struct px_chroot_script *s, char **ret, struct px_err **err);

#endif
