#!/bin/sh
# pexi pep: usage errors name what is wrong and exit 2, a bad policy exits 3 before
# anything listens, the unix socket is private (0600) and removed at exit, a stale socket
# is replaced but a live one is not, and `pexi pep verify-audit` checks a chain written by
# the daemon and names the first broken line of a tampered copy (line numbers checked
# with sed, not pexi).
. "$(dirname "$0")/lib.sh"
. "$PEXI_SRC/tests/pep/daemon.sh"

upstream_start
write_policy "$TRASH/policy.yml"

test_expect_error 'no --policy' 2 '--policy is required' pep --listen unix:x --audit a
test_expect_error 'no --listen' 2 'at least one --listen' pep --policy "$TRASH/policy.yml" --audit a
test_expect_error 'bad listen scheme' 2 "must start with unix:, tcp: or vsock:" \
	pep --policy "$TRASH/policy.yml" --listen http:1 --audit "$TRASH/a1"
test_expect_error 'tcp listen address by name' 2 "needs an IP address" \
	pep --policy "$TRASH/policy.yml" --listen tcp:localhost:1 --audit "$TRASH/a2"
test_expect_error 'bad --ready-fd' 2 "not an open descriptor" \
	pep --policy "$TRASH/policy.yml" --listen unix:x --audit a --ready-fd 77
test_expect_error 'bad --sandbox' 2 "not one of auto, required, off" \
	pep --policy "$TRASH/policy.yml" --listen unix:x --audit a --sandbox maybe
printf 'allow:\n  - "*"\n' >"$TRASH/bad.yml"
test_expect_error 'an invalid policy exits 3' 3 "bad.yml" \
	pep --policy "$TRASH/bad.yml" --listen "unix:$TRASH/never.sock" --audit "$TRASH/a3"
test_expect_success 'nothing listened for the invalid policy' '
	test ! -e "$TRASH/never.sock"
'
test_expect_error 'no audit log anywhere' 2 'no audit log' \
	pep --policy "$TRASH/policy.yml" --listen unix:x
test_expect_success 'the usage names every option' '
	"$PEXI" pep --help >out && grep -q -- "--ready-fd" out && grep -q "verify-audit" out
'

test_expect_success 'a stale socket file is replaced' '
	python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])" "$SOCK" &&
	test -S "$SOCK"
'
pep_start
test_expect_success 'the daemon listens, its socket is private' '
	test "$(stat -c %a "$SOCK")" = 600
'
test_expect_error 'a live socket is not taken over' 1 "in use by another process" \
	pep --policy "$TRASH/policy.yml" --listen "unix:$SOCK" --audit "$TRASH/a4"
test_expect_success 'a tcp listener on port 0 reports the port it got' '
	"$PEXI" pep --policy "$TRASH/policy.yml" --listen tcp:0 --audit "$TRASH/a5" >/dev/null 2>tcp.err &
	pid=$! && trap "kill $pid 2>/dev/null" EXIT && wait_for_text tcp.err "listening on tcp:127.0.0.1:" &&
	port=$(sed -n "s/^listening on tcp:127.0.0.1:\([0-9]*\)$/\1/p" tcp.err) &&
	python3 "$FC" "tcp:127.0.0.1:$port" hello t0700 >out && kill $pid &&
	grep -q "\"ok\": true" out
'
# AF_VSOCK binds here even without a transport to connect through (no vhost-vsock, no
# vsock_loopback), so the check is that the daemon binds and listens on it.
if python3 -c 'import socket; socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM).bind((socket.VMADDR_CID_ANY, 0))' 2>/dev/null; then
	test_expect_success 'a vsock listener binds next to a unix one' '
		"$PEXI" pep --policy "$TRASH/policy.yml" --listen "unix:$TRASH/v.sock" \
			--listen vsock:45123 --audit "$TRASH/a6" >/dev/null 2>v.err &
		pid=$! && trap "kill $pid 2>/dev/null" EXIT && wait_for_text v.err "listening on vsock:45123" &&
		grep -q "listening on unix:" v.err && kill $pid && wait $pid
	'
fi
test_expect_error 'a bad vsock port' 2 "bad port in listen address 'vsock:x'" \
	pep --policy "$TRASH/policy.yml" --listen vsock:x --audit "$TRASH/a7"
test_expect_success 'requests through the daemon fill the audit log' '
	for i in 1 2 3 4 5; do
		python3 "$FC" "unix:$SOCK" request GET "http://upstream.test:$UP_PORT/bytes/$i" >>out || exit 1
	done &&
	test "$(wc -l <"$TRASH/audit.jsonl")" -eq 5
'
kill -TERM "$PEP_PID"
pep_wait_exit
test_expect_success 'SIGTERM exits 0 and removes the socket' '
	test "$(cat "$TRASH/pep.rc")" = 0 && test ! -e "$SOCK"
'
test_expect_success 'verify-audit accepts the chain' '
	"$PEXI" pep verify-audit "$TRASH/audit.jsonl" >out &&
	grep -q "5 records, chain intact" out
'
test_expect_success 'an edited line is named by its number' '
	sed "3s/\"GET\"/\"PUT\"/" "$TRASH/audit.jsonl" >edited &&
	! cmp -s edited "$TRASH/audit.jsonl" &&
	rc=0 && "$PEXI" pep verify-audit edited 2>err || rc=$? &&
	test $rc -eq 4 && grep -q "line 3 does not match its hash" err
'
test_expect_success 'a deleted line is named by its number' '
	sed 4d "$TRASH/audit.jsonl" >deleted &&
	rc=0 && "$PEXI" pep verify-audit deleted 2>err || rc=$? &&
	test $rc -eq 4 && grep -q "line 4 has the wrong seq" err
'
test_expect_success 'a truncated log is named by its last line' '
	head -c -10 "$TRASH/audit.jsonl" >torn &&
	rc=0 && "$PEXI" pep verify-audit torn 2>err || rc=$? &&
	test $rc -eq 4 && grep -q "line 5 is incomplete" err
'
test_expect_success 'a restarted daemon continues the chain' '
	"$PEXI" pep --policy "$TRASH/policy.yml" --listen "unix:$TRASH/p2.sock" \
		--audit "$TRASH/audit.jsonl" --hosts-file "$TRASH/hosts" >/dev/null 2>p2.err &
	pid=$! && trap "kill $pid 2>/dev/null" EXIT && wait_for_text p2.err "listening on" &&
	python3 "$FC" "unix:$TRASH/p2.sock" request GET "http://upstream.test:$UP_PORT/bytes/1" >out &&
	kill $pid && wait $pid &&
	"$PEXI" pep verify-audit "$TRASH/audit.jsonl" >out && grep -q "6 records" out &&
	tail -1 "$TRASH/audit.jsonl" | grep -q "^{\"seq\":6,"
'
test_expect_success 'PEP_AUDIT_LOG names the log when --audit is absent' '
	PEP_AUDIT_LOG="$TRASH/env-audit.jsonl" "$PEXI" pep --policy "$TRASH/policy.yml" \
		--listen "unix:$TRASH/p3.sock" --hosts-file "$TRASH/hosts" >/dev/null 2>p3.err &
	pid=$! && trap "kill $pid 2>/dev/null" EXIT && wait_for_text p3.err "listening on" &&
	python3 "$FC" "unix:$TRASH/p3.sock" request GET "http://upstream.test:$UP_PORT/bytes/1" >out &&
	kill $pid && wait $pid && test "$(wc -l <"$TRASH/env-audit.jsonl")" -eq 1
'
test_done
