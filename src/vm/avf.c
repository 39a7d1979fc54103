#include <signal.h>
#include <sys/stat.h>

#include "core/common.h"

#include "core/spawn.h"
#include "manifest/manifest.h"
#include "vm/avf.h"
#include "vm/instance.h"
#include "vm/vm.h"

#define AVF_STOP_TIMEOUT_S 10

int px_avf_argv(const struct px_avf_opts *o, char ***ret, struct px_err **err)
{
	if (!o->runner || !o->disk || !o->seed || !o->console_log || !o->pep_sock || !o->efi_vars ||
	    !o->machine_id)
		return px_err_set(err, PX_EXIT_FAILURE,
		                  "avf: runner, disk, seed, firmware state, "
		                  "console and PEP socket are required");
	struct px_argv a = {0};
	px_argv_add(&a, o->runner);
	px_argv_add(&a, "--disk");
	px_argv_add(&a, o->disk);
	px_argv_add(&a, "--seed");
	px_argv_add(&a, o->seed);
	px_argv_add(&a, "--efi-vars");
	px_argv_add(&a, o->efi_vars);
	px_argv_add(&a, "--machine-id");
	px_argv_add(&a, o->machine_id);
	px_argv_add(&a, "--cpus");
	px_argv_addf(&a, "%" PRIu32, o->cpus ? o->cpus : 1);
	px_argv_add(&a, "--memory");
	px_argv_addf(&a, "%" PRIu64, o->memory ? o->memory : (uint64_t)1 << 30);
	if (o->shared_dir) {
		px_argv_add(&a, "--shared-dir");
		px_argv_add(&a, o->shared_dir);
	}
	px_argv_add(&a, "--console");
	px_argv_add(&a, o->console_log);
	px_argv_add(&a, "--vsock-port");
	px_argv_addf(&a, "%" PRIu32, o->vsock_port);
	px_argv_add(&a, "--pep-socket");
	px_argv_add(&a, o->pep_sock);
	px_argv_add(&a, "--stop-timeout");
	px_argv_addf(&a, "%" PRIu32, o->stop_timeout_s ? o->stop_timeout_s : AVF_STOP_TIMEOUT_S);
	*ret = px_argv_steal(&a);
	return 0;
}

static bool is_executable(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

int px_avf_find_runner(char **ret, struct px_err **err)
{
	const char *env = getenv("PEXI_AVF_RUNNER");
	if (env && *env) {
		if (!is_executable(env))
			return px_err_set(err, PX_EXIT_FAILURE,
			                  "PEXI_AVF_RUNNER '%s' is not an executable file", env);
		*ret = xstrdup(env);
		return 0;
	}
#if defined(__APPLE__)
	const char *beside[] = {PX_DATADIR "/../../libexec/pexi/pexi-avf", NULL};
	for (size_t i = 0; beside[i]; i++) {
		if (is_executable(beside[i])) {
			*ret = xstrdup(beside[i]);
			return 0;
		}
	}
	if (px_have_program("pexi-avf")) {
		*ret = xstrdup("pexi-avf");
		return 0;
	}
	return px_err_set(err, PX_EXIT_FAILURE,
	                  "the AVF runner 'pexi-avf' is not installed (build it with 'make shim', "
	                  "see vendor-shim/README.md)");
#else
	return px_err_set(err, PX_EXIT_MANIFEST,
	                  "vm.backend 'avf' needs macOS (to test it elsewhere, set "
	                  "PEXI_AVF_RUNNER to a stand-in runner)");
#endif
}

static int avf_prepare(struct px_vm *vm, struct px_err **err)
{
	if (vm->m->vm.kernel)
		return px_err_set(err, PX_EXIT_MANIFEST,
		                  "vm.kernel (direct kernel boot) is for the qemu backend only");
	_cleanup_free_ char *runner = NULL;
	if (px_avf_find_runner(&runner, err) < 0)
		return -1;
	vm->accel = xstrdup("vz");
	vm->vsock = true;
	struct px_avf_opts o = {
	        .runner = runner,
	        .disk = vm->disk,
	        .seed = vm->seed,
	        .efi_vars = vm->inst->efi_vars,
	        .machine_id = vm->inst->machine_id,
	        .cpus = vm->m->vm.cpus,
	        .memory = vm->m->vm.memory,
	        .shared_dir = vm->shared_dir,
	        .console_log = vm->inst->console_log,
	        .vsock_port = vm->m->vm.vsock_port,
	        .pep_sock = vm->inst->pep_sock,
	        .stop_timeout_s = AVF_STOP_TIMEOUT_S,
	};
	return px_avf_argv(&o, &vm->argv, err);
}

/* The runner turns SIGTERM into requestStop (the guest's power button), and stops the VM
 * itself when the guest does not within its --stop-timeout. */
static int avf_powerdown(const struct px_vm *vm, pid_t pid, struct px_err **err)
{
	(void)vm;
	if (kill(pid, SIGTERM) < 0)
		return px_err_errno(err, errno, "cannot signal the AVF runner (pid %d)", (int)pid);
	return 0;
}

const struct px_vm_ops px_vm_avf_ops = {
        .name = "avf",
        .prepare = avf_prepare,
        .powerdown = avf_powerdown,
};
