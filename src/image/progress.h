/* Download progress on stderr: on a terminal a one-line bar redrawn at most ten times a
 * second; otherwise (a log file, CI) a plain line at every tenth of the way, or every ten
 * seconds when the size is unknown. Nothing at all in quiet mode. */
#ifndef PX_PROGRESS_H
#define PX_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct px_progress {
	char *label;
	bool enabled;
	bool tty;
	bool drawn;     /* a bar is on screen and needs a newline at the end */
	double start;   /* monotonic seconds when the transfer began */
	double last;    /* when the last bar or line was printed */
	uint64_t base;  /* bytes already there when the transfer began (resume) */
	int last_tenth; /* last tenth of the way reported in plain mode */
};

/* Starts reporting for 'label' (usually the URL); 'enabled' is the caller's wish, further
 * limited by the log level. */
void px_progress_start(struct px_progress *p, const char *label, bool enabled, uint64_t base);
/* Reports 'done' bytes of 'total' (0 when unknown). */
void px_progress_update(struct px_progress *p, uint64_t done, uint64_t total);
/* Prints the final state (when ok) and releases the label. */
void px_progress_finish(struct px_progress *p, uint64_t done, bool ok);

/* "12.3 MiB"-style sizes for messages, into a buffer of at least 16 bytes. */
void px_progress_size(uint64_t bytes, char *out, size_t len);

#endif
