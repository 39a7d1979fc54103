#!/usr/bin/env python3
"""A small HTTP server for pexi's download tests (Python 3 standard library only).

Serves the files under --root on 127.0.0.1 at an ephemeral port and prints the port as its
first line on stdout. Each request is logged as one JSON line to --log:
    {"path": ..., "range": <Range header or null>, "status": N, "sent": <body bytes sent>}

Fault injection is chosen by prefixes of the URL path, which may be combined, e.g.
/drop-after/1000/no-range/payload.bin:
    /drop-after/N/...    the first request for this URL sends N body bytes, then closes
                         the connection (later requests are served normally)
    /stall-after/N/...   the first request for this URL sends N body bytes, then nothing
                         for 60 s (later requests are served normally)
    /status/CODE/...     always answers CODE
    /status/CODE-once/...answers CODE the first time, then serves normally
    /no-range/...        ignores the Range header (200 with the whole file)
    /redirect/...        answers 302 to the same URL without this prefix

The server stops by itself: when stdin reaches end of file (the test process died or
closed it) or after --timeout seconds.
"""

import argparse
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

seen = set()  # URLs already requested once (for the "-once" and drop-after faults)
lock = threading.Lock()
args = None


def first_time(url):
    with lock:
        if url in seen:
            return False
        seen.add(url)
        return True


def log(entry):
    with lock:
        with open(args.log, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")


def parse_range(header, size):
    """Returns (start, end) inclusive for 'bytes=A-' or 'bytes=A-B', None if absent or
    not understood (then the whole file is served), or 'unsatisfiable'."""
    if not header or not header.startswith("bytes="):
        return None
    spec = header[len("bytes="):]
    if "," in spec or "-" not in spec:
        return None
    a, b = spec.split("-", 1)
    if not a.isdigit():
        return None
    start = int(a)
    end = int(b) if b.isdigit() else size - 1
    if start >= size:
        return "unsatisfiable"
    return start, min(end, size - 1)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt, *a):  # keep the test output clean
        pass

    def do_GET(self):
        url = self.path
        parts = url.split("?", 1)[0].lstrip("/").split("/")
        drop_after = None
        stall_after = None
        no_range = False
        status = None
        redirect = False
        while parts:
            if parts[0] == "drop-after" and len(parts) > 2 and parts[1].isdigit():
                drop_after = int(parts[1])
                parts = parts[2:]
            elif parts[0] == "stall-after" and len(parts) > 2 and parts[1].isdigit():
                stall_after = int(parts[1])
                parts = parts[2:]
            elif parts[0] == "status" and len(parts) > 2:
                code = parts[1]
                if code.endswith("-once"):
                    if first_time("status " + url):
                        status = int(code[: -len("-once")])
                else:
                    status = int(code)
                parts = parts[2:]
            elif parts[0] == "no-range":
                no_range = True
                parts = parts[1:]
            elif parts[0] == "redirect":
                redirect = True
                parts = parts[1:]
            else:
                break
        rng = self.headers.get("Range")
        entry = {"path": url, "range": rng, "status": 0, "sent": 0}

        if redirect:
            target = "/" + "/".join(p for p in url.lstrip("/").split("/") if p != "redirect")
            entry["status"] = 302
            log(entry)
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if status is not None:
            body = f"fault injected: {status}\n".encode()
            entry["status"] = status
            log(entry)
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return

        path = os.path.realpath(os.path.join(args.root, *parts))
        root = os.path.realpath(args.root)
        if not path.startswith(root + os.sep) or not os.path.isfile(path):
            entry["status"] = 404
            log(entry)
            self.send_error(404)
            return
        with open(path, "rb") as f:
            data = f.read()
        size = len(data)
        r = None if no_range else parse_range(rng, size)
        if r == "unsatisfiable":
            entry["status"] = 416
            log(entry)
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if r is None:
            start, end, code = 0, size - 1, 200
        else:
            (start, end), code = r, 206
        body = data[start : end + 1]
        if drop_after is not None and first_time("drop " + url):
            body_sent = body[:drop_after]
        elif stall_after is not None and first_time("stall " + url):
            body_sent = body[:stall_after]
        else:
            body_sent = body
            drop_after = stall_after = None
        entry["status"] = code
        entry["sent"] = len(body_sent)
        log(entry)
        self.send_response(code)
        if code == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        try:
            self.wfile.write(body_sent)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (a size limit, a write error): nothing to report.
            return
        if stall_after is not None:
            # Keep the connection open and silent: the client's low-speed timeout fires.
            time.sleep(60)
            return
        if drop_after is not None:
            # Closing early makes the client see fewer bytes than Content-Length promised.
            self.close_connection = True
            self.connection.close()


def watch_stdin():
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except OSError:
        pass
    os._exit(0)


def main():
    global args
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", required=True, help="directory to serve")
    p.add_argument("--log", required=True, help="file receiving one JSON line per request")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds before exiting")
    args = p.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    threading.Thread(target=watch_stdin, daemon=True).start()
    threading.Timer(args.timeout, lambda: os._exit(0)).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
