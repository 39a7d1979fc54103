#!/bin/sh
# Direct kernel boot through the manifest (vm.kernel, vm.initrd, vm.cmdline): pexi up
# boots the boot guest's kernel and initramfs with QEMU's -kernel/-initrd/-append instead
# of OVMF and GRUB, the guest still reads its seed, mounts the share and says hello, and
# pexi down stops it by the channel. The console shows no firmware.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vm-lib.sh"
unset PEXI_PEP_PROGRAM PEXI_AVF_RUNNER
boot_guest_fixture t0816

P=$TRASH/p
mkdir -p "$P/share"
export XDG_CACHE_HOME=$TRASH/xdg
manifest_head box "file://$FIX/guest.vhd" "$FIX/guest.vhd" >"$P/pexi.yml"
cat >>"$P/pexi.yml" <<YAML
disk:
  size: 256M
vm:
  backend: qemu
  cpus: 1
  memory: 512M
  shared_dir: share
  kernel: $FIX/vmlinuz
  initrd: $FIX/initramfs
  cmdline: root=UUID=5a1b2c3d-0000-4000-8000-0000000b0075 rootfstype=ext4 console=hvc0 quiet panic=-1
cloud_init:
  datasource: nocloud
  runcmd:
    - echo direct >/workspace/booted
build:
  source_date_epoch: 1700000000
YAML
"$PEXI" -q build -f "$P/pexi.yml" >"$TRASH/build.out" 2>&1 || {
	sed 's/^/# /' "$TRASH/build.out"
	echo "# pexi build failed"
	exit 1
}

test_expect_success 'pexi up boots the kernel directly and returns on the hello' '
	"$PEXI" up --timeout 900 -f "$P/pexi.yml" >up.out 2>up.err || { cat up.err; false; }
	cat up.out && grep -q "the guest said hello" up.out
'
VM=$(state_field "$P" vm_pid)
test_expect_success 'QEMU got -kernel, -initrd and -append, and no firmware' '
	tr "\0" "\n" </proc/$VM/cmdline >argv &&
	grep -qx -- -kernel argv && grep -qx "$FIX/vmlinuz" argv &&
	grep -qx -- -initrd argv && grep -qx "$FIX/initramfs" argv &&
	grep -qx "root=UUID=5a1b2c3d-0000-4000-8000-0000000b0075 rootfstype=ext4 console=hvc0 quiet panic=-1" argv &&
	! grep -q pflash argv && grep -qx -- -nodefaults argv
'
for _ in $(seq 300); do grep -aq "^@@pexi ready" "$P/.pexi/instances/box/console.log" && break; sleep 0.5; done
test_expect_success 'the guest read its seed and wrote into the share; no firmware ran' '
	test "$(cat "$P/share/booted")" = direct &&
	grep -aq "^@@pexi cmdline root=UUID=5a1b2c3d" "$P/.pexi/instances/box/console.log" &&
	! grep -aq "BdsDxe\|GRUB" "$P/.pexi/instances/box/console.log"
'
test_expect_success 'pexi down stops it over the channel and leaves nothing' '
	set -- $(state_field "$P" supervisor_pid) $(state_field "$P" pep_pid) $VM &&
	"$PEXI" down -f "$P/pexi.yml" 2>err &&
	grep -q "powered off when asked over the channel" err &&
	pids_gone "$@" && lock_free "$P"
'
test_expect_success 'vm.kernel with the avf backend is refused' '
	sed "s/backend: qemu/backend: avf/" "$P/pexi.yml" >"$P/avf.yml" &&
	! PEXI_AVF_RUNNER="$PEXI_SRC/tests/fixtures/avf-standin" "$PEXI" up -f "$P/avf.yml" 2>err &&
	grep -q "vm.kernel (direct kernel boot) is for the qemu backend only" err
'
test_done
