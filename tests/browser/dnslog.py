#!/usr/bin/env python3
"""A DNS listener that answers nothing and records every name asked: run inside the
browser's network namespace with resolv.conf pointing at it, it shows whether Firefox
tried to resolve a real name (a leak: every request should go to the agent instead).

usage: dnslog.py LOGFILE   (UDP and TCP 127.0.0.1:53; one name per line in LOGFILE)
"""
import socket
import sys
import threading


def qname(packet, offset=12):
    labels = []
    while offset < len(packet):
        n = packet[offset]
        if n == 0 or n & 0xC0:
            break
        labels.append(packet[offset + 1:offset + 1 + n].decode("ascii", "replace"))
        offset += 1 + n
    return ".".join(labels)


def refuse(packet):
    """The same question back with RCODE 5 (refused), so resolvers fail fast."""
    if len(packet) < 12:
        return b""
    flags = bytes([packet[2] | 0x80, (packet[3] & 0xF0) | 5])
    return packet[:2] + flags + packet[4:]


def record(log, name):
    with open(log, "a") as f:
        f.write(name + "\n")


def udp(log):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 53))
    while True:
        data, peer = s.recvfrom(4096)
        record(log, qname(data))
        s.sendto(refuse(data), peer)


def tcp(log):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 53))
    s.listen(8)
    while True:
        c, _ = s.accept()
        data = c.recv(4096)
        if len(data) > 2:
            record(log, qname(data[2:]))
            r = refuse(data[2:])
            c.sendall(len(r).to_bytes(2, "big") + r)
        c.close()


if __name__ == "__main__":
    open(sys.argv[1], "w").close()
    threading.Thread(target=tcp, args=(sys.argv[1],), daemon=True).start()
    udp(sys.argv[1])
