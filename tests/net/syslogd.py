#!/usr/bin/env python3
"""syslogd.py SOCKET OUT - a stand-in for the system logger: receives
datagrams on the unix socket SOCKET (what syslog(3) writes to /dev/log)
and appends each as one line to OUT."""
import os
import socket
import sys

path, out = sys.argv[1], sys.argv[2]
if os.path.exists(path):
    os.unlink(path)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o666)
open(out + ".ready", "w").close()
with open(out, "a", buffering=1) as f:
    while True:
        msg = s.recv(65536).decode("utf-8", "replace").rstrip("\n")
        f.write(msg + "\n")
