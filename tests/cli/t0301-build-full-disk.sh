#!/bin/sh
# A full disk during pexi build is a clear error that loses nothing: the build dir lives on
# a small tmpfs (needs root to mount it), a first build succeeds, then the disk is filled
# and a changed manifest must fail with ENOSPC named, leaving the earlier outputs intact.
. "$(dirname "$0")/lib.sh"
require_programs mount umount sha256sum
[ "$(id -u)" -eq 0 ] || skip_all "needs root to mount a small tmpfs"

FIX=$TRASH/fixture
build_fixture "$FIX" 200
mkdir "$TRASH/small"
mount -t tmpfs -o size=4M tmpfs "$TRASH/small" || skip_all "cannot mount a tmpfs"
trap 'umount "$TRASH/small" 2>/dev/null; rm -rf "$TRASH"' EXIT
export XDG_CACHE_HOME=$TRASH/xdg
B=$TRASH/small/b

manifest_head full "file://$FIX/alpine-dynamic.vhd" "$FIX/alpine-dynamic.vhd" >"$TRASH/pexi.yml"
cat >>"$TRASH/pexi.yml" <<YAML
disk:
  size: 1G
boot:
  console: hvc0
build:
  dir: $B
  source_date_epoch: 1700000000
YAML

test_expect_success 'a first build fits' '
	"$PEXI" -q build -f pexi.yml && test -f "$B/disk.raw" &&
	sha256sum "$B/disk.raw" "$B/seed.iso" >before
'
test_expect_success 'with the disk full, a rebuild fails naming ENOSPC' '
	dd if=/dev/zero of="$TRASH/small/filler" bs=64k 2>/dev/null;
	sed -i "s/console: hvc0/console: ttyS1/" pexi.yml &&
	! "$PEXI" build -f pexi.yml 2>err &&
	grep -q "No space left on device" err && grep -q "^error: stage " err
'
test_expect_success 'the earlier outputs are intact and no temporary file is left' '
	sha256sum -c --quiet before &&
	! ls -a "$B" "$B/stages" | grep -q "\.tmp\."
'
test_expect_success 'with space again, the next run completes' '
	rm -f "$TRASH/small/filler" &&
	"$PEXI" -q build -f pexi.yml &&
	! sha256sum -c --quiet before 2>/dev/null
'
test_done
