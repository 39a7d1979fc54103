#!/bin/sh
# The stop ladder against a real QEMU: the boot guest (direct kernel boot) is told on its
# kernel command line to look for the channel where there is none, so it never says hello
# and is ready by its console line "@@pexi ready". pexi down then skips the channel rung,
# presses the ACPI power button over QMP (system_powerdown: busybox's init has no ACPI
# daemon, so the guest ignores it; QEMU must accept the command), and after --timeout
# terminates QEMU, which says in its own log that it ended on the supervisor's SIGTERM.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vm-lib.sh"
unset PEXI_PEP_PROGRAM PEXI_AVF_RUNNER
boot_guest_fixture t0817

P=$TRASH/p
mkdir -p "$P"
export XDG_CACHE_HOME=$TRASH/xdg
manifest_head box "file://$FIX/guest.vhd" "$FIX/guest.vhd" >"$P/pexi.yml"
cat >>"$P/pexi.yml" <<YAML
disk:
  size: 256M
vm:
  backend: qemu
  cpus: 1
  memory: 512M
  kernel: $FIX/vmlinuz
  initrd: $FIX/initramfs
  cmdline: root=UUID=5a1b2c3d-0000-4000-8000-0000000b0075 rootfstype=ext4 console=hvc0 quiet panic=-1 pexi.guest=--channel,unix:/nonexistent
build:
  source_date_epoch: 1700000000
YAML
"$PEXI" -q build -f "$P/pexi.yml" >"$TRASH/build.out" 2>&1 || {
	sed 's/^/# /' "$TRASH/build.out"
	echo "# pexi build failed"
	exit 1
}

test_expect_success 'a guest without its channel is ready by the console marker' '
	"$PEXI" up --timeout 900 -f "$P/pexi.yml" >up.out 2>up.err || { cat up.err; false; }
	cat up.out && grep -q "the console showed it ready" up.out &&
	test "$(state_field "$P" ready_by)" = console
'
SUP=$(state_field "$P" supervisor_pid)
PEP=$(state_field "$P" pep_pid)
VM=$(state_field "$P" vm_pid)
test_expect_success 'pexi down --timeout 6: power button over QMP, then QEMU is terminated' '
	start=$(date +%s) &&
	"$PEXI" -v down --timeout 6 -f "$P/pexi.yml" 2>err &&
	end=$(date +%s) &&
	cat err &&
	! grep -q "rung guest-poweroff" err &&
	grep -q "rung powerdown: asking qemu" err &&
	! grep -q "power button failed" err &&
	grep -q "rung kill" err &&
	test $((end - start)) -ge 6 && test $((end - start)) -le 30 &&
	state_field "$P" reason | grep -q "the hypervisor was killed"
'
test_expect_success 'QEMU said it ended on our SIGTERM, and nothing is left' '
	grep -q "terminating on signal 15 from pid $SUP" "$P/.pexi/instances/box/supervisor.log" &&
	pids_gone $SUP $PEP $VM && lock_free "$P"
'
test_done
