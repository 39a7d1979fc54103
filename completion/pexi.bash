# bash completion for pexi(1). Installed as share/bash-completion/completions/pexi; to try
# it from a checkout: . completion/pexi.bash
#
# Self-contained (it does not need the bash-completion package's helpers). The command
# and option lists mirror `pexi help CMD`; tests/cli/t0002-completion.sh fails when they
# drift apart.

_pexi_commands="build up down status logs pep browse validate help"

# Options of each command; those that take a value are listed again in _pexi_takes_value.
_pexi_opts_build="-f --file --plan --json --offline --frozen"
_pexi_opts_up="-f --file --name --timeout"
_pexi_opts_down="-f --file --name --force --timeout"
_pexi_opts_status="-f --file --name --json"
_pexi_opts_logs="-f --follow --file --name"
_pexi_opts_pep="--policy --listen --audit --ready-fd --ca-file --hosts-file --instance
	--workers --max-connections --max-queue --stall-timeout --idle-timeout --drain-timeout
	--sandbox"
_pexi_opts_browse="-f --file --name --socket --text --screenshot --timeout"
_pexi_opts_validate="-f --file --json"
_pexi_opts_help=""

# Adds the files and directories under "$1" (a prefix) to COMPREPLY; with a second
# argument, only files whose name ends in one of its |-separated suffixes.
_pexi_add_files() {
	local cur=$1 suffixes=${2:-} f IFS=$'\n'
	for f in $(compgen -f -- "$cur"); do
		if [[ -d $f ]]; then
			COMPREPLY+=("$f/")
		elif [[ -z $suffixes ]] || [[ "|$suffixes|" == *"|${f##*.}|"* ]]; then
			COMPREPLY+=("$f")
		fi
	done
	# Directories end in '/' and must not get a trailing space.
	compopt -o nospace -o filenames 2>/dev/null
	local c
	for c in "${COMPREPLY[@]}"; do
		[[ $c == */ ]] || { compopt +o nospace 2>/dev/null; break; }
	done
}

# Instance names: the directories under .pexi/instances beside the manifest in use.
_pexi_add_instances() {
	local cur=$1 dir=$2 d
	for d in "$dir"/.pexi/instances/*/; do
		[[ -d $d ]] || continue
		d=${d%/}
		d=${d##*/}
		[[ $d == "$cur"* ]] && COMPREPLY+=("$d")
	done
}

_pexi() {
	COMPREPLY=()
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
	local i cmd="" cmd_index=0 manifest=pexi.yml
	# bash splits --opt=value at '=' (COMP_WORDBREAKS): the option is two words back.
	if [[ $prev == = ]] && ((COMP_CWORD >= 2)); then
		prev=${COMP_WORDS[COMP_CWORD - 2]}
	elif [[ $cur == = ]]; then
		prev=${COMP_WORDS[COMP_CWORD - 1]}
		cur=""
	fi

	# The command is the first word after the global options.
	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		-*) ;;
		*)
			cmd=${COMP_WORDS[i]}
			cmd_index=$i
			break
			;;
		esac
	done
	if [[ -z $cmd ]]; then
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "-q --quiet -v --verbose --version -h --help" -- "$cur"))
		else
			COMPREPLY=($(compgen -W "$_pexi_commands" -- "$cur"))
		fi
		return 0
	fi

	# The manifest named so far (-f/--file), for instance names.
	for ((i = cmd_index + 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		--file) manifest=${COMP_WORDS[i + 1]} ;;
		--file=*) manifest=${COMP_WORDS[i]#--file=} ;;
		-f) [[ $cmd != logs ]] && manifest=${COMP_WORDS[i + 1]} ;;
		esac
	done
	local mdir=.
	[[ $manifest == */* ]] && mdir=${manifest%/*}

	# The value of the option before the cursor.
	case $prev in
	--file | --policy | --audit | --ca-file | --hosts-file | --screenshot | --socket)
		case $prev in
		--file) _pexi_add_files "$cur" "yml|yaml|example" ;;
		--screenshot) _pexi_add_files "$cur" "png" ;;
		*) _pexi_add_files "$cur" ;;
		esac
		return 0
		;;
	-f)
		if [[ $cmd != logs ]]; then
			_pexi_add_files "$cur" "yml|yaml|example"
			return 0
		fi
		;;
	--name | --instance)
		_pexi_add_instances "$cur" "$mdir"
		return 0
		;;
	--sandbox)
		COMPREPLY=($(compgen -W "auto required off" -- "$cur"))
		return 0
		;;
	--listen)
		COMPREPLY=($(compgen -W "unix: tcp:127.0.0.1: vsock:" -- "$cur"))
		compopt -o nospace 2>/dev/null
		return 0
		;;
	--timeout | --ready-fd | --workers | --max-connections | --max-queue | \
		--stall-timeout | --idle-timeout | --drain-timeout)
		return 0
		;;
	esac

	local opts_var=_pexi_opts_${cmd//-/_}
	local opts=${!opts_var-}
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$opts" -- "$cur"))
		return 0
	fi

	# Positional arguments.
	local nargs=0
	for ((i = cmd_index + 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		--file | --name | --timeout | --policy | --listen | --audit | --ready-fd | --ca-file | \
			--hosts-file | --instance | --workers | --max-connections | --max-queue | \
			--stall-timeout | --idle-timeout | --drain-timeout | --sandbox | --socket | \
			--screenshot)
			((i++))
			;;
		-f) [[ $cmd != logs ]] && ((i++)) ;;
		-*) ;;
		*) ((nargs++)) ;;
		esac
	done
	case $cmd in
	help)
		((nargs == 0)) && COMPREPLY=($(compgen -W "$_pexi_commands" -- "$cur"))
		;;
	logs)
		((nargs == 0)) && COMPREPLY=($(compgen -W "console pep audit supervisor" -- "$cur"))
		;;
	validate)
		((nargs == 0)) && _pexi_add_files "$cur" "yml|yaml|example"
		;;
	pep)
		if ((nargs == 0)); then
			COMPREPLY=($(compgen -W "verify-audit" -- "$cur"))
		elif [[ ${COMP_WORDS[cmd_index + 1]} == verify-audit ]] && ((nargs == 1)); then
			_pexi_add_files "$cur"
		fi
		;;
	esac
	return 0
}

complete -F _pexi pexi
