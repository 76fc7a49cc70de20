#!/usr/bin/env python3
"""readcheck.py - read files through a mount and judge what a reader saw.

usage: readcheck.py [--expect ok|eio] [--within SECONDS] [--offset N]
                    [--length N] EXPECTED ACTUAL [EXPECTED ACTUAL ...]

Reads each ACTUAL file (a path in the mount) in 128 KiB pieces, from
--offset for --length bytes (default: all of it), and compares every byte
it got with the same range of EXPECTED (the oracle's copy).

With --expect ok (the default) every read must succeed with the right
bytes.  With --expect eio the reads must end in EIO, and every byte
returned before that must be right; --within bounds the time until the
EIO.  A wrong byte is always a failure, whatever was expected.

Prints one line per file; exits 0 when everything was as expected, 1
when not, 3 when a wrong byte was returned.
"""
import argparse
import errno
import os
import sys
import time

PIECE = 128 << 10


def check(exp_path, act_path, offset, length):
    """('ok'|'eio'|'wrong'|'error', detail, seconds)"""
    t0 = time.monotonic()
    with open(exp_path, "rb") as f:
        f.seek(offset)
        want = f.read(length if length >= 0 else -1)
    got = 0
    try:
        fd = os.open(act_path, os.O_RDONLY)
    except OSError as e:
        return ("eio" if e.errno == errno.EIO else "error",
                "open: %s" % e.strerror, time.monotonic() - t0)
    try:
        while got < len(want) or length < 0:
            try:
                size = PIECE if length < 0 else min(PIECE, len(want) - got)
                data = os.pread(fd, size, offset + got)
            except OSError as e:
                kind = "eio" if e.errno == errno.EIO else "error"
                return (kind, "%s after %d bytes" % (e.strerror, got),
                        time.monotonic() - t0)
            if not data:
                break
            if data != want[got:got + len(data)]:
                bad = next((i for i in range(len(data))
                            if got + i >= len(want) or
                            data[i] != want[got + i]), 0)
                return ("wrong", "wrong byte at offset %d" %
                        (offset + got + bad), time.monotonic() - t0)
            got += len(data)
    finally:
        os.close(fd)
    if got != len(want):
        return ("wrong", "read %d of %d bytes" % (got, len(want)),
                time.monotonic() - t0)
    return "ok", "%d bytes right" % got, time.monotonic() - t0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--expect", choices=("ok", "eio"), default="ok")
    p.add_argument("--within", type=float, default=0)
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--length", type=int, default=-1)
    p.add_argument("pairs", nargs="+")
    a = p.parse_args()
    if len(a.pairs) % 2:
        p.error("give EXPECTED ACTUAL pairs")

    status = 0
    for exp, act in zip(a.pairs[0::2], a.pairs[1::2]):
        kind, detail, secs = check(exp, act, a.offset, a.length)
        verdict = "as expected"
        if kind == "wrong":
            status, verdict = 3, "WRONG BYTES"
        elif kind != a.expect:
            status, verdict = max(status, 1), "expected %s" % a.expect
        elif a.within and secs > a.within:
            status = max(status, 1)
            verdict = "took longer than %.1f s" % a.within
        print("readcheck: %s: %s (%s) in %.2f s: %s" %
              (act, kind, detail, secs, verdict))
    return status


if __name__ == "__main__":
    sys.exit(main())
