#include <time.h>

#include "core/common.h"

#include "core/clock.h"
#include "core/log.h"
#include "image/progress.h"

void px_progress_size(uint64_t bytes, char *out, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)bytes;
	size_t u = 0;
	while (v >= 1024 && u + 1 < PX_ARRAY_SIZE(units)) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, len, "%" PRIu64 " B", bytes);
	else
		snprintf(out, len, "%.1f %s", v, units[u]);
}

void px_progress_start(struct px_progress *p, const char *label, bool enabled, uint64_t base)
{
	p->label = xstrdup(label);
	p->enabled = enabled && px_log_level() >= PX_LOG_NORMAL;
	p->tty = isatty(STDERR_FILENO);
	p->drawn = false;
	p->start = p->last = px_mono_seconds();
	p->base = base;
	p->last_tenth = (int)-1;
}

/* Bytes per second over this transfer only: bytes resumed from disk did not cross the
 * network just now and would inflate the rate. */
static double rate(const struct px_progress *p, uint64_t done, double t)
{
	double dt = t - p->start;
	if (dt <= 0 || done < p->base)
		return 0;
	return (double)(done - p->base) / dt;
}

static void draw(struct px_progress *p, uint64_t done, uint64_t total, double t, bool final)
{
	char d[16], tot[16], r[16];
	px_progress_size(done, d, sizeof(d));
	px_progress_size((uint64_t)rate(p, done, t), r, sizeof(r));
	if (p->tty) {
		/* \r and "erase to end of line" redraw the bar in place. */
		if (total > 0) {
			px_progress_size(total, tot, sizeof(tot));
			int pct = (int)(done * 100 / total);
			int fill = pct / 5;
			fprintf(stderr, "\r%s [%.*s%*s] %3d%% %s / %s %s/s\033[K", p->label, fill,
			        "####################", 20 - fill, "", pct, d, tot, r);
		} else {
			fprintf(stderr, "\r%s %s %s/s\033[K", p->label, d, r);
		}
		p->drawn = true;
		if (final) {
			fputc('\n', stderr);
			p->drawn = false;
		}
	} else if (total > 0) {
		px_progress_size(total, tot, sizeof(tot));
		fprintf(stderr, "%s: %3d%% (%s of %s, %s/s)\n", p->label, (int)(done * 100 / total),
		        d, tot, r);
	} else {
		fprintf(stderr, "%s: %s (%s/s)\n", p->label, d, r);
	}
	fflush(stderr);
	p->last = t;
}

void px_progress_update(struct px_progress *p, uint64_t done, uint64_t total)
{
	if (!p->enabled)
		return;
	if (total > 0 && done > total)
		total = done;
	double t = px_mono_seconds();
	if (p->tty) {
		if (t - p->last >= 0.1 || !p->drawn)
			draw(p, done, total, t, false);
		return;
	}
	if (total > 0) {
		int tenth = (int)(done * 10 / total);
		if (tenth > p->last_tenth) {
			p->last_tenth = tenth;
			draw(p, done, total, t, false);
		}
	} else if (t - p->last >= 10) {
		draw(p, done, total, t, false);
	}
}

void px_progress_finish(struct px_progress *p, uint64_t done, bool ok)
{
	if (p->enabled) {
		if (ok && p->tty)
			draw(p, done, done, px_mono_seconds(), true);
		else if (ok && p->last_tenth < 10)
			draw(p, done, done, px_mono_seconds(), false);
		else if (p->drawn)
			fputc('\n', stderr);
	}
	free(p->label);
	p->label = NULL;
}
