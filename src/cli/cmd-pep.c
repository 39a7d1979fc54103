/* pexi pep: the policy proxy as a daemon, and `pexi pep verify-audit FILE`. */
#include <getopt.h>

#include "core/common.h"

#include "cli.h"
#include "core/log.h"
#include "manifest/manifest.h"
#include "pep/audit.h"
#include "pep/server.h"

PX_DEFINE_CLEANUP(struct px_manifest *, px_manifest_free)

static int verify_audit(int argc, char **argv, struct px_err **err)
{
	if (argc != 2)
		return cli_usage_error("pep", err, "'pexi pep verify-audit' takes one file");
	uint64_t lines = 0, bad = 0;
	if (px_audit_verify(argv[1], &lines, &bad, err) < 0)
		return -1;
	printf("audit log '%s': %" PRIu64 " record%s, chain intact\n", argv[1], lines,
	       lines == 1 ? "" : "s");
	return 0;
}

static int parse_uint(const char *opt, const char *s, unsigned max, unsigned *ret,
                      struct px_err **err)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (!*s || *end || errno || v > max || s[0] == '-')
		return cli_usage_error("pep", err, "option '%s' needs a number up to %u, not '%s'",
		                       opt, max, s);
	*ret = (unsigned)v;
	return 0;
}

enum {
	OPT_POLICY = 256,
	OPT_LISTEN,
	OPT_AUDIT,
	OPT_READY_FD,
	OPT_CA_FILE,
	OPT_HOSTS_FILE,
	OPT_INSTANCE,
	OPT_WORKERS,
	OPT_MAX_CONN,
	OPT_MAX_QUEUE,
	OPT_STALL,
	OPT_IDLE,
	OPT_DRAIN,
	OPT_SANDBOX,
};

int cmd_pep(int argc, char **argv, struct px_err **err)
{
	if (argc >= 2 && strcmp(argv[1], "verify-audit") == 0)
		return verify_audit(argc - 1, argv + 1, err);

	static const struct option opts[] = {
	        {"policy", required_argument, NULL, OPT_POLICY},
	        {"listen", required_argument, NULL, OPT_LISTEN},
	        {"audit", required_argument, NULL, OPT_AUDIT},
	        {"ready-fd", required_argument, NULL, OPT_READY_FD},
	        {"ca-file", required_argument, NULL, OPT_CA_FILE},
	        {"hosts-file", required_argument, NULL, OPT_HOSTS_FILE},
	        {"instance", required_argument, NULL, OPT_INSTANCE},
	        {"workers", required_argument, NULL, OPT_WORKERS},
	        {"max-connections", required_argument, NULL, OPT_MAX_CONN},
	        {"max-queue", required_argument, NULL, OPT_MAX_QUEUE},
	        {"stall-timeout", required_argument, NULL, OPT_STALL},
	        {"idle-timeout", required_argument, NULL, OPT_IDLE},
	        {"drain-timeout", required_argument, NULL, OPT_DRAIN},
	        {"sandbox", required_argument, NULL, OPT_SANDBOX},
	        {NULL, 0, NULL, 0},
	};
	struct px_pep_server_config cfg = {.ready_fd = -1,
	                                   .idle_timeout_ms = PX_PEP_DEFAULT_IDLE_MS};
	_cleanup_free_ const char **listen = xcalloc((size_t)argc, sizeof(*listen));
	const char *audit = NULL;
	unsigned v = 0;
	int c;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case OPT_POLICY:
			cfg.policy_path = optarg;
			break;
		case OPT_LISTEN:
			listen[cfg.n_listen++] = optarg;
			break;
		case OPT_AUDIT:
			audit = optarg;
			break;
		case OPT_READY_FD:
			if (parse_uint("--ready-fd", optarg, INT32_MAX, &v, err) < 0)
				return -1;
			if (fcntl((int)v, F_GETFD) < 0)
				return cli_usage_error(
				        "pep", err, "--ready-fd %u is not an open descriptor", v);
			/* A supervisor that stops reading must not stall the event loop. */
			fcntl((int)v, F_SETFL, fcntl((int)v, F_GETFL) | O_NONBLOCK);
			fcntl((int)v, F_SETFD, FD_CLOEXEC);
			cfg.ready_fd = (int)v;
			break;
		case OPT_CA_FILE:
			cfg.ca_file = optarg;
			break;
		case OPT_HOSTS_FILE:
			cfg.hosts_file = optarg;
			break;
		case OPT_INSTANCE:
			cfg.instance = optarg;
			break;
		case OPT_WORKERS:
			if (parse_uint("--workers", optarg, 1024, &cfg.workers, err) < 0)
				return -1;
			break;
		case OPT_MAX_CONN:
			if (parse_uint("--max-connections", optarg, 1000000, &cfg.max_connections,
			               err) < 0)
				return -1;
			break;
		case OPT_MAX_QUEUE:
			if (parse_uint("--max-queue", optarg, 4096, &cfg.max_queue, err) < 0)
				return -1;
			break;
		case OPT_STALL:
			if (parse_uint("--stall-timeout", optarg, 86400000, &cfg.stall_timeout_ms,
			               err) < 0)
				return -1;
			break;
		case OPT_IDLE:
			if (parse_uint("--idle-timeout", optarg, 86400000, &cfg.idle_timeout_ms,
			               err) < 0)
				return -1;
			break;
		case OPT_DRAIN:
			if (parse_uint("--drain-timeout", optarg, 86400000, &cfg.drain_timeout_ms,
			               err) < 0)
				return -1;
			break;
		case OPT_SANDBOX:
			if (px_sandbox_mode_parse(optarg, &cfg.sandbox, err) < 0)
				return -1;
			break;
		default:
			return cli_usage_error("pep", err, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cli_usage_error("pep", err, "unexpected argument '%s'", argv[optind]);
	if (!cfg.policy_path)
		return cli_usage_error("pep", err, "--policy is required");
	if (cfg.n_listen == 0)
		return cli_usage_error("pep", err, "at least one --listen address is required");

	/* Where the audit log goes: --audit, else PEP_AUDIT_LOG (the seeds' variable), else
	 * the policy's audit_log. */
	_cleanup_(px_manifest_freep) struct px_manifest *m = NULL;
	if (px_manifest_load_pep(cfg.policy_path, &m, err) < 0)
		return -1;
	const char *env_audit = getenv("PEP_AUDIT_LOG");
	if (!audit && env_audit && env_audit[0])
		audit = env_audit;
	if (!audit)
		audit = m->pep.audit_log;
	if (!audit)
		return cli_usage_error(
		        "pep", err,
		        "no audit log: pass --audit FILE, set PEP_AUDIT_LOG or audit_log "
		        "in the policy");
	cfg.audit_path = audit;
	cfg.listen = listen;
	return px_pep_server_run(&cfg, err) < 0 ? -1 : 0;
}
