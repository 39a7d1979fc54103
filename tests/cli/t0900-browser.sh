#!/bin/sh
# The sandboxed browser on the host, no VM: Firefox and pexi-agent run in a network
# namespace holding only loopback (tests/browser/sandbox-run); the real PEP (`pexi pep`)
# and a real origin site run outside. Every request Firefox makes must reach the origin
# through the PEP and show up in the audit log one for one; denied hosts get the denial
# page; WebSockets and service workers are refused; Firefox looks up no name; killing the
# agent recovers within seconds.
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || skip_all "needs root for unshare -n -m (loopback-only namespace)"
require_programs unshare socat python3 node ip
FIREFOX=$(command -v firefox-esr || command -v firefox) || skip_all "needs firefox-esr"
unshare -n true 2>/dev/null || skip_all "unshare -n is not permitted here"

B=$PEXI_SRC/tests/browser
W=$TRASH/w
mkdir -p "$W"
pids=""
cleanup() {
	for p in $pids; do kill -s TERM -- "-$p" 2>/dev/null; done
	sleep 0.5
	for p in $pids; do kill -s KILL -- "-$p" 2>/dev/null; done
	rm -rf "$TRASH"
}
trap cleanup EXIT

# Starts a command in its own process group, so cleanup takes its children too.
spawn() { # LOG CMD...
	log=$1
	shift
	setsid "$@" >"$log" 2>&1 &
	pids="$pids $!"
}

wait_for() { # SECONDS CMD...: polls CMD until it succeeds
	n=$(($1 * 5))
	shift
	while [ "$n" -gt 0 ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
		n=$((n - 1))
	done
	return 1
}

ctl() { python3 "$B/agentctl.py" "$W/agent.sock" "$@"; }

spawn "$W/origin.out" python3 "$B/origin.py" "$W/port" "$W/origin.log"
wait_for 10 test -s "$W/port" || skip_all "origin server did not start"
PORT=$(cat "$W/port")

cat >"$W/policy.yml" <<EOP
allow:
  - site.test
  - other.test
allow_addresses:
  - "127.0.0.1:$PORT"
methods: [GET, HEAD, POST]
EOP
printf 'site.test 127.0.0.1\nother.test 127.0.0.1\ndenied.test 127.0.0.1\n' >"$W/hosts"
spawn "$W/pep.log" "$PEXI" pep --policy "$W/policy.yml" --listen "unix:$W/pep.sock" \
	--audit "$W/audit.jsonl" --hosts-file "$W/hosts"
wait_for 10 test -S "$W/pep.sock" || { cat "$W/pep.log" >&2; exit 1; }

# The VM's virtio-serial port pexi.browser and QEMU's socket for it (browser.sock), as a pty
# and a unix socket: how `pexi browse` reaches the agent in a real instance.
spawn "$W/vport.log" python3 "$B/vport.py" "$W/vport" "$W/browser.sock"
wait_for 10 test -S "$W/browser.sock" || { cat "$W/vport.log" >&2; exit 1; }
export PEXI_CONTROL_PORT="$W/vport"
spawn "$W/browser.log" "$B/sandbox-run" "$W" "$W/pep.sock"
if ! wait_for 90 ctl '{"cmd":"ping"}'; then
	tail -30 "$W/browser.log" >&2
	echo "Bail out! Firefox and the agent did not become ready"
	exit 1
fi
SITE=http://site.test:$PORT

test_expect_success 'the allowed page loads through the agent and the PEP' "
	ctl '{\"cmd\":\"navigate\",\"url\":\"$SITE/\"}' &&
	ctl '{\"cmd\":\"evaluate\",\"expression\":\"window.pexiDone.then(JSON.stringify)\"}' >'$W/results' &&
	grep -q 'data-ok' '$W/results'
"

probe() { # NAME EXPECTED: the page's probe result must equal EXPECTED
	python3 -c "import json,sys; r=json.loads(json.loads(open('$W/results').read())['result']['value']);
v=r.get('$1'); print('$1 =', v, file=sys.stderr); sys.exit(0 if v == sys.argv[1] else 1)" "$2"
}
UPLOAD_SHA=$(python3 -c "import hashlib; print(hashlib.sha256(bytes(range(256))).hexdigest())")

test_expect_success 'fetch and XHR go through' "probe fetch data-ok && probe xhr 200:xhr-ok"
test_expect_success 'a binary POST body arrives exactly' "probe upload $UPLOAD_SHA &&
	grep -q '\"body_sha256\": \"$UPLOAD_SHA\"' '$W/origin.log'"
test_expect_success 'a redirect is followed (by the PEP)' "probe redirect /landing:landed ||
	probe redirect /redirect:landed"
test_expect_success 'a cookie set by the site is sent back' "probe cookie pexi=yes"
test_expect_success 'a denied host answers 403 with the policy code' "probe denied 403:denied_by_policy"
test_expect_success 'WebSockets are refused' "probe websocket refused"
test_expect_success 'service workers are unavailable' "probe serviceworker unavailable"
test_expect_success 'shared workers are unavailable' "probe sharedworker undefined"
test_expect_success 'the cross-site iframe was fetched through the PEP' "
	grep -q '\"path\": \"/frame.html\", \"host\": \"other.test:$PORT\"' '$W/origin.log'
"

test_expect_success 'the screenshot shows the page (green logo at the top left, white beside it)' "
	ctl '{\"cmd\":\"screenshot\",\"file\":\"shot.png\"}' &&
	python3 '$B/pngpixel.py' '$W/shot.png' 10 10 | grep -q ' 0 160 0$' &&
	python3 '$B/pngpixel.py' '$W/shot.png' 300 20 | grep -q ' 255 255 255$'
"

test_expect_success 'a popup opened by the page goes through the PEP too' "
	ctl '{\"cmd\":\"evaluate\",\"user_activation\":true,\"expression\":\"window.open(\\\"/popup.html\\\") ? 1 : 0\"}' &&
	sleep 2 && grep -q '\"path\": \"/popup.html\"' '$W/origin.log'
"

test_expect_success 'navigating to a denied host shows the denial page' "
	ctl '{\"cmd\":\"navigate\",\"url\":\"http://denied.test/\"}' &&
	ctl '{\"cmd\":\"text\"}' >'$W/denied.txt' &&
	grep -q 'Blocked by the sandbox policy' '$W/denied.txt' &&
	grep -q 'denied_by_policy' '$W/denied.txt'
"

test_expect_success 'every origin request has exactly one allowed audit line, and back' "
	python3 '$B/check-audit.py' '$W/audit.jsonl' '$W/origin.log' $PORT >&2 &&
	! grep -q 'denied.test' '$W/origin.log'
"

test_expect_success 'the audit chain verifies' "'$PEXI' pep verify-audit '$W/audit.jsonl'"

test_expect_success 'Firefox looked up no name (only localhost, if anything)' "
	! grep -v -x 'localhost' '$W/dns.log'
"

test_expect_success 'pexi browse through the virtio-serial port prints the text and a screenshot' "
	'$PEXI' browse --socket '$W/browser.sock' --text --screenshot '$W/browse.png' '$SITE/' >'$W/browse.txt' &&
	grep -q 'cross-site\\|pending\\|data-ok' '$W/browse.txt' &&
	python3 '$B/pngpixel.py' '$W/browse.png' 10 10 | grep -q ' 0 160 0$'
"
test_expect_success 'pexi browse through the virtio-serial port shows the denial page text' "
	'$PEXI' browse --socket '$W/browser.sock' --text http://denied.test/ >'$W/browse-denied.txt' &&
	grep -q 'denied_by_policy' '$W/browse-denied.txt'
"

agent_restarted() { # OLD_PID
	[ "$(cat "$W/run/agent.pid" 2>/dev/null)" != "$1" ]
}
kill_agent_and_recover() {
	old=$(cat "$W/run/agent.pid") &&
		kill -KILL "$old" &&
		wait_for 30 agent_restarted "$old" &&
		wait_for 60 ctl '{"cmd":"ping"}' &&
		ctl "{\"cmd\":\"navigate\",\"url\":\"$SITE/\"}" &&
		ctl '{"cmd":"text"}' | grep -q 'cross-site frame\|data-ok\|pending'
}
test_expect_success 'killing the agent restarts Firefox and the agent within seconds' kill_agent_and_recover

test_done
