/* The pexi command line: a dispatch table of subcommands, one file each. A subcommand gets
 * its own argv (argv[0] is its name) and returns an exit code; on failure it hands the
 * error up through 'err' and main prints it once. */
#ifndef PX_CLI_H
#define PX_CLI_H

#include <stdio.h>

struct px_err;

struct px_command {
	const char *name;
	int (*run)(int argc, char **argv, struct px_err **err);
	const char *summary;
	const char *usage; /* printed by `pexi CMD --help` and on usage errors */
};

/* The table, in the order `pexi help` lists it; ends with a NULL name. */
extern const struct px_command px_commands[];

int cmd_build(int argc, char **argv, struct px_err **err);
int cmd_up(int argc, char **argv, struct px_err **err);
int cmd_down(int argc, char **argv, struct px_err **err);
int cmd_status(int argc, char **argv, struct px_err **err);
int cmd_logs(int argc, char **argv, struct px_err **err);
int cmd_pep(int argc, char **argv, struct px_err **err);
int cmd_browse(int argc, char **argv, struct px_err **err);
int cmd_validate(int argc, char **argv, struct px_err **err);
int cmd_help(int argc, char **argv, struct px_err **err);

/* Prints the overview of all commands and exit codes. */
void cli_print_help(FILE *out);
/* Prints a command's usage to stdout (for --help). */
void cli_print_usage(const struct px_command *cmd);
const struct px_command *cli_find_command(const char *name);
/* Builds a usage error for 'cmd' ("usage: ..." follows the message). Returns -1. */
int cli_usage_error(const char *cmd, struct px_err **err, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* The usage error for getopt_long's ':' (an option given without its value, which is
 * 'what', e.g. "a file name") and for an unknown option. Returns -1. */
int cli_option_error(const char *cmd, int c, char **argv, const char *what, struct px_err **err);
/* Parses the --timeout value 'arg': whole seconds from 1 to max. */
int cli_parse_seconds(const char *cmd, const char *arg, int max, int *ret, struct px_err **err);
/* True when argv holds -h or --help before any "--". */
int cli_wants_help(int argc, char **argv);

#endif
