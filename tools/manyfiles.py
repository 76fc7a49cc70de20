#!/usr/bin/env python3
"""manyfiles.py - write a layer tar of many small files, fast.

usage: manyfiles.py OUT.tar [FILES [PER_DIR]]

FILES regular files (default 1000000) in directories of PER_DIR files
(default 1000), d00000/f00000 ...; file i holds 1 to 200 bytes that depend
only on i, so every run writes the same tar byte for byte.  The ustar
headers are packed here directly (the tarfile module needs about ten
times longer for a million members).
"""
import struct
import sys

BLOCK = 512
MTIME = 1796256000


def header(name, size, mode, typeflag):
    """One ustar header block; name is bytes, at most 100 of them."""
    h = bytearray(BLOCK)
    h[0:len(name)] = name
    h[100:108] = b"%07o\0" % mode
    h[108:116] = b"0000000\0"
    h[116:124] = b"0000000\0"
    h[124:136] = b"%011o\0" % size
    h[136:148] = b"%011o\0" % MTIME
    h[148:156] = b" " * 8
    h[156:157] = typeflag
    h[257:265] = b"ustar\x0000"
    h[265:269] = b"root"
    h[297:301] = b"root"
    h[148:156] = b"%06o\0 " % sum(h)
    return h


def main():
    if len(sys.argv) < 2 or len(sys.argv) > 4:
        sys.stderr.write(__doc__)
        return 2
    files = int(sys.argv[2]) if len(sys.argv) > 2 else 1000000
    per_dir = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    text = b"".join(struct.pack("<I", (i * 2654435761) & 0xFFFFFFFF)
                    for i in range(64))
    with open(sys.argv[1], "wb", buffering=1 << 20) as out:
        for i in range(files):
            if i % per_dir == 0:
                out.write(header(b"d%05d/" % (i // per_dir), 0, 0o755,
                                 b"5"))
            size = 1 + (i * 7919) % 200
            data = (b"%d\n" % i + text)[:size]
            out.write(header(b"d%05d/f%05d" % (i // per_dir, i % per_dir),
                             size, 0o644, b"0"))
            out.write(data + bytes(BLOCK - size))
        out.write(bytes(2 * BLOCK))
    return 0


if __name__ == "__main__":
    sys.exit(main())
