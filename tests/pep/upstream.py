#!/usr/bin/env python3
"""A loopback HTTP and HTTPS upstream for the PEP tests.

Every request it receives is appended to --log as one JSON line (listener, method, raw
target, headers in order, body in base64), before it is answered, so a test can check
what reached the upstream and, as importantly, that nothing did. Behaviours are chosen by
the path:

  /file/NAME                 the bytes of --root/NAME (binary safe)
  /bytes/N                   N bytes: byte i is (i * 167 + i // 256) % 256
  /status/NNN                status NNN with a short body
  /echo                      200, the request as JSON
  /redirect/CODE?to=URL      status CODE with "Location: URL" (to is percent-decoded)
  /loop/N                    302 to /loop/N+1, forever
  /chain/N                   N redirects (302 to /chain/N-1), then 200
  /headers?n=N&size=S        N extra response headers of S bytes each
  /chunked-endless           chunked body that never ends
  /declared?len=N&send=M     Content-Length N, then M bytes, then close
  /delay/S                   200 "delayed S" after S seconds (S may be fractional)
  /stall?secs=S&when=W       W=before: sleep before answering; W=body: headers then sleep
  /reset                     RST without an answer; /reset-body?len=N: headers, half the body, RST
  /set-cookie                200 with a Set-Cookie header
  /chunked/N                 N pattern bytes, chunked, with hop-by-hop headers
  /gzip                      a gzip body with Content-Encoding: gzip
  /early-hints               103 Early Hints, then 200

TLS: --tls-dir DIR holds (or gets, made here with the openssl CLI) a test CA (ca.pem) and a
server certificate for localhost, upstream.test, *.upstream.test and 127.0.0.1, ::1.
When listening it writes {"http":[ports],"https":[ports]} to --ready-file.
"""

import argparse
import base64
import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG_LOCK = threading.Lock()
ARGS = None


def make_tls(d):
    ca_key, ca, key, csr, crt = (os.path.join(d, n) for n in
                                 ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    if os.path.exists(crt):
        return crt, key
    os.makedirs(d, exist_ok=True)
    q = dict(check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", ca_key, "-out", ca,
                    "-days", "2", "-subj", "/CN=pexi test CA",
                    "-addext", "basicConstraints=critical,CA:TRUE",
                    "-addext", "keyUsage=critical,keyCertSign,cRLSign"], **q)
    subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", csr,
                    "-subj", "/CN=upstream.test"], **q)
    ext = os.path.join(d, "ext.cnf")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,DNS:upstream.test,DNS:*.upstream.test,"
                "IP:127.0.0.1,IP:::1\nbasicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth\n")
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
                    "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", ext], **q)
    return crt, key


def pattern(n):
    return bytes((i * 167 + i // 256) % 256 for i in range(n))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "upstream-test"
    sys_version = ""

    def log_message(self, fmt, *a):
        pass

    def record(self, body):
        entry = {
            "listener": self.server.label,
            "port": self.server.server_address[1],
            "client_port": self.client_address[1],
            "method": self.command,
            "target": self.path,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body_base64": base64.b64encode(body).decode(),
            "body_len": len(body),
        }
        with LOG_LOCK:
            with open(ARGS.log, "a") as f:
                f.write(json.dumps(entry) + "\n")

    def read_body(self):
        n = self.headers.get("Content-Length")
        if n is not None:
            return self.rfile.read(int(n))
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return b""

    def send(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def reset(self):
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                   struct.pack("ii", 1, 0))
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def handle_any(self):
        body = self.read_body()
        self.record(body)
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query))
        parts = u.path.split("/")
        what = parts[1] if len(parts) > 1 else ""
        arg = parts[2] if len(parts) > 2 else ""
        if what == "file":
            try:
                with open(os.path.join(ARGS.root, os.path.basename(arg)), "rb") as f:
                    data = f.read()
            except OSError:
                return self.send(404, b"no such file\n")
            return self.send(200, data, [("Content-Type", "application/octet-stream")])
        if what == "bytes":
            return self.send(200, pattern(int(arg)))
        if what == "status":
            return self.send(int(arg), ("status %s\n" % arg).encode())
        if what == "echo":
            return self.send(200, json.dumps({
                "method": self.command, "target": self.path,
                "headers": [[k, v] for k, v in self.headers.items()],
                "body_base64": base64.b64encode(body).decode()}).encode(),
                [("Content-Type", "application/json")])
        if what == "redirect":
            return self.send(int(arg), b"moved\n", [("Location", q.get("to", "/"))])
        if what == "chain":
            n = int(arg)
            if n == 0:
                return self.send(200, b"end of chain\n")
            return self.send(302, b"next\n", [("Location", "/chain/%d" % (n - 1))])
        if what == "loop":
            return self.send(302, b"again\n", [("Location", "/loop/%d" % (int(arg) + 1))])
        if what == "headers":
            n, size = int(q.get("n", "100")), int(q.get("size", "10"))
            self.send_response(200)
            for i in range(n):
                self.send_header("X-Flood-%d" % i, "v" * size)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if what == "chunked-endless":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"x" * 65536
            try:
                while True:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except OSError:
                self.close_connection = True
            return
        if what == "declared":
            self.send_response(200)
            self.send_header("Content-Length", q.get("len", "0"))
            self.end_headers()
            try:
                self.wfile.write(pattern(int(q.get("send", "0"))))
            except OSError:
                pass
            self.close_connection = True
            return
        if what == "delay":
            secs = float(self.path.split("?")[0].split("/")[2])
            time.sleep(secs)
            return self.send(200, ("delayed %s" % secs).encode(), [])
        if what == "stall":
            secs = float(q.get("secs", "30"))
            if q.get("when", "before") == "body":
                self.send_response(200)
                self.send_header("Content-Length", "10")
                self.end_headers()
                self.wfile.write(b"12345")
                self.wfile.flush()
            time.sleep(secs)
            self.close_connection = True
            return
        if what == "reset":
            return self.reset()
        if what == "reset-body":
            self.send_response(200)
            n = int(q.get("len", "100000"))
            self.send_header("Content-Length", str(n))
            self.end_headers()
            self.wfile.write(pattern(n // 2))
            self.wfile.flush()
            return self.reset()
        if what == "chunked":
            # A finite chunked body of N pattern bytes, with hop-by-hop headers around it.
            data = pattern(int(arg))
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "keep-alive, X-Hop")
            self.send_header("X-Hop", "hop")
            self.send_header("Keep-Alive", "timeout=5")
            self.send_header("X-End", "end")
            self.end_headers()
            for i in range(0, len(data), 1000):
                part = data[i:i + 1000]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        if what == "gzip":
            import gzip
            data = gzip.compress(b"compressed body\n" * 100, mtime=0)
            return self.send(200, data, [("Content-Encoding", "gzip"),
                                         ("Content-Type", "text/plain")])
        if what == "early-hints":
            # 103 Early Hints with a header of its own, then the real answer.
            self.wfile.write(b"HTTP/1.1 103 Early Hints\r\nLink: </x.css>; rel=preload\r\n"
                             b"X-Interim: yes\r\n\r\n")
            return self.send(200, b"after hints\n", [("X-Final", "yes")])
        if what == "set-cookie":
            return self.send(200, b"ok\n", [("Set-Cookie", "a=b; Path=/")])
        return self.send(200, b"hello from upstream\n", [("Content-Type", "text/plain")])

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = handle_any
    do_TRACE = do_PURGE = handle_any

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (ConnectionError, ssl.SSLError, BrokenPipeError):
            self.close_connection = True


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, label, family=socket.AF_INET, tls=None):
        self.address_family = family
        self.label = label
        super().__init__(addr, Handler)
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.socket = ctx.wrap_socket(self.socket, server_side=True,
                                          do_handshake_on_connect=False)

    def get_request(self):
        s, a = self.socket.accept()
        if isinstance(s, ssl.SSLSocket):
            s.settimeout(10)
            try:
                s.do_handshake()
            except (ssl.SSLError, OSError):
                s.close()
                raise OSError("handshake failed")
            s.settimeout(None)
        return s, a

    def handle_error(self, request, client_address):
        pass


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--log", required=True)
    p.add_argument("--root", default=".")
    p.add_argument("--ready-file", required=True)
    p.add_argument("--http", type=int, default=1, help="number of HTTP listeners")
    p.add_argument("--https", type=int, default=0, help="number of HTTPS listeners")
    p.add_argument("--ipv6", action="store_true", help="one more HTTP listener on ::1")
    p.add_argument("--tls-dir")
    p.add_argument("--timeout", type=float, default=600)
    ARGS = p.parse_args()
    open(ARGS.log, "a").close()

    servers, ready = [], {"http": [], "https": [], "http6": []}
    for i in range(ARGS.http):
        s = Server(("127.0.0.1", 0), "http%d" % i)
        servers.append(s)
        ready["http"].append(s.server_address[1])
    if ARGS.https:
        tls = make_tls(ARGS.tls_dir)
        for i in range(ARGS.https):
            s = Server(("127.0.0.1", 0), "https%d" % i, tls=tls)
            servers.append(s)
            ready["https"].append(s.server_address[1])
    if ARGS.ipv6:
        s = Server(("::1", 0), "http6", family=socket.AF_INET6)
        servers.append(s)
        ready["http6"].append(s.server_address[1])
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    tmp = ARGS.ready_file + ".tmp"
    with open(tmp, "w") as f:
        json.dump(ready, f)
    os.rename(tmp, ARGS.ready_file)
    # Exit when the test closes our stdin or the deadline passes.
    t = threading.Thread(target=lambda: sys.stdin.read(), daemon=True)
    t.start()
    t.join(ARGS.timeout)


if __name__ == "__main__":
    main()
