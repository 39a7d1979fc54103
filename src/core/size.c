#include <ctype.h>
#include <strings.h>

#include "size.h"

#include "common.h"

struct unit {
	const char *suffix;
	uint64_t factor;
};

static const struct unit units[] = {
        {"", 1},
        {"b", 1},
        {"k", 1ULL << 10},
        {"kib", 1ULL << 10},
        {"kb", 1000ULL},
        {"m", 1ULL << 20},
        {"mib", 1ULL << 20},
        {"mb", 1000ULL * 1000},
        {"g", 1ULL << 30},
        {"gib", 1ULL << 30},
        {"gb", 1000ULL * 1000 * 1000},
        {"t", 1ULL << 40},
        {"tib", 1ULL << 40},
        {"tb", 1000ULL * 1000 * 1000 * 1000},
};

int px_size_parse(const char *s, uint64_t *ret, struct px_err **err)
{
	if (!s || !*s)
		return px_err_set(err, PX_EXIT_INPUT, "empty size");
	const char *p = s;
	if (!isdigit((unsigned char)*p))
		return px_err_set(err, PX_EXIT_INPUT,
		                  "invalid size '%s' (expected a number such as 2G or 512MiB)", s);
	uint64_t value = 0;
	for (; isdigit((unsigned char)*p); p++) {
		if (px_mul_overflow(value, 10, &value) ||
		    px_add_overflow(value, (uint64_t)(*p - '0'), &value))
			return px_err_set(err, PX_EXIT_INPUT, "size '%s' is too large", s);
	}
	const char *suffix = p;
	while (*suffix == ' ')
		suffix++;
	for (size_t i = 0; i < PX_ARRAY_SIZE(units); i++) {
		if (strcasecmp(suffix, units[i].suffix) != 0)
			continue;
		uint64_t bytes;
		if (px_mul_overflow(value, units[i].factor, &bytes))
			return px_err_set(err, PX_EXIT_INPUT, "size '%s' is too large", s);
		*ret = bytes;
		return 0;
	}
	return px_err_set(
	        err, PX_EXIT_INPUT,
	        "invalid size '%s': unknown unit '%s' (use K, M, G, T, KiB..TiB or KB..TB)", s,
	        suffix);
}

void px_size_format(uint64_t bytes, char *buf, size_t len)
{
	static const char *names[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	if (bytes < 1024) {
		snprintf(buf, len, "%" PRIu64 " B", bytes);
		return;
	}
	double v = (double)bytes;
	size_t i = 0;
	while (v >= 1024 && i + 1 < PX_ARRAY_SIZE(names)) {
		v /= 1024;
		i++;
	}
	snprintf(buf, len, "%.1f %s", v, names[i]);
}
