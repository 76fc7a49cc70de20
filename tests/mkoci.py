#!/usr/bin/env python3
"""mkoci.py - assemble an OCI image layout from layer tars, for tests.

usage: mkoci.py OUT_DIR LAYER [LAYER...]

Each LAYER is a tar file, plain (.tar), gzip (.gz/.tgz) or zstd (.zst),
taken as it is; the DiffIDs are computed from the decompressed bytes
(zstd through the zstd command).  The manifest is tagged "latest".
"""
import gzip
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
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] == b"\x1f\x8b":
        return "gz"
    if head == b"\x28\xb5\x2f\xfd":
        return "zst"
    return "tar"


def raw_bytes(path, k):
    if k == "gz":
        with gzip.open(path, "rb") as f:
            return f.read()
    if k == "zst":
        return subprocess.run(["zstd", "-dc", path], check=True,
                              stdout=subprocess.PIPE).stdout
    with open(path, "rb") as f:
        return f.read()


def put_blob(out, data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(out, "blobs", "sha256", d), "wb") as f:
        f.write(data)
    return "sha256:" + d, len(data)


def main():
    if len(sys.argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    out = sys.argv[1]
    os.makedirs(os.path.join(out, "blobs", "sha256"), exist_ok=True)
    layers, diff_ids = [], []
    for path in sys.argv[2:]:
        k = kind(path)
        diff_ids.append("sha256:" + hashlib.sha256(raw_bytes(path, k)).hexdigest())
        with open(path, "rb") as f:
            digest, size = put_blob(out, f.read())
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
