/* The resolved manifest as JSON (cJSON, fixed key order) and as readable text. Both walk
 * one cJSON tree so they can never disagree. The manifest's own path and directory are
 * left out: the JSON feeds stage hashes, which must not change when a checkout moves. */
#include <cJSON.h>
#include <ctype.h>
#include <strings.h>

#include "core/common.h"

#include "core/size.h"
#include "manifest/manifest.h"

static const char *const format_names[] = {"auto", "vhd", "raw"};
static const char *const method_names[] = {"offline", "chroot"};
static const char *const executor_names[] = {"local", "lima", "guestfs"};
static const char *const backend_names[] = {"auto", "qemu", "avf"};
static const char *const accel_names[] = {"auto", "kvm", "hvf", "tcg"};
static const char *const pep_mode_names[] = {"enforce", "report"};

static const char *enum_name(const char *const *names, size_t n, int v)
{
	return v >= 0 && (size_t)v < n ? names[v] : "unknown";
}
#define ENUM(names, v) enum_name(names, PX_ARRAY_SIZE(names), (int)(v))

/* cJSON keeps numbers as doubles; raw decimal text keeps 64-bit values exact. */
static void add_u64(cJSON *o, const char *key, uint64_t v)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	cJSON_AddItemToObject(o, key, cJSON_CreateRaw(buf));
}

static void add_str(cJSON *o, const char *key, const char *s)
{
	cJSON_AddItemToObject(o, key, s ? cJSON_CreateString(s) : cJSON_CreateNull());
}

static void add_strv(cJSON *o, const char *key, const struct px_strv *v)
{
	cJSON *a = cJSON_AddArrayToObject(o, key);
	for (size_t i = 0; i < v->n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(v->v[i]));
}

static cJSON *build(const struct px_manifest *m)
{
	cJSON *root = cJSON_CreateObject();
	add_strv(root, "recipes", &m->recipes);
	add_str(root, "name", m->name);
	add_str(root, "arch", px_arch_name(m->arch));

	cJSON *o = cJSON_AddObjectToObject(root, "base");
	add_str(o, "url", m->base.url);
	add_str(o, "sha256", m->base.sha256);
	add_str(o, "format", ENUM(format_names, m->base.format));

	o = cJSON_AddObjectToObject(root, "disk");
	add_u64(o, "size", m->disk.size);
	if (m->disk.root_partition)
		add_u64(o, "root_partition", (uint64_t)m->disk.root_partition);
	else
		add_str(o, "root_partition", "auto");

	o = cJSON_AddObjectToObject(root, "boot");
	add_str(o, "console", m->boot.console);
	add_strv(o, "kernel_args", &m->boot.kernel_args);

	o = cJSON_AddObjectToObject(root, "cloud_init");
	add_str(o, "datasource", m->cloud_init.datasource);
	add_str(o, "user", m->cloud_init.user);
	add_strv(o, "ssh_keys", &m->cloud_init.ssh_keys);
	add_strv(o, "runcmd", &m->cloud_init.runcmd);
	cJSON *a = cJSON_AddArrayToObject(o, "write_files");
	for (size_t i = 0; i < m->cloud_init.n_write_files; i++) {
		const struct px_write_file *w = &m->cloud_init.write_files[i];
		cJSON *e = cJSON_CreateObject();
		add_str(e, "path", w->path);
		add_str(e, "content", w->content);
		add_str(e, "permissions", w->permissions);
		add_str(e, "owner", w->owner);
		cJSON_AddItemToArray(a, e);
	}
	add_str(o, "instance_id", m->cloud_init.instance_id ? m->cloud_init.instance_id : "auto");
	add_str(o, "network_config", m->cloud_init.network_config);

	o = cJSON_AddObjectToObject(root, "packages");
	add_str(o, "method", ENUM(method_names, m->packages.method));
	add_str(o, "executor", ENUM(executor_names, m->packages.executor));
	add_strv(o, "repositories", &m->packages.repositories);
	add_strv(o, "keys", &m->packages.keys);
	add_strv(o, "add", &m->packages.add);
	cJSON_AddBoolToObject(o, "allow_untrusted", m->packages.allow_untrusted);

	a = cJSON_AddArrayToObject(root, "files");
	for (size_t i = 0; i < m->n_files; i++) {
		const struct px_file_entry *f = &m->files[i];
		cJSON *e = cJSON_CreateObject();
		add_str(e, "path", f->path);
		if (f->content)
			add_str(e, "content", f->content);
		if (f->source)
			add_str(e, "source", f->source);
		if (f->template)
			add_str(e, "template", f->template);
		if (f->symlink)
			add_str(e, "symlink", f->symlink);
		char mode[16];
		snprintf(mode, sizeof(mode), "%04o", (unsigned)f->mode);
		add_str(e, "mode", mode);
		add_u64(e, "uid", f->uid);
		add_u64(e, "gid", f->gid);
		cJSON_AddItemToArray(a, e);
	}

	o = cJSON_AddObjectToObject(root, "vm");
	add_str(o, "backend", ENUM(backend_names, m->vm.backend));
	add_u64(o, "cpus", m->vm.cpus);
	add_u64(o, "memory", m->vm.memory);
	add_str(o, "shared_dir", m->vm.shared_dir);
	add_u64(o, "vsock_port", m->vm.vsock_port);
	add_str(o, "accel", ENUM(accel_names, m->vm.accel));
	add_str(o, "firmware", m->vm.firmware);
	add_str(o, "kernel", m->vm.kernel);
	add_str(o, "initrd", m->vm.initrd);
	add_str(o, "cmdline", m->vm.cmdline);

	o = cJSON_AddObjectToObject(root, "pep");
	add_strv(o, "allow", &m->pep.allow);
	add_strv(o, "deny", &m->pep.deny);
	add_strv(o, "allow_addresses", &m->pep.allow_addresses);
	add_strv(o, "methods", &m->pep.methods);
	add_u64(o, "max_request_bytes", m->pep.max_request_bytes);
	add_u64(o, "max_response_bytes", m->pep.max_response_bytes);
	cJSON *t = cJSON_AddObjectToObject(o, "timeouts");
	add_u64(t, "connect_ms", m->pep.connect_timeout_ms);
	add_u64(t, "total_ms", m->pep.total_timeout_ms);
	add_str(o, "audit_log", m->pep.audit_log);
	add_str(o, "mode", ENUM(pep_mode_names, m->pep.mode));

	o = cJSON_AddObjectToObject(root, "build");
	add_str(o, "dir", m->build.dir);
	if (m->build.source_date_epoch >= 0)
		add_u64(o, "source_date_epoch", (uint64_t)m->build.source_date_epoch);
	else
		cJSON_AddNullToObject(o, "source_date_epoch");
	return root;
}

int px_manifest_dump_json(const struct px_manifest *m, char **ret_json, struct px_err **err)
{
	cJSON *root = build(m);
	char *s = cJSON_Print(root);
	cJSON_Delete(root);
	if (!s)
		return px_err_set(err, PX_EXIT_FAILURE, "cannot format the manifest as JSON");
	/* cJSON allocates with malloc by default, so the caller's free() matches. */
	*ret_json = s;
	return 0;
}

/* A string that reads back as the same string in YAML without quotes. */
static bool plain_ok(const char *s)
{
	if (!*s || strchr("-?:,[]{}#&*!|>'\"%@`~ ", s[0]))
		return false;
	static const char *const special[] = {"true", "false", "null", "yes", "no", "on", "off"};
	for (size_t i = 0; i < PX_ARRAY_SIZE(special); i++)
		if (strcasecmp(s, special[i]) == 0)
			return false;
	bool digits = true;
	for (const char *p = s; *p; p++) {
		if ((unsigned char)*p < ' ' || *p == '#' || (p[0] == ':' && (p[1] == ' ' || !p[1])))
			return false;
		digits = digits && (isdigit((unsigned char)*p) || *p == '.');
	}
	return !digits && s[strlen(s) - 1] != ' ';
}

static void put_scalar(FILE *out, const cJSON *v)
{
	if (cJSON_IsString(v) && plain_ok(v->valuestring)) {
		fputs(v->valuestring, out);
	} else if (cJSON_IsRaw(v)) {
		fputs(v->valuestring, out);
	} else {
		char *s = cJSON_PrintUnformatted(v);
		fputs(s ? s : "null", out);
		free(s);
	}
}

static bool is_size_key(const char *k)
{
	return strcmp(k, "size") == 0 || strcmp(k, "memory") == 0 || strstr(k, "_bytes");
}

static void put_text(FILE *out, const cJSON *node, int depth, bool first_inline);

static void put_value(FILE *out, const cJSON *v, const char *key, int depth)
{
	bool container = cJSON_IsObject(v) || cJSON_IsArray(v);
	if (container && !v->child) {
		fputs(cJSON_IsObject(v) ? " {}\n" : " []\n", out);
	} else if (!key && cJSON_IsObject(v)) {
		/* A mapping inside a list starts on the dash's line: "- path: /etc/a". */
		fputs(" ", out);
		put_text(out, v, depth + 1, true);
	} else if (container) {
		fputs("\n", out);
		put_text(out, v, depth + 1, false);
	} else {
		fputs(" ", out);
		put_scalar(out, v);
		if (key && cJSON_IsRaw(v) && is_size_key(key)) {
			char human[32];
			px_size_format(strtoull(v->valuestring, NULL, 10), human, sizeof(human));
			fprintf(out, "  # %s", human);
		}
		fputs("\n", out);
	}
}

static void put_text(FILE *out, const cJSON *node, int depth, bool first_inline)
{
	for (const cJSON *c = node->child; c; c = c->next) {
		if (!(first_inline && c == node->child))
			fprintf(out, "%*s", depth * 2, "");
		if (cJSON_IsArray(node)) {
			fputs("-", out);
			put_value(out, c, NULL, depth);
		} else {
			fprintf(out, "%s:", c->string);
			put_value(out, c, c->string, depth);
		}
	}
}

void px_manifest_dump_text(const struct px_manifest *m, FILE *out)
{
	cJSON *root = build(m);
	put_text(out, root, 0, false);
	cJSON_Delete(root);
}
