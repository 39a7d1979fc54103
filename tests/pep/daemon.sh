# Helpers for the black-box tests of the PEP daemon (tests/cli/t07xx), sourced after
# tests/cli/lib.sh: a recording loopback upstream (tests/pep/upstream.py), a policy that
# opens exactly that upstream, and `pexi pep` started in the background on a unix socket.
# Processes are started at the top level of a test (not inside a case's subshell) so their
# pids outlive the case; pep_cleanup kills what is still running.

require_programs python3
FC=$PEXI_SRC/tests/pep/frameclient.py
SOCK=$TRASH/pep.sock
PEP_PID=
UP_PID=
PYTHONPATH=$PEXI_SRC/tests/pep
export FC SOCK PYTHONPATH

pep_cleanup() {
	[ -n "$PEP_PID" ] && kill "$PEP_PID" 2>/dev/null
	[ -n "$UP_PID" ] && kill "$UP_PID" 2>/dev/null
	rm -rf "$TRASH"
}
trap pep_cleanup EXIT

# Starts the upstream; sets UP_PORT. It lives as long as its stdin is open: a fifo whose
# writer (fd 7) this shell holds until it exits.
upstream_start() {
	mkfifo "$TRASH/upstream.in"
	python3 "$PEXI_SRC/tests/pep/upstream.py" --log "$TRASH/upstream.log" \
		--ready-file "$TRASH/upstream.json" --root "$TRASH" "$@" \
		<"$TRASH/upstream.in" >/dev/null 2>"$TRASH/upstream.err" &
	UP_PID=$!
	exec 7>"$TRASH/upstream.in"
	i=0
	while [ ! -s "$TRASH/upstream.json" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
	[ -s "$TRASH/upstream.json" ] || skip_all "the test upstream did not start"
	UP_PORT=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["http"][0])' \
		"$TRASH/upstream.json")
	export UP_PORT
}

# Writes a policy allowing upstream.test (resolved through the hosts file to 127.0.0.1)
# and opening exactly the upstream's address. Extra lines are appended.
write_policy() { # FILE [EXTRA-YAML]
	printf 'allow:\n  - upstream.test\nallow_addresses:\n  - "127.0.0.1:%s"\n%s' \
		"$UP_PORT" "${2:-}" >"$1"
	printf 'upstream.test 127.0.0.1\n' >"$TRASH/hosts"
}

# Starts pexi pep with the policy $TRASH/policy.yml, the socket $SOCK, the audit log
# $TRASH/audit.jsonl and any extra options; waits until it listens. Sets PEP_PID.
pep_start() {
	rm -f "$TRASH/pep.err"
	"$PEXI" pep --policy "$TRASH/policy.yml" --listen "unix:$SOCK" \
		--audit "$TRASH/audit.jsonl" --hosts-file "$TRASH/hosts" "$@" \
		>/dev/null 2>"$TRASH/pep.err" &
	PEP_PID=$!
	i=0
	while ! grep -q "^listening on unix:" "$TRASH/pep.err" 2>/dev/null && [ $i -lt 200 ]; do
		kill -0 "$PEP_PID" 2>/dev/null || break
		sleep 0.05
		i=$((i + 1))
	done
	grep -q "^listening on unix:" "$TRASH/pep.err" || {
		cat "$TRASH/pep.err" >&2
		return 1
	}
}

# Waits up to 10 s for the daemon to exit; its status goes to $TRASH/pep.rc.
pep_wait_exit() {
	i=0
	while kill -0 "$PEP_PID" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
	wait "$PEP_PID"
	echo $? >"$TRASH/pep.rc"
	PEP_PID=
}

# Waits up to 5 s for FILE to contain PATTERN.
wait_for_text() { # FILE PATTERN
	i=0
	while ! grep -q -- "$2" "$1" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
	grep -q -- "$2" "$1"
}
