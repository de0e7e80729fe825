#!/usr/bin/python3
"""Writes an OCI image layout for kiln's registry-transfer tests (no network, deterministic).

  mkimage.py OUT --tag TAG [--layers N] [--files F] [--big-mib M] [--seed S]
             [--platforms linux/amd64,linux/arm64/v8] [--files-dir DIR]

One image manifest (or, with several --platforms, an OCI index of one manifest per platform)
is written to OUT (created or extended) and named TAG in OUT/index.json. Layer i holds
/layer<i>/f<j> (F small text files); --big-mib adds one more layer of M MiB of incompressible
bytes; --files-dir (repeatable) adds a layer made from each directory tree (the benchmark).
Each config carries the label kiln.test.platform=<os/arch[/variant]> and its architecture.
Prints the digest of what TAG names.
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import random
import tarfile

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def put_blob(out, data):
    d = hashlib.sha256(data).hexdigest()
    path = os.path.join(out, "blobs", "sha256", d)
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(data)
    return "sha256:" + d, len(data)


def gz(data):
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=6) as g:
        g.write(data)
    return buf.getvalue()


def tar_of(entries):
    """entries: list of (name, bytes or None for a directory)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 0
            ti.uid = ti.gid = 0
            if data is None:
                ti.type = tarfile.DIRTYPE
                ti.mode = 0o755
                t.addfile(ti)
            else:
                ti.mode = 0o644
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def tar_of_dir(root):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in [dirpath] + [os.path.join(dirpath, f) for f in sorted(filenames)]:
                arc = os.path.relpath(name, root)
                if arc == ".":
                    continue
                ti = t.gettarinfo(name, arcname=arc)
                ti.mtime = 0
                ti.uid = ti.gid = 0
                ti.uname = ti.gname = ""
                if ti.isreg():
                    with open(name, "rb") as f:
                        t.addfile(ti, f)
                else:
                    t.addfile(ti)
    return buf.getvalue()


def make_image(out, args, plat, salt):
    rng = random.Random(f"{args.seed}-{salt}")
    layers, diff_ids = [], []

    def add_layer(raw):
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        d, n = put_blob(out, gz(raw))
        layers.append({"mediaType": MT_LAYER, "digest": d, "size": n})

    for i in range(args.layers):
        entries = [(f"layer{i}", None)]
        for j in range(args.files):
            entries.append((f"layer{i}/f{j}", f"{args.seed} {plat} layer {i} file {j}\n".encode()))
        add_layer(tar_of(entries))
    if args.big_mib:
        data = rng.randbytes(args.big_mib << 20)
        add_layer(tar_of([("big", None), ("big/blob.bin", data)]))
    for d in args.files_dir or []:
        add_layer(tar_of_dir(d))
    parts = plat.split("/")
    config = {
        "architecture": parts[1],
        "os": parts[0],
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": ["/bin/sh"], "Labels": {"kiln.test.platform": plat}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": f"mkimage layer {i}"} for i in range(len(diff_ids))],
    }
    if len(parts) > 2:
        config["variant"] = parts[2]
    cd, cn = put_blob(out, json.dumps(config, sort_keys=True).encode())
    manifest = {"schemaVersion": 2, "mediaType": MT_MANIFEST,
                "config": {"mediaType": MT_CONFIG, "digest": cd, "size": cn}, "layers": layers}
    md, mn = put_blob(out, json.dumps(manifest).encode())
    desc = {"mediaType": MT_MANIFEST, "digest": md, "size": mn,
            "platform": {"os": parts[0], "architecture": parts[1]}}
    if len(parts) > 2:
        desc["platform"]["variant"] = parts[2]
    return desc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--tag", required=True)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--files", type=int, default=3)
    ap.add_argument("--big-mib", type=int, default=0)
    ap.add_argument("--seed", default="kiln")
    ap.add_argument("--platforms", default="linux/amd64")
    ap.add_argument("--files-dir", action="append", help="a layer from this tree (repeatable)")
    args = ap.parse_args()
    out = args.out
    os.makedirs(os.path.join(out, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(out, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    plats = args.platforms.split(",")
    descs = [make_image(out, args, p, p) for p in plats]
    if len(descs) == 1:
        top = dict(descs[0])
        del top["platform"]
    else:
        idx = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": descs}
        d, n = put_blob(out, json.dumps(idx).encode())
        top = {"mediaType": MT_INDEX, "digest": d, "size": n}
    top["annotations"] = {"org.opencontainers.image.ref.name": args.tag}
    ipath = os.path.join(out, "index.json")
    index = {"schemaVersion": 2, "manifests": []}
    if os.path.exists(ipath):
        with open(ipath) as f:
            index = json.load(f)
    index["manifests"] = [m for m in index["manifests"]
                          if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != args.tag]
    index["manifests"].append(top)
    with open(ipath, "w") as f:
        json.dump(index, f)
    print(top["digest"])


if __name__ == "__main__":
    main()
