/* pexi status: what the instance is doing, asked of its lock and its state.json. */
#include <cJSON.h>
#include <getopt.h>

#include "core/common.h"

#include "cli.h"
#include "vm/instance.h"

PX_DEFINE_CLEANUP(struct px_instance *, px_instance_free)

/* The state to show: the recorded one while the lock is held; without the lock, a record
 * that still claims life belongs to a crashed supervisor. */
static const char *shown_state(const struct px_instance_state *st, bool locked, bool have)
{
	if (!have)
		return locked ? "starting" : "not started";
	if (locked)
		return st->state ? st->state : "starting";
	if (px_streq(st->state, "stopped") || px_streq(st->state, "failed"))
		return st->state;
	return "crashed";
}

int cmd_status(int argc, char **argv, struct px_err **err)
{
	static const struct option longopts[] = {
	        {"file", required_argument, NULL, 'f'},
	        {"name", required_argument, NULL, 'n'},
	        {"json", no_argument, NULL, 'j'},
	        {NULL, 0, NULL, 0},
	};
	const char *file = "pexi.yml", *name = NULL;
	bool json = false;
	int c;
	while ((c = getopt_long(argc, argv, "+:f:", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			file = optarg;
			break;
		case 'n':
			name = optarg;
			break;
		case 'j':
			json = true;
			break;
		default:
			return cli_option_error("status", c, argv, "a value", err);
		}
	}
	if (optind < argc)
		return cli_usage_error("status", err, "unexpected argument '%s'", argv[optind]);

	_cleanup_(px_instance_freep) struct px_instance *in = NULL;
	if (px_instance_from_manifest(file, name, NULL, &in, err) < 0)
		return -1;
	bool locked = px_instance_locked(in);
	struct px_instance_state st = {0};
	struct px_err *e = NULL;
	bool have = px_instance_read_state(in, &st, &e) == 0;
	if (!have && e && e->errnum != ENOENT) {
		px_instance_state_clear(&st);
		*err = e;
		return -1;
	}
	px_err_free(e);
	const char *state = shown_state(&st, locked, have);

	if (json) {
		_cleanup_free_ char *text = px_instance_state_json(&st);
		cJSON *o = cJSON_Parse(text);
		cJSON_ReplaceItemInObjectCaseSensitive(o, "name", cJSON_CreateString(in->name));
		cJSON_ReplaceItemInObjectCaseSensitive(o, "state", cJSON_CreateString(state));
		cJSON_AddBoolToObject(o, "running", locked);
		cJSON_AddStringToObject(o, "dir", in->dir);
		char *out = cJSON_Print(o);
		printf("%s\n", out);
		cJSON_free(out);
		cJSON_Delete(o);
		px_instance_state_clear(&st);
		return PX_EXIT_OK;
	}

	printf("instance  %s\n", in->name);
	printf("state     %s\n", state);
	if (have) {
		if (st.backend)
			printf("backend   %s (accel %s, channel %s)\n", st.backend,
			       st.accel ? st.accel : "-", st.channel ? st.channel : "-");
		if (st.ready_ms > 0 && st.started_ms > 0)
			printf("ready     after %.2f s (%s%s%s)\n",
			       (double)(st.ready_ms - st.started_ms) / 1000,
			       px_streq(st.ready_by, "hello") ? "hello from the guest"
			                                      : "console marker",
			       st.instance_id ? ", instance-id " : "",
			       st.instance_id ? st.instance_id : "");
		if (locked)
			printf("pids      supervisor %d, pep %d, hypervisor %d\n",
			       (int)st.supervisor_pid, (int)st.pep_pid, (int)st.vm_pid);
		if (st.reason && !locked)
			printf("reason    %s\n", st.reason);
	}
	printf("dir       %s\n", in->dir);
	px_instance_state_clear(&st);
	return PX_EXIT_OK;
}
