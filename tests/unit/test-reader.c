#include "core/common.h"

#include "core/reader.h"
#include "tap.h"

int main(void)
{
	const uint8_t bytes[] = {0x63, 0x6f, 0x6e, 0x65, 0x00, 0x01, 0x02,
	                         0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09};
	struct px_reader r;
	struct px_err *err = NULL;
	px_reader_init(&r, bytes, sizeof(bytes), 1000, "footer");

	uint32_t u32;
	uint16_t u16;
	uint64_t u64;
	uint8_t u8;
	ok(px_reader_be32(&r, &u32, &err) == 0 && u32 == 0x636f6e65, "be32");
	ok(px_reader_le16(&r, &u16, &err) == 0 && u16 == 0x0100, "le16");
	ok(px_reader_be16(&r, &u16, &err) == 0 && u16 == 0x0203, "be16");
	is_int(px_reader_offset(&r), 1008, "absolute offset");
	ok(px_reader_le32(&r, &u32, &err) == 0 && u32 == 0x07060504, "le32");
	is_int(px_reader_remaining(&r), 2, "remaining");
	ok(px_reader_be64(&r, &u64, &err) < 0, "reading past the end fails");
	is_str(err ? err->msg : NULL, "footer: truncated at offset 1012: need 8 bytes, 2 remain",
	       "truncation names the thing, the offset and the shortfall");
	px_err_clear(&err);
	is_int(px_reader_remaining(&r), 2, "a failed read consumes nothing");
	ok(px_reader_u8(&r, &u8, &err) == 0 && u8 == 0x08, "u8");
	ok(px_reader_seek(&r, 0, &err) == 0, "seek to start");
	ok(px_reader_le64(&r, &u64, &err) == 0 && u64 == 0x03020100656e6f63ULL, "le64");
	ok(px_reader_seek(&r, 15, &err) < 0, "seek past the end fails");
	like(err ? err->msg : NULL, "offset 1015 is past the end", "seek error names the offset");
	px_err_clear(&err);
	ok(px_reader_skip(&r, SIZE_MAX, &err) < 0, "huge skip cannot overflow");
	px_err_clear(&err);
	char tag[4];
	ok(px_reader_bytes(&r, tag, 4, &err) == 0 && memcmp(tag, "\x04\x05\x06\x07", 4) == 0,
	   "bytes copies");

	uint8_t out[8];
	px_put_be64(out, 0x0102030405060708ULL);
	is_int(px_get_be64(out), 0x0102030405060708LL, "put/get be64 round trip");
	is_int(px_get_le32(out), 0x04030201, "le32 view of the same bytes");
	return done_testing();
}
