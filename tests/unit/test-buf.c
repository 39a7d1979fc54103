#include "core/common.h"

#include "core/buf.h"
#include "tap.h"

int main(void)
{
	struct px_buf b = PX_BUF_INIT;
	px_buf_puts(&b, "hello");
	px_buf_printf(&b, " %d %s", 42, "world");
	is_str(b.data, "hello 42 world", "puts and printf append");
	is_int(b.len, 14, "length tracked");
	for (int i = 0; i < 10000; i++)
		px_buf_puts(&b, "x");
	is_int(b.len, 10014, "grows past many doublings");
	size_t len;
	char *s = px_buf_steal(&b, &len);
	is_int(len, 10014, "steal gives the length");
	ok(b.data == NULL && b.len == 0, "steal empties the buffer");
	free(s);

	struct px_err *err = NULL;
	struct px_buf capped = PX_BUF_INIT;
	capped.max = 8;
	ok(px_buf_append(&capped, "12345678", 8, &err) == 0, "up to the cap is fine");
	ok(px_buf_append(&capped, "9", 1, &err) < 0, "past the cap fails");
	like(err ? err->msg : NULL, "more than 8 bytes", "cap message");
	is_int(capped.len, 8, "failed append changes nothing");
	ok(px_buf_append(&capped, "x", SIZE_MAX, &err) < 0, "huge length cannot overflow");
	px_err_free(err);
	px_buf_free(&capped);
	px_buf_free(&b);
	return done_testing();
}
