#!/bin/sh
# The audit log written by the real daemon for real requests: one line per request with
# the notes' fields (read back by Python's json), header names but never the values of
# Authorization or Cookie (nor userinfo), the resolved and pinned addresses, status and
# bytes; the chain verified by an independent Python re-computation (hashlib), and a
# tampered line named by its number.
. "$(dirname "$0")/lib.sh"
. "$PEXI_SRC/tests/pep/daemon.sh"

upstream_start
write_policy "$TRASH/policy.yml"
pep_start --instance t0705

test_expect_success 'requests with credentials go through' '
	python3 "$FC" "unix:$SOCK" request GET "http://upstream.test:$UP_PORT/bytes/100?token=QUERY" \
		--id one --header "Authorization: Bearer SECRET-AUTH" \
		--header "Cookie: sid=SECRET-COOKIE" >out1 &&
	grep -q "\"status\": 200" out1 &&
	python3 "$FC" "unix:$SOCK" request POST "http://upstream.test:$UP_PORT/echo" \
		--body "payload" >out2 && grep -q "\"status\": 200" out2 &&
	python3 "$FC" "unix:$SOCK" request GET "http://127.0.0.1:1/x" --id ssrf >out3 &&
	grep -q "ssrf_blocked" out3 &&
	grep -q "SECRET-AUTH" "$TRASH/upstream.log"
'
test_expect_success 'no credential value reaches the audit log' '
	test "$(wc -l <"$TRASH/audit.jsonl")" -eq 3 &&
	! grep -q SECRET "$TRASH/audit.jsonl"
'
test_expect_success 'the fields, read by Python' '
	python3 - "$TRASH/audit.jsonl" "$UP_PORT" <<-\PY
	import json, sys
	lines = [json.loads(l) for l in open(sys.argv[1])]
	a, b, c = lines
	assert [l["seq"] for l in lines] == [1, 2, 3]
	for l in lines:
	    for k in ("time", "instance", "method", "scheme", "host", "port", "path", "decision",
	              "code", "reason", "resolved", "pinned", "hops", "status", "bytes_in",
	              "bytes_out", "resolve_ms", "connect_ms", "total_ms", "prev_hash", "hash"):
	        assert k in l, (k, l)
	    assert l["instance"] == "t0705"
	assert a["id"] == "one" and a["method"] == "GET" and a["host"] == "upstream.test"
	assert a["port"] == int(sys.argv[2]) and a["path"] == "/bytes/100", a
	assert a["headers"] == ["Authorization", "Cookie"], a
	assert a["decision"] == "allow" and a["code"] is None and a["status"] == 200, a
	assert a["resolved"] == ["127.0.0.1"] and a["pinned"] == "127.0.0.1", a
	assert a["bytes_in"] == 100, a
	assert b["method"] == "POST" and b["bytes_out"] == 7, b
	assert c["decision"] == "deny" and c["code"] == "ssrf_blocked" and c["status"] is None, c
	PY
'
test_expect_success 'Python'"'"'s hashlib recomputes the chain' '
	python3 - "$TRASH/audit.jsonl" <<-\PY
	import hashlib, json, sys
	prev = "0" * 64
	for n, line in enumerate(open(sys.argv[1], "rb"), 1):
	    line = line.rstrip(b"\n")
	    cut = line.rindex(b",\"hash\":\"")
	    h = hashlib.sha256(line[:cut]).hexdigest()
	    rec = json.loads(line)
	    assert rec["hash"] == h and rec["prev_hash"] == prev and rec["seq"] == n, n
	    prev = h
	PY
'
test_expect_success 'verify-audit names a tampered line' '
	"$PEXI" pep verify-audit "$TRASH/audit.jsonl" &&
	sed "2s/\"bytes_out\":7/\"bytes_out\":0/" "$TRASH/audit.jsonl" >t &&
	rc=0 && "$PEXI" pep verify-audit t 2>err || rc=$? &&
	test $rc -eq 4 && grep -q "line 2 does not match its hash" err
'
test_done
