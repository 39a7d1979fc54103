/* The error type. A fallible function returns 0 or a negative value and takes
 * 'struct px_err **err' last; it builds the error where the failure happens and callers add
 * context on the way up. Library code never prints: main prints the message once. */
#ifndef PX_ERR_H
#define PX_ERR_H

/* Documented exit codes of the pexi program (README "Exit codes"). Each error carries the
 * one its kind calls for, so main needs no knowledge of where it came from. */
enum px_exit {
	PX_EXIT_OK = 0,
	PX_EXIT_FAILURE = 1,         /* an operation failed (I/O, a tool, a library) */
	PX_EXIT_USAGE = 2,           /* wrong command line */
	PX_EXIT_MANIFEST = 3,        /* the manifest is invalid */
	PX_EXIT_INPUT = 4,           /* bad input data: digest mismatch, corrupt image, refused */
	PX_EXIT_NOT_IMPLEMENTED = 5, /* a subcommand or option not built yet */
};

struct px_err {
	enum px_exit exit_code;
	int errnum; /* the errno behind it, or 0 */
	char *msg;
};

/* Sets *err (when err is not NULL) to a new error of kind 'code'; returns -1. */
int px_err_set(struct px_err **err, enum px_exit code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* Like px_err_set with PX_EXIT_FAILURE, appending ": strerror(errnum)". Returns -errnum. */
int px_err_errno(struct px_err **err, int errnum, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* Prefixes the message of an existing error with context ("context: message"). Returns -1;
 * when *err is NULL (a callee that did not set one) it makes a generic failure. */
int px_err_wrap(struct px_err **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void px_err_free(struct px_err *e);
/* Frees *err and sets it to NULL: for callers that handle a failure themselves. */
void px_err_clear(struct px_err **err);

static inline void px_err_freep(struct px_err **e)
{
	px_err_free(*e);
}
#define _cleanup_err_ __attribute__((cleanup(px_err_freep)))

#endif
