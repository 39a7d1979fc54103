/* The QEMU command line. The guest gets a disk, a read-only seed, a 9p share, a console and
 * one channel to the PEP, and never a network card: `-nodefaults` removes QEMU's implicit
 * NIC and `-nic none` says so explicitly, so no option added later can bring one back by
 * default. */
#ifndef PX_QEMU_H
#define PX_QEMU_H

#include <stdbool.h>
#include <stdint.h>

#include "manifest/manifest.h"

struct px_err;

struct px_qemu_opts {
	enum px_arch arch;
	const char *binary; /* NULL: qemu-system-x86_64 or qemu-system-aarch64 */
	const char *name;
	const char *accel; /* kvm, hvf or tcg */
	uint32_t cpus;
	uint64_t memory; /* bytes */
	/* UEFI: the firmware code (read-only pflash) and the instance's variable store. */
	const char *firmware_code;
	const char *firmware_vars;
	/* Direct kernel boot when kernel is set (the firmware is then not used). */
	const char *kernel;
	const char *initrd;
	const char *append;
	const char *disk;
	const char *seed;
	const char *shared_dir; /* NULL: no share */
	const char *console_log;
	const char *qmp_sock;
	/* The channel: vhost-vsock with guest_cid, else a virtio-serial port 'pexi.pep' whose
	 * chardev connects to pep_sock. */
	bool vsock;
	uint32_t guest_cid;
	const char *pep_sock;
	/* The guest browser agent's command port: a virtio-serial port 'pexi.browser' whose
	 * chardev listens at browser_sock for `pexi browse` (NULL: none). */
	const char *browser_sock;
};

/* Builds the argv (NULL-terminated; free with px_argv_free). */
int px_qemu_argv(const struct px_qemu_opts *o, char ***ret, struct px_err **err);

/* The QEMU system emulator for an architecture. */
const char *px_qemu_binary(enum px_arch arch);

/* Finds the UEFI firmware for 'arch': 'configured' (vm.firmware) when set, else the first
 * of the usual install locations under 'root' ("" for /). *ret_vars is the variable-store
 * template to copy per instance, or NULL when there is none (an empty store of the code's
 * size is then made). */
int px_qemu_find_firmware(enum px_arch arch, const char *configured, const char *root,
                          char **ret_code, char **ret_vars, struct px_err **err);

/* Makes the instance's variable store at 'dst' from 'tmpl' (or zeros of the code's size)
 * unless it already exists: firmware settings persist from one up to the next. */
int px_qemu_init_vars(const char *dst, const char *tmpl, const char *code, struct px_err **err);

/* Whether /dev/vhost-vsock can be opened, so vhost-vsock-pci would work. */
bool px_qemu_vhost_vsock_usable(void);

/* Escapes a value for QEMU's option syntax, where a comma must be doubled. */
char *px_qemu_escape(const char *s);

#endif
