#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common.h"

static enum px_log_level current = PX_LOG_NORMAL;
static bool use_color;

void px_log_init(enum px_log_level level)
{
	const char *no_color = getenv("NO_COLOR");
	current = level;
	use_color = isatty(STDERR_FILENO) && !(no_color && no_color[0]) &&
	            !px_streq(getenv("TERM"), "dumb");
}

enum px_log_level px_log_level(void)
{
	return current;
}

bool px_log_color(void)
{
	return use_color;
}

__attribute__((format(printf, 3, 0))) static void emit(const char *prefix, const char *color,
                                                       const char *fmt, va_list ap)
{
	if (use_color && color)
		fprintf(stderr, "%s%s\033[0m", color, prefix);
	else
		fputs(prefix, stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void px_log_info(const char *fmt, ...)
{
	if (current < PX_LOG_NORMAL)
		return;
	va_list ap;
	va_start(ap, fmt);
	emit("", NULL, fmt, ap);
	va_end(ap);
}

void px_log_warn(const char *fmt, ...)
{
	if (current < PX_LOG_NORMAL)
		return;
	va_list ap;
	va_start(ap, fmt);
	emit("warning: ", "\033[33m", fmt, ap);
	va_end(ap);
}

void px_log_debug(const char *fmt, ...)
{
	if (current < PX_LOG_VERBOSE)
		return;
	va_list ap;
	va_start(ap, fmt);
	emit("debug: ", "\033[2m", fmt, ap);
	va_end(ap);
}

void px_log_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	emit("error: ", "\033[31m", fmt, ap);
	va_end(ap);
}
