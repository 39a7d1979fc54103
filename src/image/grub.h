/* The GRUB configuration rewrite of the patch stage, as a pure text function: it sets the
 * kernel console (and extra kernel arguments) on every line that loads a Linux kernel and
 * leaves every other byte exactly as it was. */
#ifndef PX_GRUB_H
#define PX_GRUB_H

#include <stddef.h>

struct px_err;
struct px_strv;

/* Returns a new copy of the grub.cfg text cfg[0..len) in which every `linux`, `linux16` and
 * `linuxefi` command line has exactly one console argument, console=CONSOLE: the first
 * console= argument is replaced in place, further ones are removed with the blank before
 * them, and a line without one gets " console=CONSOLE" after its last argument. Each of
 * extra_args is then appended to those lines unless the line already has that exact
 * argument. Everything else — blanks, tabs, CR before LF, comments, other lines, a missing
 * final newline — is kept byte for byte.
 *
 * Arguments are blank-separated words; quotes and backslashes group the way GRUB's parser
 * does, a word starting with '#' begins a comment (insertions go before it), and only a
 * word that starts with the literal text "console=" counts (xconsole=, "console=..." in
 * quotes do not). console may be NULL to leave console arguments alone. Values must be
 * single words without quotes, '#', '$', ';', braces or backslashes. A text with no Linux
 * command line at all is an error. The result is NUL-terminated. */
int px_grub_set_console(const char *cfg, size_t len, const char *console,
                        const struct px_strv *extra_args, char **ret, size_t *ret_len,
                        struct px_err **err);

#endif
