/* The subcommand table: adding a command is one line here and one file beside it. */
#include "core/common.h"

#include "cli.h"

const struct px_command px_commands[] = {
        {"build", cmd_build, "run the image pipeline: disk.raw, seed.iso, pexi.lock, build.json",
         "pexi build [-f FILE] [--plan] [--json] [--offline] [--frozen]"},
        {"up", cmd_up, "start the sandbox VM with its policy proxy",
         "pexi up [-f FILE] [--name NAME] [--timeout SECONDS]"},
        {"down", cmd_down, "stop the sandbox VM",
         "pexi down [-f FILE] [--name NAME] [--force] [--timeout SECONDS]"},
        {"status", cmd_status, "show an instance's state",
         "pexi status [-f FILE] [--name NAME] [--json]"},
        {"logs", cmd_logs, "show an instance's console, proxy or audit log",
         "pexi logs [console|pep|audit|supervisor] [-f] [--file FILE] [--name NAME]"},
        {"pep", cmd_pep, "run the policy proxy alone, or verify its audit log",
         "pexi pep --policy FILE --listen ADDR... [--audit FILE] [--ready-fd N] [--ca-file F]\n"
         "         [--hosts-file F] [--instance NAME] [--workers N] [--max-connections N]\n"
         "         [--max-queue N] [--stall-timeout MS] [--idle-timeout MS]\n"
         "         [--drain-timeout MS] [--sandbox auto|required|off]\n"
         "       pexi pep verify-audit FILE\n"
         "ADDR: unix:/path, tcp:[IP:]PORT (127.0.0.1 unless an IP is given), vsock:PORT"},
        {"browse", cmd_browse, "open a URL in the sandboxed browser: its text or a screenshot",
         "pexi browse [-f FILE] [--name NAME | --socket PATH] [--text] [--screenshot FILE]\n"
         "            [--timeout SECONDS] URL"},
        {"validate", cmd_validate, "check a manifest", "pexi validate [-f FILE | FILE] [--json]"},
        {"help", cmd_help, "show help for pexi or a command", "pexi help [COMMAND]"},
        {NULL, NULL, NULL, NULL},
};
