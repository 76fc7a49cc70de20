#!/usr/bin/env python3
"""check_tree.py - hold a mounted image against a case's expected.txt.

usage: check_tree.py EXPECTED --mount DIR [--host DIR --host-before FILE]
                     [--started EPOCH]
       check_tree.py EXPECTED --failed
       check_tree.py --snapshot DIR [--exclude NAME...] > FILE

EXPECTED holds one or more sections separated by "--- or ---"; the image
passes when any one section holds.  With --mount every directive of each
"result=ok" section is checked through the mount; with --failed (the build
or the mount refused the image) only a "result=error" section can hold.
--started is when the build began (seconds since the epoch, as from
date +%s.%N): deadline-seconds counts from there to the end of the check.
--snapshot lists every path below DIR with its type, size, mode and a
digest of its contents; host-escape=none compares the listing taken before
the build with one taken after the check.

Paths, contents, link targets and names are bytes: every byte outside
printable ASCII and the characters % , = are percent-encoded in EXPECTED.
Exit 0 when a section holds, 1 otherwise (each failed check is printed).
"""
import argparse
import errno
import hashlib
import os
import stat
import sys
import time

TYPES = {
    "file": stat.S_ISREG, "dir": stat.S_ISDIR, "symlink": stat.S_ISLNK,
    "char": stat.S_ISCHR, "block": stat.S_ISBLK, "fifo": stat.S_ISFIFO,
}
MAX_SYMLINKS = 40
ERRNO_NAMES = {"ELOOP": errno.ELOOP, "ENOENT": errno.ENOENT,
               "ENOTDIR": errno.ENOTDIR}


def unquote(s):
    """Percent-decoding to bytes; a malformed escape is an error in the
    expectations themselves, not in the image."""
    out = bytearray()
    raw = s.encode("ascii")
    i = 0
    while i < len(raw):
        if raw[i] == 0x25:
            if i + 3 > len(raw):
                raise ValueError("bad %% escape in %r" % s)
            out.append(int(raw[i + 1:i + 3], 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return bytes(out)


def parse(path):
    """Sections as lists of (lineno, directive tokens)."""
    sections = [[]]
    with open(path, encoding="ascii") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line == "--- or ---":
                sections.append([])
                continue
            sections[-1].append((n, line.split()))
    return [s for s in sections if s]


def keyvals(tokens):
    """key=value tokens in order (keys may repeat, e.g. xattr=)."""
    out = []
    for t in tokens:
        k, sep, v = t.partition("=")
        if not sep:
            out.append((t, None))
        else:
            out.append((k, v))
    return out


class Image:
    """Access to image paths below the mount point, never outside it:
    image paths are joined lexically and never resolved by the host."""

    def __init__(self, mount):
        self.mount = os.fsencode(mount)

    def host(self, p):
        if not p.startswith(b"/"):
            raise ValueError("image path %r is not absolute" % p)
        parts = [c for c in p.split(b"/") if c not in (b"", b".")]
        if b".." in parts:
            raise ValueError("image path %r holds '..'" % p)
        return os.path.join(self.mount, *parts) if parts else self.mount

    def lstat(self, p):
        return os.lstat(self.host(p))

    def resolve(self, p):
        """Chroot-style resolution of image path p: returns (path, None)
        or (None, errno)."""
        cur = []
        todo = [c for c in p.split(b"/")]
        links = 0
        while todo:
            c = todo.pop(0)
            if c in (b"", b"."):
                continue
            if c == b"..":
                if cur:
                    cur.pop()
                continue
            cand = b"/" + b"/".join(cur + [c])
            try:
                st = self.lstat(cand)
            except FileNotFoundError:
                return None, errno.ENOENT
            except NotADirectoryError:
                return None, errno.ENOTDIR
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > MAX_SYMLINKS:
                    return None, errno.ELOOP
                target = os.readlink(self.host(cand))
                if target.startswith(b"/"):
                    cur = []
                todo = target.split(b"/") + todo
                continue
            if not stat.S_ISDIR(st.st_mode) and any(
                    t not in (b"", b".") for t in todo):
                return None, errno.ENOTDIR
            cur.append(c)
        return b"/" + b"/".join(cur), None


def read_all(hp):
    h = hashlib.sha256()
    with open(hp, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def check_path(img, tokens, problems):
    p = unquote(tokens[0].partition("=")[2])
    rest = keyvals(tokens[1:])
    if rest == [("absent", None)]:
        try:
            img.lstat(p)
            problems.append("%r exists, expected absent" % p)
        except FileNotFoundError:
            pass
        except NotADirectoryError:
            # The kernel answers ENOTDIR itself when a parent is not a
            # directory; no file system can say ENOENT there, and the name
            # is absent all the same.
            pass
        except OSError as e:
            problems.append("%r: lstat gives %s, expected ENOENT"
                            % (p, errno.errorcode.get(e.errno, e.errno)))
        return
    try:
        st = img.lstat(p)
    except OSError as e:
        problems.append("%r: lstat failed: %s" % (p, e.strerror))
        return
    hp = img.host(p)
    for k, v in rest:
        try:
            bad = check_key(img, p, hp, st, k, v)
        except OSError as e:
            bad = "%s: %s" % (k, e.strerror)
        if bad:
            problems.append("%r: %s" % (p, bad))


def want_got(k, want, got):
    return None if want == got else "%s=%s, expected %s" % (k, got, want)


def check_key(img, p, hp, st, k, v):
    """One key of a path= directive; returns a complaint or None."""
    if k == "type":
        if v not in TYPES:
            raise ValueError("unknown type %r" % v)
        if TYPES[v](st.st_mode):
            return None
        return "type is not %s (mode %o)" % (v, st.st_mode)
    if k == "mode":
        return want_got(k, v, "%04o" % stat.S_IMODE(st.st_mode))
    if k in ("uid", "gid", "nlink", "size"):
        return want_got(k, int(v), getattr(st, "st_" + k))
    if k == "sha256":
        return want_got(k, v, read_all(hp))
    if k == "content":
        with open(hp, "rb") as f:
            return want_got(k, unquote(v), f.read())
    if k == "target":
        return want_got(k, unquote(v), os.readlink(hp))
    if k == "rdev":
        got = "%d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev))
        return want_got(k, v, got)
    if k == "mtime":
        sec, _, frac = v.partition(".")
        want = int(sec) * 10**9 + (int(frac.ljust(9, "0")) if frac else 0)
        return want_got(k, want, st.st_mtime_ns)
    if k == "xattr":
        name, _, hexval = v.partition(":hex:")
        got = os.getxattr(hp, name, follow_symlinks=False)
        return want_got(k, name + ":hex:" + hexval,
                        name + ":hex:" + got.hex())
    if k == "same-inode-as":
        o = img.lstat(unquote(v))
        if (o.st_dev, o.st_ino) == (st.st_dev, st.st_ino):
            return None
        return "inode %d, %s has %d" % (st.st_ino, v, o.st_ino)
    if k == "children":
        want = sorted(unquote(c) for c in v.split(",")) if v else []
        return want_got(k, want, sorted(os.listdir(hp)))
    raise ValueError("unknown key %r" % k)


def check_resolve(img, tokens, problems):
    p = unquote(tokens[0].partition("=")[2])
    k, _, v = tokens[1].partition("=")
    got, err = img.resolve(p)
    if k == "target":
        want = unquote(v)
        if err or got != want:
            problems.append("resolve %r: got %s, expected %r" % (
                p, errno.errorcode.get(err) if err else repr(got), want))
    elif k == "error":
        if err != ERRNO_NAMES[v]:
            problems.append("resolve %r: got %s, expected %s" % (
                p, errno.errorcode.get(err) if err else repr(got), v))
    else:
        raise ValueError("unknown resolve key %r" % k)


def check_at(img, tokens, problems):
    p = unquote(tokens[0].partition("=")[2])
    kv = dict(keyvals(tokens[1:]))
    want = bytes.fromhex(kv["hex"])
    try:
        with open(img.host(p), "rb") as f:
            f.seek(int(kv["offset"]))
            got = f.read(len(want))
    except OSError as e:
        problems.append("%r at %s: %s" % (p, kv["offset"], e.strerror))
        return
    if got != want:
        problems.append("%r at %s: %s, expected %s" % (
            p, kv["offset"], got.hex(), want.hex()))


def snapshot(root, exclude):
    """{path: (mode, size, digest)} of everything below root."""
    out = {}
    root = os.fsencode(root)
    ex = {os.fsencode(e) for e in exclude}
    for d, dirs, files in os.walk(root):
        if d == root:
            dirs[:] = [x for x in dirs if x not in ex]
            files = [x for x in files if x not in ex]
        for n in dirs + files:
            hp = os.path.join(d, n)
            st = os.lstat(hp)
            dig = ""
            if stat.S_ISREG(st.st_mode):
                dig = read_all(hp)
            elif stat.S_ISLNK(st.st_mode):
                dig = os.readlink(hp).hex()
            rel = os.path.relpath(hp, root).hex()
            out[rel] = "%o %d %s" % (st.st_mode, st.st_size, dig)
    return out


def write_snapshot(root, exclude):
    for k, v in sorted(snapshot(root, exclude).items()):
        print(k, v)


def read_snapshot(path):
    with open(path) as f:
        return dict(line.rstrip("\n").split(" ", 1) for line in f)


def check_host(args, problems):
    if not args.host or not args.host_before:
        problems.append("host-escape=none needs --host and --host-before")
        return
    before = read_snapshot(args.host_before)
    now = snapshot(args.host, args.exclude or [])
    for k in sorted(set(before) | set(now)):
        if before.get(k) != now.get(k):
            problems.append("outside the image: %r %s -> %s" % (
                bytes.fromhex(k), before.get(k, "absent"),
                now.get(k, "absent")))


def check_section(args, img, section):
    """Complaints of one section (empty list: it holds)."""
    problems = []
    deadlines = []
    result = None
    for n, tokens in section:
        head = tokens[0]
        k, _, v = head.partition("=")
        try:
            if k == "result":
                result = v
                if v == "error" and not args.failed:
                    problems.append("line %d: image accepted, expected an"
                                    " error" % n)
                elif v == "ok" and args.failed:
                    problems.append("line %d: image refused, expected ok"
                                    % n)
                if v not in ("ok", "error"):
                    raise ValueError("bad result %r" % v)
            elif args.failed:
                continue
            elif k == "deadline-seconds":
                deadlines.append(int(v))
            elif k == "host-escape":
                if v != "none":
                    raise ValueError("bad host-escape %r" % v)
                check_host(args, problems)
            elif k == "path":
                check_path(img, tokens, problems)
            elif k == "resolve":
                check_resolve(img, tokens, problems)
            elif k == "at":
                check_at(img, tokens, problems)
            else:
                raise ValueError("unknown directive %r" % head)
        except (ValueError, KeyError, IndexError) as e:
            print("%s:%d: bad directive: %s" % (args.expected, n, e),
                  file=sys.stderr)
            sys.exit(2)
    if result is None:
        problems.append("section has no result= line")
    for d in deadlines:
        if args.started is None:
            problems.append("deadline-seconds needs --started")
        elif time.time() - args.started > d:
            problems.append("took %.1f s, deadline %d s"
                            % (time.time() - args.started, d))
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("expected", nargs="?")
    ap.add_argument("--mount")
    ap.add_argument("--failed", action="store_true")
    ap.add_argument("--started", type=float)
    ap.add_argument("--host")
    ap.add_argument("--host-before")
    ap.add_argument("--snapshot")
    ap.add_argument("--exclude", action="append")
    args = ap.parse_args()
    if args.snapshot:
        write_snapshot(args.snapshot, args.exclude or [])
        return 0
    if not args.expected or bool(args.mount) == args.failed:
        ap.error("give EXPECTED and exactly one of --mount, --failed")
    img = Image(args.mount) if args.mount else None
    report = []
    for i, section in enumerate(parse(args.expected), 1):
        problems = check_section(args, img, section)
        if not problems:
            print("section %d holds" % i)
            return 0
        report.append((i, problems))
    for i, problems in report:
        print("section %d fails:" % i)
        for p in problems:
            print("  " + p)
    return 1


if __name__ == "__main__":
    sys.exit(main())
