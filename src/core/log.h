/* Human-facing messages on stderr: warnings, progress and debug lines. The level comes from
 * -q/-v; colour only on a terminal and never when NO_COLOR is set (no-color.org). */
#ifndef PX_LOG_H
#define PX_LOG_H

#include <stdbool.h>

enum px_log_level {
	PX_LOG_QUIET = 0,   /* errors only */
	PX_LOG_NORMAL = 1,  /* plus warnings and progress */
	PX_LOG_VERBOSE = 2, /* plus debug detail */
};

/* Sets the level and decides on colour from the environment and whether stderr is a tty. */
void px_log_init(enum px_log_level level);
enum px_log_level px_log_level(void);
bool px_log_color(void);

void px_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void px_log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void px_log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "error: MSG" (git's style) regardless of level: used once, by main. */
void px_log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
