/* One instance's directory, `.pexi/instances/NAME/` beside the manifest:
 *
 *   lock            flock()ed exclusively by the supervisor for its whole life: whether an
 *                   instance runs is asked of the lock, never of a pidfile or a process name
 *   state.json      what the supervisor last recorded (written atomically)
 *   console.log     the guest console (serial and hvc0)
 *   pep.log         the PEP's stdout and stderr
 *   audit.jsonl     the PEP's audit log
 *   supervisor.log  the supervisor's own messages and the hypervisor's stderr
 *   pep.sock        the PEP's unix socket (the guest channel ends there)
 *   qmp.sock        QEMU's QMP socket
 *   control.sock    the supervisor's control socket (`pexi down` speaks to it)
 *   browser.sock    the guest browser agent's command channel (`pexi browse`), QEMU's
 *                   end of the virtio-serial port pexi.browser
 *   policy.yml      the manifest's pep section, as the PEP reads it
 *   disk.raw        the instance's copy of the built disk (each up starts from the build)
 *   efi-vars.fd, machine-id   firmware state kept from one up to the next */
#ifndef PX_INSTANCE_H
#define PX_INSTANCE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/clock.h"

struct px_err;
struct px_manifest;

struct px_instance {
	char *name;
	char *dir;
	char *lock_path;
	char *state_path;
	char *console_log;
	char *pep_log;
	char *audit_log;
	char *supervisor_log;
	char *pep_sock;
	char *qmp_sock;
	char *control_sock;
	char *browser_sock;
	char *policy;
	char *disk;
	char *efi_vars;
	char *machine_id;
	/* pep.audit_log names the audit log: it lives outside the instance dir, outlives runs
	 * and the PEP continues its chain, so nothing here truncates or removes it. */
	bool audit_log_kept;
	int lock_fd; /* >= 0 while this process holds the lock */
};

/* What state.json records. Strings are owned; NULL when unknown. */
struct px_instance_state {
	char *state; /* starting, running, stopping, stopped, failed */
	char *name;
	char *backend;
	char *accel;
	char *channel; /* vsock or virtio-serial */
	char *manifest;
	char *instance_id; /* what the guest's hello carried */
	char *ready_by;    /* hello or console */
	char *reason;      /* why it stopped or failed */
	pid_t supervisor_pid;
	pid_t pep_pid;
	pid_t vm_pid;
	int64_t started_ms; /* wall clock, ms since the epoch */
	int64_t ready_ms;
	int64_t stopped_ms;
};

/* Names the instance 'name' under 'base' (the directory holding .pexi). Touches nothing. */
struct px_instance *px_instance_new(const char *base, const char *name);
void px_instance_free(struct px_instance *in);

/* Names the instance of a loaded manifest ('name' NULL: the manifest's name) beside it;
 * the audit log is pep.audit_log when the manifest names one. Touches nothing. */
struct px_instance *px_instance_for_manifest(const struct px_manifest *m, const char *name);
/* Loads the manifest at 'manifest_path' and names its instance 'name' (NULL: the
 * manifest's name) beside it. *ret_m may be NULL when only the instance is wanted. */
int px_instance_from_manifest(const char *manifest_path, const char *name,
                              struct px_manifest **ret_m, struct px_instance **ret,
                              struct px_err **err);

/* Creates the directory and takes the lock without waiting. A lock held elsewhere is the
 * error "instance 'NAME' is already running". On success a previous run's leftovers are
 * removed (state, sockets, logs, the disk copy); *ret_stale tells whether that run had
 * crashed (its state said it was still alive). Firmware state is kept. */
int px_instance_lock(struct px_instance *in, bool *ret_stale, struct px_err **err);
/* Whether some process holds the lock (the instance is starting, running or stopping). */
bool px_instance_locked(const struct px_instance *in);
/* Waits up to timeout_ms for the lock to be free; fails with "still running" otherwise. */
int px_instance_wait_unlocked(const struct px_instance *in, int timeout_ms, struct px_err **err);

/* Writes state.json atomically. */
int px_instance_write_state(const struct px_instance *in, const struct px_instance_state *st,
                            struct px_err **err);
/* Reads state.json; a missing file is ENOENT in (*err)->errnum. */
int px_instance_read_state(const struct px_instance *in, struct px_instance_state *ret,
                           struct px_err **err);
/* The state as JSON text (what state.json holds and `pexi status --json` prints). */
char *px_instance_state_json(const struct px_instance_state *st);
void px_instance_state_clear(struct px_instance_state *st);

/* The last 'lines' lines of a file (at most 64 KiB read), or NULL when it is empty or
 * unreadable. */
char *px_instance_tail(const char *path, int lines);

#endif
