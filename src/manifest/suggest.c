#include "core/common.h"

#include "manifest/suggest.h"

/* Words longer than this are not typos of a key; it also bounds the table below. */
#define MAX_WORD 64

/* Optimal string alignment distance: Levenshtein plus transposition of two neighbours,
 * the commonest typing slip ("pakcages"). */
static size_t distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	static size_t d[MAX_WORD + 1][MAX_WORD + 1];
	for (size_t i = 0; i <= la; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++) {
		for (size_t j = 1; j <= lb; j++) {
			size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
			size_t v = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < v)
				v = d[i][j - 1] + 1;
			if (d[i - 1][j - 1] + cost < v)
				v = d[i - 1][j - 1] + cost;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    d[i - 2][j - 2] + 1 < v)
				v = d[i - 2][j - 2] + 1;
			d[i][j] = v;
		}
	}
	return d[la][lb];
}

const char *px_suggest(const char *word, const char *const *candidates, size_t n)
{
	size_t lw = strlen(word);
	if (lw == 0 || lw > MAX_WORD)
		return NULL;
	const char *best = NULL;
	size_t best_d = (size_t)-1;
	for (size_t i = 0; i < n; i++) {
		if (strlen(candidates[i]) > MAX_WORD)
			continue;
		size_t dd = distance(word, candidates[i]);
		if (dd < best_d) {
			best_d = dd;
			best = candidates[i];
		}
	}
	/* One slip per three letters, at most two: "pakages" -> "packages" but not
	 * "os" -> "vm". */
	size_t limit = lw / 3;
	if (limit < 1)
		limit = 1;
	if (limit > 2)
		limit = 2;
	return best_d <= limit && best_d < lw ? best : NULL;
}
