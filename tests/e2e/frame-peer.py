#!/usr/bin/env python3
"""A TEST PEER standing in for the host's PEP on one frame channel; never used in production.

    frame-peer.py --listen SOCK --log FILE [--ready FILE] [--pidfile FILE]

Listens on the unix socket SOCK (where QEMU's virtio-serial chardev or pexi-guest
--channel unix:SOCK connects), speaks frames (4-byte big-endian length + JSON) and:
  - answers {"type":"hello",...} with {"type":"hello","ok":true} and appends
    "hello INSTANCE_ID" to the --ready file (what `pexi pep --ready-fd` writes);
  - answers each request {"id","method","url",...} with status 200 and the body
    "METHOD URL" (base64), echoing the id; a URL containing "slow" is answered after
    0.6 s from another thread, so answers leave out of order; "big" gets an 8000-byte
    body (a frame over a small --max-frame); a URL containing "deny"
    gets {"status":0,"error":{"code":"denied_by_policy",...}};
  - on SIGUSR1 sends {"type":"poweroff"} on every connection that said hello, like the
    real PEP;
  - logs every frame it receives as one JSON line in --log.
Accepts connection after connection (the guest may reconnect)."""
import argparse
import base64
import json
import os
import signal
import socket
import struct
import sys
import threading
import time

lock = threading.Lock()
hello_conns = []


def send(conn, obj):
    data = json.dumps(obj).encode()
    with lock:
        try:
            conn.sendall(struct.pack(">I", len(data)) + data)
        except OSError:
            pass


def recv_exact(conn, n):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def answer(conn, req):
    url = req.get("url", "")
    resp = {"status": 200, "headers": [["content-type", "text/plain"]],
            "body_base64": base64.b64encode(f"{req.get('method')} {url}".encode()).decode(),
            "error": None}
    if "big" in url:
        resp["body_base64"] = base64.b64encode(b"B" * 8000).decode()
    if "deny" in url:
        resp = {"status": 0, "headers": [], "body_base64": "",
                "error": {"code": "denied_by_policy", "message": "host is not allowed"}}
    if "id" in req:
        resp = {"id": req["id"], **resp}
    if "slow" in url:
        time.sleep(0.6)
    send(conn, resp)


def serve(conn, args):
    while True:
        hdr = recv_exact(conn, 4)
        if hdr is None:
            break
        (n,) = struct.unpack(">I", hdr)
        body = recv_exact(conn, n)
        if body is None:
            break
        with open(args.log, "a") as f:
            f.write(body.decode("utf-8", "replace") + "\n")
        try:
            frame = json.loads(body)
        except ValueError:
            continue
        if frame.get("type") == "hello":
            send(conn, {"type": "hello", "ok": True})
            with lock:
                hello_conns.append(conn)
            if args.ready:
                with open(args.ready, "a") as f:
                    f.write(f"hello {frame.get('instance_id', '')}\n")
        elif "method" in frame:
            threading.Thread(target=answer, args=(conn, frame), daemon=True).start()
    with lock:
        if conn in hello_conns:
            hello_conns.remove(conn)
    conn.close()


def on_usr1(signum, frame):
    with lock:
        conns = list(hello_conns)
    for c in conns:
        threading.Thread(target=send, args=(c, {"type": "poweroff"}), daemon=True).start()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--ready")
    p.add_argument("--pidfile")
    args = p.parse_args()
    signal.signal(signal.SIGUSR1, on_usr1)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    try:
        os.unlink(args.listen)
    except FileNotFoundError:
        pass
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(args.listen)
    srv.listen(8)
    open(args.log, "a").close()
    if args.pidfile:
        with open(args.pidfile + ".tmp", "w") as f:
            f.write(f"{os.getpid()}\n")
        os.rename(args.pidfile + ".tmp", args.pidfile)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn, args), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
