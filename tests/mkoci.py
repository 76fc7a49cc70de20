#!/usr/bin/env python3
"""mkoci.py - assemble an OCI image layout from layer tars, for tests.

usage: mkoci.py OUT_DIR LAYER [LAYER...]

Each LAYER is a tar file, plain (.tar), gzip (.gz/.tgz) or zstd (.zst),
taken as it is; the DiffIDs are computed from the decompressed bytes,
streamed through the gzip and zstd commands so that layers of several GiB
need no memory.  A blob that does not decompress (a truncated or corrupt
test input) gets the digest of its raw bytes as DiffID, so the layout can
still be written and the builder is the one to refuse it.  The manifest is
tagged "latest".
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys

MEDIA = {
    "gz": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zst": "application/vnd.oci.image.layer.v1.tar+zstd",
    "tar": "application/vnd.oci.image.layer.v1.tar",
}


def kind(path):
    """The compression, from the name when it says (a zstd stream may
    start with a skippable frame), else from the magic bytes."""
    for ext, k in ((".gz", "gz"), (".tgz", "gz"), (".zst", "zst"),
                   (".tar", "tar")):
        if path.endswith(ext):
            return k
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] == b"\x1f\x8b":
        return "gz"
    if head == b"\x28\xb5\x2f\xfd":
        return "zst"
    return "tar"


def sha256_stream(f):
    h = hashlib.sha256()
    while True:
        b = f.read(1 << 20)
        if not b:
            return h.hexdigest()
        h.update(b)


def diff_id(path, k):
    if k != "tar":
        cmd = ["gzip" if k == "gz" else "zstd", "-dc", path]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL)
        d = sha256_stream(p.stdout)
        if p.wait() == 0:
            return d
    with open(path, "rb") as f:
        return sha256_stream(f)


def put_blob(out, data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(out, "blobs", "sha256", d), "wb") as f:
        f.write(data)
    return "sha256:" + d, len(data)


def put_file(out, path):
    """Puts a layer file into the layout: a hard link when it can (same file
    system), else copies it."""
    with open(path, "rb") as f:
        d = sha256_stream(f)
    dest = os.path.join(out, "blobs", "sha256", d)
    if not os.path.exists(dest):
        try:
            os.link(path, dest)
        except OSError:
            shutil.copyfile(path, dest)
    return "sha256:" + d, os.path.getsize(path)


def main():
    if len(sys.argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    out = sys.argv[1]
    os.makedirs(os.path.join(out, "blobs", "sha256"), exist_ok=True)
    layers, diff_ids = [], []
    for path in sys.argv[2:]:
        k = kind(path)
        diff_ids.append("sha256:" + diff_id(path, k))
        digest, size = put_file(out, path)
        layers.append({"mediaType": MEDIA[k], "digest": digest, "size": size})
    config = {
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    cdigest, csize = put_blob(out, json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": cdigest, "size": csize},
        "layers": layers,
    }
    mdigest, msize = put_blob(out, json.dumps(manifest).encode())
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": mdigest, "size": msize,
        "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(out, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    return 0


if __name__ == "__main__":
    sys.exit(main())
