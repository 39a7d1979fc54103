#!/usr/bin/env python3
"""Stands in for QEMU's virtio-serial port pexi.browser in the host browser test: the
guest side is a pseudo-terminal in raw mode (the agent opens it as it would open
/dev/virtio-ports/pexi.browser), the host side a unix socket server accepting one client
at a time (as QEMU's `-chardev socket,server=on` does). The port stays open between host
connections, as a real virtio port does.

usage: vport.py PORT_LINK SOCKET    (PORT_LINK becomes a symlink to the pty)
"""
import os
import select
import socket
import sys
import tty

port_link, sock_path = sys.argv[1], sys.argv[2]
master, slave = os.openpty()
tty.setraw(slave)
for p in (port_link, sock_path):
    if os.path.lexists(p):
        os.unlink(p)
os.symlink(os.ttyname(slave), port_link)
server = socket.socket(socket.AF_UNIX)
server.bind(sock_path)
server.listen(1)
while True:
    client, _ = server.accept()
    while True:
        ready, _, _ = select.select([client, master], [], [])
        if client in ready:
            data = client.recv(65536)
            if not data:
                break
            os.write(master, data)
        if master in ready:
            client.sendall(os.read(master, 65536))
    client.close()
