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
