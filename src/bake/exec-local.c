#include "bake/exec.h"

#include "bake/chroot-script.h"
#include "core/common.h"

static bool local_available(const char **ret_why)
{
#ifdef __linux__
	if (geteuid() != 0) {
		*ret_why = "the local executor needs root (loop devices, mount, chroot); run pexi "
		           "build as root or set packages.executor: guestfs";
		return false;
	}
	return true;
#else
	*ret_why = "the local executor needs Linux (loop devices); set packages.executor: lima";
	return false;
#endif
}

static int local_run(const struct px_chroot_script *s, const char *work_dir, struct px_err **err)
{
	const char *why = NULL;
	if (!local_available(&why))
		return px_err_set(err, PX_EXIT_FAILURE, "%s", why);
	_cleanup_free_ char *script = NULL;
	if (px_chroot_script_build(s, &script, err) < 0)
		return -1;
	const char *argv[] = {"sh", "-s", NULL};
	return px_bake_exec_script(argv, script, work_dir, err);
}

const struct px_bake_exec px_bake_exec_local = {
        .name = "local",
        .available = local_available,
        .run = local_run,
};
