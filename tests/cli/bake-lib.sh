# Setup shared by the offline bake tests (t04xx), sourced after lib.sh: the Alpine-shaped
# fixture disk and the signed fixture repository (tests/fixtures/make-apk-repo) served
# over loopback HTTP, a manifest writer, and debugfs on the image's root filesystem.
FIX=$TRASH/srv
build_fixture "$FIX" 200
"$PEXI_SRC/tests/fixtures/make-apk-repo" "$FIX/repo" >/dev/null 2>"$TRASH/gen.err" ||
	skip_all "make-apk-repo failed: $(tail -n 1 "$TRASH/gen.err")"
ROOT_OFFSET=$((67584 * 512))
KEYNAME=pexi-test-5f000001.rsa.pub

serve_dir "$FIX"
BASE="http://127.0.0.1:$PORT"
export XDG_CACHE_HOME=$TRASH/xdg

write_manifest() { # DIR PACKAGES [EXTRA-YAML]
	mkdir -p "$1"
	cp "$FIX/repo/keys/$KEYNAME" "$1/"
	manifest_head fixture "$BASE/alpine-dynamic.vhd" "$FIX/alpine-dynamic.vhd" >"$1/pexi.yml"
	cat >>"$1/pexi.yml" <<YAML
disk:
  size: 512M
packages:
  method: offline
  repositories:
    - $BASE/repo
  keys:
    - $KEYNAME
  add: [$2]
build:
  source_date_epoch: 1700000000
${3:-}
YAML
}

dbg() { # IMAGE COMMAND
	debugfs -R "$2" "$1?offset=$ROOT_OFFSET" 2>/dev/null
}
