#!/bin/sh
# make install honours PREFIX and DESTDIR, and the installed pexi finds its recipes and
# templates through PEXI_DATADIR. The installed man pages render without a warning under
# two independent formatters (mandoc and groff), and they document every command, option
# and manifest key pexi itself knows (its --help and pexi.schema.json), so they cannot
# drift from the program.
. "$(dirname "$0")/lib.sh"
require_programs make mandoc groff python3

test_expect_success 'make install puts the binary, schema, recipes and templates under DESTDIR/PREFIX' '
	make -s -C "$PEXI_SRC" BUILD="$PEXI_BUILD" install DESTDIR="$TRASH/root" PREFIX=/opt/pexi >/dev/null &&
	test -x root/opt/pexi/bin/pexi &&
	test -f root/opt/pexi/share/pexi/pexi.schema.json &&
	test -f root/opt/pexi/share/pexi/recipes/alpine-firefox.yml &&
	test -f root/opt/pexi/share/pexi/templates/motd.tmpl
'
test_expect_success 'nothing is installed outside DESTDIR' '
	test ! -e /opt/pexi/bin/pexi
'
test_expect_success 'the installed pexi validates the example with the installed recipes' '
	mkdir elsewhere && cp "$PEXI_SRC/pexi.yml.example" elsewhere/pexi.yml &&
	(cd elsewhere && PEXI_DATADIR="$TRASH/root/opt/pexi/share/pexi" "$TRASH/root/opt/pexi/bin/pexi" validate)
'
test_expect_success 'make install puts pexi(1) and pexi.yml(5) under MANDIR' '
	test -f root/opt/pexi/share/man/man1/pexi.1 &&
	test -f root/opt/pexi/share/man/man5/pexi.yml.5 &&
	cmp root/opt/pexi/share/man/man1/pexi.1 "$PEXI_SRC/man/pexi.1"
'
test_expect_success 'make install puts the bash and zsh completions where the shells look' '
	cmp root/opt/pexi/share/bash-completion/completions/pexi "$PEXI_SRC/completion/pexi.bash" &&
	cmp root/opt/pexi/share/zsh/site-functions/_pexi "$PEXI_SRC/completion/_pexi"
'
test_expect_success 'MANDIR overrides where the man pages go' '
	make -s -C "$PEXI_SRC" BUILD="$PEXI_BUILD" install DESTDIR="$TRASH/root2" PREFIX=/usr \
		MANDIR=/usr/man >/dev/null &&
	test -f root2/usr/man/man1/pexi.1 && test -f root2/usr/man/man5/pexi.yml.5
'
for page in man1/pexi.1 man5/pexi.yml.5; do
	test_expect_success "mandoc lints $page without a warning" '
		mandoc -T lint -W warning root/opt/pexi/share/man/'$page' >lint 2>&1 ||
		{ cat lint; exit 1; }; test ! -s lint
	'
	test_expect_success "groff renders $page without a warning" '
		groff -mandoc -Tutf8 -ww -P-cbou root/opt/pexi/share/man/'$page' >page 2>warn &&
		{ ! test -s warn || { cat warn; exit 1; }; } &&
		grep -q "^NAME" page && grep -q "^SEE ALSO" page
	'
done
test_expect_success 'man(1) finds the installed pages through MANPATH' '
	! command -v man >/dev/null ||
	{ MANPATH="$TRASH/root/opt/pexi/share/man" MANWIDTH=80 man -P cat pexi.yml >out 2>/dev/null &&
	  grep -q "allow_addresses" out; }
'
test_expect_success 'pexi(1) documents every command and long option of pexi --help' '
	"$PEXI" help | sed -n "s/^   \([a-z][a-z-]*\) .*/\1/p" >commands && test -s commands &&
	while read -r c; do
		grep -q "^\.Cm $c\( \|$\)" "$PEXI_SRC/man/pexi.1" || { echo "no .Cm $c"; exit 1; }
		"$PEXI" help "$c" | grep -o -- "--[a-z][a-z-]*" | sort -u >opts
		while read -r o; do
			grep -q -- "Fl -${o#--}\( \|$\)" "$PEXI_SRC/man/pexi.1" ||
				{ echo "pexi $c $o is not in pexi.1"; exit 1; }
		done <opts
	done <commands
'
test_expect_success 'the README shows every command of pexi --help' '
	"$PEXI" help | sed -n "s/^   \([a-z][a-z-]*\) .*/\1/p" | grep -v "^help$" >commands &&
	while read -r c; do
		grep -q "^pexi $c" "$PEXI_SRC/README.md" || { echo "README: no pexi $c"; exit 1; }
	done <commands
'
test_expect_success 'the manifests shown in the README and pexi.yml(5) are valid' '
	python3 - "$PEXI_SRC/README.md" "$PEXI_SRC/man/pexi.yml.5" <<-\EOF &&
	import sys
	readme = open(sys.argv[1]).read().split("## The manifest in one screen")[1]
	block = readme.split("```yaml\n")[1].split("```")[0]
	open("readme.yml", "w").write(block.replace("<64 hex digits>", "a" * 64))
	page = open(sys.argv[2]).read().split(".Sh EXAMPLES")[1].split(".Bd -literal -offset indent\n")
	open("page.yml", "w").write(page[1].split(".Ed")[0].replace("0123...cdef", "b" * 64))
	open("policy.yml", "w").write(page[2].split(".Ed")[0])
	EOF
	PEXI_DATADIR="$PEXI_SRC" "$PEXI" validate readme.yml &&
	PEXI_DATADIR="$PEXI_SRC" "$PEXI" validate page.yml &&
	grep -q "^pep:" readme.yml && grep -q "^allow:" policy.yml &&
	{ timeout 2 "$PEXI" pep --policy policy.yml --listen "unix:$TRASH/p.sock" \
		--audit audit.jsonl 2>pep.err; test $? -eq 124; } &&
	grep -q "listening on unix:" pep.err
'
test_expect_success 'pexi.yml(5) documents every key of pexi.schema.json' '
	python3 - "$PEXI_SRC/pexi.schema.json" "$PEXI_SRC/man/pexi.yml.5" <<-\EOF
	import json, re, sys
	schema = json.load(open(sys.argv[1]))
	page = open(sys.argv[2]).read()
	documented = set(re.findall(r"Ic ([a-z_0-9]+) :", page)) | set(re.findall(r"^\.Ss ([a-z_]+)", page, re.M)) | set(re.findall(r"^\.It Ic ([a-z_]+)$", page, re.M))
	missing = []
	def walk(node, prefix):
	    for key, sub in node.get("properties", {}).items():
	        if key not in documented:
	            missing.append(prefix + key)
	        walk(sub, prefix + key + ".")
	        items = sub.get("items")
	        if isinstance(items, dict):
	            walk(items, prefix + key + "[].")
	walk(schema, "")
	if missing:
	    sys.exit("not in pexi.yml.5: " + ", ".join(missing))
	EOF
'
test_done
