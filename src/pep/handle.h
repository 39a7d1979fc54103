/* The decision for one guest request, end to end: request hygiene, one URL parse, the
 * policy's host rules, one resolution whose every answer is classified, the pin, the
 * fetch, and the redirects the PEP follows itself (each hop re-checked in full). Every
 * outcome becomes a response; the guest learns the error class and a message that never
 * names an internal address, the audit line gets the whole story through the trace. */
#ifndef PX_PEP_HANDLE_H
#define PX_PEP_HANDLE_H

#include "pep/pep.h"
#include "pep/resolve.h" /* px_pep_env_hosts_file, px_pep_env_free */

struct px_err;
struct px_manifest;

/* Policy + environment + CA file; immutable once built (but for a cache of the host's
 * addresses, under a lock), so worker threads share it. */
struct px_pep_handler;

/* Builds a handler from a manifest whose pep: section is the policy. env NULL: the real
 * resolver (getaddrinfo with a deadline) and getifaddrs; ca_file NULL: the system CAs.
 * The handler copies the policy and the CA path; 'env' is copied by value, so what its
 * ctx points to (a hosts-file env) must outlive the handler. */
int px_pep_handler_new(const struct px_manifest *policy, const struct px_pep_env *env,
                       const char *ca_file, struct px_pep_handler **ret, struct px_err **err);
void px_pep_handler_free(struct px_pep_handler *h);

/* Never fails: every outcome becomes a response (a status, or code != PX_PEP_OK with a
 * message for the guest) plus its trace (the caller frees both). Blocking; safe to call
 * from several threads at once with the same handler. */
void px_pep_handle(struct px_pep_handler *h, const struct px_pep_request *req,
                   struct px_pep_response *resp, struct px_pep_trace *trace);

#endif
