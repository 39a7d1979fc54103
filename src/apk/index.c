#include "core/common.h"

#include "apk/gzstream.h"
#include "apk/index.h"
#include "apk/tarmem.h"
#include "apk/version.h"
#include "core/file.h"

/* ---- dependencies ---- */

static bool is_dep_sep(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_op_char(char c)
{
	return c == '<' || c == '>' || c == '=' || c == '~';
}

int px_apk_dep_parse(const char *s, size_t len, struct px_apk_dep *ret, struct px_err **err)
{
	size_t i = 0;
	bool conflict = false;

	if (len > 0 && s[0] == '!') {
		conflict = true;
		i = 1;
	}
	size_t name_start = i;
	while (i < len && !is_op_char(s[i]))
		i++;
	if (i == name_start)
		return px_err_set(err, PX_EXIT_INPUT, "bad dependency '%.*s': no name",
		                  (int)(len > 200 ? 200 : len), s);
	for (size_t k = name_start; k < i; k++)
		if ((unsigned char)s[k] < 0x21 || s[k] == 0x7f)
			return px_err_set(err, PX_EXIT_INPUT,
			                  "bad dependency '%.*s': control character in the name",
			                  (int)(len > 200 ? 200 : len), s);
	struct px_apk_dep d = {.name = xstrndup(s + name_start, i - name_start)};
	if (i < len) {
		size_t op_start = i;
		while (i < len && is_op_char(s[i]))
			i++;
		d.op = px_apk_version_op_parse(s + op_start, i - op_start);
		if (d.op == 0 || i == len) {
			int r = px_err_set(err, PX_EXIT_INPUT, "bad dependency '%.*s': %s",
			                   (int)(len > 200 ? 200 : len), s,
			                   d.op == 0 ? "unknown operator"
			                             : "no version after operator");
			free(d.name);
			return r;
		}
		d.version = xstrndup(s + i, len - i);
	} else {
		d.op = PX_APK_DEP_ANY;
	}
	if (conflict) {
		d.op |= PX_APK_VER_CONFLICT;
		d.conflict = true;
	}
	*ret = d;
	return 0;
}

int px_apk_deps_parse(const char *s, size_t len, struct px_apk_deps *ret, struct px_err **err)
{
	struct px_apk_deps d = {0};
	size_t i = 0;

	while (i < len) {
		while (i < len && is_dep_sep(s[i]))
			i++;
		if (i == len)
			break;
		size_t start = i;
		while (i < len && !is_dep_sep(s[i]))
			i++;
		d.v = xreallocarray(d.v, d.n + 1, sizeof(*d.v));
		if (px_apk_dep_parse(s + start, i - start, &d.v[d.n], err) < 0) {
			px_apk_deps_free(&d);
			return -1;
		}
		d.n++;
	}
	*ret = d;
	return 0;
}

char *px_apk_dep_format(const struct px_apk_dep *d)
{
	if (!d->version)
		return xasprintf("%s%s", d->conflict ? "!" : "", d->name);
	return xasprintf("%s%s%s%s", d->conflict ? "!" : "", d->name, px_apk_version_op_name(d->op),
	                 d->version);
}

void px_apk_dep_free(struct px_apk_dep *d)
{
	if (!d)
		return;
	free(d->name);
	free(d->version);
	*d = (struct px_apk_dep){0};
}

void px_apk_deps_free(struct px_apk_deps *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		px_apk_dep_free(&d->v[i]);
	free(d->v);
	*d = (struct px_apk_deps){0};
}

/* ---- checksums ---- */

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decodes standard padded base64 of exactly 'want' bytes. */
static bool b64_decode(const char *s, size_t len, uint8_t *out, size_t want)
{
	size_t n = 0;
	if (len % 4 != 0 || len / 4 * 3 < want || len / 4 * 3 > want + 2)
		return false;
	for (size_t i = 0; i < len; i += 4) {
		int v[4];
		for (int k = 0; k < 4; k++) {
			v[k] = s[i + k] == '=' && i + 4 == len && k >= 2 ? 0 : b64_value(s[i + k]);
			if (v[k] < 0)
				return false;
		}
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
		             (uint32_t)v[3];
		uint8_t b[3] = {(uint8_t)(w >> 16), (uint8_t)(w >> 8), (uint8_t)w};
		for (int k = 0; k < 3; k++) {
			if (n < want)
				out[n++] = b[k];
			else if (b[k] != 0 || s[i + 1 + (size_t)k] != '=')
				return false; /* data where padding belongs */
		}
	}
	return n == want;
}

int px_apk_checksum_decode(const char *text, uint8_t out[32])
{
	size_t len = strlen(text);
	if (len >= 2 && text[0] == 'Q' && (text[1] == '1' || text[1] == '2')) {
		size_t want = text[1] == '1' ? 20 : 32;
		return b64_decode(text + 2, len - 2, out, want) ? (int)want : -1;
	}
	/* Old indexes wrote the MD5 of the control stream in hex. */
	if (len == 32) {
		for (size_t i = 0; i < 16; i++) {
			int hi, lo;
			char h = text[2 * i], l = text[2 * i + 1];
			hi = h >= '0' && h <= '9'   ? h - '0'
			     : h >= 'a' && h <= 'f' ? h - 'a' + 10
			                            : -1;
			lo = l >= '0' && l <= '9'   ? l - '0'
			     : l >= 'a' && l <= 'f' ? l - 'a' + 10
			                            : -1;
			if (hi < 0 || lo < 0)
				return -1;
			out[i] = (uint8_t)(hi << 4 | lo);
		}
		return 16;
	}
	return -1;
}

char *px_apk_checksum_encode(const uint8_t *digest, size_t len)
{
	static const char tbl[] =
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = xmalloc(2 + (len + 2) / 3 * 4 + 1);
	size_t o = 0;
	out[o++] = 'Q';
	out[o++] = len == 32 ? '2' : '1';
	for (size_t i = 0; i < len; i += 3) {
		uint32_t w = (uint32_t)digest[i] << 16;
		if (i + 1 < len)
			w |= (uint32_t)digest[i + 1] << 8;
		if (i + 2 < len)
			w |= digest[i + 2];
		out[o++] = tbl[w >> 18 & 63];
		out[o++] = tbl[w >> 12 & 63];
		out[o++] = i + 1 < len ? tbl[w >> 6 & 63] : '=';
		out[o++] = i + 2 < len ? tbl[w & 63] : '=';
	}
	out[o] = 0;
	return out;
}

/* ---- packages and index text ---- */

void px_apk_pkg_free(struct px_apk_pkg *p)
{
	if (!p)
		return;
	free(p->name);
	free(p->version);
	free(p->arch);
	free(p->description);
	free(p->url);
	free(p->license);
	free(p->origin);
	free(p->maintainer);
	free(p->commit);
	free(p->checksum);
	px_apk_deps_free(&p->depends);
	px_apk_deps_free(&p->provides);
	px_apk_deps_free(&p->install_if);
	px_apk_deps_free(&p->replaces);
	free(p);
}

char *px_apk_pkg_filename(const struct px_apk_pkg *p)
{
	return xasprintf("%s-%s", p->name, p->version);
}

void px_apk_index_free(struct px_apk_index *idx)
{
	if (!idx)
		return;
	for (size_t i = 0; i < idx->n; i++)
		px_apk_pkg_free(idx->pkgs[i]);
	free(idx->pkgs);
	free(idx->description);
	free(idx->what);
	free(idx->signer);
	*idx = (struct px_apk_index){0};
}

static int parse_u64(const char *v, size_t len, uint64_t *ret)
{
	uint64_t n = 0;
	if (len == 0 || len > 20)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		if (n > (UINT64_MAX - 9) / 10)
			return -1;
		n = n * 10 + (uint64_t)(v[i] - '0');
	}
	*ret = n;
	return 0;
}

static int parse_int(const char *v, size_t len, int *ret)
{
	uint64_t n;
	bool neg = len > 0 && v[0] == '-';
	if (parse_u64(v + neg, len - neg, &n) < 0 || n > INT32_MAX)
		return -1;
	*ret = neg ? -(int)n : (int)n;
	return 0;
}

/* Replaces *slot with a copy of the value. */
static void set_str(char **slot, const char *v, size_t len)
{
	free(*slot);
	*slot = xstrndup(v, len);
}

static int end_stanza(struct px_apk_index *idx, struct px_apk_pkg **cur, const char *what,
                      struct px_err **err)
{
	struct px_apk_pkg *p = *cur;
	if (!p)
		return 0;
	*cur = NULL;
	if (!p->name || !p->version) {
		unsigned line = p->line;
		bool no_name = !p->name;
		px_apk_pkg_free(p);
		return px_err_set(err, PX_EXIT_INPUT, "'%s':%u: package without %s", what, line,
		                  no_name ? "a name (P:)" : "a version (V:)");
	}
	if (idx->n >= PX_APK_INDEX_MAX_PKGS) {
		px_apk_pkg_free(p);
		return px_err_set(err, PX_EXIT_INPUT, "'%s': more than %d packages", what,
		                  PX_APK_INDEX_MAX_PKGS);
	}
	idx->pkgs = xreallocarray(idx->pkgs, idx->n + 1, sizeof(*idx->pkgs));
	idx->pkgs[idx->n++] = p;
	return 0;
}

static int parse_field(struct px_apk_pkg *p, char key, const char *v, size_t len,
                       struct px_err **err)
{
	uint64_t n;
	switch (key) {
	case 'P':
		if (len == 0)
			return px_err_set(err, PX_EXIT_INPUT, "empty package name");
		set_str(&p->name, v, len);
		return 0;
	case 'V':
		set_str(&p->version, v, len);
		return 0;
	case 'A':
		set_str(&p->arch, v, len);
		return 0;
	case 'T':
		set_str(&p->description, v, len);
		return 0;
	case 'U':
		set_str(&p->url, v, len);
		return 0;
	case 'L':
		set_str(&p->license, v, len);
		return 0;
	case 'o':
		set_str(&p->origin, v, len);
		return 0;
	case 'm':
		set_str(&p->maintainer, v, len);
		return 0;
	case 'c':
		set_str(&p->commit, v, len);
		return 0;
	case 'S':
	case 'I':
	case 't':
		if (parse_u64(v, len, &n) < 0)
			return px_err_set(err, PX_EXIT_INPUT,
			                  "bad number '%.*s' in %c:", (int)(len > 40 ? 40 : len), v,
			                  key);
		if (key == 'S')
			p->size = n;
		else if (key == 'I')
			p->installed_size = n;
		else if (n > INT64_MAX)
			return px_err_set(err, PX_EXIT_INPUT, "bad build time '%.*s'",
			                  (int)(len > 40 ? 40 : len), v);
		else
			p->build_time = (int64_t)n;
		return 0;
	case 'k':
	case 'q': {
		int k;
		if (parse_int(v, len, &k) < 0)
			return px_err_set(err, PX_EXIT_INPUT,
			                  "bad number '%.*s' in %c:", (int)(len > 40 ? 40 : len), v,
			                  key);
		if (key == 'k') {
			p->provider_priority = k;
			p->has_provider_priority = true;
		} else {
			p->replaces_priority = k;
		}
		return 0;
	}
	case 'C': {
		_cleanup_free_ char *text = xstrndup(v, len);
		int r = px_apk_checksum_decode(text, p->csum);
		if (r < 0)
			return px_err_set(err, PX_EXIT_INPUT, "bad checksum '%.*s'",
			                  (int)(len > 80 ? 80 : len), v);
		p->csum_len = (size_t)r;
		free(p->checksum);
		p->checksum = steal_ptr(&text);
		return 0;
	}
	case 'D':
	case 'p':
	case 'i':
	case 'r': {
		struct px_apk_deps *d = key == 'D'   ? &p->depends
		                        : key == 'p' ? &p->provides
		                        : key == 'i' ? &p->install_if
		                                     : &p->replaces;
		struct px_apk_deps add;
		if (px_apk_deps_parse(v, len, &add, err) < 0)
			return px_err_wrap(err, "in %c:", key);
		/* A repeated field adds to the list, as apk's parser does. */
		if (add.n) {
			d->v = xreallocarray(d->v, d->n + add.n, sizeof(*d->v));
			memcpy(d->v + d->n, add.v, add.n * sizeof(*add.v));
			d->n += add.n;
		}
		free(add.v);
		return 0;
	}
	default:
		/* Fields apk knows but the solver does not use (installed-database file lines
		 * F R a M Z, and others) and letters of future versions. */
		return 0;
	}
}

int px_apk_index_parse(const char *text, size_t len, const char *what, int repo,
                       struct px_apk_index *ret, struct px_err **err)
{
	struct px_apk_index idx = {.what = xstrdup(what)};
	struct px_apk_pkg *cur = NULL;
	size_t pos = 0;
	unsigned line = 0;

	if (len > PX_APK_INDEX_MAX_TEXT)
		goto too_big;
	while (pos < len) {
		const char *s = text + pos;
		const char *nl = memchr(s, '\n', len - pos);
		size_t l = nl ? (size_t)(nl - s) : len - pos;
		pos += l + (nl ? 1 : 0);
		line++;
		if (l > 0 && s[l - 1] == '\r')
			l--;
		if (l == 0) {
			if (end_stanza(&idx, &cur, what, err) < 0)
				goto fail;
			continue;
		}
		if (l < 2 || s[1] != ':') {
			px_err_set(err, PX_EXIT_INPUT, "'%s':%u: expected 'X:value', got '%.*s'",
			           what, line, (int)(l > 60 ? 60 : l), s);
			goto fail;
		}
		if (!cur) {
			cur = xcalloc(1, sizeof(*cur));
			cur->repo = repo;
			cur->line = line;
		}
		if (s[0] == 'P')
			cur->line = line;
		if (parse_field(cur, s[0], s + 2, l - 2, err) < 0) {
			px_err_wrap(err, "'%s':%u", what, line);
			goto fail;
		}
	}
	if (end_stanza(&idx, &cur, what, err) < 0)
		goto fail;
	*ret = idx;
	return 0;
too_big:
	px_err_set(err, PX_EXIT_INPUT, "'%s': index larger than %" PRIu64 " bytes", what,
	           (uint64_t)PX_APK_INDEX_MAX_TEXT);
fail:
	px_apk_pkg_free(cur);
	px_apk_index_free(&idx);
	return -1;
}

/* ---- APKINDEX.tar.gz ---- */

struct control_files {
	const char *what;
	int repo;
	char *description;
	struct px_apk_index idx;
	bool have_index;
};

static int take_control_file(void *ctx, const char *name, const uint8_t *data, size_t len,
                             struct px_err **err)
{
	struct control_files *c = ctx;
	if (strcmp(name, "DESCRIPTION") == 0) {
		free(c->description);
		c->description = xstrndup((const char *)data, len);
		/* apk writes it without a newline; be tolerant of one. */
		size_t l = strlen(c->description);
		while (l > 0 && (c->description[l - 1] == '\n' || c->description[l - 1] == '\r'))
			c->description[--l] = 0;
	} else if (strcmp(name, "APKINDEX") == 0) {
		if (c->have_index)
			return px_err_set(err, PX_EXIT_INPUT, "'%s': two APKINDEX files", c->what);
		if (px_apk_index_parse((const char *)data, len, c->what, c->repo, &c->idx, err) < 0)
			return -1;
		c->have_index = true;
	}
	return 0;
}

int px_apk_index_read_targz(const struct px_apk_keyring *kr, const void *buf, size_t len,
                            const char *what, bool allow_untrusted, int repo,
                            struct px_apk_index *ret, struct px_err **err)
{
	struct px_apk_signed s;
	_cleanup_free_ uint8_t *tar = NULL;
	size_t tar_len;
	struct control_files c = {.what = what, .repo = repo};

	if (px_apk_sign_check_stream(kr, buf, len, what, allow_untrusted, &s, err) < 0)
		return -1;
	if (s.n_members != s.control + 1) {
		px_apk_signed_free(&s);
		return px_err_set(err, PX_EXIT_INPUT,
		                  "'%s': %zu gzip streams, expected a signature and an index", what,
		                  s.n_members);
	}
	int r = px_gzstream_inflate(buf, &s.members[s.control], what, PX_APK_INDEX_MAX_TEXT, &tar,
	                            &tar_len, err);
	if (r == 0)
		r = px_tarmem_each(tar, tar_len, what, PX_APK_INDEX_MAX_TEXT, take_control_file, &c,
		                   err);
	if (r == 0 && !c.have_index)
		r = px_err_set(err, PX_EXIT_INPUT, "'%s' has no APKINDEX file", what);
	if (r < 0) {
		px_apk_signed_free(&s);
		free(c.description);
		px_apk_index_free(&c.idx);
		return -1;
	}
	c.idx.description = c.description;
	c.idx.signer = steal_ptr(&s.signer);
	c.idx.sig_status = s.status;
	px_apk_signed_free(&s);
	*ret = c.idx;
	return 0;
}

int px_apk_index_load(const struct px_apk_keyring *kr, const char *path, bool allow_untrusted,
                      int repo, struct px_apk_index *ret, struct px_err **err)
{
	_cleanup_free_ char *data = NULL;
	size_t len;
	if (px_file_read(path, PX_APK_INDEX_MAX_TEXT, &data, &len, err) < 0)
		return -1;
	return px_apk_index_read_targz(kr, data, len, path, allow_untrusted, repo, ret, err);
}

/* ---- repository sets ---- */

struct name_entry {
	char *name;
	struct px_apk_provider *v;
	size_t n;
	struct name_entry *next;
};

struct px_apk_repos {
	struct px_apk_index **v;
	size_t n;
	struct name_entry **buckets;
	size_t n_buckets;
	size_t n_names;
};

static uint64_t hash_name(const char *s)
{
	uint64_t h = 1469598103934665603u; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211u;
	return h;
}

static struct name_entry *find_name(const struct px_apk_repos *r, const char *name)
{
	if (!r->n_buckets)
		return NULL;
	for (struct name_entry *e = r->buckets[hash_name(name) % r->n_buckets]; e; e = e->next)
		if (strcmp(e->name, name) == 0)
			return e;
	return NULL;
}

static void rehash(struct px_apk_repos *r)
{
	size_t nb = r->n_buckets ? r->n_buckets * 2 : 256;
	struct name_entry **b = xcalloc(nb, sizeof(*b));
	for (size_t i = 0; i < r->n_buckets; i++) {
		struct name_entry *e = r->buckets[i], *next;
		for (; e; e = next) {
			next = e->next;
			size_t h = hash_name(e->name) % nb;
			e->next = b[h];
			b[h] = e;
		}
	}
	free(r->buckets);
	r->buckets = b;
	r->n_buckets = nb;
}

static void add_provider(struct px_apk_repos *r, const char *name, const struct px_apk_pkg *pkg,
                         const struct px_apk_dep *provide)
{
	struct name_entry *e = find_name(r, name);
	if (!e) {
		if (r->n_names + 1 > r->n_buckets)
			rehash(r);
		e = xcalloc(1, sizeof(*e));
		e->name = xstrdup(name);
		size_t h = hash_name(name) % r->n_buckets;
		e->next = r->buckets[h];
		r->buckets[h] = e;
		r->n_names++;
	}
	e->v = xreallocarray(e->v, e->n + 1, sizeof(*e->v));
	e->v[e->n++] = (struct px_apk_provider){.pkg = pkg, .provide = provide};
}

struct px_apk_repos *px_apk_repos_new(void)
{
	return xcalloc(1, sizeof(struct px_apk_repos));
}

void px_apk_repos_free(struct px_apk_repos *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_buckets; i++) {
		struct name_entry *e = r->buckets[i], *next;
		for (; e; e = next) {
			next = e->next;
			free(e->name);
			free(e->v);
			free(e);
		}
	}
	free(r->buckets);
	for (size_t i = 0; i < r->n; i++) {
		px_apk_index_free(r->v[i]);
		free(r->v[i]);
	}
	free(r->v);
	free(r);
}

int px_apk_repos_add(struct px_apk_repos *r, struct px_apk_index *idx)
{
	struct px_apk_index *own = xmalloc(sizeof(*own));
	*own = *idx;
	*idx = (struct px_apk_index){0};
	int num = (int)r->n;
	r->v = xreallocarray(r->v, r->n + 1, sizeof(*r->v));
	r->v[r->n++] = own;
	for (size_t i = 0; i < own->n; i++) {
		struct px_apk_pkg *p = own->pkgs[i];
		p->repo = num;
		add_provider(r, p->name, p, NULL);
		for (size_t k = 0; k < p->provides.n; k++)
			add_provider(r, p->provides.v[k].name, p, &p->provides.v[k]);
	}
	return num;
}

size_t px_apk_repos_count(const struct px_apk_repos *r)
{
	return r->n;
}

const struct px_apk_index *px_apk_repos_get(const struct px_apk_repos *r, size_t i)
{
	return i < r->n ? r->v[i] : NULL;
}

void px_apk_repos_providers(const struct px_apk_repos *r, const char *name,
                            const struct px_apk_provider **ret_v, size_t *ret_n)
{
	const struct name_entry *e = find_name(r, name);
	*ret_v = e ? e->v : NULL;
	*ret_n = e ? e->n : 0;
}
