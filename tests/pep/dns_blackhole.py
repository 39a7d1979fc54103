#!/usr/bin/env python3
"""A DNS server that never answers: binds UDP and TCP port 53 on ADDR, counts the queries it
swallows into COUNTFILE, and exits when its stdin closes. Used to check that the PEP's
resolver gives up at its deadline instead of glibc's (seconds per attempt).

usage: dns_blackhole.py ADDR COUNTFILE
"""
import socket
import sys
import threading

addr, countfile = sys.argv[1], sys.argv[2]
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind((addr, 53))
tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind((addr, 53))
tcp.listen(16)
lock = threading.Lock()
count = 0


def bump():
    global count
    with lock:
        count += 1
        with open(countfile, "w") as f:
            f.write("%d\n" % count)


def serve_udp():
    while True:
        udp.recvfrom(4096)
        bump()


def serve_tcp():
    held = []
    while True:
        c, _ = tcp.accept()
        held.append(c)  # never answered, never closed
        bump()


open(countfile, "w").write("0\n")
threading.Thread(target=serve_udp, daemon=True).start()
threading.Thread(target=serve_tcp, daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
