/* libFuzzer target for the manifest parser: any bytes must give a manifest or an error,
 * never a crash, a leak or undefined behaviour. A manifest that parses is also dumped both
 * ways, so the dumpers see every shape the parser accepts. */
#include "core/common.h"

#include "manifest/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *sink;
	if (!sink)
		sink = fopen("/dev/null", "w");
	struct px_manifest *m = NULL;
	struct px_err *err = NULL;
	if (px_manifest_parse((const char *)data, size, "fuzz.yml", NULL, &m, &err) == 0) {
		char *json = NULL;
		if (px_manifest_dump_json(m, &json, NULL) == 0)
			free(json);
		if (sink)
			px_manifest_dump_text(m, sink);
		px_manifest_free(m);
	} else if (!err || !err->msg) {
		abort(); /* a failure must always say why */
	}
	px_err_free(err);
	return 0;
}
