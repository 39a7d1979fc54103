#!/bin/sh
# The rungs of pexi down's ladder, each reached by a stand-in guest that ignores the one
# before: a guest without a channel (ready by its console marker) stops on the power
# button (SIGTERM to the runner = requestStop); a deaf guest is killed after the timeout;
# --force kills at once.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vm-lib.sh"
export PEXI_PEP_PROGRAM="$PEXI_SRC/tests/fixtures/pep-stub"
P=$TRASH/p
standin_project "$P" || skip_all "cannot make the stand-in project"

pids() {
	echo $(state_field "$P" supervisor_pid) $(state_field "$P" pep_pid) $(state_field "$P" vm_pid)
}

test_expect_success 'a guest that only prints the console marker is ready by it' '
	PEXI_STANDIN_MODE=marker "$PEXI" up -f "$P/pexi.yml" >out &&
	grep -q "the console showed it ready" out &&
	test "$(state_field "$P" ready_by)" = console &&
	test -z "$(state_field "$P" instance_id)"
'
test_expect_success 'its down skips the channel rung and stops on the power button' '
	set -- $(pids) &&
	"$PEXI" -v down -f "$P/pexi.yml" 2>err &&
	! grep -q "rung guest-poweroff" err &&
	grep -q "rung powerdown" err &&
	grep -q "requestStop" "$P/.pexi/instances/box/console.log" &&
	state_field "$P" reason | grep -q "the guest powered off on the power button" &&
	pids_gone "$@" && lock_free "$P"
'
test_expect_success 'a deaf guest: down --timeout 2 climbs every rung and kills the runner' '
	PEXI_STANDIN_MODE=deaf "$PEXI" up -f "$P/pexi.yml" >out &&
	set -- $(pids) &&
	start=$(date +%s) &&
	"$PEXI" -v down --timeout 2 -f "$P/pexi.yml" 2>err &&
	end=$(date +%s) &&
	grep -q "rung guest-poweroff" err && grep -q "rung powerdown" err && grep -q "rung kill" err &&
	state_field "$P" reason | grep -q "the hypervisor was killed" &&
	test $((end - start)) -ge 2 && test $((end - start)) -le 15 &&
	pids_gone "$@" && lock_free "$P"
'
test_expect_success 'down --force kills at once, skipping the gentle rungs' '
	PEXI_STANDIN_MODE=deaf "$PEXI" up -f "$P/pexi.yml" >out &&
	set -- $(pids) &&
	start=$(date +%s) &&
	"$PEXI" -v down --force -f "$P/pexi.yml" 2>err &&
	end=$(date +%s) &&
	! grep -q "rung guest-poweroff" err && ! grep -q "rung powerdown" err &&
	grep -q "rung kill" err &&
	test $((end - start)) -le 5 &&
	pids_gone "$@" && lock_free "$P"
'
test_expect_success 'the PEP is stopped after the guest on every path (audit flushed)' '
	test $(grep -c "pep-stub: SIGTERM, stopping" "$P/.pexi/instances/box/pep.log") -eq 1 &&
	grep -qx "{\"event\": \"stop\"}" "$P/.pexi/instances/box/audit.jsonl"
'
test_done
