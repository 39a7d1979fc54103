#!/bin/sh
# pexi build end to end on an Alpine-shaped fixture, served from a loopback HTTP server,
# checked with independent tools: qemu-img, sgdisk, e2fsck, dumpe2fs, debugfs, isoinfo,
# blkid and sha256sum.
. "$(dirname "$0")/lib.sh"
require_programs qemu-img sgdisk e2fsck dumpe2fs debugfs isoinfo xorriso blkid python3 sha256sum \
	mkfs.ext4 mkfs.vfat mcopy

FIX=$TRASH/fixture
build_fixture "$FIX" 200
VHD_SHA=$(sha256sum "$FIX/alpine-dynamic.vhd" | cut -d" " -f1)
ROOT_OFFSET=$((67584 * 512))

serve_dir "$FIX"
URL="http://127.0.0.1:$PORT/alpine-dynamic.vhd"

write_manifest() { # DIR [EXTRA-YAML]
	mkdir -p "$1"
	printf 'source file for the image\n' >"$1/motd.txt"
	manifest_head fixture "$URL" "$FIX/alpine-dynamic.vhd" >"$1/pexi.yml"
	cat >>"$1/pexi.yml" <<YAML
disk:
  size: 1G
boot:
  console: hvc0
cloud_init:
  datasource: nocloud
  user: alpine
  runcmd:
    - echo hello
files:
  - path: /etc/motd
    source: motd.txt
    mode: "0644"
  - path: /etc/pexi/greeting
    content: "hi: there\n"
    mode: "0600"
    uid: 1000
    gid: 1000
build:
  source_date_epoch: 1700000000
${2:-}
YAML
}

export XDG_CACHE_HOME=$TRASH/xdg
B=$TRASH/a/.pexi/build
write_manifest "$TRASH/a"

test_expect_success 'pexi build succeeds and writes the four outputs' '
	"$PEXI" build -f a/pexi.yml >build.out &&
	test -f "$B/disk.raw" && test -f "$B/seed.iso" && test -f "$B/build.json" &&
	test -f "$B/pexi.lock" && grep -q "^patch " build.out
'
test_expect_success 'qemu-img sees a raw image of the manifest size' '
	qemu-img info --output=json "$B/disk.raw" >info.json &&
	python3 -c "import json,sys; d=json.load(open(\"info.json\")); sys.exit(not (d[\"format\"]==\"raw\" and d[\"virtual-size\"]==1<<30))"
'
test_expect_success 'disk.raw stays sparse' '
	test $(du -k "$B/disk.raw" | cut -f1) -lt 102400
'
test_expect_success 'sgdisk -v finds no problem and the backup header is at the end' '
	sgdisk -v "$B/disk.raw" >v.out && grep -q "No problems found" v.out &&
	sgdisk -p "$B/disk.raw" >p.out &&
	grep -q "last usable sector is $(( (1<<30)/512 - 34 ))" p.out
'
test_expect_success 'the root partition kept its GUIDs and name and grew to the end' '
	sgdisk -i 2 "$B/disk.raw" >i.out &&
	grep -q "Partition unique GUID: 8D4E7A0C-3F5B-4C7D-9E9F-2A3B4C5D6E7F" i.out &&
	grep -q "Partition name: .root." i.out &&
	grep -q "First sector: 67584 " i.out &&
	last=$(sed -n "s/^Last sector: \([0-9]*\) .*/\1/p" i.out) &&
	test "$last" -gt $(( (1<<30)/512 - 2048 - 34 ))
'
test_expect_success 'e2fsck -fn finds the grown filesystem clean' '
	e2fsck -fn "$B/disk.raw?offset=$ROOT_OFFSET"
'
test_expect_success 'dumpe2fs shows the filesystem filling the partition' '
	dumpe2fs -h "$B/disk.raw?offset=$ROOT_OFFSET" 2>/dev/null >d.out &&
	blocks=$(sed -n "s/^Block count: *//p" d.out) &&
	test $((blocks * 4096)) -gt $(( (1<<30) - 40*1024*1024 ))
'
test_expect_success 'grub.cfg has console=hvc0 on every linux line and nothing else changed' '
	debugfs -R "cat /boot/grub/grub.cfg" "$B/disk.raw?offset=$ROOT_OFFSET" 2>/dev/null >grub.cfg &&
	test $(grep -c "^[[:space:]]*linux .*console=hvc0" grub.cfg) -eq 2 &&
	! grep -q "console=ttyS0" grub.cfg &&
	debugfs -R "cat /boot/grub/grub.cfg" "$FIX/alpine.raw?offset=$ROOT_OFFSET" 2>/dev/null |
		sed "s/console=ttyS0/console=hvc0/" >expected.cfg &&
	cmp expected.cfg grub.cfg
'
test_expect_success 'the NoCloud datasource config is in place' '
	debugfs -R "cat /etc/cloud/cloud.cfg.d/99_nocloud.cfg" "$B/disk.raw?offset=$ROOT_OFFSET" 2>/dev/null >nc.cfg &&
	grep -q "NoCloud" nc.cfg && grep -q "cidata" nc.cfg
'
test_expect_success 'files entries are written with their content, mode and owner' '
	debugfs -R "cat /etc/motd" "$B/disk.raw?offset=$ROOT_OFFSET" 2>/dev/null >motd &&
	cmp motd a/motd.txt &&
	debugfs -R "stat /etc/pexi/greeting" "$B/disk.raw?offset=$ROOT_OFFSET" 2>/dev/null >st &&
	grep -q "Mode:  0600" st && grep -q "User:  1000   Group:  1000" st
'
test_expect_success 'the seed is a cidata ISO' '
	isoinfo -d -i "$B/seed.iso" >iso.out && grep -q "^Volume id: cidata$" iso.out &&
	blkid -p -o value -s LABEL "$B/seed.iso" | grep -qx cidata
'
test_expect_success 'build.json records every stage and the output digests' '
	python3 - "$B/build.json" "$B/disk.raw" "$B/seed.iso" <<-PY
	import json, sys, hashlib
	d = json.load(open(sys.argv[1]))
	names = [s["name"] for s in d["stages"]]
	assert names == ["fetch", "convert", "grow", "fsgrow", "patch", "bake", "seed", "seal"], names
	def sha(p):
	    h = hashlib.sha256()
	    with open(p, "rb") as f:
	        for chunk in iter(lambda: f.read(1 << 20), b""):
	            h.update(chunk)
	    return h.hexdigest()
	assert d["outputs"]["disk.raw"]["sha256"] == sha(sys.argv[2])
	assert d["outputs"]["seed.iso"]["sha256"] == sha(sys.argv[3])
	assert d["inputs"]["base"]["sha256"] == "$VHD_SHA"
	PY
'
test_expect_success 'pexi.lock pins the base image digest' '
	grep -q "$VHD_SHA" "$B/pexi.lock"
'
test_expect_success 'an unchanged rebuild does no work and leaves the outputs alone' '
	before=$(stat -c "%i %Y" "$B/disk.raw" "$B/seed.iso" | tr "\n" " ") &&
	"$PEXI" build -f a/pexi.yml --json >re.json &&
	after=$(stat -c "%i %Y" "$B/disk.raw" "$B/seed.iso" | tr "\n" " ") &&
	test "$before" = "$after" &&
	python3 -c "import json; d=json.load(open(\"re.json\")); assert all(s[\"cached\"] for s in d[\"stages\"] if s[\"name\"] != \"seal\"), d"
'
test_expect_success 'a second clean build elsewhere is bit-identical' '
	write_manifest "$TRASH/b" &&
	"$PEXI" -q build -f b/pexi.yml &&
	cmp "$B/disk.raw" b/.pexi/build/disk.raw && cmp "$B/seed.iso" b/.pexi/build/seed.iso
'
test_expect_success 'SOURCE_DATE_EPOCH overrides the manifest and reaches every timestamp' '
	cp -r b g && rm -rf g/.pexi &&
	SOURCE_DATE_EPOCH=1800000000 "$PEXI" -q build -f g/pexi.yml &&
	! cmp -s b/.pexi/build/seed.iso g/.pexi/build/seed.iso &&
	xorriso -indev g/.pexi/build/seed.iso -pvd_info 2>/dev/null | grep -q "^Creation Time: 2027011508" &&
	debugfs -R "stat /etc/motd" "g/.pexi/build/disk.raw?offset=$ROOT_OFFSET" 2>/dev/null |
		grep -q "mtime: 0x6b49d200" &&
	SOURCE_DATE_EPOCH=1700000000 "$PEXI" -q build -f g/pexi.yml &&
	cmp b/.pexi/build/disk.raw g/.pexi/build/disk.raw
'
test_expect_success 'a template follows the manifest values it uses' '
	write_manifest "$TRASH/h" &&
	mkdir -p h/templates && printf "hello from {{ name }} on {{ arch }}\n" >h/templates/hello.tmpl &&
	/usr/bin/python3 - h/pexi.yml <<-PY &&
	import sys, yaml
	p = sys.argv[1]
	d = yaml.safe_load(open(p))
	d["files"].append({"path": "/etc/hello", "template": "hello.tmpl"})
	yaml.safe_dump(d, open(p, "w"))
	PY
	"$PEXI" -q build -f h/pexi.yml &&
	debugfs -R "cat /etc/hello" "h/.pexi/build/disk.raw?offset=$ROOT_OFFSET" 2>/dev/null |
		grep -qx "hello from fixture on x86_64" &&
	sed -i "s/^name: fixture/name: renamed/" h/pexi.yml &&
	"$PEXI" -q build -f h/pexi.yml &&
	debugfs -R "cat /etc/hello" "h/.pexi/build/disk.raw?offset=$ROOT_OFFSET" 2>/dev/null |
		grep -qx "hello from renamed on x86_64"
'
test_expect_success 'editing a files entry rebuilds from the cached grown image only' '
	printf "changed\n" >a/motd.txt &&
	"$PEXI" build -f a/pexi.yml --json >edit.json &&
	python3 -c "import json; d={s[\"name\"]: s[\"cached\"] for s in json.load(open(\"edit.json\"))[\"stages\"]}; assert d[\"convert\"] and d[\"fsgrow\"] and not d[\"patch\"], d" &&
	debugfs -R "cat /etc/motd" "$B/disk.raw?offset=$ROOT_OFFSET" 2>/dev/null | grep -qx changed
'
test_expect_success 'builds killed at any moment leave complete outputs; the next run completes' '
	old=$(sha256sum "$B/disk.raw" | cut -d" " -f1) &&
	sed -i "s/size: 1G/size: 2G/" a/pexi.yml && : >seen &&
	for delay in 0.05 0.2 0.4 0.8 1.5; do
		rm -rf "$B/stages" &&
		( "$PEXI" -q build -f a/pexi.yml & pid=$!; sleep $delay; kill -9 $pid; wait $pid; true ) &&
		sha256sum "$B/disk.raw" | cut -d" " -f1 >>seen || exit 1
	done &&
	"$PEXI" -q build -f a/pexi.yml &&
	new=$(sha256sum "$B/disk.raw" | cut -d" " -f1) &&
	qemu-img info "$B/disk.raw" | grep -q "virtual size: 2 GiB" &&
	! grep -v -e "$old" -e "$new" seen &&
	! ls -a "$B" "$B/stages" | grep -q "\.tmp\."
'
test_expect_success 'a wrong digest is refused with both digests and nothing is replaced' '
	good=$(sha256sum "$B/disk.raw" | cut -d" " -f1) &&
	write_manifest "$TRASH/c" && rm -rf "$XDG_CACHE_HOME" &&
	sed -i "s/sha256: .*/sha256: $(printf "%064d" 0)/" c/pexi.yml &&
	! "$PEXI" build -f c/pexi.yml 2>err && grep -q "$VHD_SHA" err &&
	grep -q "$(printf "%064d" 0)" err && test ! -e c/.pexi/build/disk.raw
'
test_expect_success 'a download dropped mid-way is resumed and the build completes' '
	write_manifest "$TRASH/d" && rm -rf "$XDG_CACHE_HOME" &&
	sed -i "s|url: .*|url: http://127.0.0.1:$PORT/drop-after/1000000/alpine-dynamic.vhd|" d/pexi.yml &&
	PEXI_FETCH_BACKOFF_MS=10 "$PEXI" -q build -f d/pexi.yml &&
	cmp b/.pexi/build/disk.raw d/.pexi/build/disk.raw &&
	grep -q "bytes=1000000-" "$TRASH/http.log"
'
test_expect_success 'a server error is reported with its status and leaves nothing' '
	write_manifest "$TRASH/e" && rm -rf "$XDG_CACHE_HOME" &&
	sed -i "s|url: .*|url: http://127.0.0.1:$PORT/status/404/alpine-dynamic.vhd|" e/pexi.yml &&
	! "$PEXI" build -f e/pexi.yml 2>err && grep -q "404" err &&
	test ! -e e/.pexi/build/disk.raw
'
test_expect_success 'a corrupt VHD is refused with the offset and the reason' '
	cp "$FIX/alpine-dynamic.vhd" "$FIX/corrupt.vhd" &&
	size=$(stat -c %s "$FIX/corrupt.vhd") &&
	printf "XXXX" | dd of="$FIX/corrupt.vhd" bs=1 seek=$((size - 512 + 64)) conv=notrunc 2>/dev/null &&
	write_manifest "$TRASH/f" &&
	sed -i -e "s|url: .*|url: http://127.0.0.1:$PORT/corrupt.vhd|" \
		-e "s|sha256: .*|sha256: $(sha256sum "$FIX/corrupt.vhd" | cut -d" " -f1)|" f/pexi.yml &&
	"$PEXI" build -f f/pexi.yml 2>err; test $? -eq 4 &&
	grep -q "offset $((size - 512 + 64))" err && grep -q "checksum" err && test ! -e f/.pexi/build/disk.raw
'
test_expect_error '--offline with an empty cache says so' 1 "offline" build -f c/pexi.yml --offline
test_expect_success 'build --plan lists the stages and changes nothing' '
	"$PEXI" build -f a/pexi.yml --plan >plan.out && grep -q "^fetch " plan.out &&
	"$PEXI" build -f a/pexi.yml --plan --json >plan.json &&
	python3 -c "import json; d=json.load(open(\"plan.json\")); assert \"manifest\" in d and \"plan\" in d"
'
test_done
