#include "core/common.h"

#include "cli.h"

int cmd_help(int argc, char **argv, struct px_err **err)
{
	if (argc < 2) {
		cli_print_help(stdout);
		return PX_EXIT_OK;
	}
	const struct px_command *c = cli_find_command(argv[1]);
	if (!c)
		return cli_usage_error("help", err, "'%s' is not a pexi command", argv[1]);
	cli_print_usage(c);
	return PX_EXIT_OK;
}
