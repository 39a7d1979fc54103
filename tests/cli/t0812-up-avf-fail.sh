#!/bin/sh
# A start that fails tears everything down and says why, with the console's last lines:
# a guest that never says hello (timeout), a runner that dies while booting, a PEP that
# cannot start; and the errors for a missing build or the avf backend without a runner.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vm-lib.sh"
export PEXI_PEP_PROGRAM="$PEXI_SRC/tests/fixtures/pep-stub"
P=$TRASH/p
standin_project "$P" || skip_all "cannot make the stand-in project"

all_gone() {
	pids_gone $(state_field "$P" supervisor_pid) $(state_field "$P" pep_pid) \
		$(state_field "$P" vm_pid) && lock_free "$P"
}

test_expect_success 'a silent guest: up fails after --timeout with the reason and console tail' '
	start=$(date +%s) &&
	! PEXI_STANDIN_MODE=silent "$PEXI" up --timeout 3 -f "$P/pexi.yml" >out 2>err &&
	end=$(date +%s) &&
	test $((end - start)) -ge 3 && test $((end - start)) -le 20 &&
	grep -q "instance .box. did not start: the guest did not say hello within 3 s" err &&
	grep -q "last lines of the console" err &&
	grep -q "avf-standin: booting" err
'
test_expect_success 'the timed-out instance left no process, a free lock and state failed' '
	all_gone && test "$(state_field "$P" state)" = failed &&
	"$PEXI" status -f "$P/pexi.yml" | grep -q "^state *failed"
'
test_expect_success 'a runner that dies while booting: its status, console and stderr' '
	! PEXI_STANDIN_MODE=crash "$PEXI" up -f "$P/pexi.yml" >out 2>err &&
	grep -q "the hypervisor exited (exit status 3) before the guest was ready" err &&
	grep -q "kernel panic - not syncing: a stand-in crash" err &&
	grep -q "avf-standin: the VM stopped with an error" err &&
	all_gone
'
test_expect_success 'a PEP that cannot start: up fails with the PEP log and starts no VM' '
	! PEP_STUB_FAIL=1 "$PEXI" up -f "$P/pexi.yml" >out 2>err &&
	grep -q "the PEP exited before listening (exit status 2)" err &&
	grep -q "pep-stub: failing as asked" err &&
	test -z "$(state_field "$P" vm_pid)" &&
	! test -s "$P/.pexi/instances/box/console.log" &&
	all_gone
'
test_expect_success 'after the failures a normal up still works' '
	"$PEXI" up -f "$P/pexi.yml" >out && "$PEXI" down -f "$P/pexi.yml" && lock_free "$P"
'
test_expect_success 'up without a build says to run pexi build' '
	mkdir -p q && sed "s/name: box/name: nobuild/" "$P/pexi.yml" >q/pexi.yml &&
	! "$PEXI" up -f q/pexi.yml 2>err &&
	grep -q "no built image in .*run .pexi build. first" err &&
	! test -e q/.pexi/instances
'
test_expect_success 'the avf backend on Linux without PEXI_AVF_RUNNER is a manifest error' '
	(unset PEXI_AVF_RUNNER; "$PEXI" up -f "$P/pexi.yml" 2>err; test $? -eq 3) &&
	grep -q "vm.backend .avf. needs macOS" err
'
test_expect_error 'up rejects a bad --timeout' 2 "'--timeout' wants whole seconds" \
	up --timeout 0 -f "$P/pexi.yml"
test_expect_error 'logs rejects an unknown log' 2 "no log named 'kernel'" \
	logs --file "$P/pexi.yml" kernel
test_done
