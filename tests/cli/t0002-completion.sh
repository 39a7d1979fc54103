#!/bin/sh
# Shell completion: completion/pexi.bash runs in bash and completion/_pexi in a real zsh
# completion system (driven through zsh/zpty), and both offer what pexi itself accepts:
# every command of `pexi --help`, every long option of `pexi help CMD`, the log names of
# `pexi help logs`. A command or option added to pexi without its completion fails here.
. "$(dirname "$0")/lib.sh"
require_programs bash zsh

BASH_COMP="$PEXI_SRC/completion/pexi.bash"
ZSH_COMP="$PEXI_SRC/completion/_pexi"

# Prints bash's candidates for the words given (the last one is being completed), sorted,
# space-separated.
bash_complete() {
	bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _pexi
		printf "%s\n" "${COMPREPLY[@]}" | sort | tr "\n" " "' bash "$BASH_COMP" "$@"
}

# Writes a small driver that starts an interactive zsh on a pseudo-terminal, loads the
# completion system with completion/ first in fpath, records every candidate handed to
# compadd into a file, and types the given line followed by TAB.
cat >"$TRASH/zcomplete.zsh" <<'EOF'
zmodload zsh/zpty || exit 1
zpty z zsh -f -i
zpty -w z "fpath=($1 \$fpath); autoload -Uz compinit; compinit -u -D"
zpty -w z "compadd() { local -a h; builtin compadd -A h \"\$@\"; print -rl -- \$h >>$2; builtin compadd \"\$@\"; }"
zpty -n -w z "$3"$'\t'
local i chunk
for i in {1..100}; do
	sleep 0.1
	while zpty -r -t z chunk; do :; done
	[[ -s $2 ]] && break
done
sleep 0.3
zpty -d z
EOF

# Prints zsh's candidates for a command line (completed at its end), sorted, space-separated.
zsh_complete() {
	rm -f "$TRASH/hits"
	zsh -f "$TRASH/zcomplete.zsh" "$PEXI_SRC/completion" "$TRASH/hits" "$1" >/dev/null 2>&1
	sort -u "$TRASH/hits" 2>/dev/null | grep -v '^$' | tr '\n' ' '
}

# expect DESC GOT WANT
expect() {
	if [ "$2" = "$3" ]; then return 0; fi
	echo "$1: got '$2', want '$3'"
	return 1
}

# A project directory to complete in: manifests, other files, an instance.
mkdir -p "$TRASH/proj/.pexi/instances/box1" "$TRASH/proj/.pexi/instances/box2" "$TRASH/proj/sub"
touch "$TRASH/proj/pexi.yml" "$TRASH/proj/other.yaml" "$TRASH/proj/notes.txt"

"$PEXI" --help | sed -n 's/^   \([a-z][a-z-]*\) .*/\1/p' >"$TRASH/commands"

test_expect_success 'pexi --help lists commands' '
	test "$(wc -l <commands)" -ge 9
'
test_expect_success 'the bash completion offers exactly the commands of pexi --help' '
	expect "pexi <TAB>" "$(bash_complete pexi "")" "$(sort commands | tr "\n" " ")"
'
test_expect_success 'the zsh completion offers exactly the commands of pexi --help' '
	expect "pexi <TAB>" "$(zsh_complete "pexi ")" "$(sort commands | tr "\n" " ")"
'
test_expect_success 'both completions know every long option of every command' '
	while read -r c; do
		"$PEXI" help "$c" | grep -o -- "--[a-z][a-z-]*" | sort -u >opts
		got=$(bash_complete pexi "$c" --)
		while read -r o; do
			case " $got " in *" $o "*) ;; *) echo "bash: pexi $c $o missing"; exit 1 ;; esac
			grep -q -- "$o[=[]" "$ZSH_COMP" || { echo "zsh: pexi $c $o missing"; exit 1; }
		done <opts
	done <commands
'
test_expect_success 'both completions offer the log names pexi logs accepts' '
	want=$("$PEXI" help logs | sed -n "s/.*logs \[\([a-z|]*\)\].*/\1/p" | tr "|" "\n" | sort | tr "\n" " ") &&
	test -n "$want" &&
	expect bash "$(bash_complete pexi logs "")" "$want" &&
	expect zsh "$(zsh_complete "pexi logs ")" "$want"
'
test_expect_success 'bash: a command prefix, a global option before the command' '
	expect "pexi b" "$(bash_complete pexi b)" "browse build " &&
	expect "pexi -q st" "$(bash_complete pexi -q st)" "status " &&
	expect "pexi --v" "$(bash_complete pexi --v)" "--verbose --version "
'
test_expect_success 'bash: -f of build names manifests and directories, not other files' '
	cd proj && expect "build -f" "$(bash_complete pexi build -f "")" ".pexi/ other.yaml pexi.yml sub/ "
'
test_expect_success 'bash: --file=VALUE is completed like --file VALUE' '
	cd proj && expect "build --file=" "$(bash_complete pexi build --file = "")" ".pexi/ other.yaml pexi.yml sub/ "
'
test_expect_success 'bash: --policy and --audit complete any file' '
	cd proj && expect "--policy n" "$(bash_complete pexi pep --policy n)" "notes.txt " &&
	expect "--audit o" "$(bash_complete pexi pep --audit o)" "other.yaml "
'
test_expect_success 'bash: -f of logs is --follow, so the log names still follow it' '
	expect "logs -f" "$(bash_complete pexi logs -f "")" "audit console pep supervisor "
'
test_expect_success 'bash: --name offers the instances beside the manifest' '
	cd proj && expect "up --name" "$(bash_complete pexi up --name "")" "box1 box2 " &&
	cd .. && expect "-f proj/pexi.yml --name" \
		"$(bash_complete pexi down -f proj/pexi.yml --name b)" "box1 box2 "
'
test_expect_success 'bash: pep --sandbox values, pep verify-audit, help COMMAND' '
	expect "--sandbox" "$(bash_complete pexi pep --sandbox "")" "auto off required " &&
	expect "pep v" "$(bash_complete pexi pep v)" "verify-audit " &&
	expect "help l" "$(bash_complete pexi help l)" "logs "
'
test_expect_success 'zsh parses _pexi' '
	zsh -n "$ZSH_COMP" && zsh -fc "fpath=($PEXI_SRC/completion \$fpath); autoload +X _pexi"
'
test_expect_success 'zsh: option values and instances' '
	expect "--sandbox=" "$(zsh_complete "pexi pep --sandbox=")" "auto off required " &&
	(cd proj && expect "up --name" "$(zsh_complete "pexi up --name ")" "box1 box2 ") &&
	expect "help b" "$(zsh_complete "pexi help b")" "browse build "
'
test_expect_success 'zsh: -f of build names manifests and directories, not other files' '
	cd proj && expect "build -f" "$(zsh_complete "pexi build -f ")" "other.yaml pexi.yml sub "
'
test_done
