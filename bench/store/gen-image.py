#!/usr/bin/python3
"""Generates a docker-archive (legacy form, as skopeo writes it) of a synthetic image.

usage: gen-image.py OUT.tar [--mb 300] [--files 20000] [--layers 3] [--random-pct 40]
       [--name bench/big:1] [--seed 1]

The rootfs has FILES files totalling about MB megabytes, spread over LAYERS layers; RANDOM-PCT
percent of the bytes are incompressible (random), the rest compressible text. Deterministic for a
seed. Layers are spooled to temporary files, so memory stays small.
"""
import argparse
import hashlib
import io
import json
import os
import random
import tarfile
import tempfile

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--mb", type=float, default=300)
ap.add_argument("--files", type=int, default=20000)
ap.add_argument("--layers", type=int, default=3)
ap.add_argument("--random-pct", type=float, default=40)
ap.add_argument("--name", default="bench/big:1")
ap.add_argument("--seed", type=int, default=1)
a = ap.parse_args()

rng = random.Random(a.seed)
total = int(a.mb * 1e6)
avg = max(1, total // a.files)
text = (b"kiln benchmark data: the quick brown fox jumps over the lazy dog 0123456789\n" * 64)
tmpdir = tempfile.mkdtemp(prefix="kiln-gen-")
layers = []
per_layer = (a.files + a.layers - 1) // a.layers
n = 0
for li in range(a.layers):
    path = os.path.join(tmpdir, "layer%d.tar" % li)
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as t:
        d = tarfile.TarInfo("data%d" % li)
        d.type = tarfile.DIRTYPE
        d.mode = 0o755
        t.addfile(d)
        for fi in range(per_layer):
            if n >= a.files:
                break
            n += 1
            size = max(0, int(rng.expovariate(1.0 / avg)))
            if rng.random() * 100 < a.random_pct:
                data = rng.randbytes(size)
            else:
                reps = size // len(text) + 1
                data = (text * reps)[:size]
            ti = tarfile.TarInfo("data%d/d%03d/f%06d" % (li, fi // 200, fi))
            ti.size = len(data)
            ti.mode = 0o644
            ti.mtime = 0
            t.addfile(ti, io.BytesIO(data))
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    layers.append((path, h.hexdigest()))

config = json.dumps({
    "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
    "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/usr/bin:/bin"]},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + d for _, d in layers]},
    "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "gen-image.py layer %d" % i} for i in range(len(layers))],
}, sort_keys=True, separators=(",", ":")).encode()
cd = hashlib.sha256(config).hexdigest()
manifest = json.dumps([{"Config": cd + ".json", "RepoTags": [a.name],
                        "Layers": [d + ".tar" for _, d in layers]}]).encode()
with tarfile.open(a.out, "w", format=tarfile.PAX_FORMAT) as t:
    for path, d in layers:
        t.add(path, arcname=d + ".tar")
        os.unlink(path)
    for name, data in ((cd + ".json", config), ("manifest.json", manifest)):
        ti = tarfile.TarInfo(name)
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
os.rmdir(tmpdir)
