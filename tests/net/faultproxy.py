#!/usr/bin/env python3
"""faultproxy.py - an HTTP reverse proxy that misbehaves on request, for
the fetcher's fault tests.  Loopback only.

usage: faultproxy.py --upstream http://127.0.0.1:PORT --port-file F
                     [--port P] [--storage-port-file F2] [--blob-dir DIR]
                     [--log FILE]

Requests are passed to the upstream server (a registry or a web server)
and its answers passed back, except for blob reads (GET of a path with
"/blobs/" in it) while a fault is set.  The fault is set by the tests
with GET /__fault?mode=MODE[&n=N][&arg=A] (answered 200 by the proxy
itself, never forwarded); n limits the fault to the next N blob reads
(default: until changed).  Modes:

  pass            no fault
  ignore-range    drop the Range header: 200 with the whole blob
  no-multirange   400 for a Range with several ranges (else pass)
  status          answer status A (e.g. 429, 503) with Retry-After: 0
  stall           send the headers and half the body, then nothing
  reset           send half the body, then close the connection
  corrupt         flip one byte in the middle of the body (with
                  arg=ranges, only of answers to range requests)
  short           send half the body with a full Content-Length, close
  slow            pass, sending the body at A bytes per second
  other-range     answer 206 for the range 100 bytes further on, saying
                  so in Content-Range
  shift           the same bytes, but claiming in Content-Range that
                  they are the range asked for (a lying server)
  redirect        307 to the storage listener on another host name
                  ("localhost" instead of 127.0.0.1), which serves the
                  blob from --blob-dir like presigned blob storage: it
                  refuses HEAD (403) and any request that carries an
                  Authorization header (400), and honours Range

Every request is logged to --log as one JSON line: listener, method,
path, range, status, body bytes sent.
"""
import argparse
import http.client
import http.server
import json
import os
import re
import socket
import sys
import threading
import time
import urllib.parse

from netutil import serve, write_port_file

HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer",
       "upgrade", "proxy-authorization", "proxy-authenticate"}


class Fault:
    def __init__(self):
        self.lock = threading.Lock()
        self.mode = "pass"
        self.left = -1
        self.arg = ""

    def set(self, mode, n, arg):
        with self.lock:
            self.mode, self.left, self.arg = mode, n, arg

    def take(self):
        """The fault for the next blob read, counting it down."""
        with self.lock:
            mode, arg = self.mode, self.arg
            if self.left == 0:
                return "pass", ""
            if self.left > 0:
                self.left -= 1
            return mode, arg


class Log:
    def __init__(self, path):
        self.f = open(path, "a")
        self.lock = threading.Lock()

    def write(self, **rec):
        rec["t"] = round(time.time(), 3)
        with self.lock:
            self.f.write(json.dumps(rec) + "\n")
            self.f.flush()


def parse_range(value, size):
    """(start, end) inclusive for a single "bytes=a-b" range, else None."""
    m = re.fullmatch(r"bytes=(\d*)-(\d*)", value or "")
    if not m or (m.group(1) == "" and m.group(2) == ""):
        return None
    if m.group(1) == "":
        n = int(m.group(2))
        return max(size - n, 0), size - 1
    a = int(m.group(1))
    b = int(m.group(2)) if m.group(2) else size - 1
    return a, min(b, size - 1)


class Base(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    listener = "proxy"

    def log_message(self, fmt, *args):
        pass

    def record(self, status, sent):
        self.server.log.write(listener=self.listener, method=self.command,
                              path=self.path,
                              range=self.headers.get("Range"),
                              status=status, bytes=sent)

    def simple(self, code, text, extra=()):
        data = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.record(code, len(data))

    def send_body(self, reader, length, mode, arg):
        """Sends @length body bytes from @reader as @mode says; returns
        the bytes sent."""
        sent = 0
        cut = length // 2 if mode in ("stall", "reset", "short") else length
        flip = length // 2 if mode == "corrupt" else -1
        rate = int(arg) if mode == "slow" and arg else 0
        t0 = time.time()
        while sent < cut:
            data = reader.read(min(65536, cut - sent))
            if not data:
                break
            if sent <= flip < sent + len(data):
                b = bytearray(data)
                b[flip - sent] ^= 0x5A
                data = bytes(b)
            self.wfile.write(data)
            sent += len(data)
            if rate:
                ahead = sent / rate - (time.time() - t0)
                if ahead > 0:
                    time.sleep(ahead)
        self.wfile.flush()
        if mode == "stall":
            # Hold the connection open, sending nothing, until the
            # client gives up (or two minutes pass).
            self.connection.settimeout(120)
            try:
                self.connection.recv(1)
            except OSError:
                pass
            self.close_connection = True
        elif mode in ("reset", "short"):
            if mode == "reset":
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER,
                    b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.close_connection = True
        return sent


class ProxyHandler(Base):
    def do_HEAD(self):
        self.forward()

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/__fault":
            q = urllib.parse.parse_qs(url.query)
            self.server.fault.set(q.get("mode", ["pass"])[0],
                                  int(q.get("n", ["-1"])[0]),
                                  q.get("arg", [""])[0])
            return self.simple(200, "ok\n")
        self.forward()

    def forward(self):
        is_blob = "/blobs/" in self.path and self.command == "GET"
        mode, arg = self.server.fault.take() if is_blob else ("pass", "")
        rng = self.headers.get("Range")
        if mode == "corrupt" and arg == "ranges" and not rng:
            mode = "pass"
        if mode == "status":
            return self.simple(int(arg or 503), "injected fault\n",
                               [("Retry-After", "0")])
        if mode == "no-multirange" and rng and "," in rng:
            return self.simple(400, "multiple ranges refused\n")
        if mode == "redirect":
            loc = "http://localhost:%d/storage%s?X-Sig=%d" % (
                self.server.storage_port, urllib.parse.urlsplit(
                    self.path).path, int(time.time()))
            return self.simple(307, "", [("Location", loc)])

        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in HOP and k.lower() != "host"}
        if mode == "ignore-range":
            headers.pop("Range", None)
        m = re.fullmatch(r"bytes=(\d+)-(\d+)", rng or "")
        if mode in ("other-range", "shift") and m:
            a, b = int(m.group(1)) + 100, int(m.group(2)) + 100
            headers["Range"] = "bytes=%d-%d" % (a, b)
        conn = http.client.HTTPConnection(self.server.upstream_host,
                                          self.server.upstream_port,
                                          timeout=60)
        try:
            conn.request(self.command, self.path, headers=headers)
            resp = conn.getresponse()
        except OSError as e:
            return self.simple(502, "upstream: %s\n" % e)
        length = resp.getheader("Content-Length")
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if mode == "shift" and k.lower() == "content-range" and m:
                v = re.sub(r"^bytes \d+-\d+", "bytes %s-%s" % m.groups(), v)
            if k.lower() not in HOP:
                self.send_header(k, v)
        if length is None:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        sent = 0
        try:
            if self.command != "HEAD":
                if length is None:
                    while True:
                        data = resp.read(65536)
                        if not data:
                            break
                        self.wfile.write(data)
                        sent += len(data)
                else:
                    sent = self.send_body(resp, int(length), mode, arg)
        except OSError:
            self.close_connection = True
        finally:
            conn.close()
        self.record(resp.status, sent)


class StorageHandler(Base):
    listener = "storage"

    def do_HEAD(self):
        self.simple(403, "signature does not allow HEAD\n")

    def do_GET(self):
        if "Authorization" in self.headers:
            return self.simple(400, "only one auth mechanism allowed\n")
        path = urllib.parse.urlsplit(self.path).path
        m = re.search(r"/blobs/sha256:([0-9a-f]{64})$", path)
        if not m or not self.server.blob_dir:
            return self.simple(404, "no such blob\n")
        h = m.group(1)
        f = os.path.join(self.server.blob_dir, h[:2], h, "data")
        try:
            fh = open(f, "rb")
        except OSError:
            return self.simple(404, "no such blob\n")
        with fh:
            size = os.fstat(fh.fileno()).st_size
            r = parse_range(self.headers.get("Range"), size)
            if r and r[0] >= size:
                return self.simple(416, "")
            self.send_response(206 if r else 200)
            a, b = r if r else (0, size - 1)
            if r:
                self.send_header("Content-Range",
                                 "bytes %d-%d/%d" % (a, b, size))
            self.send_header("Content-Length", str(b - a + 1))
            self.end_headers()
            fh.seek(a)
            try:
                sent = self.send_body(fh, b - a + 1, "pass", "")
            except OSError:
                sent = -1
            self.record(206 if r else 200, sent)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--upstream", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file", required=True)
    p.add_argument("--storage-port", type=int, default=0)
    p.add_argument("--storage-port-file")
    p.add_argument("--blob-dir")
    p.add_argument("--log", default=os.devnull)
    a = p.parse_args()

    up = urllib.parse.urlsplit(a.upstream)
    log = Log(a.log)
    fault = Fault()
    storage = Server(("127.0.0.1", a.storage_port), StorageHandler)
    storage.log, storage.fault, storage.blob_dir = log, fault, a.blob_dir
    proxy = Server(("127.0.0.1", a.port), ProxyHandler)
    proxy.log, proxy.fault = log, fault
    proxy.upstream_host, proxy.upstream_port = up.hostname, up.port or 80
    proxy.storage_port = storage.server_address[1]
    threading.Thread(target=storage.serve_forever, daemon=True).start()
    if a.storage_port_file:
        write_port_file(a.storage_port_file, storage.server_address[1])
    write_port_file(a.port_file, proxy.server_address[1])
    return serve(proxy)


if __name__ == "__main__":
    sys.exit(main())
