/* The cloud-init NoCloud content of the seed: meta-data, user-data and the optional
 * network-config, rendered from the manifest with libyaml's emitter (never by pasting
 * strings), so whatever a user writes into a command or a file comes back from a YAML
 * parser byte for byte.
 *
 * user-data (a #cloud-config document; keys always in this order, absent when empty):
 *   users:        one user, cloud_init.user, with lock_passwd: true, shell /bin/sh, its
 *                 ssh_authorized_keys, and no sudo rule (the sandbox user gets no way to
 *                 root; runcmd already runs as root). Without cloud_init.user the key is
 *                 left out and the image's cloud.cfg decides.
 *   write_files:  cloud_init.write_files in manifest order (path, content, owner,
 *                 permissions); an entry owned by someone other than root gets
 *                 defer: true, because write_files runs before users are created.
 *   mounts:       when vm.shared_dir is set, the host folder shared under the virtio-fs
 *                 tag "workspace":  [workspace, /mnt/workspace, virtiofs, "rw,nofail",
 *                 "0", "0"]  (nofail: the guest still boots without the share).
 *   runcmd:       extra_runcmd first (what the recipe needs, e.g. enabling pexi-boot),
 *                 then cloud_init.runcmd.
 * Scalars a user wrote are double-quoted, or literal blocks when they span lines and a
 * literal block can carry them exactly; libyaml falls back to double quotes otherwise.
 *
 * meta-data: instance-id, then local-hostname (the manifest's name).
 * The instance-id is "iid-" and the first 16 hex digits of a SHA-256 over the rendered
 * user-data, network-config and local-hostname, so every change of the seed content
 * makes cloud-init run its per-instance modules again, and nothing else changes the id.
 * cloud_init.instance_id pins it instead (verbatim), unless it is "auto". */
#ifndef PX_CLOUDINIT_H
#define PX_CLOUDINIT_H

#include <stddef.h>

struct px_err;
struct px_manifest;
struct px_strv;

/* The three seed files as NUL-terminated text. */
struct px_seed_content {
	char *meta_data;
	char *user_data;
	char *network_config; /* NULL: no network-config file */
	char *instance_id;    /* the id written into meta-data */
};

/* Renders the seed files from m (cloud_init.*, name, vm.shared_dir). extra_runcmd (may be
 * NULL) holds commands the recipe needs, run before the user's own. Fails with
 * PX_EXIT_MANIFEST when a value cannot be represented (text that is not UTF-8,
 * network_config that is not YAML). On success *ret is filled; free it with
 * px_seed_content_free. */
int px_cloudinit_render(const struct px_manifest *m, const struct px_strv *extra_runcmd,
                        struct px_seed_content *ret, struct px_err **err);

/* Frees the strings of c (not c itself) and clears them; NULL is fine. */
void px_seed_content_free(struct px_seed_content *c);

#endif
