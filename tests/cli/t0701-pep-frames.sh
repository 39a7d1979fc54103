#!/bin/sh
# Frame-layer abuse against the real daemon, spoken by an independent Python client:
# garbage, a 4 GiB length, truncated frames, invalid JSON and UTF-8, over-limit bodies,
# pipelined id-less frames answered in order, numeric and string ids echoed as sent,
# hello with --ready-fd, and a guest-sent poweroff. Every refusal is a constraint_violation
# frame, the daemon keeps serving, and each refusal has its audit line.
. "$(dirname "$0")/lib.sh"
. "$PEXI_SRC/tests/pep/daemon.sh"

upstream_start
write_policy "$TRASH/policy.yml" 'max_request_bytes: 1000
'
exec 3>"$TRASH/ready"
pep_start --ready-fd 3 --instance t0701
exec 3>&-

# Runs Python with the frame client imported as fc and the socket path as SOCK.
py() {
	python3 -c "import frameclient as fc, json, os, socket, struct, sys, time
SOCK = 'unix:' + os.environ['SOCK']
$1"
}

test_expect_success 'an HTTP request instead of frames: refused, connection closed' '
	py "
s = fc.connect(SOCK)
s.sendall(b\"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n\")
f = fc.read_frame(s)
assert f[\"error\"][\"code\"] == \"constraint_violation\", f
assert \"over the limit\" in f[\"error\"][\"message\"], f
assert fc.read_frame(s) is None
"
'
test_expect_success 'a 4 GiB length: refused before any allocation, connection closed' '
	py "
s = fc.connect(SOCK)
s.sendall(b\"\\xff\\xff\\xff\\xff\" + b\"x\" * 100)
f = fc.read_frame(s)
assert \"4294967295 bytes is over the limit\" in f[\"error\"][\"message\"], f
assert fc.read_frame(s) is None
"
'
test_expect_success 'the daemon still serves after the abuse' '
	python3 "$FC" "unix:$SOCK" hello after-abuse >out && grep -q "\"ok\": true" out
'
test_expect_success 'a truncated frame gets no answer; the daemon is unharmed' '
	py "
s = fc.connect(SOCK)
s.sendall(struct.pack(\">I\", 100) + b\"{\\\"method\\\": \\\"GET\\\"\")
s.shutdown(socket.SHUT_WR)
assert fc.read_frame(s) is None
s2 = fc.connect(SOCK)
s2.sendall(fc.frame({\"type\": \"hello\"}))
assert fc.read_frame(s2)[\"ok\"] is True
"
'
test_expect_success 'invalid JSON, bad UTF-8 and unknown types are answered in order and the stream goes on' '
	py "
s = fc.connect(SOCK)
s.sendall(fc.frame(b\"{not json\") + fc.frame(b\"{\\\"method\\\":\\\"GET\\\",\\\"url\\\":\\\"http://a/\\xc3\\x28\\\"}\")
          + fc.frame({\"type\": \"hello\", \"instance_id\": \"order\"}) + fc.frame({\"type\": \"reboot\"})
          + fc.frame([1, 2]))
got = [fc.read_frame(s) for _ in range(5)]
msgs = [g.get(\"error\") and g[\"error\"][\"message\"] for g in got]
assert \"not valid JSON\" in msgs[0], got
assert \"not valid UTF-8\" in msgs[1], got
assert got[2] == {\"type\": \"hello\", \"ok\": True}, got
assert \"unknown frame type\" in msgs[3], got
assert \"not a JSON object\" in msgs[4], got
assert all(g.get(\"status\", 0) == 0 for g in got)
"
'
test_expect_success 'refusals keep the id, as a number or a string' '
	py "
s = fc.connect(SOCK)
s.sendall(fc.frame({\"id\": 7, \"method\": 5}) + fc.frame({\"id\": \"seven\", \"url\": \"http://a/\"}))
a, b = fc.read_frame(s), fc.read_frame(s)
ids = sorted([a[\"id\"], b[\"id\"]], key=str)
assert ids == [7, \"seven\"], (a, b)
assert isinstance([x for x in (a, b) if x[\"id\"] == 7][0][\"id\"], int)
"
'
test_expect_success 'a body over max_request_bytes is refused at the frame layer' '
	py "
s = fc.connect(SOCK)
s.sendall(fc.request(\"POST\", \"http://upstream.test/\", body=b\"x\" * 5000, id=\"big\"))
f = fc.read_frame(s)
assert f[\"id\"] == \"big\" and f[\"error\"][\"code\"] == \"constraint_violation\", f
assert \"5000 bytes is over the limit\" in f[\"error\"][\"message\"], f
"
'
test_expect_success 'a NUL escape in a string is refused' '
	py "
s = fc.connect(SOCK)
s.sendall(fc.frame(b\"{\\\"id\\\":\\\"n\\\",\\\"method\\\":\\\"GET\\\",\\\"url\\\":\\\"http://upstream.test/\\\\u0000.evil\\\"}\"))
f = fc.read_frame(s)
assert f[\"id\"] == \"n\" and \"may not contain NUL\" in f[\"error\"][\"message\"], f
"
'
test_expect_success 'a guest may not send poweroff' '
	py "
s = fc.connect(SOCK)
s.sendall(fc.frame({\"type\": \"poweroff\"}))
f = fc.read_frame(s)
assert f[\"error\"][\"code\"] == \"constraint_violation\" and \"host to the guest\" in f[\"error\"][\"message\"], f
"
'
test_expect_success 'hello is answered and written to --ready-fd, one line per hello' '
	py "
s = fc.connect(SOCK)
s.sendall(fc.frame({\"type\": \"hello\", \"instance_id\": \"vm-42\", \"guest\": \"pexi-guest/0.1\"}))
assert fc.read_frame(s) == {\"type\": \"hello\", \"ok\": True}
s.sendall(fc.frame({\"type\": \"hello\", \"instance_id\": \"two\\nlines here\"}))
assert fc.read_frame(s)[\"ok\"] is True
" &&
	grep -qx "hello vm-42" "$TRASH/ready" &&
	grep -qx "hello two_lines_here" "$TRASH/ready" &&
	! grep -q "^lines" "$TRASH/ready"
'
test_expect_success 'a guest cannot forge log lines or send terminal escapes in its hello' '
	py "
s = fc.connect(SOCK)
s.sendall(fc.frame({\"type\": \"hello\", \"instance_id\": \"i\\u009b1\",
                    \"guest\": \"g\\nlistening on unix:/tmp/evil\\n\\u001b[31mFAKE\"}))
assert fc.read_frame(s)[\"ok\"] is True
" &&
	grep -q "^hello from instance .i__1. (g_listening_on_unix:/tmp/evil__.31mFAKE)" "$TRASH/pep.err" &&
	test "$(grep -c "^listening on" "$TRASH/pep.err")" -eq 1 &&
	! grep -q "$(printf "\033")" "$TRASH/pep.err"
'
test_expect_success 'every refusal has its audit line, and the chain verifies' '
	grep -c "\"reason\":\"frame: " "$TRASH/audit.jsonl" >n && test "$(cat n)" -eq 10 &&
	grep -q "\"instance\":\"t0701\"" "$TRASH/audit.jsonl" &&
	"$PEXI" pep verify-audit "$TRASH/audit.jsonl"
'
test_expect_success 'the upstream saw nothing' '
	test ! -s "$TRASH/upstream.log"
'
test_done
