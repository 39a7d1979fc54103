/* pexi's entry point: global options, dispatch, and the one place errors are printed. */
#include <getopt.h>
#include <stdarg.h>

#include "core/common.h"

#include "cli.h"
#include "core/log.h"

void cli_print_help(FILE *out)
{
	fprintf(out, "usage: pexi [-q | -v] [--version] [--help] <command> [<args>]\n\n"
	             "Build and run sealed sandbox VMs from one manifest (pexi.yml).\n\n"
	             "commands:\n");
	for (const struct px_command *c = px_commands; c->name; c++)
		fprintf(out, "   %-10s %s\n", c->name, c->summary);
	fprintf(out,
	        "\nexit codes: 0 ok, 1 failure, 2 usage, 3 invalid manifest, 4 bad input data,\n"
	        "            5 not implemented yet\n"
	        "See 'pexi help <command>' for one command.\n");
}

const struct px_command *cli_find_command(const char *name)
{
	for (const struct px_command *c = px_commands; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

void cli_print_usage(const struct px_command *cmd)
{
	printf("usage: %s\n\n%s\n", cmd->usage, cmd->summary);
}

int cli_usage_error(const char *cmd, struct px_err **err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	_cleanup_free_ char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	const struct px_command *c = cli_find_command(cmd);
	return px_err_set(err, PX_EXIT_USAGE, "%s\nusage: %s", msg, c ? c->usage : "pexi help");
}

int cli_option_error(const char *cmd, int c, char **argv, const char *what, struct px_err **err)
{
	if (c == ':')
		return cli_usage_error(cmd, err, "option '%s' needs %s", argv[optind - 1], what);
	return cli_usage_error(cmd, err, "unknown option '%s'", argv[optind - 1]);
}

int cli_parse_seconds(const char *cmd, const char *arg, int max, int *ret, struct px_err **err)
{
	char *end;
	errno = 0;
	long v = strtol(arg, &end, 10);
	if (errno || end == arg || *end || v < 1 || v > max)
		return cli_usage_error(
		        cmd, err, "'--timeout' wants whole seconds (1 to %d), not '%s'", max, arg);
	*ret = (int)v;
	return 0;
}

int cli_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return 0;
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	enum px_log_level level = PX_LOG_NORMAL;
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
			level = PX_LOG_QUIET;
		} else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
			level = PX_LOG_VERBOSE;
		} else if (strcmp(a, "--version") == 0) {
			printf("pexi %s\n", PX_VERSION);
			return PX_EXIT_OK;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			cli_print_help(stdout);
			return PX_EXIT_OK;
		} else {
			px_log_init(level);
			px_log_error("unknown option '%s'", a);
			cli_print_help(stderr);
			return PX_EXIT_USAGE;
		}
	}
	px_log_init(level);
	if (i >= argc) {
		cli_print_help(stderr);
		return PX_EXIT_USAGE;
	}

	const struct px_command *cmd = cli_find_command(argv[i]);
	if (!cmd) {
		px_log_error("'%s' is not a pexi command; see 'pexi help'", argv[i]);
		return PX_EXIT_USAGE;
	}
	if (cli_wants_help(argc - i, argv + i)) {
		cli_print_usage(cmd);
		return PX_EXIT_OK;
	}

	struct px_err *err = NULL;
	optind = 1;
	int rc = cmd->run(argc - i, argv + i, &err);
	if (rc < 0 || err) {
		px_log_error("%s", err ? err->msg : "unknown failure");
		rc = err ? (int)err->exit_code : PX_EXIT_FAILURE;
		px_err_free(err);
	}
	if (fflush(stdout) != 0) {
		px_log_error("cannot write to standard output: %s", strerror(errno));
		return PX_EXIT_FAILURE;
	}
	return rc;
}
