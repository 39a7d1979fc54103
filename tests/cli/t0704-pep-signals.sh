#!/bin/sh
# Signals against the real daemon: SIGUSR1 sends a poweroff frame to every connection that
# said hello (and to no other), SIGHUP reloads the policy file (a valid one takes effect for
# the next request, an invalid one is logged and the old policy stays), SIGTERM stops
# accepting, lets an in-flight request finish and answer, syncs the audit log and exits 0.
. "$(dirname "$0")/lib.sh"
. "$PEXI_SRC/tests/pep/daemon.sh"

upstream_start
write_policy "$TRASH/policy.yml"
printf 'other.test 127.0.0.1\n' >>"$TRASH/hosts"
pep_start
export PEP_PID

py() {
	python3 -c "import frameclient as fc, json, os, signal, socket, struct, sys, time
SOCK = 'unix:' + os.environ['SOCK']
PID = int(os.environ['PEP_PID'])
BASE = 'http://upstream.test:%s' % os.environ['UP_PORT']
$1"
}

test_expect_success 'SIGUSR1: poweroff to hello'"'"'d connections only' '
	py "
g1, g2, plain = fc.connect(SOCK), fc.connect(SOCK), fc.connect(SOCK)
for g in (g1, g2):
    g.sendall(fc.frame({\"type\": \"hello\", \"instance_id\": \"g\"}))
    assert fc.read_frame(g)[\"ok\"] is True
plain.sendall(fc.frame(b\"{}\"))
fc.read_frame(plain)
os.kill(PID, signal.SIGUSR1)
assert fc.read_frame(g1) == {\"type\": \"poweroff\"}
assert fc.read_frame(g2) == {\"type\": \"poweroff\"}
plain.settimeout(0.5)
try:
    plain.recv(1)
    raise SystemExit(\"plain connection got a frame\")
except socket.timeout:
    pass
" &&
	wait_for_text "$TRASH/pep.err" "poweroff sent to 2 connections"
'

test_expect_success 'SIGUSR1 while hello'"'"'d peers vanish: the rest get poweroff, the daemon lives' '
	py "
conns = [fc.connect(SOCK) for _ in range(60)]
for c in conns:
    c.sendall(fc.frame({\"type\": \"hello\", \"instance_id\": \"many\"}))
    assert fc.read_frame(c)[\"ok\"] is True
for c in conns[::2]:
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack(\"ii\", 1, 0))
    c.close()
os.kill(PID, signal.SIGUSR1)
for c in conns[1::2]:
    assert fc.read_frame(c) == {\"type\": \"poweroff\"}
    c.close()
os.kill(PID, 0)
s = fc.connect(SOCK)
s.sendall(fc.frame({\"type\": \"hello\"}))
assert fc.read_frame(s)[\"ok\"] is True
"
'
test_expect_success 'SIGHUP with a valid policy: a denied host becomes allowed' '
	py "
s = fc.connect(SOCK)
s.sendall(fc.request(\"GET\", BASE.replace(\"upstream.test\", \"other.test\") + \"/bytes/1\", id=1))
f = fc.read_frame(s)
assert f[\"error\"][\"code\"] == \"denied_by_policy\", f
" &&
	sed "s/^allow:$/allow:\n  - other.test/" "$TRASH/policy.yml" >"$TRASH/policy.new" &&
	mv "$TRASH/policy.new" "$TRASH/policy.yml" &&
	kill -HUP "$PEP_PID" && { wait_for_text "$TRASH/pep.err" "reloaded" || { cat "$TRASH/pep.err" "$TRASH/policy.yml"; false; }; } &&
	py "
s = fc.connect(SOCK)
s.sendall(fc.request(\"GET\", BASE.replace(\"upstream.test\", \"other.test\") + \"/bytes/1\", id=1))
f = fc.read_frame(s)
assert f[\"status\"] == 200, f
"
'

test_expect_success 'SIGHUP with an invalid policy: logged, the old policy stays' '
	cp "$TRASH/policy.yml" good.yml &&
	printf "allow:\n  - \"*.com\"\n" >"$TRASH/policy.yml" &&
	kill -HUP "$PEP_PID" &&
	wait_for_text "$TRASH/pep.err" "policy reload failed, keeping the current policy" &&
	py "
s = fc.connect(SOCK)
s.sendall(fc.request(\"GET\", BASE.replace(\"upstream.test\", \"other.test\") + \"/bytes/1\", id=1))
f = fc.read_frame(s)
assert f[\"status\"] == 200, f
"
'

test_expect_success 'SIGTERM: the in-flight request is answered, new connections are refused' '
	py "
s = fc.connect(SOCK)
s.sendall(fc.request(\"GET\", BASE + \"/delay/1.5\", id=\"last\"))
time.sleep(0.3)
os.kill(PID, signal.SIGTERM)
time.sleep(0.3)
try:
    fc.connect(SOCK)
    raise SystemExit(\"still accepting\")
except (FileNotFoundError, ConnectionRefusedError):
    pass
f = fc.read_frame(s)
assert f[\"id\"] == \"last\" and f[\"status\"] == 200, f
"
'
pep_wait_exit
test_expect_success 'the daemon exited 0 after draining, and said so' '
	test "$(cat "$TRASH/pep.rc")" = 0 &&
	grep -q "stopping: 1 request in flight" "$TRASH/pep.err" &&
	grep -q "^stopped$" "$TRASH/pep.err"
'
test_expect_success 'the drained request is the last audit line and the chain verifies' '
	tail -1 "$TRASH/audit.jsonl" | grep -q "\"id\":\"last\"" &&
	"$PEXI" pep verify-audit "$TRASH/audit.jsonl"
'

cp "$TRASH/good.yml" "$TRASH/policy.yml" 2>/dev/null || write_policy "$TRASH/policy.yml"
pep_start --drain-timeout 500
export PEP_PID
test_expect_success 'SIGTERM with a request that outlives --drain-timeout: exits anyway' '
	py "
s = fc.connect(SOCK)
s.sendall(fc.request(\"GET\", BASE + \"/delay/5\", id=\"slow\"))
time.sleep(0.3)
t = time.time()
os.kill(PID, signal.SIGTERM)
def gone():
    try:
        return \"State:\tZ\" in open(\"/proc/%d/status\" % PID).read()
    except FileNotFoundError:
        return True
while not gone():
    if time.time() - t > 4:
        raise SystemExit(\"did not exit\")
    time.sleep(0.05)
"
'
pep_wait_exit
test_expect_success 'it exited 0 and warned about the unfinished request' '
	test "$(cat "$TRASH/pep.rc")" = 0 &&
	grep -q "1 request still running after the drain timeout" "$TRASH/pep.err"
'
test_done
