/* The .apk reader behind package.h: members through apk/gzstream, tar through libarchive
 * (from memory, so nothing is unpacked on the host), digests through libcrypto. */
#include <archive.h>
#include <archive_entry.h>
#include <openssl/evp.h>

#include "core/common.h"

#include "apk/gzstream.h"
#include "apk/package.h"
#include "core/buf.h"
#include "core/sha256.h"

/* A package's data member may inflate to this much (Firefox is about 250 MiB). */
#define DATA_INFLATE_MAX (UINT64_C(8) << 30)
/* The longest path and link target accepted from an archive. */
#define PATH_MAX_LEN 4096
/* The most extended attributes on one entry. */
#define XATTR_MAX 64

static const char *const script_names[PX_APK_SCRIPT_COUNT] = {
        "pre-install", "post-install", "pre-deinstall", "post-deinstall",
        "pre-upgrade", "post-upgrade", "trigger",
};

const char *px_apk_script_name(enum px_apk_script_type t)
{
	return t < PX_APK_SCRIPT_COUNT ? script_names[t] : "?";
}

void px_apk_qsum(const uint8_t sha1[PX_APK_SHA1_LEN], char out[PX_APK_QSUM_LEN])
{
	out[0] = 'Q';
	out[1] = '1';
	/* 20 bytes encode to 28 characters plus the NUL EVP_EncodeBlock writes. */
	EVP_EncodeBlock((unsigned char *)out + 2, sha1, PX_APK_SHA1_LEN);
}

static void sha1(const void *p, size_t n, uint8_t out[PX_APK_SHA1_LEN])
{
	if (EVP_Digest(p, n, out, NULL, EVP_sha1(), NULL) != 1)
		abort();
}

static void strv_free(struct px_strv *v)
{
	for (size_t i = 0; i < v->n; i++)
		free(v->v[i]);
	free(v->v);
	v->v = NULL;
	v->n = 0;
}

static void strv_push(struct px_strv *v, const char *s, size_t len)
{
	v->v = xreallocarray(v->v, v->n + 2, sizeof(*v->v));
	v->v[v->n++] = xstrndup(s, len);
	v->v[v->n] = NULL;
}

/* Splits a space-separated value into v (apk writes several dependencies on one line in
 * some versions and one per line in others: both end up one per item). */
static void strv_push_words(struct px_strv *v, const char *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		while (i < len && s[i] == ' ')
			i++;
		size_t start = i;
		while (i < len && s[i] != ' ')
			i++;
		if (i > start)
			strv_push(v, s + start, i - start);
	}
}

void px_apk_package_free(struct px_apk_package *p)
{
	if (!p)
		return;
	struct px_apk_pkginfo *i = &p->info;
	free(i->name);
	free(i->version);
	free(i->arch);
	free(i->description);
	free(i->url);
	free(i->license);
	free(i->origin);
	free(i->maintainer);
	free(i->commit);
	free(i->datahash);
	strv_free(&i->depends);
	strv_free(&i->provides);
	strv_free(&i->install_if);
	strv_free(&i->replaces);
	strv_free(&i->triggers);
	for (int t = 0; t < PX_APK_SCRIPT_COUNT; t++)
		free(p->scripts[t].body);
	free(p);
}

static int parse_u64(const char *s, size_t len, uint64_t *ret)
{
	uint64_t v = 0;
	if (len == 0 || len > 20)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (px_mul_overflow(v, 10, &v) || px_add_overflow(v, (uint64_t)(s[i] - '0'), &v))
			return -1;
	}
	*ret = v;
	return 0;
}

static void set_str(char **field, const char *v, size_t len)
{
	free(*field);
	*field = xstrndup(v, len);
}

/* One "key = value" line of .PKGINFO. Unknown keys are skipped, as apk does. */
static int pkginfo_line(struct px_apk_pkginfo *i, const char *line, size_t len, const char *what,
                        unsigned lineno, struct px_err **err)
{
	const char *eq = memmem(line, len, " = ", 3);
	if (len == 0 || line[0] == '#' || !eq)
		return 0;
	size_t klen = (size_t)(eq - line);
	const char *v = eq + 3;
	size_t vlen = len - klen - 3;
	uint64_t n = 0;

#define KEY(k) (klen == strlen(k) && memcmp(line, k, klen) == 0)
	if (KEY("pkgname"))
		set_str(&i->name, v, vlen);
	else if (KEY("pkgver"))
		set_str(&i->version, v, vlen);
	else if (KEY("arch"))
		set_str(&i->arch, v, vlen);
	else if (KEY("pkgdesc"))
		set_str(&i->description, v, vlen);
	else if (KEY("url"))
		set_str(&i->url, v, vlen);
	else if (KEY("license"))
		set_str(&i->license, v, vlen);
	else if (KEY("origin"))
		set_str(&i->origin, v, vlen);
	else if (KEY("maintainer"))
		set_str(&i->maintainer, v, vlen);
	else if (KEY("commit"))
		set_str(&i->commit, v, vlen);
	else if (KEY("datahash"))
		set_str(&i->datahash, v, vlen);
	else if (KEY("depend"))
		strv_push_words(&i->depends, v, vlen);
	else if (KEY("provides"))
		strv_push_words(&i->provides, v, vlen);
	else if (KEY("install_if"))
		strv_push_words(&i->install_if, v, vlen);
	else if (KEY("replaces"))
		strv_push_words(&i->replaces, v, vlen);
	else if (KEY("triggers"))
		strv_push_words(&i->triggers, v, vlen);
	else if (KEY("size") || KEY("builddate") || KEY("provider_priority") ||
	         KEY("replaces_priority")) {
		if (parse_u64(v, vlen, &n) < 0)
			return px_err_set(err, PX_EXIT_INPUT,
			                  "'%s': .PKGINFO line %u: '%.*s' is not a number", what,
			                  lineno, (int)(vlen > 64 ? 64 : vlen), v);
		if (KEY("size")) {
			i->installed_size = n;
		} else if (KEY("builddate")) {
			i->build_time = n > INT64_MAX ? INT64_MAX : (int64_t)n;
		} else if (KEY("provider_priority")) {
			i->provider_priority = n;
			i->has_provider_priority = true;
		} else {
			i->replaces_priority = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
		}
	}
#undef KEY
	return 0;
}

static int parse_pkginfo(struct px_apk_pkginfo *i, const char *text, size_t len, const char *what,
                         struct px_err **err)
{
	unsigned lineno = 0;
	for (size_t pos = 0; pos < len;) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - text) : len;
		lineno++;
		if (pkginfo_line(i, text + pos, end - pos, what, lineno, err) < 0)
			return -1;
		pos = end + 1;
	}
	if (!i->name || !*i->name || !i->version || !*i->version)
		return px_err_set(err, PX_EXIT_INPUT, "'%s': .PKGINFO has no pkgname or pkgver",
		                  what);
	if (i->datahash) {
		bool hex = strlen(i->datahash) == 64;
		for (size_t k = 0; hex && k < 64; k++)
			hex = strchr("0123456789abcdef", i->datahash[k]) != NULL;
		if (!hex)
			return px_err_set(err, PX_EXIT_INPUT,
			                  "'%s': .PKGINFO datahash '%s' is not 64 hex digits", what,
			                  i->datahash);
	}
	return 0;
}

static void archive_freep(struct archive **a)
{
	if (*a)
		archive_read_free(*a);
}

/* A libarchive reader over one gzip member in memory. */
static int open_tar(const void *buf, size_t len, const char *what, struct archive **ret,
                    struct px_err **err)
{
	struct archive *a = archive_read_new();
	if (!a)
		abort();
	archive_read_support_filter_gzip(a);
	archive_read_support_format_tar(a);
	if (archive_read_open_memory(a, buf, len) != ARCHIVE_OK) {
		int r = px_err_set(err, PX_EXIT_INPUT, "'%s': %s", what, archive_error_string(a));
		archive_read_free(a);
		return r;
	}
	*ret = a;
	return 0;
}

/* The next header, or 1 at the end. apk cuts the end-of-archive blocks off the control
 * and data tars so the members concatenate; libarchive then reports a clean end, or on
 * some versions a truncation exactly at a header boundary, which is the same thing. */
static int next_header(struct archive *a, struct archive_entry **e, const char *what,
                       struct px_err **err)
{
	int r = archive_read_next_header(a, e);
	if (r == ARCHIVE_EOF)
		return 1;
	if (r == ARCHIVE_OK || r == ARCHIVE_WARN)
		return 0;
	const char *why = archive_error_string(a);
	if (why && strstr(why, "Truncated tar archive") && archive_filter_bytes(a, 0) % 512 == 0 &&
	    archive_file_count(a) > 0)
		return 1;
	return px_err_set(err, PX_EXIT_INPUT, "'%s': %s", what, why ? why : "corrupt tar");
}

/* Reads the current entry's contents into a NUL-terminated buffer of at most max bytes. */
static int read_body(struct archive *a, struct archive_entry *e, size_t max, const char *what,
                     char **ret, size_t *ret_len, struct px_err **err)
{
	int64_t size = archive_entry_size(e);
	if (size < 0 || (uint64_t)size > max)
		return px_err_set(err, PX_EXIT_INPUT, "'%s': entry '%s' is larger than %zu bytes",
		                  what, archive_entry_pathname(e), max);
	_cleanup_free_ char *body = xmalloc((size_t)size + 1);
	size_t got = 0;
	while (got < (size_t)size) {
		la_ssize_t n = archive_read_data(a, body + got, (size_t)size - got);
		if (n < 0)
			return px_err_set(err, PX_EXIT_INPUT, "'%s': entry '%s': %s", what,
			                  archive_entry_pathname(e), archive_error_string(a));
		if (n == 0)
			return px_err_set(err, PX_EXIT_INPUT, "'%s': entry '%s' is truncated", what,
			                  archive_entry_pathname(e));
		got += (size_t)n;
	}
	body[got] = '\0';
	*ret = steal_ptr(&body);
	*ret_len = got;
	return 0;
}

static int read_control(struct px_apk_package *p, const uint8_t *buf, const struct px_gz_member *m,
                        const char *what, struct px_err **err)
{
	_cleanup_(archive_freep) struct archive *a = NULL;
	struct archive_entry *e;
	bool have_info = false;
	int r;

	if (open_tar(buf + m->offset, m->len, what, &a, err) < 0)
		return -1;
	while ((r = next_header(a, &e, what, err)) == 0) {
		const char *name = archive_entry_pathname(e);
		if (!name || archive_entry_filetype(e) != AE_IFREG)
			continue;
		if (strcmp(name, ".PKGINFO") == 0) {
			_cleanup_free_ char *text = NULL;
			size_t len = 0;
			if (read_body(a, e, PX_APK_CONTROL_MAX, what, &text, &len, err) < 0 ||
			    parse_pkginfo(&p->info, text, len, what, err) < 0)
				return -1;
			have_info = true;
			continue;
		}
		for (int t = 0; t < PX_APK_SCRIPT_COUNT; t++) {
			if (name[0] != '.' || strcmp(name + 1, script_names[t]) != 0)
				continue;
			free(p->scripts[t].body);
			p->scripts[t].body = NULL;
			if (read_body(a, e, PX_APK_CONTROL_MAX, what, &p->scripts[t].body,
			              &p->scripts[t].len, err) < 0)
				return -1;
		}
	}
	if (r < 0)
		return -1;
	if (!have_info)
		return px_err_set(err, PX_EXIT_INPUT, "'%s': the control member has no .PKGINFO",
		                  what);
	return 0;
}

int px_apk_package_read(const void *buf, size_t len, const char *what, struct px_apk_package **ret,
                        struct px_err **err)
{
	_cleanup_free_ struct px_gz_member *m = NULL;
	size_t n = 0;
	uint8_t csum[PX_APK_SHA1_LEN], sha256[PX_SHA256_LEN];

	if (px_gzstream_split(buf, len, what, DATA_INFLATE_MAX, &m, &n, err) < 0)
		return -1;
	if (n != 3 && n != 2)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "'%s' has %zu gzip members; an apk package has 3 (signature, "
		                  "control, data)",
		                  what, n);
	/* A package without a signature member (apk index --allow-untrusted builds them) has
	 * only control and data: the index's C: still vouches for the control member. */
	const struct px_gz_member *control = &m[n - 2], *data = &m[n - 1];
	struct px_apk_package *p = xcalloc(1, sizeof(*p));
	if (read_control(p, buf, control, what, err) < 0) {
		px_apk_package_free(p);
		return -1;
	}
	sha1((const uint8_t *)buf + control->offset, control->len, csum);
	px_apk_qsum(csum, p->checksum);
	px_sha256_buf((const uint8_t *)buf + data->offset, data->len, sha256);
	px_sha256_hex(sha256, p->datahash);
	p->data = (const uint8_t *)buf + data->offset;
	p->data_len = data->len;
	p->file_size = len;
	*ret = p;
	return 0;
}

int px_apk_package_verify(const struct px_apk_package *p, const char *index_checksum,
                          struct px_err **err)
{
	const char *name = p->info.name;
	if (index_checksum && strcmp(index_checksum, p->checksum) != 0)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "package '%s-%s': the control member's checksum is %s but the "
		                  "index says %s",
		                  name, p->info.version, p->checksum, index_checksum);
	if (!p->info.datahash)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "package '%s-%s': .PKGINFO has no datahash to check the data "
		                  "against",
		                  name, p->info.version);
	if (strcmp(p->info.datahash, p->datahash) != 0)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "package '%s-%s': the data member's SHA-256 is %s but .PKGINFO "
		                  "says %s",
		                  name, p->info.version, p->datahash, p->info.datahash);
	return 0;
}

/* Normalises an archive path: drops a leading "./" and "/"s and a trailing "/", refuses
 * ".." components, empty results and control characters. Returns NULL when refused. */
static char *clean_path(const char *in)
{
	if (!in || strlen(in) > PATH_MAX_LEN)
		return NULL;
	while (in[0] == '.' && in[1] == '/')
		in += 2;
	while (*in == '/')
		in++;
	_cleanup_free_ char *s = xstrdup(in);
	size_t len = strlen(s);
	while (len > 0 && s[len - 1] == '/')
		s[--len] = '\0';
	if (len == 0 || strcmp(s, ".") == 0)
		return NULL;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return NULL;
	for (const char *c = s; c;) {
		const char *slash = strchr(c, '/');
		size_t clen = slash ? (size_t)(slash - c) : strlen(c);
		if ((clen == 2 && c[0] == '.' && c[1] == '.') || clen == 0)
			return NULL;
		c = slash ? slash + 1 : NULL;
	}
	return steal_ptr(&s);
}

static void xattrs_free(struct px_apk_xattr *x, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(x[i].name);
		free(x[i].value);
	}
	free(x);
}

struct walk {
	struct archive *a;
	const char *what;
	size_t max_file;
	px_apk_entry_fn fn;
	void *ctx;
};

static int walk_entry(struct walk *w, struct archive_entry *ae, struct px_err **err)
{
	const char *raw = archive_entry_pathname(ae);
	_cleanup_free_ char *path = clean_path(raw);
	_cleanup_free_ char *link = NULL;
	_cleanup_free_ char *content = NULL;
	struct px_apk_xattr *xattrs = NULL;
	size_t n_xattrs = 0;
	struct px_apk_entry e = {0};
	int r;

	if (!path)
		return px_err_set(
		        err, PX_EXIT_INPUT,
		        "'%s': refusing archive entry '%s': its path is empty, has a '..' "
		        "component or control characters",
		        w->what, raw ? raw : "");
	e.path = path;
	e.mode = archive_entry_perm(ae) & 07777;
	e.uid = archive_entry_uid(ae) < 0 || archive_entry_uid(ae) > UINT32_MAX - 1
	                ? 0
	                : (uint32_t)archive_entry_uid(ae);
	e.gid = archive_entry_gid(ae) < 0 || archive_entry_gid(ae) > UINT32_MAX - 1
	                ? 0
	                : (uint32_t)archive_entry_gid(ae);
	e.uname = archive_entry_uname(ae);
	e.gname = archive_entry_gname(ae);
	e.mtime = archive_entry_mtime(ae);

	const char *hard = archive_entry_hardlink(ae);
	const char *sym = archive_entry_symlink(ae);
	if (hard) {
		link = clean_path(hard);
		if (!link)
			return px_err_set(err, PX_EXIT_INPUT,
			                  "'%s': refusing hard link '%s' to '%s'", w->what, path,
			                  hard);
		e.type = PX_APK_HARDLINK;
		e.link = link;
	} else {
		switch (archive_entry_filetype(ae)) {
		case AE_IFDIR:
			e.type = PX_APK_DIR;
			break;
		case AE_IFLNK:
			if (!sym || !*sym || strlen(sym) > PATH_MAX_LEN)
				return px_err_set(err, PX_EXIT_INPUT,
				                  "'%s': symbolic link '%s' has no usable target",
				                  w->what, path);
			e.type = PX_APK_SYMLINK;
			e.link = sym;
			sha1(sym, strlen(sym), e.sha1);
			e.has_sha1 = true;
			break;
		case AE_IFREG: {
			size_t len = 0;
			e.type = PX_APK_REG;
			if (read_body(w->a, ae, w->max_file, w->what, &content, &len, err) < 0)
				return -1;
			e.content = (const uint8_t *)content;
			e.size = len;
			sha1(e.content, len, e.sha1);
			e.has_sha1 = true;
			break;
		}
		default:
			return px_err_set(err, PX_EXIT_INPUT,
			                  "'%s': entry '%s' is a device, fifo or socket; apk "
			                  "packages install only files, directories and links",
			                  w->what, path);
		}
	}

	if (archive_entry_xattr_reset(ae) > 0) {
		const char *name;
		const void *value;
		size_t size;
		xattrs = xcalloc(XATTR_MAX, sizeof(*xattrs));
		while (archive_entry_xattr_next(ae, &name, &value, &size) == ARCHIVE_OK) {
			/* libarchive's pax writer stores each attribute twice (SCHILY.xattr and
			 * LIBARCHIVE.xattr) and its reader reports both: keep one per name. */
			bool dup = false;
			for (size_t k = 0; k < n_xattrs && !dup; k++)
				dup = strcmp(xattrs[k].name, name) == 0;
			if (dup)
				continue;
			if (n_xattrs == XATTR_MAX) {
				xattrs_free(xattrs, n_xattrs);
				return px_err_set(err, PX_EXIT_INPUT,
				                  "'%s': entry '%s' has more than %d extended "
				                  "attributes",
				                  w->what, path, XATTR_MAX);
			}
			xattrs[n_xattrs].name = xstrdup(name);
			xattrs[n_xattrs].value = xmalloc(size ? size : 1);
			if (size)
				memcpy(xattrs[n_xattrs].value, value, size);
			xattrs[n_xattrs].len = size;
			n_xattrs++;
		}
	}
	e.xattrs = xattrs;
	e.n_xattrs = n_xattrs;
	r = w->fn(w->ctx, &e, err);
	xattrs_free(xattrs, n_xattrs);
	return r;
}

int px_apk_package_foreach(const struct px_apk_package *p, size_t max_file, px_apk_entry_fn fn,
                           void *ctx, struct px_err **err)
{
	_cleanup_(archive_freep) struct archive *a = NULL;
	_cleanup_free_ char *what = xasprintf("%s-%s data", p->info.name, p->info.version);
	struct archive_entry *ae;
	int r;

	if (open_tar(p->data, p->data_len, what, &a, err) < 0)
		return -1;
	struct walk w = {a, what, max_file, fn, ctx};
	while ((r = next_header(a, &ae, what, err)) == 0) {
		r = walk_entry(&w, ae, err);
		if (r != 0)
			return r;
	}
	return r < 0 ? -1 : 0;
}
