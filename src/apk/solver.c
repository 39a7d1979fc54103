/* The solver works in passes. A pass starts from the world, picks the preferred candidate
 * for every name something requires (breadth first), then adds install-if packages, until
 * nothing is left to do. Whatever goes wrong in a pass becomes knowledge for the next:
 *
 * - a package with a dependency that nothing can satisfy is excluded, with the reason;
 * - a name whose chosen package does not satisfy a later constraint, or that a later
 *   "!conflict" rules out, learns the constraint, so the next pass chooses with it in mind.
 *
 * Each restart adds an exclusion or a constraint, both finite, so the passes end: with a
 * pass that has no failure (the solution) or one where the world itself cannot be met (the
 * error, whose chain the exclusion reasons carry: world: a → b → so:c: no provider). This
 * is simpler than apk's solver and can miss a solution that needs a far-away choice undone,
 * but for repositories built to install together it picks what apk picks. */
#include "core/common.h"

#include "apk/solver.h"
#include "apk/version.h"
#include "core/buf.h"

#define MAX_PASSES  100000
#define MAX_REASONS 8

/* ---- a small hash map, keyed by string or by pointer ---- */

struct entry {
	const void *key;
	void *val;
	struct entry *next;
};

struct map {
	struct entry **b;
	size_t nb, n;
	bool by_string;
};

static uint64_t hash_key(const struct map *m, const void *key)
{
	uint64_t h = 1469598103934665603u;
	if (m->by_string) {
		for (const unsigned char *s = key; *s; s++)
			h = (h ^ *s) * 1099511628211u;
	} else {
		uintptr_t v = (uintptr_t)key;
		for (size_t i = 0; i < sizeof(v); i++, v >>= 8)
			h = (h ^ (v & 0xff)) * 1099511628211u;
	}
	return h;
}

static bool same_key(const struct map *m, const void *a, const void *b)
{
	return m->by_string ? strcmp(a, b) == 0 : a == b;
}

static void *map_get(const struct map *m, const void *key)
{
	if (!m->nb)
		return NULL;
	for (struct entry *e = m->b[hash_key(m, key) % m->nb]; e; e = e->next)
		if (same_key(m, e->key, key))
			return e->val;
	return NULL;
}

static void map_put(struct map *m, const void *key, void *val)
{
	if (m->n + 1 > m->nb) {
		size_t nb = m->nb ? m->nb * 2 : 256;
		struct entry **b = xcalloc(nb, sizeof(*b));
		for (size_t i = 0; i < m->nb; i++) {
			struct entry *e = m->b[i], *next;
			for (; e; e = next) {
				next = e->next;
				size_t h = hash_key(m, e->key) % nb;
				e->next = b[h];
				b[h] = e;
			}
		}
		free(m->b);
		m->b = b;
		m->nb = nb;
	}
	struct entry *e = xmalloc(sizeof(*e));
	size_t h = hash_key(m, key) % m->nb;
	*e = (struct entry){.key = key, .val = val, .next = m->b[h]};
	m->b[h] = e;
	m->n++;
}

static void map_free(struct map *m, void (*free_val)(void *))
{
	for (size_t i = 0; i < m->nb; i++) {
		struct entry *e = m->b[i], *next;
		for (; e; e = next) {
			next = e->next;
			if (free_val)
				free_val(e->val);
			free(e);
		}
	}
	free(m->b);
}

/* ---- solver state ---- */

/* A constraint learned on a name, and who imposed it (NULL: the world). */
struct learned {
	const struct px_apk_dep *dep;
	const struct px_apk_pkg *by;
};

/* A package assigned to a name in the current pass. */
struct assign {
	const struct px_apk_pkg *pkg;
	const char *version; /* the version it provides the name at; NULL: unversioned */
};

struct name_state {
	const char *name;
	bool in_world;
	struct px_apk_provider *inst; /* installed packages providing the name */
	size_t n_inst;
	struct learned *learned; /* kept across passes */
	size_t n_learned;
	unsigned pass; /* the fields below belong to this pass */
	struct assign *sel;
	size_t n_sel;
	struct learned *conf; /* "!name" constraints of the packages chosen in this pass */
	size_t n_conf;
};

struct pkg_state {
	char **reasons; /* non-NULL: excluded, with why ("dep: why" chain tails) */
	size_t n_reasons;
	unsigned sel_pass; /* chosen in this pass */
	bool visiting, placed;
};

struct item {
	const struct px_apk_dep *dep;
	const struct px_apk_pkg *by; /* NULL: the world */
};

struct failure {
	const struct px_apk_pkg *by; /* NULL: the world */
	char *reason;
};

struct solver {
	const struct px_apk_solve_opts *o;
	struct map names; /* name → struct name_state */
	struct map pkgs;  /* pkg → struct pkg_state */
	unsigned pass;
	const struct px_apk_pkg **chosen; /* this pass, in order of choice */
	size_t n_chosen;
	struct item *queue;
	size_t q_head, q_len, q_cap;
	struct failure *fail;
	size_t n_fail;
	bool learned_something;
	const struct px_apk_pkg **iif; /* every package with i: */
	size_t n_iif;
};

static void name_state_free(void *v)
{
	struct name_state *n = v;
	free(n->inst);
	free(n->learned);
	free(n->sel);
	free(n->conf);
	free(n);
}

static void pkg_state_free(void *v)
{
	struct pkg_state *p = v;
	for (size_t i = 0; i < p->n_reasons; i++)
		free(p->reasons[i]);
	free(p->reasons);
	free(p);
}

static struct name_state *name_get(struct solver *s, const char *name)
{
	struct name_state *n = map_get(&s->names, name);
	if (!n) {
		n = xcalloc(1, sizeof(*n));
		n->name = name;
		map_put(&s->names, name, n);
	}
	if (n->pass != s->pass) {
		n->pass = s->pass;
		n->n_sel = 0;
		n->n_conf = 0;
	}
	return n;
}

static struct pkg_state *pkg_get(struct solver *s, const struct px_apk_pkg *p)
{
	struct pkg_state *st = map_get(&s->pkgs, p);
	if (!st) {
		st = xcalloc(1, sizeof(*st));
		map_put(&s->pkgs, p, st);
	}
	return st;
}

static bool is_chosen(struct solver *s, const struct px_apk_pkg *p)
{
	return pkg_get(s, p)->sel_pass == s->pass;
}

static const char *who(const struct px_apk_pkg *p, char *buf, size_t len)
{
	if (!p)
		return "world";
	snprintf(buf, len, "%s-%s", p->name, p->version);
	return buf;
}

/* Whether package p, providing the dependency's name through 'provide' (NULL: by its own
 * name), satisfies dep, the conflict bit ignored. An unversioned provide satisfies only an
 * unversioned dependency, as in apk. */
static bool provider_matches(const struct px_apk_dep *dep, const struct px_apk_pkg *p,
                             const char *version)
{
	int op = dep->op & ~PX_APK_VER_CONFLICT;
	if (op == PX_APK_DEP_CHECKSUM)
		return p->checksum && dep->version && strcmp(p->checksum, dep->version) == 0;
	if ((op & PX_APK_DEP_ANY) == PX_APK_DEP_ANY)
		return true;
	if (!version)
		return false;
	return px_apk_version_match(version, op, dep->version);
}

/* Whether a learned (or conflict) constraint c allows p to provide its name at version. */
static bool constraint_allows(const struct learned *c, const struct px_apk_pkg *p,
                              const char *version)
{
	if (c->dep->conflict)
		return c->by == p || !provider_matches(c->dep, p, version);
	return provider_matches(c->dep, p, version);
}

static bool arch_ok(const struct solver *s, const struct px_apk_pkg *p)
{
	return p->repo == PX_APK_REPO_INSTALLED || !s->o->arch || !p->arch ||
	       strcmp(p->arch, s->o->arch) == 0 || strcmp(p->arch, "noarch") == 0;
}

/* Why p cannot be chosen now (caller frees), or NULL when it can. */
static char *rejection(struct solver *s, const struct px_apk_pkg *p)
{
	char b1[256], b2[256];
	struct pkg_state *st = pkg_get(s, p);
	if (st->reasons)
		return xstrdup("excluded");
	if (!arch_ok(s, p))
		return xasprintf("%s is for %s", who(p, b1, sizeof(b1)), p->arch);
	/* Every name p would take: its own and each provide. */
	for (size_t i = 0; i <= p->provides.n; i++) {
		const char *nm = i == 0 ? p->name : p->provides.v[i - 1].name;
		const char *ver = i == 0 ? p->version : p->provides.v[i - 1].version;
		struct name_state *n = name_get(s, nm);
		for (size_t k = 0; k < n->n_learned; k++)
			if (!constraint_allows(&n->learned[k], p, ver)) {
				_cleanup_free_ char *d = px_apk_dep_format(n->learned[k].dep);
				return xasprintf(
				        n->learned[k].dep->conflict
				                ? "%s conflicts with %s (required by %s)"
				                : "%s does not satisfy %s (required by %s)",
				        who(p, b1, sizeof(b1)), d,
				        who(n->learned[k].by, b2, sizeof(b2)));
			}
		for (size_t k = 0; k < n->n_conf; k++)
			if (!constraint_allows(&n->conf[k], p, ver)) {
				_cleanup_free_ char *d = px_apk_dep_format(n->conf[k].dep);
				return xasprintf("%s conflicts with %s (required by %s)",
				                 who(p, b1, sizeof(b1)), d,
				                 who(n->conf[k].by, b2, sizeof(b2)));
			}
		/* A package's own name, or a name provided with a version, has one provider;
		 * only packages providing a name without versions may share it (apk's rule). */
		if (ver)
			for (size_t k = 0; k < n->n_sel; k++)
				if (n->sel[k].pkg != p)
					return xasprintf("%s and %s both provide '%s'",
					                 who(p, b1, sizeof(b1)),
					                 who(n->sel[k].pkg, b2, sizeof(b2)), nm);
		if (!ver)
			for (size_t k = 0; k < n->n_sel; k++)
				if (n->sel[k].pkg != p && n->sel[k].version)
					return xasprintf("%s and %s both provide '%s'",
					                 who(p, b1, sizeof(b1)),
					                 who(n->sel[k].pkg, b2, sizeof(b2)), nm);
	}
	return NULL;
}

/* apk does not pick a provider of a name it provides without a version ("/bin/sh") unless
 * the provider has a priority, or is installed, or was asked for by its own name. */
static bool auto_selectable(struct solver *s, const struct px_apk_provider *c)
{
	if (!c->provide || c->provide->version)
		return true;
	if (c->pkg->provider_priority != 0 || c->pkg->repo == PX_APK_REPO_INSTALLED)
		return true;
	const struct name_state *n = map_get(&s->names, c->pkg->name);
	return n && n->in_world;
}

static const char *provided_version(const struct px_apk_provider *c)
{
	return c->provide ? c->provide->version : c->pkg->version;
}

/* Preference between two candidates for a name: > 0 when a is better. */
static int prefer(const struct px_apk_provider *a, const struct px_apk_provider *b)
{
	int r = (a->pkg->repo == PX_APK_REPO_INSTALLED) - (b->pkg->repo == PX_APK_REPO_INSTALLED);
	if (r)
		return r;
	const char *va = provided_version(a), *vb = provided_version(b);
	if (va && !vb)
		return 1;
	if (!va && vb)
		return -1;
	if (va && vb) {
		int c = px_apk_version_cmp(va, vb);
		if (c != PX_APK_VER_EQUAL)
			return c == PX_APK_VER_GREATER ? 1 : -1;
	}
	if (strcmp(a->pkg->name, b->pkg->name) == 0) {
		int c = px_apk_version_cmp(a->pkg->version, b->pkg->version);
		if (c != PX_APK_VER_EQUAL)
			return c == PX_APK_VER_GREATER ? 1 : -1;
	}
	if (a->pkg->provider_priority != b->pkg->provider_priority)
		return a->pkg->provider_priority > b->pkg->provider_priority ? 1 : -1;
	/* Earlier repository wins; the installed database counts as earliest. */
	return b->pkg->repo - a->pkg->repo;
}

/* Every provider of name: repositories and installed, a repository copy of an installed
 * package (same name and version) left out in favour of the installed entry. */
static void gather(struct solver *s, const char *name, struct px_apk_provider **ret, size_t *ret_n)
{
	const struct px_apk_provider *rv;
	size_t rn;
	struct name_state *n = name_get(s, name);
	px_apk_repos_providers(s->o->repos, name, &rv, &rn);
	struct px_apk_provider *v = xreallocarray(NULL, rn + n->n_inst + 1, sizeof(*v));
	size_t k = 0;
	for (size_t i = 0; i < n->n_inst; i++)
		v[k++] = n->inst[i];
	for (size_t i = 0; i < rn; i++) {
		bool dup = false;
		const struct name_state *own = map_get(&s->names, rv[i].pkg->name);
		for (size_t j = 0; own && j < own->n_inst && !dup; j++)
			dup = own->inst[j].provide == NULL &&
			      strcmp(own->inst[j].pkg->version, rv[i].pkg->version) == 0;
		if (!dup)
			v[k++] = rv[i];
	}
	*ret = v;
	*ret_n = k;
}

static void push(struct solver *s, const struct px_apk_dep *dep, const struct px_apk_pkg *by)
{
	if (s->q_len == s->q_cap) {
		s->q_cap = s->q_cap ? s->q_cap * 2 : 64;
		s->queue = xreallocarray(s->queue, s->q_cap, sizeof(*s->queue));
	}
	s->queue[s->q_len++] = (struct item){.dep = dep, .by = by};
}

static void fail(struct solver *s, const struct px_apk_pkg *by, char *reason)
{
	s->fail = xreallocarray(s->fail, s->n_fail + 1, sizeof(*s->fail));
	s->fail[s->n_fail++] = (struct failure){.by = by, .reason = reason};
}

static void learn(struct solver *s, const char *name, const struct px_apk_dep *dep,
                  const struct px_apk_pkg *by)
{
	struct name_state *n = name_get(s, name);
	for (size_t i = 0; i < n->n_learned; i++)
		if (n->learned[i].dep == dep && n->learned[i].by == by)
			return;
	n->learned = xreallocarray(n->learned, n->n_learned + 1, sizeof(*n->learned));
	n->learned[n->n_learned++] = (struct learned){.dep = dep, .by = by};
	s->learned_something = true;
}

static void choose(struct solver *s, const struct px_apk_pkg *p)
{
	struct pkg_state *st = pkg_get(s, p);
	st->sel_pass = s->pass;
	s->chosen = xreallocarray(s->chosen, s->n_chosen + 1, sizeof(*s->chosen));
	s->chosen[s->n_chosen++] = p;
	for (size_t i = 0; i <= p->provides.n; i++) {
		const char *nm = i == 0 ? p->name : p->provides.v[i - 1].name;
		struct name_state *n = name_get(s, nm);
		n->sel = xreallocarray(n->sel, n->n_sel + 1, sizeof(*n->sel));
		n->sel[n->n_sel++] = (struct assign){
		        .pkg = p, .version = i == 0 ? p->version : p->provides.v[i - 1].version};
	}
	for (size_t i = 0; i < p->depends.n; i++)
		push(s, &p->depends.v[i], p);
}

/* The chain tails explaining why dep cannot be met through an excluded package. */
static void fail_through(struct solver *s, const struct px_apk_pkg *by, const char *dep_text,
                         const struct px_apk_pkg *excluded)
{
	struct pkg_state *st = pkg_get(s, excluded);
	for (size_t i = 0; i < st->n_reasons; i++) {
		if (strcmp(dep_text, excluded->name) == 0)
			fail(s, by, xasprintf("%s → %s", dep_text, st->reasons[i]));
		else
			fail(s, by,
			     xasprintf("%s (%s) → %s", dep_text, excluded->name, st->reasons[i]));
	}
}

static void process(struct solver *s, const struct item *it)
{
	const struct px_apk_dep *dep = it->dep;
	struct name_state *n = name_get(s, dep->name);
	char b1[256];

	if (dep->conflict) {
		n->conf = xreallocarray(n->conf, n->n_conf + 1, sizeof(*n->conf));
		n->conf[n->n_conf++] = (struct learned){.dep = dep, .by = it->by};
		for (size_t i = 0; i < n->n_sel; i++)
			if (n->sel[i].pkg != it->by &&
			    provider_matches(dep, n->sel[i].pkg, n->sel[i].version))
				learn(s, dep->name, dep, it->by);
		return;
	}
	for (size_t i = 0; i < n->n_sel; i++)
		if (provider_matches(dep, n->sel[i].pkg, n->sel[i].version))
			return;
	for (size_t i = 0; i < n->n_sel; i++)
		if (n->sel[i].version) {
			/* Taken by a package that does not fit: choose again, knowing. */
			learn(s, dep->name, dep, it->by);
			return;
		}

	_cleanup_free_ struct px_apk_provider *c = NULL;
	size_t nc;
	gather(s, dep->name, &c, &nc);
	_cleanup_free_ char *dep_text = px_apk_dep_format(dep);
	const struct px_apk_provider *best = NULL, *best_rejected = NULL;
	_cleanup_free_ char *best_why = NULL;
	size_t n_match = 0, n_virtual = 0;
	for (size_t i = 0; i < nc; i++) {
		if (!provider_matches(dep, c[i].pkg, provided_version(&c[i])))
			continue;
		n_match++;
		if (!auto_selectable(s, &c[i])) {
			n_virtual++;
			continue;
		}
		char *why = rejection(s, c[i].pkg);
		if (why) {
			if (!best_rejected || prefer(&c[i], best_rejected) > 0) {
				best_rejected = &c[i];
				free(best_why);
				best_why = why;
			} else {
				free(why);
			}
			continue;
		}
		if (!best || prefer(&c[i], best) > 0)
			best = &c[i];
	}
	if (best) {
		choose(s, best->pkg);
		return;
	}
	if (nc == 0) {
		fail(s, it->by, xasprintf("%s: no provider", dep_text));
	} else if (n_match == 0) {
		struct px_buf b = PX_BUF_INIT;
		for (size_t i = 0; i < nc && i < 5; i++)
			px_buf_printf(&b, "%s%s", i ? ", " : "", who(c[i].pkg, b1, sizeof(b1)));
		_cleanup_free_ char *avail = px_buf_steal(&b, NULL);
		fail(s, it->by,
		     xasprintf("%s: no version matches (available: %s)", dep_text, avail));
	} else if (best_rejected && pkg_get(s, best_rejected->pkg)->reasons) {
		fail_through(s, it->by, dep_text, best_rejected->pkg);
	} else if (best_rejected) {
		fail(s, it->by, xasprintf("%s: %s", dep_text, best_why));
	} else {
		struct px_buf b = PX_BUF_INIT;
		size_t k = 0;
		for (size_t i = 0; i < nc && k < 8; i++)
			if (provider_matches(dep, c[i].pkg, provided_version(&c[i])))
				px_buf_printf(&b, "%s%s", k++ ? ", " : "", c[i].pkg->name);
		_cleanup_free_ char *names = px_buf_steal(&b, NULL);
		(void)n_virtual;
		fail(s, it->by,
		     xasprintf("%s: a virtual name provided by %s; add the one you want to the "
		               "packages",
		               dep_text, names));
	}
}

/* install-if: a package whose every i: entry the chosen set satisfies joins it. */
static bool add_install_if(struct solver *s)
{
	bool added = false;
	for (size_t i = 0; i < s->n_iif; i++) {
		const struct px_apk_pkg *p = s->iif[i];
		if (is_chosen(s, p))
			continue;
		bool all = true;
		for (size_t k = 0; k < p->install_if.n && all; k++) {
			const struct px_apk_dep *d = &p->install_if.v[k];
			struct name_state *n = name_get(s, d->name);
			bool met = false;
			for (size_t j = 0; j < n->n_sel && !met; j++)
				met = provider_matches(d, n->sel[j].pkg, n->sel[j].version);
			all = d->conflict ? !met : met;
		}
		if (!all)
			continue;
		/* The best triggered version of that name, if any is allowed. */
		struct name_state *own = name_get(s, p->name);
		if (own->n_sel)
			continue;
		const struct px_apk_provider cand = {.pkg = p};
		bool better_exists = false;
		for (size_t j = 0; j < s->n_iif && !better_exists; j++) {
			const struct px_apk_provider other = {.pkg = s->iif[j]};
			better_exists = s->iif[j] != p && strcmp(s->iif[j]->name, p->name) == 0 &&
			                prefer(&other, &cand) > 0 &&
			                !pkg_get(s, s->iif[j])->reasons && arch_ok(s, s->iif[j]);
		}
		if (better_exists)
			continue;
		_cleanup_free_ char *why = rejection(s, p);
		if (why)
			continue;
		choose(s, p);
		added = true;
	}
	return added;
}

static void reset_pass(struct solver *s)
{
	s->pass++;
	s->n_chosen = 0;
	s->q_head = s->q_len = 0;
	for (size_t i = 0; i < s->n_fail; i++)
		free(s->fail[i].reason);
	s->n_fail = 0;
	s->learned_something = false;
}

static void run_pass(struct solver *s)
{
	reset_pass(s);
	for (size_t i = 0; i < s->o->n_world; i++)
		push(s, &s->o->world[i], NULL);
	do {
		while (s->q_head < s->q_len) {
			struct item it = s->queue[s->q_head++];
			/* A package that failed in this pass still has its other dependencies
			 * looked at, so that one pass names every missing library. */
			process(s, &it);
		}
	} while (add_install_if(s));
}

/* Dependencies first: depth-first, each package after what it depends on and after its
 * install-if triggers; a cycle is broken where it closes. */
static void place(struct solver *s, const struct px_apk_pkg *p, const struct px_apk_pkg **out,
                  size_t *n)
{
	struct pkg_state *st = pkg_get(s, p);
	if (st->placed || st->visiting)
		return;
	st->visiting = true;
	for (size_t pass = 0; pass < 2; pass++) {
		const struct px_apk_deps *ds = pass == 0 ? &p->depends : &p->install_if;
		for (size_t i = 0; i < ds->n; i++) {
			const struct px_apk_dep *d = &ds->v[i];
			if (d->conflict)
				continue;
			struct name_state *nm = name_get(s, d->name);
			for (size_t k = 0; k < nm->n_sel; k++)
				if (provider_matches(d, nm->sel[k].pkg, nm->sel[k].version)) {
					place(s, nm->sel[k].pkg, out, n);
					break;
				}
		}
	}
	st->visiting = false;
	st->placed = true;
	out[(*n)++] = p;
}

static void solver_free(struct solver *s)
{
	reset_pass(s);
	free(s->chosen);
	free(s->queue);
	free(s->fail);
	free(s->iif);
	map_free(&s->names, name_state_free);
	map_free(&s->pkgs, pkg_state_free);
}

static void note_iif(struct solver *s, const struct px_apk_pkg *p)
{
	if (p->install_if.n) {
		s->iif = xreallocarray(s->iif, s->n_iif + 1, sizeof(*s->iif));
		s->iif[s->n_iif++] = p;
	}
}

static void setup(struct solver *s)
{
	const struct px_apk_index *inst = s->o->installed;
	for (size_t i = 0; inst && i < inst->n; i++) {
		const struct px_apk_pkg *p = inst->pkgs[i];
		for (size_t k = 0; k <= p->provides.n; k++) {
			const char *nm = k == 0 ? p->name : p->provides.v[k - 1].name;
			struct name_state *n = name_get(s, nm);
			n->inst = xreallocarray(n->inst, n->n_inst + 1, sizeof(*n->inst));
			n->inst[n->n_inst++] = (struct px_apk_provider){
			        .pkg = p, .provide = k == 0 ? NULL : &p->provides.v[k - 1]};
		}
		note_iif(s, p);
	}
	for (size_t r = 0; r < px_apk_repos_count(s->o->repos); r++) {
		const struct px_apk_index *idx = px_apk_repos_get(s->o->repos, r);
		for (size_t i = 0; i < idx->n; i++)
			note_iif(s, idx->pkgs[i]);
	}
	for (size_t i = 0; i < s->o->n_world; i++)
		name_get(s, s->o->world[i].name)->in_world = true;
}

/* Exclude each package that failed, with its reasons; true when the world itself failed. */
static bool apply_failures(struct solver *s)
{
	bool world_failed = false;
	for (size_t i = 0; i < s->n_fail; i++) {
		if (!s->fail[i].by) {
			world_failed = true;
			continue;
		}
		struct pkg_state *st = pkg_get(s, s->fail[i].by);
		bool was_excluded = st->reasons != NULL;
		if (!was_excluded)
			s->learned_something = true;
		if (st->n_reasons < MAX_REASONS && !was_excluded) {
			st->reasons = xreallocarray(st->reasons, st->n_reasons + 1, sizeof(char *));
			st->reasons[st->n_reasons++] = steal_ptr(&s->fail[i].reason);
		}
		/* Reasons of one pass all join; a later pass adds nothing to an excluded
		 * package (it is never chosen again). */
		for (size_t k = i + 1; k < s->n_fail && !was_excluded; k++)
			if (s->fail[k].by == s->fail[i].by && st->n_reasons < MAX_REASONS) {
				st->reasons = xreallocarray(st->reasons, st->n_reasons + 1,
				                            sizeof(char *));
				st->reasons[st->n_reasons++] = steal_ptr(&s->fail[k].reason);
				s->fail[k].by = s->fail[i].by;
			}
	}
	return world_failed;
}

int px_apk_solve(const struct px_apk_solve_opts *opts, struct px_apk_solution *ret,
                 struct px_err **err)
{
	struct solver s = {.o = opts, .names = {.by_string = true}};
	int r = -1;

	setup(&s);
	for (unsigned pass = 0;; pass++) {
		if (pass == MAX_PASSES) {
			px_err_set(err, PX_EXIT_FAILURE, "the solver gave up after %d passes",
			           MAX_PASSES);
			goto out;
		}
		run_pass(&s);
		bool world_failed = apply_failures(&s);
		if (s.n_fail == 0 && !s.learned_something)
			break;
		if (world_failed && !s.learned_something) {
			struct px_buf b = PX_BUF_INIT;
			for (size_t i = 0; i < s.n_fail; i++)
				if (!s.fail[i].by && s.fail[i].reason)
					px_buf_printf(&b, "%sworld: %s", b.len ? "; " : "",
					              s.fail[i].reason);
			_cleanup_free_ char *msg = px_buf_steal(&b, NULL);
			px_err_set(err, PX_EXIT_INPUT, "unsatisfiable: %s", msg);
			goto out;
		}
	}

	const struct px_apk_pkg **out = xreallocarray(NULL, s.n_chosen + 1, sizeof(*out));
	size_t n = 0;
	for (size_t i = 0; i < s.n_chosen; i++)
		place(&s, s.chosen[i], out, &n);
	const struct px_apk_pkg **old = xcalloc(n + 1, sizeof(*old));
	const struct px_apk_pkg **rm = NULL;
	size_t n_rm = 0;
	const struct px_apk_index *inst = opts->installed;
	for (size_t i = 0; inst && i < inst->n; i++) {
		const struct px_apk_pkg *ip = inst->pkgs[i];
		bool kept = false;
		for (size_t k = 0; k < n; k++)
			if (strcmp(out[k]->name, ip->name) == 0) {
				kept = true;
				if (out[k] != ip)
					old[k] = ip;
			}
		if (!kept) {
			rm = xreallocarray(rm, n_rm + 1, sizeof(*rm));
			rm[n_rm++] = ip;
		}
	}
	*ret = (struct px_apk_solution){
	        .pkgs = out, .n = n, .old = old, .remove = rm, .n_remove = n_rm};
	r = 0;
out:
	solver_free(&s);
	return r;
}

void px_apk_solution_free(struct px_apk_solution *s)
{
	if (!s)
		return;
	free(s->pkgs);
	free(s->old);
	free(s->remove);
	*s = (struct px_apk_solution){0};
}
