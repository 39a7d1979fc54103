# Shared helpers for the black-box tests in tests/cli (git's test style, TAP output).
# A test sources this file, calls test_expect_success / test_expect_failure_output for each
# case, and ends with test_done. Each case body runs in a subshell inside $TRASH, so a case
# cannot disturb the next one; its output goes to stderr, which the runner shows as TAP
# comments only when something fails.

set -u
PEXI_SRC=${PEXI_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
PEXI=${PEXI:-$PEXI_SRC/pexi}
PEXI_BUILD=${PEXI_BUILD:-$PEXI_SRC/build}
SHARED=${SHARED:-$PEXI_SRC/../shared}
export PEXI PEXI_SRC PEXI_BUILD SHARED NO_COLOR=1

TRASH=$(mktemp -d "${TMPDIR:-/tmp}/pexi-test.XXXXXX")
trap 'rm -rf "$TRASH"' EXIT
test_count=0
test_failed=0

# Skips the whole test file: the runner turns exit 77 into a TAP skip (a failure in CI).
skip_all() {
	echo "# $*"
	exit 77
}

# Skips unless each named program is installed.
require_programs() {
	for p in "$@"; do
		command -v "$p" >/dev/null 2>&1 || skip_all "needs '$p', which is not installed"
	done
}

# Builds the Alpine-shaped fixture disk (tests/fixtures/make-alpine-disk) of SIZE MiB into
# DIR, or skips the whole test file when the tools for it are missing.
build_fixture() { # DIR SIZE_MIB
	require_programs sgdisk mkfs.ext4 mkfs.vfat mcopy qemu-img sha256sum
	"$PEXI_SRC/tests/fixtures/make-alpine-disk" "$1" "$2" >/dev/null 2>&1 ||
		skip_all "cannot build the fixture disk in '$1'"
}

# Serves the files under DIR over loopback HTTP with tests/http/server.py (its request log
# in $TRASH/http.log, its fault-injection paths available) and sets PORT. The server lives
# while this shell holds fd 9, its stdin, open; skips the test file when it cannot start.
serve_dir() { # DIR
	mkfifo "$TRASH/srv.in"
	python3 "$PEXI_SRC/tests/http/server.py" --root "$1" --log "$TRASH/http.log" --timeout 1800 \
		<"$TRASH/srv.in" >"$TRASH/srv.out" 2>"$TRASH/srv.err" &
	exec 9>"$TRASH/srv.in"
	for _ in $(seq 50); do [ -s "$TRASH/srv.out" ] && break; sleep 0.1; done
	PORT=$(head -n 1 "$TRASH/srv.out")
	[ -n "$PORT" ] || skip_all "the test HTTP server did not start"
}

# Prints the head of a manifest: its name, arch and a base image at URL whose bytes are the
# local FILE (for the digest). Tests append the sections they need.
manifest_head() { # NAME URL FILE
	printf 'name: %s\narch: x86_64\nbase:\n  url: %s\n  sha256: %s\n' "$1" "$2" \
		"$(sha256sum "$3" | cut -d" " -f1)"
}

test_expect_success() {
	test_count=$((test_count + 1))
	if (cd "$TRASH" && eval "$2") >&2; then
		echo "ok $test_count - $1"
	else
		echo "not ok $test_count - $1"
		test_failed=$((test_failed + 1))
	fi
}

# Runs pexi with the remaining arguments and checks that it exits with status $2 and that
# its stderr contains the fixed string $3:  test_expect_error DESC STATUS TEXT ARGS...
test_expect_error() {
	desc=$1 status=$2 text=$3
	shift 3
	test_count=$((test_count + 1))
	(cd "$TRASH" && "$PEXI" "$@") >"$TRASH/.out" 2>"$TRASH/.err"
	rc=$?
	if [ "$rc" -eq "$status" ] && grep -qF -- "$text" "$TRASH/.err"; then
		echo "ok $test_count - $desc"
	else
		echo "not ok $test_count - $desc"
		echo "#   exit status $rc (expected $status); stderr:"
		sed 's/^/#   /' "$TRASH/.err"
		echo "#   expected stderr to contain: $text"
		test_failed=$((test_failed + 1))
	fi
}

test_done() {
	echo "1..$test_count"
	[ "$test_count" -gt 0 ] || { echo "# no test ran"; exit 1; }
	[ "$test_failed" -eq 0 ]
}
