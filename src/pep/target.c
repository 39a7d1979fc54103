#include "core/common.h"

#include "pep/addr.h"
#include "pep/policy.h"
#include "pep/target.h"

enum px_pep_code px_pep_target_parse(const struct px_pep_policy *p, const char *url,
                                     struct px_pep_target *ret, char *msg, size_t msg_len)
{
	(void)p;
	(void)url;
	(void)ret;
	if (msg && msg_len)
		snprintf(msg, msg_len, "not implemented yet");
	return PX_PEP_INVALID_URL;
}

enum px_pep_code px_pep_target_redirect(const struct px_pep_policy *p,
                                        const struct px_pep_target *base, const char *location,
                                        struct px_pep_target *ret, char *msg, size_t msg_len)
{
	(void)base;
	return px_pep_target_parse(p, location, ret, msg, msg_len);
}

enum px_pep_code px_pep_target_check(const struct px_pep_policy *p, const struct px_pep_target *t,
                                     const struct px_pep_addrs *local, char *reason,
                                     size_t reason_len)
{
	(void)local;
	return px_pep_policy_check_host(p, t->host, t->port, reason, reason_len);
}

void px_pep_target_free(struct px_pep_target *t)
{
	if (!t)
		return;
	curl_url_cleanup(t->url);
	free(t->host);
	free(t->path);
	free(t->url_str);
	*t = (struct px_pep_target){0};
}

enum px_pep_code px_pep_request_check(const struct px_pep_policy *p,
                                      const struct px_pep_request *req,
                                      struct px_pep_headers *ret_upstream, char *msg,
                                      size_t msg_len)
{
	(void)p;
	(void)req;
	(void)ret_upstream;
	if (msg && msg_len)
		snprintf(msg, msg_len, "not implemented yet");
	return PX_PEP_CONSTRAINT_VIOLATION;
}
