#!/bin/sh
# Resource caps against the real daemon: 1200 connections against a cap of 1100 (the
# surplus is closed, the rest keep working, memory stays small), a peer stalling inside a
# frame while another is served at once (and closed after --stall-timeout), peers that
# announce 16 MiB frames and send a few bytes (memory follows the bytes sent, not the
# announced length), the idle timeout sparing hello'd connections, and a per-connection
# queue that stops reading instead of buffering.
. "$(dirname "$0")/lib.sh"
. "$PEXI_SRC/tests/pep/daemon.sh"

[ "$(ulimit -Hn)" = unlimited ] || [ "$(ulimit -Hn)" -ge 2600 ] ||
	skip_all "needs a descriptor limit of 2600 for 1200 connections (hard limit $(ulimit -Hn))"
upstream_start
write_policy "$TRASH/policy.yml" 'max_request_bytes: 12000000
'
pep_start --max-connections 1100 --stall-timeout 1500 --idle-timeout 3000
export PEP_PID

py() {
	python3 -c "import frameclient as fc, json, os, resource, socket, struct, sys, time
SOCK = 'unix:' + os.environ['SOCK']
def rss_kib():
    for l in open('/proc/%s/status' % os.environ['PEP_PID']):
        if l.startswith('VmRSS:'):
            return int(l.split()[1])
def hello(s, name='x'):
    s.sendall(fc.frame({'type': 'hello', 'instance_id': name}))
    f = fc.read_frame(s)
    assert f == {'type': 'hello', 'ok': True}, f
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (4096 if hard == resource.RLIM_INFINITY else min(4096, hard), hard))
$1"
}

test_expect_success '1200 connections: 1100 kept and working, the rest closed, memory bounded' '
	py "
base = rss_kib()
conns = [fc.connect(SOCK) for _ in range(1200)]
time.sleep(1.0)
closed = 0
for c in conns:
    c.setblocking(False)
    try:
        if c.recv(1) == b\"\":
            closed += 1
    except BlockingIOError:
        pass
    c.setblocking(True)
assert closed == 100, closed
live = [c for c in conns][:50]
for c in live:
    hello(c)
per = (rss_kib() - base) / 1100.0
print(\"# rss %d KiB -> %d KiB, %.1f KiB per idle connection\" % (base, rss_kib(), per), file=sys.stderr)
assert per < 32, per
for c in conns:
    c.close()
time.sleep(0.3)
s = fc.connect(SOCK)
hello(s, \"fresh\")
"
'
test_expect_success 'a peer stalling mid-frame does not delay another; it is closed after the stall timeout' '
	py "
stall = fc.connect(SOCK)
stall.sendall(struct.pack(\">I\", 100000) + b\"{\\\"method\\\":\")
t = time.time()
other = fc.connect(SOCK)
hello(other)
assert time.time() - t < 0.5, time.time() - t
stall.settimeout(5)
t = time.time()
assert stall.recv(1) == b\"\"
waited = time.time() - t
assert 0.8 < waited < 3.5, waited
hello(other)
"
'
test_expect_success '200 peers announcing 12 MB frames cost what they sent, not what they announced' '
	py "
base = rss_kib()
conns = []
for _ in range(200):
    c = fc.connect(SOCK)
    c.sendall(struct.pack(\">I\", 12000000) + b\"{\" + b\" \" * 1000)
    conns.append(c)
time.sleep(0.5)
grown = rss_kib() - base
print(\"# rss grew by %d KiB for 200 half-sent 12 MB frames\" % grown, file=sys.stderr)
assert grown < 64 * 1024, grown
s = fc.connect(SOCK)
hello(s)
for c in conns:
    c.close()
"
'
test_expect_success 'idle connections are closed after --idle-timeout, hello'"'"'d ones are kept' '
	py "
idle = fc.connect(SOCK)
guest = fc.connect(SOCK)
hello(guest, \"guest\")
idle.settimeout(8)
t = time.time()
assert idle.recv(1) == b\"\"
assert 2.0 < time.time() - t < 6, time.time() - t
hello(guest, \"still-here\")
"
'
test_expect_success 'the daemon answers a peer that pipelines 200 frames without reading' '
	py "
s = fc.connect(SOCK)
s.sendall(b\"\".join(fc.frame({\"type\": \"hello\", \"instance_id\": \"p%d\" % i}) for i in range(200)))
got = [fc.read_frame(s) for _ in range(200)]
assert all(g == {\"type\": \"hello\", \"ok\": True} for g in got)
"
'
test_expect_success 'a peer trickling a frame byte by byte is closed at the frame deadline' '
	"$PEXI" pep --policy "$TRASH/policy.yml" --listen "unix:$TRASH/slow.sock" \
		--audit "$TRASH/slow.jsonl" --stall-timeout 300 >/dev/null 2>slow.err &
	pid=$! && trap "kill $pid 2>/dev/null" EXIT && wait_for_text slow.err "listening on" &&
	SOCK=$TRASH/slow.sock py "
s = fc.connect(SOCK)
s.sendall(struct.pack(\">I\", 1000))
t = time.time()
closed = False
while time.time() - t < 5:
    try:
        s.sendall(b\" \")
    except (BrokenPipeError, ConnectionResetError):
        closed = True
        break
    time.sleep(0.1)
took = time.time() - t
assert closed and 1.5 < took < 3.5, (closed, took)
" && kill $pid
'
test_expect_success 'the daemon is still alive' '
	kill -0 "$PEP_PID"
'
test_done
