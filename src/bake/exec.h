/* Executors of the chroot bake method: who runs the generated script (chroot-script.h).
 *
 *   local    (exec-local.c)   Linux as root: `sh -s` with the script on stdin
 *   lima     (exec-lima.c)    macOS: `limactl shell INSTANCE -- sudo sh -s`, the work copy
 *                             on the Lima instance's own disk
 *   guestfs  (exec-guestfs.c) Linux without root: the same steps through the libguestfs
 *                             API in its appliance (built with -DPX_HAVE_GUESTFS) */
#ifndef PX_BAKE_EXEC_H
#define PX_BAKE_EXEC_H

#include <stdbool.h>
#include <stddef.h>

struct px_chroot_script;
struct px_err;

struct px_bake_exec {
	const char *name;
	/* Whether this executor can run here; false with *ret_why set (static text) if not. */
	bool (*available)(const char **ret_why);
	/* Runs the bake described by 's': its image is replaced only on success. 'work_dir' is
	 * host scratch space (the script file, copies). */
	int (*run)(const struct px_chroot_script *s, const char *work_dir, struct px_err **err);
};

extern const struct px_bake_exec px_bake_exec_local;
extern const struct px_bake_exec px_bake_exec_lima;
extern const struct px_bake_exec px_bake_exec_guestfs;

/* Saves 'script' in work_dir, runs argv with it on stdin and fails unless it exits 0; the
 * error carries the script's last "error:" line (else its last line of stderr). */
int px_bake_exec_script(const char *const argv[], const char *script, const char *work_dir,
                        struct px_err **err);

/* What the lima executor runs, in order: make a private dir D on the instance's own disk,
 * copy the image (and file:// repositories and keys) into it, run the script there with
 * `limactl shell --workdir / INSTANCE -- sudo sh -s`, copy the baked image back to
 * host_tmp; the last step (removing D) runs whatever happened. Exposed for the tests. */
struct px_lima_plan {
	char ***steps; /* NULL-terminated argvs */
	size_t n_steps;
	size_t script_step; /* the step that reads 'script' on stdin */
	char *script;       /* the chroot script with the paths inside the instance */
	char *host_tmp;     /* the baked image lands here, then replaces the image */
};

/* Builds the plan for 's' on 'instance'; 'tag' makes D unique (/var/tmp/pexi-bake-TAG). */
int px_bake_lima_plan(const struct px_chroot_script *s, const char *limactl, const char *instance,
                      const char *tag, struct px_lima_plan *ret, struct px_err **err);
void px_bake_lima_plan_free(struct px_lima_plan *p);

#endif
