/* The seed stage: the cloud-init NoCloud "cidata" ISO 9660 image (Rock Ridge + Joliet)
 * written with libisofs. The content comes from image/cloudinit.h; this module only
 * packs it, reproducibly: every date in the image is the given epoch, owners are 0:0,
 * modes fixed, no random values, so the same content and epoch give the same bytes. */
#ifndef PX_SEED_H
#define PX_SEED_H

#include <stdint.h>

struct px_err;
struct px_seed_content;

/* The volume id NoCloud looks for. Lowercase on purpose: AVF rejected an uppercase label,
 * so the primary and the Joliet volume descriptors both carry exactly this. */
#define PX_SEED_VOLUME_ID "cidata"

/* Writes an ISO image with volume id "cidata" holding /meta-data, /user-data and, when
 * c->network_config is not NULL, /network-config (mode 0644, directories 0755, owner
 * 0:0), every timestamp (volume descriptors, directory records, Rock Ridge) set to 'epoch'
 * (seconds since 1970, >= 0, recorded as GMT). The image appears at out_path atomically
 * (temporary file, fsync, rename): on failure an earlier file there is left intact.
 * Not thread-safe: libisofs's "now" override is process-wide for the call. */
int px_seed_write(const struct px_seed_content *c, int64_t epoch, const char *out_path,
                  struct px_err **err);

#endif
