/* The data-driven PEP tests read their cases from tests/pep/cases/NAME: one case per line,
 * fields separated by runs of spaces or tabs, '#' starts a comment line, blank lines are
 * skipped. A field may be written "quoted" to hold spaces; \t \r \n \0 \\ \" and \xHH
 * escapes work inside quotes. Include after tap.h. */
#ifndef PX_PEP_CASES_H
#define PX_PEP_CASES_H

#include "core/common.h"

#define CASE_MAX_FIELDS 16

struct pep_case {
	int line;
	size_t n;
	char *f[CASE_MAX_FIELDS];
	size_t len[CASE_MAX_FIELDS]; /* a field may hold NUL bytes through \0 or \x00 */
};

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Splits 'line' in place into c; returns the field count. */
static size_t case_split(char *line, struct pep_case *c)
{
	c->n = 0;
	char *p = line;
	while (*p && c->n < CASE_MAX_FIELDS) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p || *p == '\n')
			break;
		char *out = p, *start = p;
		if (*p == '"') {
			p++;
			while (*p && *p != '"') {
				if (*p == '\\' && p[1]) {
					p++;
					char e = *p++;
					if (e == 'x' && hexval(p[0]) >= 0 && hexval(p[1]) >= 0) {
						*out++ = (char)(hexval(p[0]) * 16 + hexval(p[1]));
						p += 2;
					} else {
						*out++ = e == 't'   ? '\t'
						         : e == 'r' ? '\r'
						         : e == 'n' ? '\n'
						         : e == '0' ? '\0'
						                    : e;
					}
				} else {
					*out++ = *p++;
				}
			}
			if (*p == '"')
				p++;
		} else {
			while (*p && *p != ' ' && *p != '\t' && *p != '\n')
				*out++ = *p++;
		}
		bool end = !*p;
		c->len[c->n] = (size_t)(out - start);
		c->f[c->n++] = start;
		*out = '\0';
		if (end)
			break;
		if (out == p)
			p++;
		else if (*p)
			p++;
	}
	return c->n;
}

/* Calls fn for every case of tests/pep/cases/name (PEXI_SRC names the source tree, default
 * "."); bails out when the file cannot be read. Returns the number of cases. */
static int for_each_case(const char *name, void (*fn)(struct pep_case *c, void *ctx), void *ctx)
{
	const char *src = getenv("PEXI_SRC") ? getenv("PEXI_SRC") : ".";
	_cleanup_free_ char *path = xasprintf("%s/tests/pep/cases/%s", src, name);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (!f) {
		printf("Bail out! cannot open '%s': %s (set PEXI_SRC)\n", path, strerror(errno));
		exit(1);
	}
	char buf[16384];
	int line = 0, count = 0;
	while (fgets(buf, sizeof(buf), f)) {
		line++;
		char *p = buf;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '#' || *p == '\n' || !*p)
			continue;
		struct pep_case c = {.line = line};
		if (case_split(p, &c) == 0)
			continue;
		fn(&c, ctx);
		count++;
	}
	return count;
}

/* A field's "-" stands for "none". */
static inline const char *case_opt(const char *s)
{
	return strcmp(s, "-") == 0 ? NULL : s;
}

#endif
