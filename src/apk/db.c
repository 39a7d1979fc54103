/* The installed database behind db.h. */
#include <archive.h>
#include <archive_entry.h>

#include "core/common.h"

#include "apk/db.h"
#include "core/buf.h"
#include "image/extfs.h"

#define INSTALLED_PATH "/lib/apk/db/installed"
#define SCRIPTS_PATH   "/lib/apk/db/scripts.tar"
#define SCRIPTS_GZ     "/lib/apk/db/scripts.tar.gz"
#define TRIGGERS_PATH  "/lib/apk/db/triggers"
#define WORLD_PATH     "/etc/apk/world"
/* Caps on what is read back from an image. */
#define INSTALLED_MAX (256u << 20)
#define SCRIPTS_MAX   (64u << 20)
#define SMALL_MAX     (4u << 20)

/* A path -> owner map: open addressing, keys owned, values point at package names. */
struct owner_map {
	char **keys;
	const char **vals;
	size_t cap, n;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return h;
}

static size_t map_slot(const struct owner_map *m, const char *key)
{
	size_t i = (size_t)hash_str(key) & (m->cap - 1);
	while (m->keys[i] && strcmp(m->keys[i], key) != 0)
		i = (i + 1) & (m->cap - 1);
	return i;
}

static void map_put(struct owner_map *m, const char *key, const char *val)
{
	if ((m->n + 1) * 2 > m->cap) {
		struct owner_map old = *m;
		m->cap = old.cap ? old.cap * 2 : 1024;
		m->keys = xcalloc(m->cap, sizeof(*m->keys));
		m->vals = xcalloc(m->cap, sizeof(*m->vals));
		m->n = 0;
		for (size_t i = 0; i < old.cap; i++) {
			if (!old.keys[i])
				continue;
			size_t s = map_slot(m, old.keys[i]);
			m->keys[s] = old.keys[i];
			m->vals[s] = old.vals[i];
			m->n++;
		}
		free(old.keys);
		free(old.vals);
	}
	size_t s = map_slot(m, key);
	if (!m->keys[s]) {
		m->keys[s] = xstrdup(key);
		m->n++;
	}
	m->vals[s] = val;
}

static const char *map_get(const struct owner_map *m, const char *key)
{
	if (!m->cap)
		return NULL;
	size_t s = map_slot(m, key);
	return m->keys[s] ? m->vals[s] : NULL;
}

static void map_free(struct owner_map *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->keys[i]);
	free(m->keys);
	free(m->vals);
}

struct file_rec {
	size_t dir; /* index into the package's dirs */
	char *name;
	char *acl; /* "uid:gid:mode[:sum]" or NULL for the default 0:0:644 */
	char sum[PX_APK_QSUM_LEN];
};

struct dir_rec {
	char *path;
	char *acl; /* NULL for the default 0:0:755 */
};

struct pkg_rec {
	char *name;
	char *version;
	char *checksum;
	char *origin;
	struct px_strv replaces; /* names only */
	uint32_t replaces_priority;
	char *text; /* an existing stanza, verbatim, without its blank line */
	/* A new package: its header, then dirs and files. */
	char *header;
	struct dir_rec *dirs;
	size_t n_dirs;
	struct file_rec *files;
	size_t n_files;
	bool removed; /* replaced by an upgrade */
};

struct script_rec {
	char *name;
	char *body;
	size_t len;
	int64_t mtime;
};

struct px_apk_db {
	struct pkg_rec **pkgs;
	size_t n_pkgs;
	struct pkg_rec *cur;
	const char *replaced; /* the name string of the stanza the current package upgrades */
	struct owner_map owners;
	struct script_rec *scripts;
	size_t n_scripts;
	struct px_strv triggers; /* lines, without newline */
	struct px_strv world;
	/* apk-tools 3 keeps the scripts in scripts.tar.gz unless a scripts.tar exists (which
	 * it then prefers): the database is written back in the form it was found in. */
	bool scripts_gz;
};

static void strv_add(struct px_strv *v, char *s)
{
	v->v = xreallocarray(v->v, v->n + 2, sizeof(*v->v));
	v->v[v->n++] = s;
	v->v[v->n] = NULL;
}

static void strv_clear(struct px_strv *v)
{
	for (size_t i = 0; i < v->n; i++)
		free(v->v[i]);
	free(v->v);
	v->v = NULL;
	v->n = 0;
}

static void pkg_rec_free(struct pkg_rec *p)
{
	if (!p)
		return;
	free(p->name);
	free(p->version);
	free(p->checksum);
	free(p->origin);
	strv_clear(&p->replaces);
	free(p->text);
	free(p->header);
	for (size_t i = 0; i < p->n_dirs; i++) {
		free(p->dirs[i].path);
		free(p->dirs[i].acl);
	}
	free(p->dirs);
	for (size_t i = 0; i < p->n_files; i++) {
		free(p->files[i].name);
		free(p->files[i].acl);
	}
	free(p->files);
	free(p);
}

void px_apk_db_free(struct px_apk_db *db)
{
	if (!db)
		return;
	for (size_t i = 0; i < db->n_pkgs; i++)
		pkg_rec_free(db->pkgs[i]);
	free(db->pkgs);
	map_free(&db->owners);
	for (size_t i = 0; i < db->n_scripts; i++) {
		free(db->scripts[i].name);
		free(db->scripts[i].body);
	}
	free(db->scripts);
	strv_clear(&db->triggers);
	strv_clear(&db->world);
	free(db);
}

static struct pkg_rec *find_pkg(const struct px_apk_db *db, const char *name)
{
	for (size_t i = 0; i < db->n_pkgs; i++)
		if (!db->pkgs[i]->removed && px_streq(db->pkgs[i]->name, name))
			return db->pkgs[i];
	return NULL;
}

/* The name part of a dependency ("foo>=1" -> "foo"), caller frees. */
static char *dep_name(const char *s, size_t len)
{
	size_t n = 0;
	while (n < len && !strchr("<>=~", s[n]))
		n++;
	return xstrndup(s, n);
}

/* Parses one stanza of an existing installed file for the fields pexi needs. */
static void parse_stanza(struct px_apk_db *db, const char *text, size_t len)
{
	struct pkg_rec *p = xcalloc(1, sizeof(*p));
	_cleanup_free_ char *dir = NULL;
	p->text = xstrndup(text, len);
	for (size_t pos = 0; pos < len;) {
		const char *l = text + pos;
		const char *nl = memchr(l, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - l) : len - pos;
		pos += ll + 1;
		if (ll < 2 || l[1] != ':')
			continue;
		const char *v = l + 2;
		size_t vl = ll - 2;
		switch (l[0]) {
		case 'P':
			free(p->name);
			p->name = xstrndup(v, vl);
			break;
		case 'V':
			free(p->version);
			p->version = xstrndup(v, vl);
			break;
		case 'C':
			free(p->checksum);
			p->checksum = xstrndup(v, vl);
			break;
		case 'o':
			free(p->origin);
			p->origin = xstrndup(v, vl);
			break;
		case 'q':
			p->replaces_priority = 0;
			for (size_t i = 0; i < vl && v[i] >= '0' && v[i] <= '9' &&
			                   p->replaces_priority < 100000000;
			     i++)
				p->replaces_priority =
				        p->replaces_priority * 10 + (uint32_t)(v[i] - '0');
			break;
		case 'r':
			for (size_t i = 0; i < vl;) {
				while (i < vl && v[i] == ' ')
					i++;
				size_t s = i;
				while (i < vl && v[i] != ' ')
					i++;
				if (i > s)
					strv_add(&p->replaces, dep_name(v + s, i - s));
			}
			break;
		case 'F':
			free(dir);
			dir = xstrndup(v, vl);
			break;
		case 'R': {
			_cleanup_free_ char *name = xstrndup(v, vl);
			_cleanup_free_ char *path =
			        dir && *dir ? xasprintf("%s/%s", dir, name) : xstrdup(name);
			if (p->name)
				map_put(&db->owners, path, p->name);
			break;
		}
		default:
			break;
		}
	}
	if (!p->name) {
		pkg_rec_free(p);
		return;
	}
	db->pkgs = xreallocarray(db->pkgs, db->n_pkgs + 1, sizeof(*db->pkgs));
	db->pkgs[db->n_pkgs++] = p;
}

static void parse_installed(struct px_apk_db *db, const char *text, size_t len)
{
	size_t start = 0;
	for (size_t pos = 0; pos <= len;) {
		const char *nl = pos < len ? memchr(text + pos, '\n', len - pos) : NULL;
		size_t end = nl ? (size_t)(nl - text) : len;
		if (end == pos || end == len) { /* a blank line or the end closes a stanza */
			size_t stop = end == len ? len : pos;
			if (stop > start)
				parse_stanza(db, text + start, stop - start);
			start = end + 1;
		}
		pos = end + 1;
	}
}

static void archive_freep(struct archive **a)
{
	if (*a)
		archive_read_free(*a);
}

static int parse_scripts(struct px_apk_db *db, const char *buf, size_t len, struct px_err **err)
{
	_cleanup_(archive_freep) struct archive *a = archive_read_new();
	struct archive_entry *e;
	int r;
	if (!a)
		abort();
	archive_read_support_filter_gzip(a);
	archive_read_support_format_tar(a);
	archive_read_support_format_gnutar(a);
	if (archive_read_open_memory(a, buf, len) != ARCHIVE_OK)
		return px_err_set(err, PX_EXIT_INPUT, "'%s': %s", SCRIPTS_PATH,
		                  archive_error_string(a));
	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
		int64_t size = archive_entry_size(e);
		if (archive_entry_filetype(e) != AE_IFREG || size < 0 ||
		    size > (int64_t)SCRIPTS_MAX)
			continue;
		char *body = xmalloc((size_t)size + 1);
		la_ssize_t got = archive_read_data(a, body, (size_t)size);
		if (got != size) {
			free(body);
			return px_err_set(err, PX_EXIT_INPUT, "'%s': entry '%s' is truncated",
			                  SCRIPTS_PATH, archive_entry_pathname(e));
		}
		body[size] = 0;
		db->scripts = xreallocarray(db->scripts, db->n_scripts + 1, sizeof(*db->scripts));
		db->scripts[db->n_scripts++] =
		        (struct script_rec){xstrdup(archive_entry_pathname(e)), body, (size_t)size,
		                            archive_entry_mtime(e)};
	}
	if (r != ARCHIVE_EOF)
		return px_err_set(err, PX_EXIT_INPUT, "'%s': %s", SCRIPTS_PATH,
		                  archive_error_string(a));
	return 0;
}

/* Reads an optional file of the image: a missing one is empty. */
static int read_optional(struct px_extfs *fs, const char *path, size_t max, char **ret,
                         size_t *ret_len, struct px_err **err)
{
	struct px_err *e = NULL;
	if (px_extfs_read_file(fs, path, max, ret, ret_len, &e) == 0)
		return 0;
	if (e && e->errnum == ENOENT) {
		px_err_free(e);
		*ret = xstrdup("");
		*ret_len = 0;
		return 0;
	}
	*err = e;
	return -1;
}

static int read_scripts(struct px_extfs *fs, struct px_apk_db *db, char **ret, size_t *ret_len,
                        struct px_err **err)
{
	struct px_extfs_attrs st;
	struct px_err *e = NULL;
	bool tar = px_extfs_stat(fs, SCRIPTS_PATH, &st, &e) == 0;
	px_err_free(e);
	e = NULL;
	if (!tar && px_extfs_stat(fs, SCRIPTS_GZ, &st, &e) == 0) {
		db->scripts_gz = true;
		return read_optional(fs, SCRIPTS_GZ, SCRIPTS_MAX, ret, ret_len, err);
	}
	px_err_free(e);
	return read_optional(fs, SCRIPTS_PATH, SCRIPTS_MAX, ret, ret_len, err);
}

static void split_lines(struct px_strv *v, const char *text, size_t len)
{
	for (size_t pos = 0; pos < len;) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - text) : len;
		if (end > pos)
			strv_add(v, xstrndup(text + pos, end - pos));
		pos = end + 1;
	}
}

int px_apk_db_load(struct px_extfs *fs, struct px_apk_db **ret, struct px_err **err)
{
	struct px_apk_db *db = xcalloc(1, sizeof(*db));
	_cleanup_free_ char *installed = NULL, *scripts = NULL, *triggers = NULL, *world = NULL;
	size_t n_installed = 0, n_scripts = 0, n_triggers = 0, n_world = 0;

	if (read_optional(fs, INSTALLED_PATH, INSTALLED_MAX, &installed, &n_installed, err) < 0 ||
	    read_scripts(fs, db, &scripts, &n_scripts, err) < 0 ||
	    read_optional(fs, TRIGGERS_PATH, SMALL_MAX, &triggers, &n_triggers, err) < 0 ||
	    read_optional(fs, WORLD_PATH, SMALL_MAX, &world, &n_world, err) < 0)
		goto fail;
	parse_installed(db, installed, n_installed);
	if (n_scripts && parse_scripts(db, scripts, n_scripts, err) < 0)
		goto fail;
	split_lines(&db->triggers, triggers, n_triggers);
	/* apk writes world one name per line; older versions separated them by spaces. */
	for (char *c = world; *c; c++)
		if (*c == ' ')
			*c = '\n';
	split_lines(&db->world, world, n_world);
	*ret = db;
	return 0;
fail:
	px_apk_db_free(db);
	return px_err_wrap(err, "reading the apk database of the image");
}

const char *px_apk_db_version(const struct px_apk_db *db, const char *name)
{
	const struct pkg_rec *p = find_pkg(db, name);
	return p ? p->version : NULL;
}

const char *px_apk_db_checksum(const struct px_apk_db *db, const char *name)
{
	const struct pkg_rec *p = find_pkg(db, name);
	return p ? p->checksum : NULL;
}

const char *px_apk_db_origin(const struct px_apk_db *db, const char *name)
{
	const struct pkg_rec *p = find_pkg(db, name);
	return p ? p->origin : NULL;
}

const char *px_apk_db_owner(const struct px_apk_db *db, const char *path)
{
	return map_get(&db->owners, path);
}

bool px_apk_db_replaces(const struct px_apk_db *db, const char *owner, const char *name,
                        uint32_t *prio)
{
	const struct pkg_rec *p = find_pkg(db, owner);
	if (!p)
		return false;
	for (size_t i = 0; i < p->replaces.n; i++) {
		if (px_streq(p->replaces.v[i], name)) {
			if (prio)
				*prio = p->replaces_priority;
			return true;
		}
	}
	return false;
}

static void push_field(struct px_buf *b, char letter, const char *v)
{
	if (v)
		px_buf_printf(b, "%c:%s\n", letter, v);
}

static void push_list(struct px_buf *b, char letter, const struct px_strv *v)
{
	if (!v->n)
		return;
	px_buf_printf(b, "%c:", letter);
	for (size_t i = 0; i < v->n; i++)
		px_buf_printf(b, "%s%s", i ? " " : "", v->v[i]);
	px_buf_puts(b, "\n");
}

/* The script entries of a package: "NAME-VERSION.Q1SUM." prefix. */
static char *script_prefix(const char *name, const char *version, const char *csum)
{
	return xasprintf("%s-%s.%s.", name, version, csum ? csum : "");
}

static void drop_scripts(struct px_apk_db *db, const char *prefix)
{
	size_t j = 0;
	for (size_t i = 0; i < db->n_scripts; i++) {
		if (strncmp(db->scripts[i].name, prefix, strlen(prefix)) == 0) {
			free(db->scripts[i].name);
			free(db->scripts[i].body);
			continue;
		}
		db->scripts[j++] = db->scripts[i];
	}
	db->n_scripts = j;
}

static void drop_triggers(struct px_apk_db *db, const char *csum)
{
	size_t j = 0, n = strlen(csum);
	for (size_t i = 0; i < db->triggers.n; i++) {
		char *l = db->triggers.v[i];
		if (strncmp(l, csum, n) == 0 && (l[n] == ' ' || l[n] == 0)) {
			free(l);
			continue;
		}
		db->triggers.v[j++] = l;
	}
	db->triggers.n = j;
}

void px_apk_db_begin_package(struct px_apk_db *db, const struct px_apk_package *pk)
{
	const struct px_apk_pkginfo *i = &pk->info;
	struct pkg_rec *old = find_pkg(db, i->name);
	db->replaced = NULL;
	if (old) {
		/* An upgrade: the old stanza, scripts and triggers go; its paths pass to the new
		 * package as it writes them. */
		old->removed = true;
		db->replaced = old->name;
		_cleanup_free_ char *prefix = script_prefix(old->name, old->version, old->checksum);
		drop_scripts(db, prefix);
		if (old->checksum)
			drop_triggers(db, old->checksum);
	}
	struct pkg_rec *p = xcalloc(1, sizeof(*p));
	p->name = xstrdup(i->name);
	p->version = xstrdup(i->version);
	p->checksum = xstrdup(pk->checksum);
	p->origin = i->origin ? xstrdup(i->origin) : NULL;
	for (size_t k = 0; k < i->replaces.n; k++)
		strv_add(&p->replaces, dep_name(i->replaces.v[k], strlen(i->replaces.v[k])));
	p->replaces_priority = i->replaces_priority;

	struct px_buf b = PX_BUF_INIT;
	push_field(&b, 'C', pk->checksum);
	push_field(&b, 'P', i->name);
	push_field(&b, 'V', i->version);
	push_field(&b, 'A', i->arch);
	px_buf_printf(&b, "S:%" PRIu64 "\nI:%" PRIu64 "\n", pk->file_size, i->installed_size);
	px_buf_printf(&b, "T:%s\nU:%s\nL:%s\n", i->description ? i->description : "",
	              i->url ? i->url : "", i->license ? i->license : "");
	push_field(&b, 'o', i->origin);
	push_field(&b, 'm', i->maintainer);
	if (i->build_time)
		px_buf_printf(&b, "t:%" PRId64 "\n", i->build_time);
	push_field(&b, 'c', i->commit);
	if (i->provider_priority)
		px_buf_printf(&b, "k:%" PRIu64 "\n", i->provider_priority);
	push_list(&b, 'D', &i->depends);
	push_list(&b, 'p', &i->provides);
	push_list(&b, 'i', &i->install_if);
	push_list(&b, 'r', &i->replaces);
	if (i->replaces_priority)
		px_buf_printf(&b, "q:%" PRIu32 "\n", i->replaces_priority);
	p->header = px_buf_steal(&b, NULL);

	for (int t = 0; t < PX_APK_SCRIPT_COUNT; t++) {
		const struct px_apk_script *s = &pk->scripts[t];
		if (!s->body)
			continue;
		db->scripts = xreallocarray(db->scripts, db->n_scripts + 1, sizeof(*db->scripts));
		char *body = xmalloc(s->len + 1);
		memcpy(body, s->body, s->len);
		body[s->len] = 0;
		db->scripts[db->n_scripts++] =
		        (struct script_rec){xasprintf("%s-%s.%s.%s", i->name, i->version,
		                                      pk->checksum, px_apk_script_name(t)),
		                            body, s->len, i->build_time};
	}
	if (pk->scripts[PX_APK_TRIGGER].body && i->triggers.n) {
		struct px_buf t = PX_BUF_INIT;
		px_buf_puts(&t, pk->checksum);
		for (size_t k = 0; k < i->triggers.n; k++)
			px_buf_printf(&t, " %s", i->triggers.v[k]);
		strv_add(&db->triggers, px_buf_steal(&t, NULL));
	}
	db->pkgs = xreallocarray(db->pkgs, db->n_pkgs + 1, sizeof(*db->pkgs));
	db->pkgs[db->n_pkgs++] = p;
	db->cur = p;
}

static char *make_acl(uint32_t uid, uint32_t gid, uint32_t mode, const char *xsum,
                      uint32_t default_mode)
{
	bool has_x = xsum && *xsum;
	if (uid == 0 && gid == 0 && mode == default_mode && !has_x)
		return NULL;
	return has_x ? xasprintf("%u:%u:%o:%s", uid, gid, mode, xsum)
	             : xasprintf("%u:%u:%o", uid, gid, mode);
}

static size_t cur_dir(struct pkg_rec *p, const char *path)
{
	for (size_t i = p->n_dirs; i-- > 0;)
		if (strcmp(p->dirs[i].path, path) == 0)
			return i;
	p->dirs = xreallocarray(p->dirs, p->n_dirs + 1, sizeof(*p->dirs));
	p->dirs[p->n_dirs] = (struct dir_rec){xstrdup(path), NULL};
	return p->n_dirs++;
}

void px_apk_db_add_dir(struct px_apk_db *db, const char *path, uint32_t uid, uint32_t gid,
                       uint32_t mode, const char *xattr_sum)
{
	struct pkg_rec *p = db->cur;
	size_t d = cur_dir(p, path);
	free(p->dirs[d].acl);
	p->dirs[d].acl = make_acl(uid, gid, mode, xattr_sum, 0755);
}

void px_apk_db_add_file(struct px_apk_db *db, const char *path, uint32_t uid, uint32_t gid,
                        uint32_t mode, const char *sum, const char *xattr_sum)
{
	struct pkg_rec *p = db->cur;
	const char *slash = strrchr(path, '/');
	_cleanup_free_ char *dir = slash ? xstrndup(path, (size_t)(slash - path)) : xstrdup("");
	size_t d = cur_dir(p, dir);
	struct file_rec f = {d, xstrdup(slash ? slash + 1 : path),
	                     make_acl(uid, gid, mode, xattr_sum, 0644), ""};
	if (sum)
		snprintf(f.sum, sizeof(f.sum), "%s", sum);
	/* A file written twice by one package (rare, but tar allows it) is recorded once. */
	for (size_t i = 0; i < p->n_files; i++) {
		if (p->files[i].dir == d && strcmp(p->files[i].name, f.name) == 0) {
			free(p->files[i].name);
			free(p->files[i].acl);
			p->files[i] = f;
			map_put(&db->owners, path, p->name);
			return;
		}
	}
	p->files = xreallocarray(p->files, p->n_files + 1, sizeof(*p->files));
	p->files[p->n_files++] = f;
	map_put(&db->owners, path, p->name);
}

const char *px_apk_db_file_sum(const struct px_apk_db *db, const char *path)
{
	const struct pkg_rec *p = db->cur;
	const char *slash = strrchr(path, '/');
	const char *leaf = slash ? slash + 1 : path;
	size_t dlen = slash ? (size_t)(slash - path) : 0;
	for (size_t i = 0; p && i < p->n_files; i++) {
		const char *dp = p->dirs[p->files[i].dir].path;
		if (strlen(dp) == dlen && strncmp(dp, path, dlen) == 0 &&
		    strcmp(p->files[i].name, leaf) == 0)
			return p->files[i].sum;
	}
	return "";
}

void px_apk_db_end_package(struct px_apk_db *db)
{
	db->cur = NULL;
}

void px_apk_db_take_stale(struct px_apk_db *db, char ***ret, size_t *ret_n)
{
	struct px_strv v = {0};
	struct owner_map *m = &db->owners;
	/* Paths still pointing at the old stanza's name (by address: the new package's own
	 * name is another string) were not written again. */
	for (size_t i = 0; db->replaced && i < m->cap; i++)
		if (m->keys[i] && m->vals[i] == db->replaced)
			strv_add(&v, xstrdup(m->keys[i]));
	for (size_t i = 0; i < v.n; i++)
		map_put(m, v.v[i], NULL);
	db->replaced = NULL;
	*ret = v.v;
	*ret_n = v.n;
}

void px_apk_db_world_list(const struct px_apk_db *db, char *const **ret, size_t *ret_n)
{
	*ret = db->world.v;
	*ret_n = db->world.n;
}

void px_apk_db_world_add(struct px_apk_db *db, const char *name)
{
	for (size_t i = 0; i < db->world.n; i++)
		if (strcmp(db->world.v[i], name) == 0)
			return;
	strv_add(&db->world, xstrdup(name));
}

static int cmp_pkg(const void *a, const void *b)
{
	const struct pkg_rec *x = *(const struct pkg_rec *const *)a;
	const struct pkg_rec *y = *(const struct pkg_rec *const *)b;
	return strcmp(x->name, y->name);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void write_new_stanza(struct px_buf *b, const struct pkg_rec *p)
{
	px_buf_puts(b, p->header);
	for (size_t d = 0; d < p->n_dirs; d++) {
		px_buf_printf(b, "F:%s\n", p->dirs[d].path);
		if (p->dirs[d].acl)
			px_buf_printf(b, "M:%s\n", p->dirs[d].acl);
		for (size_t i = 0; i < p->n_files; i++) {
			const struct file_rec *f = &p->files[i];
			if (f->dir != d)
				continue;
			px_buf_printf(b, "R:%s\n", f->name);
			if (f->acl)
				px_buf_printf(b, "a:%s\n", f->acl);
			if (f->sum[0])
				px_buf_printf(b, "Z:%s\n", f->sum);
		}
	}
}

static la_ssize_t buf_write_cb(struct archive *a PX_UNUSED, void *ctx, const void *p, size_t n)
{
	px_buf_append(ctx, p, n, NULL);
	return (la_ssize_t)n;
}

/* scripts.tar as apk writes it: GNU tar (long names as 'L' records), mode 0755. */
static void write_scripts(const struct px_apk_db *db, struct px_buf *out)
{
	struct archive *a = archive_write_new();
	if (!a)
		abort();
	archive_write_set_format_gnutar(a);
	if (db->scripts_gz) {
		archive_write_add_filter_gzip(a);
		/* No name or time in the gzip header: the same scripts give the same bytes. */
		archive_write_set_filter_option(a, "gzip", "timestamp", NULL);
	}
	archive_write_set_bytes_in_last_block(a, 1);
	archive_write_open(a, out, NULL, buf_write_cb, NULL);
	for (size_t i = 0; i < db->n_scripts; i++) {
		const struct script_rec *s = &db->scripts[i];
		struct archive_entry *e = archive_entry_new();
		archive_entry_set_pathname(e, s->name);
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_perm(e, 0755);
		archive_entry_set_size(e, (la_int64_t)s->len);
		archive_entry_set_mtime(e, s->mtime, 0);
		archive_write_header(a, e);
		archive_write_data(a, s->body, s->len);
		archive_entry_free(e);
	}
	archive_write_close(a);
	archive_write_free(a);
}

int px_apk_db_write(struct px_apk_db *db, struct px_extfs *fs, int64_t mtime, struct px_err **err)
{
	struct px_extfs_attrs file = {0644, 0, 0, mtime}, dir = {0755, 0, 0, mtime};
	_cleanup_buf_ struct px_buf inst = PX_BUF_INIT, scripts = PX_BUF_INIT, trig = PX_BUF_INIT,
	                            world = PX_BUF_INIT;
	_cleanup_free_ struct pkg_rec **sorted = xcalloc(db->n_pkgs + 1, sizeof(*sorted));
	size_t n = 0;

	for (size_t i = 0; i < db->n_pkgs; i++)
		if (!db->pkgs[i]->removed)
			sorted[n++] = db->pkgs[i];
	qsort(sorted, n, sizeof(*sorted), cmp_pkg);
	for (size_t i = 0; i < n; i++) {
		if (sorted[i]->text) {
			px_buf_puts(&inst, sorted[i]->text);
			if (inst.len && inst.data[inst.len - 1] != '\n')
				px_buf_puts(&inst, "\n");
		} else {
			write_new_stanza(&inst, sorted[i]);
		}
		px_buf_puts(&inst, "\n");
	}
	write_scripts(db, &scripts);
	for (size_t i = 0; i < db->triggers.n; i++)
		px_buf_printf(&trig, "%s\n", db->triggers.v[i]);
	qsort(db->world.v, db->world.n, sizeof(*db->world.v), cmp_str);
	for (size_t i = 0; i < db->world.n; i++)
		px_buf_printf(&world, "%s\n", db->world.v[i]);

	if (px_extfs_mkdir_p(fs, "/lib/apk/db", &dir, err) < 0 ||
	    px_extfs_mkdir_p(fs, "/etc/apk", &dir, err) < 0 ||
	    px_extfs_write_file(fs, INSTALLED_PATH, inst.data ? inst.data : "", inst.len, &file,
	                        err) < 0 ||
	    px_extfs_write_file(fs, db->scripts_gz ? SCRIPTS_GZ : SCRIPTS_PATH,
	                        scripts.data ? scripts.data : "", scripts.len, &file, err) < 0 ||
	    px_extfs_write_file(fs, TRIGGERS_PATH, trig.data ? trig.data : "", trig.len, &file,
	                        err) < 0 ||
	    px_extfs_write_file(fs, WORLD_PATH, world.data ? world.data : "", world.len, &file,
	                        err) < 0)
		return px_err_wrap(err, "writing the apk database into the image");
	return 0;
}
