#include "core/common.h"

#include "cli.h"

/* Not built yet: says so plainly and fails, so no script mistakes it for success. */
int cmd_validate(int argc, char **argv, struct px_err **err)
{
	(void)argc;
	(void)argv;
	return px_err_set(err, PX_EXIT_NOT_IMPLEMENTED, "'pexi validate' is not implemented yet");
}
