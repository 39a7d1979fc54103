/* libFuzzer target for the APKINDEX reader: any bytes as index text (the parser, every
 * dependency, version and checksum field) and as an APKINDEX.tar.gz (gzip members, the
 * signature tar, the control tar), with an empty key ring and allow_untrusted so that the
 * signature never stops the input before the parser. Nothing may crash, hang or leak, and
 * every refusal must say why. The parsed packages then go through the version comparator
 * and the solver, so malformed versions and dependency graphs reach them too. */
#include "core/common.h"

#include "apk/index.h"
#include "apk/solver.h"
#include "apk/version.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_err(struct px_err *err)
{
	if (!err || !err->msg || !err->msg[0])
		abort();
	px_err_free(err);
}

static void exercise(struct px_apk_index *idx)
{
	for (size_t i = 0; i + 1 < idx->n && i < 64; i++) {
		int a = px_apk_version_cmp(idx->pkgs[i]->version, idx->pkgs[i + 1]->version);
		int b = px_apk_version_cmp(idx->pkgs[i + 1]->version, idx->pkgs[i]->version);
		/* Antisymmetry: a < b exactly when b > a. */
		if ((a == PX_APK_VER_LESS) != (b == PX_APK_VER_GREATER))
			abort();
	}
	if (idx->n == 0 || idx->n > 200)
		return;
	/* Resolve the first package's name against the index itself. */
	struct px_apk_dep world = {.name = idx->pkgs[0]->name, .op = PX_APK_DEP_ANY};
	struct px_apk_repos *r = px_apk_repos_new();
	px_apk_repos_add(r, idx);
	struct px_apk_solve_opts o = {.repos = r, .world = &world, .n_world = 1};
	struct px_apk_solution sol;
	struct px_err *err = NULL;
	world.name = xstrdup(world.name);
	if (px_apk_solve(&o, &sol, &err) == 0)
		px_apk_solution_free(&sol);
	else
		check_err(err);
	free(world.name);
	px_apk_repos_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct px_apk_index idx = {0};
	struct px_err *err = NULL;

	if (px_apk_index_parse((const char *)data, size, "fuzz", 0, &idx, &err) == 0)
		exercise(&idx);
	else
		check_err(err);
	px_apk_index_free(&idx);

	struct px_apk_keyring *kr = px_apk_keyring_new();
	err = NULL;
	if (px_apk_index_read_targz(kr, data, size, "fuzz.tar.gz", true, 0, &idx, &err) == 0)
		px_apk_index_free(&idx);
	else
		check_err(err);
	px_apk_keyring_free(kr);
	return 0;
}
