/* grub.cfg console rewrite: a line-by-line pass that copies every byte it does not have to
 * change, so the result differs from the input only in the kernel arguments it sets. */
#include "core/common.h"

#include "core/buf.h"
#include "image/grub.h"
#include "manifest/manifest.h"

/* A bound on the words of one kernel command line, so a hostile file cannot make us track
 * an unbounded number of them (GRUB itself caps a line far below this). */
#define MAX_WORDS 4096

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Validates a value we are about to insert: one plain word that GRUB will pass through to
 * the kernel unchanged. */
static int check_word(const char *what, const char *w, struct px_err **err)
{
	if (!w || !*w)
		return px_err_set(err, PX_EXIT_MANIFEST, "%s is empty", what);
	for (const char *p = w; *p; p++) {
		if ((unsigned char)*p <= ' ' || strchr("'\"#$;{}\\|&<>", *p) || *p == 0x7f)
			return px_err_set(err, PX_EXIT_MANIFEST,
			                  "%s '%s' must be one word without blanks, quotes or "
			                  "any of #$;{}\\|&<>",
			                  what, w);
	}
	return 0;
}

/* Returns the end of the word that starts at p (p < end, *p not blank), honouring GRUB's
 * quoting: '...' is literal, "..." allows backslash escapes, a backslash escapes the next
 * character. An unterminated quote runs to the end of the line. */
static const char *word_end(const char *p, const char *end)
{
	while (p < end && !is_blank(*p)) {
		if (*p == '\\') {
			p += p + 1 < end ? 2 : 1;
		} else if (*p == '\'') {
			for (p++; p < end && *p != '\''; p++)
				;
			if (p < end)
				p++;
		} else if (*p == '"') {
			for (p++; p < end && *p != '"'; p++)
				if (*p == '\\' && p + 1 < end)
					p++;
			if (p < end)
				p++;
		} else {
			p++;
		}
	}
	return p;
}

static bool word_is(const char *w, size_t n, const char *s)
{
	return strlen(s) == n && memcmp(w, s, n) == 0;
}

static bool is_linux_command(const char *w, size_t n)
{
	return word_is(w, n, "linux") || word_is(w, n, "linux16") || word_is(w, n, "linuxefi");
}

static bool starts_with_console(const char *w, size_t n)
{
	return n >= 8 && memcmp(w, "console=", 8) == 0;
}

struct word {
	const char *blank; /* the blanks before it start here */
	const char *start;
	const char *end;
};

/* Rewrites the arguments of one Linux command line [args, end): 'args' is just after the
 * command word, 'end' before any CR and LF. */
static int rewrite_args(struct px_buf *out, const char *args, const char *end, const char *console,
                        const struct px_strv *extra, struct px_err **err)
{
	_cleanup_free_ struct word *words = NULL;
	size_t n = 0, cap = 0;
	const char *p = args, *insert_at;
	bool console_done = false;

	/* Collect the argument words up to a comment. */
	for (;;) {
		const char *blank = p;
		while (p < end && is_blank(*p))
			p++;
		if (p == end || *p == '#' || p == blank)
			break;
		if (n == MAX_WORDS)
			return px_err_set(err, PX_EXIT_INPUT,
			                  "a kernel command line has more than %d words",
			                  MAX_WORDS);
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			words = xreallocarray(words, cap, sizeof(*words));
		}
		words[n].blank = blank;
		words[n].start = p;
		p = word_end(p, end);
		words[n].end = p;
		n++;
	}
	insert_at = n ? words[n - 1].end : args;

	for (size_t i = 0; i < n; i++) {
		const struct word *w = &words[i];
		if (console && starts_with_console(w->start, (size_t)(w->end - w->start))) {
			if (!console_done) {
				px_buf_append(out, w->blank, (size_t)(w->start - w->blank), NULL);
				px_buf_printf(out, "console=%s", console);
				console_done = true;
			}
			continue;
		}
		px_buf_append(out, w->blank, (size_t)(w->end - w->blank), NULL);
	}
	if (console && !console_done)
		px_buf_printf(out, " console=%s", console);
	for (size_t i = 0; extra && i < extra->n; i++) {
		const char *a = extra->v[i];
		bool present = false;
		if (console && starts_with_console(a, strlen(a))) {
			/* Every other console= word is gone: only ours can match. */
			present = strcmp(a + 8, console) == 0;
		} else {
			for (size_t j = 0; j < n && !present; j++)
				present = word_is(words[j].start,
				                  (size_t)(words[j].end - words[j].start), a);
		}
		for (size_t j = 0; j < i && !present; j++)
			present = px_streq(extra->v[j], a);
		if (!present)
			px_buf_printf(out, " %s", a);
	}
	px_buf_append(out, insert_at, (size_t)(end - insert_at), NULL);
	return 0;
}

int px_grub_set_console(const char *cfg, size_t len, const char *console,
                        const struct px_strv *extra_args, char **ret, size_t *ret_len,
                        struct px_err **err)
{
	_cleanup_buf_ struct px_buf out = PX_BUF_INIT;
	const char *p = cfg, *end = cfg + len;
	size_t linux_lines = 0;

	if (console && check_word("console", console, err) < 0)
		return -1;
	for (size_t i = 0; extra_args && i < extra_args->n; i++)
		if (check_word("kernel argument", extra_args->v[i], err) < 0)
			return -1;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *line_end = nl ? nl + 1 : end;
		const char *content_end = nl ? nl : end;
		const char *q = p, *cmd;

		if (content_end > p && content_end[-1] == '\r')
			content_end--;
		while (q < content_end && is_blank(*q))
			q++;
		cmd = q;
		while (q < content_end && !is_blank(*q))
			q++;
		if (is_linux_command(cmd, (size_t)(q - cmd))) {
			linux_lines++;
			px_buf_append(&out, p, (size_t)(q - p), NULL);
			if (rewrite_args(&out, q, content_end, console, extra_args, err) < 0)
				return -1;
			px_buf_append(&out, content_end, (size_t)(line_end - content_end), NULL);
		} else {
			px_buf_append(&out, p, (size_t)(line_end - p), NULL);
		}
		p = line_end;
	}
	if (linux_lines == 0)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "no 'linux' command found: cannot set the kernel console");
	/* An empty input never gets here, so the buffer holds data. */
	*ret = px_buf_steal(&out, ret_len);
	return 0;
}
