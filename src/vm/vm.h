/* The hypervisor backends behind one ops table. The supervisor (supervisor.c) knows nothing
 * of QEMU or Virtualization.framework: it asks the backend for the program to run, starts
 * it as its child, and asks the backend for the gentle power-off rung of the stop ladder.
 *
 *   qemu  Linux (and macOS QEMU): qemu.c builds the argv, kvm.c decides the accelerator,
 *         qmp.c carries system_powerdown
 *   avf   macOS: the Swift runner in vendor-shim/ (avf.c builds its argv); on Linux only
 *         with PEXI_AVF_RUNNER naming a stand-in runner, for tests */
#ifndef PX_VM_H
#define PX_VM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct px_err;
struct px_manifest;
struct px_instance;

/* Everything a backend needs to start one instance, resolved by px_vm_prepare. Paths are
 * absolute. */
struct px_vm {
	const struct px_vm_ops *ops;
	const struct px_manifest *m;
	const struct px_instance *inst;
	char *disk;       /* the instance's copy of the built disk.raw */
	char *seed;       /* the built seed.iso, attached read-only */
	char *shared_dir; /* the host folder shared as 'workspace', or NULL */
	char *accel;      /* "kvm", "hvf", "tcg" (qemu) or "vz" (avf) */
	char *warning;    /* what the user should know about the choice (KVM unusable), or NULL */
	bool vsock;       /* the channel is virtio-vsock (else the virtio-serial port pexi.pep) */
	char **argv;      /* the hypervisor's argv, NULL-terminated */
};

struct px_vm_ops {
	const char *name;
	/* Fills in accel, vsock, argv and any per-instance files the backend keeps (firmware
	 * variables, machine identifier). */
	int (*prepare)(struct px_vm *vm, struct px_err **err);
	/* The gentle rung of the stop ladder: ACPI power button (QMP system_powerdown) or
	 * requestStop. 'pid' is the running hypervisor. */
	int (*powerdown)(const struct px_vm *vm, pid_t pid, struct px_err **err);
};

extern const struct px_vm_ops px_vm_qemu_ops;
extern const struct px_vm_ops px_vm_avf_ops;

/* Chooses the backend for the manifest's vm.backend on this host: auto is avf on macOS and
 * qemu elsewhere; avf on Linux only when PEXI_AVF_RUNNER is set. */
int px_vm_select(const struct px_manifest *m, const struct px_vm_ops **ret, struct px_err **err);

/* Resolves paths and runs the backend's prepare: the disk copy must already exist. */
int px_vm_prepare(struct px_vm *vm, const struct px_vm_ops *ops, const struct px_manifest *m,
                  const struct px_instance *inst, const char *disk, const char *seed,
                  struct px_err **err);
void px_vm_free(struct px_vm *vm);

/* A NULL-terminated argv under construction. */
struct px_argv {
	char **v;
	size_t n;
};
void px_argv_add(struct px_argv *a, const char *s);
void px_argv_addf(struct px_argv *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the vector over (NULL-terminated); the argv is left empty. */
char **px_argv_steal(struct px_argv *a);
void px_argv_free(char **v);

#endif
