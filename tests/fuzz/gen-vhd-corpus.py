#!/usr/bin/env python3
"""Writes the seed corpus of the VHD fuzz target (tests/fuzz/corpus/vhd): small valid
fixed and dynamic VHDs (blocks of 512 bytes to 4 KiB, partial sector bitmaps, an odd
virtual size) and hostile variants, each under 64 KiB. qemu-img cannot make blocks this
small, so the images are built here field by field from the VHD specification.

usage: gen-vhd-corpus.py OUTDIR"""
import os
import struct
import sys


def checksum(b, at):
    s = sum(b[:at]) + sum(b[at + 4:])
    return struct.pack(">I", (~s) & 0xFFFFFFFF)


def footer(vsize, dtype, data_offset, creator=b"win ", geom=(16, 4, 17)):
    f = bytearray(512)
    f[0:8] = b"conectix"
    struct.pack_into(">IIQI", f, 8, 2, 0x00010000, data_offset, 0)
    f[28:32] = creator
    struct.pack_into(">I", f, 32, 0x000A0000)
    f[36:40] = b"Wi2k"
    struct.pack_into(">QQHBBI", f, 40, vsize, vsize, *geom, dtype)
    f[68:84] = bytes(range(1, 17))
    f[64:68] = checksum(f, 64)
    return f


def dynamic(vsize, block, blocks, creator=b"win ", geom=(16, 4, 17)):
    """blocks: list of (index, bitmap byte, data byte), stored in that order."""
    entries = (vsize + block - 1) // block
    bat_bytes = (entries * 4 + 511) // 512 * 512
    bits = (block // 512 + 7) // 8
    bitmap = (bits + 511) // 512 * 512
    f = footer(vsize, 3, 512, creator, geom)
    h = bytearray(1024)
    h[0:8] = b"cxsparse"
    struct.pack_into(">QQIII", h, 8, 0xFFFFFFFFFFFFFFFF, 1536, 0x00010000, entries, block)
    h[36:40] = checksum(h, 36)
    bat = bytearray(b"\xff" * bat_bytes)
    data = bytearray()
    at = 1536 + bat_bytes
    for index, bm, fill in blocks:
        struct.pack_into(">I", bat, index * 4, at // 512)
        data += bytes([bm]) * bits + bytes(bitmap - bits) + bytes([fill]) * block
        at += bitmap + block
    return bytearray(f + h + bat + data + f)


def fixed(vsize, fill=0x5A, creator=b"qemu", geom=(1, 1, 16)):
    body = bytes([fill]) * vsize
    return bytearray(body + footer(vsize, 2, 0xFFFFFFFFFFFFFFFF, creator, geom))


def refooter(b):
    """Recomputes both footers' checksums after a patch."""
    for off in (0, len(b) - 512):
        b[off + 64:off + 68] = checksum(b[off:off + 512], 64)
    return b


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    images = {}
    images["fixed-8k.vhd"] = fixed(8192)
    images["dyn-4k-blocks.vhd"] = dynamic(32768, 4096, [(1, 0xA5, 0x5A), (3, 0, 0x33), (2, 0xFF, 0x11)])
    images["dyn-512-blocks.vhd"] = dynamic(4096, 512, [(0, 0x80, 0x01), (7, 0x80, 0x02)])
    images["dyn-odd-size.vhd"] = dynamic(12 * 4096 + 1536, 4096, [(0, 0xFF, 0x42), (12, 0xFF, 0x24)])
    images["dyn-qemu-chs.vhd"] = dynamic(1 << 30, 2 << 20, [], creator=b"qemu", geom=(2080, 16, 63))
    b = dynamic(32768, 4096, [(0, 0xFF, 1), (1, 0xFF, 2)])
    bat = 1536
    b[bat + 4 * 7:bat + 4 * 8] = b[bat:bat + 4]
    images["bad-bat-same-block.vhd"] = b
    b = dynamic(32768, 4096, [(0, 0xFF, 1)])
    struct.pack_into(">I", b, bat + 4 * 7, len(b) // 512 + 4)
    images["bad-bat-past-eof.vhd"] = b
    b = dynamic(32768, 4096, [(0, 0xFF, 1)])
    b[-512] = ord("x")
    images["bad-footer-cookie.vhd"] = b
    b = dynamic(32768, 4096, [(0, 0xFF, 1)])
    b[-400] ^= 1
    images["bad-footer-checksum.vhd"] = b
    b = dynamic(32768, 4096, [(0, 0xFF, 1)])
    struct.pack_into(">I", b, 512 + 32, 3000)
    b[512 + 36:512 + 40] = checksum(b[512:1536], 36)
    images["bad-block-size.vhd"] = b
    b = dynamic(32768, 4096, [(0, 0xFF, 1)])
    struct.pack_into(">I", b, 60, 4)
    struct.pack_into(">I", b, len(b) - 512 + 60, 4)
    images["bad-differencing.vhd"] = refooter(b)
    images["bad-cut-in-footer.vhd"] = dynamic(32768, 4096, [(0, 0xFF, 1)])[:-200]
    images["bad-511-bytes.vhd"] = bytearray(511)
    for name, data in images.items():
        assert len(data) < 65536, name
        with open(os.path.join(out, name), "wb") as fh:
            fh.write(data)


if __name__ == "__main__":
    main()
