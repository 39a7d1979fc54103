/* The PEP daemon: listeners (unix, tcp, vsock), one event loop that owns every connection,
 * and a bounded pool of workers that run px_pep_handle. Everything a peer controls is
 * capped (connections, frame size, requests queued per connection, bytes buffered, time a
 * frame may stall), so a stalled or garbage-sending peer costs bounded memory and never
 * blocks another one. Frames with an id are answered as soon as they are done; frames
 * without one are answered in request order.
 *
 * Signals: SIGHUP reloads the policy file (an invalid one keeps the old policy), SIGUSR1
 * sends a poweroff frame to every connection that said hello, SIGTERM/SIGINT stop
 * accepting, drain in-flight requests (bounded), sync the audit log and return. */
#ifndef PX_PEP_SERVER_H
#define PX_PEP_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "pep/sandbox.h"

struct px_err;

struct px_pep_server_config {
	const char *policy_path;   /* YAML with the keys of the manifest's pep: section */
	const char *const *listen; /* "unix:/path", "tcp:[HOST:]PORT", "vsock:PORT" */
	size_t n_listen;
	const char *audit_path;
	const char *instance;   /* written into audit lines; may be NULL */
	const char *ca_file;    /* NULL: system CAs */
	const char *hosts_file; /* NULL: real DNS */
	int ready_fd;           /* -1: none; else "hello INSTANCE\n" is written per hello */
	unsigned workers;       /* concurrent requests; 0: default */
	unsigned max_connections;
	unsigned max_queue;        /* requests pending per connection */
	unsigned stall_timeout_ms; /* a frame half-received, or output unread, this long */
	unsigned idle_timeout_ms;  /* a connection with nothing pending (not hello'd) */
	unsigned drain_timeout_ms; /* SIGTERM: how long in-flight requests may finish */
	enum px_sandbox_mode sandbox;
};

#define PX_PEP_DEFAULT_WORKERS         32
#define PX_PEP_DEFAULT_MAX_CONNECTIONS 1024
#define PX_PEP_DEFAULT_MAX_QUEUE       32
#define PX_PEP_DEFAULT_STALL_MS        10000
#define PX_PEP_DEFAULT_IDLE_MS         300000
#define PX_PEP_DEFAULT_DRAIN_MS        10000

/* Runs the daemon until SIGTERM or SIGINT. Fails before serving when the policy, the audit
 * log, a listener or a required sandbox cannot be set up. Logs to stderr. */
int px_pep_server_run(const struct px_pep_server_config *cfg, struct px_err **err);

#endif
