# Helpers for the `pexi up` tests (t08xx), sourced after lib.sh.
#
# standin_project DIR: a project whose build dir holds a sparse disk and a real cidata seed
# made by genisoimage (so the stand-in runner reads its instance-id with isoinfo), and a
# manifest selecting the avf backend with the stand-in runner from tests/fixtures.
require_programs python3 genisoimage isoinfo flock
export PEXI_AVF_RUNNER="$PEXI_SRC/tests/fixtures/avf-standin"

standin_project() { # DIR [INSTANCE_ID]
	mkdir -p "$1/.pexi/build" "$1/share" "$1/seed" &&
	truncate -s 64M "$1/.pexi/build/disk.raw" &&
	printf 'instance-id: %s\nlocal-hostname: box\n' "${2:-iid-standin-1}" >"$1/seed/meta-data" &&
	printf '#cloud-config\n' >"$1/seed/user-data" &&
	genisoimage -quiet -V cidata -J -R -o "$1/.pexi/build/seed.iso" \
		"$1/seed/meta-data" "$1/seed/user-data" &&
	cat >"$1/pexi.yml" <<YAML
name: box
arch: x86_64
base:
  url: file:///nonexistent.vhd
  sha256: 0000000000000000000000000000000000000000000000000000000000000000
vm:
  backend: avf
  shared_dir: share
  vsock_port: 5123
pep:
  allow: [example.com, "*.example.org"]
  deny: [bad.example.com]
  timeouts:
    connect: 3s
YAML
}

# boot_guest_fixture NAME: builds the bootable test guest (tests/fixtures/make-boot-guest)
# into $PEXI_BUILD/fixtures/NAME and sets FIX to it, or skips the test file when QEMU or
# the guest's parts are missing.
boot_guest_fixture() { # NAME
	require_programs qemu-system-x86_64 python3 sha256sum
	[ -x "$PEXI_SRC/tests/fixtures/make-boot-guest" ] || skip_all "needs tests/fixtures/make-boot-guest"
	[ -x "${PEXI_GUEST:-$PEXI_BUILD/pexi-guest}" ] || skip_all "needs $PEXI_BUILD/pexi-guest (make guest)"
	FIX=$PEXI_BUILD/fixtures/$1
	PEXI_BUILD=$PEXI_BUILD "$PEXI_SRC/tests/fixtures/make-boot-guest" "$FIX" >"$TRASH/fixture.out" 2>&1
	rc=$?
	[ "$rc" -ne 77 ] || skip_all "$(tail -n 1 "$TRASH/fixture.out")"
	[ "$rc" -eq 0 ] || { sed 's/^/# /' "$TRASH/fixture.out"; echo "# make-boot-guest failed"; exit 1; }
}

# state_field DIR KEY: one field of the instance's state.json, read by Python's json.
state_field() {
	python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))[sys.argv[2]]; print("" if v is None else v)' \
		"$1/.pexi/instances/box/state.json" "$2"
}

# Succeeds when no process with any of the given pids exists, waiting up to 5 s.
pids_gone() {
	for _ in $(seq 50); do
		alive=
		for p in "$@"; do
			[ -n "$p" ] && [ -d "/proc/$p" ] && ! grep -q '^State:.*Z' "/proc/$p/status" 2>/dev/null && alive=1
		done
		[ -z "$alive" ] && return 0
		sleep 0.1
	done
	echo "still alive: $*" >&2
	return 1
}

# Succeeds when the instance lock is free, as util-linux flock sees it.
lock_free() { # DIR
	flock -n -x "$1/.pexi/instances/box/lock" true
}

# Whatever a failed case left running is stopped when the test ends: the supervisor of any
# instance whose lock is still held is killed (its children die with it).
vm_cleanup() {
	for st in "$TRASH"/*/.pexi/instances/*/state.json; do
		[ -f "$st" ] || continue
		d=$(dirname "$st")
		flock -n -x "$d/lock" true 2>/dev/null && continue
		pid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["supervisor_pid"] or "")' "$st")
		[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
	done
	rm -rf "$TRASH"
}
trap vm_cleanup EXIT
