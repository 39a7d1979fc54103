/* The supervisor: one daemon per running instance, the parent of its PEP and hypervisor.
 *
 * `pexi up` takes the instance lock, copies the built disk, writes the PEP's policy, lets
 * the backend build the hypervisor's argv, then forks twice (setsid in between) into the
 * supervisor, which inherits the lock and holds it for its whole life. The supervisor
 * starts the PEP (`pexi pep ... --ready-fd 3`, the same binary) and, once the PEP's socket
 * accepts connections, the hypervisor; both get a parent-death signal, so nothing of the
 * instance outlives a killed supervisor. It reports to the waiting `pexi up` over a pipe:
 * ready when the PEP relays the guest's hello (or, as a fallback, when the console shows
 * the line "@@pexi ready" that the guest's boot scripts print), or a failure with the
 * reason and the console's last lines, after tearing everything down.
 *
 * Stopping (pexi down, over control.sock, or SIGTERM to the supervisor) climbs a ladder:
 * the guest powers itself off when asked over the channel (SIGUSR1 to the PEP, which sends
 * {"type":"poweroff"}), else the backend's power button (QMP system_powerdown, or
 * requestStop for AVF), else SIGTERM and SIGKILL; then the PEP gets SIGTERM and flushes its
 * audit log. The supervisor reaps both children and exits, which releases the lock.
 *
 * Processes are only ever known by the pids the supervisor forked: nothing is found by
 * name. PEXI_PEP_PROGRAM, when set, replaces the pexi binary in the PEP's command line (a
 * test seam for a stand-in PEP). */
#ifndef PX_SUPERVISOR_H
#define PX_SUPERVISOR_H

#include <stdbool.h>

struct px_err;
struct px_manifest;
struct px_instance;
struct px_instance_state;

/* The console line a guest may print when it cannot say hello over the channel. */
#define PX_CONSOLE_MARKER "@@pexi ready"

struct px_up_opts {
	const char *name;     /* instance name; NULL: the manifest's name */
	int ready_timeout_ms; /* how long the guest has to say hello */
	/* Called with what the user should know while waiting (KVM unusable, a crashed run
	 * cleaned up); may be NULL. */
	void (*notice)(const char *msg);
};

/* Starts an instance of the manifest's build and returns once its guest is ready, with
 * the recorded state in *ret (clear it with px_instance_state_clear). On failure
 * everything started is stopped and the error holds the reason and the console tail. */
int px_supervisor_up(const struct px_manifest *m, const struct px_up_opts *o,
                     struct px_instance_state *ret, struct px_err **err);

struct px_down_opts {
	bool force;     /* skip the gentle rungs: kill the hypervisor at once */
	int timeout_ms; /* for the gentle rungs; the wait for the lock adds a margin */
	/* Called with each rung as the supervisor reports it; may be NULL. */
	void (*progress)(const char *line);
};

/* Stops a running instance and waits until its lock is released. *ret_was_running tells
 * whether there was anything to stop. */
int px_supervisor_down(const struct px_instance *in, const struct px_down_opts *o,
                       bool *ret_was_running, struct px_err **err);

#endif
