#!/usr/bin/env python3
"""gen_cases.py - layer sets for the fault kinds of the case tests, written
by this project so that a plain clone tests them too (the shared corpus in
../shared/cases holds the inputs from real reports).

usage: gen_cases.py NAME OUT_DIR
       gen_cases.py --list

Writes OUT_DIR/layerN.tar[.gz|.zst], OUT_DIR/layers (blob names, bottom
layer first) and OUT_DIR/expected.txt in the grammar tests/check_tree.py
reads.  Everything is fixed, so runs compare alike.
"""
import gzip
import io
import os
import struct
import subprocess
import sys
import tarfile

T0 = 1700000000


def enc(b):
    """Percent-encoding of expected.txt for a str or bytes."""
    if isinstance(b, str):
        b = b.encode()
    return "".join(chr(c) if 0x21 <= c <= 0x7e and c not in b"%,=" else
                   "%%%02X" % c for c in b)


def ent(name, kind="f", data=b"", mode=None, uid=0, gid=0, mtime=T0,
        link="", dev=(0, 0), pax=None):
    """One member: kind f file, d dir, l symlink, h hard link, c char,
    b block, p fifo.  Names may be bytes (taken as they are)."""
    t = tarfile.TarInfo(name if isinstance(name, str) else
                        name.decode("utf-8", "surrogateescape"))
    t.type = {"f": tarfile.REGTYPE, "d": tarfile.DIRTYPE,
              "l": tarfile.SYMTYPE, "h": tarfile.LNKTYPE,
              "c": tarfile.CHRTYPE, "b": tarfile.BLKTYPE,
              "p": tarfile.FIFOTYPE}[kind]
    t.mode = mode if mode is not None else \
        {"d": 0o755, "l": 0o777}.get(kind, 0o644)
    t.uid, t.gid, t.mtime, t.uname, t.gname = uid, gid, mtime, "", ""
    t.linkname = link
    t.devmajor, t.devminor = dev
    if pax:
        t.pax_headers = dict(pax)
    t.size = len(data) if kind == "f" else 0
    return t, (data if kind == "f" else None)


def tar_bytes(entries, fmt=tarfile.PAX_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt,
                      encoding="utf-8", errors="surrogateescape") as tf:
        for t, data in entries:
            tf.addfile(t, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


class Case:
    def __init__(self, out):
        self.out = out
        self.names = []

    def layer(self, blob, ext="tar"):
        n = "layer%d.%s" % (len(self.names) + 1, ext)
        with open(os.path.join(self.out, n), "wb") as f:
            f.write(blob)
        self.names.append(n)

    def tar(self, entries, fmt=tarfile.PAX_FORMAT):
        self.layer(tar_bytes(entries, fmt))

    def finish(self, expected):
        with open(os.path.join(self.out, "layers"), "w") as f:
            f.write("".join(n + "\n" for n in self.names))
        with open(os.path.join(self.out, "expected.txt"), "w") as f:
            f.write(expected.lstrip())


def zstd(data, *args):
    return subprocess.run(["zstd", "-q", "-c", *args], input=data,
                          check=True, stdout=subprocess.PIPE).stdout


def pad(b):
    return b + b"\0" * (-len(b) % 512)


def pax_record(k, v):
    """One PAX record; its length field counts its own digits."""
    body = b" " + k + b"=" + v + b"\n"
    n = len(body) + 1
    while len(str(n)) + len(body) != n:
        n += 1
    return str(n).encode() + body


def skippable(payload, magic=0x184D2A50):
    return struct.pack("<II", magic, len(payload)) + payload


# ---- cases -----------------------------------------------------------------

def hardlinks(c):
    """Hard links against lower layers, through absolute and "./" names, to
    symlinks, FIFOs, devices and empty files, chains of links, and links
    whose original name goes away later: whited out in a later layer or
    later in the link's own layer, its directory whited out or made
    opaque, or the name replaced by a new file."""
    c.tar([ent("a/", "d"), ent("a/orig", data=b"orig\n", mode=0o755),
           ent("a/sym", "l", link="orig"), ent("a/fifo", "p"),
           ent("a/empty"), ent("a/null", "c", dev=(1, 3)),
           ent("d/", "d"), ent("d/f", data=b"old\n"),
           ent("d/g", "h", link="d/f"),
           ent("e/", "d"), ent("e/t", data=b"e-old\n"),
           ent("f/", "d"), ent("f/dir/", "d"), ent("f/dir/x", data=b"x\n"),
           ent("o/", "d"), ent("o/x", data=b"o\n"),
           ent("n/", "d"), ent("n/n", data=b"n\n"), ent("n/t", data=b"t\n"),
           ent("w/", "d"), ent("w/x", data=b"w\n")])
    c.tar([ent("b/", "d"),
           ent("b/l1", "h", link="a/orig"),
           ent("b/l2", "h", link="/a/sym"),
           ent("b/l3", "h", link="./a/fifo"),
           ent("b/l4", "h", link="a//empty"),
           ent("b/l5", "h", link="a/null"),
           ent("b/c1", data=b"chain\n"), ent("b/c2", "h", link="b/c1"),
           ent("b/c3", "h", link="b/c2"),
           ent("d/f", data=b"new!\n"),
           ent("e/l", "h", link="e/t"), ent("e/t", data=b"e-new\n"),
           ent("g/", "d"), ent("g/y", "h", link="f/dir/x"),
           ent("g/o", "h", link="o/x"),
           ent("n/n", "h", link="n/t"),
           ent("w/keep", "h", link="w/x"), ent("w/.wh.x")])
    c.tar([ent("a/.wh.orig"), ent("f/.wh.dir"), ent("o/.wh..wh..opq"),
           ent("o/fresh", data=b"fresh\n")])
    c.tar([ent("a/.wh..wh..opq")])
    c.finish("""
result=ok
path=/a children=
path=/b children=c1,c2,c3,l1,l2,l3,l4,l5
path=/b/l1 type=file mode=0755 content=orig%0A nlink=1
path=/b/l2 type=symlink target=orig nlink=1
path=/b/l3 type=fifo nlink=1
path=/b/l4 type=file size=0 nlink=1
path=/b/l5 type=char rdev=1:3 nlink=1
path=/b/c1 type=file content=chain%0A nlink=3
path=/b/c2 same-inode-as=/b/c1
path=/b/c3 same-inode-as=/b/c1
path=/d/f type=file content=new!%0A nlink=1
path=/d/g type=file content=old%0A nlink=1
path=/e/l type=file content=e-old%0A nlink=1
path=/e/t type=file content=e-new%0A nlink=1
path=/f children=
path=/g/y type=file content=x%0A nlink=1
path=/g/o type=file content=o%0A nlink=1
path=/o children=fresh
path=/n/n type=file content=t%0A nlink=2 same-inode-as=/n/t
path=/w children=keep
path=/w/keep type=file content=w%0A nlink=1
""")


def whiteouts(c):
    """Whiteouts of every tar type, recursive whiteouts, whiteout and
    re-creation in one layer in either order, opaque markers before and
    after the layer's own entries, nested and at the root."""
    c.tar([ent("x/", "d"), ent("x/a", data=b"a\n"), ent("x/b", data=b"b\n"),
           ent("x/c", data=b"c\n"), ent("x/d", data=b"d\n"),
           ent("x/sub/", "d"), ent("x/sub/deep/", "d"),
           ent("x/sub/deep/f", data=b"f\n"),
           ent("y/", "d"), ent("y/old", data=b"old\n"),
           ent("y/in/", "d"), ent("y/in/old", data=b"old\n"),
           ent("z/", "d"), ent("z/re", data=b"lower\n"),
           ent("z/re2", data=b"lower\n"), ent("z/a", data=b"za\n")])
    c.tar([ent("x/.wh.a"), ent("x/.wh.b", "h", link="x/.wh.a"),
           ent("x/.wh.c", "l", link="nowhere"),
           ent("x/.wh.d", "d"), ent("x/.wh.sub"),
           ent("y/new", data=b"new\n"), ent("y/in/", "d", mode=0o700),
           ent("y/in/new", data=b"in new\n"), ent("y/.wh..wh..opq"),
           ent("y/in/.wh..wh..opq"),
           ent("z/re", data=b"upper\n"), ent("z/.wh.re"),
           ent("z/.wh.re2"), ent("z/re2", data=b"upper2\n"),
           ent(".wh.a")])
    c.tar([ent("top", data=b"top\n")])
    c.tar([ent(".wh..wh..opq"), ent("only", data=b"only\n")])
    c.finish("""
result=ok
path=/ type=dir children=only
path=/only type=file content=only%0A
""")
    # The root opaque marker of the last layer hides everything; check the
    # layers below it in a second image: same layers minus the last one.


def whiteouts_below(c):
    whiteouts(c)
    os.unlink(os.path.join(c.out, c.names.pop()))
    c.finish("""
result=ok
path=/ children=top,x,y,z
path=/x type=dir children=
path=/y type=dir children=in,new
path=/y/in type=dir mode=0700 children=new
path=/y/in/new type=file content=in%20new%0A
path=/y/new type=file content=new%0A
path=/z children=a,re,re2
path=/z/re type=file content=upper%0A
path=/z/re2 type=file content=upper2%0A
path=/z/a type=file content=za%0A
path=/top type=file content=top%0A
""")


def replace(c):
    """Type changes between layers and duplicates within one layer: the
    later entry wins; a directory over a directory changes attributes
    only; replacing a symlink never writes through it."""
    c.tar([ent("fd", data=b"file\n"), ent("df/", "d"),
           ent("df/child", data=b"c\n"), ent("sd", "l", link="target"),
           ent("target/", "d"), ent("target/t", data=b"t\n"),
           ent("ds/", "d"), ent("ds/x", data=b"x\n"), ent("ff", data=b"1\n"),
           ent("sf", "l", link="target/t"), ent("dv", "c", dev=(1, 3))])
    c.tar([ent("fd/", "d", mode=0o700), ent("fd/in", data=b"in\n"),
           ent("df", data=b"now a file\n"), ent("sd/", "d"),
           ent("sd/inner", data=b"inner\n"), ent("ds", "l", link="target"),
           ent("ff", "p"), ent("sf", data=b"sf file\n"),
           ent("dv/", "d"),
           ent("dup", data=b"first version\n"),
           ent("dup", data=b"second\n", mode=0o600),
           ent("dd/", "d", mode=0o700), ent("dd/c", data=b"c\n"),
           ent("dd/", "d", mode=0o751, uid=7),
           ent("fl", data=b"x"), ent("fl", "l", link="dup"),
           ent("lf", "l", link="dup"), ent("lf", data=b"lf\n"),
           ent("hl", "h", link="dup"), ent("dup", data=b"third\n"),
           ent("hl2", "h", link="dup"),
           ent("fdir", data=b"f"), ent("fdir/", "d"),
           ent("fdir/k", data=b"k\n")])
    c.finish("""
result=ok
path=/fd type=dir mode=0700 children=in
path=/df type=file content=now%20a%20file%0A
path=/sd type=dir children=inner
path=/target children=t
path=/target/t type=file content=t%0A
path=/ds type=symlink target=target
path=/ff type=fifo
path=/sf type=file content=sf%20file%0A
path=/dv type=dir children=
path=/dup type=file mode=0644 content=third%0A nlink=2
path=/hl2 same-inode-as=/dup
path=/hl type=file mode=0600 content=second%0A nlink=1
path=/dd type=dir mode=0751 uid=7 children=c
path=/fl type=symlink target=dup
path=/lf type=file content=lf%0A
path=/fdir type=dir children=k
path=/ children=dd,df,ds,dup,dv,fd,fdir,ff,fl,hl,hl2,lf,sd,sf,target
""")


def root_entries(c):
    """Entries for the root itself in every spelling: they set the root's
    attributes and nothing else."""
    c.tar([ent(".", "d", mode=0o700), ent("a", data=b"a\n")],
          fmt=tarfile.GNU_FORMAT)
    c.tar([ent("./", "d", mode=0o750, uid=3), ent("./b", data=b"b\n")],
          fmt=tarfile.GNU_FORMAT)
    c.tar([ent("/", "d", mode=0o755, uid=0, gid=0, mtime=T0 + 9),
           ent("//./c", data=b"c\n"),
           ent("./.", "d", mode=0o755, mtime=T0 + 9)])
    c.finish("""
result=ok
deadline-seconds=60
path=/ type=dir mode=0755 uid=0 gid=0 mtime=1700000009 children=a,b,c
path=/a type=file content=a%0A
path=/c type=file content=c%0A
""")


def names(c):
    """Names that are not UTF-8 (raw ustar bytes and PAX with
    hdrcharset=BINARY), UTF-8 names, bytes the grammar escapes, 255-byte
    components, and long names and link targets in all three forms."""
    raw = b"caf\xe9-\xff\xfe"
    long_c = b"L" * 255
    deep = "/".join(["d%03d" % i for i in range(60)])
    c.tar([ent(raw, data=b"latin-1 name\n"),
           ent(b"dir-\x80/", "d"), ent(b"dir-\x80/x\x01y", data=b"ctl\n"),
           ent(b"lnk-\xfe", "l", link=b"caf\xe9-\xff\xfe".decode(
               "utf-8", "surrogateescape")),
           ent(b"hard-\xfe", "h", link=raw.decode("utf-8",
                                                  "surrogateescape"))],
          fmt=tarfile.GNU_FORMAT)
    c.tar([ent("\u00fcber-\u65e5\u672c", data=b"utf-8\n"),
           ent("sp ace,eq=pct%", data=b"odd\n"),
           ent(long_c.decode(), data=b"255\n"),
           ent(deep + "/leaf", data=b"deep\n"),
           ent("hl-deep", "h", link=deep + "/leaf"),
           ent("sl-long", "l", link="/" + "t" * 400)])
    c.tar([ent("g/" + "n" * 200, data=b"gnu\n"),
           ent("g/hl", "h", link="g/" + "n" * 200),
           ent("g/sl", "l", link="s" * 300)], fmt=tarfile.GNU_FORMAT)
    c.tar([ent("u" * 120 + "/" + "v" * 90, data=b"ustar\n")],
          fmt=tarfile.USTAR_FORMAT)
    # A PAX path holding bytes that are not UTF-8, flagged BINARY.
    pax_raw = b"pax-\xc3\x28"
    recs = pax_record(b"hdrcharset", b"BINARY") + \
        pax_record(b"path", pax_raw)
    ext = tarfile.TarInfo("././@PaxHeader")
    ext.type = tarfile.XHDTYPE
    ext.size = len(recs)
    hdr = tarfile.TarInfo("placeholder")
    hdr.size, hdr.mtime = 4, T0
    c.layer(ext.tobuf(tarfile.USTAR_FORMAT) + pad(recs) +
            hdr.tobuf(tarfile.USTAR_FORMAT) + pad(b"pax\n") + b"\0" * 1024)
    c.finish("""
result=ok
path=/%s type=file content=latin-1%%20name%%0A nlink=2
path=/%s same-inode-as=/%s
path=/%s type=file content=ctl%%0A
path=/%s type=symlink target=%s
path=/%s children=%s
path=/%s type=file content=utf-8%%0A
path=/%s type=file content=odd%%0A
path=/%s type=file content=255%%0A
path=/%s/leaf type=file content=deep%%0A nlink=2
path=/hl-deep same-inode-as=/%s/leaf
path=/sl-long type=symlink size=401 target=/%s
path=/g/%s type=file content=gnu%%0A nlink=2
path=/g/hl same-inode-as=/g/%s
path=/g/sl type=symlink target=%s
path=/%s/%s type=file content=ustar%%0A
path=/%s type=file content=pax%%0A
""" % (enc(raw), enc(b"hard-\xfe"), enc(raw), enc(b"dir-\x80/x\x01y"),
       enc(b"lnk-\xfe"), enc(raw), enc(b"dir-\x80"), enc(b"x\x01y"),
       enc("\u00fcber-\u65e5\u672c"), enc("sp ace,eq=pct%"), enc(long_c),
       deep, deep, "t" * 400, "n" * 200, "n" * 200, "s" * 300, "u" * 120,
       "v" * 90, enc(pax_raw)))


def attrs(c):
    """Owners past 7 octal digits (GNU base-256 and PAX), times (PAX
    nanoseconds, before 1970, past 2^33 s), all 12 mode bits, device
    numbers past 8 bits, xattrs byte-exact (binary, empty)."""
    cap = bytes.fromhex("0100000200200000000000000000000000000000")
    c.tar([ent("big-gnu", uid=2**21, gid=2**31 + 5),
           ent("mt-old", mtime=-86400), ent("mt-far", mtime=2**34 + 3),
           ent("dev-big", "b", dev=(4095, 1048575), mode=0o640),
           ent("dev-small", "c", dev=(0, 0))],
          fmt=tarfile.GNU_FORMAT)
    c.tar([ent("big-pax", uid=4294967294, gid=123456789),
           ent("ns", pax={"mtime": "1700000000.123456789"}),
           ent("ns-neg", pax={"mtime": "-1.5"}),
           ent("suid", mode=0o4755), ent("sgid", mode=0o2711),
           ent("sticky/", "d", mode=0o1777), ent("all", mode=0o7777),
           ent("none", mode=0o0000, data=b"secret\n"),
           ent("cap", data=b"x", pax={
               "SCHILY.xattr.security.capability":
                   cap.decode("latin-1"),
               "SCHILY.xattr.user.binary": b"\x00\xff\x80\x7f".decode(
                   "utf-8", "surrogateescape"),
               "SCHILY.xattr.user.empty": "",
               "SCHILY.xattr.user.utf8": "\u00e9t\u00e9"}),
           ent("cap-hl", "h", link="cap")])
    c.finish("""
result=ok
path=/big-gnu type=file uid=2097152 gid=2147483653
path=/big-pax type=file uid=4294967294 gid=123456789
path=/mt-old mtime=-86400
path=/mt-far mtime=17179869187
path=/ns mtime=1700000000.123456789
path=/ns-neg mtime=-2.500000000
path=/dev-big type=block rdev=4095:1048575 mode=0640
path=/dev-small type=char rdev=0:0
path=/suid mode=4755
path=/sgid mode=2711
path=/sticky type=dir mode=1777
path=/all mode=7777
path=/none mode=0000 content=secret%%0A
path=/cap xattr=security.capability:hex:%s xattr=user.empty:hex: xattr=user.utf8:hex:%s xattr=user.binary:hex:00ff807f nlink=2
path=/cap-hl same-inode-as=/cap xattr=security.capability:hex:%s
""" % (cap.hex(), "\u00e9t\u00e9".encode().hex(), cap.hex()))


def sparse(c):
    """Sparse files as GNU tar writes them (old GNU, PAX 0.0, 0.1 and
    1.0), with a hole at the end, data only at the end, and no data."""
    src = os.path.join(c.out, "src")
    os.makedirs(src)
    files = {"mid": [(0, b"A" * 5000), (4 << 20, b"B" * 7000)],
             "tail-hole": [(0, b"C" * 4096)],
             "tail-data": [((5 << 20) - 3, b"END")],
             "holes-only": []}
    sizes = {"mid": 6 << 20, "tail-hole": 9 << 20, "tail-data": 5 << 20,
             "holes-only": 4 << 20}
    for n, segs in files.items():
        with open(os.path.join(src, n), "wb") as f:
            for off, d in segs:
                f.seek(off)
                f.write(d)
            f.truncate(sizes[n])
    forms = (("gnu", "gnu", []), ("posix", "pax00", ["--sparse-version=0.0"]),
             ("posix", "pax01", ["--sparse-version=0.1"]),
             ("posix", "pax10", ["--sparse-version=1.0"]))
    for fmt, ext, opt in forms:
        tarpath = os.path.join(c.out, "layer%d.tar" % (len(c.names) + 1))
        subprocess.run(["tar", "-C", src, "--sparse", "--format=" + fmt,
                        "--numeric-owner", "--owner=0", "--group=0",
                        "--mtime=@%d" % T0, "--transform=s|^|%s-|" % ext,
                        "-cf", tarpath] + opt + sorted(files), check=True)
        c.names.append(os.path.basename(tarpath))
    subprocess.run(["rm", "-rf", src], check=True)
    lines = ["result=ok"]
    for _, ext, _ in forms:
        for n in sorted(files):
            lines.append("path=/%s-%s type=file size=%d" %
                         (ext, n, sizes[n]))
            for off, d in files[n]:
                lines.append("at=/%s-%s offset=%d hex=%s" %
                             (ext, n, max(off - 1, 0),
                              ("00" if off else "") + d[:16].hex()))
            lines.append("at=/%s-%s offset=%d hex=0000" %
                         (ext, n, sizes[n] // 2 + 1))
    c.finish("\n".join(lines) + "\n")


def empty_layers(c):
    """Empty layers in every form and zero-length files, also last in a
    layer, and a tar that ends at a block boundary without its trailer."""
    c.layer(b"")
    c.layer(b"\0" * 1024)
    c.layer(gzip.compress(b"\0" * 10240, mtime=0), "tar.gz")
    c.layer(zstd(b"\0" * 1024), "tar.zst")
    c.tar([ent("e0"), ent("d/", "d"), ent("d/e1", mode=0o755)])
    c.layer(tar_bytes([ent("nt", data=b"no trailer\n")])[:1024])
    c.finish("""
result=ok
path=/e0 type=file size=0
path=/d/e1 type=file mode=0755 size=0
path=/nt type=file content=no%20trailer%0A
path=/ children=d,e0,nt
""")


def frames(c):
    """Multi-member gzip with an empty member, and zstd with skippable
    frames before, between and after its frames, a frame boundary inside
    a tar header."""
    t = tar_bytes([ent("g/one", data=b"one\n"),
                   ent("g/two", data=bytes(range(256)) * 300)])
    cut = 700
    c.layer(gzip.compress(t[:cut], mtime=0) + gzip.compress(b"", mtime=0) +
            gzip.compress(t[cut:], mtime=0), "tar.gz")
    t = tar_bytes([ent("z/one", data=b"z one\n"),
                   ent("z/two", data=bytes(range(255, -1, -1)) * 300)])
    c.layer(skippable(b"head") + zstd(t[:600]) + skippable(b"", 0x184D2A5F) +
            zstd(t[600:5000], "--no-check") + skippable(b"x" * 100) +
            zstd(t[5000:]) + skippable(b"tail"), "tar.zst")
    c.finish("""
result=ok
path=/g/one type=file content=one%%0A
path=/g/two type=file size=76800 sha256=%s
path=/z/one type=file content=z%%20one%%0A
path=/z/two type=file size=76800 sha256=%s
""" % (__import__("hashlib").sha256(bytes(range(256)) * 300).hexdigest(),
       __import__("hashlib").sha256(bytes(range(255, -1, -1)) * 300)
       .hexdigest()))


def bad_blob(kind):
    """A layer the build must refuse: the same small tar cut or damaged in
    one way; a good layer below it must not be served alone."""
    def gen(c):
        c.tar([ent("base", data=b"base\n")])
        t = tar_bytes([ent("f%d" % i, data=bytes([i]) * 3000)
                       for i in range(4)])
        if kind == "zstd-truncated":
            z = zstd(t)
            c.layer(z[:len(z) - 7], "tar.zst")
        elif kind == "zstd-bad-checksum":
            z = bytearray(zstd(t))
            z[-1] ^= 0xff
            c.layer(bytes(z), "tar.zst")
        elif kind == "gzip-bad-crc":
            z = bytearray(gzip.compress(t, mtime=0))
            z[-8] ^= 0xff
            c.layer(bytes(z), "tar.gz")
        elif kind == "tar-eof-in-header":
            c.layer(t[:512 + 3000 + 88 + 100])
        elif kind == "tar-eof-in-data":
            c.layer(t[:512 + 1000])
        elif kind == "tar-bad-checksum":
            b = bytearray(t)
            b[512 + 3072 + 10] ^= 0x20
            c.layer(bytes(b))
        c.finish("result=error\n")
    return gen


def bad_device(c):
    """Device numbers Linux cannot hold (major past 12 bits, minor past
    20): refused, not cut to another device."""
    c.tar([ent("ok", data=b"ok\n")])
    c.tar([ent("dev", "c", dev=(5000, 1)), ent("dev2", "b", dev=(1, 2**20))],
          fmt=tarfile.GNU_FORMAT)
    c.finish("result=error\n")


def traversal(kind):
    """A name, a hard-link target or a whiteout that climbs out of the
    root with "..": rejected, or kept inside the image (never applied
    outside it, never deleting what it does not name)."""
    bad = {"name": ent("x/../../../outside", data=b"bad\n"),
           "hardlink": ent("hl", "h", link="sub/../../ok"),
           "whiteout": ent("sub/../../.wh.ok")}[kind]

    def gen(c):
        c.tar([ent("ok", data=b"ok\n"), ent("sub/", "d"),
               ent("up", "l", link="../../..")])
        c.tar([bad])
        c.finish("""
result=error
--- or ---
result=ok
host-escape=none
path=/outside absent
path=/ok content=ok%0A
""")
    return gen


def symlink_parents(c):
    """Entries, hard links and whiteouts whose parent is a symlink (as
    merged usr layouts have): placed where the link leads, resolved
    inside the image; links pointing out of the image stay inside it."""
    c.tar([ent("usr/", "d"), ent("usr/lib/", "d"),
           ent("usr/lib/old", data=b"old\n"), ent("usr/lib/gone", data=b"g\n"),
           ent("lib", "l", link="usr/lib"), ent("abs", "l", link="/usr"),
           ent("esc", "l", link="../../../../usr/lib"),
           ent("loop1", "l", link="loop2"), ent("loop2", "l", link="loop1")])
    c.tar([ent("lib/new", data=b"new\n"), ent("abs/lib/viaabs", data=b"a\n"),
           ent("esc/viaesc", data=b"e\n"), ent("lib/hl", "h", link="lib/old"),
           ent("lib/.wh.gone"), ent("lib/sub/", "d", mode=0o700),
           ent("lib/sub/f", data=b"sub\n")])
    c.finish("""
# Refusing is allowed: layer tools disagree here (a flat unpack follows
# the link, an overlay diff directory replaces it by a directory).
result=error
--- or ---
result=ok
host-escape=none
path=/lib type=symlink target=usr/lib
path=/usr/lib children=hl,new,old,sub,viaabs,viaesc
path=/usr/lib/new type=file content=new%0A
path=/usr/lib/viaabs type=file content=a%0A
path=/usr/lib/viaesc type=file content=e%0A
path=/usr/lib/hl same-inode-as=/usr/lib/old nlink=2
path=/usr/lib/sub type=dir mode=0700 children=f
path=/ children=abs,esc,lib,loop1,loop2,usr
""")


def symlink_loop(c):
    c.tar([ent("loop1", "l", link="loop2"), ent("loop2", "l", link="loop1")])
    c.tar([ent("loop1/x", data=b"x\n")])
    c.finish("result=error\n")


CASES = {
    "hardlinks": hardlinks, "whiteouts": whiteouts,
    "whiteouts_below": whiteouts_below, "replace": replace,
    "root_entries": root_entries, "names": names, "attrs": attrs,
    "sparse": sparse, "empty_layers": empty_layers, "frames": frames,
    "symlink_parents": symlink_parents, "symlink_loop": symlink_loop,
    "bad_device": bad_device,
}
for k in ("zstd-truncated", "zstd-bad-checksum", "gzip-bad-crc",
          "tar-eof-in-header", "tar-eof-in-data", "tar-bad-checksum"):
    CASES["bad_" + k.replace("-", "_")] = bad_blob(k)
for k in ("name", "hardlink", "whiteout"):
    CASES["traversal_" + k] = traversal(k)


def main():
    if sys.argv[1:] == ["--list"]:
        print("\n".join(sorted(CASES)))
        return 0
    if len(sys.argv) != 3 or sys.argv[1] not in CASES:
        sys.stderr.write(__doc__)
        return 2
    os.makedirs(sys.argv[2], exist_ok=True)
    CASES[sys.argv[1]](Case(sys.argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
