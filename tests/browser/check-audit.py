#!/usr/bin/env python3
"""Matches the PEP's audit log against the origin server's request log, one for one:
every request the origin received must have exactly one allowed audit line with the same
method, host and path, and every allowed audit line for the origin's hosts must have
reached the origin. Denied audit lines are listed for the test to check.

usage: check-audit.py AUDIT ORIGIN_LOG ORIGIN_PORT    (exit 0 when they match)
"""
import collections
import json
import sys
import urllib.parse

audit = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
origin = [json.loads(line) for line in open(sys.argv[2]) if line.strip()]
port = int(sys.argv[3])

got = collections.Counter((o["method"], o["host"].split(":")[0], o["path"]) for o in origin)
allowed = collections.Counter()
for a in audit:
    if a.get("decision") != "allow" or int(a.get("port") or 0) != port:
        continue
    allowed[(a["method"], a["host"], a["path"])] += 1
    # The PEP follows redirects itself: each hop it took reached the origin too. The test
    # site only redirects GETs with 302, which keeps the method.
    for hop in a.get("hops") or []:
        u = urllib.parse.urlsplit(hop)
        allowed[(a["method"], u.hostname, u.path)] += 1
denied = [a for a in audit if a.get("decision") != "allow"]

ok = True
for key in got | allowed:
    if got[key] != allowed[key]:
        ok = False
        print(f"mismatch {key}: origin saw {got[key]}, audit allowed {allowed[key]}")
print(f"{sum(got.values())} origin requests, {sum(allowed.values())} allowed audit lines, "
      f"{len(denied)} denied: " + ", ".join(f"{a['host']}{a.get('path', '')}={a.get('code')}" for a in denied))
sys.exit(0 if ok and got else 1)
