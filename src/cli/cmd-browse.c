/* pexi browse: open a URL in the instance's sandboxed browser and show what it got. The
 * browser (headless Firefox driven by pexi-agent in the guest) fetches everything through
 * the instance's policy proxy, so this is the way to look at a page from inside the
 * sandbox. */
#include <getopt.h>

#include "core/common.h"

#include "browse/agent.h"
#include "cli.h"
#include "core/file.h"
#include "core/log.h"
#include "vm/instance.h"

PX_DEFINE_CLEANUP(struct px_instance *, px_instance_free)
PX_DEFINE_CLEANUP(struct px_agent *, px_agent_close)

int cmd_browse(int argc, char **argv, struct px_err **err)
{
	static const struct option longopts[] = {
	        {"file", required_argument, NULL, 'f'},
	        {"name", required_argument, NULL, 'n'},
	        {"socket", required_argument, NULL, 'S'},
	        {"screenshot", required_argument, NULL, 's'},
	        {"text", no_argument, NULL, 'T'},
	        {"timeout", required_argument, NULL, 't'},
	        {NULL, 0, NULL, 0},
	};
	const char *file = "pexi.yml", *name = NULL, *socket_path = NULL, *shot = NULL;
	bool text = false;
	int timeout_s = 60;
	int c;
	while ((c = getopt_long(argc, argv, "+:f:", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			file = optarg;
			break;
		case 'n':
			name = optarg;
			break;
		case 'S':
			socket_path = optarg;
			break;
		case 's':
			shot = optarg;
			break;
		case 'T':
			text = true;
			break;
		case 't':
			if (cli_parse_seconds("browse", optarg, 3600, &timeout_s, err) < 0)
				return -1;
			break;
		default:
			return cli_option_error("browse", c, argv, "a value", err);
		}
	}
	if (optind != argc - 1)
		return cli_usage_error("browse", err,
		                       optind < argc ? "one URL, please"
		                                     : "which URL? (pexi browse URL)");
	const char *url = argv[optind];

	/* The instance's browser channel unless a socket is named (an agent run by hand, the
	 * host tests). */
	_cleanup_(px_instance_freep) struct px_instance *in = NULL;
	if (!socket_path) {
		if (px_instance_from_manifest(file, name, NULL, &in, err) < 0)
			return -1;
		if (!px_instance_locked(in))
			return px_err_set(err, PX_EXIT_FAILURE,
			                  "instance '%s' is not running (start it with 'pexi up')",
			                  in->name);
		socket_path = in->browser_sock;
	}

	_cleanup_(px_agent_closep) struct px_agent *agent = NULL;
	_cleanup_free_ char *final_url = NULL, *page_text = NULL;
	if (px_agent_connect(socket_path, timeout_s * 1000, &agent, err) < 0 ||
	    px_agent_navigate(agent, url, &final_url, err) < 0)
		return -1;
	px_log_info("loaded %s", final_url);
	if (text) {
		if (px_agent_text(agent, &page_text, err) < 0)
			return -1;
		fputs(page_text, stdout);
		if (*page_text && page_text[strlen(page_text) - 1] != '\n')
			fputc('\n', stdout);
	}
	if (shot) {
		_cleanup_free_ unsigned char *png = NULL;
		size_t len = 0;
		if (px_agent_screenshot(agent, &png, &len, err) < 0 ||
		    px_atomic_write_file(shot, png, len, 0644, err) < 0)
			return -1;
		px_log_info("screenshot written to '%s' (%zu bytes)", shot, len);
	}
	return PX_EXIT_OK;
}
