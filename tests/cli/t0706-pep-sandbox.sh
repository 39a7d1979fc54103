#!/bin/sh
# The daemon drops what it does not need: no_new_privs always and a seccomp filter (both
# read from /proc/PID/status, the kernel's own account), Landlock where the kernel has it;
# --sandbox required fails closed where a mechanism is missing and --sandbox off keeps
# only no_new_privs. The sandboxed daemon still resolves, fetches and reloads its policy.
. "$(dirname "$0")/lib.sh"
. "$PEXI_SRC/tests/pep/daemon.sh"

upstream_start
write_policy "$TRASH/policy.yml"
pep_start --sandbox auto
export PEP_PID

test_expect_success 'no_new_privs and seccomp filter mode, per /proc' '
	grep -q "^NoNewPrivs:[[:space:]]*1$" /proc/$PEP_PID/status &&
	grep -q "^Seccomp:[[:space:]]*2$" /proc/$PEP_PID/status
'
test_expect_success 'the sandboxed daemon fetches and reloads' '
	python3 "$FC" "unix:$SOCK" request GET "http://upstream.test:$UP_PORT/bytes/10" >out &&
	grep -q "\"status\": 200" out &&
	cp "$TRASH/policy.yml" p.new && mv p.new "$TRASH/policy.yml" &&
	kill -HUP $PEP_PID && wait_for_text "$TRASH/pep.err" "reloaded"
'
test_expect_success 'the sandboxed daemon resolves through the system resolver (nsswitch, /etc/hosts)' '
	grep -q "^127\.0\.0\.1[[:space:]].*localhost" /etc/hosts || { echo "no localhost in /etc/hosts" >&2; exit 1; }
	printf "allow:\n  - localhost\nallow_addresses:\n  - \"127.0.0.1:%s\"\n" "$UP_PORT" >sys.yml &&
	"$PEXI" pep --policy sys.yml --listen "unix:$TRASH/sys.sock" --audit sys.jsonl \
		--sandbox auto >/dev/null 2>sys.err &
	pid=$! && trap "kill $pid 2>/dev/null" EXIT && wait_for_text sys.err "listening on" &&
	python3 "$FC" "unix:$TRASH/sys.sock" request GET "http://localhost:$UP_PORT/bytes/4" >out &&
	grep -q "\"status\": 200" out && grep -q "\"resolved\":\[\"127.0.0.1\"" sys.jsonl
'
kill "$PEP_PID"
pep_wait_exit
if grep -q "sandbox: no_new_privs, landlock and seccomp applied" "$TRASH/pep.err"; then
	test_expect_success '--sandbox required starts where landlock and seccomp work' '
		"$PEXI" pep --policy "$TRASH/policy.yml" --listen "unix:$TRASH/r.sock" \
			--audit "$TRASH/r.jsonl" --sandbox required >/dev/null 2>r.err &
		pid=$! && trap "kill $pid 2>/dev/null" EXIT && wait_for_text r.err "listening on" && kill $pid && wait $pid
	'
else
	test_expect_success '--sandbox required fails closed without landlock' '
		rc=0 && "$PEXI" pep --policy "$TRASH/policy.yml" --listen "unix:$TRASH/r.sock" \
			--audit "$TRASH/r.jsonl" --sandbox required 2>r.err || rc=$? &&
		test $rc -eq 1 && grep -q "sandbox required but" r.err
	'
fi
test_expect_success '--sandbox off: no_new_privs only' '
	"$PEXI" pep --policy "$TRASH/policy.yml" --listen "unix:$TRASH/o.sock" \
		--audit "$TRASH/o.jsonl" --sandbox off >/dev/null 2>o.err &
	pid=$! && trap "kill $pid 2>/dev/null" EXIT && wait_for_text o.err "listening on" &&
	grep -q "^NoNewPrivs:[[:space:]]*1$" /proc/$pid/status &&
	grep -q "^Seccomp:[[:space:]]*0$" /proc/$pid/status &&
	kill $pid && wait $pid
'
test_done
