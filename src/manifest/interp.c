#include <ctype.h>

#include "core/common.h"

#include "core/buf.h"
#include "manifest/interp.h"
#include "manifest/ynode.h"

/* An expanded value may not grow past this: an SSH key is under 1 KiB, a path 4 KiB. */
#define MAX_EXPANDED (64u * 1024u)

int px_interp_env(const struct px_ynode *n, const char *what, char **ret, struct px_err **err)
{
	_cleanup_buf_ struct px_buf out = PX_BUF_INIT;
	out.max = MAX_EXPANDED;
	const char *s = n->str;
	while (*s) {
		if (s[0] == '$' && s[1] == '$') {
			px_buf_puts(&out, "$");
			s += 2;
			continue;
		}
		if (s[0] != '$' || s[1] != '{') {
			const char *next = strchr(s + 1, '$');
			size_t k = next ? (size_t)(next - s) : strlen(s);
			if (px_buf_append(&out, s, k, NULL) < 0)
				goto too_long;
			s += k;
			continue;
		}
		const char *name = s + 2;
		const char *end = strchr(name, '}');
		if (!end)
			return px_ynode_error(
			        err, n, "'%s': unclosed '${' (write '$${' for a literal)", what);
		size_t k = (size_t)(end - name);
		bool valid = k > 0 && (isalpha((unsigned char)name[0]) || name[0] == '_');
		for (size_t i = 0; valid && i < k; i++)
			valid = isalnum((unsigned char)name[i]) || name[i] == '_';
		_cleanup_free_ char *var = xstrndup(name, k);
		if (!valid)
			return px_ynode_error(err, n, "'%s': invalid variable name '${%s}'", what,
			                      var);
		const char *val = getenv(var);
		if (!val)
			return px_ynode_error(err, n, "'%s': environment variable '%s' is not set",
			                      what, var);
		if (px_buf_append(&out, val, strlen(val), NULL) < 0)
			goto too_long;
		s = end + 1;
	}
	px_buf_puts(&out, "");
	*ret = px_buf_steal(&out, NULL);
	return 0;
too_long:
	return px_ynode_error(err, n, "'%s': value is longer than %u bytes after expansion", what,
	                      MAX_EXPANDED);
}
