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

/* Seconds as a whole number between 1 and a day. */
static int parse_seconds(const char *cmd, const char *s, int *ret_ms, struct px_err **err)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 1 || v > 86400)
		return cli_usage_error(cmd, err,
		                       "'--timeout' wants whole seconds (1 to 86400), "
		                       "not '%s'",
		                       s);
	*ret_ms = (int)v * 1000;
	return 0;
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
		case 't':
			if (parse_seconds("up", optarg, &o.ready_timeout_ms, err) < 0)
				return -1;
			break;
		case ':':
			return cli_usage_error("up", err, "option '%s' needs a value",
			                       argv[optind - 1]);
		default:
			return cli_usage_error("up", err, "unknown option '%s'", argv[optind - 1]);
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
