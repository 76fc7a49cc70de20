#!/usr/bin/env python3
"""token_server.py - a registry token service for the tests, on loopback.

usage: token_server.py --port-file F --key KEY.pem --cert CERT.pem
                       --issuer NAME --user USER:PASS [--exp-offset S]
                       [--log FILE]

Answers GET /token?service=...&scope=repository:NAME:ACTIONS with a JWT
(RS256, the signing certificate in the x5c header) granting the asked
actions, when the request carries the right Basic credentials; 401
otherwise.  The registry checks the token against the certificate.

--exp-offset sets the token's "exp" claim relative to now (default 300 s).
The registry accepts tokens up to 60 s past "exp", so an offset of -55
makes tokens that stop working after about 5 s: what a long-lived mount
must survive by fetching a new one.

Binds 127.0.0.1 on a free port and writes the port to --port-file once it
listens.  Each request is logged as one line to --log.
"""
import argparse
import base64
import http.server
import json
import os
import sys
import time
import urllib.parse

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography import x509

from netutil import serve, write_port_file


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Signer:
    def __init__(self, key_path, cert_path, issuer, exp_offset):
        with open(key_path, "rb") as f:
            self.key = serialization.load_pem_private_key(f.read(), None)
        with open(cert_path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        self.x5c = base64.b64encode(
            cert.public_bytes(serialization.Encoding.DER)).decode()
        self.issuer = issuer
        self.exp_offset = exp_offset
        self.serial = 0

    def token(self, service, subject, access):
        now = int(time.time())
        self.serial += 1
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {
            "iss": self.issuer, "sub": subject, "aud": service,
            "iat": now, "nbf": now - 1, "exp": now + self.exp_offset,
            "jti": "t%d-%d" % (os.getpid(), self.serial), "access": access,
        }
        signing_input = (b64url(json.dumps(header).encode()) + "." +
                         b64url(json.dumps(claims).encode()))
        sig = self.key.sign(signing_input.encode(), padding.PKCS1v15(),
                            hashes.SHA256())
        return signing_input + "." + b64url(sig)


def parse_scopes(values):
    access = []
    for value in values:
        for scope in value.split(" "):
            parts = scope.split(":")
            if len(parts) < 3 or parts[0] != "repository":
                continue
            access.append({"type": "repository",
                           "name": ":".join(parts[1:-1]),
                           "actions": [a for a in parts[-1].split(",") if a]})
    return access


def make_handler(signer, credentials, log):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):
            pass

        def answer(self, code, body, extra=()):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in extra:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
            log.write("%s %d %s\n" % (time.strftime("%H:%M:%S"), code,
                                      self.path))
            log.flush()

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            if url.path != "/token":
                return self.answer(404, {"error": "not found"})
            auth = self.headers.get("Authorization", "")
            want = "Basic " + base64.b64encode(credentials.encode()).decode()
            if auth != want:
                return self.answer(401, {"error": "bad credentials"},
                                   [("WWW-Authenticate",
                                     'Basic realm="token"')])
            query = urllib.parse.parse_qs(url.query)
            service = query.get("service", [""])[0]
            access = parse_scopes(query.get("scope", []))
            tok = signer.token(service, credentials.split(":")[0], access)
            self.answer(200, {"token": tok, "access_token": tok,
                              "expires_in": max(signer.exp_offset + 60, 1),
                              "issued_at": time.strftime(
                                  "%Y-%m-%dT%H:%M:%SZ", time.gmtime())})

    return Handler


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port-file", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--issuer", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--exp-offset", type=int, default=300)
    p.add_argument("--log", default=os.devnull)
    a = p.parse_args()

    signer = Signer(a.key, a.cert, a.issuer, a.exp_offset)
    log = open(a.log, "a")
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), make_handler(signer, a.user, log))
    write_port_file(a.port_file, server.server_address[1])
    return serve(server)


if __name__ == "__main__":
    sys.exit(main())
