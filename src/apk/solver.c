#include "core/common.h"

#include "apk/solver.h"

int px_apk_solve(const struct px_apk_solve_opts *opts PX_UNUSED,
                 struct px_apk_solution *ret PX_UNUSED, struct px_err **err)
{
	return px_err_set(err, PX_EXIT_NOT_IMPLEMENTED, "the apk solver is not implemented yet");
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
