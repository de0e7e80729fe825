#!/usr/bin/python3
"""Writes hostile variants of a docker-archive / oci-archive for the store-hostile tests.

usage: make-hostile.py KIND SRC.tar OUT.tar
SRC is a valid skopeo docker-archive (legacy form: <hex>.tar layers, <hex>.json config).
"""
import gzip
import hashlib
import io
import json
import sys
import tarfile

kind, src, out = sys.argv[1:4]


def members(path):
    with tarfile.open(path) as t:
        res = []
        for m in t.getmembers():
            data = t.extractfile(m).read() if m.isfile() else None
            res.append((m, data))
        return res


def write(path, entries):
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as t:
        for m, data in entries:
            if data is not None:
                m.size = len(data)
                t.addfile(m, io.BytesIO(data))
            else:
                t.addfile(m)


def file_entry(name, data):
    m = tarfile.TarInfo(name)
    m.size = len(data)
    return (m, data)


def link_entry(name, target, kind=tarfile.SYMTYPE):
    m = tarfile.TarInfo(name)
    m.type = kind
    m.linkname = target
    return (m, None)


es = members(src)
byname = {m.name: (m, d) for m, d in es}
manifest = json.loads(byname["manifest.json"][1])
cfg_name = manifest[0]["Config"]
layer_name = manifest[0]["Layers"][0]


def replace(name, data):
    return [(m, data if m.name == name else d) for m, d in es]


def with_manifest(man):
    return replace("manifest.json", json.dumps(man).encode())


if kind == "config-mismatch":
    cfg = json.loads(byname[cfg_name][1])
    cfg["config"]["Cmd"] = ["/bin/evil"]
    write(out, replace(cfg_name, json.dumps(cfg).encode()))
elif kind == "layer-mismatch":
    # a different valid tar in place of the layer: diff_id no longer matches the config.
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        m, d = file_entry("evil", b"evil\n")
        t.addfile(m, io.BytesIO(d))
    write(out, replace(layer_name, buf.getvalue()))
elif kind == "last-layer-mismatch":
    # every layer but the last is fine: nothing at all may reach the store.
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        m, d = file_entry("evil", b"evil\n")
        t.addfile(m, io.BytesIO(d))
    write(out, replace(manifest[0]["Layers"][-1], buf.getvalue()))
elif kind == "outside":
    man = manifest
    man[0]["Layers"][0] = "../../../etc/passwd"
    write(out, with_manifest(man))
elif kind == "absolute-config":
    man = manifest
    man[0]["Config"] = "/etc/passwd"
    write(out, with_manifest(man))
elif kind == "missing-layer":
    write(out, [(m, d) for m, d in es if not (m.isfile() and m.name.endswith(".tar"))])
elif kind == "absolute-entry":
    write(out, es + [file_entry("/tmp/kiln-pwned", b"x")])
elif kind == "dotdot-entry":
    write(out, es + [file_entry("../kiln-pwned", b"x")])
elif kind == "symlink-escape":
    man = manifest
    man[0]["Layers"][0] = "evil/layer.tar"
    write(out, with_manifest(man) + [link_entry("evil/layer.tar", "../../../../etc/passwd")])
elif kind == "huge-json":
    man = manifest
    man[0]["Junk"] = "x" * (9 << 20)
    write(out, with_manifest(man))
elif kind == "bad-json":
    write(out, replace("manifest.json", b"[{\"Config\": "))
elif kind == "truncated-gzip":
    with open(src, "rb") as f:
        z = gzip.compress(f.read())
    with open(out, "wb") as f:
        f.write(z[: len(z) * 2 // 3])
elif kind == "device":
    m = tarfile.TarInfo("dev0")
    m.type = tarfile.CHRTYPE
    write(out, es + [(m, None)])
elif kind == "oci-digest-mismatch":
    # an OCI layout whose layer blob was altered (same name, other bytes).
    layer = byname[layer_name][1]
    cfg = byname[cfg_name][1]
    ld = hashlib.sha256(layer).hexdigest()
    cd = hashlib.sha256(cfg).hexdigest()
    mani = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + cd, "size": len(cfg)},
                       "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + ld, "size": len(layer)}]}).encode()
    md = hashlib.sha256(mani).hexdigest()
    index = json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + md, "size": len(mani),
                                                          "annotations": {"org.opencontainers.image.ref.name": "evil:1"}}]}).encode()
    bad = bytearray(layer)
    bad[600] ^= 0xff
    write(out, [file_entry("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), file_entry("index.json", index),
                file_entry("blobs/sha256/" + md, mani), file_entry("blobs/sha256/" + cd, cfg),
                file_entry("blobs/sha256/" + ld, bytes(bad))])
elif kind in ("oci-ambiguous-index", "oci-type-mismatch"):
    # one document read two ways (CVE-2021-41190): an index that also has layers and config,
    # or a manifest whose mediaType disagrees with the descriptor pointing at it.
    MT_M = "application/vnd.oci.image.manifest.v1+json"
    MT_I = "application/vnd.oci.image.index.v1+json"
    layer = byname[layer_name][1]
    cfg = byname[cfg_name][1]
    ld = hashlib.sha256(layer).hexdigest()
    cd = hashlib.sha256(cfg).hexdigest()
    cdesc = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + cd, "size": len(cfg)}
    ldesc = {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + ld, "size": len(layer)}
    mani = json.dumps({"schemaVersion": 2, "mediaType": MT_M, "config": cdesc, "layers": [ldesc]}).encode()
    md = hashlib.sha256(mani).hexdigest()
    blobs = [file_entry("blobs/sha256/" + md, mani), file_entry("blobs/sha256/" + cd, cfg),
             file_entry("blobs/sha256/" + ld, layer)]
    ann = {"org.opencontainers.image.ref.name": "evil:1"}
    if kind == "oci-ambiguous-index":
        idx = json.dumps({"schemaVersion": 2, "mediaType": MT_I, "config": cdesc, "layers": [ldesc],
                          "manifests": [{"mediaType": MT_M, "digest": "sha256:" + md, "size": len(mani),
                                         "platform": {"os": "linux", "architecture": "amd64"}}]}).encode()
        xd = hashlib.sha256(idx).hexdigest()
        blobs.append(file_entry("blobs/sha256/" + xd, idx))
        top = {"mediaType": MT_I, "digest": "sha256:" + xd, "size": len(idx), "annotations": ann}
    else:
        top = {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
               "digest": "sha256:" + md, "size": len(mani), "annotations": ann}
    index = json.dumps({"schemaVersion": 2, "manifests": [top]}).encode()
    write(out, [file_entry("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), file_entry("index.json", index)] + blobs)
elif kind == "not-tar":
    with open(out, "wb") as f:
        f.write(b"this is not an archive at all\n" * 100)
else:
    sys.exit("unknown kind " + kind)
