/* Whether KVM really works here. /dev/kvm existing proves little: under some nested
 * hypervisors the device opens and creates VMs, yet QEMU aborts setting an MSR or hangs in
 * the kernel. So the probe asks the kernel first (cheap), then boots a 5-byte guest with
 * the same QEMU, machine and CPU model the instance will use, with a short timeout. The
 * answer is not cached: it costs well under a second and a stale "yes" would hang an up. */
#ifndef PX_KVM_H
#define PX_KVM_H

#include <stdbool.h>

#include "manifest/manifest.h"

/* True when KVM can run an 'arch' guest with 'qemu'. 'workdir' holds the probe's firmware
 * for a moment. On false, *ret_reason (caller frees) says why. */
bool px_kvm_usable(enum px_arch arch, const char *qemu, const char *workdir, char **ret_reason);

/* Runs the probe guest under 'accel' (kvm or tcg) and returns 0 when it ran to its end;
 * otherwise *ret_reason says what happened. Exposed so a test can check the probe guest
 * itself under TCG. */
int px_kvm_probe_guest(enum px_arch arch, const char *qemu, const char *accel, const char *workdir,
                       int timeout_ms, char **ret_reason);

#endif
