#!/bin/sh
# pexi-guest's bridge on the host, no VM: the channel is a unix socket served by the test
# peer tests/e2e/frame-peer.py (a stand-in for the PEP), the apps are Python clients and
# `pexi-guest fetch`. Checks hello, routing and id restoration, order for id-less frames,
# isolation from a stalled app, the caps, reconnection and poweroff.
. "$(dirname "$0")/lib.sh"
require_programs python3
GUEST=$PEXI_BUILD/pexi-guest
[ -x "$GUEST" ] || skip_all "needs $GUEST (make guest)"
PEER=$PEXI_SRC/tests/e2e/frame-peer.py
SOCK=$TRASH/pep.sock
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export PORT

start_peer() {
	rm -f "$TRASH/peer.pid"
	python3 "$PEER" --listen "$SOCK" --log "$TRASH/peer.log" --ready "$TRASH/ready" \
		--pidfile "$TRASH/peer.pid" &
	i=0
	while [ ! -f "$TRASH/peer.pid" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
}
count() { # FILE PATTERN: lines matching, 0 when the file does not exist yet
	n=$(grep -c "$2" "$1" 2>/dev/null)
	echo "${n:-0}"
}
wait_for() { # FILE PATTERN COUNT: waits up to 10 s for COUNT lines matching PATTERN
	i=0
	while [ "$(count "$1" "$2")" -lt "$3" ] && [ $i -lt 200 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	[ "$(count "$1" "$2")" -ge "$3" ]
}

start_peer
"$GUEST" --channel "unix:$SOCK" --port "$PORT" --instance-id 'iid-t0801"x' \
	--max-frame 4096 --max-inflight 4 --poweroff-cmd "touch $TRASH/powered-off" \
	2>"$TRASH/guest.err" &
GUEST_PID=$!
trap 'kill $GUEST_PID $(cat "$TRASH/peer.pid" 2>/dev/null) 2>/dev/null; rm -rf "$TRASH"' EXIT

test_expect_success 'the helper says hello with the instance-id, JSON-escaped' '
	wait_for "$TRASH/ready" "^hello " 1 &&
	test "$(cat "$TRASH/ready")" = "hello iid-t0801\"x" &&
	python3 -c "
import json, sys
f = json.loads(open(sys.argv[1]).readline())
assert f == {\"type\": \"hello\", \"instance_id\": \"iid-t0801\\\"x\", \"guest\": \"pexi-guest/0.1\"}, f
" "$TRASH/peer.log"
'

test_expect_success 'pexi-guest fetch prints the body the host answered' '
	"$GUEST" fetch --port "$PORT" http://example.test/a >out &&
	test "$(cat out)" = "GET http://example.test/a"
'

test_expect_success 'fetch shows a PEP error code and exits 3' '
	rc=0 && "$GUEST" fetch --port "$PORT" http://deny.test/ >out 2>err || rc=$? &&
	test $rc -eq 3 && grep -q "error denied_by_policy: host is not allowed" err
'

test_expect_success 'the host sees guest-unique ids, the apps get their own back' '
	python3 - "$TRASH/peer.log" <<-\PY
	import json, os, socket, struct, sys
	def frame(s, obj):
	    d = json.dumps(obj).encode(); s.sendall(struct.pack(">I", len(d)) + d)
	def read(s):
	    h = b""
	    while len(h) < 4: h += s.recv(4 - len(h))
	    n = struct.unpack(">I", h)[0]; d = b""
	    while len(d) < n: d += s.recv(n - len(d))
	    return json.loads(d)
	port = int(os.environ["PORT"])
	a = socket.create_connection(("127.0.0.1", port)); b = socket.create_connection(("127.0.0.1", port))
	frame(a, {"id": "same", "method": "GET", "url": "http://x/slow"})
	frame(b, {"id": "same", "method": "GET", "url": "http://x/fast"})
	frame(a, {"id": 7, "method": "GET", "url": "http://x/fast2"})
	ra1 = read(a); ra2 = read(a); rb = read(b)
	# With ids, the fast answer overtakes the slow one on the same connection.
	assert ra1["id"] == 7 and ra2["id"] == "same" and rb["id"] == "same", (ra1, ra2, rb)
	import base64
	assert base64.b64decode(ra2["body_base64"]) == b"GET http://x/slow"
	assert base64.b64decode(rb["body_base64"]) == b"GET http://x/fast"
	seen = [json.loads(l) for l in open(sys.argv[1])]
	ids = [f["id"] for f in seen if f.get("url", "").startswith("http://x/")]
	assert len(ids) == 3 and len(set(ids)) == 3 and all(i.startswith("g") for i in ids), ids
	PY
'

test_expect_success 'id-less answers keep request order, and come back without an id' '
	python3 - <<-\PY
	import json, os, socket, struct
	def frame(s, obj):
	    d = json.dumps(obj).encode(); s.sendall(struct.pack(">I", len(d)) + d)
	def read(s):
	    h = b""
	    while len(h) < 4: h += s.recv(4 - len(h))
	    n = struct.unpack(">I", h)[0]; d = b""
	    while len(d) < n: d += s.recv(n - len(d))
	    return json.loads(d)
	s = socket.create_connection(("127.0.0.1", int(os.environ["PORT"])))
	frame(s, {"method": "GET", "url": "http://o/slow"})
	frame(s, {"method": "GET", "url": "http://o/fast"})
	r1 = read(s); r2 = read(s)
	import base64
	assert base64.b64decode(r1["body_base64"]) == b"GET http://o/slow", r1
	assert base64.b64decode(r2["body_base64"]) == b"GET http://o/fast", r2
	assert "id" not in r1 and "id" not in r2
	PY
'

test_expect_success 'an app that never reads its answers does not hold up another' '
	python3 - <<-\PY
	import json, os, socket, struct, time
	port = int(os.environ["PORT"])
	def frame(s, obj):
	    d = json.dumps(obj).encode(); s.sendall(struct.pack(">I", len(d)) + d)
	stall = socket.create_connection(("127.0.0.1", port))
	stall.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
	for i in range(200):
	    frame(stall, {"method": "GET", "url": "http://stall/%d/%s" % (i, "x" * 900)})
	t = time.time()
	s = socket.create_connection(("127.0.0.1", port)); s.settimeout(5)
	frame(s, {"id": 1, "method": "GET", "url": "http://other/"})
	h = s.recv(4); assert len(h) == 4
	assert time.time() - t < 3
	PY
'

test_expect_success 'an app may not send control frames: refused with an error, then closed' '
	python3 - <<-\PY
	import json, os, socket, struct
	s = socket.create_connection(("127.0.0.1", int(os.environ["PORT"]))); s.settimeout(5)
	d = json.dumps({"type": "hello", "instance_id": "spoof"}).encode()
	s.sendall(struct.pack(">I", len(d)) + d)
	h = s.recv(4); n = struct.unpack(">I", h)[0]; r = json.loads(s.recv(n))
	assert r["error"]["code"] == "invalid_method", r
	assert s.recv(1) == b""
	PY
	! grep -q spoof "$TRASH/peer.log"
'

test_expect_success 'a frame over the cap is refused before it is read' '
	python3 - <<-\PY
	import os, socket, struct, json
	s = socket.create_connection(("127.0.0.1", int(os.environ["PORT"]))); s.settimeout(5)
	s.sendall(struct.pack(">I", 1 << 30))
	h = s.recv(4); n = struct.unpack(">I", h)[0]; r = json.loads(s.recv(n))
	assert r["error"]["code"] == "constraint_violation", r
	PY
'

test_expect_success 'an answer over the frame cap fails its request, and the stream stays in step' '
	rc=0 && "$GUEST" fetch --port "$PORT" http://x/big >out 2>err || rc=$? &&
	test $rc -eq 3 && grep -q "error constraint_violation: the answer (1[0-9]* bytes) is over" err &&
	"$GUEST" fetch --port "$PORT" http://x/after >out && test "$(cat out)" = "GET http://x/after"
'

test_expect_success 'when the host side goes away, pending requests fail and it reconnects' '
	kill $(cat "$TRASH/peer.pid") && sleep 0.3 &&
	rc=0 && "$GUEST" fetch --port "$PORT" http://down/ 2>err || rc=$? &&
	test $rc -eq 3 && grep -q "http_error" err &&
	start_peer &&
	wait_for "$TRASH/ready" "^hello " 2 &&
	"$GUEST" fetch --port "$PORT" http://back/ >out && test "$(cat out)" = "GET http://back/"
'

test_expect_success 'a poweroff frame from the host runs the poweroff command' '
	kill -USR1 $(cat "$TRASH/peer.pid") &&
	i=0 && while [ ! -f "$TRASH/powered-off" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done &&
	test -f "$TRASH/powered-off" && grep -q "poweroff requested" "$TRASH/guest.err"
'

test_expect_success 'the helper listens on 127.0.0.1 only (the kernel'"'"'s socket table)' '
	port_hex=$(printf "%04X" "$PORT") &&
	awk -v p=":$port_hex" "\$2 ~ p\"\$\" && \$4 == \"0A\" { print \$2 }" /proc/net/tcp /proc/net/tcp6 >listening &&
	test "$(cat listening)" = "0100007F:$port_hex"
'
test_done
