#!/usr/bin/env python3
"""The origin server of the browser tests: a small site that exercises every way a page
fetches (document, image, script, cross-site iframe, fetch, XHR, binary form POST,
redirect, cookie, WebSocket, service worker, shared worker, popup) and logs every request
it receives as one JSON line, so a test can match them one for one with the PEP's audit.

usage: origin.py PORTFILE LOGFILE   (binds 127.0.0.1 on a free port, writes it to PORTFILE)
"""
import hashlib
import json
import struct
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def png(width, height, rgb):
    """A solid-colour PNG, written by hand so the test needs no imaging library."""
    raw = b"".join(b"\0" + bytes(rgb) * width for _ in range(height))

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))

    return (b"\x89PNG\r\n\x1a\n" +
            chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


GREEN = png(64, 64, (0, 160, 0))

INDEX = """<!doctype html>
<html><head><meta charset="utf-8"><title>pexi test site</title>
<style>body{margin:0;background:#fff} #logo{position:absolute;left:0;top:0;width:64px;height:64px}
#results{position:absolute;top:80px;left:8px;font:12px monospace}</style>
<script src="/app.js"></script></head>
<body><img id="logo" src="/logo.png" alt="logo">
<iframe id="frame" src="http://other.test:{port}/frame.html" style="position:absolute;top:200px;width:300px;height:60px"></iframe>
<pre id="results">pending</pre>
<form id="form" method="POST" action="/form" enctype="application/octet-stream"></form>
</body></html>
"""

APP_JS = """
// Every probe records its outcome in window.pexiResults; the test reads them as JSON.
window.pexiResults = {};
const R = window.pexiResults;
async function probe(name, fn) {
  try { R[name] = await fn(); } catch (e) { R[name] = 'error:' + (e && e.name || e); }
}
window.pexiDone = (async () => {
  await probe('fetch', async () => (await fetch('/api/data')).text());
  await probe('xhr', () => new Promise((ok, bad) => {
    const x = new XMLHttpRequest(); x.open('GET', '/api/xhr');
    x.onload = () => ok(x.status + ':' + x.responseText); x.onerror = () => bad(new Error('xhr'));
    x.send();
  }));
  const bytes = new Uint8Array(256); for (let i = 0; i < 256; i++) bytes[i] = i;
  await probe('upload', async () => (await fetch('/api/upload', {method: 'POST', body: bytes,
    headers: {'Content-Type': 'application/octet-stream'}})).text());
  await probe('redirect', async () => { const r = await fetch('/redirect'); return r.url.replace(location.origin, '') + ':' + await r.text(); });
  await probe('cookie', async () => { await fetch('/cookie/set'); return (await fetch('/cookie/check')).text(); });
  await probe('denied', async () => { const r = await fetch('http://denied.test/secret'); return r.status + ':' + r.headers.get('X-Pexi-Error'); });
  await probe('websocket', () => new Promise((ok) => {
    let ws;
    try { ws = new WebSocket('ws://site.test:' + location.port + '/ws'); } catch (e) { return ok('refused:' + e.name); }
    ws.onopen = () => ok('open'); ws.onerror = () => ok('refused');
  }));
  await probe('serviceworker', async () => {
    if (!('serviceWorker' in navigator)) return 'unavailable';
    await navigator.serviceWorker.register('/sw.js'); return 'registered';
  });
  await probe('sharedworker', async () => typeof SharedWorker);
  document.getElementById('results').textContent = JSON.stringify(R);
  return R;
})();
"""

# The benchmark page: a document with 30 images, 5 scripts and a stylesheet, all distinct
# URLs, so a load is 37 requests.
BENCH = ("<!doctype html><html><head><meta charset='utf-8'><title>bench</title>"
         "<link rel='stylesheet' href='/bench/style.css'>" +
         "".join(f"<script src='/bench/s{i}.js'></script>" for i in range(5)) +
         "</head><body>" +
         "".join(f"<img src='/bench/i{i}.png' width='16' height='16'>" for i in range(30)) +
         "</body></html>")

FRAME = "<!doctype html><html><body><p id='f'>cross-site frame loaded</p></body></html>"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    log_lock = threading.Lock()

    def log_message(self, fmt, *args):
        pass

    def record(self, body):
        entry = {"method": self.command, "path": self.path,
                 "host": self.headers.get("Host", ""),
                 "body_sha256": hashlib.sha256(body).hexdigest() if body else None,
                 "cookie": self.headers.get("Cookie"),
                 "headers": [k.lower() for k in self.headers.keys()]}
        with self.log_lock, open(self.server.log_path, "a") as f:
            f.write(json.dumps(entry) + "\n")

    def send(self, status, body, ctype="text/plain", extra=()):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        self.record(body)
        port = self.server.server_address[1]
        p = self.path
        if p == "/":
            self.send(200, INDEX.replace("{port}", str(port)), "text/html; charset=utf-8")
        elif p == "/app.js":
            self.send(200, APP_JS, "text/javascript")
        elif p == "/logo.png":
            self.send(200, GREEN, "image/png")
        elif p == "/frame.html":
            self.send(200, FRAME, "text/html")
        elif p == "/popup.html":
            self.send(200, "<!doctype html><title>popup</title><p>popup page</p>", "text/html")
        elif p == "/api/data":
            self.send(200, "data-ok")
        elif p == "/api/xhr":
            self.send(200, "xhr-ok")
        elif p in ("/api/upload", "/form"):
            self.send(200, hashlib.sha256(body).hexdigest())
        elif p == "/redirect":
            self.send(302, "", extra=[("Location", "/landing")])
        elif p == "/landing":
            self.send(200, "landed")
        elif p == "/cookie/set":
            self.send(200, "set", extra=[("Set-Cookie", "pexi=yes; Path=/")])
        elif p == "/cookie/check":
            self.send(200, self.headers.get("Cookie") or "no-cookie")
        elif p == "/bench/":
            self.send(200, BENCH, "text/html; charset=utf-8")
        elif p.startswith("/bench/i"):
            self.send(200, GREEN, "image/png")
        elif p.startswith("/bench/s"):
            self.send(200, "window.x = (window.x || 0) + 1;", "text/javascript")
        elif p == "/bench/style.css":
            self.send(200, "body { background: #fafafa }", "text/css")
        elif p == "/sw.js":
            self.send(200, "self.onfetch = () => {};", "text/javascript")
        else:
            self.send(404, "not found")

    do_GET = do_POST = do_PUT = do_HEAD = handle_any


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.log_path = sys.argv[2]
    open(server.log_path, "w").close()
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    import os
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    server.serve_forever()


if __name__ == "__main__":
    main()
