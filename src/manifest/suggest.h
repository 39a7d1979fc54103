/* "Did you mean": the closest of a few known words to a misspelt one. */
#ifndef PX_MANIFEST_SUGGEST_H
#define PX_MANIFEST_SUGGEST_H

#include <stddef.h>

/* Returns the candidate nearest to 'word' by edit distance (insertions, deletions,
 * substitutions and swaps of neighbours), or NULL when none is close enough to be a
 * plausible typo. */
const char *px_suggest(const char *word, const char *const *candidates, size_t n);

#endif
