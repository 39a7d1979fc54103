#include "core/common.h"

#include "core/file.h"
#include "core/sha256.h"
#include "core/spawn.h"
#include "tap.h"

int main(void)
{
	uint8_t d[PX_SHA256_LEN];
	char hex[PX_SHA256_HEX];

	/* Known answers from FIPS 180-2. */
	px_sha256_buf("abc", 3, d);
	px_sha256_hex(d, hex);
	is_str(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
	       "sha256('abc')");
	px_sha256_buf("", 0, d);
	px_sha256_hex(d, hex);
	is_str(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	       "sha256('')");

	struct px_sha256 h;
	px_sha256_init(&h);
	px_sha256_update(&h, "a", 1);
	px_sha256_update(&h, "bc", 2);
	px_sha256_final(&h, d);
	px_sha256_hex(d, hex);
	is_str(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
	       "streaming matches");

	/* A file of 3 MiB + 7 bytes hashed by us and by coreutils' sha256sum. */
	char dir[] = "/tmp/pexi-sha.XXXXXX";
	ok(mkdtemp(dir) != NULL, "temp dir");
	_cleanup_free_ char *path = xasprintf("%s/blob", dir);
	size_t n = (3u << 20) + 7;
	_cleanup_free_ uint8_t *blob = xmalloc(n);
	for (size_t i = 0; i < n; i++)
		blob[i] = (uint8_t)(i * 131 + (i >> 9));
	struct px_err *err = NULL;
	ok(px_atomic_write_file(path, blob, n, 0644, &err) == 0, "write blob");
	ok(px_sha256_file_hex(path, hex, &err) == 0, "hash file");
	const char *argv[] = {"sha256sum", path, NULL};
	_cleanup_free_ char *out = NULL;
	if (px_have_program("sha256sum") && px_run(argv, &out, &err) == 0)
		ok(strncmp(out, hex, 64) == 0, "file digest equals sha256sum's");
	else
		ok(0, "sha256sum ran");
	ok(px_sha256_file_hex("/nonexistent", hex, &err) < 0, "missing file fails");
	like(err ? err->msg : NULL, "cannot open '/nonexistent'", "names the file");
	px_err_free(err);
	unlink(path);
	rmdir(dir);
	return done_testing();
}
