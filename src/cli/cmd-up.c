/* pexi up: start the instance (supervisor, PEP, hypervisor) and wait for the guest. */
#include <getopt.h>

#include "core/common.h"

#include "cli.h"
#include "core/log.h"
#include "manifest/manifest.h"
#include "vm/instance.h"
#include "vm/supervisor.h"

PX_DEFINE_CLEANUP(struct px_manifest *, px_manifest_free)

static void notice(const char *msg)
{
	px_log_warn("%s", msg);
}

int cmd_up(int argc, char **argv, struct px_err **err)
{
	static const struct option longopts[] = {
	        {"file", required_argument, NULL, 'f'},
	        {"name", required_argument, NULL, 'n'},
	        {"timeout", required_argument, NULL, 't'},
	        {NULL, 0, NULL, 0},
	};
	const char *file = "pexi.yml";
	struct px_up_opts o = {.notice = notice, .ready_timeout_ms = 300000};
	int c;
	while ((c = getopt_long(argc, argv, "+:f:", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			file = optarg;
			break;
		case 'n':
			o.name = optarg;
			break;
		case 't': {
			int sec;
			if (cli_parse_seconds("up", optarg, 86400, &sec, err) < 0)
				return -1;
			o.ready_timeout_ms = sec * 1000;
			break;
		}
		default:
			return cli_option_error("up", c, argv, "a value", err);
		}
	}
	if (optind < argc)
		return cli_usage_error("up", err, "unexpected argument '%s'", argv[optind]);

	_cleanup_(px_manifest_freep) struct px_manifest *m = NULL;
	if (px_manifest_load(file, &m, err) < 0)
		return -1;
	struct px_instance_state st = {0};
	if (px_supervisor_up(m, &o, &st, err) < 0)
		return -1;
	if (px_log_level() > PX_LOG_QUIET)
		printf("instance '%s' is up: %s after %.2f s (backend %s, accel %s, channel %s)\n",
		       st.name,
		       px_streq(st.ready_by, "hello") ? "the guest said hello"
		                                      : "the console showed it ready",
		       (double)(st.ready_ms - st.started_ms) / 1000, st.backend, st.accel,
		       st.channel);
	px_instance_state_clear(&st);
	return PX_EXIT_OK;
}
