#!/bin/sh
# The bake stage with real packages: the third-party repository in ../shared/data (built
# with Alpine's own abuild and apk index, signed with its author's key) served over
# loopback; gcompat-musl and libglvnd installed into the fixture disk. Their control
# checksums (C:) and data hashes are checked by pexi; the result is checked here with
# e2fsck and debugfs, and the recorded checksums with Python's zlib and hashlib.
. "$(dirname "$0")/lib.sh"
require_programs qemu-img sgdisk e2fsck debugfs python3 sha256sum mkfs.ext4 mkfs.vfat mcopy

TP=$SHARED/data/apk/thirdparty
[ -f "$TP/x86_64/APKINDEX.tar.gz" ] || skip_all "the real third-party repository '$TP' is absent"
FIX=$TRASH/srv
build_fixture "$FIX" 200
cp -r "$TP" "$FIX/thirdparty"
ROOT_OFFSET=$((67584 * 512))

serve_dir "$FIX"
BASE="http://127.0.0.1:$PORT"
export XDG_CACHE_HOME=$TRASH/xdg

mkdir "$TRASH/a" && cp "$TP/antkss.rsa.pub" "$TRASH/a/"
manifest_head real "$BASE/alpine-dynamic.vhd" "$FIX/alpine-dynamic.vhd" >"$TRASH/a/pexi.yml"
cat >>"$TRASH/a/pexi.yml" <<YAML
disk:
  size: 512M
packages:
  repositories:
    - $BASE/thirdparty
  keys:
    - antkss.rsa.pub
  add: [gcompat-musl, libglvnd]
build:
  source_date_epoch: 1750000000
YAML
B=a/.pexi/build
dbg() { debugfs -R "$2" "$1?offset=$ROOT_OFFSET" 2>/dev/null; }

test_expect_success 'the real packages install' '
	"$PEXI" build -f a/pexi.yml >out && grep -q "installed 2 packages" out &&
	grep -q "/thirdparty/x86_64/gcompat-musl-1.2.5-r1.apk" "$TRASH/http.log"
'
test_expect_success 'e2fsck -fn finds the filesystem clean' '
	e2fsck -fn "$B/disk.raw?offset=$ROOT_OFFSET" >/dev/null
'
test_expect_success 'libgcompat.so has the bytes of the package and its symlinks point at it' '
	dbg "$B/disk.raw" "dump /usr/lib/libgcompat.so lib.so" &&
	python3 - "$TP/x86_64/gcompat-musl-1.2.5-r1.apk" lib.so <<-PY &&
	import io, sys, tarfile, zlib
	raw = open(sys.argv[1], "rb").read()
	pos = 0
	for _ in range(2):
	    d = zlib.decompressobj(31); d.decompress(raw[pos:]); pos = len(raw) - len(d.unused_data)
	data = zlib.decompressobj(31).decompress(raw[pos:])
	t = tarfile.open(fileobj=io.BytesIO(data))
	assert t.extractfile("usr/lib/libgcompat.so").read() == open(sys.argv[2], "rb").read()
	PY
	dbg "$B/disk.raw" "stat /lib/libc.so.6" | grep -q "Fast link dest: \"../usr/lib/libgcompat.so\"" &&
	dbg "$B/disk.raw" "stat /usr/lib/libgcompat.so" | grep -q "Mode:  0755"
'
test_expect_success 'installed records both with the index C: and apk-style file checksums' '
	dbg "$B/disk.raw" "cat /lib/apk/db/installed" >installed &&
	grep -q "^C:Q1A1arGnhgQZxP9t5/hlS2UypGfg0=$" installed &&
	grep -q "^C:Q1jeRAF+EpaHQSmKZxtA9fmuD6Hv8=$" installed &&
	python3 - installed <<-PY
	import base64, sys
	text = open(sys.argv[1]).read()
	# The symlink lib/libc.so.6 -> ../usr/lib/libgcompat.so: apk records the SHA-1 of the
	# target, the archive PAX value def593b8...
	want = "Z:Q1" + base64.b64encode(bytes.fromhex("def593b862552f374c3a93462c95347577c0ed3c")).decode()
	i = text.index("F:lib\n")
	assert "R:libc.so.6\na:0:0:777\n" + want in text[i:], text[i:i+400]
	PY
'
test_expect_success 'a tampered package is refused by its C: checksum' '
	mkdir b && cp a/antkss.rsa.pub a/pexi.yml b/ &&
	python3 - "$FIX/thirdparty/x86_64/libglvnd-0-r1.apk" <<-PY &&
	import sys, zlib, gzip
	p = sys.argv[1]
	raw = open(p, "rb").read()
	d = zlib.decompressobj(31); d.decompress(raw); a = len(raw) - len(d.unused_data)
	d = zlib.decompressobj(31); ctl = d.decompress(raw[a:]); b = len(raw) - len(d.unused_data)
	ctl = ctl.replace(b"license = BSD", b"license = MIT")
	open(p, "wb").write(raw[:a] + gzip.compress(ctl, mtime=0) + raw[b:])
	PY
	rm -rf "$XDG_CACHE_HOME" &&
	"$PEXI" -q build -f b/pexi.yml 2>err; test $? -eq 4 &&
	grep -q "Q1jeRAF+EpaHQSmKZxtA9fmuD6Hv8=" err && test ! -e b/.pexi/build/disk.raw
'
test_expect_success 'a package whose libraries no repository has names the missing one' '
	mkdir c && cp a/antkss.rsa.pub c/ && sed "s/add: .*/add: [hcxdumptool]/" a/pexi.yml >c/pexi.yml &&
	"$PEXI" -q build -f c/pexi.yml 2>err; test $? -eq 4 &&
	grep -q "hcxdumptool" err && grep -q "so:" err && test ! -e c/.pexi/build/disk.raw
'
test_done
