/* pexi build: run the image pipeline and print what each stage did. */
#include <cJSON.h>
#include <getopt.h>

#include "core/common.h"

#include "cli.h"
#include "core/buf.h"
#include "core/log.h"
#include "image/pipeline.h"
#include "image/seal.h"
#include "manifest/manifest.h"

PX_DEFINE_CLEANUP(struct px_manifest *, px_manifest_free)

static void print_table(const struct px_build_report *r, bool plan)
{
	printf("%-8s  %8s  %-6s  %s\n", "stage", "time", plan ? "state" : "cached", "output");
	for (int i = 0; i < PX_STAGE_COUNT; i++) {
		const struct px_stage_report *s = &r->stages[i];
		char t[16] = "-";
		if (!plan && !s->cached)
			snprintf(t, sizeof(t), "%.2fs", s->seconds);
		const char *state =
		        plan ? (s->cached ? "cached" : "run") : (s->cached ? "yes" : "no");
		if (s->output[0])
			printf("%-8s  %8s  %-6s  %s sha256:%.16s\n", s->name, t, state,
			       s->output_name ? s->output_name : "", s->output);
		else
			printf("%-8s  %8s  %-6s  -\n", s->name, t, state);
	}
	if (!plan && r->bake.n_pkgs)
		printf("installed %zu package%s\n", r->bake.n_pkgs, r->bake.n_pkgs == 1 ? "" : "s");
	if (!plan)
		printf("built %s and %s in %.2fs\n", r->disk_path, r->seed_path, r->seconds);
}

static int print_plan_json(const struct px_manifest *m, const struct px_build_report *r,
                           struct px_err **err)
{
	_cleanup_free_ char *manifest_json = NULL;
	if (px_manifest_dump_json(m, &manifest_json, err) < 0)
		return -1;
	_cleanup_free_ char *report_json = px_seal_report_json(m, r);
	printf("{\"manifest\": %s,\n \"plan\": %s}\n", manifest_json, report_json);
	return 0;
}

int cmd_build(int argc, char **argv, struct px_err **err)
{
	static const struct option longopts[] = {
	        {"file", required_argument, NULL, 'f'}, {"plan", no_argument, NULL, 'p'},
	        {"json", no_argument, NULL, 'j'},       {"offline", no_argument, NULL, 'o'},
	        {"frozen", no_argument, NULL, 'z'},     {NULL, 0, NULL, 0},
	};
	const char *file = "pexi.yml";
	bool json = false, frozen = false;
	struct px_build_opts opts = {0};
	int c;
	while ((c = getopt_long(argc, argv, "+:f:", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			file = optarg;
			break;
		case 'p':
			opts.plan_only = true;
			break;
		case 'j':
			json = true;
			break;
		case 'o':
			opts.offline = true;
			break;
		case 'z':
			frozen = true;
			break;
		default:
			return cli_option_error("build", c, argv, "a file name", err);
		}
	}
	if (optind < argc)
		return cli_usage_error("build", err, "unexpected argument '%s'", argv[optind]);

	_cleanup_(px_manifest_freep) struct px_manifest *m = NULL;
	if (px_manifest_load(file, &m, err) < 0)
		return -1;

	_cleanup_(px_bake_lock_free) struct px_bake_lock lock = {0};
	if (frozen) {
		if (px_build_read_lock(m, &lock, err) < 0)
			return -1;
		opts.frozen = &lock;
	}

	struct px_build_report r;
	int rc = px_build_run(m, &opts, &r, err);
	if (rc == 0) {
		if (r.bake.n_deferred) {
			/* Scripts pexi cannot run on the build host run once at first boot. */
			struct px_buf b = PX_BUF_INIT;
			for (size_t i = 0; i < r.bake.n_deferred; i++)
				px_buf_printf(&b, "%s%s", i ? ", " : "", r.bake.deferred[i]);
			px_log_warn("package scripts deferred to first boot (pexi-firstboot): %s",
			            b.data);
			px_buf_free(&b);
		}
		if (opts.plan_only && json) {
			rc = print_plan_json(m, &r, err);
		} else if (opts.plan_only) {
			px_manifest_dump_text(m, stdout);
			printf("\n");
			print_table(&r, true);
		} else if (json) {
			_cleanup_free_ char *text = px_seal_report_json(m, &r);
			printf("%s\n", text);
		} else if (px_log_level() > PX_LOG_QUIET) {
			print_table(&r, false);
		}
	}
	px_build_report_free(&r);
	return rc < 0 ? -1 : PX_EXIT_OK;
}
