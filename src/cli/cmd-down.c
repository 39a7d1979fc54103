/* pexi down: stop the instance by the ladder and wait until its lock is released. */
#include <getopt.h>

#include "core/common.h"

#include "cli.h"
#include "core/log.h"
#include "vm/instance.h"
#include "vm/supervisor.h"

PX_DEFINE_CLEANUP(struct px_instance *, px_instance_free)

static void progress(const char *line)
{
	px_log_debug("%s", line);
}

int cmd_down(int argc, char **argv, struct px_err **err)
{
	static const struct option longopts[] = {
	        {"file", required_argument, NULL, 'f'},
	        {"name", required_argument, NULL, 'n'},
	        {"force", no_argument, NULL, 'F'},
	        {"timeout", required_argument, NULL, 't'},
	        {NULL, 0, NULL, 0},
	};
	const char *file = "pexi.yml", *name = NULL;
	struct px_down_opts o = {.timeout_ms = 30000, .progress = progress};
	int c;
	while ((c = getopt_long(argc, argv, "+:f:", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			file = optarg;
			break;
		case 'n':
			name = optarg;
			break;
		case 'F':
			o.force = true;
			break;
		case 't': {
			int sec;
			if (cli_parse_seconds("down", optarg, 86400, &sec, err) < 0)
				return -1;
			o.timeout_ms = sec * 1000;
			break;
		}
		default:
			return cli_option_error("down", c, argv, "a value", err);
		}
	}
	if (optind < argc)
		return cli_usage_error("down", err, "unexpected argument '%s'", argv[optind]);

	_cleanup_(px_instance_freep) struct px_instance *in = NULL;
	if (px_instance_from_manifest(file, name, NULL, &in, err) < 0)
		return -1;
	bool was_running;
	if (px_supervisor_down(in, &o, &was_running, err) < 0)
		return -1;
	if (!was_running) {
		px_log_info("instance '%s' is not running", in->name);
		return PX_EXIT_OK;
	}
	struct px_instance_state st = {0};
	struct px_err *e = NULL;
	if (px_instance_read_state(in, &st, &e) == 0 && st.reason)
		px_log_info("instance '%s' stopped: %s", in->name, st.reason);
	else
		px_log_info("instance '%s' stopped", in->name);
	px_err_free(e);
	px_instance_state_clear(&st);
	return PX_EXIT_OK;
}
