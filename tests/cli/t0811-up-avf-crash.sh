#!/bin/sh
# A supervisor killed with SIGKILL takes its PEP and hypervisor with it (parent-death
# signals), pexi status sees the crash through the free lock, and the next up cleans the
# stale instance dir. Checked in /proc by the pids state.json recorded, and with flock.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vm-lib.sh"
export PEXI_PEP_PROGRAM="$PEXI_SRC/tests/fixtures/pep-stub"
P=$TRASH/p
standin_project "$P" || skip_all "cannot make the stand-in project"

"$PEXI" up -f "$P/pexi.yml" >/dev/null 2>"$TRASH/up.err" || { cat "$TRASH/up.err"; exit 1; }
SUP=$(state_field "$P" supervisor_pid)
PEP=$(state_field "$P" pep_pid)
VM=$(state_field "$P" vm_pid)

test_expect_success 'all three processes run' '
	test -d /proc/$SUP && test -d /proc/$PEP && test -d /proc/$VM
'
test_expect_success 'SIGKILL to the supervisor takes the PEP and the runner with it' '
	kill -KILL $SUP &&
	pids_gone $SUP $PEP $VM
'
test_expect_success 'the lock is free at once' '
	lock_free "$P"
'
test_expect_success 'pexi status says crashed: the state claims life but nobody holds the lock' '
	test "$(state_field "$P" state)" = running &&
	"$PEXI" status -f "$P/pexi.yml" >out && grep -q "^state *crashed" out &&
	"$PEXI" status --json -f "$P/pexi.yml" |
		python3 -c "import json,sys; d=json.load(sys.stdin); assert d[\"state\"] == \"crashed\" and d[\"running\"] is False, d"
'
test_expect_success 'pexi down of the crashed instance has nothing to stop' '
	"$PEXI" down -f "$P/pexi.yml" 2>err && grep -q "is not running" err
'
test_expect_success 'the next up cleans the stale dir, says so, and starts afresh' '
	echo stale-console-line >>"$P/.pexi/instances/box/console.log" &&
	"$PEXI" up -f "$P/pexi.yml" >out 2>err &&
	grep -q "had crashed" err && grep -q "cleaned up its leftovers" err &&
	! grep -q stale-console-line "$P/.pexi/instances/box/console.log" &&
	test "$(state_field "$P" state)" = running &&
	test "$(state_field "$P" supervisor_pid)" != "$SUP"
'
test_expect_success 'the firmware state survived the cleaning' '
	test -s "$P/.pexi/instances/box/efi-vars.fd" && test -s "$P/.pexi/instances/box/machine-id"
'
SUP2=$(state_field "$P" supervisor_pid)
PEP2=$(state_field "$P" pep_pid)
VM2=$(state_field "$P" vm_pid)
test_expect_success 'SIGTERM to the supervisor stops the instance by the ladder' '
	kill -TERM $SUP2 &&
	pids_gone $SUP2 $PEP2 $VM2 && lock_free "$P" &&
	test "$(state_field "$P" state)" = stopped &&
	state_field "$P" reason | grep -q "stopped by a signal: the guest powered off"
'
test_done
