/* pexi logs: print one of the instance's logs; -f follows it while the instance runs. */
#include <getopt.h>
#include <poll.h>

#include "core/common.h"

#include "cli.h"
#include "core/file.h"
#include "vm/instance.h"

PX_DEFINE_CLEANUP(struct px_instance *, px_instance_free)

/* Copies fd from its current offset to stdout until the end; returns false on a write
 * error (a closed pipe: the reader is gone). */
static bool drain(int fd)
{
	char buf[65536];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return true;
		if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
			return false;
	}
}

int cmd_logs(int argc, char **argv, struct px_err **err)
{
	static const struct option longopts[] = {
	        {"file", required_argument, NULL, 'm'},
	        {"name", required_argument, NULL, 'n'},
	        {"follow", no_argument, NULL, 'f'},
	        {NULL, 0, NULL, 0},
	};
	const char *file = "pexi.yml", *name = NULL;
	bool follow = false;
	int c;
	while ((c = getopt_long(argc, argv, "+:f", longopts, NULL)) != -1) {
		switch (c) {
		case 'm':
			file = optarg;
			break;
		case 'n':
			name = optarg;
			break;
		case 'f':
			follow = true;
			break;
		default:
			return cli_option_error("logs", c, argv, "a value", err);
		}
	}
	const char *which = "console";
	if (optind < argc)
		which = argv[optind++];
	/* Options may follow the log's name too: pexi logs console -f. */
	while (optind < argc) {
		if (strcmp(argv[optind], "-f") == 0 || strcmp(argv[optind], "--follow") == 0)
			follow = true;
		else
			return cli_usage_error("logs", err, "unexpected argument '%s'",
			                       argv[optind]);
		optind++;
	}

	_cleanup_(px_instance_freep) struct px_instance *in = NULL;
	if (px_instance_from_manifest(file, name, NULL, &in, err) < 0)
		return -1;
	const char *path = NULL;
	if (strcmp(which, "console") == 0)
		path = in->console_log;
	else if (strcmp(which, "pep") == 0)
		path = in->pep_log;
	else if (strcmp(which, "audit") == 0)
		path = in->audit_log;
	else if (strcmp(which, "supervisor") == 0)
		path = in->supervisor_log;
	else
		return cli_usage_error("logs", err,
		                       "no log named '%s' (console, pep, audit or supervisor)",
		                       which);

	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return px_err_set(err, PX_EXIT_FAILURE,
			                  "instance '%s' has no %s log yet (it never started)",
			                  in->name, which);
		return px_err_errno(err, errno, "cannot open '%s'", path);
	}
	if (!drain(fd))
		return PX_EXIT_OK;
	/* Following ends when the instance has stopped (its lock is free) and the last
	 * bytes are out. */
	while (follow && px_instance_locked(in)) {
		fflush(stdout);
		poll(NULL, 0, 200);
		if (!drain(fd))
			return PX_EXIT_OK;
	}
	if (follow && !drain(fd))
		return PX_EXIT_OK;
	return PX_EXIT_OK;
}
