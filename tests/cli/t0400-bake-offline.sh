#!/bin/sh
# pexi build's bake stage, method offline: the signed fixture repository
# (tests/fixtures/make-apk-repo) served over loopback HTTP, installed into the Alpine-shaped
# fixture disk, and the result checked with e2fsprogs (e2fsck, debugfs), GNU tar and
# Python, never with pexi itself.
. "$(dirname "$0")/lib.sh"
require_programs qemu-img sgdisk e2fsck debugfs python3 sha256sum openssl tar gzip \
	mkfs.ext4 mkfs.vfat mcopy

. "$(dirname "$0")/bake-lib.sh"

B=a/.pexi/build
write_manifest "$TRASH/a" "foo, perms"

test_expect_success 'pexi build installs foo and perms with their dependencies' '
	"$PEXI" build -f a/pexi.yml >out 2>err &&
	grep -q "^bake " out && grep -q "installed 4 packages" out &&
	grep -q "foo.post-install" err
'
test_expect_success 'e2fsck -fn finds the baked filesystem clean' '
	e2fsck -fn "$B/disk.raw?offset=$ROOT_OFFSET"
'
test_expect_success 'the newest foo (2.0) and its files are there' '
	dbg "$B/disk.raw" "cat /usr/bin/foo" >foo && grep -q "2.0" foo &&
	dbg "$B/disk.raw" "stat /usr/bin/foo" >st && grep -q "Mode:  0755" st &&
	dbg "$B/disk.raw" "cat /usr/lib/libfoo.so.1.0.0" >/dev/null &&
	dbg "$B/disk.raw" "stat /lib/ld-musl-x86_64.so.1" | grep -q "Type: regular"
'
test_expect_success 'the hard link shares the inode of its target' '
	a=$(dbg "$B/disk.raw" "stat /usr/bin/foo" | sed -n "s/^Inode: \([0-9]*\).*/\1/p") &&
	b=$(dbg "$B/disk.raw" "stat /usr/bin/foo-hardlink" | sed -n "s/^Inode: \([0-9]*\).*/\1/p") &&
	test -n "$a" && test "$a" = "$b" &&
	dbg "$B/disk.raw" "stat /usr/bin/foo" | grep -q "Links: 2"
'
test_expect_success 'symlinks keep their targets' '
	dbg "$B/disk.raw" "stat /usr/lib/libfoo.so.1" | grep -q "Fast link dest: \"libfoo.so.1.0.0\"" &&
	dbg "$B/disk.raw" "stat /lib/libc.musl-x86_64.so.1" | grep -q "Fast link dest: \"ld-musl-x86_64.so.1\""
'
test_expect_success 'modes, owners, the xattr and clamped times are as packaged' '
	dbg "$B/disk.raw" "stat /etc/foo.conf" >c && grep -q "Mode:  0640" c &&
	dbg "$B/disk.raw" "ea_list /etc/foo.conf" | grep -q "user.pexi (4) = \"test\"" &&
	dbg "$B/disk.raw" "stat /usr/share/perms/owned" >o && grep -q "Mode:  0600" o &&
	grep -q "User:  1000   Group:  1000" o &&
	dbg "$B/disk.raw" "stat /usr/share/perms/sticky" | grep -q "Mode:  01777" &&
	dbg "$B/disk.raw" "stat /usr/share/perms/future" | grep -q "mtime: 0x6553f100"
'
test_expect_success '/lib/apk/db/installed lists the packages with their files and C:' '
	dbg "$B/disk.raw" "cat /lib/apk/db/installed" >installed &&
	python3 - installed "$FIX/repo/packages.txt" <<-PY
	import sys
	stanzas = [s for s in open(sys.argv[1]).read().split("\n\n") if s.strip()]
	pk = {}
	for s in stanzas:
	    f = {}
	    for l in s.splitlines():
	        f.setdefault(l[:2], []).append(l[2:])
	    pk[f["P:"][0]] = f
	assert sorted(pk) == ["foo", "libfoo", "musl", "perms"], sorted(pk)
	want = {}
	for l in open(sys.argv[2]):
	    n, v, c = l.split()
	    want[(n, v)] = c
	for n, f in pk.items():
	    assert want[(n, f["V:"][0])] == f["C:"][0], (n, f["C:"])
	assert pk["foo"]["V:"] == ["2.0-r0"]
	assert "usr/bin" in pk["foo"]["F:"] and "foo" in pk["foo"]["R:"], pk["foo"]
	assert all(z.startswith("Q1") for z in pk["foo"]["Z:"])
	PY
'
test_expect_success 'Z: lines match the SHA-1 of the installed files' '
	dbg "$B/disk.raw" "cat /usr/bin/foo" >foo.bin &&
	z=$(awk "/^P:foo$/ {p=1} p && /^R:foo$/ {getline; while (\$0 !~ /^Z:/) getline; print substr(\$0,3); exit}" installed) &&
	test "$z" = "Q1$(openssl dgst -sha1 -binary foo.bin | base64)"
'
test_expect_success 'world, scripts.tar and the firstboot service' '
	dbg "$B/disk.raw" "cat /etc/apk/world" >world &&
	grep -qx foo world && grep -qx perms world && grep -qx alpine-base world &&
	dbg "$B/disk.raw" "dump /lib/apk/db/scripts.tar scripts.tar" &&
	tar -tf scripts.tar | grep -q "^foo-2.0-r0.Q1.*\.post-install$" &&
	dbg "$B/disk.raw" "ls /var/lib/pexi/firstboot" | grep -q "foo.post-install" &&
	dbg "$B/disk.raw" "cat /var/lib/pexi/firstboot/0000-foo.post-install.args" | grep -qx "2.0-r0" &&
	dbg "$B/disk.raw" "stat /etc/runlevels/default/pexi-firstboot" |
		grep -q "Fast link dest: \"/etc/init.d/pexi-firstboot\"" &&
	dbg "$B/disk.raw" "cat /etc/init.d/pexi-firstboot" | head -1 | grep -qx "#!/sbin/openrc-run"
'
test_expect_success 'pexi.lock records every package with version, checksum and repository' '
	python3 - "$B/pexi.lock" "$FIX/repo/packages.txt" "$BASE/repo" <<-PY
	import json, sys
	lock = json.load(open(sys.argv[1]))
	want = {}
	for l in open(sys.argv[2]):
	    n, v, c = l.split()
	    want[(n, v)] = c
	got = [(p["name"], p["version"]) for p in lock["packages"]]
	assert got == [("foo", "2.0-r0"), ("libfoo", "1.0.0-r0"), ("musl", "1.2.5-r0"), ("perms", "1.0-r0")], got
	for p in lock["packages"]:
	    assert p["checksum"] == want[(p["name"], p["version"])]
	    assert p["repository"] == sys.argv[3]
	PY
'
test_expect_success 'an unchanged rebuild is cached and keeps the lock' '
	cp "$B/pexi.lock" lock.before &&
	"$PEXI" build -f a/pexi.yml --json >re.json &&
	python3 -c "import json; d={s[\"name\"]: s[\"cached\"] for s in json.load(open(\"re.json\"))[\"stages\"]}; assert d[\"bake\"] and d[\"patch\"], d" &&
	cmp lock.before "$B/pexi.lock"
'
test_expect_success 'a second build elsewhere is bit-identical' '
	write_manifest "$TRASH/b" "foo, perms" &&
	"$PEXI" -q build -f b/pexi.yml && cmp "$B/disk.raw" b/.pexi/build/disk.raw
'
test_expect_success '--offline bakes from the download cache without a request' '
	write_manifest "$TRASH/off" "foo, perms" &&
	n=$(wc -l <"$TRASH/http.log") &&
	"$PEXI" -q build -f off/pexi.yml --offline &&
	test "$n" -eq "$(wc -l <"$TRASH/http.log")" &&
	cmp "$B/disk.raw" off/.pexi/build/disk.raw
'
test_expect_success 'a damaged cached package is dropped and downloaded again' '
	pkg=$(ls "$XDG_CACHE_HOME"/pexi/apk/pkg-foo-2.0-r0-*.apk) && test -f "$pkg" &&
	truncate -s 100 "$pkg" &&
	write_manifest "$TRASH/recache" "foo, perms" &&
	"$PEXI" build -f recache/pexi.yml >/dev/null 2>err &&
	grep -q "dropping the cached" err &&
	cmp "$B/disk.raw" recache/.pexi/build/disk.raw &&
	cmp "$pkg" "$FIX/repo/x86_64/foo-2.0-r0.apk"
'
test_expect_success 'the escaping package is refused and disk.raw is untouched' '
	write_manifest "$TRASH/e" "evil" &&
	! "$PEXI" build -f e/pexi.yml 2>err && grep -q "../../etc/x" err &&
	test ! -e e/.pexi/build/disk.raw &&
	cp -r b e2 && rm -rf e2/pexi.yml && write_manifest "$TRASH/e2" "foo, perms, evil" &&
	before=$(sha256sum e2/.pexi/build/disk.raw) &&
	! "$PEXI" -q build -f e2/pexi.yml 2>err2 && grep -q "../../etc/x" err2 &&
	test "$before" = "$(sha256sum e2/.pexi/build/disk.raw)" &&
	! dbg e2/.pexi/build/disk.raw "stat /etc/x" | grep -q Inode
'
test_expect_success 'an untrusted signature is an error and leaves the image untouched' '
	cp -r b u && write_manifest "$TRASH/u" "foo, perms" &&
	openssl genrsa -out other.rsa 2048 2>/dev/null &&
	openssl rsa -in other.rsa -pubout -out u/$KEYNAME 2>/dev/null &&
	before=$(sha256sum u/.pexi/build/disk.raw) &&
	"$PEXI" -q build -f u/pexi.yml 2>err; test $? -eq 4 &&
	grep -q "$KEYNAME" err &&
	test "$before" = "$(sha256sum u/.pexi/build/disk.raw)"
'
test_expect_success 'an unsatisfiable request names the conflict' '
	write_manifest "$TRASH/conflict" "bar, baz" &&
	"$PEXI" -q build -f conflict/pexi.yml 2>err; test $? -eq 4 && grep -q "foo" err &&
	test ! -e conflict/.pexi/build/disk.raw
'
test_expect_success '--frozen installs the locked set while the repository is unchanged' '
	"$PEXI" -q build -f b/pexi.yml --frozen && cmp "$B/disk.raw" b/.pexi/build/disk.raw
'
# resign_without REPO PKG VERSION: drops one package from REPO's index and signs the new
# index with the fixture key (tar and gzip through Python, the signature through openssl).
resign_without() {
	python3 - "$1/x86_64/APKINDEX.tar.gz" "$2" "$3" "$1/keys/pexi-test-5f000001.rsa" <<-'PY'
	import gzip, io, subprocess, sys, tarfile, zlib
	path, name, version, key = sys.argv[1:]
	raw = open(path, "rb").read()
	members, pos = [], 0
	while pos < len(raw):
	    d = zlib.decompressobj(31)
	    d.decompress(raw[pos:])
	    end = len(raw) - len(d.unused_data)
	    members.append(raw[pos:end])
	    pos = end
	files = {}
	with tarfile.open(fileobj=io.BytesIO(gzip.decompress(members[-1]))) as t:
	    for m in t.getmembers():
	        files[m.name] = t.extractfile(m).read()
	NL = chr(10)
	stanzas = files["APKINDEX"].decode().split(NL + NL)
	def is_it(st):
	    lines = st.split(NL)
	    return ("P:" + name) in lines and ("V:" + version) in lines
	files["APKINDEX"] = (NL + NL).join(st for st in stanzas if not is_it(st)).encode()
	def cut_tar(entries):
	    b = io.BytesIO()
	    t = tarfile.open(fileobj=b, mode="w", format=tarfile.USTAR_FORMAT)
	    for n, data in entries:
	        ti = tarfile.TarInfo(n); ti.size = len(data); ti.mtime = 1700000000
	        t.addfile(ti, io.BytesIO(data))
	    end = t.offset
	    t.close()
	    return b.getvalue()[:end]
	control = gzip.compress(cut_tar([("DESCRIPTION", files["DESCRIPTION"]), ("APKINDEX", files["APKINDEX"])]), mtime=0)
	sig = subprocess.run(["openssl", "dgst", "-sha1", "-sign", key], input=control, capture_output=True, check=True).stdout
	signature = gzip.compress(cut_tar([(".SIGN.RSA.pexi-test-5f000001.rsa.pub", sig)]), mtime=0)
	open(path, "wb").write(signature + control)
	PY
}
test_expect_success '--frozen with a changed repository fails naming the change' '
	cp -r "$FIX/repo" "$FIX/repo2" && resign_without "$FIX/repo2" foo 2.0-r0 &&
	before=$(sha256sum b/.pexi/build/disk.raw) &&
	sed -i "s|$BASE/repo$|$BASE/repo2|" b/pexi.yml &&
	"$PEXI" -q build -f b/pexi.yml --frozen 2>err; test $? -eq 4 &&
	grep -q "frozen" err && grep -q "foo" err && grep -q "2.0-r0" err &&
	test "$before" = "$(sha256sum b/.pexi/build/disk.raw)"
'
test_expect_success 'without --frozen the same change just rebuilds with foo 1.0' '
	"$PEXI" -q build -f b/pexi.yml &&
	dbg b/.pexi/build/disk.raw "cat /usr/bin/foo" | grep -q "1.0" &&
	grep -q "\"1.0-r0\"" b/.pexi/build/pexi.lock
'
test_done
