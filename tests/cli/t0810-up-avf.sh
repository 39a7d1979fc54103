#!/bin/sh
# pexi up / status / logs / down with the avf backend, driven against the stand-in runner
# (tests/fixtures/avf-standin) and a stand-in PEP (tests/fixtures/pep-stub), both Python
# peers speaking the runner's flags and the channel's frames. Processes are checked in
# /proc by the pids state.json records; the lock with util-linux flock; JSON with Python.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vm-lib.sh"
export PEXI_PEP_PROGRAM="$PEXI_SRC/tests/fixtures/pep-stub"
P=$TRASH/p
standin_project "$P" iid-t0810 || skip_all "cannot make the stand-in project"

test_expect_success 'pexi up returns once the guest said hello' '
	"$PEXI" up -f "$P/pexi.yml" >out 2>err &&
	grep -q "instance .box. is up: the guest said hello" out &&
	test "$(state_field "$P" state)" = running &&
	test "$(state_field "$P" ready_by)" = hello &&
	test "$(state_field "$P" instance_id)" = iid-t0810
'
SUP=$(state_field "$P" supervisor_pid)
PEP=$(state_field "$P" pep_pid)
VM=$(state_field "$P" vm_pid)

test_expect_success 'the supervisor holds the lock; the PEP and the runner are its children' '
	! flock -n -x "$P/.pexi/instances/box/lock" true &&
	test "$(awk "/^PPid:/ {print \$2}" /proc/$PEP/status)" = "$SUP" &&
	test "$(awk "/^PPid:/ {print \$2}" /proc/$VM/status)" = "$SUP" &&
	tr "\0" "\n" </proc/$VM/cmdline | grep -qx -- "--pep-socket"
'
test_expect_success 'the supervisor is in a session of its own, with no terminal and stdio in its log' '
	test "$(ps -o sid= -p $SUP | tr -d " ")" != "$(ps -o sid= -p $$ | tr -d " ")" &&
	test "$(ps -o sid= -p $SUP | tr -d " ")" != "$SUP" &&
	test "$(ps -o tty= -p $SUP | tr -d " ")" = "?" &&
	test "$(readlink /proc/$SUP/fd/1)" = "$P/.pexi/instances/box/supervisor.log"
'
test_expect_success 'the runner got the flags of the contract' '
	tr "\0" "\n" </proc/$VM/cmdline >argv &&
	grep -qx -- "--vsock-port" argv && grep -qx 5123 argv &&
	grep -qx "$P/share" argv &&
	grep -qx "$P/.pexi/build/seed.iso" argv &&
	grep -qx "$P/.pexi/instances/box/disk.raw" argv &&
	grep -qx "$P/.pexi/instances/box/console.log" argv &&
	test -s "$P/.pexi/instances/box/efi-vars.fd" && test -s "$P/.pexi/instances/box/machine-id"
'
test_expect_success 'the disk the guest runs is a copy of the build, not the build itself' '
	cmp "$P/.pexi/build/disk.raw" "$P/.pexi/instances/box/disk.raw" &&
	test "$(stat -c %i "$P/.pexi/build/disk.raw")" != "$(stat -c %i "$P/.pexi/instances/box/disk.raw")"
'
test_expect_success 'the PEP policy is the manifest pep section, as PyYAML reads it' '
	python3 - "$P/.pexi/instances/box/policy.yml" <<-PY
	import sys, yaml
	d = yaml.safe_load(open(sys.argv[1]))
	assert d["allow"] == ["example.com", "*.example.org"], d
	assert d["deny"] == ["bad.example.com"], d
	assert d["timeouts"]["connect"] == "3000ms", d
	assert d["mode"] == "enforce", d
	PY
'
test_expect_success 'the PEP was started with the instance socket, audit log and ready fd' '
	grep -q "\"--listen\", \"unix:$P/.pexi/instances/box/pep.sock\"" "$P/.pexi/instances/box/pep.log" &&
	grep -q "\"--audit\", \"$P/.pexi/instances/box/audit.jsonl\"" "$P/.pexi/instances/box/pep.log" &&
	grep -q "\"--ready-fd\", \"3\"" "$P/.pexi/instances/box/pep.log"
'
test_expect_success 'pexi status shows it running with its pids' '
	"$PEXI" status -f "$P/pexi.yml" >out &&
	grep -q "^state *running" out &&
	grep -q "supervisor $SUP, pep $PEP, hypervisor $VM" out &&
	grep -q "instance-id iid-t0810" out &&
	test "$(state_field "$P" manifest)" = "$P/pexi.yml"
'
test_expect_success 'pexi status --json is JSON with running true' '
	"$PEXI" status --json -f "$P/pexi.yml" >out.json &&
	python3 - out.json "$VM" <<-PY
	import json, sys
	d = json.load(open(sys.argv[1]))
	assert d["running"] is True and d["state"] == "running", d
	assert d["backend"] == "avf" and d["channel"] == "vsock", d
	assert d["vm_pid"] == int(sys.argv[2]), d
	assert d["ready_ms"] >= d["started_ms"], d
	PY
'
test_expect_success 'pexi logs console prints what the guest wrote' '
	"$PEXI" logs --file "$P/pexi.yml" console >out &&
	grep -q "avf-standin: said hello as iid-t0810" out &&
	grep -q "the PEP answered hello" out
'
test_expect_error 'a second up of the running instance says so' 1 "instance 'box' is already running" \
	up -f "$P/pexi.yml"
test_expect_success 'the refused second up left the running instance alone' '
	test "$(state_field "$P" state)" = running && test -d /proc/$VM && test -d /proc/$PEP
'
test_expect_success 'pexi logs console -f follows until the instance stops' '
	("$PEXI" logs --file "$P/pexi.yml" console -f >follow.out 2>&1; echo done >follow.rc) &
	sleep 0.5 &&
	"$PEXI" down -f "$P/pexi.yml" 2>down.err &&
	for _ in $(seq 50); do test -f follow.rc && break; sleep 0.1; done &&
	test -f follow.rc &&
	grep -q "poweroff requested over the channel" follow.out
'
test_expect_success 'down went by the first rung: the guest powered off over the channel' '
	grep -q "stopped: pexi down: the guest powered off when asked over the channel" down.err &&
	grep -q "pep-stub: SIGUSR1, sending poweroff" "$P/.pexi/instances/box/pep.log"
'
test_expect_success 'after down no process of the instance is left and the lock is free' '
	pids_gone $SUP $PEP $VM && lock_free "$P"
'
test_expect_success 'the PEP was stopped with SIGTERM and wrote its audit line' '
	grep -q "pep-stub: SIGTERM, stopping" "$P/.pexi/instances/box/pep.log" &&
	grep -qx "{\"event\": \"stop\"}" "$P/.pexi/instances/box/audit.jsonl"
'
test_expect_success 'pexi status says stopped, with the reason' '
	"$PEXI" status -f "$P/pexi.yml" >out &&
	grep -q "^state *stopped" out && grep -q "^reason .*powered off" out &&
	"$PEXI" status --json -f "$P/pexi.yml" | python3 -c "import json,sys; d=json.load(sys.stdin); assert d[\"running\"] is False and d[\"state\"] == \"stopped\", d"
'
test_expect_success 'pexi logs audit and pep read the stopped instance' '
	"$PEXI" logs --file "$P/pexi.yml" audit | grep -q "\"event\": \"stop\"" &&
	"$PEXI" logs --file "$P/pexi.yml" pep | grep -q "pep-stub argv"
'
test_expect_success 'pexi down of a stopped instance says it is not running and succeeds' '
	"$PEXI" down -f "$P/pexi.yml" 2>err && grep -q "is not running" err
'
test_expect_success 'up again after a clean down works, with fresh logs' '
	"$PEXI" up -f "$P/pexi.yml" >out 2>err &&
	! grep -q "crashed" err &&
	test $(grep -c "said hello" "$P/.pexi/instances/box/console.log") -eq 1 &&
	"$PEXI" down -f "$P/pexi.yml" 2>err && lock_free "$P"
'
test_expect_success '--name runs a second instance of the same manifest beside the first' '
	"$PEXI" up -f "$P/pexi.yml" >/dev/null &&
	"$PEXI" up -f "$P/pexi.yml" --name other >out &&
	grep -q "instance .other. is up" out &&
	"$PEXI" status -f "$P/pexi.yml" --name other | grep -q "^state *running" &&
	"$PEXI" down -f "$P/pexi.yml" --name other && "$PEXI" down -f "$P/pexi.yml" &&
	lock_free "$P" && flock -n "$P/.pexi/instances/other/lock" true
'
test_done
