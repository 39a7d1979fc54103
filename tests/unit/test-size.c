#include "core/common.h"

#include "core/size.h"
#include "tap.h"

static void good(const char *s, uint64_t want)
{
	uint64_t v = 0;
	struct px_err *err = NULL;
	int r = px_size_parse(s, &v, &err);
	if (!ok(r == 0 && v == want, "'%s' is %" PRIu64, s, want))
		printf("#   got r=%d v=%" PRIu64 " err=%s\n", r, v, err ? err->msg : "-");
	px_err_free(err);
}

static void bad(const char *s, const char *fragment)
{
	uint64_t v = 42;
	struct px_err *err = NULL;
	int r = px_size_parse(s, &v, &err);
	ok(r < 0 && v == 42, "'%s' is refused and the output untouched", s);
	like(err ? err->msg : NULL, fragment, "message for a bad size");
	px_err_free(err);
}

int main(void)
{
	good("0", 0);
	good("4096", 4096);
	good("2G", 2ULL << 30);
	good("2g", 2ULL << 30);
	good("2GiB", 2ULL << 30);
	good("512MiB", 512ULL << 20);
	good("512M", 512ULL << 20);
	good("1K", 1024);
	good("1KB", 1000);
	good("3TB", 3000000000000ULL);
	good("1T", 1ULL << 40);
	good("16B", 16);
	bad("", "empty size");
	bad("G", "invalid size 'G'");
	bad("-1G", "invalid size '-1G'");
	bad("1.5G", "unknown unit '.5G'");
	bad("2X", "unknown unit 'X'");
	bad("99999999999999999999", "too large");
	bad("20000000000T", "too large");

	char buf[32];
	px_size_format(2ULL << 30, buf, sizeof(buf));
	is_str(buf, "2.0 GiB", "format GiB");
	px_size_format(100, buf, sizeof(buf));
	is_str(buf, "100 B", "format bytes");
	return done_testing();
}
