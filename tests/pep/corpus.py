#!/usr/bin/env python3
"""Runs a data-driven PEP corpus end to end and prints TAP.

A corpus file (tests/pep/cases/*.json) is a list of groups; a group starts the real
`pexi pep` daemon with its policy and hosts file (the resolver seam: "NAME A[,A] [A]..."),
the test CA of tests/pep/upstream.py, an audit log and a unix socket, then sends each case
as a frame with tests/pep/frameclient.py and checks:

  - the answer frame: "status" (an HTTP status) or "code" (an error class, or a list of
    acceptable ones), the body ("body", "body_pattern": N, "body_file": NAME);
  - what the loopback upstream received: "upstream": N (how many requests; 0 = nothing
    reached it) or a list of expected requests ({"method", "target", "port", "body",
    "body_len", "headers": {NAME: VALUE}, "absent": [NAME]});
  - the audit line the daemon wrote for it: "audit": {"decision", "code", "reason",
    "resolved": [...], "hops": N} ("reason" is a substring);
  - "resp_headers": {NAME: VALUE} and "resp_absent": [NAME] on the answer's headers;
    "body_gunzip": the body is gzip data of this text (passed through, not decoded);
  - "seconds": the answer came within that many seconds.

Strings may use {http0} {http1} {http2} (HTTP listeners on 127.0.0.1), {https0} (HTTPS on
127.0.0.1) and {http6} (HTTP on ::1). The guest-visible message must never name an
internal address. Usage: corpus.py CORPUS.json
"""

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import frameclient  # noqa: E402

PEXI = os.environ.get("PEXI") or os.path.join(HERE, "..", "..", "pexi")
INTERNAL = ("127.0.0.", "::1", "169.254.", "::ffff:", "fd00:", "100.100.100.200")

count = 0
failed = 0


def tap(ok, name, why=()):
    global count, failed
    count += 1
    if not ok:
        failed += 1
    print("%sok %d - %s" % ("" if ok else "not ", count, name))
    for w in why if not ok else ():
        for line in str(w).splitlines():
            print("#   " + line)
    sys.stdout.flush()


def pattern(n):
    return bytes((i * 167 + i // 256) % 256 for i in range(n))


def allbytes():
    return bytes(range(256)) * 1024 + bytes(range(255, -1, -1))


class Env:
    def __init__(self, tmp):
        self.tmp = tmp
        self.log = os.path.join(tmp, "upstream.jsonl")
        ready = os.path.join(tmp, "ready.json")
        with open(os.path.join(tmp, "allbytes.bin"), "wb") as f:
            f.write(allbytes())
        self.upstream = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "upstream.py"), "--log", self.log,
             "--ready-file", ready, "--http", "3", "--https", "1", "--ipv6",
             "--tls-dir", os.path.join(tmp, "tls"), "--root", tmp],
            stdin=subprocess.PIPE)
        for _ in range(400):
            if os.path.exists(ready):
                break
            if self.upstream.poll() is not None:
                raise RuntimeError("upstream.py exited")
            time.sleep(0.05)
        with open(ready) as f:
            r = json.load(f)
        self.vars = {"http%d" % i: str(p) for i, p in enumerate(r["http"])}
        self.vars["https0"] = str(r["https"][0])
        self.vars["http6"] = str(r["http6"][0]) if r["http6"] else "1"
        self.ca = os.path.join(tmp, "tls", "ca.pem")
        self.pep = None
        self.audits = []

    def sub(self, v):
        if isinstance(v, str):
            for k, x in self.vars.items():
                # Also inside URLs quoted once or twice (redirect targets in a query).
                for fmt in ("{%s}", "%%7B%s%%7D", "%%257B%s%%257D"):
                    v = v.replace(fmt % k, x)
            return v
        if isinstance(v, list):
            return [self.sub(x) for x in v]
        if isinstance(v, dict):
            return {k: self.sub(x) for k, x in v.items()}
        return v

    def start_pep(self, group, n):
        d = os.path.join(self.tmp, "g%d" % n)
        os.mkdir(d)
        policy, hosts = os.path.join(d, "policy.yml"), os.path.join(d, "hosts")
        with open(policy, "w") as f:
            f.write(self.sub(group["policy"]))
        with open(hosts, "w") as f:
            f.write(self.sub(group.get("hosts", "")))
        self.sock = os.path.join(d, "pep.sock")
        self.audit = os.path.join(d, "audit.jsonl")
        self.audits.append(self.audit)
        self.pep_log = open(os.path.join(d, "pep.log"), "w")
        self.pep = subprocess.Popen(
            [PEXI, "pep", "--policy", policy, "--listen", "unix:" + self.sock,
             "--audit", self.audit, "--ca-file", self.ca, "--hosts-file", hosts],
            stdout=self.pep_log, stderr=subprocess.STDOUT)
        for _ in range(200):
            rc = self.pep.poll()
            if rc is not None:
                with open(os.path.join(d, "pep.log")) as f:
                    out = f.read()
                if rc == 5:
                    print("# 'pexi pep' is not implemented in this build: %s" % out.strip())
                    sys.exit(77)
                raise RuntimeError("pexi pep exited %d: %s" % (rc, out))
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(self.sock)
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("pexi pep did not listen on %s" % self.sock)

    def stop_pep(self):
        """Stops the daemon with SIGTERM; returns its exit status and its log's tail."""
        if not self.pep:
            return None, ""
        self.pep.send_signal(signal.SIGTERM)
        try:
            rc = self.pep.wait(20)
        except subprocess.TimeoutExpired:
            self.pep.kill()
            rc = "killed after 20 s"
            self.pep.wait()
        self.pep_log.close()
        with open(self.pep_log.name, errors="replace") as f:
            tail = f.read()[-3000:]
        self.pep = None
        return rc, tail

    def stop(self):
        self.stop_pep()
        self.upstream.stdin.close()
        self.upstream.wait(10)

    def upstream_requests(self):
        try:
            with open(self.log) as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def audit_lines(self):
        try:
            with open(self.audit) as f:
                return [line for line in f if line.strip()]
        except FileNotFoundError:
            return []


def header(entry, name):
    for k, v in entry["headers"]:
        if k.lower() == name.lower():
            return v
    return None


def check_upstream(env, want, got, why):
    if isinstance(want, int):
        if len(got) != want:
            why.append("upstream received %d requests, expected %d: %s" %
                       (len(got), want, [g["method"] + " " + g["target"] for g in got]))
        return
    if len(got) != len(want):
        why.append("upstream received %d requests, expected %d: %s" %
                   (len(got), len(want), [g["method"] + " " + g["target"] for g in got]))
        return
    for i, (w, g) in enumerate(zip(want, got)):
        for key in ("method", "target"):
            if key in w and g[key] != w[key]:
                why.append("request %d: %s %r, expected %r" % (i, key, g[key], w[key]))
        if "port" in w and str(g["port"]) != str(w["port"]):
            why.append("request %d: port %s, expected %s" % (i, g["port"], w["port"]))
        body = base64.b64decode(g["body_base64"])
        if "body" in w and body != w["body"].encode():
            why.append("request %d: body %r, expected %r" % (i, body[:80], w["body"]))
        if "body_len" in w and len(body) != w["body_len"]:
            why.append("request %d: body of %d bytes, expected %d" % (i, len(body),
                                                                     w["body_len"]))
        for k, v in w.get("headers", {}).items():
            if header(g, k) != v:
                why.append("request %d: header %s %r, expected %r" % (i, k, header(g, k), v))
        for k in w.get("absent", []):
            if header(g, k) is not None:
                why.append("request %d: header %s present (%r)" % (i, k, header(g, k)))


def check_audit(want, line, why):
    if line is None:
        why.append("no audit line was written")
        return
    try:
        a = json.loads(line)
    except ValueError:
        why.append("audit line is not JSON: %r" % line)
        return
    for k in ("decision", "code"):
        if k in want and a.get(k) != want[k]:
            why.append("audit %s %r, expected %r" % (k, a.get(k), want[k]))
    if "reason" in want and want["reason"] not in (a.get("reason") or ""):
        why.append("audit reason %r lacks %r" % (a.get("reason"), want["reason"]))
    if "resolved" in want and sorted(a.get("resolved") or []) != sorted(want["resolved"]):
        why.append("audit resolved %r, expected %r" % (a.get("resolved"), want["resolved"]))
    if "hops" in want and len(a.get("hops") or []) != want["hops"]:
        why.append("audit hops %r, expected %d" % (a.get("hops"), want["hops"]))
    for secret in ("s3cret", "sid=1"):
        if secret in line:
            why.append("audit line leaks a credential value: %r" % line)


def run_case(env, case):
    case = env.sub(case)
    rq, exp = case["request"], case["expect"]
    frame = {"id": case["name"][:60], "method": rq.get("method", "GET"), "url": rq["url"],
             "headers": rq.get("headers", [])}
    if "body" in rq:
        frame["body_base64"] = base64.b64encode(rq["body"].encode()).decode()
    elif "body_len" in rq:
        frame["body_base64"] = base64.b64encode(b"b" * rq["body_len"]).decode()
    open(env.log, "w").close()
    n_audit = len(env.audit_lines())
    why = []
    t0 = time.monotonic()
    try:
        with frameclient.connect("unix:" + env.sock, timeout=60) as s:
            s.sendall(frameclient.frame(frame))
            resp = frameclient.read_frame(s)
    except (OSError, EOFError, ValueError) as e:
        resp = None
        why.append("no answer: %s" % e)
    if resp is None:
        tap(False, case["name"], why or ["the daemon closed the connection without answering"])
        return
    secs = time.monotonic() - t0
    err = resp.get("error")
    if "status" in exp:
        if err or resp.get("status") != exp["status"]:
            why.append("answer status %r error %r, expected status %r" %
                       (resp.get("status"), err, exp["status"]))
    if "code" in exp:
        codes = exp["code"] if isinstance(exp["code"], list) else [exp["code"]]
        if not err or err.get("code") not in codes:
            why.append("answer %r, expected error code %s" % (err or resp.get("status"), codes))
    if err:
        msg = err.get("message") or ""
        for a in INTERNAL:
            if a in msg:
                why.append("the guest message names an internal address: %r" % msg)
    if resp.get("id") != frame["id"]:
        why.append("answer id %r, expected %r" % (resp.get("id"), frame["id"]))
    body = base64.b64decode(resp.get("body_base64") or "")
    if "body" in exp and body != exp["body"].encode():
        why.append("body %r, expected %r" % (body[:80], exp["body"]))
    if "body_pattern" in exp and body != pattern(exp["body_pattern"]):
        why.append("body of %d bytes is not the %d-byte pattern" % (len(body),
                                                                    exp["body_pattern"]))
    if "body_file" in exp:
        with open(os.path.join(env.tmp, exp["body_file"]), "rb") as f:
            if body != f.read():
                why.append("body differs from %s (%d bytes)" % (exp["body_file"], len(body)))
    rh = {}
    for k, v in resp.get("headers") or []:
        rh.setdefault(k.lower(), v)
    for k, v in exp.get("resp_headers", {}).items():
        if rh.get(k.lower()) != v:
            why.append("answer header %s %r, expected %r" % (k, rh.get(k.lower()), v))
    for k in exp.get("resp_absent", []):
        if k.lower() in rh:
            why.append("answer header %s present (%r)" % (k, rh[k.lower()]))
    if "body_gunzip" in exp:
        import gzip
        try:
            if gzip.decompress(body) != exp["body_gunzip"].encode():
                why.append("the gunzipped body differs")
        except OSError as e:
            why.append("the body is not the upstream's gzip bytes: %s" % e)
    if "seconds" in exp and secs > exp["seconds"]:
        why.append("answered after %.1f s, expected within %s s" % (secs, exp["seconds"]))
    if "upstream" in exp:
        check_upstream(env, exp["upstream"], env.upstream_requests(), why)
    if "audit" in exp:
        lines = env.audit_lines()
        for _ in range(40):
            if len(lines) > n_audit:
                break
            time.sleep(0.05)
            lines = env.audit_lines()
        if len(lines) > n_audit + 1:
            why.append("%d audit lines for one request" % (len(lines) - n_audit))
        check_audit(exp["audit"], lines[n_audit] if len(lines) > n_audit else None, why)
    tap(not why, case["name"], why)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: corpus.py CORPUS.json")
    with open(sys.argv[1]) as f:
        groups = json.load(f)
    with tempfile.TemporaryDirectory(prefix="pexi-pep-corpus.") as tmp:
        env = Env(tmp)
        try:
            for n, g in enumerate(groups):
                env.start_pep(g, n)
                try:
                    for case in g["cases"]:
                        run_case(env, case)
                finally:
                    rc, tail = env.stop_pep()
                # Also how sanitizer builds report leaks and errors.
                tap(rc == 0, "group %d: the daemon drains and exits 0 on SIGTERM" % n,
                    ["exit status %s; its log ends:" % rc, tail])
            for n, audit in enumerate(env.audits):
                ok = subprocess.run([PEXI, "pep", "verify-audit", audit],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                tap(ok.returncode == 0, "the audit chain of group %d verifies" % n,
                    [ok.stdout.decode(errors="replace")])
        finally:
            env.stop()
    print("1..%d" % count)
    sys.exit(1 if failed or not count else 0)


if __name__ == "__main__":
    main()
