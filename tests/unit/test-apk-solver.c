/* The solver: alpine-base from the real Alpine 3.23.3 index, checked by an independent
 * Python reading of the index (every dependency met, nothing extra, install-if honoured,
 * dependencies first); the real third-party index's unsatisfiable hcxdumptool; and small
 * in-memory repositories for each rule. */
#include "core/common.h"

#include "apk/index.h"
#include "apk/repo.h"
#include "apk/solver.h"
#include "core/buf.h"
#include "tap.h"
#include "test-util.h"
#include "apk-test.h"

/* Builds a repository set from NULL-terminated index texts. */
static struct px_apk_repos *repos_of(const char *const texts[])
{
	struct px_apk_repos *r = px_apk_repos_new();
	for (size_t i = 0; texts[i]; i++) {
		struct px_apk_index idx;
		struct px_err *err = NULL;
		if (px_apk_index_parse(texts[i], strlen(texts[i]), "test", 0, &idx, &err) < 0) {
			printf("Bail out! %s\n", err->msg);
			exit(1);
		}
		px_apk_repos_add(r, &idx);
	}
	return r;
}

/* Solves 'world' (space separated) and returns "a-1 b-2 ..." in install order, or
 * "ERROR: message". installed may be NULL. Caller frees. */
static char *solve_repos(struct px_apk_repos *r, const char *installed, const char *world,
                         const char *arch, struct px_apk_solution *keep)
{
	struct px_apk_deps w;
	struct px_apk_index inst = {0};
	struct px_apk_solution sol;
	struct px_err *err = NULL;
	struct px_buf b = PX_BUF_INIT;

	if (px_apk_deps_parse(world, strlen(world), &w, &err) < 0 ||
	    (installed && px_apk_index_parse(installed, strlen(installed), "installed",
	                                     PX_APK_REPO_INSTALLED, &inst, &err) < 0)) {
		printf("Bail out! %s\n", err->msg);
		exit(1);
	}
	struct px_apk_solve_opts o = {.repos = r,
	                              .installed = installed ? &inst : NULL,
	                              .world = w.v,
	                              .n_world = w.n,
	                              .arch = arch};
	if (px_apk_solve(&o, &sol, &err) < 0) {
		px_buf_printf(&b, "ERROR: %s", err->msg);
		px_err_free(err);
	} else {
		for (size_t i = 0; i < sol.n; i++)
			px_buf_printf(&b, "%s%s-%s%s", i ? " " : "", sol.pkgs[i]->name,
			              sol.pkgs[i]->version,
			              sol.pkgs[i]->repo == PX_APK_REPO_INSTALLED ? "(i)" : "");
		for (size_t i = 0; i < sol.n_remove; i++)
			px_buf_printf(&b, " -%s", sol.remove[i]->name);
		for (size_t i = 0; i < sol.n; i++)
			if (sol.old[i])
				px_buf_printf(&b, " [%s-%s>%s]", sol.old[i]->name,
				              sol.old[i]->version, sol.pkgs[i]->version);
		if (keep)
			*keep = sol;
		else
			px_apk_solution_free(&sol);
	}
	px_apk_deps_free(&w);
	px_apk_index_free(&inst);
	return px_buf_steal(&b, NULL);
}

static char *solve(const char *const texts[], const char *installed, const char *world)
{
	struct px_apk_repos *r = repos_of(texts);
	char *out = solve_repos(r, installed, world, "x86_64", NULL);
	px_apk_repos_free(r);
	return out;
}

#define CASE(name, texts, installed, world, want)                           \
	do {                                                                \
		_cleanup_free_ char *got_ = solve(texts, installed, world); \
		is_str(got_, want, name);                                   \
	} while (0)
#define CASE_ERR(name, texts, installed, world, want)                       \
	do {                                                                \
		_cleanup_free_ char *got_ = solve(texts, installed, world); \
		printf("# %s\n", got_);                                     \
		like(got_, want, name);                                     \
	} while (0)

static void rules(void)
{
	static const char *const basic[] = {"P:app\nV:1.0-r0\nA:x86_64\nD:lib>=2 so:libz.so.1\n\n"
	                                    "P:lib\nV:1.0-r0\nA:x86_64\n\n"
	                                    "P:lib\nV:2.1-r0\nA:x86_64\n\n"
	                                    "P:lib\nV:3.0_rc1-r0\nA:x86_64\n\n"
	                                    "P:zlib\nV:1.3-r0\nA:x86_64\np:so:libz.so.1=1.3\n\n"
	                                    "P:other\nV:1-r0\nA:aarch64\n",
	                                    NULL};
	CASE("dependencies first, highest matching version (3.0_rc1 > 2.1)", basic, NULL, "app",
	     "lib-3.0_rc1-r0 zlib-1.3-r0 app-1.0-r0");
	CASE("a world constraint limits the choice", basic, NULL, "app lib<3",
	     "lib-2.1-r0 zlib-1.3-r0 app-1.0-r0");
	CASE_ERR("unsatisfiable versions name both constraints", basic, NULL, "app lib<2",
	         "lib>=2");
	CASE("a package of another arch is not a candidate", basic, NULL, "lib", "lib-3.0_rc1-r0");
	CASE_ERR("... and naming one is an error", basic, NULL, "other",
	         "other-1-r0 is for aarch64");
	CASE_ERR("a missing name is an error with its chain", basic, NULL, "nosuch",
	         "world: nosuch: no provider");

	static const char *const deep[] = {"P:firefox\nV:1\nD:gtk\n\nP:gtk\nV:3\nD:so:"
	                                   "libgtk-3.so.0 glib\n\nP:glib\nV:2\n",
	                                   NULL};
	CASE_ERR("the chain runs from the world to the missing name", deep, NULL, "firefox",
	         "world: firefox → gtk → so:libgtk-3.so.0: no provider");

	static const char *const sh[] = {
	        "P:busybox-binsh\nV:1.37-r0\nk:100\np:/bin/sh cmd:sh=1.37-r0\n\n"
	        "P:dash-binsh\nV:0.5-r0\nk:60\np:/bin/sh cmd:sh=0.5-r0\n\n"
	        "P:mksh-binsh\nV:1\np:/bin/sh\n\n"
	        "P:yash-binsh\nV:1\np:/bin/sh\n\n"
	        "P:script\nV:1\nD:/bin/sh\n\n"
	        "P:tool\nV:1\nD:/bin/shx\n\n"
	        "P:a\nV:1\np:/bin/shx\n\nP:b\nV:1\np:/bin/shx\n",
	        NULL};
	CASE("a virtual goes to the highest provider priority", sh, NULL, "script",
	     "busybox-binsh-1.37-r0 script-1");
	CASE("naming a provider in the world chooses it", sh, NULL, "script mksh-binsh",
	     "mksh-binsh-1 script-1");
	CASE_ERR("a virtual without priorities needs an explicit choice", sh, NULL, "tool",
	         "world: tool → /bin/shx: a virtual name provided by a, b");
	CASE("cmd:sh (versioned provides) picks the highest version", sh, NULL, "cmd:sh",
	     "busybox-binsh-1.37-r0");
	CASE("cmd:sh<1 picks the one that fits", sh, NULL, "cmd:sh<1", "dash-binsh-0.5-r0");

	static const char *const conflict[] = {"P:openssl\nV:3\nD:!libressl\n\nP:libressl\nV:4\n\n"
	                                       "P:curl\nV:8\nD:ssl\n\n"
	                                       "P:ssl-openssl\nV:1\np:ssl=1\nD:openssl\n\n"
	                                       "P:ssl-libressl\nV:2\np:ssl=2\nD:libressl\n",
	                                       NULL};
	CASE_ERR("two world names in conflict", conflict, NULL, "openssl libressl",
	         "conflicts with !libressl");
	CASE("a conflict steers the choice to the other provider", conflict, NULL, "openssl curl",
	     "openssl-3 ssl-openssl-1 curl-8");
	CASE("without it the higher provide wins", conflict, NULL, "curl",
	     "libressl-4 ssl-libressl-2 curl-8");

	static const char *const iif[] = {
	        "P:openrc\nV:0.63\n\nP:chrony\nV:4.8-r1\n\n"
	        "P:chrony-openrc\nV:4.8-r1\ni:openrc chrony=4.8-r1\nD:openrc\n\n"
	        "P:docs\nV:1\ni:chrony man-pages\n",
	        NULL};
	CASE("install-if adds the package when all its triggers are there", iif, NULL,
	     "chrony openrc", "chrony-4.8-r1 openrc-0.63 chrony-openrc-4.8-r1");
	CASE("install-if needs every trigger", iif, NULL, "chrony", "chrony-4.8-r1");

	static const char *const two[] = {"P:pkg\nV:1-r0\nC:Q1kZVWVyo0ZySydq+Guaova5aevA8=\n",
	                                  "P:pkg\nV:1-r0\nC:Q1mhN8PI5zi8q6wTMmyfxUcvpYqvQ=\n",
	                                  NULL};
	struct px_apk_repos *r = repos_of(two);
	struct px_apk_solution sol;
	_cleanup_free_ char *got = solve_repos(r, NULL, "pkg", NULL, &sol);
	ok(sol.n == 1 && sol.pkgs[0]->repo == 0, "equal versions: the first repository wins");
	px_apk_solution_free(&sol);
	free(solve_repos(r, NULL, "pkg><Q1mhN8PI5zi8q6wTMmyfxUcvpYqvQ=", NULL, &sol));
	ok(sol.n == 1 && sol.pkgs[0]->repo == 1, "a checksum pin selects the exact package");
	px_apk_solution_free(&sol);
	px_apk_repos_free(r);

	static const char *const up[] = {"P:musl\nV:1.2.5-r10\n\nP:musl\nV:1.2.5-r9\n\n"
	                                 "P:app\nV:2\nD:musl>=1.2.5-r10\n\nP:old\nV:1\n",
	                                 NULL};
	const char *inst = "P:musl\nV:1.2.5-r9\nF:lib\nR:libc.so\n\nP:old\nV:1\n";
	CASE("installed packages are kept; what the world drops is removed", up, inst, "musl",
	     "musl-1.2.5-r9(i) -old");
	CASE("an installed package is upgraded only when required", up, inst, "musl app old",
	     "musl-1.2.5-r10 app-2 old-1(i) [musl-1.2.5-r9>1.2.5-r10]");
	static const char *const gone[] = {"P:x\nV:1\n", NULL};
	CASE("an installed package no repository has any more stays", gone, inst, "musl x",
	     "musl-1.2.5-r9(i) x-1 -old");

	static const char *const share[] = {
	        "P:x\nV:1\np:virt\n\nP:y\nV:1\np:virt\n\nP:z\nV:1\np:virt=1\n", NULL};
	CASE("unversioned provides share a name", share, NULL, "x y", "x-1 y-1");
	CASE_ERR("a versioned provide does not share it", share, NULL, "x z",
	         "both provide 'virt'");
	static const char *const cyc[] = {"P:a\nV:1\nD:b\n\nP:b\nV:1\nD:a c\n\nP:c\nV:1\n", NULL};
	CASE("a dependency cycle still orders the rest first", cyc, NULL, "a", "c-1 b-1 a-1");
	static const char *const back[] = {"P:a\nV:2\nD:b>=5\n\nP:a\nV:1\nD:b\n\nP:b\nV:4\n", NULL};
	CASE("a version whose dependencies cannot be met falls back to an older one", back, NULL,
	     "a", "b-4 a-1");
}

static void real_alpine(const char *data)
{
	_cleanup_free_ char *path = xasprintf("%s/alpine-3.23.3-x86_64/APKINDEX", data);
	size_t len;
	_cleanup_free_ char *text = slurp(path, &len);
	const char *const texts[] = {text, NULL};
	struct px_apk_repos *r = repos_of(texts);
	struct px_apk_solution sol = {0};
	_cleanup_free_ char *got = solve_repos(r, NULL, "alpine-base", "x86_64", &sol);
	ok(strncmp(got, "ERROR", 5) != 0, "alpine-base resolves from the real index");
	printf("# %s\n", got);
	struct px_buf b = PX_BUF_INIT;
	for (size_t i = 0; i < sol.n; i++)
		px_buf_printf(&b, "%s %s\n", sol.pkgs[i]->name, sol.pkgs[i]->version);
	_cleanup_free_ char *list = px_buf_steal(&b, NULL);
	_cleanup_free_ char *res = path_in("alpine-base.result");
	spew(res, list, strlen(list));
	const char *src = getenv("PEXI_SRC") ? getenv("PEXI_SRC") : ".";
	_cleanup_free_ char *checker = xasprintf("%s/tests/unit/apk-closure-check.py", src);
	const char *const argv[] = {"python3", checker, path, res, "alpine-base", NULL};
	_cleanup_free_ char *out = run_out(argv);
	ok(out != NULL, "python's independent check finds every dependency met, nothing "
	                "extra, install-if honoured, dependencies first");
	if (out)
		printf("# %s", out);
	/* Every package of the index on its own as the world, all checked by Python. */
	_cleanup_free_ char *each = path_in("each");
	mkdir(each, 0755);
	size_t n_each = 0, n_fail = 0;
	const struct px_apk_index *ai = px_apk_repos_get(r, 0);
	for (size_t i = 0; i < ai->n; i++) {
		struct px_apk_solution one;
		_cleanup_free_ char *res1 = solve_repos(r, NULL, ai->pkgs[i]->name, "x86_64", &one);
		if (strncmp(res1, "ERROR", 5) == 0) {
			printf("# %s: %s\n", ai->pkgs[i]->name, res1);
			n_fail++;
			continue;
		}
		struct px_buf eb = PX_BUF_INIT;
		for (size_t k = 0; k < one.n; k++)
			px_buf_printf(&eb, "%s %s\n", one.pkgs[k]->name, one.pkgs[k]->version);
		px_apk_solution_free(&one);
		_cleanup_free_ char *txt = px_buf_steal(&eb, NULL);
		_cleanup_free_ char *f = xasprintf("%s/%s", each, ai->pkgs[i]->name);
		spew(f, txt, strlen(txt));
		n_each++;
	}
	is_int(n_fail, 0, "every package of the real index resolves on its own");
	const char *const each_argv[] = {"python3", checker, path, "--each", each, NULL};
	_cleanup_free_ char *each_out = run_out(each_argv);
	ok(each_out != NULL && n_each == ai->n,
	   "... and Python's check passes for each of the %zu worlds", n_each);
	if (each_out)
		printf("# %s", each_out);

	ok(strstr(got, "busybox-binsh") && !strstr(got, "dash-binsh"),
	   "/bin/sh is busybox-binsh (k:100)");
	ok(strstr(got, "alpine-base-3.23.3-r0 ssl_client-1.37.0-r30") != NULL,
	   "ssl_client joins by install-if (busybox, libssl3), after what triggers it");
	px_apk_solution_free(&sol);

	/* The third-party repository added after Alpine's. */
	_cleanup_free_ char *tp = xasprintf("%s/thirdparty/x86_64/APKINDEX.tar.gz", data);
	struct px_apk_keyring *kr = px_apk_keyring_new();
	struct px_apk_index idx;
	struct px_err *err = NULL;
	_cleanup_free_ char *key = xasprintf("%s/thirdparty/antkss.rsa.pub", data);
	if (px_apk_keyring_add_file(kr, key, &err) < 0 ||
	    px_apk_index_load(kr, tp, false, 0, &idx, &err) < 0) {
		printf("Bail out! %s\n", err->msg);
		exit(1);
	}
	struct px_apk_repos *only = px_apk_repos_new();
	struct px_apk_index copy;
	_cleanup_free_ char *tpdata = NULL;
	size_t tplen;
	tpdata = slurp(tp, &tplen);
	if (px_apk_index_read_targz(kr, tpdata, tplen, tp, false, 0, &copy, &err) < 0) {
		printf("Bail out! %s\n", err->msg);
		exit(1);
	}
	px_apk_repos_add(only, &copy);
	_cleanup_free_ char *e1 = solve_repos(only, NULL, "hcxdumptool", "x86_64", NULL);
	like(e1, "world: hcxdumptool → so:libc.musl-x86_64.so.1: no provider",
	     "third-party alone: hcxdumptool names libc");
	like(e1, "world: hcxdumptool → so:libpcap.so.1: no provider", "... and libpcap");
	_cleanup_free_ char *ok1 = solve_repos(only, NULL, "gcompat-musl libglvnd", "x86_64", NULL);
	is_str(ok1, "gcompat-musl-1.2.5-r1 libglvnd-0-r1", "the dependency-free packages resolve");
	px_apk_repos_free(only);

	px_apk_repos_add(r, &idx);
	_cleanup_free_ char *e2 = solve_repos(r, NULL, "hcxdumptool", "x86_64", NULL);
	is_str(e2, "musl-1.2.5-r21 libpcap-1.10.5-r1 hcxdumptool-1-r1",
	       "with Alpine's index first, musl and libpcap come from Alpine");
	px_apk_keyring_free(kr);
	px_apk_repos_free(r);
}

/* The signed fixture repository of tests/fixtures/make-apk-repo, read through the same
 * fetch, signature and parse path a build uses. */
static void fixture_repo(void)
{
	const char *src = getenv("PEXI_SRC") ? getenv("PEXI_SRC") : ".";
	_cleanup_free_ char *gen = xasprintf("%s/tests/fixtures/make-apk-repo", src);
	_cleanup_free_ char *dir = path_in("fixture-repo");
	_cleanup_free_ char *keys = path_in("fixture-repo/keys");
	_cleanup_free_ char *cache = path_in("cache");
	const char *const argv[] = {"sh", gen, dir, NULL};
	_cleanup_free_ char *out = run_out(argv);
	if (!out) {
		skip("tests/fixtures/make-apk-repo cannot run here (needs openssl, GNU tar, gzip)");
		return;
	}
	struct px_apk_keyring *kr = px_apk_keyring_new();
	struct px_err *err = NULL;
	struct px_apk_index idx;
	struct px_apk_repo_opts o = {.url = dir, .arch = "x86_64", .cache_dir = cache, .keys = kr};
	if (px_apk_keyring_add_dir(kr, keys, &err) < 0 ||
	    px_apk_repo_fetch_index(&o, &idx, NULL, &err) < 0) {
		printf("Bail out! %s\n", err->msg);
		exit(1);
	}
	ok(idx.signer && strcmp(idx.signer, "pexi-test-5f000001.rsa.pub") == 0,
	   "fixture index signed by the test key");
	struct px_apk_repos *r = px_apk_repos_new();
	px_apk_repos_add(r, &idx);
	static const struct {
		const char *world, *want, *name;
	} cases[] = {
	        {"foo", "musl-1.2.5-r0 libfoo-1.0.0-r0 foo-2.0-r0", "the newest foo, deps first"},
	        {"bar", "musl-1.2.5-r0 libfoo-1.0.0-r0 foo-1.0-r0 bar-1.0-r0",
	         "bar's foo<2 takes foo 1.0"},
	        {"needs-shell", "shell-b-1.0-r0 needs-shell-1.0-r0",
	         "pexi-shell goes to shell-b (k:20 over k:10)"},
	        {"needs-shell shell-a", "shell-a-1.0-r0 needs-shell-1.0-r0",
	         "naming shell-a chooses it"},
	        {"foo docs", "musl-1.2.5-r0 libfoo-1.0.0-r0 foo-2.0-r0 docs-1.0-r0 foo-doc-1.0-r0",
	         "foo-doc joins by install-if"},
	        {"foo-compat", "musl-1.2.5-r0 libfoo-1.0.0-r0 foo-2.0-r0 foo-compat-1.0-r0",
	         "foo-compat pulls foo"},
	        {"nofoo", "nofoo-1.0-r0", "nofoo alone"},
	        {"cmd:foo", "musl-1.2.5-r0 libfoo-1.0.0-r0 foo-2.0-r0", "cmd:foo by its provide"},
	};
	for (size_t i = 0; i < PX_ARRAY_SIZE(cases); i++) {
		_cleanup_free_ char *got = solve_repos(r, NULL, cases[i].world, "x86_64", NULL);
		is_str(got, cases[i].want, cases[i].name);
	}
	static const struct {
		const char *world, *want, *name;
	} bad[] = {
	        {"bar baz", "foo", "bar + baz: foo<2 against foo>=2"},
	        {"nofoo foo", "conflicts with !foo", "nofoo + foo: the conflict"},
	        {"nofoo bar", "!foo", "nofoo + bar: the conflict through bar"},
	};
	for (size_t i = 0; i < PX_ARRAY_SIZE(bad); i++) {
		_cleanup_free_ char *got = solve_repos(r, NULL, bad[i].world, "x86_64", NULL);
		printf("# %s\n", got);
		like(got, "ERROR: unsatisfiable: world: ", bad[i].name);
		like(got, bad[i].want, "... naming the cause");
	}
	px_apk_repos_free(r);
	px_apk_keyring_free(kr);
}

int main(void)
{
	tu_mkdtemp("test-apk-solver");
	rules();
	fixture_repo();
	_cleanup_free_ char *data = apk_data_dir();
	if (data && px_have_program("python3"))
		real_alpine(data);
	else
		skip("../shared/data/apk or python3 is absent: real-index resolution not run");
	tu_rm_tmpdir();
	return done_testing();
}
