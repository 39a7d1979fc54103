/* The subcommand table: adding a command is one line here and one file beside it. */
#include "core/common.h"

#include "cli.h"

const struct px_command px_commands[] = {
        {"build", cmd_build, "run the image pipeline: disk.raw, seed.iso, pexi.lock, build.json",
         "pexi build [-f FILE] [--plan] [--json] [--offline]"},
        {"up", cmd_up, "start the sandbox VM with its policy proxy", "pexi up [-f FILE]"},
        {"down", cmd_down, "stop the sandbox VM", "pexi down [-f FILE] [--force]"},
        {"status", cmd_status, "show an instance's state", "pexi status [-f FILE] [--json]"},
        {"logs", cmd_logs, "show an instance's console, proxy or audit log",
         "pexi logs [console|pep|audit] [-f]"},
        {"pep", cmd_pep, "run the policy proxy alone", "pexi pep --policy FILE --listen ADDR"},
        {"validate", cmd_validate, "check a manifest", "pexi validate [-f FILE | FILE] [--json]"},
        {"help", cmd_help, "show help for pexi or a command", "pexi help [COMMAND]"},
        {NULL, NULL, NULL, NULL},
};
