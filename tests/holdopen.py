#!/usr/bin/env python3
"""holdopen.py FILE DIR OUT - a program that keeps using a mount while
its daemon is restarted under it.

Opens FILE and DIR, reads FILE's first 4 KiB and the first few entries
of DIR (getdents64 with a small buffer, so that the rest must be asked
of the daemon later), makes DIR its working directory, writes OUT.ready
and waits for OUT.go.  Then reads the rest of the listing through the
same directory stream, all of FILE through the same descriptor, and
writes OUT as JSON: inode numbers before and after, FILE's SHA-256 and
DIR's entries with their inode numbers.
"""
import ctypes
import hashlib
import json
import os
import struct
import sys
import time

SYS_GETDENTS64 = {"x86_64": 217, "aarch64": 61}[os.uname().machine]
libc = ctypes.CDLL(None, use_errno=True)


def getdents(fd, size):
    buf = ctypes.create_string_buffer(size)
    n = libc.syscall(SYS_GETDENTS64, fd, buf, size)
    if n < 0:
        raise OSError(ctypes.get_errno(), "getdents64")
    out, pos, raw = [], 0, buf.raw[:n]
    while pos < n:
        ino, _, reclen = struct.unpack_from("<QqH", raw, pos)
        name = raw[pos + 19:pos + reclen].split(b"\0", 1)[0]
        out.append((name.decode("utf-8", "surrogateescape"), ino))
        pos += reclen
    return out


def main():
    path, dirpath, out = sys.argv[1:4]
    fd = os.open(path, os.O_RDONLY)
    dfd = os.open(dirpath, os.O_RDONLY | os.O_DIRECTORY)
    ino_before = os.fstat(fd).st_ino
    dir_ino_before = os.fstat(dfd).st_ino
    head = os.pread(fd, 4096, 0)
    entries = getdents(dfd, 512)
    first = len(entries)
    os.chdir(dirpath)
    open(out + ".ready", "w").close()

    for _ in range(1200):
        if os.path.exists(out + ".go"):
            break
        time.sleep(0.05)
    while True:
        more = getdents(dfd, 512)
        if not more:
            break
        entries += more
    h, off = hashlib.sha256(), 0
    while True:
        b = os.pread(fd, 1 << 20, off)
        if not b:
            break
        h.update(b)
        off += len(b)
    result = {
        "ino_before": ino_before,
        "ino_after": os.fstat(fd).st_ino,
        "ino_path": os.stat(path).st_ino,
        "dir_ino_before": dir_ino_before,
        "dir_ino_after": os.fstat(dfd).st_ino,
        "head_ok": head == os.pread(fd, 4096, 0),
        "sha256": h.hexdigest(),
        "size": off,
        "first_batch": first,
        "cwd_listing": sorted(os.listdir(".")),
        "entries": sorted([n, i] for n, i in entries
                          if n not in (".", "..")),
    }
    with open(out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
