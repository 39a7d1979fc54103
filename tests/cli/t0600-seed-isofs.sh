#!/bin/sh
# The seed read back by the Linux isofs driver (issue 4), as a guest will read it: this
# host's kernel has no iso9660, so tests/e2e/boot-read-iso boots Debian's kernel under
# QEMU TCG with the seed of a real `pexi build` attached, and the guest prints what isofs
# shows. The expected content comes from isoinfo (genisoimage), not from pexi.
. "$(dirname "$0")/lib.sh"
require_programs qemu-system-x86_64 isoinfo python3 sha256sum base64
[ -x /bin/busybox ] || skip_all "needs /bin/busybox (Debian's busybox-static)"

EPOCH=1700000000
FIX=$PEXI_BUILD/fixtures/t0600
build_fixture "$FIX" 64
export XDG_CACHE_HOME=$TRASH/xdg
B=$TRASH/.pexi/build
ISO=$B/seed.iso
OUT=$TRASH/guest

manifest_head isofs-probe "file://$FIX/alpine-dynamic.vhd" "$FIX/alpine-dynamic.vhd" >"$TRASH/pexi.yml"
cat >>"$TRASH/pexi.yml" <<YAML
disk:
  size: 256M
boot:
  console: hvc0
cloud_init:
  datasource: nocloud
  user: alpine
  runcmd:
    - echo hello-from-t0600
build:
  source_date_epoch: $EPOCH
YAML

"$PEXI" -q build -f "$TRASH/pexi.yml" >"$TRASH/build.out" 2>&1 || {
	sed 's/^/# /' "$TRASH/build.out"
	echo "# pexi build failed"
	exit 1
}

# Boots once; every case below checks part of what the guest printed. Only a missing
# QEMU, busybox or kernel package skips (77, the reason last); anything else is a failure.
PEXI_BUILD=$PEXI_BUILD "$PEXI_SRC/tests/e2e/boot-read-iso" "$ISO" "$OUT" 2>"$TRASH/boot.err"
rc=$?
if [ "$rc" -eq 77 ]; then
	skip_all "$(tail -n 1 "$TRASH/boot.err")"
fi
sed 's/^/# /' "$TRASH/boot.err"

test_expect_success 'the guest kernel booted and read the seed' '
	test "$rc" -eq 0
'
test_expect_success 'the isofs driver mounted it: iso9660 in /proc/mounts, Rock Ridge then Joliet' '
	test $(wc -l <"$OUT/mounts") -eq 2 &&
	sed -n 1p "$OUT/mounts" | grep -q "^/dev/vda /mnt iso9660 ro," &&
	sed -n 2p "$OUT/mounts" | grep -q "^/dev/vda /mnt iso9660 ro,.*norock"
'
test_expect_success 'the guest finds the seed by its label cidata' '
	test "$(cat "$OUT/findfs")" = /dev/vda
'
test_expect_success 'Rock Ridge names are exactly meta-data and user-data, nothing else' '
	awk "\$1 == \"rr\" { print \$2 }" "$OUT/stat" >names &&
	printf "meta-data\nuser-data\n" >want &&
	cmp want names
'
test_expect_success 'Joliet shows the same names' '
	awk "\$1 == \"joliet\" { print \$2 }" "$OUT/stat" >names &&
	printf "meta-data\nuser-data\n" >want &&
	cmp want names
'
test_expect_success 'meta-data as the guest read it is byte for byte what isoinfo extracts' '
	isoinfo -R -i "$ISO" -x /meta-data >meta-data &&
	test -s meta-data && cmp meta-data "$OUT/rr/meta-data" && cmp meta-data "$OUT/joliet/meta-data"
'
test_expect_success 'user-data as the guest read it is byte for byte what isoinfo extracts' '
	isoinfo -R -i "$ISO" -x /user-data >user-data &&
	test -s user-data && cmp user-data "$OUT/rr/user-data" && cmp user-data "$OUT/joliet/user-data"
'
test_expect_success 'user-data is cloud-config carrying the manifest runcmd' '
	test "$(head -n 1 "$OUT/rr/user-data")" = "#cloud-config" &&
	grep -q "echo hello-from-t0600" "$OUT/rr/user-data"
'
test_expect_success 'meta-data, parsed by PyYAML, names the host and an instance-id' '
	python3 - "$OUT/rr/meta-data" <<-PY
	import sys, yaml
	d = yaml.safe_load(open(sys.argv[1]))
	assert d["local-hostname"] == "isofs-probe", d
	assert isinstance(d["instance-id"], str) and d["instance-id"], d
	PY
'
test_expect_success 'Rock Ridge gives mode 0644, owner 0:0 and mtime source_date_epoch' '
	awk "\$1 == \"rr\" { print \$3, \$4, \$5, \$7 }" "$OUT/stat" >attrs &&
	printf "644 0 0 $EPOCH\n644 0 0 $EPOCH\n" >want &&
	cmp want attrs
'
test_expect_success 'the sizes isofs reports match the content' '
	for f in meta-data user-data; do
		size=$(awk -v f=$f "\$1 == \"rr\" && \$2 == f { print \$6 }" "$OUT/stat") &&
		test "$size" -eq $(stat -c %s "$OUT/rr/$f") || exit 1
	done
'
test_expect_success 'the plain ISO 9660 directory records carry source_date_epoch too' '
	awk "\$1 == \"joliet\" { print \$7 }" "$OUT/stat" >times &&
	printf "$EPOCH\n$EPOCH\n" >want &&
	cmp want times
'
test_done
