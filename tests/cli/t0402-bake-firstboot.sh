#!/bin/sh
# The pexi-firstboot service that the offline bake installs with the deferred package
# scripts: the baked files are copied out with debugfs into a directory holding a static
# busybox, and the service's start() runs there in a chroot, as OpenRC would at first boot.
. "$(dirname "$0")/lib.sh"
require_programs qemu-img sgdisk e2fsck debugfs python3 sha256sum openssl tar gzip \
	mkfs.ext4 mkfs.vfat mcopy busybox chroot
[ "$(id -u)" = 0 ] || skip_all "needs root (chroot into the baked files)"

. "$(dirname "$0")/bake-lib.sh"

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
