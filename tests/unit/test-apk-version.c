/* apk version ordering and constraint matching. The ordering table is apk's documented
 * rules applied to versions seen in Alpine repositories; every pair is checked both ways,
 * so an asymmetric comparison cannot pass. */
#include "core/common.h"

#include "apk/version.h"
#include "tap.h"

static const struct {
	const char *a, *b;
	int want; /* of a compared to b */
} order[] = {
        /* revisions */
        {"1.0", "1.0-r0", PX_APK_VER_LESS},
        {"1.0-r1", "1.0-r0", PX_APK_VER_GREATER},
        {"1.0-r9", "1.0-r10", PX_APK_VER_LESS},
        {"3.7.1-r8", "3.7.1-r8", PX_APK_VER_EQUAL},
        {"2.2.39-r1", "1.0.4-r3", PX_APK_VER_GREATER},
        /* numeric components */
        {"1.9", "1.10", PX_APK_VER_LESS},
        {"1.2", "1.2.0", PX_APK_VER_LESS},
        {"1.2.1", "1.2", PX_APK_VER_GREATER},
        {"10", "9", PX_APK_VER_GREATER},
        {"3.23.3-r0", "3.3.23-r0", PX_APK_VER_GREATER},
        /* a leading zero compares as a string: 1.01 is "1.01", below "1.1" */
        {"1.01", "1.1", PX_APK_VER_LESS},
        {"1.001", "1.01", PX_APK_VER_LESS},
        {"2023.01.05", "2023.1.4", PX_APK_VER_LESS},
        /* letters */
        {"1.0", "1.0a", PX_APK_VER_LESS},
        {"1.0a", "1.0b", PX_APK_VER_LESS},
        {"1.0a", "1.0.1", PX_APK_VER_LESS},
        {"1.1.1w-r1", "1.1.1v-r3", PX_APK_VER_GREATER},
        /* suffixes */
        {"1.0_alpha", "1.0_beta", PX_APK_VER_LESS},
        {"1.0_beta", "1.0_pre", PX_APK_VER_LESS},
        {"1.0_pre", "1.0_rc", PX_APK_VER_LESS},
        {"1.0_rc", "1.0", PX_APK_VER_LESS},
        {"1.0", "1.0_cvs", PX_APK_VER_LESS},
        {"1.0_cvs", "1.0_svn", PX_APK_VER_LESS},
        {"1.0_svn", "1.0_git", PX_APK_VER_LESS},
        {"1.0_git", "1.0_hg", PX_APK_VER_LESS},
        {"1.0_hg", "1.0_p", PX_APK_VER_LESS},
        {"1.0_rc1", "1.0_rc2", PX_APK_VER_LESS},
        {"1.0_rc10", "1.0_rc9", PX_APK_VER_GREATER},
        {"2.0_rc1-r5", "2.0-r0", PX_APK_VER_LESS},
        {"9.9_p1-r2", "9.9-r9", PX_APK_VER_GREATER},
        {"6.5_p20250503-r0", "6.5_p20240601-r1", PX_APK_VER_GREATER},
        {"0.1.0_alpha2", "0.1.0_alpha", PX_APK_VER_GREATER},
        {"1.0_alpha_pre2", "1.0_alpha", PX_APK_VER_LESS},
        {"1.0_p1", "1.0a", PX_APK_VER_LESS},
        {"1.0_git20240101", "1.0.1", PX_APK_VER_LESS},
        /* commit hashes sort after suffixes, as strings, before the revision */
        {"1.0~abc", "1.0~abd", PX_APK_VER_LESS},
        {"1.0", "1.0~abc", PX_APK_VER_LESS},
        {"1.0~abc-r1", "1.0~abc", PX_APK_VER_GREATER},
        {"1.0_git2~ff", "1.0_git2-r0", PX_APK_VER_GREATER},
};

static const char *const valid[] = {
        "1",    "1.0",           "3.7.1-r8",   "1.36.1-r31",       "2.4.4_p1-r1",
        "1.0a", "1.0_alpha1_p2", "0.1~ab12cd", "6.5_p20250503-r0", "1.0_rc1~d3-r0",
};

static const char *const invalid[] = {
        "",     "a1",      "1.0-r", "1.0-x1",    "1.0_foo",   "1.0bc", "1.0a1",
        "1.0~", "1.0~xyz", "1..0",  "1.0-r1-r2", "1.0-r1_p1", "-r1",   "1.0 ",
};

static const struct {
	const char *v, *op, *ref;
	bool want;
} matches[] = {
        {"1.2.3-r0", "=", "1.2.3-r0", true},
        {"1.2.3-r1", "=", "1.2.3-r0", false},
        {"1.2.3-r1", ">=", "1.2.3-r0", true},
        {"1.2.3-r0", ">=", "1.2.3-r0", true},
        {"1.2.3-r0", ">", "1.2.3-r0", false},
        {"1.2.2", "<", "1.2.3", true},
        {"1.2.3", "<=", "1.2.3", true},
        {"1.2.4", "<=", "1.2.3", false},
        /* '~' is a prefix match on whole components */
        {"1.2.3-r4", "~", "1.2", true},
        {"1.2", "~", "1.2", true},
        {"1.3", "~", "1.2", false},
        {"1.20", "~", "1.2", false},
        {"1.2_rc1", "~", "1.2", true},
        {"1.2.3", "=~", "1.2", true},
        {"2.0", ">~", "1.2", true},
        {"1.2.9", "<~", "1.2", true},
        {"1.3", "<~", "1.2", false},
};

int main(void)
{
	for (size_t i = 0; i < PX_ARRAY_SIZE(order); i++) {
		int back = order[i].want == PX_APK_VER_LESS      ? PX_APK_VER_GREATER
		           : order[i].want == PX_APK_VER_GREATER ? PX_APK_VER_LESS
		                                                 : PX_APK_VER_EQUAL;
		is_int(px_apk_version_cmp(order[i].a, order[i].b), order[i].want, order[i].a);
		is_int(px_apk_version_cmp(order[i].b, order[i].a), back, order[i].b);
		ok(px_apk_version_valid(order[i].a) && px_apk_version_valid(order[i].b),
		   "%s and %s are valid", order[i].a, order[i].b);
	}
	for (size_t i = 0; i < PX_ARRAY_SIZE(valid); i++)
		ok(px_apk_version_valid(valid[i]), "valid '%s'", valid[i]);
	for (size_t i = 0; i < PX_ARRAY_SIZE(invalid); i++)
		ok(!px_apk_version_valid(invalid[i]), "invalid '%s'", invalid[i]);

	for (size_t i = 0; i < PX_ARRAY_SIZE(matches); i++) {
		int op = px_apk_version_op_parse(matches[i].op, strlen(matches[i].op));
		ok(op != 0, "operator '%s' parses", matches[i].op);
		ok(px_apk_version_match(matches[i].v, op, matches[i].ref) == matches[i].want,
		   "%s %s %s is %s", matches[i].v, matches[i].op, matches[i].ref,
		   matches[i].want ? "true" : "false");
		ok(px_apk_version_match(matches[i].v, op | PX_APK_VER_CONFLICT, matches[i].ref) ==
		           !matches[i].want,
		   "!(%s %s %s) inverts", matches[i].v, matches[i].op, matches[i].ref);
	}
	ok(px_apk_version_match("anything", PX_APK_DEP_ANY, NULL), "any matches every version");
	ok(!px_apk_version_match("1", PX_APK_DEP_ANY | PX_APK_VER_CONFLICT, NULL),
	   "a bare conflict matches nothing");
	is_int(px_apk_version_op_parse("=>", 2), PX_APK_VER_GREATER | PX_APK_VER_EQUAL,
	       "'=>' is '>=' (apk reads the characters as a set)");
	is_int(px_apk_version_op_parse("!", 1), 0, "'!' is not an operator");
	is_str(px_apk_version_op_name(PX_APK_VER_GREATER | PX_APK_VER_EQUAL), ">=", "name of >=");
	is_str(px_apk_version_op_name(PX_APK_VER_FUZZY | PX_APK_VER_EQUAL), "~", "name of ~");
	is_str(px_apk_version_op_name(PX_APK_DEP_CHECKSUM), "><", "name of ><");
	return done_testing();
}
