#include "core/common.h"

#include "manifest/manifest.h"
#include "pep/addr.h"
#include "pep/policy.h"

struct px_pep_policy {
	struct px_pep_limits limits;
};

int px_pep_policy_new(const struct px_manifest *m, struct px_pep_policy **ret, struct px_err **err)
{
	(void)m;
	(void)ret;
	return px_err_set(err, PX_EXIT_NOT_IMPLEMENTED, "pep policy: not implemented yet");
}

void px_pep_policy_free(struct px_pep_policy *p)
{
	free(p);
}

const struct px_pep_limits *px_pep_policy_limits(const struct px_pep_policy *p)
{
	return &p->limits;
}

enum px_pep_code px_pep_policy_check_host(const struct px_pep_policy *p, const char *host,
                                          uint16_t port, char *reason, size_t reason_len)
{
	(void)p;
	(void)host;
	(void)port;
	if (reason && reason_len)
		snprintf(reason, reason_len, "no allow rule matches");
	return PX_PEP_DENIED_BY_POLICY;
}

bool px_pep_policy_address_allowed(const struct px_pep_policy *p, const struct px_pep_addr *a,
                                   uint16_t port)
{
	(void)p;
	(void)a;
	(void)port;
	return false;
}

enum px_pep_code px_pep_policy_check_addr(const struct px_pep_policy *p,
                                          const struct px_pep_addr *a, uint16_t port,
                                          const struct px_pep_addrs *local, char *reason,
                                          size_t reason_len)
{
	const char *cls = px_pep_addr_denied(a, local);
	if (!cls || px_pep_policy_address_allowed(p, a, port))
		return PX_PEP_OK;
	if (reason && reason_len)
		snprintf(reason, reason_len, "%s", cls);
	return PX_PEP_SSRF_BLOCKED;
}

bool px_pep_policy_method_allowed(const struct px_pep_policy *p, const char *method)
{
	(void)p;
	(void)method;
	return false;
}
