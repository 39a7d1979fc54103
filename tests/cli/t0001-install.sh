#!/bin/sh
# make install honours PREFIX and DESTDIR, and the installed pexi finds its recipes and
# templates through PEXI_DATADIR.
. "$(dirname "$0")/lib.sh"
require_programs make

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
test_done
