#!/bin/sh
# The command line itself: help, version, dispatch, exit codes, message style.
. "$(dirname "$0")/lib.sh"

test_expect_success 'pexi --version prints the version' '
	"$PEXI" --version >out && grep -Eq "^pexi [0-9]+\.[0-9]+\.[0-9]+$" out
'
test_expect_success 'pexi help lists every command' '
	"$PEXI" help >out &&
	for c in build up down status logs pep validate help; do grep -q "^   $c " out || exit 1; done
'
test_expect_success 'pexi --help lists a command for every src/cli/cmd-*.c' '
	"$PEXI" --help >out && n=0 &&
	for f in "$PEXI_SRC"/src/cli/cmd-*.c; do
		c=${f##*/cmd-}; c=${c%.c}; n=$((n + 1))
		grep -q "^   $c " out || { echo "pexi --help does not list $c"; exit 1; }
	done && test "$n" -ge 8
'
test_expect_success 'pexi help CMD shows every long option of src/cli/cmd-CMD.c' '
	for f in "$PEXI_SRC"/src/cli/cmd-*.c; do
		c=${f##*/cmd-}; c=${c%.c}
		"$PEXI" help "$c" >usage || exit 1
		for o in $(grep -o "{\"[a-z][a-z-]*\", *[a-z]*_argument" "$f" | cut -d\" -f2); do
			grep -q -- "--$o" usage && continue
			# -f stands for --file (and for --follow in pexi logs).
			case $o in file | follow) grep -q -- "-f" usage && continue ;; esac
			echo "pexi help $c does not show --$o"; exit 1
		done
	done
'
test_expect_success 'pexi --help documents the exit codes' '
	"$PEXI" --help >out && grep -q "3 invalid manifest" out
'
test_expect_success 'pexi CMD --help prints the usage on stdout and exits 0' '
	"$PEXI" build --help >out && grep -q "^usage: pexi build" out
'
test_expect_success 'pexi help CMD is the same as pexi CMD --help' '
	"$PEXI" help validate >a && "$PEXI" validate --help >b && cmp a b
'
test_expect_error 'no command is a usage error' 2 'usage: pexi'
test_expect_error 'an unknown command is a usage error' 2 \
	"error: 'frobnicate' is not a pexi command" frobnicate
test_expect_error 'an unknown global option is a usage error' 2 \
	"error: unknown option '--frob'" --frob
test_expect_error 'help for an unknown command fails' 2 "'nope' is not a pexi command" help nope
for cmd in up down status logs; do
	test_expect_error "pexi $cmd without a manifest says so" 3 \
		"error: cannot read manifest 'pexi.yml'" "$cmd"
done
test_expect_error 'pexi build names an unknown option' 2 "error: unknown option '--frob'" build --frob
test_expect_error 'pexi build -f needs a file name' 2 "option '-f' needs a file name" build -f
test_expect_success 'errors are printed once, without colour when NO_COLOR is set' '
	"$PEXI" up 2>err; test $(grep -c "^error: " err) -eq 1 && ! grep -q "$(printf "\033")" err
'
test_expect_success '-q and -v are accepted before the command' '
	"$PEXI" -q help >/dev/null && "$PEXI" -v help >/dev/null
'
test_done
