#include <limits.h>
#include <stdarg.h>

#include <yaml.h>

#include "core/common.h"

#include "core/buf.h"
#include "core/sha256.h"
#include "image/cloudinit.h"
#include "manifest/manifest.h"

/* Where the shared folder appears in the guest, and how (see cloudinit.h). */
#define SHARE_TAG   "workspace"
#define SHARE_MOUNT "/mnt/workspace"
#define SHARE_TYPE  "virtiofs"
#define SHARE_OPTS  "rw,nofail"

/* The shell cloud-init gives the user: present on every image pexi builds (busybox ash
 * on Alpine). */
#define USER_SHELL "/bin/sh"

/* One YAML document being emitted into a buffer. The first failure sticks: later calls do
 * nothing, so the renderers read as the document they produce and check once at the end. */
struct out {
	yaml_emitter_t e;
	struct px_buf buf;
	char *problem; /* the first failure, NULL while all is well */
};

static int write_handler(void *data, unsigned char *buffer, size_t size)
{
	/* Our own text: the buffer has no cap, so appending cannot fail. */
	px_buf_append(data, buffer, size, NULL);
	return 1;
}

__attribute__((format(printf, 2, 3))) static void fail(struct out *o, const char *fmt, ...)
{
	if (o->problem)
		return;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&o->problem, fmt, ap) < 0) {
		fprintf(stderr, "fatal: out of memory\n");
		abort();
	}
	va_end(ap);
}

static void emit(struct out *o, yaml_event_t *ev)
{
	/* yaml_emitter_emit owns the event from here on, also when it fails. */
	if (!yaml_emitter_emit(&o->e, ev))
		fail(o, "YAML emitter: %s", o->e.problem ? o->e.problem : "unknown error");
}

/* 'header' is text put before the document (the #cloud-config line), or NULL. */
static void out_begin(struct out *o, const char *header)
{
	memset(o, 0, sizeof(*o));
	if (header)
		px_buf_puts(&o->buf, header);
	yaml_emitter_initialize(&o->e);
	yaml_emitter_set_output(&o->e, write_handler, &o->buf);
	/* UTF-8 as it is rather than \u escapes, no folding of long lines, and a fixed
	 * indentation, so the text is readable and does not depend on libyaml defaults. */
	yaml_emitter_set_unicode(&o->e, 1);
	yaml_emitter_set_width(&o->e, -1);
	yaml_emitter_set_indent(&o->e, 2);
	yaml_emitter_set_break(&o->e, YAML_LN_BREAK);

	yaml_event_t ev;
	yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
	emit(o, &ev);
	/* Implicit start and end: no "---", so "#cloud-config" stays the first line. */
	yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
	emit(o, &ev);
}

/* Ends the document; returns its text (owned by the caller) or NULL with o->problem. */
static char *out_end(struct out *o)
{
	yaml_event_t ev;
	yaml_document_end_event_initialize(&ev, 1);
	emit(o, &ev);
	yaml_stream_end_event_initialize(&ev);
	emit(o, &ev);
	if (!o->problem && !yaml_emitter_flush(&o->e))
		fail(o, "YAML emitter: cannot flush");
	yaml_emitter_delete(&o->e);
	if (o->problem) {
		px_buf_free(&o->buf);
		return NULL;
	}
	return px_buf_steal(&o->buf, NULL);
}

static void out_abandon(struct out *o)
{
	px_buf_free(&o->buf);
	free(o->problem);
	o->problem = NULL;
}

static void map_begin(struct out *o)
{
	yaml_event_t ev;
	yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
	emit(o, &ev);
}

static void map_end(struct out *o)
{
	yaml_event_t ev;
	yaml_mapping_end_event_initialize(&ev);
	emit(o, &ev);
}

static void seq_begin(struct out *o, yaml_sequence_style_t style)
{
	yaml_event_t ev;
	yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, style);
	emit(o, &ev);
}

static void seq_end(struct out *o)
{
	yaml_event_t ev;
	yaml_sequence_end_event_initialize(&ev);
	emit(o, &ev);
}

/* 'what' names the value in the manifest for the error message. */
static void scalar(struct out *o, const char *value, yaml_scalar_style_t style, const char *what)
{
	if (o->problem)
		return;
	size_t len = strlen(value);
	if (len > INT_MAX) {
		fail(o, "%s is too long", what);
		return;
	}
	yaml_event_t ev;
	/* libyaml refuses text that is not UTF-8 here; YAML cannot carry it. */
	if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)value, (int)len, 1, 1,
	                                  style)) {
		fail(o, "%s is not valid UTF-8 text", what);
		return;
	}
	emit(o, &ev);
}

/* Mapping keys and our own fixed words (true) are plain scalars. */
static void key(struct out *o, const char *k)
{
	scalar(o, k, YAML_PLAIN_SCALAR_STYLE, k);
}

static void key_true(struct out *o, const char *k)
{
	key(o, k);
	scalar(o, "true", YAML_PLAIN_SCALAR_STYLE, k);
}

/* Text from the manifest. A literal block keeps multi-line text readable, but YAML parsers
 * turn every line break in it (CR, NEL, LS, PS) into LF, so only text whose breaks are
 * all LF may take that style; libyaml itself falls back to double quotes when a literal
 * block cannot hold the text (tabs, trailing spaces, control characters). Everything else
 * is double-quoted, which escapes anything. */
static void text(struct out *o, const char *value, const char *what)
{
	bool literal = strchr(value, '\n') && !strchr(value, '\r') && !strstr(value, "\xc2\x85") &&
	               !strstr(value, "\xe2\x80\xa8") && !strstr(value, "\xe2\x80\xa9");
	scalar(o, value, literal ? YAML_LITERAL_SCALAR_STYLE : YAML_DOUBLE_QUOTED_SCALAR_STYLE,
	       what);
}

static void key_text(struct out *o, const char *k, const char *value, const char *what)
{
	key(o, k);
	text(o, value, what);
}

static size_t strv_len(const struct px_strv *v)
{
	return v ? v->n : 0;
}

static void render_users(struct out *o, const struct px_manifest *m)
{
	const char *user = m->cloud_init.user;
	if (!user)
		return;
	key(o, "users");
	seq_begin(o, YAML_BLOCK_SEQUENCE_STYLE);
	map_begin(o);
	key_text(o, "name", user, "cloud_init.user");
	key_true(o, "lock_passwd");
	key_text(o, "shell", USER_SHELL, "shell");
	if (m->cloud_init.ssh_keys.n > 0) {
		key(o, "ssh_authorized_keys");
		seq_begin(o, YAML_BLOCK_SEQUENCE_STYLE);
		for (size_t i = 0; i < m->cloud_init.ssh_keys.n; i++) {
			char what[64];
			snprintf(what, sizeof(what), "cloud_init.ssh_keys[%zu]", i);
			text(o, m->cloud_init.ssh_keys.v[i], what);
		}
		seq_end(o);
	}
	map_end(o);
	seq_end(o);
}

/* write_files runs before users are created, so a file owned by the user we create must
 * wait for the final stage. */
static bool owner_needs_defer(const char *owner)
{
	if (!owner)
		return false;
	size_t n = strcspn(owner, ":.");
	return !(n == 4 && strncmp(owner, "root", 4) == 0);
}

static void render_write_files(struct out *o, const struct px_manifest *m)
{
	if (m->cloud_init.n_write_files == 0)
		return;
	key(o, "write_files");
	seq_begin(o, YAML_BLOCK_SEQUENCE_STYLE);
	for (size_t i = 0; i < m->cloud_init.n_write_files; i++) {
		const struct px_write_file *f = &m->cloud_init.write_files[i];
		char what[80];
		map_begin(o);
		snprintf(what, sizeof(what), "cloud_init.write_files[%zu].path", i);
		key_text(o, "path", f->path ? f->path : "", what);
		snprintf(what, sizeof(what), "cloud_init.write_files[%zu].content", i);
		key_text(o, "content", f->content ? f->content : "", what);
		if (f->owner) {
			snprintf(what, sizeof(what), "cloud_init.write_files[%zu].owner", i);
			key_text(o, "owner", f->owner, what);
		}
		if (f->permissions) {
			snprintf(what, sizeof(what), "cloud_init.write_files[%zu].permissions", i);
			key_text(o, "permissions", f->permissions, what);
		}
		if (owner_needs_defer(f->owner)) {
			key_true(o, "defer");
		}
		map_end(o);
	}
	seq_end(o);
}

static void render_mounts(struct out *o, const struct px_manifest *m)
{
	if (!m->vm.shared_dir)
		return;
	static const char *const entry[] = {SHARE_TAG,  SHARE_MOUNT, SHARE_TYPE,
	                                    SHARE_OPTS, "0",         "0"};
	key(o, "mounts");
	seq_begin(o, YAML_BLOCK_SEQUENCE_STYLE);
	seq_begin(o, YAML_FLOW_SEQUENCE_STYLE);
	for (size_t i = 0; i < PX_ARRAY_SIZE(entry); i++)
		text(o, entry[i], "mounts");
	seq_end(o);
	seq_end(o);
}

static void render_runcmd(struct out *o, const struct px_manifest *m, const struct px_strv *extra)
{
	if (strv_len(extra) + m->cloud_init.runcmd.n == 0)
		return;
	key(o, "runcmd");
	seq_begin(o, YAML_BLOCK_SEQUENCE_STYLE);
	for (size_t i = 0; i < strv_len(extra); i++)
		text(o, extra->v[i], "the recipe's runcmd");
	for (size_t i = 0; i < m->cloud_init.runcmd.n; i++) {
		char what[64];
		snprintf(what, sizeof(what), "cloud_init.runcmd[%zu]", i);
		text(o, m->cloud_init.runcmd.v[i], what);
	}
	seq_end(o);
}

static const char *manifest_name(const struct px_manifest *m)
{
	return m->path ? m->path : "(manifest)";
}

static int render_user_data(const struct px_manifest *m, const struct px_strv *extra, char **ret,
                            struct px_err **err)
{
	struct out o;
	/* cloud-init recognises the format by this first line. */
	out_begin(&o, "#cloud-config\n");
	map_begin(&o);
	render_users(&o, m);
	render_write_files(&o, m);
	render_mounts(&o, m);
	render_runcmd(&o, m, extra);
	map_end(&o);
	char *s = out_end(&o);
	if (!s) {
		int r = px_err_set(err, PX_EXIT_MANIFEST, "manifest '%s': %s", manifest_name(m),
		                   o.problem);
		out_abandon(&o);
		return r;
	}
	*ret = s;
	return 0;
}

static int render_meta_data(const struct px_manifest *m, const char *instance_id, char **ret,
                            struct px_err **err)
{
	struct out o;
	out_begin(&o, NULL);
	map_begin(&o);
	key_text(&o, "instance-id", instance_id, "cloud_init.instance_id");
	if (m->name)
		key_text(&o, "local-hostname", m->name, "name");
	map_end(&o);
	char *s = out_end(&o);
	if (!s) {
		int r = px_err_set(err, PX_EXIT_MANIFEST, "manifest '%s': %s", manifest_name(m),
		                   o.problem);
		out_abandon(&o);
		return r;
	}
	*ret = s;
	return 0;
}

/* network-config is passed through as the user wrote it, but only when it is one YAML
 * document whose top is a mapping, which is what cloud-init will accept. */
static int check_network_config(const struct px_manifest *m, const char *text_, struct px_err **err)
{
	yaml_parser_t p;
	yaml_parser_initialize(&p);
	yaml_parser_set_input_string(&p, (const unsigned char *)text_, strlen(text_));
	int r = 0, depth = 0, docs = 0;
	bool top_checked = false;
	for (;;) {
		yaml_event_t ev;
		if (!yaml_parser_parse(&p, &ev)) {
			r = px_err_set(err, PX_EXIT_MANIFEST,
			               "manifest '%s': cloud_init.network_config:%zu:%zu: %s",
			               manifest_name(m), p.problem_mark.line + 1,
			               p.problem_mark.column + 1,
			               p.problem ? p.problem : "invalid YAML");
			break;
		}
		yaml_event_type_t type = ev.type;
		yaml_event_delete(&ev);
		if (type == YAML_STREAM_END_EVENT)
			break;
		if (type == YAML_DOCUMENT_START_EVENT)
			docs++;
		if (!top_checked && depth == 0 &&
		    (type == YAML_MAPPING_START_EVENT || type == YAML_SEQUENCE_START_EVENT ||
		     type == YAML_SCALAR_EVENT || type == YAML_ALIAS_EVENT)) {
			top_checked = true;
			if (type != YAML_MAPPING_START_EVENT) {
				r = px_err_set(err, PX_EXIT_MANIFEST,
				               "manifest '%s': cloud_init.network_config must be "
				               "a YAML mapping (version: 1 or 2 ...)",
				               manifest_name(m));
				break;
			}
		}
		if (type == YAML_MAPPING_START_EVENT || type == YAML_SEQUENCE_START_EVENT)
			depth++;
		if (type == YAML_MAPPING_END_EVENT || type == YAML_SEQUENCE_END_EVENT)
			depth--;
	}
	yaml_parser_delete(&p);
	if (r == 0 && (docs != 1 || !top_checked))
		r = px_err_set(err, PX_EXIT_MANIFEST,
		               "manifest '%s': cloud_init.network_config must be exactly one YAML "
		               "mapping",
		               manifest_name(m));
	return r;
}

/* Each part is hashed with its name and length, so no two different seeds can produce the
 * same byte stream; an absent part is marked as such, distinct from an empty one. */
static void hash_part(struct px_sha256 *h, const char *name, const char *value)
{
	char head[96];
	int n = value ? snprintf(head, sizeof(head), "%s\n%zu\n", name, strlen(value))
	              : snprintf(head, sizeof(head), "%s\n-\n", name);
	px_sha256_update(h, head, (size_t)n);
	if (value)
		px_sha256_update(h, value, strlen(value));
}

static char *derive_instance_id(const char *user_data, const char *network_config,
                                const char *hostname)
{
	struct px_sha256 h;
	px_sha256_init(&h);
	px_sha256_update(&h, "pexi instance-id 1\n", strlen("pexi instance-id 1\n"));
	hash_part(&h, "user-data", user_data);
	hash_part(&h, "network-config", network_config);
	hash_part(&h, "local-hostname", hostname);
	uint8_t digest[PX_SHA256_LEN];
	px_sha256_final(&h, digest);
	char hex[PX_SHA256_HEX];
	px_sha256_hex(digest, hex);
	return xasprintf("iid-%.16s", hex);
}

int px_cloudinit_render(const struct px_manifest *m, const struct px_strv *extra_runcmd,
                        struct px_seed_content *ret, struct px_err **err)
{
	_cleanup_free_ char *user_data = NULL;
	if (render_user_data(m, extra_runcmd, &user_data, err) < 0)
		return px_err_wrap(err, "rendering user-data");

	_cleanup_free_ char *network_config = NULL;
	if (m->cloud_init.network_config) {
		if (check_network_config(m, m->cloud_init.network_config, err) < 0)
			return -1;
		network_config = xstrdup(m->cloud_init.network_config);
	}

	const char *pinned = m->cloud_init.instance_id;
	_cleanup_free_ char *instance_id = NULL;
	if (pinned && *pinned && !px_streq(pinned, "auto"))
		instance_id = xstrdup(pinned);
	else
		instance_id = derive_instance_id(user_data, network_config, m->name);

	_cleanup_free_ char *meta_data = NULL;
	if (render_meta_data(m, instance_id, &meta_data, err) < 0)
		return px_err_wrap(err, "rendering meta-data");

	ret->meta_data = steal_ptr(&meta_data);
	ret->user_data = steal_ptr(&user_data);
	ret->network_config = steal_ptr(&network_config);
	ret->instance_id = steal_ptr(&instance_id);
	return 0;
}

void px_seed_content_free(struct px_seed_content *c)
{
	if (!c)
		return;
	free(c->meta_data);
	free(c->user_data);
	free(c->network_config);
	free(c->instance_id);
	c->meta_data = c->user_data = c->network_config = c->instance_id = NULL;
}
