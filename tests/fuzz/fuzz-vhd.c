/* libFuzzer target for the VHD reader: any bytes, parsed as a whole VHD image in memory by
 * the same code that converts files (footer, dynamic header, BAT, sector bitmaps, every
 * block read). It must never crash, hang or leak, whatever the bytes.
 *
 * Random mutations almost never keep the footer and header checksums right, which would
 * stop most inputs at the first check. So each input runs twice: as it is, then with its
 * checksums recomputed, which lets the fuzzer reach the BAT and block code without any
 * fuzzing-only switch in the parser itself. */
#include "core/common.h"

#include "core/reader.h"
#include "image/vhd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void seal(uint8_t *p, size_t len, size_t at)
{
	uint32_t sum = 0;
	for (size_t i = 0; i < len; i++)
		if (i < at || i >= at + 4)
			sum += p[i];
	px_put_be32(p + at, ~sum);
}

static void check(const uint8_t *data, size_t size)
{
	struct px_err *err = NULL;
	if (px_vhd_check_buffer(data, size, &err) < 0 && (!err || !err->msg || !err->msg[0]))
		abort(); /* every refusal must say why */
	px_err_free(err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check(data, size);
	if (size < 512)
		return 0;
	uint8_t *copy = xmalloc(size);
	memcpy(copy, data, size);
	uint8_t *footer = copy + size - 512;
	uint64_t hdr = px_get_be64(footer + 16);
	if (size >= 2048 && hdr <= size - 1024)
		seal(copy + hdr, 1024, 36);
	if (size >= 1024)
		seal(copy, 512, 64);
	seal(footer, 512, 64);
	check(copy, size);
	free(copy);
	return 0;
}
