#!/bin/sh
# The signed apk repository fixture (tests/fixtures/make-apk-repo) checked with tools that
# are not pexi: openssl verifies every signature, Python's zlib splits the gzip streams and
# its tarfile reads the PAX records, GNU tar lists the packages as one archive.
. "$(dirname "$0")/lib.sh"
require_programs openssl tar gzip python3 base64

R=$TRASH/repo
KEY=$R/keys/pexi-test-5f000001.rsa.pub
"$PEXI_SRC/tests/fixtures/make-apk-repo" "$R" >/dev/null 2>"$TRASH/gen.err" ||
	skip_all "make-apk-repo failed: $(tail -n 1 "$TRASH/gen.err")"
SPLIT=$PEXI_SRC/tests/fixtures/apk-split
mkdir "$TRASH/index" && (cd "$TRASH/index" && "$SPLIT" "$R/x86_64/APKINDEX.tar.gz" s >/dev/null &&
	tar -xzf s.1 APKINDEX) || skip_all "cannot read the fixture index with python3 and tar"

# index_field PKG VERSION LETTER: one field of one entry of the (unsigned) APKINDEX text.
index_field() {
	awk -v p="$1" -v v="$2" -v f="$3" 'BEGIN { RS = ""; FS = "\n" }
		{ n = ""; ver = ""; val = ""
		  for (i = 1; i <= NF; i++) {
			if ($i ~ /^P:/) n = substr($i, 3)
			if ($i ~ /^V:/) ver = substr($i, 3)
			if (substr($i, 1, 2) == f ":") val = substr($i, 3)
		  }
		  if (n == p && ver == v) print val }' "$TRASH/index/APKINDEX"
}

test_expect_success 'the index is two gzip streams with a valid signature' '
	test "$("$SPLIT" "$R/x86_64/APKINDEX.tar.gz" idx)" = 2 &&
	tar -xzf idx.0 && sig=.SIGN.RSA.pexi-test-5f000001.rsa.pub && test -f "$sig" &&
	openssl dgst -sha1 -verify "$KEY" -signature "$sig" idx.1 | grep -qx "Verified OK" &&
	tar -xzf idx.1 APKINDEX DESCRIPTION && grep -q "^P:evil$" APKINDEX &&
	grep -qx "pexi test repository" DESCRIPTION
'

test_expect_success 'a flipped byte in the index control stream fails verification' '
	"$SPLIT" "$R/x86_64/APKINDEX.tar.gz" idx >/dev/null && tar -xzf idx.0 &&
	python3 -c "import sys; b = bytearray(open(sys.argv[1], \"rb\").read()); b[40] ^= 1; open(sys.argv[1], \"wb\").write(b)" idx.1 &&
	! openssl dgst -sha1 -verify "$KEY" -signature .SIGN.RSA.pexi-test-5f000001.rsa.pub idx.1
'

test_expect_success 'every package: three streams, signature, C: checksum, datahash, size' '
	n=0
	for apk in "$R"/x86_64/*.apk; do
		b=$(basename "$apk" .apk) && rm -rf s && mkdir s &&
		test "$("$SPLIT" "$apk" s/p)" = 3 &&
		(cd s && tar -xzf p.0 && tar -xzf p.1 .PKGINFO) &&
		openssl dgst -sha1 -verify "$KEY" -signature s/.SIGN.RSA.pexi-test-5f000001.rsa.pub s/p.1 |
			grep -qx "Verified OK" &&
		name=$(sed -n "s/^pkgname = //p" s/.PKGINFO) && ver=$(sed -n "s/^pkgver = //p" s/.PKGINFO) &&
		test "$b" = "$name-$ver" &&
		c=Q1$(openssl dgst -sha1 -binary s/p.1 | base64 -w0) &&
		test "$(index_field "$name" "$ver" C)" = "$c" &&
		test "$(sed -n "s/^datahash = //p" s/.PKGINFO)" = "$(sha256sum s/p.2 | cut -d" " -f1)" &&
		test "$(index_field "$name" "$ver" S)" = "$(wc -c <"$apk" | tr -d " ")" || return 1
		n=$((n + 1))
	done &&
	test "$n" = 15
'

test_expect_success 'data entries carry the SHA-1 of their content or link target' '
	for apk in "$R"/x86_64/*.apk; do
		"$SPLIT" "$apk" p >/dev/null &&
		python3 - p.2 <<-\PY || return 1
		import gzip, hashlib, sys, tarfile
		t = tarfile.open(fileobj=gzip.open(sys.argv[1]), format=tarfile.PAX_FORMAT)
		for m in t:
		    h = m.pax_headers.get("APK-TOOLS.checksum.SHA1")
		    if m.isdir():
		        continue
		    if m.isreg():
		        want = hashlib.sha1(t.extractfile(m).read()).hexdigest()
		    elif m.issym():
		        want = hashlib.sha1(m.linkname.encode()).hexdigest()
		    else:
		        continue
		    if h != want:
		        sys.exit("%s: %s != %s" % (m.name, h, want))
		PY
	done
'

test_expect_success 'the package set has what the solver and installer tests need' '
	test "$(index_field bar 1.0-r0 D)" = "foo<2" &&
	test -n "$(index_field foo 1.0-r0 C)" && test -n "$(index_field foo 2.0-r0 C)" &&
	test "$(index_field shell-b 1.0-r0 k)" = 20 && test "$(index_field shell-a 1.0-r0 p)" = pexi-shell &&
	test "$(index_field nofoo 1.0-r0 D)" = "!foo" &&
	test "$(index_field foo-doc 1.0-r0 i)" = "foo docs" &&
	test "$(index_field foo-doc 1.0-r0 A)" = noarch &&
	test "$(index_field foo-compat 1.0-r0 r)" = foo &&
	test "$(index_field libfoo 1.0.0-r0 p)" = "so:libfoo.so.1=1.0.0" &&
	tar --xattrs -tvvzf "$R/x86_64/foo-1.0-r0.apk" 2>/dev/null >foo.list &&
	grep -q "^h.* usr/bin/foo-hardlink link to usr/bin/foo$" foo.list &&
	grep -q "x: 4 user.pexi" foo.list && grep -q "\.post-install$" foo.list &&
	tar -tvzf "$R/x86_64/libfoo-1.0.0-r0.apk" 2>/dev/null | grep -q "usr/lib/libfoo.so.1 -> libfoo.so.1.0.0" &&
	tar -tvzf "$R/x86_64/perms-1.0-r0.apk" 2>/dev/null | grep -q "^-rw------- 1000/1000 .* usr/share/perms/owned$" &&
	tar -tzf "$R/x86_64/evil-1.0-r0.apk" -P 2>/dev/null | grep -qx "../../etc/x"
'

test_expect_success 'a rebuild with the same key is the same bytes' '
	(cd "$R/x86_64" && sha256sum ./* >"$TRASH/sums") &&
	"$PEXI_SRC/tests/fixtures/make-apk-repo" "$R" >/dev/null &&
	(cd "$R/x86_64" && sha256sum -c --quiet "$TRASH/sums")
'

test_expect_success 'another arch names its loader and index' '
	"$PEXI_SRC/tests/fixtures/make-apk-repo" arm aarch64 >/dev/null &&
	test -f arm/aarch64/APKINDEX.tar.gz &&
	tar -tzf arm/aarch64/musl-1.2.5-r0.apk 2>/dev/null | grep -qx lib/ld-musl-aarch64.so.1
'

test_done
