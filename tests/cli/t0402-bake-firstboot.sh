#!/bin/sh
# The pexi-firstboot service that the offline bake installs with the deferred package
# scripts: the baked files are copied out with debugfs into a directory holding a static
# busybox, and the service's start() runs there in a chroot, as OpenRC would at first boot.
. "$(dirname "$0")/lib.sh"
require_programs qemu-img sgdisk e2fsck debugfs python3 sha256sum openssl tar gzip \
	mkfs.ext4 mkfs.vfat mcopy busybox chroot
[ "$(id -u)" = 0 ] || skip_all "needs root (chroot into the baked files)"

FIX=$TRASH/srv
build_fixture "$FIX" 200
"$PEXI_SRC/tests/fixtures/make-apk-repo" "$FIX/repo" >/dev/null 2>"$TRASH/gen.err" ||
	skip_all "make-apk-repo failed: $(tail -n 1 "$TRASH/gen.err")"
ROOT_OFFSET=$((67584 * 512))
KEYNAME=pexi-test-5f000001.rsa.pub

serve_dir "$FIX"
BASE="http://127.0.0.1:$PORT"
export XDG_CACHE_HOME=$TRASH/xdg

write_manifest() { # DIR PACKAGES [EXTRA-YAML]
	mkdir -p "$1"
	cp "$FIX/repo/keys/$KEYNAME" "$1/"
	manifest_head fixture "$BASE/alpine-dynamic.vhd" "$FIX/alpine-dynamic.vhd" >"$1/pexi.yml"
	cat >>"$1/pexi.yml" <<YAML
disk:
  size: 512M
packages:
  method: offline
  repositories:
    - $BASE/repo
  keys:
    - $KEYNAME
  add: [$2]
build:
  source_date_epoch: 1700000000
${3:-}
YAML
}

dbg() { # IMAGE COMMAND
	debugfs -R "$2" "$1?offset=$ROOT_OFFSET" 2>/dev/null
}

B=a/.pexi/build
write_manifest "$TRASH/a" "foo"
test_expect_success 'pexi build defers foo.post-install' '
	"$PEXI" build -f a/pexi.yml 2>err >/dev/null && grep -q "foo.post-install" err
'
test_expect_success 'pexi-firstboot runs the deferred script once (static busybox in a chroot)' '
	mkdir -p fb/bin fb/var/log fb/etc/runlevels/default &&
	cp "$(command -v busybox)" fb/bin/busybox && chroot fb /bin/busybox --install -s /bin &&
	dbg "$B/disk.raw" "rdump /var/lib fb/var" && dbg "$B/disk.raw" "rdump /etc/init.d fb/etc" &&
	ln -s /etc/init.d/pexi-firstboot fb/etc/runlevels/default/pexi-firstboot &&
	run="ebegin() { :; }; eend() { :; }; ewarn() { echo \"\$*\"; }; . /etc/init.d/pexi-firstboot; start" &&
	chroot fb /bin/sh -c "$run" &&
	test -e fb/var/lib/foo/post-install-ran &&
	test -z "$(ls fb/var/lib/pexi/firstboot)" &&
	test ! -e fb/etc/runlevels/default/pexi-firstboot &&
	rm fb/var/lib/foo/post-install-ran && chroot fb /bin/sh -c "$run" &&
	test ! -e fb/var/lib/foo/post-install-ran
'
test_done
