#!/bin/sh
# pexi build with packages.method chroot and the local executor (root), on the
# Alpine-shaped fixture with a static busybox and the stand-in apk in its root
# (tests/fixtures/add-apk-standin), from the signed fixture repository (file://). Checked
# with debugfs, e2fsck, losetup -a and /proc/mounts.
. "$(dirname "$0")/lib.sh"
require_programs debugfs e2fsck losetup openssl sha256sum
[ "$(id -u)" = 0 ] || skip_all "the chroot method's local executor needs root"
[ -x /bin/busybox ] || skip_all "needs a static busybox at /bin/busybox (busybox-static)"

FIX=$TRASH/fixture
build_fixture "$FIX" 200
OFF=$((67584 * 512))
BASE=$TRASH/base.raw
cp "$FIX/alpine.raw" "$BASE"
"$PEXI_SRC/tests/fixtures/add-apk-standin" "$BASE" "$OFF" || skip_all "cannot add the stand-in apk"
"$PEXI_SRC/tests/fixtures/make-apk-repo" "$TRASH/repo" >/dev/null || skip_all "cannot build the apk repository"
export XDG_CACHE_HOME=$TRASH/xdg

write_manifest() { # DIR PACKAGES...
	d=$1
	shift
	mkdir -p "$d"
	manifest_head chroot "file://$BASE" "$BASE" >"$d/pexi.yml"
	cat >>"$d/pexi.yml" <<YAML
  format: raw
disk:
  size: 1G
build:
  source_date_epoch: 1700000000
packages:
  method: chroot
  executor: local
  repositories: ["file://$TRASH/repo"]
  keys: ["$TRASH/repo/keys/pexi-test-5f000001.rsa.pub"]
  add: [$(echo "$@" | sed 's/ /, /g')]
YAML
}

in_image() { # DISK DEBUGFS-REQUEST
	debugfs -R "$2" "$1?offset=$OFF" 2>/dev/null
}

nothing_attached() {
	! losetup -a | grep -qF "$TRASH" && ! grep -qF "$TRASH" /proc/mounts
}

write_manifest "$TRASH/a" musl libfoo foo
D=$TRASH/a/.pexi/build/disk.raw

test_expect_success 'pexi build bakes the packages in a chroot' '
	"$PEXI" build -f a/pexi.yml >build.out 2>build.err &&
	grep -q "^bake " build.out && test -f "$D"
'

test_expect_success 'apk add ran in the chroot with the manifest options' '
	in_image "$D" "cat /root/apk-args" >args &&
	printf "%s\n" add --no-cache --keys-dir /.pexi-bake/keys --repositories-file /dev/null \
		--repository /.pexi-bake/repo.1 -- musl libfoo foo >want &&
	cmp args want &&
	in_image "$D" "cat /root/binds" | tr "\n" " " | grep -qx "proc sys dev "
'

test_expect_success 'the files landed, the post-install ran, resolv.conf is the image own' '
	in_image "$D" "cat /usr/bin/foo" | grep -qx "echo foo 2.0" &&
	in_image "$D" "cat /var/lib/foo/post-install-ran" | grep -qx "foo post-install ran" &&
	in_image "$D" "cat /etc/resolv.conf" | grep -qx "nameserver 192.0.2.53" &&
	! in_image "$D" "stat /.pexi-bake" | grep -q Inode
'

test_expect_success 'the baked root passes e2fsck and nothing stays attached' '
	e2fsck -fn "$D?offset=$OFF" >/dev/null 2>&1 && nothing_attached
'

write_manifest "$TRASH/b" musl fail-me
test_expect_success 'a failing apk add fails the build, says why, leaves nothing behind' '
	! "$PEXI" build -f b/pexi.yml >b.out 2>b.err &&
	grep -q "fail-me" b.err && ! test -f b/.pexi/build/disk.raw && nothing_attached
'

test_done
