#!/usr/bin/python3
"""Writes hostile layer tarballs into OUTDIR for tests/layer/apply.bats.

usage: hostile.py OUTDIR OUTSIDE_DIR
"""
import io
import os
import sys
import tarfile

out, outside = sys.argv[1], sys.argv[2]


def reg(name, data=b"x", mode=0o644):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mode = mode
    return ti, io.BytesIO(data)


def sym(name, target):
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.SYMTYPE
    ti.linkname = target
    return ti, None


def hard(name, target):
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.LNKTYPE
    ti.linkname = target
    return ti, None


def dev(name):
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.CHRTYPE
    ti.devmajor, ti.devminor = 1, 3
    return ti, None


def write(fname, entries, fmt=tarfile.PAX_FORMAT):
    with tarfile.open(os.path.join(out, fname), "w", format=fmt) as t:
        for ti, f in entries:
            t.addfile(ti, f)


write("dotdot.tar", [reg("ok"), reg("../escaped")])
write("dotdot-deep.tar", [reg("a/b/../../../escaped")])
write("absolute.tar", [reg("/abs/file", b"abs")])
write("symlink-abs.tar", [sym("link", outside), reg("link/pwned")])
write("symlink-rel.tar", [sym("l2", "../../../../../../.."), reg("l2/pwned")])
write("symlink-dir.tar", [sym("etc", outside), reg("etc/passwd")])
write("hardlink-dotdot.tar", [hard("hl", "../outside/secret")])
write("hardlink-abs.tar", [hard("hl", os.path.join(outside, "secret"))])
write("hardlink-symlink.tar", [sym("s", os.path.join(outside, "secret")), hard("h", "s"),
                               reg("h", b"overwrite")])
write("whiteout-dotdot.tar", [reg(".wh..", b"")])
write("whiteout-dot.tar", [reg("a/.wh..", b"")])
write("device.tar", [dev("dev/null2")])
write("good.tar", [reg("bin/sh", b"#!", 0o755), sym("bin/ash", "sh"), reg("etc/motd", b"hi\n")])
