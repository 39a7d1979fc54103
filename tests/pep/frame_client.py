#!/usr/bin/env python3
"""A minimal client of the PEP's frame protocol (DESIGN.md): a 4-byte big-endian length,
then UTF-8 JSON. Importable (connect, send, recv, call) and usable from the shell:

    frame_client.py unix:/path/pep.sock '{"method":"GET","url":"http://x/"}'

prints the answer frame as one JSON line. ADDR is unix:/path or tcp:HOST:PORT.
"""

import json
import socket
import struct
import sys


def connect(addr, timeout=30):
    if addr.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(addr[5:])
    elif addr.startswith("tcp:"):
        host, port = addr[4:].rsplit(":", 1)
        s = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
    else:
        raise ValueError("unknown address %r" % addr)
    return s


def send(s, obj):
    data = json.dumps(obj).encode() if not isinstance(obj, (bytes, bytearray)) else obj
    s.sendall(struct.pack(">I", len(data)) + data)


def _read(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise EOFError("connection closed after %d of %d bytes" % (len(out), n))
        out += chunk
    return out


def recv(s):
    (n,) = struct.unpack(">I", _read(s, 4))
    return json.loads(_read(s, n).decode())


def call(addr, obj, timeout=30):
    with connect(addr, timeout) as s:
        send(s, obj)
        return recv(s)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: frame_client.py ADDR JSON")
    print(json.dumps(call(sys.argv[1], json.loads(sys.argv[2]))))
