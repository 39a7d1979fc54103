#!/bin/sh
# The alpine-minimal recipe runs the channel bridge: it installs the pexi-boot OpenRC
# service and enables it in the default runlevel, and `pexi build` adds the pexi-guest
# binary for the manifest's arch from the data directories (make guest). Checked in the
# built image with debugfs against the files in the tree, byte for byte; an arch without a
# built helper is a clear build error, though still a valid manifest.
. "$(dirname "$0")/lib.sh"
require_programs debugfs e2fsck sha256sum readelf od
HELPER=$PEXI_BUILD/guest/x86_64/pexi-guest
[ -x "$HELPER" ] || skip_all "needs $HELPER (make guest)"

FIX=$PEXI_BUILD/fixtures/t0802
build_fixture "$FIX" 64
ROOT_OFFSET=$((67584 * 512))
export XDG_CACHE_HOME=$TRASH/xdg
mkdir -p "$TRASH/m" "$TRASH/a"
manifest_head guest-recipe "file://$FIX/alpine-dynamic.vhd" "$FIX/alpine-dynamic.vhd" \
	>"$TRASH/m/pexi.yml"
printf 'recipe: alpine-minimal\ndisk:\n  size: 128M\n' >>"$TRASH/m/pexi.yml"
sed 's/^arch: x86_64$/arch: aarch64/' "$TRASH/m/pexi.yml" >"$TRASH/a/pexi.yml"
DISK=$TRASH/m/.pexi/build/disk.raw

test_expect_success 'pexi build with the alpine-minimal recipe succeeds' '
	"$PEXI" -q build -f "$TRASH/m/pexi.yml"
'

image_file_matches() { # GUEST_PATH FILE MODE
	debugfs -R "dump $1 $TRASH/out" "$DISK?offset=$ROOT_OFFSET" 2>/dev/null &&
		cmp "$TRASH/out" "$2" &&
		debugfs -R "stat $1" "$DISK?offset=$ROOT_OFFSET" 2>/dev/null >"$TRASH/st" &&
		grep -q "Mode:  0$3" "$TRASH/st"
}

test_expect_success 'pexi-guest for x86_64 is installed byte for byte and executable' '
	image_file_matches /usr/local/bin/pexi-guest "$HELPER" 755
'
test_expect_success 'the pexi-boot service is installed' '
	image_file_matches /etc/init.d/pexi-boot "$PEXI_SRC/templates/openrc/pexi-boot" 755
'
test_expect_success 'the service is enabled in the default runlevel' '
	debugfs -R "stat /etc/runlevels/default/pexi-boot" "$DISK?offset=$ROOT_OFFSET" 2>/dev/null >ln &&
	grep -q "Type: symlink" ln &&
	grep -q "Fast link dest: \"/etc/init.d/pexi-boot\"" ln
'
test_expect_success 'e2fsck -fn finds the filesystem clean' '
	e2fsck -fn "$DISK?offset=$ROOT_OFFSET"
'
test_expect_success 'the service script is valid sh (openrc-run scripts are)' '
	sh -n "$PEXI_SRC/templates/openrc/pexi-boot" &&
	head -n 1 "$PEXI_SRC/templates/openrc/pexi-boot" | grep -qx "#!/sbin/openrc-run"
'
test_expect_success 'the service prints the console marker pexi up falls back on' '
	marker=$(sed -n "s/^#define PX_CONSOLE_MARKER \"\(.*\)\"$/\1/p" "$PEXI_SRC/src/vm/supervisor.h") &&
	test -n "$marker" && grep -q "echo \"$marker\" >/dev/console" "$PEXI_SRC/templates/openrc/pexi-boot"
'
test_expect_success 'the binary is a static x86-64 executable (readelf: no interpreter)' '
	od -An -tx1 -N20 "$HELPER" | tr -d " \n" >hdr &&
	grep -q "^7f454c46020101" hdr && test "$(cut -c37-40 hdr)" = 3e00 &&
	readelf -l "$HELPER" >phdrs && grep -q LOAD phdrs && ! grep -q INTERP phdrs
'
test_expect_success 'an aarch64 manifest with the recipe is still valid' '
	"$PEXI" validate -f "$TRASH/a/pexi.yml"
'
# The aarch64 helper exists where its cross compiler is installed (make guest builds it).
if [ -e "$PEXI_BUILD/guest/aarch64/pexi-guest" ]; then
	test_expect_success 'the aarch64 build installs the aarch64 helper (ELF machine 0xb7)' '
		"$PEXI" -q build -f "$TRASH/a/pexi.yml" &&
		debugfs -R "dump /usr/local/bin/pexi-guest $TRASH/arm" \
			"$TRASH/a/.pexi/build/disk.raw?offset=$ROOT_OFFSET" 2>/dev/null &&
		cmp "$TRASH/arm" "$PEXI_BUILD/guest/aarch64/pexi-guest" &&
		test "$(od -An -tx1 -j18 -N2 "$TRASH/arm" | tr -d " \n")" = b700 &&
		readelf -l "$TRASH/arm" >phdrs && ! grep -q INTERP phdrs
	'
else
	test_expect_error 'building it without an aarch64 helper names what is missing' 1 \
		"no pexi-guest for aarch64 was found" build -f "$TRASH/a/pexi.yml"
fi
test_done
