#include "core/common.h"

#include "tap.h"

static int fail_open(const char *path, struct px_err **err)
{
	if (open(path, O_RDONLY | O_CLOEXEC) < 0)
		return px_err_errno(err, errno, "cannot open '%s'", path);
	return 0;
}

int main(void)
{
	struct px_err *err = NULL;

	is_int(px_err_set(&err, PX_EXIT_INPUT, "bad %s at %d", "cookie", 512), -1,
	       "px_err_set returns -1");
	is_str(err->msg, "bad cookie at 512", "message is formatted");
	is_int(err->exit_code, PX_EXIT_INPUT, "exit code kept");

	px_err_wrap(&err, "reading '%s'", "disk.vhd");
	is_str(err->msg, "reading 'disk.vhd': bad cookie at 512", "wrap adds context in front");
	is_int(err->exit_code, PX_EXIT_INPUT, "wrap keeps the exit code");
	px_err_clear(&err);
	ok(err == NULL, "clear resets the pointer");

	ok(fail_open("/nonexistent/x", &err) < 0, "errno helper fails");
	is_str(err->msg, "cannot open '/nonexistent/x': No such file or directory",
	       "errno message carries strerror");
	is_int(err->errnum, ENOENT, "errnum kept");
	is_int(err->exit_code, PX_EXIT_FAILURE, "errno errors are failures");
	px_err_clear(&err);

	px_err_wrap(&err, "stage '%s'", "grow");
	is_str(err->msg, "stage 'grow'", "wrap without an inner error makes one");
	px_err_clear(&err);

	is_int(px_err_set(NULL, PX_EXIT_FAILURE, "ignored"), -1, "a NULL err pointer is allowed");
	px_err_free(NULL);
	ok(1, "px_err_free(NULL) is a no-op");
	return done_testing();
}
