/* The PEP's audit log: one JSON line per request, appended with a single write() to an
 * O_APPEND file, so concurrent writers never interleave. Lines form a SHA-256 chain:
 * each line ends with "prev_hash" (the previous line's hash, 64 zeros for the first)
 * and "hash" (SHA-256 of the line's text up to, not including, ',"hash":'), and "seq"
 * counts from 1. An edited line fails its own hash; a removed, inserted or reordered line
 * breaks the chain or the count. Request header values are never logged (only names),
 * so Authorization and Cookie values cannot leak into it. */
#ifndef PX_PEP_AUDIT_H
#define PX_PEP_AUDIT_H

#include <stdint.h>

#include "pep/pep.h"

struct px_err;
struct px_audit;

/* Opens (creating, mode 0600) the log at 'path' and continues its chain: the next line
 * follows the last one's seq and hash. Fails when the last line is not a complete audit
 * record, rather than starting a chain that could not verify. 'instance' is written into
 * every line (may be NULL). */
int px_audit_open(const char *path, const char *instance, struct px_audit **ret,
                  struct px_err **err);
/* Syncs and closes; accepts NULL. */
void px_audit_close(struct px_audit *a);
/* fsync()s the log, for shutdown. */
int px_audit_sync(struct px_audit *a, struct px_err **err);

/* Appends the line for one request. 'req' may be NULL (a frame refused before it became a
 * request); resp and trace come from px_pep_handle or the server's own refusal. Safe to
 * call from several threads. */
int px_audit_record(struct px_audit *a, const struct px_pep_request *req,
                    const struct px_pep_response *resp, const struct px_pep_trace *trace,
                    struct px_err **err);

/* Checks the whole chain of the log at 'path'. On success *ret_lines is the number of
 * records; on the first broken line the error (PX_EXIT_INPUT) names it as "line N: why"
 * and *ret_bad_line is N. */
int px_audit_verify(const char *path, uint64_t *ret_lines, uint64_t *ret_bad_line,
                    struct px_err **err);

#endif
