/* The dependency solver: from the world (what the user asked for) and the installed set,
 * the set of packages to have installed, in an order where every package comes after what
 * it depends on.
 *
 * Rules, after apk's solver:
 * - a world entry or dependency "name[op ver]" is satisfied by a package named 'name' or a
 *   package providing it (p:), with a version matching the constraint; a provide without a
 *   version satisfies only unversioned dependencies;
 * - among candidates: an installed package is kept; then one that provides the name with
 *   a version before one that provides it without; then the highest version of the name;
 *   then, between versions of one package, the highest package version; then the higher
 *   provider priority (k:); then the earlier repository;
 * - a provider of a name it provides without a version (a virtual such as "/bin/sh") is
 *   chosen automatically only when it has a provider priority (k:), is installed, or is
 *   itself named in the world; otherwise the name needs an explicit choice, and the error
 *   names the candidates;
 * - "!name" conflicts: no package providing name (matching the constraint) may be chosen;
 * - install-if (i:): a package is added when all of its i: entries are satisfied by the
 *   chosen set;
 * - a package's own name, or a name provided with a version, has one provider; only
 *   packages that provide a name without a version may share it.
 * An unsatisfiable request is a PX_EXIT_INPUT error naming the missing or conflicting
 * name and the chain that required it: "world: firefox → so:libgtk-3.so.0: no provider". */
#ifndef PX_APK_SOLVER_H
#define PX_APK_SOLVER_H

#include <stdbool.h>
#include <stddef.h>

#include "apk/index.h"

struct px_err;

struct px_apk_solve_opts {
	const struct px_apk_repos *repos;
	const struct px_apk_index *installed; /* /lib/apk/db/installed, or NULL */
	/* The image's /etc/apk/world entries plus the new requests, as apk add does: an
	 * installed package that nothing in the world needs ends up in solution.remove. */
	const struct px_apk_dep *world;
	size_t n_world;
	const char *arch; /* only packages of this arch or "noarch"; NULL: any */
};

struct px_apk_solution {
	/* The whole resulting set, dependencies first. An entry whose repo is
	 * PX_APK_REPO_INSTALLED points into opts->installed: it is already there. */
	const struct px_apk_pkg **pkgs;
	size_t n;
	/* For each pkgs[i], the installed package of the same name it replaces (an upgrade
	 * or downgrade), or NULL. */
	const struct px_apk_pkg **old;
	/* Installed packages no longer in the set (no longer required by the world). */
	const struct px_apk_pkg **remove;
	size_t n_remove;
};

/* Resolves opts into *ret (caller frees with px_apk_solution_free; pointers refer into
 * opts->repos and opts->installed, which must outlive it). */
int px_apk_solve(const struct px_apk_solve_opts *opts, struct px_apk_solution *ret,
                 struct px_err **err);
void px_apk_solution_free(struct px_apk_solution *s);

#endif
