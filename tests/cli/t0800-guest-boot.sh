#!/bin/sh
# The boot guest end to end, below `pexi up`: tests/fixtures/make-boot-guest builds an
# Alpine-shaped disk from Debian packages (GRUB EFI reading the root's grub.cfg, Debian's
# kernel, busybox init, a NoCloud reader, pexi-guest); `pexi build` takes it as its base
# (the patch stage sets console=hvc0, the seed carries runcmd); tests/e2e/boot-guest boots
# the result under QEMU TCG with OVMF, no NIC, and the virtio-serial port pexi.pep
# connected to a real `pexi pep` with a loopback upstream (tests/pep/upstream.py). The
# guest proves it has only lo, says hello with the seed's instance-id, fetches an allowed
# URL into the 9p share, is refused a denied host and the metadata address, and powers off
# when the PEP relays SIGUSR1 as a poweroff frame. Boot phase times are printed.
. "$(dirname "$0")/lib.sh"
. "$PEXI_SRC/tests/pep/daemon.sh"
require_programs qemu-system-x86_64 isoinfo python3 sha256sum
[ -x "$PEXI_BUILD/pexi-guest" ] || skip_all "needs $PEXI_BUILD/pexi-guest (make guest)"

FIX=$PEXI_BUILD/fixtures/t0800
PEXI_BUILD=$PEXI_BUILD "$PEXI_SRC/tests/fixtures/make-boot-guest" "$FIX" >"$TRASH/fixture.out" 2>&1
rc=$?
[ "$rc" -ne 77 ] || skip_all "$(tail -n 1 "$TRASH/fixture.out")"
[ "$rc" -eq 0 ] || { sed 's/^/# /' "$TRASH/fixture.out"; echo "# make-boot-guest failed"; exit 1; }

upstream_start
write_policy "$TRASH/policy.yml"
head -c 3000 /dev/urandom | base64 >"$TRASH/payload"
exec 3>"$TRASH/hello"
pep_start --ready-fd 3 || { echo "# pexi pep did not start"; exit 1; }
exec 3>&-

export XDG_CACHE_HOME=$TRASH/xdg
mkdir -p "$TRASH/share"
manifest_head boot-probe "file://$FIX/guest.vhd" "$FIX/guest.vhd" >"$TRASH/pexi.yml"
cat >>"$TRASH/pexi.yml" <<YAML
disk:
  size: 256M
boot:
  console: hvc0
  kernel_args: [panic=-1]
vm:
  shared_dir: $TRASH/share
cloud_init:
  datasource: nocloud
  runcmd:
    - pexi-guest fetch http://upstream.test:$UP_PORT/file/payload >/workspace/fetched
    - for i in 1 2 3 4 5 6; do pexi-guest fetch http://upstream.test:$UP_PORT/file/payload >/workspace/p\$i & done; wait
    - pexi-guest fetch http://denied.test/; echo denied-exit=\$?
    - pexi-guest fetch http://169.254.169.254/latest/meta-data/; echo metadata-exit=\$?
build:
  source_date_epoch: 1700000000
YAML
"$PEXI" -q build -f "$TRASH/pexi.yml" >"$TRASH/build.out" 2>&1 || {
	sed 's/^/# /' "$TRASH/build.out"
	echo "# pexi build failed"
	exit 1
}
B=$TRASH/.pexi/build
OUT=$TRASH/boot

PEXI_BOOT_POWEROFF_PID=$PEP_PID PEXI_BOOT_HELLO_FILE=$TRASH/hello \
	"$PEXI_SRC/tests/e2e/boot-guest" "$B/disk.raw" "$B/seed.iso" "$OUT" "$SOCK" "$TRASH/share" \
	2>"$TRASH/boot.err"
rc=$?
[ "$rc" -ne 77 ] || skip_all "$(tail -n 1 "$TRASH/boot.err")"
sed 's/^/# /' "$TRASH/boot.err"
sed 's/^/# boot time (s): /' "$OUT/times"
C=$OUT/console.txt
[ -z "${PEXI_KEEP:-}" ] || cp -r "$TRASH" "$PEXI_KEEP"

test_expect_success 'the guest booted to ready and powered off on the PEP'"'"'s request' '
	test "$rc" -eq 0 && grep -q "^@@pexi ready" "$C" && grep -q "^@@pexi poweroff" "$C"
'
test_expect_success 'GRUB read the patched grub.cfg: the kernel got console=hvc0' '
	grep "^@@pexi cmdline" "$C" >cmdline &&
	grep -q " console=hvc0" cmdline && grep -q " panic=-1" cmdline && ! grep -q ttyS0 cmdline
'
test_expect_success 'the guest has no network interface but lo' '
	test "$(sed -n "s/^@@pexi net //p" "$C")" = "lo " &&
	test "$(grep -c "^@@pexi iplink [0-9]*:" "$C")" -eq 1 &&
	grep -q "^@@pexi iplink 1: lo:" "$C"
'
test_expect_success 'hello reached the PEP with the instance-id of the seed (isoinfo)' '
	isoinfo -R -i "$B/seed.iso" -x /meta-data >meta-data &&
	iid=$(sed -n "s/^instance-id: *\"*\([^\"]*\)\"*$/\1/p" meta-data) &&
	test -n "$iid" && test "$(cat "$TRASH/hello")" = "hello $iid"
'
test_expect_success 'the allowed fetch went upstream and its body landed in the share' '
	cmp "$TRASH/payload" "$TRASH/share/fetched" &&
	grep -q "\"/file/payload\"" "$TRASH/upstream.log"
'
test_expect_success 'a denied host is refused with exit 3 and denied_by_policy' '
	grep -q "^@@pexi runcmd denied-exit=3$" "$C" &&
	grep -q "^@@pexi runcmd pexi-guest: error denied_by_policy" "$C"
'
test_expect_success 'the metadata address is refused with exit 3' '
	grep -q "^@@pexi runcmd metadata-exit=3$" "$C" &&
	grep -q "^@@pexi runcmd pexi-guest: error [a-z_]*:" "$C"
'
test_expect_success 'six apps fetching at once over the one serial channel each get the body' '
	for i in 1 2 3 4 5 6; do cmp "$TRASH/payload" "$TRASH/share/p$i" || exit 1; done
'
test_expect_success 'only the allowed requests reached the upstream' '
	test "$(wc -l <"$TRASH/upstream.log")" -eq 7
'
test_expect_success 'the audit log holds exactly the nine requests, with guest-unique ids' '
	test "$(wc -l <"$TRASH/audit.jsonl")" -eq 9 &&
	python3 -c "
import json, sys
ids = [json.loads(l)[\"id\"] for l in open(sys.argv[1])]
assert len(set(ids)) == 9 and all(i.startswith(\"g\") for i in ids), ids
" "$TRASH/audit.jsonl" &&
	"$PEXI" pep verify-audit "$TRASH/audit.jsonl" >/dev/null
'
test_done
