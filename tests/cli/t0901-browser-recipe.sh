#!/bin/sh
# The pexi-browser recipe layer (used by alpine-firefox) puts the agent, its supervisor,
# the Firefox profile and policies and the OpenRC service into the image, and enables the
# service in the default runlevel: checked in the built image with debugfs, against the
# template files byte for byte.
. "$(dirname "$0")/lib.sh"
require_programs debugfs e2fsck python3 sha256sum mkfs.ext4

FIX=$TRASH/fixture
build_fixture "$FIX" 200
ROOT_OFFSET=$((67584 * 512))

serve_dir "$FIX"

export XDG_CACHE_HOME=$TRASH/xdg
mkdir -p "$TRASH/m"
manifest_head browser "http://127.0.0.1:$PORT/alpine-dynamic.vhd" "$FIX/alpine-dynamic.vhd" \
	>"$TRASH/m/pexi.yml"
printf 'recipe: pexi-browser\ndisk:\n  size: 1G\n' >>"$TRASH/m/pexi.yml"
DISK=$TRASH/m/.pexi/build/disk.raw

test_expect_success 'pexi build with the pexi-browser recipe succeeds' "
	'$PEXI' build -f '$TRASH/m/pexi.yml'
"

image_file_matches() { # GUEST_PATH TEMPLATE MODE
	debugfs -R "dump $1 $TRASH/out" "$DISK?offset=$ROOT_OFFSET" 2>/dev/null &&
		cmp "$TRASH/out" "$PEXI_SRC/templates/$2" &&
		debugfs -R "stat $1" "$DISK?offset=$ROOT_OFFSET" 2>/dev/null >"$TRASH/st" &&
		grep -q "Mode:  0$3" "$TRASH/st"
}

test_expect_success 'the agent is installed byte for byte and executable' \
	"image_file_matches /usr/local/lib/pexi/pexi-agent.mjs agent/pexi-agent.mjs 755"
test_expect_success 'the Firefox-and-agent supervisor is installed' \
	"image_file_matches /usr/local/lib/pexi/pexi-browser agent/pexi-browser 755"
test_expect_success 'the hermetic profile is installed' \
	"image_file_matches /usr/local/lib/pexi/firefox/user.js firefox/user.js 644"
test_expect_success 'the enterprise policies are where Alpine Firefox reads them' \
	"image_file_matches /usr/lib/firefox/distribution/policies.json firefox/policies.json 644"
test_expect_success 'the OpenRC service is installed' \
	"image_file_matches /etc/init.d/pexi-browser openrc/pexi-browser 755"
test_expect_success 'the service is enabled in the default runlevel' "
	debugfs -R 'stat /etc/runlevels/default/pexi-browser' '$DISK?offset=$ROOT_OFFSET' 2>/dev/null >'$TRASH/ln' &&
	grep -q 'Type: symlink' '$TRASH/ln' &&
	grep -q 'Fast link dest: \"/etc/init.d/pexi-browser\"' '$TRASH/ln'
"
test_expect_success 'e2fsck -fn finds the filesystem clean' "e2fsck -fn '$DISK?offset=$ROOT_OFFSET'"
test_expect_success 'the policies file is valid JSON and disables service workers' "
	python3 -c 'import json,sys; p=json.load(open(sys.argv[1]))[\"policies\"];
sys.exit(0 if p[\"Preferences\"][\"dom.serviceWorkers.enabled\"][\"Value\"] is False else 1)' \
		'$PEXI_SRC/templates/firefox/policies.json'
"
test_done
