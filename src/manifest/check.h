/* Checks of single manifest values (URLs, digests, names, host patterns, addresses,
 * paths). Each returns 0, or an error at node n that names the key path 'what'. Some
 * normalise the value in place (lowercase digests and host names). */
#ifndef PX_MANIFEST_CHECK_H
#define PX_MANIFEST_CHECK_H

struct px_err;
struct px_ynode;

typedef int (*px_check_fn)(const struct px_ynode *n, const char *what, char *value,
                           struct px_err **err);

int px_check_url(const struct px_ynode *n, const char *what, char *value, struct px_err **err);
int px_check_sha256(const struct px_ynode *n, const char *what, char *value, struct px_err **err);
int px_check_name(const struct px_ynode *n, const char *what, char *value, struct px_err **err);
int px_check_user(const struct px_ynode *n, const char *what, char *value, struct px_err **err);
int px_check_token(const struct px_ynode *n, const char *what, char *value, struct px_err **err);
int px_check_line(const struct px_ynode *n, const char *what, char *value, struct px_err **err);
int px_check_path(const struct px_ynode *n, const char *what, char *value, struct px_err **err);
int px_check_guest_path(const struct px_ynode *n, const char *what, char *value,
                        struct px_err **err);
int px_check_datasource(const struct px_ynode *n, const char *what, char *value,
                        struct px_err **err);
int px_check_instance_id(const struct px_ynode *n, const char *what, char *value,
                         struct px_err **err);
int px_check_package(const struct px_ynode *n, const char *what, char *value, struct px_err **err);
int px_check_host_pattern(const struct px_ynode *n, const char *what, char *value,
                          struct px_err **err);
int px_check_address(const struct px_ynode *n, const char *what, char *value, struct px_err **err);
int px_check_method(const struct px_ynode *n, const char *what, char *value, struct px_err **err);
int px_check_permissions(const struct px_ynode *n, const char *what, char *value,
                         struct px_err **err);
int px_check_owner(const struct px_ynode *n, const char *what, char *value, struct px_err **err);

#endif
