#!/bin/sh
# The PEP's real resolver (getaddrinfo on a helper thread) gives up at the request's
# deadline when DNS never answers: the daemon runs in a private mount namespace whose
# /etc/resolv.conf names a DNS server that swallows every query (tests/pep/dns_blackhole.py),
# so glibc would wait its own 30 s timeout; the guest must get http_error within the
# policy's total timeout, and other requests must still be served meanwhile.
. "$(dirname "$0")/lib.sh"
require_programs python3 unshare mount
[ "$(id -u)" -eq 0 ] || skip_all "needs root for a private mount namespace"
unshare -m true 2>/dev/null || skip_all "cannot make a mount namespace here"

FC="$PEXI_SRC/tests/pep/frameclient.py"
mkfifo "$TRASH/dns.in"
python3 "$PEXI_SRC/tests/pep/dns_blackhole.py" 127.0.0.153 "$TRASH/dns.count" <"$TRASH/dns.in" >"$TRASH/dns.out" 2>&1 &
exec 7>"$TRASH/dns.in"
i=0
while ! grep -q ready "$TRASH/dns.out" 2>/dev/null; do
	i=$((i + 1))
	[ $i -lt 100 ] || { cat "$TRASH/dns.out"; skip_all "cannot bind a DNS port on 127.0.0.153"; }
	sleep 0.05
done
printf 'nameserver 127.0.0.153\noptions timeout:30 attempts:1\n' >"$TRASH/resolv.conf"
cat >"$TRASH/policy.yml" <<EOF
allow: ['slow.pexi-test.example', 'localhost']
timeouts: {connect: 1s, total: 2s}
EOF
unshare -m sh -c 'mount --bind "$1" /etc/resolv.conf && shift && exec "$@"' sh \
	"$TRASH/resolv.conf" "$PEXI" pep --policy "$TRASH/policy.yml" \
	--listen "unix:$TRASH/pep.sock" --audit "$TRASH/audit.jsonl" 2>"$TRASH/pep.log" &
pep=$!
i=0
while [ ! -S "$TRASH/pep.sock" ]; do
	i=$((i + 1))
	[ $i -lt 200 ] || { cat "$TRASH/pep.log"; kill $pep; exit 1; }
	sleep 0.05
done

test_expect_success 'a name DNS never answers is an http_error within the total timeout' '
	start=$(date +%s%N) &&
	python3 "$FC" "unix:$TRASH/pep.sock" request GET http://slow.pexi-test.example/ >ans &&
	end=$(date +%s%N) &&
	ms=$(( (end - start) / 1000000 )) && echo "answered in $ms ms" && cat ans &&
	grep -q "\"code\": \"http_error\"" ans && [ "$ms" -lt 3500 ] && [ "$ms" -ge 1500 ]
'
test_expect_success 'the query did reach the (silent) DNS server' '
	[ "$(cat "$TRASH/dns.count")" -ge 1 ]
'
test_expect_success 'two stuck lookups at once both end within the timeout' '
	start=$(date +%s%N) &&
	{ python3 "$FC" "unix:$TRASH/pep.sock" request GET http://slow.pexi-test.example/a >a1 & } &&
	python3 "$FC" "unix:$TRASH/pep.sock" request GET http://slow.pexi-test.example/b >a2 &&
	wait &&
	end=$(date +%s%N) && ms=$(( (end - start) / 1000000 )) && echo "both in $ms ms" &&
	grep -q http_error a1 && grep -q http_error a2 && [ "$ms" -lt 4000 ]
'
test_expect_success 'the audit line says the resolution timed out' '
	tail -n 1 "$TRASH/audit.jsonl" >last && cat last &&
	grep -q "\"code\":\"http_error\"" last && grep -q "timed out" last
'
kill -TERM $pep
wait $pep
exec 7>&-
test_done
