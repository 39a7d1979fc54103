#include "common.h"

#include <stdarg.h>

static void replace(struct px_err **err, enum px_exit code, int errnum, char *msg)
{
	if (!err) {
		free(msg);
		return;
	}
	px_err_free(*err);
	struct px_err *e = xmalloc(sizeof(*e));
	e->exit_code = code;
	e->errnum = errnum;
	e->msg = msg;
	*err = e;
}

int px_err_set(struct px_err **err, enum px_exit code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	replace(err, code, 0, msg);
	return -1;
}

int px_err_errno(struct px_err **err, int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	_cleanup_free_ char *head = xvasprintf(fmt, ap);
	va_end(ap);
	enum px_exit code = PX_EXIT_FAILURE;
	replace(err, code, errnum, xasprintf("%s: %s", head, strerror(errnum)));
	return errnum > 0 ? -errnum : -1;
}

int px_err_wrap(struct px_err **err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *context = xvasprintf(fmt, ap);
	va_end(ap);
	if (!err) {
		free(context);
		return -1;
	}
	if (!*err) {
		replace(err, PX_EXIT_FAILURE, 0, context);
		return -1;
	}
	char *msg = xasprintf("%s: %s", context, (*err)->msg);
	free(context);
	free((*err)->msg);
	(*err)->msg = msg;
	return -1;
}

void px_err_free(struct px_err *e)
{
	if (!e)
		return;
	free(e->msg);
	free(e);
}

void px_err_clear(struct px_err **err)
{
	if (!err)
		return;
	px_err_free(*err);
	*err = NULL;
}
