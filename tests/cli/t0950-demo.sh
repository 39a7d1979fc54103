#!/bin/sh
# make demo's script end to end (examples/demo/run), as a newcomer runs it: a local base
# image and signed repository, pexi build with an offline bake, pexi up under TCG, the
# guest running the baked package and trying three fetches, the audit log, pexi down.
# Checked from what the demo prints and leaves behind, and with independent readers.
. "$(dirname "$0")/lib.sh"
require_programs qemu-system-x86_64 python3 sha256sum openssl
[ -x "$PEXI_BUILD/pexi-guest" ] || skip_all "needs $PEXI_BUILD/pexi-guest (make guest)"

D=$TRASH/demo
P=$D/project
test_expect_success 'the demo runs to the end' "
	DEMO_DIR='$D' NO_COLOR=1 sh '$PEXI_SRC/examples/demo/run' >'$TRASH/demo.out' 2>&1 ||
		{ tail -40 '$TRASH/demo.out'; false; }
"
test_expect_success 'all seven steps were announced and timed' "
	test \"\$(grep -c '^\[[1-7]/7\]' '$TRASH/demo.out')\" -eq 7 &&
	test \"\$(grep -c 'done in [0-9]*s' '$TRASH/demo.out')\" -eq 7
"
test_expect_success 'the offline bake installed bar and its dependencies' "
	grep -q 'installed 4 packages' '$TRASH/demo.out' &&
	python3 - '$P/.pexi/build/pexi.lock' <<-PY
	import json, sys
	pkgs = {p['name']: p['version'] for p in json.load(open(sys.argv[1]))['packages']}
	assert pkgs == {'bar': '1.0-r0', 'foo': '1.0-r0', 'libfoo': '1.0.0-r0', 'musl': '1.2.5-r0'}, pkgs
	PY
"
test_expect_success 'the baked package runs in the booted guest (foo 1.0, as bar needs foo<2)' "
	grep -aq 'runcmd foo 1.0' '$P/.pexi/instances/demo/console.log' &&
	grep -q '^foo 1.0' '$P/workspace/foo.txt'
"
test_expect_success 'the guest has no network interface but lo' "
	grep -q '^network interfaces: lo$' '$P/workspace/net.txt'
"
test_expect_success 'the allowed fetch arrived, the denied and metadata ones were refused' "
	grep -q 'allowed fetch exit=0' '$TRASH/demo.out' &&
	grep -q 'denied fetch exit=3' '$TRASH/demo.out' &&
	grep -q 'metadata fetch exit=3' '$TRASH/demo.out' &&
	cmp '$D/origin/hello.html' '$P/workspace/hello.html'
"
test_expect_success 'the audit log holds the three decisions and its chain verifies (hashlib)' "
	python3 - '$P/.pexi/instances/demo/audit.jsonl' <<-PY
	import hashlib, json, sys
	raw = [l.rstrip(b'\n') for l in open(sys.argv[1], 'rb')]
	lines = [json.loads(l) for l in raw]
	assert [l['decision'] for l in lines] == ['allow', 'deny', 'deny'], lines
	assert lines[1]['code'] == 'denied_by_policy' and lines[2]['code'] == 'ssrf_blocked', lines
	prev = '0' * 64
	for r, l in zip(raw, lines):
	    assert l['prev_hash'] == prev
	    body = r[:r.rindex(b',\"hash\":')]
	    assert hashlib.sha256(body).hexdigest() == l['hash'], l
	    prev = l['hash']
	PY
"
test_expect_success 'pexi down left the instance stopped and its lock free' "
	'$PEXI' status -f '$P/pexi.yml' | grep -q '^state *stopped' &&
	flock -n -x '$P/.pexi/instances/demo/lock' true
"
test_done
