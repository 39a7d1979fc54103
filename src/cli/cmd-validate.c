/* pexi validate [-f FILE] [--json] [FILE]: loads the manifest with its recipes exactly as
 * `pexi build` would, and says whether it is valid. Errors go back to main, which prints
 * them once; with --json the verdict is also printed on stdout for scripts. */
#include <cJSON.h>
#include <getopt.h>

#include "core/common.h"

#include "cli.h"
#include "manifest/manifest.h"

static void print_json(const char *file, const struct px_manifest *m, const char *error)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddBoolToObject(o, "valid", m != NULL);
	cJSON_AddStringToObject(o, "file", file);
	if (error)
		cJSON_AddStringToObject(o, "error", error);
	char *manifest = NULL;
	if (m && px_manifest_dump_json(m, &manifest, NULL) == 0) {
		cJSON *parsed = cJSON_Parse(manifest);
		if (parsed)
			cJSON_AddItemToObject(o, "manifest", parsed);
	}
	free(manifest);
	char *s = cJSON_Print(o);
	if (s)
		printf("%s\n", s);
	free(s);
	cJSON_Delete(o);
}

int cmd_validate(int argc, char **argv, struct px_err **err)
{
	static const struct option opts[] = {
	        {"file", required_argument, NULL, 'f'},
	        {"json", no_argument, NULL, 'j'},
	        {NULL, 0, NULL, 0},
	};
	const char *file = NULL;
	bool json = false;
	int c;
	while ((c = getopt_long(argc, argv, ":f:", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			file = optarg;
			break;
		case 'j':
			json = true;
			break;
		default:
			return cli_option_error("validate", c, argv, "a file name", err);
		}
	}
	/* A bare file name works too: `pexi validate pexi.yml.example`. */
	if (optind < argc) {
		if (file || optind + 1 < argc)
			return cli_usage_error("validate", err, "validate checks one manifest");
		file = argv[optind];
	}
	if (!file)
		file = "pexi.yml";

	struct px_manifest *m = NULL;
	if (px_manifest_load(file, &m, err) < 0) {
		if (json)
			print_json(file, NULL, (*err)->msg);
		return -1;
	}
	if (json)
		print_json(file, m, NULL);
	else
		printf("manifest '%s' is valid\n", file);
	px_manifest_free(m);
	return 0;
}
