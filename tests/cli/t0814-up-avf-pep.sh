#!/bin/sh
# pexi up with the real PEP (pexi pep, started by the supervisor from the manifest's pep
# section) and the AVF stand-in runner playing a guest that fetches through the channel:
# an allowed URL of a loopback upstream (tests/pep/upstream.py) arrives in the shared dir
# byte for byte; a denied host and the metadata address are refused and never reach the
# upstream; pexi down leaves the audit log with exactly those three lines, its hash chain
# intact (checked with Python's hashlib, not with pexi).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vm-lib.sh"
unset PEXI_PEP_PROGRAM
P=$TRASH/p
standin_project "$P" iid-t0814 || skip_all "cannot make the stand-in project"

mkfifo "$TRASH/upstream.in"
python3 "$PEXI_SRC/tests/pep/upstream.py" --log "$TRASH/upstream.log" \
	--ready-file "$TRASH/upstream.json" --root "$TRASH" <"$TRASH/upstream.in" 2>"$TRASH/upstream.err" &
exec 7>"$TRASH/upstream.in"
for _ in $(seq 100); do [ -s "$TRASH/upstream.json" ] && break; sleep 0.05; done
[ -s "$TRASH/upstream.json" ] || skip_all "the test upstream did not start"
PORT=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["http"][0])' "$TRASH/upstream.json")
sed -i 's/^  allow: .*/  allow: [localhost]/' "$P/pexi.yml"
printf '  allow_addresses: ["127.0.0.1:%s"]\n' "$PORT" >>"$P/pexi.yml"

export PEXI_STANDIN_FETCH="http://localhost:$PORT/bytes/5000 http://example.com/ http://169.254.169.254/latest/meta-data/"
test_expect_success 'up with the real PEP: the guest says hello through it' '
	"$PEXI" up -f "$P/pexi.yml" >out 2>err &&
	grep -q "the guest said hello" out &&
	test "$(state_field "$P" instance_id)" = iid-t0814 &&
	grep -q "hello from instance .iid-t0814." "$P/.pexi/instances/box/pep.log"
'
for _ in $(seq 100); do [ -s "$P/share/fetched-3.json" ] && break; sleep 0.1; done
test_expect_success 'the allowed URL arrived in the share byte for byte' '
	python3 -c "import sys; sys.stdout.buffer.write(bytes((i * 167 + i // 256) % 256 for i in range(5000)))" >want &&
	cmp want "$P/share/fetched-1" &&
	python3 -c "import json,sys; f=json.load(open(sys.argv[1])); assert f[\"status\"] == 200 and f[\"error\"] is None, f" "$P/share/fetched-1.json"
'
test_expect_success 'the denied host was refused by policy' '
	python3 -c "import json,sys; f=json.load(open(sys.argv[1])); assert f[\"error\"][\"code\"] == \"denied_by_policy\", f" "$P/share/fetched-2.json"
'
test_expect_success 'the metadata address was refused' '
	python3 -c "import json,sys; f=json.load(open(sys.argv[1])); assert f[\"error\"][\"code\"] in (\"denied_by_policy\", \"ssrf_blocked\"), f" "$P/share/fetched-3.json"
'
test_expect_success 'the upstream received exactly the allowed request' '
	test $(wc -l <"$TRASH/upstream.log") -eq 1 &&
	grep -q "/bytes/5000" "$TRASH/upstream.log"
'
SUP=$(state_field "$P" supervisor_pid)
PEP=$(state_field "$P" pep_pid)
VM=$(state_field "$P" vm_pid)
test_expect_success 'pexi down: the guest powers off over the channel, nothing is left' '
	"$PEXI" down -f "$P/pexi.yml" 2>err &&
	grep -q "the guest powered off when asked over the channel" err &&
	grep -q "poweroff sent to 1 connection" "$P/.pexi/instances/box/pep.log" &&
	pids_gone $SUP $PEP $VM && lock_free "$P"
'
test_expect_success 'the audit log holds exactly the three requests, in order, for this instance' '
	python3 - "$P/.pexi/instances/box/audit.jsonl" <<-PY
	import json, sys
	lines = [json.loads(l) for l in open(sys.argv[1])]
	assert len(lines) == 3, lines
	assert [l["instance"] for l in lines] == ["box"] * 3, lines
	by_id = {l["id"]: l for l in lines}
	assert by_id["1"]["decision"] == "allow" and by_id["1"]["status"] == 200, by_id["1"]
	assert by_id["1"]["bytes_in"] == 5000, by_id["1"]
	assert by_id["2"]["decision"] != "allow" and by_id["2"]["host"] == "example.com", by_id["2"]
	assert by_id["3"]["decision"] != "allow" and by_id["3"]["host"] == "169.254.169.254", by_id["3"]
	assert [l["seq"] for l in lines] == [1, 2, 3], lines
	PY
'
test_expect_success 'the audit chain links each line to the one before' '
	python3 - "$P/.pexi/instances/box/audit.jsonl" <<-PY
	import json, sys
	prev = "0" * 64
	for l in open(sys.argv[1]):
	    d = json.loads(l)
	    assert d["prev_hash"] == prev, (d["prev_hash"], prev)
	    prev = d["hash"]
	PY
'
# pep.audit_log in the manifest: the PEP writes there instead of the instance dir, the file
# survives the next up, and the second run's lines continue the first run's chain.
run_once() {
	"$PEXI" up -f "$P/pexi.yml" >out 2>err || { cat err; return 1; }
	for _ in $(seq 100); do [ -s "$P/share/fetched-3.json" ] && break; sleep 0.1; done
	"$PEXI" down -f "$P/pexi.yml" 2>err
}
test_expect_success 'pep.audit_log: the audit goes where the manifest says, and outlives runs' '
	printf "  audit_log: audit/sandbox.jsonl\n" >>"$P/pexi.yml" &&
	rm -f "$P/share/fetched-"* && run_once &&
	test "$(wc -l <"$P/audit/sandbox.jsonl")" -eq 3 &&
	"$PEXI" logs --file "$P/pexi.yml" audit | cmp - "$P/audit/sandbox.jsonl" &&
	rm -f "$P/share/fetched-"* && run_once &&
	python3 - "$P/audit/sandbox.jsonl" <<-PY
	import json, sys
	lines = [json.loads(l) for l in open(sys.argv[1])]
	assert [l["seq"] for l in lines] == [1, 2, 3, 4, 5, 6], [l["seq"] for l in lines]
	prev = "0" * 64
	for d in lines:
	    assert d["prev_hash"] == prev, (d["prev_hash"], prev)
	    prev = d["hash"]
	PY
'
test_done
