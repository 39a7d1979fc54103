#ifdef PX_HAVE_GUESTFS
#include <guestfs.h>
#endif

#include "bake/exec.h"

#include "bake/chroot-script.h"
#include "core/common.h"

#ifdef PX_HAVE_GUESTFS
#include "core/spawn.h"
#include "image/sparse.h"

/* The chroot script's steps through the libguestfs API: no root, no loop devices; the
 * appliance mounts the root partition, and guestfs_command runs apk chrooted into it with
 * /proc /sys /dev bound by the daemon. The appliance itself is the isolation, so the
 * symlink checks the script needs on a host are not needed here. */

static bool gfs_available(const char **ret_why)
{
	(void)ret_why;
	return true;
}

static int gerr(guestfs_h *g, struct px_err **err, const char *what)
{
	const char *e = guestfs_last_error(g);
	return px_err_set(err, PX_EXIT_FAILURE, "guestfs: %s: %s", what, e ? e : "failed");
}

static void free_strv(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

static int find_root(guestfs_h *g, uint64_t offset, char **ret, struct px_err **err)
{
	struct guestfs_partition_list *pl = guestfs_part_list(g, "/dev/sda");
	if (!pl)
		return gerr(g, err, "reading the partition table");
	int num = -1;
	for (uint32_t i = 0; i < pl->len; i++)
		if (pl->val[i].part_start == offset)
			num = pl->val[i].part_num;
	guestfs_free_partition_list(pl);
	if (num < 0)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "guestfs: no partition starts at byte %" PRIu64, offset);
	*ret = xasprintf("/dev/sda%d", num);
	return 0;
}

/* Everything between launch and shutdown; on failure the caller closes the handle, which
 * throws the appliance and its unsynced writes away with the work copy. */
static int bake(guestfs_h *g, const struct px_chroot_script *s, struct px_err **err)
{
	_cleanup_free_ char *dev = NULL;
	if (find_root(g, s->root_offset, &dev, err) < 0)
		return -1;
	if (guestfs_mount(g, dev, "/") < 0)
		return gerr(g, err, "mounting the root filesystem");
	/* The daemon binds /proc /sys /dev for guestfs_command only where they exist. */
	static const char *const binds[] = {"/proc", "/sys", "/dev"};
	bool made[3] = {false, false, false};
	for (size_t i = 0; i < 3; i++) {
		if (guestfs_exists(g, binds[i]) > 0 || guestfs_is_symlink(g, binds[i]) > 0)
			continue;
		if (guestfs_mkdir(g, binds[i]) < 0)
			return gerr(g, err, "making a mount point");
		made[i] = true;
	}
	if (guestfs_mkdir(g, "/.pexi-bake") < 0 || guestfs_mkdir(g, "/.pexi-bake/keys") < 0)
		return gerr(g, err, "making /.pexi-bake");
	if (guestfs_is_dir(g, "/etc/apk/keys") > 0) {
		char **keys = guestfs_ls(g, "/etc/apk/keys");
		for (char **k = keys; k && *k; k++) {
			_cleanup_free_ char *src = xasprintf("/etc/apk/keys/%s", *k);
			if (guestfs_cp_a(g, src, "/.pexi-bake/keys/") < 0) {
				free_strv(keys);
				return gerr(g, err, "copying the image's keys");
			}
		}
		free_strv(keys);
	}
	for (size_t i = 0; i < s->n_keys; i++) {
		const char *base = strrchr(s->keys[i], '/');
		_cleanup_free_ char *dst =
		        xasprintf("/.pexi-bake/keys/%s", base ? base + 1 : s->keys[i]);
		if (guestfs_upload(g, s->keys[i], dst) < 0)
			return gerr(g, err, "uploading a key");
	}

	/* apk's argv: the same options the script passes. file:// repositories are uploaded
	 * (copy_in puts DIR at /.pexi-bake/repo.N/BASENAME). */
	size_t cap = 16 + 2 * s->n_repositories + s->n_packages;
	char **argv = xcalloc(cap, sizeof(*argv));
	char **owned = xcalloc(s->n_repositories + 1, sizeof(*owned));
	size_t n = 0, n_file = 0;
	int rc = -1;
	argv[n++] = "/bin/sh";
	argv[n++] = "-c";
	argv[n++] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin; export PATH; exec apk \"$@\"";
	argv[n++] = "sh";
	argv[n++] = "add";
	argv[n++] = "--no-cache";
	argv[n++] = "--keys-dir";
	argv[n++] = "/.pexi-bake/keys";
	if (s->allow_untrusted)
		argv[n++] = "--allow-untrusted";
	if (s->n_repositories > 0) {
		argv[n++] = "--repositories-file";
		argv[n++] = "/dev/null";
	}
	bool network = false;
	for (size_t i = 0; i < s->n_repositories; i++) {
		const char *path = px_chroot_file_url_path(s->repositories[i]);
		argv[n++] = "--repository";
		if (!path) {
			network = true;
			argv[n++] = (char *)s->repositories[i];
			continue;
		}
		_cleanup_free_ char *dir = xasprintf("/.pexi-bake/repo.%zu", ++n_file);
		if (guestfs_mkdir(g, dir) < 0 || guestfs_copy_in(g, path, dir) < 0) {
			gerr(g, err, "uploading a file:// repository");
			goto out;
		}
		const char *base = strrchr(path, '/');
		base = base && base[1] ? base + 1 : path;
		owned[i] = xasprintf("%s/%s", dir, base);
		argv[n++] = owned[i];
	}
	argv[n++] = "--";
	for (size_t i = 0; i < s->n_packages; i++)
		argv[n++] = (char *)s->packages[i];
	argv[n] = NULL;

	/* resolv.conf: the host's in, the image's back afterwards (only with network). */
	int had_resolv = guestfs_exists(g, "/etc/resolv.conf") > 0 ||
	                 guestfs_is_symlink(g, "/etc/resolv.conf") > 0;
	if (network) {
		if (had_resolv &&
		    guestfs_mv(g, "/etc/resolv.conf", "/etc/resolv.conf.pexi-orig") < 0) {
			gerr(g, err, "saving /etc/resolv.conf");
			goto out;
		}
		const char *host = s->resolv_conf ? s->resolv_conf : "/etc/resolv.conf";
		if (access(host, R_OK) == 0 && guestfs_upload(g, host, "/etc/resolv.conf") < 0) {
			gerr(g, err, "copying resolv.conf in");
			goto out;
		}
	}
	char *out = guestfs_command(g, argv);
	if (!out) {
		gerr(g, err, "apk add");
		goto out;
	}
	free(out);
	if (network) {
		if (guestfs_rm_f(g, "/etc/resolv.conf") < 0 ||
		    (had_resolv &&
		     guestfs_mv(g, "/etc/resolv.conf.pexi-orig", "/etc/resolv.conf") < 0)) {
			gerr(g, err, "restoring /etc/resolv.conf");
			goto out;
		}
	}
	char **cache = guestfs_glob_expand(g, "/var/cache/apk/*");
	for (char **c = cache; c && *c; c++)
		guestfs_rm_rf(g, *c);
	free_strv(cache);
	if (guestfs_rm_rf(g, "/.pexi-bake") < 0) {
		gerr(g, err, "removing /.pexi-bake");
		goto out;
	}
	for (size_t i = 0; i < 3; i++) {
		if (made[i] && guestfs_rmdir(g, binds[i]) < 0) {
			gerr(g, err, "removing a mount point");
			goto out;
		}
	}
	if (guestfs_umount_all(g) < 0 || guestfs_shutdown(g) < 0) {
		gerr(g, err, "unmounting and syncing");
		goto out;
	}
	rc = 0;
out:
	for (size_t i = 0; i < s->n_repositories; i++)
		free(owned[i]);
	free(owned);
	free(argv);
	return rc;
}

static int gfs_run(const struct px_chroot_script *s, const char *work_dir, struct px_err **err)
{
	_cleanup_free_ char *copy = xasprintf("%s/guestfs-%ld.raw", work_dir, (long)getpid());
	if (px_sparse_copy(s->image, copy, err) < 0)
		return px_err_wrap(err, "copying '%s' to the work directory", s->image);
	guestfs_h *g = guestfs_create();
	if (!g) {
		unlink(copy);
		return px_err_set(err, PX_EXIT_FAILURE, "guestfs: cannot create a handle");
	}
	guestfs_set_error_handler(g, NULL, NULL);
	int rc = -1;
	bool network = false;
	for (size_t i = 0; i < s->n_repositories; i++)
		network = network || !px_chroot_file_url_path(s->repositories[i]);
	if (guestfs_add_drive_opts(g, copy, GUESTFS_ADD_DRIVE_OPTS_FORMAT, "raw", -1) < 0) {
		gerr(g, err, "adding the disk");
	} else if (network && guestfs_set_network(g, 1) < 0) {
		gerr(g, err, "enabling the network");
	} else if (guestfs_launch(g) < 0) {
		gerr(g, err, "launching the appliance (see libguestfs-test-tool)");
	} else {
		rc = bake(g, s, err);
	}
	guestfs_close(g);
	if (rc == 0) {
		_cleanup_free_ char *at = xasprintf("%s?offset=%" PRIu64, copy, s->root_offset);
		const char *fsck[] = {"e2fsck", "-fn", at, NULL};
		if (px_run(fsck, NULL, err) < 0)
			rc = px_err_wrap(err, "the baked root filesystem has errors");
	}
	if (rc == 0 && rename(copy, s->image) < 0) {
		/* The work dir may be on another filesystem: copy beside the image, then rename. */
		_cleanup_free_ char *tmp = xasprintf("%s.pexi-guestfs.tmp", s->image);
		if (errno != EXDEV)
			rc = px_err_errno(err, errno, "cannot rename '%s' to '%s'", copy, s->image);
		else if (px_sparse_copy(copy, tmp, err) < 0 || rename(tmp, s->image) < 0)
			rc = px_err_wrap(err, "cannot replace '%s'", s->image);
		if (rc < 0)
			unlink(tmp);
	}
	unlink(copy);
	return rc;
}

#else

static bool gfs_available(const char **ret_why)
{
	*ret_why = "this pexi was built without libguestfs (install libguestfs-dev and rebuild)";
	return false;
}

static int gfs_run(const struct px_chroot_script *s, const char *work_dir, struct px_err **err)
{
	(void)s;
	(void)work_dir;
	const char *why = NULL;
	gfs_available(&why);
	return px_err_set(err, PX_EXIT_NOT_IMPLEMENTED, "%s", why);
}

#endif

const struct px_bake_exec px_bake_exec_guestfs = {
        .name = "guestfs",
        .available = gfs_available,
        .run = gfs_run,
};
