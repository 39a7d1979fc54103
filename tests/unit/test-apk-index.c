/* APKINDEX parsing: the real Alpine 3.23.3 index text checked field by field against an
 * independent reading by awk; the real third-party APKINDEX.tar.gz through signature,
 * gzip and tar; C: checksums of the real .apk files against openssl's SHA-1 of the
 * control member; dependency syntax; malformed input; repository sets and providers. */
#include "core/common.h"

#include "apk/gzstream.h"
#include "apk/index.h"
#include "apk/version.h"
#include "tap.h"
#include "test-util.h"
#include "apk-test.h"

/* One line per package from awk: "name version arch size isize ndeps nprov ninstif k". */
static const char awk_prog[] =
        "function flush() { if (p != \"\") printf \"%s %s %s %s %s %d %d %d %s\\n\", p, v, a, "
        "s, i, nd, np, ni, k; p=\"\"; v=\"\"; a=\"\"; s=0; i=0; nd=0; np=0; ni=0; k=\"-\" }\n"
        "BEGIN { k=\"-\" }\n"
        "/^$/ { flush(); next }\n"
        "{ key=substr($0,1,1); val=substr($0,3) }\n"
        "key==\"P\" { p=val } key==\"V\" { v=val } key==\"A\" { a=val }\n"
        "key==\"S\" { s=val } key==\"I\" { i=val } key==\"k\" { k=val }\n"
        "key==\"D\" { nd+=split(val, x, \" \") } key==\"p\" { np+=split(val, x, \" \") }\n"
        "key==\"i\" { ni+=split(val, x, \" \") }\n"
        "END { flush() }\n";

static char *our_summary(const struct px_apk_index *idx)
{
	struct px_buf b = PX_BUF_INIT;
	for (size_t i = 0; i < idx->n; i++) {
		const struct px_apk_pkg *p = idx->pkgs[i];
		char k[16] = "-";
		if (p->has_provider_priority)
			snprintf(k, sizeof(k), "%d", p->provider_priority);
		px_buf_printf(&b, "%s %s %s %" PRIu64 " %" PRIu64 " %zu %zu %zu %s\n", p->name,
		              p->version, p->arch, p->size, p->installed_size, p->depends.n,
		              p->provides.n, p->install_if.n, k);
	}
	return px_buf_steal(&b, NULL);
}

static const struct px_apk_pkg *find(const struct px_apk_index *idx, const char *name)
{
	for (size_t i = 0; i < idx->n; i++)
		if (strcmp(idx->pkgs[i]->name, name) == 0)
			return idx->pkgs[i];
	return NULL;
}

static void alpine_text(const char *data)
{
	_cleanup_free_ char *path = xasprintf("%s/alpine-3.23.3-x86_64/APKINDEX", data);
	struct px_apk_index idx;
	struct px_err *err = NULL;
	size_t len;
	_cleanup_free_ char *text = slurp(path, &len);

	ok(px_apk_index_parse(text, len, path, 0, &idx, &err) == 0, "real Alpine APKINDEX parses");
	if (err)
		printf("# %s\n", err->msg);
	is_int(idx.n, 102, "102 packages");
	const char *const awk[] = {"awk", awk_prog, path, NULL};
	_cleanup_free_ char *want = run_out(awk);
	_cleanup_free_ char *got = our_summary(&idx);
	is_str(got, want, "every package's fields agree with awk's reading");

	const struct px_apk_pkg *b = find(&idx, "alpine-base");
	ok(b != NULL, "alpine-base present");
	if (b) {
		is_str(b->version, "3.23.3-r0", "alpine-base version");
		is_str(b->checksum, "Q1kZVWVyo0ZySydq+Guaova5aevA8=", "alpine-base C: text");
		is_int(b->csum_len, 20, "C: decodes to a SHA-1");
		_cleanup_free_ char *again = px_apk_checksum_encode(b->csum, b->csum_len);
		is_str(again, b->checksum, "C: encodes back to the same text");
		is_str(b->maintainer, "Natanael Copa <ncopa@alpinelinux.org>", "m:");
		is_int(b->build_time, 1769548690, "t:");
		is_str(b->commit, "18bef9667898195efb5cf29404bdca89f0cae725", "c:");
		is_str(b->license, "MIT", "L:");
		is_str(b->origin, "alpine-base", "o:");
		is_int(b->depends.n, 10, "ten dependencies");
		is_str(b->depends.v[0].name, "alpine-baselayout", "first dependency");
		is_int(b->depends.v[0].op, PX_APK_DEP_ANY, "unversioned");
	}
	const struct px_apk_pkg *bl = find(&idx, "alpine-baselayout");
	if (bl) {
		is_str(bl->depends.v[0].name, "alpine-baselayout-data", "versioned dep name");
		is_int(bl->depends.v[0].op, PX_APK_VER_EQUAL, "versioned dep op '='");
		is_str(bl->depends.v[0].version, "3.7.1-r8", "versioned dep version");
		is_str(bl->depends.v[1].name, "/bin/sh", "path dependency");
	}
	const struct px_apk_pkg *bb = find(&idx, "busybox-binsh");
	ok(bb && bb->has_provider_priority && bb->provider_priority == 100, "busybox-binsh k:100");
	ok(bb && bb->provides.n == 2 && px_streq(bb->provides.v[0].name, "/bin/sh") &&
	           !bb->provides.v[0].version && px_streq(bb->provides.v[1].name, "cmd:sh") &&
	           px_streq(bb->provides.v[1].version, "1.37.0-r30"),
	   "busybox-binsh provides /bin/sh (unversioned) and cmd:sh=1.37.0-r30");
	bool all_csum = true;
	for (size_t i = 0; i < idx.n; i++) {
		_cleanup_free_ char *e =
		        px_apk_checksum_encode(idx.pkgs[i]->csum, idx.pkgs[i]->csum_len);
		all_csum = all_csum && idx.pkgs[i]->csum_len == 20 &&
		           px_streq(e, idx.pkgs[i]->checksum);
	}
	ok(all_csum, "every C: is a SHA-1 that round-trips");
	bool all_valid = true;
	for (size_t i = 0; i < idx.n; i++)
		all_valid = all_valid && px_apk_version_valid(idx.pkgs[i]->version);
	ok(all_valid, "every V: is a valid apk version");

	/* Providers across a repository set. */
	struct px_apk_repos *r = px_apk_repos_new();
	is_int(px_apk_repos_add(r, &idx), 0, "first repository is number 0");
	ok(idx.n == 0 && idx.pkgs == NULL, "the set took the index over");
	const struct px_apk_provider *pv;
	size_t n;
	px_apk_repos_providers(r, "/bin/sh", &pv, &n);
	ok(n >= 1, "someone provides /bin/sh");
	bool have_bb = false;
	for (size_t i = 0; i < n; i++)
		have_bb = have_bb || (px_streq(pv[i].pkg->name, "busybox-binsh") && pv[i].provide);
	ok(have_bb, "busybox-binsh is among the /bin/sh providers, through p:");
	px_apk_repos_providers(r, "musl", &pv, &n);
	ok(n == 1 && pv[0].provide == NULL && pv[0].pkg->repo == 0, "musl by its own name");
	px_apk_repos_providers(r, "no-such-name", &pv, &n);
	is_int(n, 0, "unknown names have no provider");
	px_apk_repos_free(r);
}

static void thirdparty(const char *data)
{
	_cleanup_free_ char *dir = xasprintf("%s/thirdparty", data);
	_cleanup_free_ char *key = xasprintf("%s/antkss.rsa.pub", dir);
	_cleanup_free_ char *path = xasprintf("%s/x86_64/APKINDEX.tar.gz", dir);
	struct px_apk_keyring *kr = px_apk_keyring_new();
	struct px_apk_index idx;
	struct px_err *err = NULL;

	ok(px_apk_keyring_add_file(kr, key, &err) == 0, "third-party key");
	ok(px_apk_index_load(kr, path, false, 3, &idx, &err) == 0,
	   "third-party APKINDEX.tar.gz loads with its key");
	if (err)
		printf("# %s\n", err->msg);
	px_err_clear(&err);
	is_str(idx.signer, "antkss.rsa.pub", "signer recorded");
	is_int(idx.sig_status, PX_APK_SIG_OK, "signature ok");
	is_int(idx.n, 17, "17 packages");
	const struct px_apk_pkg *h = find(&idx, "hcxdumptool");
	ok(h && h->repo == 3 && h->depends.n == 2 &&
	           px_streq(h->depends.v[1].name, "so:libpcap.so.1"),
	   "hcxdumptool depends on so:libpcap.so.1");
	const struct px_apk_pkg *g = find(&idx, "gradience");
	ok(g && px_streq(g->depends.v[9].name, "python3") &&
	           g->depends.v[9].op == (PX_APK_VER_FUZZY | PX_APK_VER_EQUAL) &&
	           px_streq(g->depends.v[9].version, "3.12"),
	   "python3~3.12 is a fuzzy dependency");
	const struct px_apk_pkg *n8 = find(&idx, "8821cu-src");
	ok(n8 && n8->commit && n8->commit[0] == 0, "an empty c: is kept as empty");

	/* C: is the SHA-1 of the .apk's control member: openssl computes it independently
	 * from the member bytes our gzip splitter reports. */
	static const char *const pkgs[] = {"gcompat-musl-1.2.5-r1", "libglvnd-0-r1",
	                                   "hcxdumptool-1-r1", "libcava-0.10.4-r1",
	                                   "svglib-2.1.0-r1"};
	for (size_t i = 0; i < PX_ARRAY_SIZE(pkgs); i++) {
		_cleanup_free_ char *apk = xasprintf("%s/x86_64/%s.apk", dir, pkgs[i]);
		_cleanup_free_ char *ctl = path_in("control.gz");
		size_t len;
		_cleanup_free_ char *buf = slurp(apk, &len);
		struct px_gz_member *m = NULL;
		size_t nm = 0;
		ok(px_gzstream_split(buf, len, apk, 0, &m, &nm, &err) == 0 && nm == 3,
		   "%s: three gzip members", pkgs[i]);
		px_err_clear(&err);
		if (nm < 2) {
			free(m);
			continue;
		}
		spew(ctl, buf + m[1].offset, m[1].len);
		const char *const sh[] = {
		        "sh", "-c", "openssl dgst -sha1 -binary \"$1\" | openssl base64 -A",
		        "sh", ctl,  NULL};
		_cleanup_free_ char *b64 = run_out(sh);
		_cleanup_free_ char *want = xasprintf("Q1%s", b64 ? b64 : "?");
		const struct px_apk_pkg *p = NULL;
		for (size_t k = 0; k < idx.n; k++) {
			_cleanup_free_ char *fn = px_apk_pkg_filename(idx.pkgs[k]);
			if (strcmp(fn, pkgs[i]) == 0)
				p = idx.pkgs[k];
		}
		ok(p != NULL, "%s is in the index", pkgs[i]);
		is_str(p ? p->checksum : NULL, want, "index C: is openssl's SHA-1 of the member");
		/* And the members tile the file exactly. */
		ok(m[0].offset == 0 && m[1].offset == m[0].len &&
		           m[2].offset == m[1].offset + m[1].len && m[2].offset + m[2].len == len,
		   "%s: the members tile the file", pkgs[i]);
		free(m);
	}
	px_apk_index_free(&idx);

	struct px_apk_keyring *none = px_apk_keyring_new();
	ok(px_apk_index_load(none, path, false, 0, &idx, &err) < 0, "without the key: refused");
	like(err ? err->msg : NULL, "antkss.rsa.pub", "naming the key");
	px_err_clear(&err);
	ok(px_apk_index_load(none, path, true, 0, &idx, &err) == 0 &&
	           idx.sig_status == PX_APK_SIG_UNKNOWN_SIGNER && idx.n == 17,
	   "allow_untrusted: loads, status unknown signer");
	px_apk_index_free(&idx);
	px_err_clear(&err);
	px_apk_keyring_free(none);
	px_apk_keyring_free(kr);
}

static void syntax(void)
{
	struct px_apk_deps d;
	struct px_apk_dep one;
	struct px_err *err = NULL;
	const char *s = "so:libc.musl-x86_64.so.1  !foo>=2.0 bar~1.2\tbaz<3 /bin/sh q><Q1abc=";

	ok(px_apk_deps_parse(s, strlen(s), &d, &err) == 0 && d.n == 6, "six dependencies");
	if (d.n == 6) {
		ok(!d.v[0].conflict && d.v[0].op == PX_APK_DEP_ANY && !d.v[0].version, "plain so:");
		ok(d.v[1].conflict && px_streq(d.v[1].name, "foo") &&
		           d.v[1].op ==
		                   (PX_APK_VER_CONFLICT | PX_APK_VER_GREATER | PX_APK_VER_EQUAL),
		   "!foo>=2.0");
		ok(d.v[2].op == (PX_APK_VER_FUZZY | PX_APK_VER_EQUAL), "bar~1.2");
		ok(d.v[3].op == PX_APK_VER_LESS && px_streq(d.v[3].version, "3"), "baz<3");
		ok(d.v[5].op == PX_APK_DEP_CHECKSUM && px_streq(d.v[5].version, "Q1abc="),
		   "q><Q1abc= (checksum pin)");
		const char *want[] = {"so:libc.musl-x86_64.so.1",
		                      "!foo>=2.0",
		                      "bar~1.2",
		                      "baz<3",
		                      "/bin/sh",
		                      "q><Q1abc="};
		for (size_t i = 0; i < 6; i++) {
			_cleanup_free_ char *f = px_apk_dep_format(&d.v[i]);
			is_str(f, want[i], "format round trip");
		}
	}
	px_apk_deps_free(&d);
	ok(px_apk_dep_parse("foo<", 4, &one, &err) < 0, "operator without version refused");
	like(err ? err->msg : NULL, "foo<", "error quotes it");
	px_err_clear(&err);
	ok(px_apk_dep_parse(">=1", 3, &one, &err) < 0, "no name refused");
	px_err_clear(&err);
	ok(px_apk_dep_parse("!", 1, &one, &err) < 0, "a bare '!' refused");
	px_err_clear(&err);

	uint8_t out[32];
	is_int(px_apk_checksum_decode("Q1kZVWVyo0ZySydq+Guaova5aevA8=", out), 20, "Q1 decodes");
	is_int(px_apk_checksum_decode("Q1kZVWVyo0ZySydq+Guaova5aevA8", out), -1,
	       "short Q1 refused");
	is_int(px_apk_checksum_decode("Q1kZVWVyo0ZySydq+Guaova5aevA=8", out), -1,
	       "misplaced padding refused");
	is_int(px_apk_checksum_decode("Q3kZVWVyo0ZySydq+Guaova5aevA8=", out), -1,
	       "unknown Q3 refused");
	is_int(px_apk_checksum_decode("Q2"
	                              "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
	                              out),
	       32, "Q2 (SHA-256) decodes");
}

static void malformed(void)
{
	static const struct {
		const char *text, *want;
	} bad[] = {
	        {"P:a\nV:1\nnonsense\n", ":3: expected 'X:value'"},
	        {"P:a\n\nV:1\n", "package without a version"},
	        {"V:1\nA:x86_64\n", ":1: package without a name"},
	        {"P:a\nV:1\nS:12x\n", ":3: bad number '12x' in S:"},
	        {"P:a\nV:1\nC:Q1zz\n", ":3: bad checksum"},
	        {"P:a\nV:1\nD:ok b<\n", ":3: in D:: bad dependency 'b<'"},
	        {"P:a\nV:1\nk:-\n", "bad number"},
	};
	for (size_t i = 0; i < PX_ARRAY_SIZE(bad); i++) {
		struct px_apk_index idx;
		struct px_err *err = NULL;
		ok(px_apk_index_parse(bad[i].text, strlen(bad[i].text), "t", 0, &idx, &err) < 0 &&
		           err->exit_code == PX_EXIT_INPUT,
		   "malformed index %zu refused as bad input", i);
		like(err ? err->msg : NULL, bad[i].want, "with the line and reason");
		px_err_clear(&err);
	}

	/* The installed database: the same stanzas with file lines, CRLF tolerated. */
	const char *db = "C:Q1kZVWVyo0ZySydq+Guaova5aevA8=\nP:musl\nV:1.2.5-r10\nA:x86_64\n"
	                 "S:1\nI:2\nT:libc\nF:lib\nR:ld-musl-x86_64.so.1\na:0:0:755\n"
	                 "Z:Q1kZVWVyo0ZySydq+Guaova5aevA8=\nr:libc6\nq:1\n\r\n"
	                 "P:busybox\nV:1.37.0-r30\nk:-5\nM:0:0:755\n";
	struct px_apk_index idx;
	struct px_err *err = NULL;
	ok(px_apk_index_parse(db, strlen(db), "installed", PX_APK_REPO_INSTALLED, &idx, &err) == 0,
	   "installed-database stanzas parse");
	if (err)
		printf("# %s\n", err->msg);
	ok(idx.n == 2 && idx.pkgs[0]->repo == PX_APK_REPO_INSTALLED &&
	           idx.pkgs[0]->replaces.n == 1 && idx.pkgs[0]->replaces_priority == 1 &&
	           idx.pkgs[1]->provider_priority == -5 && idx.pkgs[1]->line == 15,
	   "file lines skipped; r:, q:, negative k: and line numbers kept");
	px_apk_index_free(&idx);
	px_err_clear(&err);
	ok(px_apk_index_parse("", 0, "empty", 0, &idx, &err) == 0 && idx.n == 0,
	   "an empty index is empty");
	px_apk_index_free(&idx);
}

int main(void)
{
	tu_require("awk");
	tu_require("openssl");
	tu_mkdtemp("test-apk-index");
	syntax();
	malformed();
	_cleanup_free_ char *data = apk_data_dir();
	if (data) {
		alpine_text(data);
		thirdparty(data);
	} else {
		skip("../shared/data/apk is absent: real index checks not run");
	}
	tu_rm_tmpdir();
	return done_testing();
}
