/* Environment interpolation: "${VAR}" in the few manifest values documented to take it
 * (cloud_init.ssh_keys entries, vm.shared_dir, build.dir, pep.audit_log). Anywhere else
 * "${" is ordinary text. */
#ifndef PX_MANIFEST_INTERP_H
#define PX_MANIFEST_INTERP_H

struct px_err;
struct px_ynode;

/* Expands every ${NAME} in scalar node n's text from the environment. "$$" stands for
 * one "$". An unset variable, a bad name or an unclosed "${" is an error at n naming
 * 'what' (the key path). */
int px_interp_env(const struct px_ynode *n, const char *what, char **ret, struct px_err **err);

#endif
