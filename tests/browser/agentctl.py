#!/usr/bin/env python3
"""Sends one command to pexi-agent's command socket and prints the JSON answer.

usage: agentctl.py SOCKET '{"cmd":"navigate","url":"http://site.test/"}' [TIMEOUT_S]
Exit status 0 when the agent answered {"ok": true, ...}, 1 otherwise.
"""
import json
import socket
import sys

s = socket.socket(socket.AF_UNIX)
s.settimeout(float(sys.argv[3]) if len(sys.argv) > 3 else 60)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
buf = b""
while not buf.endswith(b"\n"):
    d = s.recv(1 << 20)
    if not d:
        break
    buf += d
print(buf.decode().strip())
sys.exit(0 if json.loads(buf).get("ok") else 1)
