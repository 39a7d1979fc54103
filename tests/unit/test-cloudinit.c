/* The rendered cloud-init files, checked by independent consumers: PyYAML (Debian's
 * python3-yaml) parses them back and every value must come back exactly, including text
 * chosen to break naive YAML writers; `cloud-init schema` must accept the user-data. */
#include <cJSON.h>

#include "core/common.h"

#include "core/file.h"
#include "core/spawn.h"
#include "image/cloudinit.h"
#include "manifest/manifest.h"
#include "tap.h"

#define PYTHON "/usr/bin/python3"

static char tmpdir[] = "/tmp/pexi-cloudinit.XXXXXX";

/* Parses YAML text with PyYAML and returns it as JSON (NULL when it did not load). */
static cJSON *pyyaml_load(const char *text)
{
	static int n;
	_cleanup_free_ char *path = xasprintf("%s/doc-%d.yml", tmpdir, n++);
	struct px_err *err = NULL;
	if (px_atomic_write_file(path, text, strlen(text), 0644, &err) < 0) {
		printf("# %s\n", err->msg);
		px_err_free(err);
		return NULL;
	}
	const char *script =
	        "import sys, json, yaml\n"
	        "data = open(sys.argv[1], 'rb').read()\n"
	        "sys.stdout.write(json.dumps(yaml.safe_load(data), ensure_ascii=True))\n";
	const char *argv[] = {PYTHON, "-c", script, path, NULL};
	_cleanup_free_ char *out = NULL;
	if (px_run(argv, &out, &err) < 0) {
		printf("# %s\n", err->msg);
		px_err_free(err);
		return NULL;
	}
	return cJSON_Parse(out);
}

static const char *jstr(const cJSON *j)
{
	return cJSON_IsString(j) ? j->valuestring : NULL;
}

static cJSON *jget(const cJSON *obj, const char *k)
{
	return cJSON_GetObjectItemCaseSensitive(obj, k);
}

static struct px_strv strv(char **v, size_t n)
{
	struct px_strv s = {v, n};
	return s;
}

/* A manifest with every field the renderer reads. */
static void base_manifest(struct px_manifest *m)
{
	static char *keys[] = {"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG0 user@host",
	                       "ssh-rsa AAAAB3NzaC1yc2E second"};
	static char *runcmd[] = {"echo hello > /tmp/hello", "rc-service sshd stop"};
	static struct px_write_file files[] = {
	        {"/etc/motd", "welcome\nto the sandbox\n", "0644", NULL},
	        {"/home/pexi/.profile", "export A=1\n", "0600", "pexi:pexi"},
	        {"/etc/issue", "one line", NULL, "root:root"},
	};
	memset(m, 0, sizeof(*m));
	m->path = "pexi.yml";
	m->name = "sandbox";
	m->cloud_init.datasource = "nocloud";
	m->cloud_init.user = "pexi";
	m->cloud_init.ssh_keys = strv(keys, PX_ARRAY_SIZE(keys));
	m->cloud_init.runcmd = strv(runcmd, PX_ARRAY_SIZE(runcmd));
	m->cloud_init.write_files = files;
	m->cloud_init.n_write_files = PX_ARRAY_SIZE(files);
	m->vm.shared_dir = "/home/me/work";
	m->vm.cpus = 2;
	m->build.source_date_epoch = -1;
}

static bool is_iid(const char *s)
{
	if (!s || strncmp(s, "iid-", 4) != 0 || strlen(s) != 20)
		return false;
	for (const char *p = s + 4; *p; p++)
		if (!strchr("0123456789abcdef", *p))
			return false;
	return true;
}

static int render(const struct px_manifest *m, const struct px_strv *extra,
                  struct px_seed_content *c)
{
	struct px_err *err = NULL;
	memset(c, 0, sizeof(*c));
	int r = px_cloudinit_render(m, extra, c, &err);
	if (r < 0) {
		printf("# render failed: %s\n", err->msg);
		px_err_free(err);
	}
	return r;
}

static void test_structure(void)
{
	struct px_manifest m;
	base_manifest(&m);
	char *extra_v[] = {"rc-update add pexi-boot default", "rc-service pexi-boot start"};
	struct px_strv extra = strv(extra_v, 2);
	struct px_seed_content c;
	if (!ok(render(&m, &extra, &c) == 0, "renders a full manifest"))
		return;
	ok(strncmp(c.user_data, "#cloud-config\n", 14) == 0, "user-data starts with #cloud-config");
	ok(c.network_config == NULL, "no network-config unless configured");
	ok(is_iid(c.instance_id), "instance-id is iid- and 16 hex digits (%s)", c.instance_id);
	printf("# user-data:\n");
	for (const char *p = c.user_data; *p;) {
		size_t n = strcspn(p, "\n");
		printf("#   %.*s\n", (int)n, p);
		p += n + (p[n] == '\n');
	}

	cJSON *md = pyyaml_load(c.meta_data);
	is_str(jstr(jget(md, "instance-id")), c.instance_id, "meta-data instance-id");
	is_str(jstr(jget(md, "local-hostname")), "sandbox", "meta-data local-hostname");
	is_int(cJSON_GetArraySize(md), 2, "meta-data has two keys");
	cJSON_Delete(md);

	cJSON *ud = pyyaml_load(c.user_data);
	ok(cJSON_IsObject(ud), "user-data is a YAML mapping");
	const cJSON *users = jget(ud, "users");
	is_int(cJSON_GetArraySize(users), 1, "one user");
	const cJSON *u = cJSON_GetArrayItem(users, 0);
	is_str(jstr(jget(u, "name")), "pexi", "user name");
	ok(cJSON_IsTrue(jget(u, "lock_passwd")), "lock_passwd is the boolean true");
	is_str(jstr(jget(u, "shell")), "/bin/sh", "shell");
	ok(jget(u, "sudo") == NULL, "no sudo rule");
	const cJSON *k = jget(u, "ssh_authorized_keys");
	is_int(cJSON_GetArraySize(k), 2, "two ssh keys");
	is_str(jstr(cJSON_GetArrayItem(k, 1)), "ssh-rsa AAAAB3NzaC1yc2E second", "second key");

	const cJSON *wf = jget(ud, "write_files");
	is_int(cJSON_GetArraySize(wf), 3, "three write_files");
	const cJSON *f0 = cJSON_GetArrayItem(wf, 0), *f1 = cJSON_GetArrayItem(wf, 1),
	            *f2 = cJSON_GetArrayItem(wf, 2);
	is_str(jstr(jget(f0, "path")), "/etc/motd", "write_files[0].path");
	is_str(jstr(jget(f0, "content")), "welcome\nto the sandbox\n", "write_files[0].content");
	is_str(jstr(jget(f0, "permissions")), "0644", "permissions stay a string");
	ok(jget(f0, "owner") == NULL && jget(f0, "defer") == NULL, "no owner, no defer");
	is_str(jstr(jget(f1, "owner")), "pexi:pexi", "write_files[1].owner");
	ok(cJSON_IsTrue(jget(f1, "defer")), "a file owned by the new user is deferred");
	ok(jget(f2, "permissions") == NULL, "absent permissions are left out");
	ok(jget(f2, "defer") == NULL, "a root-owned file is not deferred");

	const cJSON *mounts = jget(ud, "mounts");
	const cJSON *m0 = cJSON_GetArrayItem(mounts, 0);
	const char *want[] = {"workspace", "/mnt/workspace", "virtiofs", "rw,nofail", "0", "0"};
	bool same = cJSON_GetArraySize(mounts) == 1 && cJSON_GetArraySize(m0) == 6;
	for (int i = 0; same && i < 6; i++)
		same = px_streq(jstr(cJSON_GetArrayItem(m0, i)), want[i]);
	ok(same, "mounts: the workspace share as six strings");

	const cJSON *rc = jget(ud, "runcmd");
	is_int(cJSON_GetArraySize(rc), 4, "runcmd: recipe's two, then the user's two");
	is_str(jstr(cJSON_GetArrayItem(rc, 0)), "rc-update add pexi-boot default", "runcmd[0]");
	is_str(jstr(cJSON_GetArrayItem(rc, 3)), "rc-service sshd stop", "runcmd[3]");

	/* Fixed key order: the text, not only the parsed value, is deterministic. */
	const char *p_users = strstr(c.user_data, "\nusers:"),
	           *p_wf = strstr(c.user_data, "\nwrite_files:"),
	           *p_mounts = strstr(c.user_data, "\nmounts:"),
	           *p_rc = strstr(c.user_data, "\nruncmd:");
	ok(p_users && p_wf && p_mounts && p_rc && p_users < p_wf && p_wf < p_mounts &&
	           p_mounts < p_rc,
	   "top-level keys in the order users, write_files, mounts, runcmd");
	cJSON_Delete(ud);

	/* The same input renders the same bytes. */
	struct px_seed_content c2;
	if (render(&m, &extra, &c2) == 0) {
		ok(px_streq(c.user_data, c2.user_data) && px_streq(c.meta_data, c2.meta_data),
		   "rendering twice gives identical files");
		px_seed_content_free(&c2);
	}
	px_seed_content_free(&c);
}

/* Text chosen to break YAML written by string pasting: indicators, document markers,
 * scalars that resolve to other types, every kind of line break and whitespace edge. */
static char *hostile[] = {
        "a: b",
        "#not a comment",
        "- not a list",
        "* star",
        "&anchor",
        "*alias",
        "!tag",
        "%YAML 1.2",
        "@at",
        "`backtick",
        "'single' quotes",
        "\"double\" quotes",
        "---",
        "...",
        "--- \n...\n",
        "x\n---\ny\n",
        "x\n...\ny",
        "line1\nline2\n",
        "no final newline\nsecond",
        "three final newlines\n\n\n",
        "\nleading newline",
        "  leading spaces\nnext",
        "trailing space \nnext",
        "tab\there\n\tand there",
        "crlf\r\nline\r\n",
        "cr only\rx",
        "unicode: h\xc3\xa9llo \xe2\x98\x83 \xf0\x9f\x98\x80\nsecond line",
        "NEL\xc2\x85x",
        "LS\xe2\x80\xa8x PS\xe2\x80\xa9y",
        "BOM \xef\xbb\xbf inside",
        "\x01\x02\x1b[31m\x7f control",
        "",
        " ",
        "\n",
        "true",
        "no",
        "null",
        "~",
        "0644",
        "1e3",
        "0x1F",
        "12:30:00",
        "{a: 1}",
        "[1, 2]",
        "key: |\n  nested block",
        "\\backslash\\n not a newline",
        "${HOME} $(rm -rf /) `id`",
        "#!/bin/sh\nset -eu\necho \"hi: $1\" # comment\n",
        "? complex key",
        "| literal",
        "> folded",
        NULL, /* replaced by a 20000-character line */
};

static void test_hostile(void)
{
	size_t n = PX_ARRAY_SIZE(hostile);
	_cleanup_free_ char *longline = xmalloc(20001);
	for (size_t i = 0; i < 20000; i++)
		longline[i] = "ab: #-"[i % 6];
	longline[20000] = '\0';
	hostile[n - 1] = longline;

	struct px_write_file *files = xcalloc(n, sizeof(*files));
	for (size_t i = 0; i < n; i++) {
		files[i].path = xasprintf("/tmp/f%zu", i);
		files[i].content = hostile[i];
		files[i].permissions = "0644";
	}
	struct px_manifest m;
	base_manifest(&m);
	m.name = "host: #name";
	m.cloud_init.user = "- user";
	m.cloud_init.runcmd = strv(hostile, n);
	m.cloud_init.ssh_keys = strv(hostile, n);
	m.cloud_init.write_files = files;
	m.cloud_init.n_write_files = n;
	struct px_seed_content c;
	if (ok(render(&m, NULL, &c) == 0, "renders hostile text")) {
		cJSON *ud = pyyaml_load(c.user_data);
		const cJSON *rc = jget(ud, "runcmd");
		const cJSON *keys =
		        jget(cJSON_GetArrayItem(jget(ud, "users"), 0), "ssh_authorized_keys");
		const cJSON *wf = jget(ud, "write_files");
		ok(cJSON_GetArraySize(rc) == (int)n && cJSON_GetArraySize(keys) == (int)n &&
		           cJSON_GetArraySize(wf) == (int)n,
		   "every hostile entry is there");
		for (size_t i = 0; i < n; i++) {
			const char *a = jstr(cJSON_GetArrayItem(rc, (int)i));
			const char *b = jstr(cJSON_GetArrayItem(keys, (int)i));
			const char *f = jstr(jget(cJSON_GetArrayItem(wf, (int)i), "content"));
			bool same = px_streq(a, hostile[i]) && px_streq(b, hostile[i]) &&
			            px_streq(f, hostile[i]);
			if (!ok(same, "hostile text %zu round-trips through PyYAML", i))
				printf("#   got '%s'\n", f ? f : "(null)");
		}
		is_str(jstr(jget(cJSON_GetArrayItem(jget(ud, "users"), 0), "name")), "- user",
		       "user name round-trips");
		cJSON_Delete(ud);
		cJSON *md = pyyaml_load(c.meta_data);
		is_str(jstr(jget(md, "local-hostname")), "host: #name", "hostname round-trips");
		cJSON_Delete(md);
		ok(strstr(c.user_data, "\n  - |") != NULL || strstr(c.user_data, "content: |"),
		   "multi-line text is written as a literal block");
		px_seed_content_free(&c);
	}
	for (size_t i = 0; i < n; i++)
		free(files[i].path);
	free(files);
	hostile[n - 1] = NULL;
}

static void test_invalid_utf8(void)
{
	struct px_manifest m;
	base_manifest(&m);
	char *runcmd[] = {"fine", "bad \xff\xfe byte"};
	m.cloud_init.runcmd = strv(runcmd, 2);
	struct px_seed_content c = {0};
	struct px_err *err = NULL;
	ok(px_cloudinit_render(&m, NULL, &c, &err) < 0, "text that is not UTF-8 is refused");
	like(err ? err->msg : NULL, "cloud_init.runcmd[1] is not valid UTF-8",
	     "the error names the entry");
	like(err ? err->msg : NULL, "pexi.yml", "and the manifest");
	ok(err && err->exit_code == PX_EXIT_MANIFEST, "as a manifest error");
	ok(c.user_data == NULL && c.meta_data == NULL, "nothing is returned on failure");
	px_err_free(err);
}

static void test_instance_id(void)
{
	struct px_manifest m;
	base_manifest(&m);
	struct px_seed_content a, b;
	if (render(&m, NULL, &a) < 0)
		return;

	/* Edit one runcmd entry: only the user-data and the id change. */
	char *runcmd2[] = {"echo hello > /tmp/hello2", "rc-service sshd stop"};
	struct px_manifest m2 = m;
	m2.cloud_init.runcmd = strv(runcmd2, 2);
	if (render(&m2, NULL, &b) == 0) {
		ok(!px_streq(a.instance_id, b.instance_id),
		   "a runcmd edit changes the instance-id");
		ok(is_iid(b.instance_id), "still a derived id");
		px_seed_content_free(&b);
	}

	/* Fields that do not reach the seed change nothing. */
	m2 = m;
	m2.vm.cpus = 8;
	m2.vm.memory = 1u << 30;
	m2.base.url = "https://example.org/other.vhd";
	m2.build.source_date_epoch = 12345;
	m2.cloud_init.instance_id = "auto";
	if (render(&m2, NULL, &b) == 0) {
		ok(px_streq(a.instance_id, b.instance_id) && px_streq(a.user_data, b.user_data) &&
		           px_streq(a.meta_data, b.meta_data),
		   "unrelated fields and instance_id 'auto' change nothing");
		px_seed_content_free(&b);
	}

	/* The hostname is part of the id. */
	m2 = m;
	m2.name = "other";
	if (render(&m2, NULL, &b) == 0) {
		ok(!px_streq(a.instance_id, b.instance_id), "a new name changes the instance-id");
		ok(px_streq(a.user_data, b.user_data), "but not the user-data");
		px_seed_content_free(&b);
	}

	/* The recipe's commands are part of the user-data, hence of the id. */
	char *extra_v[] = {"rc-update add pexi-boot default"};
	struct px_strv extra = strv(extra_v, 1);
	if (render(&m, &extra, &b) == 0) {
		ok(!px_streq(a.instance_id, b.instance_id), "extra runcmd changes the instance-id");
		px_seed_content_free(&b);
	}

	/* A pinned id is used verbatim. */
	m2 = m;
	m2.cloud_init.instance_id = "my-id: 1";
	if (render(&m2, NULL, &b) == 0) {
		is_str(b.instance_id, "my-id: 1", "a pinned instance-id is used as it is");
		cJSON *md = pyyaml_load(b.meta_data);
		is_str(jstr(jget(md, "instance-id")), "my-id: 1", "and written to meta-data");
		cJSON_Delete(md);
		ok(px_streq(a.user_data, b.user_data), "pinning leaves user-data alone");
		px_seed_content_free(&b);
	}
	px_seed_content_free(&a);
}

static void test_network_config(void)
{
	struct px_manifest m;
	base_manifest(&m);
	struct px_seed_content a, b;
	if (render(&m, NULL, &a) < 0)
		return;
	const char *nc = "version: 2\nethernets:\n  eth0:\n    dhcp4: true\n";
	m.cloud_init.network_config = (char *)nc;
	if (render(&m, NULL, &b) == 0) {
		is_str(b.network_config, nc, "network-config is passed through as written");
		ok(!px_streq(a.instance_id, b.instance_id), "and changes the instance-id");
		ok(px_streq(a.user_data, b.user_data), "but not the user-data");
		px_seed_content_free(&b);
	}
	px_seed_content_free(&a);

	struct px_err *err = NULL;
	m.cloud_init.network_config = "version: 2\nethernets: [unclosed\n";
	ok(px_cloudinit_render(&m, NULL, &b, &err) < 0, "network-config that is not YAML fails");
	like(err ? err->msg : NULL, "cloud_init.network_config:3:", "with its line");
	px_err_clear(&err);
	m.cloud_init.network_config = "just a string";
	ok(px_cloudinit_render(&m, NULL, &b, &err) < 0, "network-config must be a mapping");
	like(err ? err->msg : NULL, "must be a YAML mapping", "says so");
	px_err_free(err);
}

static void test_empty(void)
{
	struct px_manifest m;
	memset(&m, 0, sizeof(m));
	m.name = "bare";
	struct px_seed_content c;
	if (render(&m, NULL, &c) < 0)
		return;
	cJSON *ud = pyyaml_load(c.user_data);
	ok(cJSON_IsObject(ud) && cJSON_GetArraySize(ud) == 0,
	   "nothing configured: an empty cloud-config mapping");
	cJSON_Delete(ud);
	px_seed_content_free(&c);
}

/* Runs `cloud-init schema` on text; returns its exit status, stdout+stderr in *out. */
static int schema_check(const char *text, char **out)
{
	_cleanup_free_ char *path = xasprintf("%s/user-data", tmpdir);
	struct px_err *err = NULL;
	if (px_atomic_write_file(path, text, strlen(text), 0644, &err) < 0) {
		px_err_free(err);
		return -1;
	}
	const char *argv[] = {"cloud-init", "schema", "--config-file", path, NULL};
	struct px_spawn_result res;
	if (px_spawn(argv, 1, &res, &err) < 0) {
		px_err_free(err);
		return -1;
	}
	*out = xasprintf("%s%s", res.out ? res.out : "", res.errout ? res.errout : "");
	int status = res.exit_status;
	px_spawn_result_free(&res);
	return status;
}

static void test_schema(void)
{
	struct px_manifest m;
	base_manifest(&m);
	char *extra_v[] = {"rc-update add pexi-boot default"};
	struct px_strv extra = strv(extra_v, 1);
	struct px_seed_content c;
	if (render(&m, &extra, &c) < 0)
		return;
	_cleanup_free_ char *out = NULL;
	int status = schema_check(c.user_data, &out);
	if (!ok(status == 0 && strstr(out, "Valid cloud-config"),
	        "cloud-init schema accepts the rendered user-data"))
		printf("#   status %d: %s\n", status, out ? out : "");
	px_seed_content_free(&c);

	/* The hostile manifest too: quoting must not turn text into other types. */
	size_t n = PX_ARRAY_SIZE(hostile) - 1;
	m.cloud_init.runcmd = strv(hostile, n);
	m.cloud_init.user = "- user";
	if (render(&m, NULL, &c) == 0) {
		free(out);
		out = NULL;
		status = schema_check(c.user_data, &out);
		if (!ok(status == 0 && strstr(out, "Valid cloud-config"),
		        "cloud-init schema accepts hostile runcmd text"))
			printf("#   status %d: %s\n", status, out ? out : "");
		px_seed_content_free(&c);
	}

	/* The check can fail: a wrongly typed document is refused. */
	free(out);
	out = NULL;
	status = schema_check("#cloud-config\nruncmd: 3\n", &out);
	ok(status != 0 && out && strstr(out, "runcmd"), "cloud-init schema refuses a bad document");
}

/* The repository's example manifest, loaded by the real manifest parser, renders to
 * user-data that cloud-init accepts. */
static void test_example_manifest(void)
{
	const char *src = getenv("PEXI_SRC");
	_cleanup_free_ char *path = xasprintf("%s/pexi.yml.example", src ? src : ".");
	struct px_manifest *m = NULL;
	struct px_err *err = NULL;
	if (access(path, R_OK) != 0 || px_manifest_load(path, &m, &err) < 0) {
		tap_count++;
		printf("ok %d # SKIP cannot load '%s': %s\n", tap_count, path,
		       err ? err->msg : "missing");
		px_err_free(err);
		return;
	}
	struct px_seed_content c;
	if (ok(render(m, NULL, &c) == 0, "the example manifest renders")) {
		cJSON *ud = pyyaml_load(c.user_data);
		const cJSON *u = cJSON_GetArrayItem(jget(ud, "users"), 0);
		is_str(jstr(jget(u, "name")), m->cloud_init.user, "its user is created");
		cJSON_Delete(ud);
		ok(is_iid(c.instance_id), "instance_id auto is derived (%s)", c.instance_id);
		_cleanup_free_ char *out = NULL;
		int status = schema_check(c.user_data, &out);
		if (!ok(status == 0 && strstr(out, "Valid cloud-config"),
		        "cloud-init schema accepts the example's user-data"))
			printf("#   status %d: %s\n", status, out ? out : "");
		px_seed_content_free(&c);
	}
	px_manifest_free(m);
}

int main(void)
{
	if (access(PYTHON, X_OK) != 0) {
		printf("# needs %s (Debian's python3 with python3-yaml)\n", PYTHON);
		return 77;
	}
	const char *probe[] = {PYTHON, "-c", "import yaml", NULL};
	struct px_err *err = NULL;
	if (px_run(probe, NULL, &err) < 0) {
		px_err_free(err);
		printf("# needs python3-yaml for %s\n", PYTHON);
		return 77;
	}
	if (!px_have_program("cloud-init")) {
		printf("# needs 'cloud-init' (Debian package cloud-init)\n");
		return 77;
	}
	if (!mkdtemp(tmpdir)) {
		printf("# cannot create a temporary directory\n");
		return 1;
	}
	test_structure();
	test_hostile();
	test_invalid_utf8();
	test_instance_id();
	test_network_config();
	test_empty();
	test_schema();
	test_example_manifest();

	const char *rm[] = {"rm", "-rf", tmpdir, NULL};
	px_run(rm, NULL, &err);
	px_err_free(err);
	return done_testing();
}
