#include <stdlib.h>

#include "core/common.h"

#include "pep/handle.h"

/* Placeholder so the daemon links while the decision code lands; every request is
 * answered http_error. */
struct px_pep_handler {
	int unused;
};

int px_pep_handler_new(const struct px_manifest *policy PX_UNUSED,
                       const struct px_pep_env *env PX_UNUSED, const char *ca_file PX_UNUSED,
                       struct px_pep_handler **ret, struct px_err **err PX_UNUSED)
{
	*ret = xcalloc(1, sizeof(struct px_pep_handler));
	return 0;
}

void px_pep_handler_free(struct px_pep_handler *h)
{
	free(h);
}

void px_pep_handle(struct px_pep_handler *h PX_UNUSED, const struct px_pep_request *req PX_UNUSED,
                   struct px_pep_response *resp, struct px_pep_trace *trace)
{
	*resp = (struct px_pep_response){.code = PX_PEP_HTTP_ERROR,
	                                 .message = xstrdup("upstream fetching is not built yet")};
	*trace = (struct px_pep_trace){.decision = "deny"};
}
