#!/usr/bin/env python3
"""Writes the seed corpus of fuzz-apk-package: 'T' inputs (two plain tars, see the target)
built with Python's tarfile: a normal package, PAX xattrs and checksums, links, a '..' entry,
a truncated control tar, and a full gzip-compressed .apk."""
import gzip, io, os, struct, sys, tarfile

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "apk-package")
os.makedirs(out, exist_ok=True)

def tar(entries, cut=False):
    b = io.BytesIO()
    t = tarfile.open(fileobj=b, mode="w", format=tarfile.PAX_FORMAT)
    for e in entries:
        ti = tarfile.TarInfo(e["name"])
        ti.mtime = 1700000000
        ti.mode = e.get("mode", 0o644)
        ti.type = e.get("type", tarfile.REGTYPE)
        ti.linkname = e.get("link", "")
        ti.pax_headers = e.get("pax", {})
        data = e.get("data", b"")
        ti.size = len(data) if ti.type == tarfile.REGTYPE else 0
        t.addfile(ti, io.BytesIO(data) if ti.size else None)
    end = t.offset
    t.close()
    v = b.getvalue()
    return v[:end] if cut else v

def pkginfo(extra=""):
    return ("pkgname = seed\npkgver = 1.0-r0\narch = x86_64\nsize = 10\nbuilddate = 1\n"
            "depend = so:libc.musl-x86_64.so.1\n" + extra + "datahash = " + "0" * 64 + "\n").encode()

def t_input(control, data):
    return b"T" + struct.pack(">H", len(control)) + control + data

control = tar([{"name": ".PKGINFO", "data": pkginfo("triggers = /usr/share/x\n")},
               {"name": ".post-install", "data": b"#!/bin/sh\necho hi\n", "mode": 0o755}], cut=True)
data = tar([{"name": "usr", "type": tarfile.DIRTYPE, "mode": 0o755},
            {"name": "usr/bin/x", "data": b"x\n", "mode": 0o4755,
             "pax": {"APK-TOOLS.checksum.SHA1": "0" * 40, "SCHILY.xattr.user.a": "b"}},
            {"name": "usr/bin/y", "type": tarfile.LNKTYPE, "link": "usr/bin/x"},
            {"name": "usr/bin/z", "type": tarfile.SYMTYPE, "link": "x"}])
seeds = {
    "normal": t_input(control, data),
    "dotdot": t_input(control, tar([{"name": "../../etc/x", "data": b"owned\n"}])),
    "badlink": t_input(control, tar([{"name": "a", "type": tarfile.LNKTYPE, "link": "../b"}])),
    "fifo": t_input(control, tar([{"name": "p", "type": tarfile.FIFOTYPE}])),
    "noinfo": t_input(tar([{"name": ".other", "data": b"x"}], cut=True), data),
    "badnum": t_input(tar([{"name": ".PKGINFO", "data": pkginfo("size = 12x\n")}], cut=True), data),
    "truncated": t_input(control[:700], data),
    "apk": gzip.compress(control, mtime=0) + gzip.compress(data, mtime=0),
}
for name, b in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(b)
