#!/bin/sh
# Multiplexing on one connection, against the real daemon and a loopback upstream: frames
# with ids are answered as they finish (a fast request overtakes a slow one), frames
# without ids are answered in request order even when a later one finishes first, many
# slow requests run concurrently, and --max-queue bounds what one connection has in flight
# (the next frame waits, it is not dropped).
. "$(dirname "$0")/lib.sh"
. "$PEXI_SRC/tests/pep/daemon.sh"

upstream_start
write_policy "$TRASH/policy.yml"
pep_start --max-queue 4 --workers 8

py() {
	python3 -c "import frameclient as fc, json, os, socket, struct, sys, time
SOCK = 'unix:' + os.environ['SOCK']
BASE = 'http://upstream.test:%s' % os.environ['UP_PORT']
$1"
}

test_expect_success 'a request with an id is answered from the upstream' '
	py "
s = fc.connect(SOCK)
s.sendall(fc.request(\"GET\", BASE + \"/bytes/1000\", id=\"a\"))
f = fc.read_frame(s)
assert f[\"id\"] == \"a\" and f[\"status\"] == 200 and f[\"error\"] is None, f
body = fc.body_of(f)
assert body == bytes((i * 167 + i // 256) % 256 for i in range(1000))
"
'
test_expect_success 'ids: a fast request overtakes a slow one on the same connection' '
	py "
s = fc.connect(SOCK)
s.sendall(fc.request(\"GET\", BASE + \"/delay/1\", id=\"slow\")
          + fc.request(\"GET\", BASE + \"/bytes/3\", id=7))
first, second = fc.read_frame(s), fc.read_frame(s)
assert first[\"id\"] == 7 and first[\"status\"] == 200, first
assert second[\"id\"] == \"slow\" and second[\"status\"] == 200, second
"
'
test_expect_success 'no ids: answers keep request order though the second finishes first' '
	py "
s = fc.connect(SOCK)
t = time.time()
s.sendall(fc.request(\"GET\", BASE + \"/delay/1\")
          + fc.request(\"GET\", BASE + \"/bytes/3\")
          + fc.frame({\"type\": \"hello\", \"instance_id\": \"mid\"}))
a, b, c = fc.read_frame(s), fc.read_frame(s), fc.read_frame(s)
assert \"id\" not in a and a[\"status\"] == 200 and fc.body_of(a) != fc.body_of(b), (a, b)
assert len(fc.body_of(b)) == 3, b
assert c == {\"type\": \"hello\", \"ok\": True}, c
assert time.time() - t < 1.9, time.time() - t
"
'
test_expect_success 'the per-connection queue: 8 slow requests with --max-queue 4 take two rounds' '
	py "
s = fc.connect(SOCK)
t = time.time()
s.sendall(b\"\".join(fc.request(\"GET\", BASE + \"/delay/1\", id=i) for i in range(8)))
got = sorted(fc.read_frame(s)[\"id\"] for _ in range(8))
took = time.time() - t
assert got == list(range(8)), got
assert 1.9 < took < 3.5, took
"
'
test_expect_success 'two connections run in parallel: one slow does not delay the other' '
	py "
a, b = fc.connect(SOCK), fc.connect(SOCK)
a.sendall(fc.request(\"GET\", BASE + \"/delay/2\", id=\"a\"))
time.sleep(0.2)
t = time.time()
b.sendall(fc.request(\"GET\", BASE + \"/bytes/5\", id=\"b\"))
assert fc.read_frame(b)[\"id\"] == \"b\"
assert time.time() - t < 1.0
assert fc.read_frame(a)[\"id\"] == \"a\"
"
'
test_expect_success 'a 1 MiB response arrives whole' '
	py "
s = fc.connect(SOCK)
s.sendall(fc.request(\"GET\", BASE + \"/bytes/1048576\", id=\"big\"))
f = fc.read_frame(s)
assert f[\"status\"] == 200 and len(fc.body_of(f)) == 1048576, (f[\"status\"], f[\"error\"])
"
'
test_expect_success 'a peer that never reads its answers is cut off; others are served meanwhile' '
	"$PEXI" -v pep --policy "$TRASH/policy.yml" --listen "unix:$TRASH/nr.sock" \
		--audit "$TRASH/nr.jsonl" --hosts-file "$TRASH/hosts" --stall-timeout 1000 >/dev/null 2>nr.err &
	pid=$! && trap "kill $pid 2>/dev/null" EXIT && wait_for_text nr.err "listening on" &&
	SOCK=$TRASH/nr.sock py "
s = fc.connect(SOCK)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.sendall(b\"\".join(fc.request(\"GET\", BASE + \"/bytes/1048576\", id=i) for i in range(12)))
other = fc.connect(SOCK)
t = time.time()
other.sendall(fc.request(\"GET\", BASE + \"/bytes/10\", id=\"o\"))
assert fc.read_frame(other)[\"id\"] == \"o\"
assert time.time() - t < 5.0, time.time() - t
time.sleep(3)
s.close()
" && wait_for_text nr.err "closed: not reading its answers" && kill $pid
'
test_expect_success 'the upstream saw each request once, the audit chain verifies' '
	test "$(grep -c "/delay" "$TRASH/upstream.log")" -eq 11 &&
	"$PEXI" pep verify-audit "$TRASH/audit.jsonl" >out && grep -q "16 records" out
'
test_done
