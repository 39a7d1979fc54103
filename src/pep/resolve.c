#include <stdlib.h>

#include "core/common.h"

#include "pep/resolve.h"

/* Placeholder until the resolvers land. */
void px_pep_env_default(struct px_pep_env *ret)
{
	*ret = (struct px_pep_env){0};
}

int px_pep_env_hosts_file(const char *path, struct px_pep_env *ret PX_UNUSED, struct px_err **err)
{
	return px_err_set(err, PX_EXIT_NOT_IMPLEMENTED, "hosts file '%s': not built yet", path);
}

void px_pep_env_free(struct px_pep_env *env PX_UNUSED)
{
}

unsigned px_pep_env_resolve_count(const struct px_pep_env *env PX_UNUSED,
                                  const char *host PX_UNUSED)
{
	return 0;
}
