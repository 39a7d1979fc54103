/* Dropping what the PEP does not need once it serves: no new privileges ever, and on Linux
 * a Landlock ruleset (read-only access to the system files name resolution and TLS read,
 * no binding of new TCP ports) and a seccomp filter that refuses process execution,
 * tracing, mounts, namespaces, module loading and the like. The caller applies it before
 * starting threads, so every thread inherits it. */
#ifndef PX_PEP_SANDBOX_H
#define PX_PEP_SANDBOX_H

#include <stddef.h>

struct px_err;

enum px_sandbox_mode {
	PX_SANDBOX_AUTO = 0, /* apply what the kernel offers, warn about the rest */
	PX_SANDBOX_REQUIRED, /* fail when Landlock or seccomp cannot be applied */
	PX_SANDBOX_OFF,      /* no_new_privs only */
};

/* Parses "auto", "required", "off". */
int px_sandbox_mode_parse(const char *s, enum px_sandbox_mode *ret, struct px_err **err);

/* Applies the sandbox. 'read_paths' (NULL entries skipped) are extra files or directories
 * that stay readable (the policy, CA and hosts files, for reloads); in the directories of
 * 'remove_dirs' files may still be removed (the daemon's unix sockets at exit). In auto mode a
 * missing mechanism is reported through *ret_missing (a static string, or NULL when all
 * applied) and is not an error. */
int px_sandbox_apply(enum px_sandbox_mode mode, const char *const *read_paths, size_t n_paths,
                     const char *const *remove_dirs, size_t n_remove, const char **ret_missing,
                     struct px_err **err);

#endif
