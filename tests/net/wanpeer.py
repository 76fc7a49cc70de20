"""wanpeer.py - both ends of a raw TCP conversation through
tools/wanproxy, for tests/integration/wanproxy.sh.

The server reads one request line per connection:
  GET NAME   sends the file NAME of --dir, then a FIN
  PUT        reads to EOF, answers the sha256 hex of what came
  RESET N    sends N random bytes, then resets the connection
Clients (each connects to 127.0.0.1:PORT, sends its request and shuts
its side down, so that every transfer also crosses a half-close):
  get PORT NAME OUT    saves the answer in OUT; --pause S first waits S
                       seconds, so that the relay's buffers fill up
  put PORT FILE        prints the sha256 the server computed of FILE
  close PORT REQUEST   reads until the connection ends; prints "reset"
                       or "eof" and the bytes that came
"""
import argparse
import hashlib
import os
import socket
import socketserver
import struct
import sys
import time

from netutil import serve, write_port_file

CHUNK = 1 << 16
# A test must fail, not hang, when the proxy loses a FIN.
TIMEOUT = 120


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        words = self.rfile.readline().decode().split()
        if words[:1] == ["GET"]:
            path = os.path.join(self.server.dir, os.path.basename(words[1]))
            with open(path, "rb") as f:
                while block := f.read(CHUNK):
                    self.wfile.write(block)
        elif words[:1] == ["PUT"]:
            h = hashlib.sha256()
            while block := self.rfile.read1(CHUNK):
                h.update(block)
            self.wfile.write((h.hexdigest() + "\n").encode())
        elif words[:1] == ["RESET"]:
            self.wfile.write(os.urandom(int(words[1])))
            self.wfile.flush()
            # A zero linger: close() sends RST, not FIN.  Closed here,
            # since socketserver would shut it down (a FIN) first.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def connect(port, request):
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    s.sendall(request)
    return s


def read_all(s, sink):
    while block := s.recv(CHUNK):
        sink(block)


def cmd_get(a):
    s = connect(a.port, ("GET %s\n" % a.name).encode())
    s.shutdown(socket.SHUT_WR)
    time.sleep(a.pause)
    with open(a.out, "wb") as f:
        read_all(s, f.write)
    return 0


def cmd_put(a):
    s = connect(a.port, b"PUT\n")
    with open(a.file, "rb") as f:
        while block := f.read(CHUNK):
            s.sendall(block)
    s.shutdown(socket.SHUT_WR)
    answer = []
    read_all(s, answer.append)
    sys.stdout.write(b"".join(answer).decode())
    return 0


def cmd_close(a):
    got = []
    s = connect(a.port, (a.request + "\n").encode())
    try:
        read_all(s, got.append)
        how = "eof"
    except ConnectionResetError:
        how = "reset"
    print(how, sum(map(len, got)))
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("serve")
    c.add_argument("--port-file", required=True)
    c.add_argument("--dir", required=True)
    c = sub.add_parser("get")
    c.add_argument("port", type=int)
    c.add_argument("name")
    c.add_argument("out")
    c.add_argument("--pause", type=float, default=0)
    c = sub.add_parser("put")
    c.add_argument("port", type=int)
    c.add_argument("file")
    c = sub.add_parser("close")
    c.add_argument("port", type=int)
    c.add_argument("request")
    a = p.parse_args()

    if a.cmd != "serve":
        return {"get": cmd_get, "put": cmd_put, "close": cmd_close}[a.cmd](a)
    server = Server(("127.0.0.1", 0), Handler)
    server.dir = a.dir
    write_port_file(a.port_file, server.server_address[1])
    return serve(server)


if __name__ == "__main__":
    sys.exit(main())
