#!/bin/sh
# The end-to-end test of issue 7 with the QEMU backend under TCG (KVM here aborts, so pexi
# falls back with a warning): tests/fixtures/make-boot-guest builds an Alpine-shaped guest
# from Debian packages; a loopback server serves it as a VHD to `pexi build`; `pexi up`
# boots it with the real PEP. The guest proves it has no network interface but lo,
# fetches an allowed URL of a loopback upstream (tests/pep/upstream.py) through the PEP
# into the 9p share, is refused a denied host and the metadata address; `pexi down` asks
# it to power off over the channel, leaves no process, and the audit log holds exactly
# those three requests. A supervisor killed during a second boot takes QEMU and the PEP
# with it. Processes are checked in /proc by the pids state.json records.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vm-lib.sh"
unset PEXI_PEP_PROGRAM PEXI_AVF_RUNNER
boot_guest_fixture t0815

# Two loopback servers: one serves the base image to pexi build, the other is the
# upstream the guest fetches from (its log must hold only what the PEP let through). Each
# lives while this shell holds its stdin FIFO open.
start_upstream() { # NAME ROOT FD
	mkfifo "$TRASH/$1.in"
	python3 "$PEXI_SRC/tests/pep/upstream.py" --log "$TRASH/$1.log" \
		--ready-file "$TRASH/$1.json" --root "$2" <"$TRASH/$1.in" >/dev/null 2>"$TRASH/$1.err" &
	eval "exec $3>\"\$TRASH/$1.in\""
	for _ in $(seq 200); do [ -s "$TRASH/$1.json" ] && break; sleep 0.05; done
	[ -s "$TRASH/$1.json" ] || skip_all "the loopback server '$1' did not start"
}
port_of() {
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["http"][0])' "$TRASH/$1.json"
}
head -c 3000 /dev/urandom | base64 >"$TRASH/payload"
start_upstream images "$FIX" 5
start_upstream upstream "$TRASH" 6
IMG_PORT=$(port_of images)
UP_PORT=$(port_of upstream)

P=$TRASH/p
mkdir -p "$P/share"
export XDG_CACHE_HOME=$TRASH/xdg
manifest_head box "http://127.0.0.1:$IMG_PORT/file/guest.vhd" "$FIX/guest.vhd" >"$P/pexi.yml"
cat >>"$P/pexi.yml" <<YAML
disk:
  size: 256M
boot:
  console: hvc0
  kernel_args: [panic=-1]
vm:
  backend: qemu
  cpus: 1
  memory: 512M
  shared_dir: share
cloud_init:
  datasource: nocloud
  runcmd:
    - ls /sys/class/net >/workspace/net
    - pexi-guest fetch http://localhost:$UP_PORT/file/payload >/workspace/fetched; echo allowed-exit=\$?
    - pexi-guest fetch http://denied.test/; echo denied-exit=\$?
    - pexi-guest fetch http://169.254.169.254/latest/meta-data/; echo metadata-exit=\$?
pep:
  allow: [localhost]
  allow_addresses: ["127.0.0.1:$UP_PORT"]
build:
  source_date_epoch: 1700000000
YAML

"$PEXI" -q build -f "$P/pexi.yml" >"$TRASH/build.out" 2>&1 || {
	sed 's/^/# /' "$TRASH/build.out"
	echo "# pexi build failed"
	exit 1
}

test_expect_success 'pexi build fetched the base image over loopback' '
	grep -q "/file/guest.vhd" "$TRASH/images.log"
'
test_expect_success 'pexi up boots the guest (TCG here) and returns on its hello' '
	"$PEXI" up --timeout 900 -f "$P/pexi.yml" >"$TRASH/up.out" 2>"$TRASH/up.err" ||
		{ cat "$TRASH/up.err"; false; }
	cat "$TRASH/up.out" "$TRASH/up.err" &&
	grep -q "the guest said hello" "$TRASH/up.out" &&
	case "$(state_field "$P" accel)" in tcg | kvm) ;; *) false ;; esac &&
	if test -w /dev/vhost-vsock; then want=vsock; else want=virtio-serial; fi &&
	test "$(state_field "$P" channel)" = $want &&
	test "$(state_field "$P" ready_by)" = hello
'
test_expect_success 'KVM is used only where it works; TCG instead comes with a warning' '
	if test "$(state_field "$P" accel)" = kvm; then
		! grep -q "KVM is not usable" "$TRASH/up.err"
	else
		grep -q "KVM is not usable (.*): falling back to TCG" "$TRASH/up.err"
	fi
'
test_expect_success 'the hello carried the instance-id the seed holds (isoinfo reads it)' '
	isoinfo -R -i "$P/.pexi/build/seed.iso" -x /meta-data >meta-data &&
	iid=$(sed -n "s/^instance-id: *//p" meta-data | tr -d "\"") &&
	test -n "$iid" && test "$(state_field "$P" instance_id)" = "$iid"
'
VM=$(state_field "$P" vm_pid)
PEP=$(state_field "$P" pep_pid)
SUP=$(state_field "$P" supervisor_pid)
test_expect_success 'QEMU runs with -nodefaults, -nic none and no network backend' '
	tr "\0" "\n" </proc/$VM/cmdline >argv &&
	grep -qx -- -nodefaults argv && grep -qx -- -nic argv && grep -qx none argv &&
	! grep -q -- "-netdev\|virtio-net\|e1000\|hostfwd" argv &&
	{ grep -q "virtserialport,.*name=pexi.pep" argv || grep -q "^vhost-vsock-pci,guest-cid=" argv; }
'
for _ in $(seq 600); do grep -aq "^@@pexi ready" "$P/.pexi/instances/box/console.log" && break; sleep 0.5; done
test_expect_success 'the guest has no network interface but lo' '
	test "$(cat "$P/share/net")" = lo
'
test_expect_success 'the allowed URL came through the PEP into the share byte for byte' '
	grep -aq "allowed-exit=0" "$P/.pexi/instances/box/console.log" &&
	cmp "$TRASH/payload" "$P/share/fetched"
'
test_expect_success 'the denied host and the metadata address were refused by the PEP' '
	grep -aq "denied-exit=3" "$P/.pexi/instances/box/console.log" &&
	grep -aq "metadata-exit=3" "$P/.pexi/instances/box/console.log"
'
test_expect_success 'the upstream saw exactly the allowed request' '
	test $(wc -l <"$TRASH/upstream.log") -eq 1 && grep -q "/file/payload" "$TRASH/upstream.log"
'
test_expect_success 'pexi status and pexi logs read the running instance' '
	"$PEXI" status -f "$P/pexi.yml" | grep -q "^state *running" &&
	"$PEXI" logs --file "$P/pexi.yml" console | grep -q "^@@pexi ready"
'
test_expect_success 'pexi down: the guest powers off over the channel and nothing is left' '
	"$PEXI" down -f "$P/pexi.yml" 2>down.err &&
	grep -q "the guest powered off when asked over the channel" down.err &&
	pids_gone $SUP $PEP $VM && lock_free "$P"
'
test_expect_success 'the audit log holds exactly the three requests' '
	python3 - "$P/.pexi/instances/box/audit.jsonl" "$UP_PORT" <<-PY
	import json, sys
	lines = [json.loads(l) for l in open(sys.argv[1])]
	assert len(lines) == 3, lines
	hosts = [(l["host"], l["decision"]) for l in lines]
	assert hosts[0] == ("localhost", "allow") and lines[0]["status"] == 200, lines[0]
	assert lines[0]["port"] == int(sys.argv[2]) and lines[0]["path"] == "/file/payload", lines[0]
	assert hosts[1][0] == "denied.test" and hosts[1][1] != "allow", lines[1]
	assert hosts[2][0] == "169.254.169.254" and hosts[2][1] != "allow", lines[2]
	assert all(l["instance"] == "box" for l in lines), lines
	prev = "0" * 64
	for l in lines:
	    assert l["prev_hash"] == prev, l
	    prev = l["hash"]
	PY
'
test_expect_success 'a supervisor killed while QEMU boots takes QEMU and the PEP with it' '
	("$PEXI" up --timeout 900 -f "$P/pexi.yml" >up2.out 2>up2.err; echo $? >up2.rc) &
	for _ in $(seq 200); do
		test -n "$(state_field "$P" vm_pid 2>/dev/null)" && break; sleep 0.1
	done &&
	VM2=$(state_field "$P" vm_pid) && PEP2=$(state_field "$P" pep_pid) &&
	SUP2=$(state_field "$P" supervisor_pid) &&
	test -n "$VM2" && test -d /proc/$VM2 && test -d /proc/$PEP2 &&
	kill -KILL $SUP2 &&
	pids_gone $SUP2 $VM2 $PEP2 && lock_free "$P" &&
	for _ in $(seq 50); do test -f up2.rc && break; sleep 0.1; done &&
	test "$(cat up2.rc)" = 1 && grep -q "died before reporting" up2.err
'
test_done
