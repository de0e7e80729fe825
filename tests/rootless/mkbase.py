#!/usr/bin/env python3
"""Writes a root file system tar for the rootless tests: the busybox rootfs (argv[1]) plus /x with
what a rootless store must carry with the image's own IDs: owners across the 16-bit ID space, a
setuid and a setgid file, a user.* xattr, a file capability (security.capability, v2), a hardlink,
a char device (which a user namespace cannot create), a file to delete and a directory to replace.
Usage: mkbase.py BUSYBOX_ROOTFS.tar OUT.tar"""
import io
import struct
import sys
import tarfile

src, out = sys.argv[1], sys.argv[2]


def entry(name, kind=tarfile.REGTYPE, mode=0o644, uid=0, gid=0, data=b"", xattrs=None, **kw):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    ti.uid, ti.gid = uid, gid
    ti.mtime = 1600000000
    ti.size = len(data) if kind == tarfile.REGTYPE else 0
    for k, v in kw.items():
        setattr(ti, k, v)
    if xattrs:
        ti.pax_headers = {"SCHILY.xattr." + k: v for k, v in xattrs.items()}
    return ti, (io.BytesIO(data) if kind == tarfile.REGTYPE else None)


# VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE, permitted = CAP_NET_RAW (13).
cap = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0).decode("latin-1")

extra = [
    entry("./x/", tarfile.DIRTYPE, 0o755),
    entry("./x/owned-1000", data=b"a\n", uid=1000, gid=1000),
    entry("./x/owned-65534", data=b"b\n", uid=65534, gid=65534),
    entry("./x/setuid", mode=0o4755, data=b"#!/bin/sh\n"),
    entry("./x/setgid-dir/", tarfile.DIRTYPE, 0o2775, uid=33, gid=33),
    entry("./x/xattr-file", data=b"c\n", xattrs={"user.kiln-test": "value-1"}),
    entry("./x/capfile", mode=0o755, data=b"d\n", xattrs={"security.capability": cap}),
    entry("./x/hardlink", tarfile.LNKTYPE, linkname="./x/owned-1000", uid=1000, gid=1000),
    entry("./x/dev-null", tarfile.CHRTYPE, 0o666, devmajor=1, devminor=3),
    entry("./x/gone", data=b"e\n"),
    entry("./x/dir/", tarfile.DIRTYPE, 0o755, uid=7, gid=7),
    entry("./x/dir/old", data=b"f\n", uid=7, gid=7),
]

with tarfile.open(src) as s, tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as o:
    for m in s.getmembers():
        o.addfile(m, s.extractfile(m) if m.isreg() else None)
    for ti, f in extra:
        o.addfile(ti, f)
