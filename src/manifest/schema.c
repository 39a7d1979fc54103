#include <libgen.h>
#include <ctype.h>
#include <strings.h>

#include "core/common.h"

#include "core/size.h"
#include "manifest/check.h"
#include "manifest/datadir.h"
#include "manifest/interp.h"
#include "manifest/manifest.h"
#include "manifest/schema.h"
#include "manifest/suggest.h"
#include "manifest/yemit.h"
#include "manifest/ynode.h"

/* Defaults; pexi.schema.json documents the same values. */
#define DEFAULT_DISK_SIZE    (2ULL << 30)
#define DEFAULT_CPUS         2
#define DEFAULT_MEMORY       (1ULL << 30)
#define DEFAULT_VSOCK_PORT   5000
#define DEFAULT_MAX_REQUEST  (10ULL << 20)
#define DEFAULT_MAX_RESPONSE (64ULL << 20)
#define DEFAULT_CONNECT_MS   10000
#define DEFAULT_TOTAL_MS     60000
#define DEFAULT_BUILD_DIR    ".pexi/build"
#define DEFAULT_FILE_MODE    0644
/* The default allowlist: every ordinary method; CONNECT and TRACE stay out. */
static const char *const default_methods[] = {"GET",   "HEAD",   "POST",   "PUT",
                                              "PATCH", "DELETE", "OPTIONS"};

enum ftype {
	FT_SECTION,     /* a nested mapping of 'sub' fields, offsets from the same base */
	FT_LIST,        /* a list of mappings of 'sub' fields, one element struct each */
	FT_STR,         /* a string, 'check'ed */
	FT_STRV,        /* a list of strings, each 'check'ed */
	FT_BOOL,        /* true | false */
	FT_U32,         /* a decimal integer in [min, max] */
	FT_I64,         /* a decimal integer in [min, max] */
	FT_SIZE,        /* bytes: 2G, 512MiB, or an integer, in [min, max] */
	FT_MS,          /* a duration: 10s, 500ms, 2m, 1h, or seconds; stored in ms */
	FT_ENUM,        /* one of 'names'; stored as an int */
	FT_PARTITION,   /* auto | a partition number */
	FT_INSTANCE_ID, /* auto (NULL) | a string */
	FT_MODE,        /* octal permission bits, 0644 or "0644" */
	FT_YAML,        /* any YAML, kept as YAML text */
	FT_IGNORE,      /* handled before the walk (recipe) */
};

#define F_REQUIRED 1u
#define F_INTERP   2u /* ${VAR} is expanded */

struct conv;

struct field {
	const char *key;
	enum ftype type;
	size_t off;
	unsigned flags;
	px_check_fn check;
	const char *const *names;
	uint64_t min, max;
	const struct field *sub;
	/* FT_LIST: where the array and its count live, element size, per-element hooks. */
	size_t n_off, elem_size;
	void (*elem_init)(void *elem, const struct px_ynode *n);
	int (*elem_done)(struct conv *c, void *elem, const struct px_ynode *n, const char *what,
	                 struct px_err **err);
};

struct conv {
	struct px_manifest *m;
};

/* Enum names, indexed by the enum's value. */
static const char *const arch_names[] = {"x86_64", "aarch64", NULL};
static const char *const format_names[] = {"auto", "vhd", "raw", NULL};
static const char *const method_names[] = {"offline", "chroot", NULL};
static const char *const executor_names[] = {"local", "lima", "guestfs", NULL};
static const char *const backend_names[] = {"auto", "qemu", "avf", NULL};
static const char *const accel_names[] = {"auto", "kvm", "hvf", "tcg", NULL};
static const char *const pep_mode_names[] = {"enforce", "report", NULL};

#define M(member) offsetof(struct px_manifest, member)

static int files_done(struct conv *c, void *elem, const struct px_ynode *n, const char *what,
                      struct px_err **err);
static void files_init(void *elem, const struct px_ynode *n);
static int write_files_done(struct conv *c, void *elem, const struct px_ynode *n, const char *what,
                            struct px_err **err);

static const struct field base_fields[] = {
        {.key = "url",
         .type = FT_STR,
         .off = M(base.url),
         .flags = F_REQUIRED,
         .check = px_check_url},
        {.key = "sha256",
         .type = FT_STR,
         .off = M(base.sha256),
         .flags = F_REQUIRED,
         .check = px_check_sha256},
        {.key = "format", .type = FT_ENUM, .off = M(base.format), .names = format_names},
        {0},
};

static const struct field disk_fields[] = {
        {.key = "size",
         .type = FT_SIZE,
         .off = M(disk.size),
         .min = 16ULL << 20,
         .max = 64ULL << 40},
        {.key = "root_partition",
         .type = FT_PARTITION,
         .off = M(disk.root_partition),
         .min = 1,
         .max = 128},
        {0},
};

static const struct field boot_fields[] = {
        {.key = "console", .type = FT_STR, .off = M(boot.console), .check = px_check_token},
        {.key = "kernel_args",
         .type = FT_STRV,
         .off = M(boot.kernel_args),
         .check = px_check_token},
        {0},
};

#define WF(member) offsetof(struct px_write_file, member)
static const struct field write_file_fields[] = {
        {.key = "path",
         .type = FT_STR,
         .off = WF(path),
         .flags = F_REQUIRED,
         .check = px_check_guest_path},
        {.key = "content", .type = FT_STR, .off = WF(content)},
        {.key = "permissions",
         .type = FT_STR,
         .off = WF(permissions),
         .check = px_check_permissions},
        {.key = "owner", .type = FT_STR, .off = WF(owner), .check = px_check_owner},
        {0},
};

static const struct field cloud_init_fields[] = {
        {.key = "datasource",
         .type = FT_STR,
         .off = M(cloud_init.datasource),
         .check = px_check_datasource},
        {.key = "user", .type = FT_STR, .off = M(cloud_init.user), .check = px_check_user},
        {.key = "ssh_keys",
         .type = FT_STRV,
         .off = M(cloud_init.ssh_keys),
         .flags = F_INTERP,
         .check = px_check_line},
        {.key = "runcmd", .type = FT_STRV, .off = M(cloud_init.runcmd)},
        {.key = "write_files",
         .type = FT_LIST,
         .off = M(cloud_init.write_files),
         .n_off = M(cloud_init.n_write_files),
         .elem_size = sizeof(struct px_write_file),
         .sub = write_file_fields,
         .elem_done = write_files_done},
        {.key = "instance_id",
         .type = FT_INSTANCE_ID,
         .off = M(cloud_init.instance_id),
         .check = px_check_instance_id},
        {.key = "network_config", .type = FT_YAML, .off = M(cloud_init.network_config)},
        {0},
};

static const struct field packages_fields[] = {
        {.key = "method", .type = FT_ENUM, .off = M(packages.method), .names = method_names},
        {.key = "executor", .type = FT_ENUM, .off = M(packages.executor), .names = executor_names},
        {.key = "repositories",
         .type = FT_STRV,
         .off = M(packages.repositories),
         .check = px_check_url},
        {.key = "keys", .type = FT_STRV, .off = M(packages.keys), .check = px_check_token},
        {.key = "add", .type = FT_STRV, .off = M(packages.add), .check = px_check_package},
        {.key = "allow_untrusted", .type = FT_BOOL, .off = M(packages.allow_untrusted)},
        {0},
};

#define FE(member) offsetof(struct px_file_entry, member)
static const struct field file_fields[] = {
        {.key = "path",
         .type = FT_STR,
         .off = FE(path),
         .flags = F_REQUIRED,
         .check = px_check_guest_path},
        {.key = "content", .type = FT_STR, .off = FE(content)},
        {.key = "source", .type = FT_STR, .off = FE(source), .check = px_check_path},
        {.key = "template", .type = FT_STR, .off = FE(template), .check = px_check_path},
        {.key = "symlink", .type = FT_STR, .off = FE(symlink), .check = px_check_path},
        {.key = "mode", .type = FT_MODE, .off = FE(mode)},
        {.key = "uid", .type = FT_U32, .off = FE(uid), .max = UINT32_MAX - 1},
        {.key = "gid", .type = FT_U32, .off = FE(gid), .max = UINT32_MAX - 1},
        {0},
};

static const struct field vm_fields[] = {
        {.key = "backend", .type = FT_ENUM, .off = M(vm.backend), .names = backend_names},
        {.key = "cpus", .type = FT_U32, .off = M(vm.cpus), .min = 1, .max = 256},
        {.key = "memory",
         .type = FT_SIZE,
         .off = M(vm.memory),
         .min = 64ULL << 20,
         .max = 4ULL << 40},
        {.key = "shared_dir",
         .type = FT_STR,
         .off = M(vm.shared_dir),
         .flags = F_INTERP,
         .check = px_check_path},
        {.key = "vsock_port",
         .type = FT_U32,
         .off = M(vm.vsock_port),
         .min = 1,
         .max = UINT32_MAX - 1},
        {.key = "accel", .type = FT_ENUM, .off = M(vm.accel), .names = accel_names},
        {.key = "firmware", .type = FT_STR, .off = M(vm.firmware), .check = px_check_path},
        {.key = "kernel", .type = FT_STR, .off = M(vm.kernel), .check = px_check_path},
        {.key = "initrd", .type = FT_STR, .off = M(vm.initrd), .check = px_check_path},
        {.key = "cmdline", .type = FT_STR, .off = M(vm.cmdline)},
        {0},
};

static const struct field timeout_fields[] = {
        {.key = "connect", .type = FT_MS, .off = M(pep.connect_timeout_ms)},
        {.key = "total", .type = FT_MS, .off = M(pep.total_timeout_ms)},
        {0},
};

static const struct field pep_fields[] = {
        {.key = "allow", .type = FT_STRV, .off = M(pep.allow), .check = px_check_host_pattern},
        {.key = "deny", .type = FT_STRV, .off = M(pep.deny), .check = px_check_host_pattern},
        {.key = "allow_addresses",
         .type = FT_STRV,
         .off = M(pep.allow_addresses),
         .check = px_check_address},
        {.key = "methods", .type = FT_STRV, .off = M(pep.methods), .check = px_check_method},
        {.key = "max_request_bytes",
         .type = FT_SIZE,
         .off = M(pep.max_request_bytes),
         .min = 1,
         .max = 1ULL << 40},
        {.key = "max_response_bytes",
         .type = FT_SIZE,
         .off = M(pep.max_response_bytes),
         .min = 1,
         .max = 1ULL << 40},
        {.key = "timeouts", .type = FT_SECTION, .sub = timeout_fields},
        {.key = "audit_log",
         .type = FT_STR,
         .off = M(pep.audit_log),
         .flags = F_INTERP,
         .check = px_check_path},
        {.key = "mode", .type = FT_ENUM, .off = M(pep.mode), .names = pep_mode_names},
        {0},
};

static const struct field build_fields[] = {
        {.key = "dir",
         .type = FT_STR,
         .off = M(build.dir),
         .flags = F_INTERP,
         .check = px_check_path},
        /* Up to the last second of year 9999, like SOURCE_DATE_EPOCH consumers accept. */
        {.key = "source_date_epoch",
         .type = FT_I64,
         .off = M(build.source_date_epoch),
         .max = 253402300799ULL},
        {0},
};

static const struct field top_fields[] = {
        {.key = "recipe", .type = FT_IGNORE},
        {.key = "name", .type = FT_STR, .off = M(name), .check = px_check_name},
        {.key = "arch", .type = FT_ENUM, .off = M(arch), .names = arch_names},
        {.key = "base", .type = FT_SECTION, .flags = F_REQUIRED, .sub = base_fields},
        {.key = "disk", .type = FT_SECTION, .sub = disk_fields},
        {.key = "boot", .type = FT_SECTION, .sub = boot_fields},
        {.key = "cloud_init", .type = FT_SECTION, .sub = cloud_init_fields},
        {.key = "packages", .type = FT_SECTION, .sub = packages_fields},
        {.key = "files",
         .type = FT_LIST,
         .off = M(files),
         .n_off = M(n_files),
         .elem_size = sizeof(struct px_file_entry),
         .sub = file_fields,
         .elem_init = files_init,
         .elem_done = files_done},
        {.key = "vm", .type = FT_SECTION, .sub = vm_fields},
        {.key = "pep", .type = FT_SECTION, .sub = pep_fields},
        {.key = "build", .type = FT_SECTION, .sub = build_fields},
        {0},
};

void px_schema_defaults(struct px_manifest *m)
{
	m->name = xstrdup("pexi");
#if defined(__aarch64__)
	m->arch = PX_ARCH_AARCH64;
#else
	m->arch = PX_ARCH_X86_64;
#endif
	m->base.format = PX_FORMAT_AUTO;
	m->disk.size = DEFAULT_DISK_SIZE;
	m->cloud_init.datasource = xstrdup("nocloud");
	m->packages.method = PX_PKG_OFFLINE;
#if defined(__APPLE__)
	m->packages.executor = PX_EXEC_LIMA;
#else
	m->packages.executor = PX_EXEC_LOCAL;
#endif
	m->vm.backend = PX_BACKEND_AUTO;
	m->vm.cpus = DEFAULT_CPUS;
	m->vm.memory = DEFAULT_MEMORY;
	m->vm.vsock_port = DEFAULT_VSOCK_PORT;
	m->vm.accel = PX_ACCEL_AUTO;
	m->pep.max_request_bytes = DEFAULT_MAX_REQUEST;
	m->pep.max_response_bytes = DEFAULT_MAX_RESPONSE;
	m->pep.connect_timeout_ms = DEFAULT_CONNECT_MS;
	m->pep.total_timeout_ms = DEFAULT_TOTAL_MS;
	m->pep.mode = PX_PEP_ENFORCE;
	m->build.dir = xstrdup(DEFAULT_BUILD_DIR);
	m->build.source_date_epoch = -1;
}

static void strv_push(struct px_strv *v, char *s)
{
	v->v = xreallocarray(v->v, v->n + 2, sizeof(*v->v));
	v->v[v->n++] = s;
	v->v[v->n] = NULL;
}

static const char *type_noun(enum ftype t)
{
	switch (t) {
	case FT_SECTION:
		return "a mapping";
	case FT_LIST:
		return "a list of mappings";
	case FT_STRV:
		return "a list of strings";
	case FT_BOOL:
		return "true or false";
	case FT_U32:
	case FT_I64:
		return "an integer";
	case FT_SIZE:
		return "a size (e.g. 2G)";
	case FT_MS:
		return "a duration (e.g. 10s)";
	case FT_MODE:
		return "an octal mode (e.g. 0644)";
	case FT_PARTITION:
		return "'auto' or a partition number";
	case FT_ENUM:
	case FT_STR:
	case FT_INSTANCE_ID:
	case FT_YAML:
	case FT_IGNORE:
		break;
	}
	return "a string";
}

static int want_kind(const struct px_ynode *n, enum px_ynode_kind kind, enum ftype t,
                     const char *what, struct px_err **err)
{
	if (n->kind == kind)
		return 0;
	return px_ynode_error(err, n, "'%s' must be %s, not %s", what, type_noun(t),
	                      px_ynode_kind_name(n));
}

static int parse_uint(const struct px_ynode *n, const struct field *f, const char *what,
                      uint64_t *ret, struct px_err **err)
{
	const char *s = n->str;
	uint64_t v = 0;
	bool ok = *s != '\0';
	for (; ok && *s; s++)
		ok = isdigit((unsigned char)*s) && !px_mul_overflow(v, 10, &v) &&
		     !px_add_overflow(v, (uint64_t)(*s - '0'), &v);
	if (!ok)
		return px_ynode_error(err, n, "'%s' must be %s (got '%s')", what,
		                      type_noun(f->type), n->str);
	uint64_t max = f->max ? f->max : UINT32_MAX;
	if (v < f->min || v > max)
		return px_ynode_error(err, n,
		                      "'%s' must be between %" PRIu64 " and %" PRIu64 " (got %s)",
		                      what, f->min, max, n->str);
	*ret = v;
	return 0;
}

static int parse_size(const struct px_ynode *n, const struct field *f, const char *what,
                      uint64_t *ret, struct px_err **err)
{
	uint64_t v;
	_cleanup_err_ struct px_err *e = NULL;
	if (px_size_parse(n->str, &v, &e) < 0)
		return px_ynode_error(err, n, "'%s': %s", what, e->msg);
	char lo[32], hi[32];
	px_size_format(f->min, lo, sizeof(lo));
	px_size_format(f->max, hi, sizeof(hi));
	if (v < f->min || v > f->max)
		return px_ynode_error(err, n, "'%s' must be between %s and %s (got '%s')", what, lo,
		                      hi, n->str);
	*ret = v;
	return 0;
}

/* "10s", "500ms", "2m", "1h", or a bare number of seconds; at most a day. */
static int parse_ms(const struct px_ynode *n, const char *what, uint32_t *ret, struct px_err **err)
{
	const char *s = n->str;
	uint64_t v = 0;
	bool ok = isdigit((unsigned char)*s);
	for (; ok && isdigit((unsigned char)*s); s++)
		ok = !px_mul_overflow(v, 10, &v) && !px_add_overflow(v, (uint64_t)(*s - '0'), &v);
	uint64_t scale = 0;
	if (!*s || strcmp(s, "s") == 0)
		scale = 1000;
	else if (strcmp(s, "ms") == 0)
		scale = 1;
	else if (strcmp(s, "m") == 0)
		scale = 60000;
	else if (strcmp(s, "h") == 0)
		scale = 3600000;
	if (!ok || !scale)
		return px_ynode_error(err, n,
		                      "'%s': invalid duration '%s' (a number with ms, s, m or h, "
		                      "e.g. 10s or 500ms)",
		                      what, n->str);
	if (px_mul_overflow(v, scale, &v) || v < 1 || v > 86400000)
		return px_ynode_error(err, n, "'%s': duration '%s' is out of range (1ms to 24h)",
		                      what, n->str);
	*ret = (uint32_t)v;
	return 0;
}

static int parse_enum(const struct px_ynode *n, const struct field *f, const char *what, int *ret,
                      struct px_err **err)
{
	size_t count = 0;
	for (; f->names[count]; count++)
		if (strcmp(n->str, f->names[count]) == 0) {
			*ret = (int)count;
			return 0;
		}
	_cleanup_free_ char *list = NULL;
	for (size_t i = 0; i < count; i++) {
		char *next = xasprintf("%s%s%s", list ? list : "", i ? ", " : "", f->names[i]);
		free(list);
		list = next;
	}
	const char *hint = px_suggest(n->str, f->names, count);
	if (hint)
		return px_ynode_error(err, n, "'%s': unknown value '%s' (did you mean '%s'?)", what,
		                      n->str, hint);
	return px_ynode_error(err, n, "'%s': unknown value '%s' (expected one of: %s)", what,
	                      n->str, list);
}

static int string_value(const struct px_ynode *n, const struct field *f, const char *what,
                        char **ret, struct px_err **err)
{
	if (want_kind(n, PX_YNODE_SCALAR, FT_STR, what, err) < 0)
		return -1;
	if (n->is_null)
		return px_ynode_error(err, n, "'%s' must not be empty", what);
	_cleanup_free_ char *v = NULL;
	if (f->flags & F_INTERP) {
		if (px_interp_env(n, what, &v, err) < 0)
			return -1;
	} else {
		v = xstrdup(n->str);
	}
	if (f->check && f->check(n, what, v, err) < 0)
		return -1;
	*ret = steal_ptr(&v);
	return 0;
}

static void set_str(void *base, size_t off, char *v)
{
	char **slot = (char **)((char *)base + off);
	free(*slot);
	*slot = v;
}

static int apply_map(struct conv *c, const struct field *fields, void *base,
                     const struct px_ynode *map, const char *prefix, struct px_err **err);

static int apply_list(struct conv *c, const struct field *f, void *base, const struct px_ynode *n,
                      const char *what, struct px_err **err)
{
	if (want_kind(n, PX_YNODE_SEQ, f->type, what, err) < 0)
		return -1;
	void **arr = (void **)((char *)base + f->off);
	size_t *count = (size_t *)((char *)base + f->n_off);
	for (size_t i = 0; i < n->n; i++) {
		const struct px_ynode *item = n->items[i];
		_cleanup_free_ char *iw = xasprintf("%s[%zu]", what, *count);
		if (want_kind(item, PX_YNODE_MAP, FT_SECTION, iw, err) < 0)
			return -1;
		*arr = xreallocarray(*arr, *count + 1, f->elem_size);
		void *elem = (char *)*arr + *count * f->elem_size;
		memset(elem, 0, f->elem_size);
		(*count)++;
		if (f->elem_init)
			f->elem_init(elem, item);
		if (apply_map(c, f->sub, elem, item, iw, err) < 0)
			return -1;
		if (f->elem_done && f->elem_done(c, elem, item, iw, err) < 0)
			return -1;
	}
	return 0;
}

static int apply_field(struct conv *c, const struct field *f, void *base, const struct px_ynode *n,
                       const char *what, struct px_err **err)
{
	void *slot = (char *)base + f->off;
	uint64_t u = 0;
	switch (f->type) {
	case FT_IGNORE:
		return 0;
	case FT_SECTION:
		return apply_map(c, f->sub, base, n, what, err);
	case FT_LIST:
		return apply_list(c, f, base, n, what, err);
	case FT_YAML: {
		if (n->kind == PX_YNODE_SCALAR) {
			set_str(base, f->off, xstrdup(n->str));
			return 0;
		}
		set_str(base, f->off, px_yemit(n));
		return 0;
	}
	case FT_STRV: {
		if (want_kind(n, PX_YNODE_SEQ, f->type, what, err) < 0)
			return -1;
		struct px_strv *v = slot;
		for (size_t i = 0; i < n->n; i++) {
			_cleanup_free_ char *iw = xasprintf("%s[%zu]", what, i);
			char *s = NULL;
			if (string_value(n->items[i], f, iw, &s, err) < 0)
				return -1;
			strv_push(v, s);
		}
		return 0;
	}
	default:
		break;
	}

	/* Everything below is a scalar. */
	if (want_kind(n, PX_YNODE_SCALAR, f->type, what, err) < 0)
		return -1;
	switch (f->type) {
	case FT_STR: {
		char *s = NULL;
		if (string_value(n, f, what, &s, err) < 0)
			return -1;
		set_str(base, f->off, s);
		return 0;
	}
	case FT_INSTANCE_ID: {
		if (strcmp(n->str, "auto") == 0) {
			set_str(base, f->off, NULL);
			return 0;
		}
		char *s = NULL;
		if (string_value(n, f, what, &s, err) < 0)
			return -1;
		set_str(base, f->off, s);
		return 0;
	}
	case FT_BOOL:
		if (n->plain && (strcmp(n->str, "true") == 0 || strcmp(n->str, "True") == 0 ||
		                 strcmp(n->str, "TRUE") == 0)) {
			*(bool *)slot = true;
			return 0;
		}
		if (n->plain && (strcmp(n->str, "false") == 0 || strcmp(n->str, "False") == 0 ||
		                 strcmp(n->str, "FALSE") == 0)) {
			*(bool *)slot = false;
			return 0;
		}
		return px_ynode_error(err, n, "'%s' must be true or false (got '%s')", what,
		                      n->str);
	case FT_U32:
		if (parse_uint(n, f, what, &u, err) < 0)
			return -1;
		*(uint32_t *)slot = (uint32_t)u;
		return 0;
	case FT_I64:
		if (parse_uint(n, f, what, &u, err) < 0)
			return -1;
		*(int64_t *)slot = (int64_t)u;
		return 0;
	case FT_PARTITION:
		if (strcmp(n->str, "auto") == 0) {
			*(int *)slot = 0;
			return 0;
		}
		if (parse_uint(n, f, what, &u, err) < 0)
			return -1;
		*(int *)slot = (int)u;
		return 0;
	case FT_SIZE:
		return parse_size(n, f, what, (uint64_t *)slot, err);
	case FT_MS:
		return parse_ms(n, what, (uint32_t *)slot, err);
	case FT_ENUM:
		return parse_enum(n, f, what, (int *)slot, err);
	case FT_MODE: {
		/* Always octal, as chmod reads it, whether YAML sees 0644 or "0644". */
		uint32_t mode = 0;
		bool ok = n->str[0] != '\0' && strlen(n->str) <= 5;
		for (const char *p = n->str; ok && *p; p++) {
			ok = *p >= '0' && *p <= '7';
			mode = mode * 8 + (uint32_t)(*p - '0');
		}
		if (!ok || mode > 07777)
			return px_ynode_error(
			        err, n,
			        "'%s': invalid mode '%s' (octal permission bits such as "
			        "0644)",
			        what, n->str);
		*(uint32_t *)slot = mode;
		return 0;
	}
	default:
		break;
	}
	return px_ynode_error(err, n, "'%s': internal error: unhandled field type", what);
}

static int unknown_key(const struct field *fields, const struct px_ynode *key, const char *prefix,
                       struct px_err **err)
{
	const char *names[64];
	size_t count = 0;
	for (const struct field *f = fields; f->key && count < PX_ARRAY_SIZE(names); f++)
		names[count++] = f->key;
	const char *hint = px_suggest(key->str, names, count);
	_cleanup_free_ char *where = prefix ? xasprintf(" in '%s'", prefix) : xstrdup("");
	if (hint)
		return px_ynode_error(err, key, "unknown key '%s'%s (did you mean '%s'?)", key->str,
		                      where, hint);
	_cleanup_free_ char *list = NULL;
	for (size_t i = 0; i < count; i++) {
		char *next = xasprintf("%s%s%s", list ? list : "", i ? ", " : "", names[i]);
		free(list);
		list = next;
	}
	return px_ynode_error(err, key, "unknown key '%s'%s (expected one of: %s)", key->str, where,
	                      list);
}

static int apply_map(struct conv *c, const struct field *fields, void *base,
                     const struct px_ynode *map, const char *prefix, struct px_err **err)
{
	if (map->kind != PX_YNODE_MAP) {
		if (!prefix)
			return px_ynode_error(err, map,
			                      "the manifest must be a mapping of sections (name, "
			                      "base, ...), not %s",
			                      px_ynode_kind_name(map));
		return want_kind(map, PX_YNODE_MAP, FT_SECTION, prefix, err);
	}
	for (size_t i = 0; i < map->n; i++) {
		const struct px_ynode *key = map->pairs[i].key, *val = map->pairs[i].value;
		const struct field *f = fields;
		while (f->key && strcmp(f->key, key->str) != 0)
			f++;
		if (!f->key)
			return unknown_key(fields, key, prefix, err);
		/* An empty value (null) is the same as leaving the key out. */
		if (val->kind == PX_YNODE_SCALAR && val->is_null)
			continue;
		_cleanup_free_ char *what =
		        prefix ? xasprintf("%s.%s", prefix, f->key) : xstrdup(f->key);
		if (apply_field(c, f, base, val, what, err) < 0)
			return -1;
	}
	for (const struct field *f = fields; f->key; f++) {
		if (!(f->flags & F_REQUIRED))
			continue;
		const struct px_ynode *v = px_ynode_get(map, f->key);
		if (v && !(v->kind == PX_YNODE_SCALAR && v->is_null))
			continue;
		if (!prefix)
			return px_ynode_error(err, map, "missing required section '%s'", f->key);
		return px_ynode_error(err, map, "missing required key '%s.%s'", prefix, f->key);
	}
	return 0;
}

static void files_init(void *elem, const struct px_ynode *n)
{
	struct px_file_entry *e = elem;
	e->mode = DEFAULT_FILE_MODE;
	e->line = n->line;
}

static bool relative_clean(const char *p)
{
	if (p[0] == '/')
		return false;
	for (const char *s = p; *s;) {
		size_t k = strcspn(s, "/");
		if (k == 2 && strncmp(s, "..", 2) == 0)
			return false;
		s += k;
		while (*s == '/')
			s++;
	}
	return true;
}

static int files_done(struct conv *c, void *elem, const struct px_ynode *n, const char *what,
                      struct px_err **err)
{
	struct px_file_entry *e = elem;
	int count = !!e->content + !!e->source + !!e->template + !!e->symlink;
	if (count != 1)
		return px_ynode_error(err, n,
		                      "'%s' needs exactly one of 'content', 'source', "
		                      "'template' or 'symlink' (found %d)",
		                      what, count);
	if (e->source) {
		/* Relative sources resolve beside the file that names them: the manifest, or
		 * the recipe an entry came from. */
		const struct px_ynode *sn = px_ynode_get(n, "source");
		if (e->source[0] != '/') {
			const char *from = sn && sn->src ? sn->src->path : NULL;
			_cleanup_free_ char *copy = from ? xstrdup(from) : NULL;
			const char *base = c->m->dir;
			if (from && !px_streq(from, c->m->path))
				base = dirname(copy);
			char *abs = xasprintf("%s/%s", base, e->source);
			free(e->source);
			e->source = abs;
		}
		struct stat st;
		if (stat(e->source, &st) < 0 || !S_ISREG(st.st_mode))
			return px_ynode_error(err, sn, "'%s.source': '%s' is not a readable file",
			                      what, e->source);
	}
	if (e->template) {
		const struct px_ynode *tn = px_ynode_get(n, "template");
		if (!relative_clean(e->template))
			return px_ynode_error(err, tn,
			                      "'%s.template': '%s' must be a relative name under "
			                      "templates/ without '..'",
			                      what, e->template);
		char *path = NULL;
		_cleanup_free_ char *searched = NULL;
		if (px_datadir_find(c->m->dir, "templates", e->template, &path, &searched) < 0)
			return px_ynode_error(
			        err, tn, "'%s.template': template '%s' not found (looked in %s)",
			        what, e->template, searched);
		free(e->template);
		e->template = path;
	}
	return 0;
}

static int write_files_done(struct conv *c, void *elem, const struct px_ynode *n, const char *what,
                            struct px_err **err)
{
	(void)c;
	(void)n;
	(void)what;
	(void)err;
	struct px_write_file *w = elem;
	/* cloud-init writes an empty file when content is missing; say so explicitly. */
	if (!w->content)
		w->content = xstrdup("");
	return 0;
}

/* The checks of the pep section; 'p' prefixes key names ("pep." in a manifest, "" in a
 * standalone policy file). */
static int pep_checks(struct px_manifest *m, const struct px_ynode *pep, const char *p,
                      struct px_err **err)
{
	const struct px_ynode *methods = px_ynode_get(pep, "methods");
	if (methods && methods->kind == PX_YNODE_SEQ && methods->n == 0)
		return px_ynode_error(err, methods,
		                      "'%smethods' is empty: list at least one method (the "
		                      "default is GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS)",
		                      p);
	if (!m->pep.methods.n)
		for (size_t i = 0; i < PX_ARRAY_SIZE(default_methods); i++)
			strv_push(&m->pep.methods, xstrdup(default_methods[i]));
	if (m->pep.connect_timeout_ms > m->pep.total_timeout_ms)
		return px_ynode_error(
		        err, pep, "'%stimeouts.connect' is longer than '%stimeouts.total'", p, p);
	return 0;
}

/* Checks that involve more than one field. */
static int cross_checks(struct px_manifest *m, const struct px_ynode *root, struct px_err **err)
{
	const struct px_ynode *disk = px_ynode_get(root, "disk");
	if (m->disk.size % (1ULL << 20))
		return px_ynode_error(err, px_ynode_get(disk, "size"),
		                      "'disk.size' must be a whole number of MiB (partitions are "
		                      "aligned to 1 MiB)");
	const struct px_ynode *pkgs = px_ynode_get(root, "packages");
	if (m->packages.add.n && !m->packages.repositories.n)
		return px_ynode_error(err, pkgs,
		                      "'packages.add' lists packages but 'packages.repositories' "
		                      "is empty");
	return pep_checks(m, px_ynode_get(root, "pep"), "pep.", err);
}

int px_schema_apply(struct px_manifest *m, const struct px_ynode *root, struct px_err **err)
{
	struct conv c = {.m = m};
	if (apply_map(&c, top_fields, m, root, NULL, err) < 0)
		return -1;
	return cross_checks(m, root, err);
}

int px_schema_apply_pep(struct px_manifest *m, const struct px_ynode *root, struct px_err **err)
{
	struct conv c = {.m = m};
	if (root->kind != PX_YNODE_MAP)
		return px_ynode_error(
		        err, root,
		        "a policy must be a mapping of the manifest's pep keys (allow, "
		        "deny, ...), not %s",
		        px_ynode_kind_name(root));
	if (apply_map(&c, pep_fields, m, root, NULL, err) < 0)
		return -1;
	return pep_checks(m, root, "", err);
}
