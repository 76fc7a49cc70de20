#!/usr/bin/env python3
"""gen_layers.py - write small layer tars that hold every kind of entry a
layer can hold, for the builder and mount tests.

usage: gen_layers.py OUT_DIR

Writes OUT_DIR/l1.tar (base: every entry type, ownership, modes, xattrs,
nanosecond times, long names, small/large/empty files, hard links) and
OUT_DIR/l2.tar (changes on top: whiteouts of a file and a directory, an
opaque directory, type changes both ways, a hard link to a file of layer
1, metadata-only change of a directory, a replaced file).  The sparse
layer l3.tar is written by GNU tar (Python cannot write sparse entries).
The content is fixed (seeded), so runs compare alike.
"""
import io
import os
import random
import subprocess
import sys
import tarfile

rng = random.Random(20261203)
MTIME = 1700000000


def info(name, kind=tarfile.REGTYPE, mode=0o644, size=0, uid=0, gid=0,
         mtime_ns=None, link="", xattrs=None):
    t = tarfile.TarInfo(name)
    t.type = kind
    t.mode = mode
    t.size = size
    t.uid, t.gid = uid, gid
    t.uname = t.gname = ""
    t.linkname = link
    ns = mtime_ns if mtime_ns is not None else MTIME * 10**9 + rng.randrange(10**9)
    t.mtime = ns // 10**9
    t.pax_headers = {"mtime": "%d.%09d" % (ns // 10**9, ns % 10**9)}
    for k, v in (xattrs or {}).items():
        t.pax_headers["SCHILY.xattr." + k] = v
    return t


def add_file(tf, name, data, **kw):
    tf.addfile(info(name, size=len(data), **kw), io.BytesIO(data))


def add_dir(tf, name, mode=0o755, **kw):
    tf.addfile(info(name, tarfile.DIRTYPE, mode=mode, **kw))


def blob(n):
    return bytes(rng.getrandbits(8) for _ in range(n)) if n < 65536 else \
        rng.randbytes(n)


def layer1(tf):
    add_dir(tf, "./")
    for d in ("etc", "usr", "usr/bin", "usr/lib", "usr/share", "usr/share/doc",
              "var", "var/tmp", "srv", "srv/gone", "srv/opaque", "srv/typed",
              "deep"):
        add_dir(tf, d)
    add_dir(tf, "tmp", mode=0o1777)
    add_file(tf, "etc/hostname", b"localhost\n")
    add_file(tf, "etc/empty", b"")
    add_file(tf, "etc/shadow", b"root:*:19000:0:99999:7:::\n", mode=0o640,
             gid=42)
    add_file(tf, "usr/bin/su", blob(40000), mode=0o4755)
    add_file(tf, "usr/bin/chage", blob(3000), mode=0o2755, gid=42)
    add_file(tf, "usr/bin/ping", blob(5000), mode=0o755,
             xattrs={"security.capability":
                     "\x01\x00\x00\x02\x00\x20\x00\x00" + "\x00" * 12})
    add_file(tf, "usr/bin/perl", blob(300000), mode=0o755)
    tf.addfile(info("usr/bin/perl5.36", tarfile.LNKTYPE, mode=0o755,
                    link="usr/bin/perl"))
    add_file(tf, "usr/lib/libbig.so", blob(5 * 1024 * 1024 + 123), mode=0o644)
    add_file(tf, "usr/lib/libmid.so", blob(700000))
    for i in range(300):
        add_file(tf, "usr/share/doc/f%03d.txt" % i,
                 ("file %d\n" % i).encode() * rng.randrange(1, 400))
    tf.addfile(info("usr/bin/python3", tarfile.SYMTYPE, mode=0o777,
                    link="python3.11"))
    tf.addfile(info("usr/bin/abs", tarfile.SYMTYPE, mode=0o777,
                    link="/etc/hostname"))
    tf.addfile(info("var/fifo", tarfile.FIFOTYPE, mode=0o600))
    t = info("var/null", tarfile.CHRTYPE, mode=0o666)
    t.devmajor, t.devminor = 1, 3
    tf.addfile(t)
    t = info("var/sda", tarfile.BLKTYPE, mode=0o660, gid=6)
    t.devmajor, t.devminor = 8, 0
    tf.addfile(t)
    add_file(tf, "var/tmp/owned", b"x", uid=2000000, gid=3000000)
    add_file(tf, "var/tmp/user-xattr", b"y",
             xattrs={"user.comment": "hello", "user.bin": "\udcff\x00\udc80"})
    add_file(tf, "var/tmp/old", b"old", mtime_ns=-86400 * 10**9 + 5)
    long = "deep/" + "d" * 120 + "/" + "n" * 200
    add_dir(tf, "deep/" + "d" * 120)
    add_file(tf, long, b"long name\n")
    add_file(tf, "deep/sp ace & 'quote' \"dq\"", b"odd\n")
    add_file(tf, "deep/\u00e9t\u00e9", b"utf8\n")
    for i in range(5):
        add_file(tf, "srv/gone/%d" % i, b"gone\n")
    add_file(tf, "srv/opaque/lower", b"lower\n")
    add_dir(tf, "srv/opaque/sub")
    add_file(tf, "srv/opaque/sub/x", b"x\n")
    add_file(tf, "srv/typed/file-to-dir", b"f\n")
    add_dir(tf, "srv/typed/dir-to-file")
    add_file(tf, "srv/typed/dir-to-file/inner", b"i\n")
    add_file(tf, "srv/replaced", b"version 1\n")
    add_file(tf, "srv/keep", b"keep\n")


def layer2(tf):
    add_dir(tf, "srv", mode=0o750)          # metadata-only change
    add_file(tf, "srv/.wh.gone", b"")       # whiteout of a directory
    add_file(tf, "etc/.wh.empty", b"")      # whiteout of a file
    add_dir(tf, "srv/opaque")
    add_file(tf, "srv/opaque/.wh..wh..opq", b"")
    add_file(tf, "srv/opaque/upper", b"upper\n")
    add_dir(tf, "srv/typed/file-to-dir")
    add_file(tf, "srv/typed/file-to-dir/now", b"now a dir\n")
    add_file(tf, "srv/typed/dir-to-file", b"now a file\n")
    add_file(tf, "srv/replaced", b"version 2, longer\n", mode=0o600)
    # A hard link to a file that only a lower layer holds.
    tf.addfile(info("srv/keep-link", tarfile.LNKTYPE, link="srv/keep"))
    add_file(tf, "usr/lib/libnew.so", blob(200000))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, fill in (("l1.tar", layer1), ("l2.tar", layer2)):
        with tarfile.open(os.path.join(out, name), "w",
                          format=tarfile.PAX_FORMAT, encoding="utf-8",
                          errors="surrogateescape") as tf:
            fill(tf)
    src = os.path.join(out, "sparse-src")
    os.makedirs(src, exist_ok=True)
    with open(os.path.join(src, "holes.img"), "wb") as f:
        f.truncate(64 * 1024 * 1024)
        for off in (0, 10 * 1024 * 1024 + 17, 64 * 1024 * 1024 - 4096):
            f.seek(off)
            f.write(b"data at %d\n" % off * 50)
    os.utime(os.path.join(src, "holes.img"), ns=(MTIME * 10**9, MTIME * 10**9))
    os.utime(src, ns=(MTIME * 10**9, MTIME * 10**9))
    subprocess.run(["tar", "--format=pax", "--sparse", "--numeric-owner",
                    "-cf", os.path.join(out, "l3.tar"), "-C", src, "."],
                   check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
