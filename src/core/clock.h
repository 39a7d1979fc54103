/* Clocks: wall time for what is recorded (state.json, audit lines), the monotonic clock
 * for every deadline and duration, so a clock step never fires or stalls a timeout. */
#ifndef PX_CLOCK_H
#define PX_CLOCK_H

#include <stdint.h>

/* Milliseconds since the epoch. */
int64_t px_now_ms(void);
/* Milliseconds on the monotonic clock. */
int64_t px_mono_ms(void);
/* Seconds on the monotonic clock, with the fraction: for measured durations. */
double px_mono_seconds(void);

#endif
