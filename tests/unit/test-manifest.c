/* The manifest parser: the shipped example, defaults, recipe merging, environment
 * interpolation, the JSON/text dumps, and every bad-manifest case with its exact message
 * (file:line:col included). */
#include <cJSON.h>
#include <ftw.h>

#include "core/common.h"

#include "core/spawn.h"
#include "manifest/manifest.h"
#include "tap.h"

#define SHA "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define MIN "base:\n  url: https://example.org/a.vhd\n  sha256: " SHA "\n"

static char tmpdir[] = "/tmp/pexi-manifest.XXXXXX";

static void write_file(const char *rel, const char *text)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", tmpdir, rel);
	_cleanup_free_ char *dir = xstrdup(path);
	*strrchr(dir, '/') = '\0';
	mkdir(dir, 0755);
	FILE *f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
		printf("Bail out! cannot write %s\n", path);
		exit(1);
	}
}

static struct px_manifest *parse_len(const char *text, size_t len, char **ret_msg)
{
	struct px_manifest *m = NULL;
	struct px_err *err = NULL;
	*ret_msg = NULL;
	if (px_manifest_parse(text, len, "t.yml", tmpdir, &m, &err) < 0) {
		*ret_msg = xstrdup(err ? err->msg : "(no error set)");
		if (err && err->exit_code != PX_EXIT_MANIFEST) {
			char *s = xasprintf("%s [exit code %d]", *ret_msg, err->exit_code);
			free(*ret_msg);
			*ret_msg = s;
		}
		px_err_free(err);
		return NULL;
	}
	return m;
}

static struct px_manifest *parse_ok(const char *text, const char *name)
{
	char *msg;
	struct px_manifest *m = parse_len(text, strlen(text), &msg);
	if (!ok(m != NULL, "%s parses", name))
		printf("#   error: %s\n", msg);
	free(msg);
	return m;
}

/* Checks that text fails with exactly 'want'. */
static void bad(const char *text, const char *want, const char *name)
{
	char *msg;
	struct px_manifest *m = parse_len(text, strlen(text), &msg);
	is_str(msg, want, name);
	px_manifest_free(m);
	free(msg);
}

static void test_example(void)
{
	const char *src = getenv("PEXI_SRC") ? getenv("PEXI_SRC") : ".";
	_cleanup_free_ char *path = xasprintf("%s/pexi.yml.example", src);
	struct px_manifest *m = NULL;
	struct px_err *err = NULL;
	int r = px_manifest_load(path, &m, &err);
	if (!ok(r == 0, "pexi.yml.example loads"))
		printf("#   %s\n", err->msg);
	px_err_free(err);
	if (!m)
		return;
	is_str(m->name, "sandbox", "example: name");
	is_str(px_arch_name(m->arch), "aarch64", "example: arch");
	is_int(m->recipes.n, 3, "example: three recipes applied");
	is_str(m->recipes.v[0], "alpine-minimal", "example: innermost recipe first");
	is_str(m->recipes.v[1], "pexi-browser", "example: then pexi-browser");
	is_str(m->recipes.v[2], "alpine-firefox", "example: then alpine-firefox");
	like(m->base.url, "nocloud_alpine-3.23.3-aarch64-uefi-cloudinit-r0.vhd", "example: url");
	is_int(strlen(m->base.sha256), 64, "example: sha256 length");
	is_int(m->base.format, PX_FORMAT_VHD, "example: format vhd");
	is_int(m->disk.size, 2ULL << 30, "example: disk 2G");
	is_str(m->boot.console, "hvc0", "example: console");
	is_str(m->cloud_init.datasource, "nocloud", "example: datasource");
	is_str(m->cloud_init.user, "alpine", "example: user");
	ok(m->cloud_init.instance_id == NULL, "example: instance_id auto is NULL");
	is_int(m->packages.add.n, 4, "example: four packages");
	if (m->packages.add.n == 4) {
		const char *want[] = {"firefox", "nodejs", "curl", "socat"};
		int same = 1;
		for (int i = 0; i < 4; i++)
			same = same && strcmp(m->packages.add.v[i], want[i]) == 0;
		ok(same, "example: firefox nodejs curl socat in order");
	}
	is_int(m->packages.repositories.n, 2, "example: main + community");
	like(m->packages.repositories.v[0], "/v3.23/main",
	     "example: main first (from the inner recipe)");
	like(m->packages.repositories.v[1], "/v3.23/community", "example: community appended");
	is_int(m->vm.cpus, 2, "example: cpus");
	is_int(m->vm.memory, 1ULL << 30, "example: memory 1GiB");
	is_str(m->vm.shared_dir, "./workspace", "example: shared_dir");
	is_int(m->vm.vsock_port, 5000, "example: vsock_port");
	is_int(m->pep.allow.n, 1, "example: one allowed domain");
	is_str(m->pep.allow.v[0], "example.com", "example: example.com allowed");
	is_str(m->pep.audit_log, "workspace/audit.jsonl", "example: audit log in the workspace");
	ok(m->dir[0] == '/', "example: dir is absolute (%s)", m->dir);
	px_manifest_free(m);
}

static void test_defaults(void)
{
	struct px_manifest *m = parse_ok(MIN, "minimal manifest");
	if (!m)
		return;
	is_str(m->name, "pexi", "default name");
#if defined(__aarch64__)
	is_int(m->arch, PX_ARCH_AARCH64, "default arch is the host's");
#else
	is_int(m->arch, PX_ARCH_X86_64, "default arch is the host's");
#endif
	is_int(m->base.format, PX_FORMAT_AUTO, "default format auto");
	is_int(m->disk.size, 2ULL << 30, "default disk 2G");
	is_int(m->disk.root_partition, 0, "default root_partition auto");
	ok(m->boot.console == NULL, "default console unset");
	is_str(m->cloud_init.datasource, "nocloud", "default datasource");
	ok(m->cloud_init.user == NULL && m->cloud_init.instance_id == NULL, "default user/id");
	is_int(m->packages.method, PX_PKG_OFFLINE, "default method offline");
	ok(!m->packages.allow_untrusted, "default allow_untrusted false");
	is_int(m->vm.backend, PX_BACKEND_AUTO, "default backend auto");
	is_int(m->vm.cpus, 2, "default cpus");
	is_int(m->vm.memory, 1ULL << 30, "default memory");
	is_int(m->vm.vsock_port, 5000, "default vsock_port");
	is_int(m->vm.accel, PX_ACCEL_AUTO, "default accel");
	is_int(m->pep.methods.n, 7, "default methods: seven");
	is_str(m->pep.methods.v[0], "GET", "default methods: GET first");
	is_int(m->pep.max_request_bytes, 10ULL << 20, "default max_request_bytes");
	is_int(m->pep.max_response_bytes, 64ULL << 20, "default max_response_bytes");
	is_int(m->pep.connect_timeout_ms, 10000, "default connect timeout");
	is_int(m->pep.total_timeout_ms, 60000, "default total timeout");
	is_int(m->pep.mode, PX_PEP_ENFORCE, "default mode enforce");
	is_str(m->build.dir, ".pexi/build", "default build.dir");
	is_int(m->build.source_date_epoch, -1, "default source_date_epoch unset");
	is_int(m->recipes.n, 0, "no recipes");
	px_manifest_free(m);
}

static void test_values(void)
{
	write_file("payload.txt", "hello\n");
	struct px_manifest *m = parse_ok(
	        MIN
	        "arch: x86_64\n"
	        "disk: {size: 512MiB, root_partition: 2}\n"
	        "boot: {kernel_args: [quiet, 'loglevel=3']}\n"
	        "cloud_init:\n"
	        "  instance_id: sandbox-1\n"
	        "  runcmd: ['echo hi']\n"
	        "  write_files:\n"
	        "    - {path: /etc/motd, content: hi, permissions: '0600', owner: 'root:root'}\n"
	        "    - {path: /etc/empty}\n"
	        "  network_config:\n"
	        "    version: 2\n"
	        "    ethernets: {eth0: {dhcp4: true, nameservers: {addresses: ['1.1.1.1']}}}\n"
	        "files:\n"
	        "  - {path: /etc/a, content: x, mode: 0755, uid: 1000, gid: 1000}\n"
	        "  - {path: /etc/b, source: payload.txt, mode: \"0600\"}\n"
	        "vm: {backend: qemu, accel: tcg, memory: 2G, cpus: 4, firmware: "
	        "/usr/share/OVMF.fd}\n"
	        "pep:\n"
	        "  allow: [Example.COM, '*.example.org']\n"
	        "  deny: [evil.example.com]\n"
	        "  allow_addresses: [10.0.0.0/8, '::1']\n"
	        "  methods: [GET, PUT]\n"
	        "  max_request_bytes: 1M\n"
	        "  max_response_bytes: 1048576\n"
	        "  timeouts: {connect: 500ms, total: 2m}\n"
	        "  mode: report\n"
	        "build: {source_date_epoch: 1700000000}\n",
	        "every section parses");
	if (!m)
		return;
	is_int(m->disk.size, 512ULL << 20, "disk.size 512MiB");
	is_int(m->disk.root_partition, 2, "root_partition 2");
	is_int(m->boot.kernel_args.n, 2, "kernel_args");
	is_str(m->cloud_init.instance_id, "sandbox-1", "instance_id string");
	is_int(m->cloud_init.n_write_files, 2, "write_files");
	is_str(m->cloud_init.write_files[0].permissions, "0600", "write_files permissions");
	is_str(m->cloud_init.write_files[1].content, "", "write_files content defaults to empty");
	like(m->cloud_init.network_config, "version: 2\n", "network_config kept as YAML text");
	like(m->cloud_init.network_config, "dhcp4: true", "network_config keeps booleans plain");
	like(m->cloud_init.network_config, "- \"1.1.1.1\"", "network_config quotes strings");
	is_int(m->n_files, 2, "files");
	is_int(m->files[0].mode, 0755, "plain 0755 is octal");
	is_int(m->files[0].uid, 1000, "uid");
	is_int(m->files[1].mode, 0600, "quoted \"0600\" is octal");
	_cleanup_free_ char *want_src = xasprintf("%s/payload.txt", tmpdir);
	is_str(m->files[1].source, want_src, "source resolved beside the manifest");
	is_int(m->files[1].line, 18, "file entry remembers its line");
	is_int(m->vm.accel, PX_ACCEL_TCG, "accel tcg");
	is_int(m->vm.backend, PX_BACKEND_QEMU, "backend qemu");
	is_str(m->pep.allow.v[0], "example.com", "host patterns lowercased");
	is_int(m->pep.methods.n, 2, "methods replace the default");
	is_int(m->pep.max_request_bytes, 1ULL << 20, "max_request_bytes 1M");
	is_int(m->pep.connect_timeout_ms, 500, "connect 500ms");
	is_int(m->pep.total_timeout_ms, 120000, "total 2m");
	is_int(m->pep.mode, PX_PEP_REPORT, "mode report");
	is_int(m->build.source_date_epoch, 1700000000, "source_date_epoch");

	/* The dumps. */
	char *json = NULL;
	ok(px_manifest_dump_json(m, &json, NULL) == 0, "dump_json succeeds");
	cJSON *j = cJSON_Parse(json);
	ok(j != NULL, "dump_json is valid JSON");
	ok(j && j->child && strcmp(j->child->string, "recipes") == 0 &&
	           strcmp(j->child->next->string, "name") == 0,
	   "dump_json keeps key order");
	cJSON *vm = cJSON_GetObjectItemCaseSensitive(j, "vm");
	is_int(cJSON_GetObjectItemCaseSensitive(vm, "memory")->valuedouble, 2ULL << 30,
	       "dump_json: vm.memory in bytes");
	cJSON *files = cJSON_GetObjectItemCaseSensitive(j, "files");
	is_str(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(files, 0), "mode")->valuestring,
	       "0755", "dump_json: mode as octal text");
	char *json2 = NULL;
	px_manifest_dump_json(m, &json2, NULL);
	is_str(json2, json, "dump_json is stable");
	cJSON_Delete(j);
	free(json);
	free(json2);

	char *text = NULL;
	size_t tlen = 0;
	FILE *f = open_memstream(&text, &tlen);
	px_manifest_dump_text(m, f);
	fclose(f);
	like(text, "\nvm:\n  backend: qemu\n", "dump_text: vm section");
	like(text, "memory: 2147483648  # 2.0 GiB", "dump_text: sizes annotated");
	like(text, "\nfiles:\n  - path: /etc/a\n    content: x\n", "dump_text: list entries");
	/* PyYAML, not pexi, reads the text back: it must be YAML equal to the JSON dump. */
	if (access("/usr/bin/python3", X_OK) == 0) {
		_cleanup_free_ char *tpath = xasprintf("%s/dump.txt", tmpdir);
		_cleanup_free_ char *jpath = xasprintf("%s/dump.json", tmpdir);
		FILE *tf = fopen(tpath, "w"), *jf = fopen(jpath, "w");
		char *js = NULL;
		px_manifest_dump_json(m, &js, NULL);
		if (tf && jf && js) {
			fputs(text, tf);
			fputs(js, jf);
		}
		if (tf)
			fclose(tf);
		if (jf)
			fclose(jf);
		free(js);
		const char *argv[] = {"/usr/bin/python3",
		                      "-c",
		                      "import json, sys, yaml\n"
		                      "t = yaml.safe_load(open(sys.argv[1]))\n"
		                      "j = json.load(open(sys.argv[2]))\n"
		                      "sys.exit(0 if t == j else 'text and JSON dumps differ')\n",
		                      tpath,
		                      jpath,
		                      NULL};
		struct px_err *perr = NULL;
		if (!ok(px_run(argv, NULL, &perr) == 0,
		        "dump_text is YAML equal to dump_json (PyYAML)"))
			printf("#   %s\n", perr->msg);
		px_err_free(perr);
	} else {
		ok(0, "dump_text check needs /usr/bin/python3 with python3-yaml");
	}
	free(text);
	px_manifest_free(m);
}

static void test_recipes(void)
{
	write_file("recipes/base.yml", "vm: {cpus: 4, memory: 2G}\n"
	                               "boot: {console: ttyS0, kernel_args: [quiet]}\n"
	                               "packages:\n  repositories: ['https://r.example/main']\n"
	                               "  add: [a]\n"
	                               "pep: {allow: [one.example]}\n");
	write_file("recipes/top.yml", "recipe: base\npackages: {add: [t]}\n");
	write_file("recipes/other.yml", "vm: {cpus: 6}\npackages: {add: [o]}\n");
	struct px_manifest *m = parse_ok(MIN "recipe: base\n"
	                                     "vm: {cpus: 8}\n"
	                                     "packages: {add: [b]}\n"
	                                     "pep: {allow: [two.example]}\n",
	                                 "manifest over a recipe");
	if (m) {
		is_int(m->vm.cpus, 8, "merge: the manifest's scalar wins");
		is_int(m->vm.memory, 2ULL << 30, "merge: the recipe's scalar stays where unset");
		is_int(m->packages.add.n, 2, "merge: lists append");
		is_str(m->packages.add.v[0], "a", "merge: recipe items first");
		is_str(m->packages.add.v[1], "b", "merge: then the manifest's");
		is_str(m->pep.allow.v[1], "two.example", "merge: nested lists append");
		is_str(m->boot.console, "ttyS0", "merge: sibling keys of a merged map kept");
		px_manifest_free(m);
	}
	m = parse_ok(MIN "recipe: [top, other]\nboot: {console: null}\n",
	             "nested and listed recipes");
	if (m) {
		is_int(m->recipes.n, 3, "recipes applied: base, top, other");
		is_str(m->recipes.v[0], "base", "innermost recipe first");
		is_str(m->recipes.v[2], "other", "later recipe last");
		is_int(m->vm.cpus, 6, "a later recipe wins over an earlier one");
		is_int(m->packages.add.n, 3, "lists from all recipes");
		is_str(m->packages.add.v[2], "o", "in recipe order");
		ok(m->boot.console == NULL, "null in the manifest resets a recipe's value");
		px_manifest_free(m);
	}
	m = parse_ok(MIN "recipe: [base, top]\n", "a recipe named twice applies once");
	if (m) {
		is_int(m->packages.add.n, 2, "no duplicated list items (a, t)");
		px_manifest_free(m);
	}

	bad("recipe: base\nname: x\n", "manifest 't.yml':1:1: missing required section 'base'",
	    "a merged mapping's errors point at the manifest, not the recipe");
	write_file("recipes/cyc-a.yml", "recipe: cyc-b\n");
	write_file("recipes/cyc-b.yml", "recipe: cyc-a\n");
	_cleanup_free_ char *b_path = xasprintf("recipe '%s/recipes/cyc-b.yml':1:9: recipe cycle: "
	                                        "cyc-a -> cyc-b -> cyc-a",
	                                        tmpdir);
	bad(MIN "recipe: cyc-a\n", b_path, "recipe cycle detected, named in the recipe");
	write_file("recipes/self.yml", "recipe: self\n");
	_cleanup_free_ char *self = xasprintf("recipe '%s/recipes/self.yml':1:9: recipe cycle: "
	                                      "self -> self",
	                                      tmpdir);
	bad(MIN "recipe: self\n", self, "a recipe naming itself");
	for (int i = 0; i < 10; i++) {
		_cleanup_free_ char *name = xasprintf("recipes/deep%d.yml", i);
		_cleanup_free_ char *text = xasprintf("recipe: deep%d\n", i + 1);
		write_file(name, text);
	}
	_cleanup_free_ char *deep = xasprintf("recipe '%s/recipes/deep7.yml':1:9: recipes nest "
	                                      "more than 8 levels deep at 'deep8'",
	                                      tmpdir);
	bad(MIN "recipe: deep0\n", deep, "recipe depth capped");
	write_file("recipes/typo.yml", "vm:\n  cpu: 2\n");
	_cleanup_free_ char *typo = xasprintf("recipe '%s/recipes/typo.yml':2:3: unknown key "
	                                      "'cpu' in 'vm' (did you mean 'cpus'?)",
	                                      tmpdir);
	bad(MIN "recipe: typo\n", typo, "an error inside a recipe names the recipe file");
	write_file("recipes/broken.yml", "vm: [\n");
	char *msg;
	px_manifest_free(parse_len(MIN "recipe: broken\n", strlen(MIN) + 15, &msg));
	like(msg, "recipes/broken.yml':2:1: invalid YAML", "a recipe's syntax error names it");
	free(msg);
	px_manifest_free(parse_len(MIN "recipe: nosuch\n", strlen(MIN) + 15, &msg));
	_cleanup_free_ char *nf = xasprintf("manifest 't.yml':4:9: recipe 'nosuch' not found "
	                                    "(looked in '%s/recipes'",
	                                    tmpdir);
	like(msg, nf, "a missing recipe is named with where pexi looked");
	free(msg);
	bad(MIN "recipe: ../etc/passwd\n",
	    "manifest 't.yml':4:9: invalid recipe name '../etc/passwd' (letters, digits, '.', '_' "
	    "and '-'; it names recipes/NAME.yml)",
	    "recipe names cannot escape recipes/");
	bad(MIN "recipe: {a: b}\n",
	    "manifest 't.yml':4:9: 'recipe' must be a recipe name or a list of names, not a "
	    "mapping",
	    "recipe of the wrong type");
}

static void test_env(void)
{
	setenv("PX_TEST_KEY", "ssh-ed25519 AAAAC3Nza test@host", 1);
	setenv("PX_TEST_DIR", "/srv/work", 1);
	unsetenv("PX_TEST_UNSET");
	struct px_manifest *m = parse_ok(MIN "cloud_init: {ssh_keys: ['${PX_TEST_KEY}']}\n"
	                                     "vm: {shared_dir: '${PX_TEST_DIR}/ws'}\n"
	                                     "build: {dir: 'cost-$$5-${PX_TEST_DIR}'}\n"
	                                     "pep: {audit_log: '${PX_TEST_DIR}/audit.jsonl'}\n"
	                                     "boot: {console: 'x${PX_TEST_DIR}'}\n",
	                                 "interpolation");
	if (m) {
		is_str(m->cloud_init.ssh_keys.v[0], "ssh-ed25519 AAAAC3Nza test@host",
		       "ssh_keys entries interpolate");
		is_str(m->vm.shared_dir, "/srv/work/ws", "vm.shared_dir interpolates");
		is_str(m->build.dir, "cost-$5-/srv/work", "build.dir interpolates, $$ is $");
		is_str(m->pep.audit_log, "/srv/work/audit.jsonl", "pep.audit_log interpolates");
		is_str(m->boot.console, "x${PX_TEST_DIR}", "elsewhere ${ is literal");
		px_manifest_free(m);
	}
	bad(MIN "vm:\n  shared_dir: ${PX_TEST_UNSET}/x\n",
	    "manifest 't.yml':5:15: 'vm.shared_dir': environment variable 'PX_TEST_UNSET' is not "
	    "set",
	    "an unset variable is an error naming it");
	bad(MIN "build: {dir: 'a${oops'}\n",
	    "manifest 't.yml':4:14: 'build.dir': unclosed '${' (write '$${' for a literal)",
	    "an unclosed ${ is an error");
	bad(MIN "build: {dir: '${1X}'}\n",
	    "manifest 't.yml':4:14: 'build.dir': invalid variable name '${1X}'",
	    "a bad variable name is an error");
}

static void test_errors(void)
{
	bad(MIN "pakages:\n  add: [x]\n",
	    "manifest 't.yml':4:1: unknown key 'pakages' (did you mean 'packages'?)",
	    "unknown key with did-you-mean");
	bad(MIN "vm:\n  cpu: 2\n",
	    "manifest 't.yml':5:3: unknown key 'cpu' in 'vm' (did you mean 'cpus'?)",
	    "unknown nested key with did-you-mean");
	bad(MIN "disk:\n  sise: 2G\n",
	    "manifest 't.yml':5:3: unknown key 'sise' in 'disk' (did you mean 'size'?)",
	    "substitution typo");
	bad(MIN "zzz: 1\n",
	    "manifest 't.yml':4:1: unknown key 'zzz' (expected one of: recipe, name, arch, base, "
	    "disk, boot, cloud_init, packages, files, vm, pep, build)",
	    "unknown key without a close match lists the keys");
	bad(MIN "vm:\n  cpus: two\n",
	    "manifest 't.yml':5:9: 'vm.cpus' must be an integer (got 'two')",
	    "wrong type: word for integer");
	bad(MIN "vm:\n  cpus: [2]\n",
	    "manifest 't.yml':5:9: 'vm.cpus' must be an integer, not a list",
	    "wrong type: list for integer");
	bad(MIN "vm:\n  cpus: 1000\n",
	    "manifest 't.yml':5:9: 'vm.cpus' must be between 1 and 256 (got 1000)",
	    "integer out of range");
	bad(MIN "vm:\n  vsock_port: 99999999999999999999999\n",
	    "manifest 't.yml':5:15: 'vm.vsock_port' must be an integer (got "
	    "'99999999999999999999999')",
	    "integer overflow");
	bad(MIN "vm: [1]\n", "manifest 't.yml':4:5: 'vm' must be a mapping, not a list",
	    "wrong type: list for section");
	bad(MIN "packages:\n  add: firefox\n",
	    "manifest 't.yml':5:8: 'packages.add' must be a list of strings, not a string",
	    "wrong type: string for list");
	bad(MIN "packages:\n  repositories: ['https://r.example/main']\n  add: [{a: 1}]\n",
	    "manifest 't.yml':6:9: 'packages.add[0]' must be a string, not a mapping",
	    "wrong type: mapping in a string list");
	bad(MIN "packages:\n  allow_untrusted: yes\n",
	    "manifest 't.yml':5:20: 'packages.allow_untrusted' must be true or false (got 'yes')",
	    "wrong type: yes for boolean");
	bad(MIN "arch: aarch46\n",
	    "manifest 't.yml':4:7: 'arch': unknown value 'aarch46' (did you mean 'aarch64'?)",
	    "enum typo with did-you-mean");
	bad(MIN "vm: {backend: vbox}\n",
	    "manifest 't.yml':4:15: 'vm.backend': unknown value 'vbox' (expected one of: auto, "
	    "qemu, avf)",
	    "enum value listed");
	bad(MIN "disk:\n  size: 2X\n",
	    "manifest 't.yml':5:9: 'disk.size': invalid size '2X': unknown unit 'X' (use K, M, G, "
	    "T, KiB..TiB or KB..TB)",
	    "bad size unit");
	bad(MIN "disk:\n  size: lots\n",
	    "manifest 't.yml':5:9: 'disk.size': invalid size 'lots' (expected a number such as 2G "
	    "or 512MiB)",
	    "bad size word");
	bad(MIN "disk:\n  size: 1K\n",
	    "manifest 't.yml':5:9: 'disk.size' must be between 16.0 MiB and 64.0 TiB (got '1K')",
	    "size out of range");
	bad(MIN "disk:\n  size: 20000001K\n",
	    "manifest 't.yml':5:9: 'disk.size' must be a whole number of MiB (partitions are "
	    "aligned to 1 MiB)",
	    "size not MiB-aligned");
	bad(MIN "pep:\n  timeouts: {connect: 10x}\n",
	    "manifest 't.yml':5:23: 'pep.timeouts.connect': invalid duration '10x' (a number with "
	    "ms, s, m or h, e.g. 10s or 500ms)",
	    "bad duration");
	bad(MIN "pep:\n  timeouts: {connect: 2m, total: 1m}\n",
	    "manifest 't.yml':5:3: 'pep.timeouts.connect' is longer than 'pep.timeouts.total'",
	    "connect timeout beyond total");
	bad(MIN "pep:\n  methods: []\n",
	    "manifest 't.yml':5:12: 'pep.methods' is empty: list at least one method (the default "
	    "is GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS)",
	    "empty methods");
	bad(MIN "pep:\n  methods: [get]\n",
	    "manifest 't.yml':5:13: 'pep.methods[0]': invalid HTTP method 'get' (uppercase "
	    "letters, e.g. GET)",
	    "lowercase method");
	bad(MIN "pep:\n  allow: ['exa mple.com']\n",
	    "manifest 't.yml':5:11: 'pep.allow[0]': invalid host pattern 'exa mple.com' (a name "
	    "such as 'example.com', '*.example.com' (subdomains), '**.example.com' (the name and "
	    "its subdomains), optionally with ':PORT')",
	    "bad host pattern");
	bad(MIN "pep:\n  allow_addresses: [10.0.0.0/33]\n",
	    "manifest 't.yml':5:21: 'pep.allow_addresses[0]': invalid address '10.0.0.0/33' (an "
	    "IPv4 or IPv6 address, optionally with a /prefix or a port, e.g. 10.0.0.0/8, "
	    "127.0.0.1:8080 or [::1]:8080)",
	    "bad CIDR");
	bad(MIN "pep:\n  allow_addresses: ['127.0.0.1:65536']\n",
	    "manifest 't.yml':5:21: 'pep.allow_addresses[0]': invalid address '127.0.0.1:65536' "
	    "(an "
	    "IPv4 or IPv6 address, optionally with a /prefix or a port, e.g. 10.0.0.0/8, "
	    "127.0.0.1:8080 or [::1]:8080)",
	    "bad address port");

	/* base */
	bad("base:\n  url: ftp://example.org/a.vhd\n  sha256: " SHA "\n",
	    "manifest 't.yml':2:8: 'base.url': unsupported URL scheme 'ftp' in "
	    "'ftp://example.org/a.vhd' (use http, https or file)",
	    "bad URL scheme");
	bad("base:\n  url: https:///a.vhd\n  sha256: " SHA "\n",
	    "manifest 't.yml':2:8: 'base.url': URL 'https:///a.vhd' has no host",
	    "http(s) URL without a host");
	bad("base:\n  url: example.org/a.vhd\n  sha256: " SHA "\n",
	    "manifest 't.yml':2:8: 'base.url': 'example.org/a.vhd' is not a URL (expected "
	    "http://, https:// or file://)",
	    "not a URL");
	bad("base:\n  url: 'https://ex ample.org/'\n  sha256: " SHA "\n",
	    "manifest 't.yml':2:8: 'base.url': URL 'https://ex ample.org/' contains a space, "
	    "control or non-ASCII character (percent-encode it)",
	    "URL with a space");
	bad("base:\n  url: https://u:p@example.org/a\n  sha256: " SHA "\n",
	    "manifest 't.yml':2:8: 'base.url': URL 'https://u:p@example.org/a' carries "
	    "credentials (user@host): keep them out of the manifest",
	    "URL with credentials");
	bad("base:\n  url: https://example.org:99999/a\n  sha256: " SHA "\n",
	    "manifest 't.yml':2:8: 'base.url': URL 'https://example.org:99999/a' has an invalid "
	    "port",
	    "URL with a bad port");
	bad("base:\n  url: file://host/a\n  sha256: " SHA "\n",
	    "manifest 't.yml':2:8: 'base.url': file URL 'file://host/a' must name an absolute path "
	    "(file:///path)",
	    "file URL with a host");
	struct px_manifest *m = parse_ok(
	        "base:\n  url: 'http://[::1]:8080/x.vhd'\n  sha256: " SHA "\n", "IPv6 URL");
	px_manifest_free(m);
	m = parse_ok("base:\n  url: file:///tmp/x.raw\n  sha256: " SHA "\n", "file URL");
	px_manifest_free(m);
	bad("base:\n  url: https://example.org/a\n  sha256: abc123\n",
	    "manifest 't.yml':3:11: 'base.sha256' must be 64 hexadecimal digits (got 6 "
	    "characters)",
	    "short sha256");
	bad("base:\n  url: https://example.org/a\n  sha256: "
	    "g123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
	    "manifest 't.yml':3:11: 'base.sha256' must be 64 hexadecimal digits (got non-hex text, "
	    "64 characters)",
	    "non-hex sha256");
	m = parse_ok("base:\n  url: https://example.org/a\n  sha256: "
	             "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF\n",
	             "uppercase sha256");
	if (m)
		is_str(m->base.sha256, SHA, "sha256 lowercased");
	px_manifest_free(m);
	bad("base:\n  url: https://example.org/a\n",
	    "manifest 't.yml':2:3: missing required key 'base.sha256'", "missing sha256");
	bad("name: x\n", "manifest 't.yml':1:1: missing required section 'base'", "missing base");
	bad("base:\n  url: https://example.org/a\n  sha256:\n",
	    "manifest 't.yml':2:3: missing required key 'base.sha256'", "empty sha256 is missing");

	/* YAML level */
	bad("name: a\n" MIN "name: b\n",
	    "manifest 't.yml':5:1: duplicate key 'name' (first defined at 1:1)", "duplicate key");
	bad(MIN "vm:\n  cpus: 1\n  memory: 1G\n  cpus: 2\n",
	    "manifest 't.yml':7:3: duplicate key 'cpus' (first defined at 5:3)",
	    "duplicate nested key");
	bad(MIN "vm: {cpus: [1, 2}\n",
	    "manifest 't.yml':4:17: invalid YAML: did not find expected ',' or ']' (while parsing "
	    "a flow sequence at 4:12)",
	    "YAML syntax error with libyaml's position");
	bad("name: a\n  bad: indent\n",
	    "manifest 't.yml':2:6: invalid YAML: mapping values are not allowed in this context",
	    "YAML indentation error");
	bad("name: 'unterminated\n",
	    "manifest 't.yml':2:1: invalid YAML: found unexpected end of stream (while scanning a "
	    "quoted scalar at 1:7)",
	    "unterminated quote");
	bad("", "manifest 't.yml': file is empty (expected a mapping of sections)", "empty file");
	bad("# only a comment\n\n",
	    "manifest 't.yml': file is empty (expected a mapping of sections)", "comments only");
	bad("---\n", "manifest 't.yml': file is empty (expected a mapping of sections)",
	    "an empty document");
	bad("- a\n- b\n",
	    "manifest 't.yml':1:1: the manifest must be a mapping of sections (name, base, ...), "
	    "not a list",
	    "top level is a list");
	bad("just text\n",
	    "manifest 't.yml':1:1: the manifest must be a mapping of sections (name, base, ...), "
	    "not a string",
	    "top level is a string");
	bad(MIN "---\nname: x\n",
	    "manifest 't.yml':4:1: a second YAML document ('---'): a manifest is one document",
	    "two documents");
	bad("x: &a [1, 2]\ny: *a\n",
	    "manifest 't.yml':2:4: YAML alias '*a' is not supported (aliases are refused so a "
	    "manifest cannot expand beyond its size): repeat the value",
	    "aliases refused");
	bad(MIN "? [a]\n: b\n", "manifest 't.yml':4:3: mapping keys must be strings, not a list",
	    "complex key refused");
	bad(MIN "name: \"a\\0b\"\n", "manifest 't.yml':4:7: strings may not contain NUL characters",
	    "escaped NUL refused");

	char *deep = xmalloc(200);
	memset(deep, '[', 100);
	memcpy(deep + 100, "\n", 2);
	bad(deep, "manifest 't.yml':1:33: nesting is too deep (the limit is 32 levels)",
	    "deep nesting capped");
	free(deep);

	char *msg;
	size_t big_len = 10u << 20;
	char *big = xmalloc(big_len);
	memset(big, '#', big_len);
	px_manifest_free(parse_len(big, big_len, &msg));
	is_str(msg,
	       "manifest 't.yml': file is too large (10485760 bytes; the limit is 1048576 bytes, 1 "
	       "MiB)",
	       "a 10 MB input is refused");
	free(msg);
	free(big);

	static const char nul[] = "name: a\nb\0c: d\n";
	px_manifest_free(parse_len(nul, sizeof(nul) - 1, &msg));
	is_str(msg,
	       "manifest 't.yml':2:2: binary file: contains a NUL byte at offset 9 (a manifest is "
	       "UTF-8 text)",
	       "a NUL byte means binary");
	free(msg);
	bad("name: caf\xe9\n",
	    "manifest 't.yml':1:10: binary file: invalid UTF-8 byte 0xe9 at offset 9 (a manifest "
	    "is UTF-8 text)",
	    "invalid UTF-8");
	bad("name: \xed\xa0\x80\n",
	    "manifest 't.yml':1:7: binary file: invalid UTF-8 byte 0xed at offset 6 (a manifest "
	    "is UTF-8 text)",
	    "UTF-8 surrogate refused");
	m = parse_ok(MIN "cloud_init: {user: alpine, runcmd: ['echo h\xc3\xa9llo']}\n",
	             "valid UTF-8 accepted");
	px_manifest_free(m);

	/* files */
	bad(MIN "files:\n  - {path: /etc/a, content: x, template: y}\n",
	    "manifest 't.yml':5:5: 'files[0]' needs exactly one of 'content', 'source', "
	    "'template' or 'symlink' (found 2)",
	    "files: two of content/source/template");
	bad(MIN "files:\n  - {path: /etc/a}\n",
	    "manifest 't.yml':5:5: 'files[0]' needs exactly one of 'content', 'source', "
	    "'template' or 'symlink' (found 0)",
	    "files: none of content/source/template");
	bad(MIN "files:\n  - {content: x}\n",
	    "manifest 't.yml':5:5: missing required key 'files[0].path'", "files: missing path");
	bad(MIN "files:\n  - {path: etc/a, content: x}\n",
	    "manifest 't.yml':5:12: 'files[0].path': 'etc/a' must be an absolute path inside the "
	    "guest (starting with '/')",
	    "files: relative guest path");
	bad(MIN "files:\n  - {path: /etc/../a, content: x}\n",
	    "manifest 't.yml':5:12: 'files[0].path': '/etc/../a' may not contain '.' or '..' "
	    "components",
	    "files: dot-dot guest path");
	bad(MIN "files:\n  - {path: /a, content: x, mode: 0999}\n",
	    "manifest 't.yml':5:34: 'files[0].mode': invalid mode '0999' (octal permission bits "
	    "such as 0644)",
	    "files: bad mode");
	_cleanup_free_ char *nosrc = xasprintf(
	        "manifest 't.yml':5:24: 'files[0].source': '%s/missing.txt' is not a readable file",
	        tmpdir);
	bad(MIN "files:\n  - {path: /a, source: missing.txt}\n", nosrc, "files: missing source");
	bad(MIN "files:\n  - {path: /a, template: ../x}\n",
	    "manifest 't.yml':5:26: 'files[0].template': '../x' must be a relative name under "
	    "templates/ without '..'",
	    "files: template escaping templates/");
	bad(MIN "files:\n  - [a]\n",
	    "manifest 't.yml':5:5: 'files[0]' must be a mapping, not a list",
	    "files: entry of the wrong type");
	bad(MIN "cloud_init:\n  write_files: [{path: /a, permissions: '9'}]\n",
	    "manifest 't.yml':5:41: 'cloud_init.write_files[0].permissions': invalid permissions "
	    "'9' (octal such as \"0644\")",
	    "write_files: bad permissions");
	bad(MIN "cloud_init:\n  datasource: ec2\n",
	    "manifest 't.yml':5:15: 'cloud_init.datasource': unsupported datasource 'ec2' (only "
	    "'nocloud' is supported)",
	    "unsupported datasource");
	bad(MIN "cloud_init:\n  user: Root\n",
	    "manifest 't.yml':5:9: 'cloud_init.user': invalid user name 'Root' (lowercase letters, "
	    "digits, '_' and '-', at most 32)",
	    "bad user name");
	bad(MIN "name: 'my box'\n",
	    "manifest 't.yml':4:7: 'name': invalid name 'my box' (1-63 letters, digits, '.', '_' "
	    "or '-', starting with a letter or digit)",
	    "bad name");
	bad(MIN "packages:\n  add: [firefox]\n",
	    "manifest 't.yml':5:3: 'packages.add' lists packages but 'packages.repositories' is "
	    "empty",
	    "packages without repositories");
	bad(MIN "packages:\n  repositories: [https://r.example/main]\n  add: ['fire fox']\n",
	    "manifest 't.yml':6:9: 'packages.add[0]': invalid package 'fire fox' (a name such as "
	    "'firefox', optionally with a version constraint such as 'nodejs>=20')",
	    "bad package name");
	bad(MIN "disk: {root_partition: first}\n",
	    "manifest 't.yml':4:24: 'disk.root_partition' must be 'auto' or a partition number "
	    "(got 'first')",
	    "bad root_partition");
	bad(MIN "build: {source_date_epoch: -5}\n",
	    "manifest 't.yml':4:28: 'build.source_date_epoch' must be an integer (got '-5')",
	    "negative source_date_epoch");
}

static void test_load_errors(void)
{
	struct px_manifest *m = NULL;
	struct px_err *err = NULL;
	_cleanup_free_ char *missing = xasprintf("%s/nope.yml", tmpdir);
	px_manifest_load(missing, &m, &err);
	_cleanup_free_ char *want =
	        xasprintf("cannot read manifest '%s': No such file or directory (start from "
	                  "pexi.yml.example, or name a manifest with -f)",
	                  missing);
	is_str(err ? err->msg : NULL, want, "a missing file is a clear error that says what to do");
	is_int(err ? err->exit_code : 0, PX_EXIT_MANIFEST, "with the manifest exit code");
	px_err_clear(&err);

	_cleanup_free_ char *big = xasprintf("%s/big.yml", tmpdir);
	FILE *f = fopen(big, "w");
	for (int i = 0; f && i < 10 * 1024; i++)
		fprintf(f, "%01023d\n", 0);
	if (f)
		fclose(f);
	px_manifest_load(big, &m, &err);
	_cleanup_free_ char *want_big = xasprintf("manifest '%s': file is too large (10485760 "
	                                          "bytes; the limit is 1048576 bytes, 1 MiB)",
	                                          big);
	is_str(err ? err->msg : NULL, want_big, "a 10 MB file is refused before reading");
	px_err_clear(&err);

	px_manifest_load(tmpdir, &m, &err);
	_cleanup_free_ char *want_dir =
	        xasprintf("manifest '%s' is a directory, not a file", tmpdir);
	is_str(err ? err->msg : NULL, want_dir, "a directory is refused");
	px_err_clear(&err);
	ok(m == NULL, "nothing returned on failure");
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

static void test_policy(void)
{
	_cleanup_free_ char *path = xasprintf("%s/policy.yml", tmpdir);
	write_file("policy.yml", "allow: [Example.com]\n"
	                         "timeouts: {connect: 2s}\n"
	                         "max_response_bytes: 5M\n"
	                         "mode: report\n");
	struct px_manifest *m = NULL;
	struct px_err *err = NULL;
	if (!ok(px_manifest_load_pep(path, &m, &err) == 0, "a standalone policy loads"))
		printf("#   %s\n", err->msg);
	px_err_clear(&err);
	if (m) {
		is_str(m->pep.allow.v[0], "example.com", "policy: allow");
		is_int(m->pep.connect_timeout_ms, 2000, "policy: timeouts");
		is_int(m->pep.total_timeout_ms, 60000, "policy: default total timeout");
		is_int(m->pep.max_response_bytes, 5ULL << 20, "policy: size");
		is_int(m->pep.mode, PX_PEP_REPORT, "policy: mode");
		is_int(m->pep.methods.n, 7, "policy: default methods");
		px_manifest_free(m);
		m = NULL;
	}
	write_file("policy.yml", "allow: [a.example]\nalow: [b.example]\n");
	px_manifest_load_pep(path, &m, &err);
	_cleanup_free_ char *want =
	        xasprintf("policy '%s':2:1: unknown key 'alow' (did you mean 'allow'?)", path);
	is_str(err ? err->msg : NULL, want, "policy: unknown key named in the policy file");
	px_err_clear(&err);
	write_file("policy.yml", "methods: []\n");
	px_manifest_load_pep(path, &m, &err);
	_cleanup_free_ char *want2 = xasprintf(
	        "policy '%s':1:10: 'methods' is empty: list at "
	        "least one method (the default is GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS)",
	        path);
	is_str(err ? err->msg : NULL, want2, "policy: checks as in a manifest");
	px_err_clear(&err);
	write_file("policy.yml", "- a\n");
	px_manifest_load_pep(path, &m, &err);
	like(err ? err->msg : NULL, "a policy must be a mapping",
	     "policy: top level must be a mapping");
	px_err_clear(&err);
	ok(m == NULL, "policy: nothing returned on failure");
}

int main(void)
{
	if (!mkdtemp(tmpdir)) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	test_example();
	test_defaults();
	test_values();
	test_recipes();
	test_env();
	test_errors();
	test_load_errors();
	test_policy();
	nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	return done_testing();
}
