"""Stands in for systemd's notify socket: binds an AF_UNIX datagram socket at argv[1]
(mode 0666, so the batchd user can send to it) and appends every message it receives,
one field per line, to argv[2] until it is killed."""
import os
import socket
import sys

path, out = sys.argv[1], sys.argv[2]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
os.chmod(path, 0o666)
with open(out, "a", buffering=1) as f:
    while True:
        message = sock.recv(4096).decode("utf-8", "replace")
        for field in message.split("\n"):
            f.write(field + "\n")
