#!/bin/sh
# pexi validate: the shipped example is valid; each kind of bad manifest gets its precise
# git-style message (file:line:col), printed once, with exit status 3. JSON output is
# checked with Python's json module, not with pexi.
. "$(dirname "$0")/lib.sh"

# Recipes come from the checkout whatever the binary's location.
PEXI_DATADIR=$PEXI_SRC
export PEXI_DATADIR
SHA=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3) || skip_all "needs python3, which is not installed"

# A valid base section every bad manifest below starts from (lines 1-3).
write_min() {
	printf 'base:\n  url: https://example.org/a.vhd\n  sha256: %s\n' "$SHA" >"$TRASH/$1"
}

test_expect_success 'the shipped example is valid (-f)' '
	"$PEXI" validate -f "$PEXI_SRC/pexi.yml.example" >out &&
	test "$(cat out)" = "manifest '\''$PEXI_SRC/pexi.yml.example'\'' is valid"
'
test_expect_success 'the default file is pexi.yml' '
	cp "$PEXI_SRC/pexi.yml.example" pexi.yml &&
	"$PEXI" validate >out && test "$(cat out)" = "manifest '\''pexi.yml'\'' is valid"
'
test_expect_success 'a bare file name works too' '
	"$PEXI" validate "$PEXI_SRC/pexi.yml.example" >out && grep -q "is valid$" out
'
test_expect_success 'recipes beside the manifest are found without PEXI_DATADIR' '
	mkdir -p side/recipes && write_min side/m.yml &&
	printf "recipe: mine\n" >>side/m.yml &&
	printf "vm: {cpus: 3}\n" >side/recipes/mine.yml &&
	env -u PEXI_DATADIR "$PEXI" validate --json -f side/m.yml >out &&
	"$PY" -c "import json,sys; d=json.load(open(\"out\")); sys.exit(0 if d[\"manifest\"][\"vm\"][\"cpus\"] == 3 and d[\"manifest\"][\"recipes\"] == [\"mine\"] else 1)"
'
test_expect_success 'a recipe'\''s relative files source resolves beside the recipe' '
	mkdir -p rs/recipes && write_min rs/m.yml &&
	printf "recipe: withsrc\n" >>rs/m.yml &&
	printf "files:\n  - path: /etc/x\n    source: payload.txt\n" >rs/recipes/withsrc.yml &&
	echo data >rs/recipes/payload.txt &&
	env -u PEXI_DATADIR "$PEXI" validate --json -f rs/m.yml >out &&
	"$PY" -c "import json,sys; d=json.load(open(\"out\")); sys.exit(0 if d[\"manifest\"][\"files\"][0][\"source\"].endswith(\"rs/recipes/payload.txt\") else 1)"
'
test_expect_success '--json prints the resolved manifest, read back by Python' '
	"$PEXI" validate --json -f "$PEXI_SRC/pexi.yml.example" >out &&
	"$PY" - <<-\PYEOF
	import json
	d = json.load(open("out"))
	m = d["manifest"]
	assert d["valid"] is True, d
	assert m["name"] == "sandbox" and m["arch"] == "aarch64", m
	assert m["packages"]["add"] == ["firefox", "nodejs", "curl", "socat"], m["packages"]
	assert m["boot"]["console"] == "hvc0"
	assert m["cloud_init"]["datasource"] == "nocloud"
	assert m["disk"]["size"] == 2 * 1024**3
	assert m["vm"]["cpus"] == 2 and m["vm"]["memory"] == 1024**3
	assert m["vm"]["vsock_port"] == 5000 and m["vm"]["shared_dir"] == "./workspace"
	assert m["pep"]["allow"] == ["example.com"]
	assert m["pep"]["audit_log"] == "workspace/audit.jsonl"
	assert m["recipes"] == ["alpine-minimal", "pexi-browser", "alpine-firefox"]
	PYEOF
'

test_expect_error 'a missing manifest is a clear error' 3 \
	"error: cannot read manifest 'nope.yml': No such file or directory" validate -f nope.yml
test_expect_error 'an unknown option is a usage error' 2 "unknown option '--frob'" \
	validate --frob
test_expect_error '-f without a file is a usage error' 2 "option '-f' needs a file name" \
	validate -f

# Each case: the file's content after the three valid base lines, and the message expected.
check_bad() {
	desc=$1 body=$2 msg=$3
	write_min bad.yml
	printf "$body" >>"$TRASH/bad.yml"
	test_expect_error "$desc" 3 "error: manifest 'bad.yml':$msg" validate -f bad.yml
}
check_bad 'unknown key with a did-you-mean' 'pakages:\n  add: [x]\n' \
	"4:1: unknown key 'pakages' (did you mean 'packages'?)"
check_bad 'unknown nested key' 'vm:\n  memroy: 1G\n' \
	"5:3: unknown key 'memroy' in 'vm' (did you mean 'memory'?)"
check_bad 'wrong type' 'vm:\n  cpus: many\n' "5:9: 'vm.cpus' must be an integer (got 'many')"
check_bad 'a list where a mapping belongs' 'pep: [example.com]\n' \
	"4:6: 'pep' must be a mapping, not a list"
check_bad 'bad size' 'disk:\n  size: 2Q\n' \
	"5:9: 'disk.size': invalid size '2Q': unknown unit 'Q'"
check_bad 'duplicate key' 'vm: {cpus: 1}\nvm: {cpus: 2}\n' \
	"5:1: duplicate key 'vm' (first defined at 4:1)"
check_bad 'YAML syntax error' 'vm:\n  cpus: 1\n memory: 1G\n' \
	"6:2: invalid YAML: did not find expected key"
check_bad 'alias refused' 'a: &x 1\nname: *x\n' "5:7: YAML alias '*x' is not supported"
check_bad 'unset environment variable' 'build: {dir: "${PEXI_T0100_UNSET}"}\n' \
	"4:14: 'build.dir': environment variable 'PEXI_T0100_UNSET' is not set"

printf 'base:\n  url: gopher://example.org/a\n  sha256: %s\n' "$SHA" >"$TRASH/url.yml"
test_expect_error 'bad URL scheme' 3 \
	"error: manifest 'url.yml':2:8: 'base.url': unsupported URL scheme 'gopher'" validate -f url.yml
printf 'base:\n  url: https://example.org/a\n  sha256: 1234\n' >"$TRASH/sha.yml"
test_expect_error 'sha256 not 64 hex digits' 3 \
	"error: manifest 'sha.yml':3:11: 'base.sha256' must be 64 hexadecimal digits (got 4 characters)" \
	validate -f sha.yml
: >"$TRASH/empty.yml"
test_expect_error 'empty file' 3 \
	"error: manifest 'empty.yml': file is empty (expected a mapping of sections)" validate -f empty.yml
head -c 10485760 /dev/zero | tr '\0' '#' >"$TRASH/big.yml"
test_expect_error 'a 10 MB file' 3 \
	"error: manifest 'big.yml': file is too large (10485760 bytes; the limit is 1048576 bytes, 1 MiB)" \
	validate -f big.yml
printf 'name: a\n\0\1\2' >"$TRASH/bin.yml"
test_expect_error 'a binary file' 3 \
	"error: manifest 'bin.yml':2:1: binary file: contains a NUL byte at offset 8" validate -f bin.yml
write_min rec.yml
printf 'recipe: typo\n' >>"$TRASH/rec.yml"
mkdir -p "$TRASH/recipes"
printf 'boot:\n  consle: hvc0\n' >"$TRASH/recipes/typo.yml"
test_expect_error 'an error inside a recipe names the recipe file' 3 \
	"recipes/typo.yml':2:3: unknown key 'consle' in 'boot' (did you mean 'console'?)" \
	validate -f rec.yml
write_min nf.yml
printf 'recipe: nosuch\n' >>"$TRASH/nf.yml"
test_expect_error 'a missing recipe' 3 \
	"error: manifest 'nf.yml':4:9: recipe 'nosuch' not found (looked in" validate -f nf.yml

test_expect_success 'an error is printed once, on stderr only' '
	! "$PEXI" validate -f sha.yml >out 2>err &&
	test $(wc -l <err) -eq 1 && test ! -s out
'
test_expect_success '--json reports an invalid manifest on stdout too' '
	! "$PEXI" validate --json -f sha.yml >out 2>err &&
	"$PY" -c "import json,sys; d=json.load(open(\"out\")); sys.exit(0 if d[\"valid\"] is False and \"64 hexadecimal\" in d[\"error\"] else 1)"
'
test_done
