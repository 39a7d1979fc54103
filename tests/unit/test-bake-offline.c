/* px_bake_offline against an image that already has packages: its installed database
 * (written with debugfs) and world count, as they do for apk add. The repository is
 * tests/fixtures/make-apk-repo's, read through file://; results are read back with
 * debugfs. */
#include "tap.h"

#include "ext-fixture.h"

#include "bake/bake.h"
#include "manifest/manifest.h"

static char repo[512];

/* foo 1.0 as if apk had installed it (its C: from the repository's packages.txt). */
static char *installed_stanza(void)
{
	char *path = xasprintf("%s/packages.txt", repo), *text = NULL;
	struct px_err *err = NULL;
	char csum[64] = "";
	if (px_file_read(path, 1 << 20, &text, NULL, &err) == 0) {
		const char *l = strstr(text, "foo 1.0-r0 ");
		if (l)
			sscanf(l + strlen("foo 1.0-r0 "), "%63s", csum);
	}
	px_err_free(err);
	free(path);
	free(text);
	return xasprintf("C:%s\nP:foo\nV:1.0-r0\nA:x86_64\nS:1\nI:1\nT:foo\nU:\nL:MIT\n"
	                 "D:so:libfoo.so.1\np:cmd:foo=1.0-r0\n\n"
	                 "C:Q1dOvRQbUp4lwCeD4V2mYd9Ooanq4=\nP:libfoo\nV:1.0.0-r0\nA:x86_64\nS:1\n"
	                 "I:1\nT:libfoo\nU:\nL:MIT\np:so:libfoo.so.1=1.0.0\n\n",
	                 csum);
}

static char *bake(const char *image, const char *add, struct px_bake_result *res)
{
	char *yaml = xasprintf("name: t\narch: x86_64\nbase:\n  url: file:///dev/null\n  sha256: "
	                       "%064d\npackages:\n  repositories: [\"file://%s\"]\n  keys: "
	                       "[\"%s/keys/pexi-test-5f000001.rsa.pub\"]\n  add: [%s]\n",
	                       0, repo, repo, add);
	struct px_manifest *m = NULL;
	struct px_err *err = NULL;
	char *msg = NULL, *cache = xasprintf("%s/cache", fx_dir),
	     *work = xasprintf("%s/work", fx_dir);
	if (px_manifest_parse(yaml, strlen(yaml), "t.yml", fx_dir, &m, &err) == 0) {
		struct px_bake_ctx ctx = {
		        .m = m,
		        .disk_path = image,
		        .root_offset = FX_OFFSET,
		        .cache_dir = cache,
		        .work_dir = work,
		        .source_date_epoch = 1700000000,
		};
		if (px_bake_offline(&ctx, res, &err) == 0) {
			free(yaml);
			free(cache);
			free(work);
			px_manifest_free(m);
			return NULL;
		}
	}
	msg = xstrdup(err && err->msg ? err->msg : "failed");
	px_err_free(err);
	px_manifest_free(m);
	free(yaml);
	free(cache);
	free(work);
	return msg;
}

int main(void)
{
	char *raw = fx_build();
	snprintf(repo, sizeof(repo), "%s/repo", fx_dir);
	const char *src = getenv("PEXI_SRC");
	char *gen = xasprintf("%s/tests/fixtures/make-apk-repo", src ? src : ".");
	const char *argv[] = {gen, repo, NULL};
	struct px_err *err = NULL;
	if (px_run(argv, NULL, &err) < 0) {
		printf("# make-apk-repo: %s\n", err->msg);
		fx_skip("cannot build the fixture repository");
	}

	/* An image where foo 1.0 (and libfoo) are installed and the world asks for foo. */
	char *img = fx_copy(raw, "img.raw");
	char *st = installed_stanza(), *inst = xasprintf("%s/installed", fx_dir),
	     *world = xasprintf("%s/world", fx_dir);
	px_atomic_write_file(inst, st, strlen(st), 0644, &err);
	px_atomic_write_file(world, "foo\n", 4, 0644, &err);
	char *script = xasprintf("rm /lib/apk/db/installed\nwrite %s /lib/apk/db/installed\n"
	                         "rm /etc/apk/world\nwrite %s /etc/apk/world\n",
	                         inst, world);
	ok(fx_debugfs_w(img, script) == 0, "an image with foo 1.0 installed and in its world");

	struct px_bake_result res = {0};
	char *before = fx_sha256(img);
	char *msg = bake(img, "nofoo", &res);
	like(msg, "nofoo", "a request conflicting with the image's own world is refused");
	printf("# %s\n", msg ? msg : "");
	free(msg);
	char *after = fx_sha256(img);
	is_str(after, before, "and the image is unchanged");
	free(after);
	px_bake_result_free(&res);

	msg = bake(img, "bar", &res);
	ok(!msg, "bar (needs foo<2) resolves against the installed foo 1.0");
	if (msg)
		printf("# %s\n", msg);
	free(msg);
	ok(res.n_pkgs == 1 && strcmp(res.pkgs[0].name, "bar") == 0,
	   "only bar is installed: foo and libfoo are already there");
	px_bake_result_free(&res);
	char *db = fx_cat(img, "/lib/apk/db/installed");
	like(db, "P:bar\nV:1.0-r0\n", "bar is recorded");
	like(db, "P:foo\nV:1.0-r0\n", "foo 1.0 is still recorded");
	free(db);
	char *w = fx_cat(img, "/etc/apk/world");
	is_str(w, "bar\nfoo\n", "world has both");
	free(w);
	ok(fx_fsck_clean(img), "e2fsck -fn is clean");

	free(before);
	free(script);
	free(st);
	free(inst);
	free(world);
	free(img);
	free(gen);
	free(raw);
	fx_cleanup();
	return done_testing();
}
