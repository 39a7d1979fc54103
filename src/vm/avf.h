/* The AVF backend: pexi runs the Swift runner from vendor-shim/ (pexi-avf) as its child.
 * The runner's command line is its whole contract, so a stand-in honouring it
 * (tests/fixtures/avf-standin) can stand for it where Virtualization.framework is absent:
 *
 *   pexi-avf --disk D --seed S --efi-vars F --machine-id F --cpus N --memory BYTES
 *            [--shared-dir DIR] --console LOG --vsock-port P --pep-socket SOCK
 *            --stop-timeout SECONDS
 *
 * It boots D (EFI, variables in F, created when missing) with S read-only, shares DIR as
 * virtio-fs tag 'workspace', appends the virtio console to LOG, listens on vsock port P
 * and bridges each guest connection to the unix socket SOCK. SIGTERM asks the guest to
 * stop (requestStop) and stops the VM after SECONDS; it exits when the VM stops, and when
 * its parent dies. The runner is found through $PEXI_AVF_RUNNER, else as pexi-avf beside
 * the pexi binary or in PATH; on Linux only $PEXI_AVF_RUNNER is honoured. */
#ifndef PX_AVF_H
#define PX_AVF_H

#include <stdint.h>

struct px_err;

struct px_avf_opts {
	const char *runner;
	const char *disk;
	const char *seed;
	const char *efi_vars;
	const char *machine_id;
	uint32_t cpus;
	uint64_t memory;
	const char *shared_dir; /* NULL: no share */
	const char *console_log;
	uint32_t vsock_port;
	const char *pep_sock;
	uint32_t stop_timeout_s;
};

/* Builds the runner's argv (NULL-terminated; free with px_argv_free). */
int px_avf_argv(const struct px_avf_opts *o, char ***ret, struct px_err **err);

/* Finds the runner; fails with what to do when there is none. */
int px_avf_find_runner(char **ret, struct px_err **err);

#endif
