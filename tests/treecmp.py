#!/usr/bin/env python3
"""treecmp.py - compare two directory trees entry by entry and byte by byte.

Usage: treecmp.py [--random-reads N] [--seed S] EXPECTED_DIR ACTUAL_DIR

Every path below (and including) the two roots is looked at with lstat:
symlinks are never followed and directories on another mount are not
entered.  For each path it compares the type, the mode bits (with setuid,
setgid and sticky), uid, gid, size, mtime to the nanosecond (all types but
symlinks), the symlink target, all xattrs with their raw values, the device
numbers, the hard-link group (the set of paths sharing the inode, and the
link count) and the SHA-256 of each regular file.  Then it does N reads at
random offsets (lengths up to 1 MiB, some crossing the end of the file) in
random regular files of both trees and compares the bytes.

Prints each difference (the first 50, then how many more), then
"treecmp: N paths, N bytes compared, N differences".
Exit status: 0 identical, 1 different, 2 usage error or unreadable root.
"""

import argparse
import concurrent.futures
import errno
import hashlib
import os
import random
import stat
import sys

CHUNK = 1 << 20
MAX_READ = 1 << 20
SHOW_LIMIT = 50

TYPE_NAMES = [
    (stat.S_ISREG, "file"), (stat.S_ISDIR, "dir"), (stat.S_ISLNK, "symlink"),
    (stat.S_ISCHR, "chardev"), (stat.S_ISBLK, "blockdev"),
    (stat.S_ISFIFO, "fifo"), (stat.S_ISSOCK, "socket"),
]


def type_name(mode):
    for test, name in TYPE_NAMES:
        if test(mode):
            return name
    return f"unknown({stat.S_IFMT(mode):o})"


class Entry:
    __slots__ = ("st", "kind", "target", "xattrs", "error")

    def __init__(self, st):
        self.st = st
        self.kind = type_name(st.st_mode)
        self.target = None
        self.xattrs = {}
        self.error = None


def read_xattrs(path):
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.ENODATA):
            return {}
        raise
    values = {}
    for name in names:
        values[name] = os.getxattr(path, name, follow_symlinks=False)
    return values


def scan(root, notes):
    """Map each relative path ("." for the root) to an Entry."""
    entries = {}
    root_dev = os.lstat(root).st_dev
    stack = ["."]
    while stack:
        rel = stack.pop()
        path = root if rel == "." else os.path.join(root, rel)
        try:
            st = os.lstat(path)
        except OSError as e:
            notes.append(f"{rel}: lstat failed in {root}: {e.strerror}")
            continue
        entry = Entry(st)
        entries[rel] = entry
        try:
            entry.xattrs = read_xattrs(path)
            if entry.kind == "symlink":
                entry.target = os.readlink(path)
        except OSError as e:
            entry.error = f"{e.strerror}"
        if entry.kind != "dir":
            continue
        if st.st_dev != root_dev:
            print(f"treecmp: not entering {path}: another mount", file=sys.stderr)
            continue
        try:
            names = os.listdir(path)
        except OSError as e:
            entry.error = f"readdir: {e.strerror}"
            continue
        for name in names:
            stack.append(name if rel == "." else rel + "/" + name)
    return entries


def link_groups(entries):
    """Path -> sorted tuple of the paths that share its inode (non-dirs)."""
    by_inode = {}
    for rel, entry in entries.items():
        if entry.kind != "dir" and entry.st.st_nlink > 1:
            by_inode.setdefault((entry.st.st_dev, entry.st.st_ino), []).append(rel)
    groups = {}
    for paths in by_inode.values():
        members = tuple(sorted(paths))
        for rel in members:
            groups[rel] = members
    return groups


def sha256_of(path):
    sha = hashlib.sha256()
    total = 0
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        while True:
            block = os.read(fd, CHUNK)
            if not block:
                break
            sha.update(block)
            total += len(block)
    finally:
        os.close(fd)
    return sha.hexdigest(), total


def fmt_group(group, rel):
    if group is None:
        return "(no other names)"
    others = [p for p in group if p != rel]
    shown = ", ".join(others[:5])
    if len(others) > 5:
        shown += f", ... ({len(others)} names)"
    return "{" + shown + "}"


class Report:
    def __init__(self):
        self.count = 0

    def add(self, rel, text):
        self.count += 1
        if self.count <= SHOW_LIMIT:
            print(f"{rel}: {text}")

    def finish(self):
        if self.count > SHOW_LIMIT:
            print(f"... and {self.count - SHOW_LIMIT} more differences")


def compare_meta(rel, exp, act, exp_groups, act_groups, report):
    if exp.kind != act.kind:
        report.add(rel, f"type {exp.kind} != {act.kind}")
        return False
    for entry, side in ((exp, "expected"), (act, "actual")):
        if entry.error:
            report.add(rel, f"cannot read {side}: {entry.error}")
    e, a = exp.st, act.st
    if stat.S_IMODE(e.st_mode) != stat.S_IMODE(a.st_mode):
        report.add(rel, f"mode {stat.S_IMODE(e.st_mode):04o} != {stat.S_IMODE(a.st_mode):04o}")
    if e.st_uid != a.st_uid:
        report.add(rel, f"uid {e.st_uid} != {a.st_uid}")
    if e.st_gid != a.st_gid:
        report.add(rel, f"gid {e.st_gid} != {a.st_gid}")
    if exp.kind in ("file", "symlink") and e.st_size != a.st_size:
        report.add(rel, f"size {e.st_size} != {a.st_size}")
    if exp.kind != "symlink" and e.st_mtime_ns != a.st_mtime_ns:
        report.add(rel, f"mtime {e.st_mtime_ns // 10**9}.{e.st_mtime_ns % 10**9:09d}"
                        f" != {a.st_mtime_ns // 10**9}.{a.st_mtime_ns % 10**9:09d}")
    if exp.kind == "symlink" and exp.target != act.target:
        report.add(rel, f"symlink target {exp.target!r} != {act.target!r}")
    if exp.kind in ("chardev", "blockdev") and e.st_rdev != a.st_rdev:
        report.add(rel, f"device {os.major(e.st_rdev)}:{os.minor(e.st_rdev)}"
                        f" != {os.major(a.st_rdev)}:{os.minor(a.st_rdev)}")
    if exp.xattrs != act.xattrs:
        for name in sorted(set(exp.xattrs) | set(act.xattrs)):
            ev, av = exp.xattrs.get(name), act.xattrs.get(name)
            if ev == av:
                continue
            if ev is None:
                report.add(rel, f"xattr {name} unexpected (value {av!r})")
            elif av is None:
                report.add(rel, f"xattr {name} missing (expected {ev!r})")
            else:
                report.add(rel, f"xattr {name} value {ev!r} != {av!r}")
    if exp.kind != "dir":
        if e.st_nlink != a.st_nlink:
            report.add(rel, f"nlink {e.st_nlink} != {a.st_nlink}")
        eg, ag = exp_groups.get(rel), act_groups.get(rel)
        if eg != ag:
            report.add(rel, f"hard links {fmt_group(eg, rel)} != {fmt_group(ag, rel)}")
    return True


def random_reads(count, seed, files, exp_root, act_root, report):
    """files: list of (rel, size) present as regular files in both trees."""
    rng = random.Random(seed)
    candidates = [f for f in files if f[1] > 0] or files
    compared = 0
    if not candidates:
        return 0
    for _ in range(count):
        rel, size = rng.choice(candidates)
        length = rng.randint(0, MAX_READ)
        roll = rng.random()
        if roll < 0.25:
            # Start before the end and run past it.
            offset = max(0, size - rng.randint(0, min(length, size) if size else 0))
        elif roll < 0.30:
            offset = size + rng.randint(0, 4096)  # entirely past the end
        else:
            offset = rng.randint(0, max(0, size - 1))
        data = []
        for root in (exp_root, act_root):
            fd = os.open(os.path.join(root, rel), os.O_RDONLY | os.O_NOFOLLOW)
            try:
                chunks = []
                want, pos = length, offset
                while want > 0:
                    got = os.pread(fd, want, pos)
                    if not got:
                        break
                    chunks.append(got)
                    want -= len(got)
                    pos += len(got)
                data.append(b"".join(chunks))
            finally:
                os.close(fd)
        compared += max(len(data[0]), len(data[1]))
        if data[0] != data[1]:
            at = next((i for i, (x, y) in enumerate(zip(*data)) if x != y),
                      min(len(data[0]), len(data[1])))
            report.add(rel, f"read of {length} bytes at offset {offset} differs at "
                            f"byte {offset + at} (got {len(data[0])} vs {len(data[1])} bytes)")
    return compared


def main():
    parser = argparse.ArgumentParser(
        prog="treecmp.py",
        description="Compare two directory trees: metadata, xattrs, hard links, content.")
    parser.add_argument("--random-reads", type=int, default=0, metavar="N",
                        help="also compare N reads at random offsets (default 0)")
    parser.add_argument("--seed", type=int, default=None, metavar="S",
                        help="seed for the random reads (default: chosen and printed)")
    parser.add_argument("--jobs", type=int, default=4, metavar="J",
                        help="files hashed in parallel (default 4)")
    parser.add_argument("expected")
    parser.add_argument("actual")
    args = parser.parse_args()
    if args.random_reads < 0 or args.jobs < 1:
        parser.error("--random-reads must be >= 0 and --jobs >= 1")
    for root in (args.expected, args.actual):
        if not os.path.isdir(root):
            print(f"treecmp: {root}: not a directory", file=sys.stderr)
            return 2

    notes = []
    exp_entries = scan(args.expected, notes)
    act_entries = scan(args.actual, notes)
    report = Report()
    for note in notes:
        report.add("(scan)", note)
    exp_groups = link_groups(exp_entries)
    act_groups = link_groups(act_entries)

    all_paths = sorted(set(exp_entries) | set(act_entries))
    to_hash = []
    for rel in all_paths:
        exp, act = exp_entries.get(rel), act_entries.get(rel)
        if act is None:
            report.add(rel, f"missing in actual ({exp.kind})")
            continue
        if exp is None:
            report.add(rel, f"unexpected in actual ({act.kind})")
            continue
        if not compare_meta(rel, exp, act, exp_groups, act_groups, report):
            continue
        if exp.kind == "file" and exp.st.st_size == act.st.st_size:
            to_hash.append((rel, exp.st.st_size))

    # Hash the biggest files first so the pool stays busy until the end.
    to_hash.sort(key=lambda item: -item[1])
    compared = 0
    failures = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {}
        for rel, _ in to_hash:
            futures[rel] = (pool.submit(sha256_of, os.path.join(args.expected, rel)),
                            pool.submit(sha256_of, os.path.join(args.actual, rel)))
        for rel, _ in sorted(to_hash):
            results = []
            for side, fut in zip(("expected", "actual"), futures[rel]):
                try:
                    results.append(fut.result())
                except OSError as e:
                    results.append(None)
                    failures.append((rel, f"cannot read {side}: {e.strerror}"))
            if None in results:
                continue
            (exp_hash, exp_len), (act_hash, act_len) = results
            compared += exp_len
            if exp_hash != act_hash:
                if exp_len != act_len:
                    report.add(rel, f"content length {exp_len} != {act_len}")
                else:
                    report.add(rel, f"content sha256 {exp_hash[:16]}... != {act_hash[:16]}...")
    for rel, text in failures:
        report.add(rel, text)

    if args.random_reads:
        seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
        print(f"treecmp: {args.random_reads} random reads, seed {seed}", file=sys.stderr)
        try:
            compared += random_reads(args.random_reads, seed, to_hash,
                                     args.expected, args.actual, report)
        except OSError as e:
            report.add("(random reads)", f"read failed: {e}")

    report.finish()
    print(f"treecmp: {len(all_paths)} paths, {compared} bytes compared, "
          f"{report.count} differences")
    return 0 if report.count == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
