#!/usr/bin/env python3
"""A small client for the PEP frame protocol (4-byte big-endian length + JSON), written
independently of pexi's C code so the tests check the daemon against another
implementation. Used as a module by the tests and as a command:

  frameclient.py ADDR request METHOD URL [--id ID] [--header K:V]... [--body TEXT]
  frameclient.py ADDR hello INSTANCE
  frameclient.py ADDR raw HEXBYTES        send bytes as they are, print what comes back

ADDR is unix:/path or tcp:HOST:PORT. Answers are printed as JSON lines.
"""
import base64
import json
import socket
import struct
import sys


def connect(addr, timeout=10.0):
    if addr.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(addr[5:])
    elif addr.startswith("tcp:"):
        host, port = addr[4:].rsplit(":", 1)
        s = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
    else:
        raise ValueError("bad address " + addr)
    return s


def frame(obj):
    data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return struct.pack(">I", len(data)) + data


def request(method, url, headers=(), body=b"", id=None):
    o = {"method": method, "url": url, "headers": [list(h) for h in headers],
         "body_base64": base64.b64encode(body).decode()}
    if id is not None:
        o["id"] = id
    return frame(o)


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def read_frame(s):
    """The next frame as a dict, or None at end of stream."""
    hdr = recv_exact(s, 4)
    if hdr is None:
        return None
    (n,) = struct.unpack(">I", hdr)
    data = recv_exact(s, n)
    if data is None:
        raise EOFError("stream ended inside a frame")
    return json.loads(data)


def body_of(resp):
    return base64.b64decode(resp.get("body_base64") or "")


def main(argv):
    addr, cmd = argv[1], argv[2]
    s = connect(addr)
    if cmd == "request":
        method, url = argv[3], argv[4]
        headers, body, rid = [], b"", None
        i = 5
        while i < len(argv):
            if argv[i] == "--id":
                rid = argv[i + 1]
            elif argv[i] == "--header":
                k, v = argv[i + 1].split(":", 1)
                headers.append((k, v.lstrip()))
            elif argv[i] == "--body":
                body = argv[i + 1].encode()
            i += 2
        s.sendall(request(method, url, headers, body, rid))
        print(json.dumps(read_frame(s)))
    elif cmd == "hello":
        s.sendall(frame({"type": "hello", "instance_id": argv[3], "guest": "frameclient/1"}))
        print(json.dumps(read_frame(s)))
    elif cmd == "raw":
        s.sendall(bytes.fromhex(argv[3]))
        s.shutdown(socket.SHUT_WR)
        while True:
            f = read_frame(s)
            if f is None:
                break
            print(json.dumps(f))
    else:
        raise SystemExit("unknown command " + cmd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
