#!/usr/bin/env python3
"""layertar.py - turn overlayfs upper directories into OCI layers (stdlib only).

Usage:
  layertar.py pack [--root-entry] [--ovl-prefix P] [--comment TEXT] [--built EPOCH]
                   TREE OUT.tar.gz OUT.json
      Write TREE as a PAX tar, gzip it with `gzip -n` into OUT.tar.gz and
      describe it in OUT.json (diff_id, digest, sizes, entry counts).
      Overlay whiteouts (char device 0:0) become empty `.wh.NAME` files, a
      directory whose xattr P+"opaque" is "y" gets a `.wh..wh..opq` entry, and
      every xattr starting with P (default "trusted.overlay.") is left out.
      --root-entry also stores TREE itself as "./" (for a base layer).
      With SOURCE_DATE_EPOCH set, mtimes later than it are clamped to it.
  layertar.py image --out DIR --cmd JSON [--workdir DIR] [--env K=V]... LAYER.json...
      Write an OCI image layout (tag "latest") whose layers are the blobs
      described by LAYER.json files (as written by pack; the blob is the
      .tar.gz next to it). Blobs are hard-linked into DIR when possible.
      The created times are the layers' --built times (the image's is the
      latest), clamped to SOURCE_DATE_EPOCH when that is set.
  layertar.py copymeta SRC DST
      Give DST the owner, mode, non-overlay xattrs and times of SRC.

Tar layout: entries in path order (each directory's children sorted by the
bytes of their names in the tar, each directory right before its contents,
an opaque marker right after its directory), numeric owners with empty
uname/gname, mtime as a PAX "SEC.NNNNNNNNN" record, xattrs as
SCHILY.xattr.NAME records holding the raw bytes, hard links within the
layer as link entries to the first name in that order.
"""

import argparse
import datetime
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import time

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
CHUNK = 1 << 20


def fail(msg):
    print(f"layertar: {msg}", file=sys.stderr)
    sys.exit(1)


def source_date_epoch():
    value = os.environ.get("SOURCE_DATE_EPOCH", "")
    if value == "":
        return None
    try:
        return int(value)
    except ValueError:
        fail(f"SOURCE_DATE_EPOCH is not an integer: {value!r}")


def pax_time(ns):
    """Seconds and nanoseconds as the exact decimal string "SEC.NNNNNNNNN"."""
    sign = "-" if ns < 0 else ""
    sec, frac = divmod(abs(ns), 1_000_000_000)
    return f"{sign}{sec}.{frac:09d}"


def read_xattrs(path):
    """All xattrs of path (not following symlinks) as {name: bytes}."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    found = {}
    for name in names:
        try:
            found[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            pass  # vanished or unreadable: treat as absent
    return found


class HashingSink:
    """File-like object that hashes and counts what passes to `out`."""

    def __init__(self, out):
        self.out = out
        self.sha = hashlib.sha256()
        self.count = 0

    def write(self, data):
        self.sha.update(data)
        self.count += len(data)
        self.out.write(data)
        return len(data)

    def tell(self):
        return self.count


class LayerWriter:
    def __init__(self, tar, tree, ovl_prefix, clamp_ns):
        self.tar = tar
        self.tree = tree
        self.ovl_prefix = ovl_prefix
        self.clamp_ns = clamp_ns
        self.first_name_of_inode = {}
        self.stats = dict(entries=0, regular=0, dirs=0, symlinks=0,
                          hardlinks=0, whiteouts=0, opaque=0, devices=0,
                          fifos=0, xattrs=0, setuid=0, setgid=0,
                          file_bytes=0)

    def _base_info(self, name, st):
        info = tarfile.TarInfo(name)
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid = st.st_uid
        info.gid = st.st_gid
        info.uname = ""
        info.gname = ""
        mtime_ns = st.st_mtime_ns
        if self.clamp_ns is not None and mtime_ns > self.clamp_ns:
            mtime_ns = self.clamp_ns
        info.mtime = mtime_ns // 1_000_000_000
        info.pax_headers["mtime"] = pax_time(mtime_ns)
        return info

    def _add_xattrs(self, info, path, xattrs):
        for key in sorted(xattrs):
            if key.startswith(self.ovl_prefix):
                continue
            # Raw bytes survive the trip: tarfile writes strings holding
            # surrogate escapes back as the original bytes (and marks the
            # header hdrcharset=BINARY when it has to).
            value = xattrs[key].decode("utf-8", "surrogateescape")
            info.pax_headers["SCHILY.xattr." + key] = value
            self.stats["xattrs"] += 1

    def _marker(self, name, st):
        """An empty regular file entry (whiteout or opaque marker)."""
        info = self._base_info(name, st)
        info.type = tarfile.REGTYPE
        info.size = 0
        self.tar.addfile(info)
        self.stats["entries"] += 1

    def _check_ovl_xattrs(self, path, xattrs):
        for key in xattrs:
            if not key.startswith(self.ovl_prefix):
                continue
            what = key[len(self.ovl_prefix):]
            if what in ("redirect", "metacopy", "whiteout", "lowerdata"):
                fail(f"{path}: overlay xattr {key} is set; mount the overlay "
                     "with redirect_dir=off,metacopy=off so that the upper "
                     "directory is a plain diff")

    def add(self, path, name, st):
        """Add one entry (and, for a directory, everything below it)."""
        mode = st.st_mode
        if stat.S_ISCHR(mode) and st.st_rdev == 0:
            parent, _, base = name.rpartition("/")
            wh = (parent + "/" if parent else "") + WHITEOUT_PREFIX + base
            self._marker(wh, st)
            self.stats["whiteouts"] += 1
            return
        xattrs = read_xattrs(path)
        self._check_ovl_xattrs(path, xattrs)
        info = self._base_info(name, st)
        if mode & stat.S_ISUID:
            self.stats["setuid"] += 1
        if mode & stat.S_ISGID and not stat.S_ISDIR(mode):
            self.stats["setgid"] += 1

        if stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
            self._add_xattrs(info, path, xattrs)
            self.tar.addfile(info)
            self.stats["entries"] += 1
            self.stats["dirs"] += 1
            if xattrs.get(self.ovl_prefix + "opaque") == b"y":
                prefix = name + "/" if name != "." else ""
                self._marker(prefix + OPAQUE_MARKER, st)
                self.stats["opaque"] += 1
            self.add_children(path, name)
            return

        if stat.S_ISSOCK(mode):
            print(f"layertar: skipping socket {path}", file=sys.stderr)
            return

        if st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            first = self.first_name_of_inode.get(key)
            if first is not None:
                info.type = tarfile.LNKTYPE
                info.linkname = first
                info.size = 0
                self._add_xattrs(info, path, xattrs)
                self.tar.addfile(info)
                self.stats["entries"] += 1
                self.stats["hardlinks"] += 1
                return
            self.first_name_of_inode[key] = name

        self._add_xattrs(info, path, xattrs)
        if stat.S_ISREG(mode):
            info.type = tarfile.REGTYPE
            info.size = st.st_size
            with open(path, "rb") as f:
                self.tar.addfile(info, f)
            self.stats["regular"] += 1
            self.stats["file_bytes"] += st.st_size
        elif stat.S_ISLNK(mode):
            info.type = tarfile.SYMTYPE
            info.linkname = os.readlink(path)
            self.tar.addfile(info)
            self.stats["symlinks"] += 1
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info.devmajor = os.major(st.st_rdev)
            info.devminor = os.minor(st.st_rdev)
            self.tar.addfile(info)
            self.stats["devices"] += 1
        elif stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
            self.tar.addfile(info)
            self.stats["fifos"] += 1
        else:
            fail(f"{path}: unsupported file type {mode:o}")
        self.stats["entries"] += 1

    def add_children(self, path, name):
        children = []
        with os.scandir(path) as it:
            for entry in it:
                st = entry.stat(follow_symlinks=False)
                # Sort by the name the entry gets in the tar.
                key = os.fsencode(entry.name)
                if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                    key = WHITEOUT_PREFIX.encode() + key
                children.append((key, entry.name, entry.path, st))
        children.sort()
        for _, child, child_path, st in children:
            child_name = child if name == "." else name + "/" + child
            self.add(child_path, child_name, st)


def sha256_file(path):
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(CHUNK)
            if not block:
                break
            sha.update(block)
    return sha.hexdigest()


def cmd_pack(args):
    tree = args.tree
    if not os.path.isdir(tree):
        fail(f"{tree}: not a directory")
    sde = source_date_epoch()
    clamp_ns = None if sde is None else sde * 1_000_000_000
    tmp_gz = args.out_gz + ".part"
    with open(tmp_gz, "wb") as gz_out:
        gzip = subprocess.Popen(["gzip", "-n", "-c"], stdin=subprocess.PIPE,
                                stdout=gz_out)
        sink = HashingSink(gzip.stdin)
        tar = tarfile.TarFile(fileobj=sink, mode="w",
                              format=tarfile.PAX_FORMAT, encoding="utf-8",
                              errors="surrogateescape", copybufsize=CHUNK)
        writer = LayerWriter(tar, tree, args.ovl_prefix, clamp_ns)
        if args.root_entry:
            writer.add(tree, ".", os.lstat(tree))
        else:
            writer.add_children(tree, ".")
        tar.close()
        gzip.stdin.close()
        if gzip.wait() != 0:
            fail("gzip failed")
    digest = sha256_file(tmp_gz)
    size = os.path.getsize(tmp_gz)
    os.replace(tmp_gz, args.out_gz)
    desc = {
        "diff_id": "sha256:" + sink.sha.hexdigest(),
        "digest": "sha256:" + digest,
        "size": size,
        "tar_size": sink.count,
        "created_by": args.comment,
        "built": args.built if args.built is not None else int(time.time()),
        "source_date_epoch": sde,
        "stats": writer.stats,
    }
    write_json_file(args.out_json, desc, pretty=True)


def write_json_file(path, obj, pretty=False):
    tmp = path + ".part"
    with open(tmp, "w", encoding="utf-8") as f:
        if pretty:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write("\n")
        else:
            f.write(canonical_json(obj).decode("utf-8"))
    os.replace(tmp, path)


def canonical_json(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


class Layout:
    def __init__(self, root):
        self.root = root
        self.blobs = os.path.join(root, "blobs", "sha256")
        os.makedirs(self.blobs, exist_ok=True)

    def put_bytes(self, data):
        hexdigest = hashlib.sha256(data).hexdigest()
        with open(os.path.join(self.blobs, hexdigest), "wb") as f:
            f.write(data)
        return "sha256:" + hexdigest, len(data)

    def put_file(self, src, digest):
        algo, _, hexdigest = digest.partition(":")
        if algo != "sha256" or len(hexdigest) != 64:
            fail(f"bad digest {digest!r}")
        dst = os.path.join(self.blobs, hexdigest)
        if os.path.exists(dst):
            return
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)


def iso_time(epoch):
    moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def cmd_image(args):
    try:
        cmd = json.loads(args.cmd)
    except json.JSONDecodeError as e:
        fail(f"--cmd is not JSON: {e}")
    if not isinstance(cmd, list) or not all(isinstance(c, str) for c in cmd):
        fail("--cmd must be a JSON list of strings")
    sde = source_date_epoch()

    def clamp(epoch):
        return epoch if sde is None else min(epoch, sde)

    os.makedirs(args.out, exist_ok=True)
    layout = Layout(args.out)
    layers = []
    diff_ids = []
    history = []
    latest = 0
    for desc_path in args.layers:
        with open(desc_path, encoding="utf-8") as f:
            desc = json.load(f)
        blob = desc_path[:-len(".json")] + ".tar.gz"
        if not desc_path.endswith(".json") or not os.path.exists(blob):
            fail(f"{desc_path}: no blob {blob} next to it")
        if os.path.getsize(blob) != desc["size"]:
            fail(f"{blob}: size differs from {desc_path}")
        layout.put_file(blob, desc["digest"])
        layers.append({"mediaType": MEDIA_LAYER_GZIP,
                       "digest": desc["digest"], "size": desc["size"]})
        diff_ids.append(desc["diff_id"])
        built = clamp(int(desc["built"]))
        latest = max(latest, built)
        history.append({"created": iso_time(built),
                        "created_by": desc.get("created_by") or "layertar.py"})
    created = iso_time(latest)

    env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    env += args.env
    exec_config = {"Env": env, "Cmd": cmd}
    if args.workdir:
        exec_config["WorkingDir"] = args.workdir
    config = {
        "created": created,
        "architecture": "amd64",
        "os": "linux",
        "config": exec_config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }
    config_digest, config_size = layout.put_bytes(canonical_json(config))
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": config_digest,
                   "size": config_size},
        "layers": layers,
    }
    manifest_digest, manifest_size = layout.put_bytes(canonical_json(manifest))
    index = {
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [{
            "mediaType": MEDIA_MANIFEST,
            "digest": manifest_digest,
            "size": manifest_size,
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"org.opencontainers.image.ref.name": args.tag},
        }],
    }
    write_json_file(os.path.join(args.out, "index.json"), index)
    write_json_file(os.path.join(args.out, "oci-layout"),
                    {"imageLayoutVersion": "1.0.0"})
    print(manifest_digest)


def cmd_copymeta(args):
    st = os.lstat(args.src)
    for name, value in read_xattrs(args.src).items():
        if name.startswith("trusted.overlay.") or name.startswith("user.overlay."):
            continue
        os.setxattr(args.dst, name, value, follow_symlinks=False)
    os.chown(args.dst, st.st_uid, st.st_gid, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(args.dst, stat.S_IMODE(st.st_mode))
    os.utime(args.dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def main():
    parser = argparse.ArgumentParser(
        prog="layertar.py",
        description="Make OCI layer tars from overlayfs upper directories.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("pack", help="write one layer blob and its description")
    p.add_argument("--root-entry", action="store_true",
                   help='store TREE itself as "./"')
    p.add_argument("--ovl-prefix", default="trusted.overlay.",
                   help="overlayfs xattr prefix (default trusted.overlay.)")
    p.add_argument("--comment", default="",
                   help="history text for the image config")
    p.add_argument("--built", type=int, default=None, metavar="EPOCH",
                   help="when the layer's tree was made (default: now)")
    p.add_argument("tree")
    p.add_argument("out_gz")
    p.add_argument("out_json")
    p.set_defaults(func=cmd_pack)

    p = sub.add_parser("image", help="assemble an OCI image layout")
    p.add_argument("--out", required=True)
    p.add_argument("--cmd", required=True, help="JSON list, e.g. '[\"bash\"]'")
    p.add_argument("--workdir", default="")
    p.add_argument("--env", action="append", default=[])
    p.add_argument("--tag", default="latest")
    p.add_argument("layers", nargs="+", metavar="LAYER.json")
    p.set_defaults(func=cmd_image)

    p = sub.add_parser("copymeta", help="copy owner, mode, xattrs and times")
    p.add_argument("src")
    p.add_argument("dst")
    p.set_defaults(func=cmd_copymeta)

    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
