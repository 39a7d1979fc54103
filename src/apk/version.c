#include "core/common.h"

#include "apk/version.h"

/* The parts of a version in the order they may appear; a part may only be followed by one
 * of a later kind (digits may repeat, suffixes may repeat). */
enum part {
	PART_FIRST_DIGITS,
	PART_DIGITS,
	PART_LETTER,
	PART_SUFFIX,
	PART_SUFFIX_NUMBER,
	PART_HASH,
	PART_REVISION,
	PART_END,
	PART_INVALID,
};

/* Suffix ranks: the pre-releases sort below a plain version, the rest above. */
enum suffix {
	SUF_INVALID,
	SUF_ALPHA,
	SUF_BETA,
	SUF_PRE,
	SUF_RC,
	SUF_NONE,
	SUF_CVS,
	SUF_SVN,
	SUF_GIT,
	SUF_HG,
	SUF_P,
};

static const struct {
	const char *name;
	enum suffix rank;
} suffixes[] = {
        {"alpha", SUF_ALPHA}, {"beta", SUF_BETA}, {"pre", SUF_PRE},
        {"rc", SUF_RC},       {"cvs", SUF_CVS},   {"svn", SUF_SVN},
        {"git", SUF_GIT},     {"hg", SUF_HG},     {"p", SUF_P},
};

struct tok {
	enum part part;
	enum suffix suffix;
	uint64_t number;
	const char *text; /* the part's characters, for string comparisons */
	size_t len;
	const char *rest; /* what is left to scan */
};

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static void scan_digits(struct tok *t)
{
	const char *p = t->rest;
	uint64_t n = 0;
	while (is_digit(*p)) {
		/* Saturate rather than wrap: absurd numbers still order sensibly. */
		if (n > (UINT64_MAX - 9) / 10)
			n = UINT64_MAX;
		else
			n = n * 10 + (uint64_t)(*p - '0');
		p++;
	}
	t->number = n;
	t->text = t->rest;
	t->len = (size_t)(p - t->rest);
	t->rest = p;
	if (t->len == 0)
		t->part = PART_INVALID;
}

static void tok_first(struct tok *t, const char *v)
{
	*t = (struct tok){.part = PART_FIRST_DIGITS, .rest = v};
	scan_digits(t);
}

static void tok_next(struct tok *t)
{
	const char *p = t->rest;

	if (*p == 0) {
		t->part = PART_END;
		return;
	}
	if (*p >= 'a' && *p <= 'z') {
		if (t->part > PART_DIGITS)
			goto invalid;
		t->part = PART_LETTER;
		t->text = p;
		t->len = 1;
		t->rest = p + 1;
		return;
	}
	if (*p == '.' || is_digit(*p)) {
		if (*p == '.') {
			if (t->part > PART_DIGITS)
				goto invalid;
			t->rest = ++p;
		}
		if (t->part == PART_FIRST_DIGITS || t->part == PART_DIGITS)
			t->part = PART_DIGITS;
		else if (t->part == PART_SUFFIX)
			t->part = PART_SUFFIX_NUMBER;
		else
			goto invalid;
		scan_digits(t);
		return;
	}
	if (*p == '_') {
		if (t->part > PART_SUFFIX_NUMBER)
			goto invalid;
		const char *s = ++p;
		while (*p >= 'a' && *p <= 'z')
			p++;
		t->suffix = SUF_INVALID;
		for (size_t i = 0; i < PX_ARRAY_SIZE(suffixes); i++)
			if (strlen(suffixes[i].name) == (size_t)(p - s) &&
			    memcmp(suffixes[i].name, s, (size_t)(p - s)) == 0)
				t->suffix = suffixes[i].rank;
		if (t->suffix == SUF_INVALID)
			goto invalid;
		t->part = PART_SUFFIX;
		t->text = s;
		t->len = (size_t)(p - s);
		t->rest = p;
		return;
	}
	if (*p == '~') {
		if (t->part >= PART_HASH)
			goto invalid;
		const char *s = ++p;
		while (is_hex(*p))
			p++;
		if (p == s)
			goto invalid;
		t->part = PART_HASH;
		t->text = s;
		t->len = (size_t)(p - s);
		t->rest = p;
		return;
	}
	if (*p == '-') {
		if (t->part >= PART_REVISION || p[1] != 'r')
			goto invalid;
		t->part = PART_REVISION;
		t->rest = p + 2;
		scan_digits(t);
		return;
	}
invalid:
	t->part = PART_INVALID;
}

static int cmp_u64(uint64_t a, uint64_t b)
{
	return a < b ? PX_APK_VER_LESS : a > b ? PX_APK_VER_GREATER : PX_APK_VER_EQUAL;
}

/* Byte-wise, shorter first on a common prefix: apk's blob sort. */
static int cmp_text(const struct tok *a, const struct tok *b)
{
	size_t n = a->len < b->len ? a->len : b->len;
	int r = memcmp(a->text, b->text, n);
	if (r == 0)
		return cmp_u64(a->len, b->len);
	return r < 0 ? PX_APK_VER_LESS : PX_APK_VER_GREATER;
}

static int cmp_tok(const struct tok *a, const struct tok *b)
{
	switch (a->part) {
	case PART_DIGITS:
		/* A leading zero makes the component a decimal fraction in effect, so
		 * "1.05" < "1.1"; apk compares such components as strings. */
		if (a->text[0] == '0' || b->text[0] == '0')
			return cmp_text(a, b);
		return cmp_u64(a->number, b->number);
	case PART_FIRST_DIGITS:
	case PART_SUFFIX_NUMBER:
	case PART_REVISION:
		return cmp_u64(a->number, b->number);
	case PART_LETTER:
		return cmp_u64((unsigned char)a->text[0], (unsigned char)b->text[0]);
	case PART_SUFFIX:
		return cmp_u64(a->suffix, b->suffix);
	default:
		return cmp_text(a, b);
	}
}

static int compare(const char *a, const char *b, bool fuzzy)
{
	struct tok ta, tb;

	if (!a || !b)
		return a == b ? PX_APK_VER_EQUAL : PX_APK_DEP_ANY;
	for (tok_first(&ta, a), tok_first(&tb, b); ta.part == tb.part && ta.part < PART_END;
	     tok_next(&ta), tok_next(&tb)) {
		int r = cmp_tok(&ta, &tb);
		if (r != PX_APK_VER_EQUAL)
			return r;
	}
	if (ta.part == tb.part)
		return PX_APK_VER_EQUAL;
	/* '~' matches when b is a prefix of a, component-wise. */
	if (fuzzy && tb.part == PART_END)
		return PX_APK_VER_EQUAL;
	/* Equal so far: the one that goes on is greater, unless it goes on with a
	 * pre-release suffix (1.0_rc1 < 1.0). Otherwise the one whose next part is of an
	 * earlier kind is greater: 1.0.1 > 1.0a > 1.0_p1 > 1.0-r1 > 1.0. */
	if (ta.part == PART_SUFFIX && ta.suffix < SUF_NONE)
		return PX_APK_VER_LESS;
	if (tb.part == PART_SUFFIX && tb.suffix < SUF_NONE)
		return PX_APK_VER_GREATER;
	if (ta.part > tb.part)
		return PX_APK_VER_LESS;
	if (tb.part > ta.part)
		return PX_APK_VER_GREATER;
	return PX_APK_VER_EQUAL;
}

bool px_apk_version_valid(const char *v)
{
	struct tok t;
	if (!v)
		return false;
	for (tok_first(&t, v); t.part < PART_END; tok_next(&t))
		;
	return t.part == PART_END;
}

int px_apk_version_cmp(const char *a, const char *b)
{
	return compare(a, b, false);
}

int px_apk_version_op_parse(const char *op, size_t len)
{
	int r = 0;
	if (len == 0)
		return 0;
	for (size_t i = 0; i < len; i++) {
		switch (op[i]) {
		case '<':
			r |= PX_APK_VER_LESS;
			break;
		case '>':
			r |= PX_APK_VER_GREATER;
			break;
		case '=':
			r |= PX_APK_VER_EQUAL;
			break;
		case '~':
			r |= PX_APK_VER_FUZZY | PX_APK_VER_EQUAL;
			break;
		default:
			return 0;
		}
	}
	return r;
}

const char *px_apk_version_op_name(int op)
{
	switch (op & ~PX_APK_VER_CONFLICT) {
	case PX_APK_VER_LESS:
		return "<";
	case PX_APK_VER_LESS | PX_APK_VER_EQUAL:
		return "<=";
	case PX_APK_VER_LESS | PX_APK_VER_EQUAL | PX_APK_VER_FUZZY:
		return "<~";
	case PX_APK_VER_EQUAL | PX_APK_VER_FUZZY:
	case PX_APK_VER_FUZZY:
		return "~";
	case PX_APK_VER_EQUAL:
		return "=";
	case PX_APK_VER_GREATER | PX_APK_VER_EQUAL:
		return ">=";
	case PX_APK_VER_GREATER | PX_APK_VER_EQUAL | PX_APK_VER_FUZZY:
		return ">~";
	case PX_APK_VER_GREATER:
		return ">";
	case PX_APK_DEP_CHECKSUM:
		return "><";
	case PX_APK_DEP_ANY:
		return "";
	default:
		return "?";
	}
}

bool px_apk_version_match(const char *v, int op, const char *ref)
{
	bool ok = (op & PX_APK_DEP_ANY) == PX_APK_DEP_ANY ||
	          (compare(v, ref, (op & PX_APK_VER_FUZZY) != 0) & op) != 0;
	if (op & PX_APK_VER_CONFLICT)
		ok = !ok;
	return ok;
}
