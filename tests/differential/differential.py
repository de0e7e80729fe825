#!/usr/bin/env python3
"""kiln's differential suite: builds each case with kiln and with BuildKit, then compares the two
images (run.sh sets up the registry and the daemon first).

A case is a directory under cases/ holding a Dockerfile and the context files, written as a user
would write them. Files whose names start with '_' are the harness's and are taken out of the
context before either build:
  _args    one build argument a line: K=V (given to both), or K alone (kiln gets `--build-arg K`
           and takes the value from its environment; BuildKit gets K's value from _env, if any)
  _env     K=V lines added to kiln's environment
  _target  the stage to build (--target)
  _setup   a shell script run inside the copied context first (hard links, modes, archives...)
  _fails   both builders must refuse the build
conformance.list adds buildah's conformance Dockerfiles: NAME DOCKERFILE CONTEXT [K=V...].

Compared: the config fields below, os/architecture, the history's length and empty_layer flags,
and every entry of the flattened file tree (type, mode, uid, gid, size, sha256, symlink target,
device numbers, hard-link groups). deviations.txt lists `CASE KEY reason` lines: KEY is a config
field (config.Env), `history`, or an absolute path; a listed difference is reported, not failed,
and a listed difference that no longer occurs fails (the list stays true).

  differential.py compare KILN.tar BUILDKIT.tar     compares two docker-archives and prints the diff
"""
import argparse
import concurrent.futures
import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading

CONFIG_FIELDS = ["Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes",
                 "Labels", "StopSignal", "Healthcheck", "OnBuild", "Shell"]
# base image names in the cases (and in buildah's conformance files) that mean "the test base"
BASE_NAMES = re.compile(r"(?<![\w./])(kiln-test/busybox(:latest)?|mirror\.gcr\.io/busybox(:latest)?|"
                        r"mirror\.gcr\.io/alpine(:latest)?|quay\.io/libpod/centos:7)(?![\w./:-])")


# ---- reading a docker-archive ------------------------------------------------------------------

def _norm(name):
    return os.path.normpath("/" + name.lstrip("/"))


SMALL = {}  # sha256 -> text of the small files seen, to show what differs


class Node:
    """One inode of the flattened tree; hard-linked names share one Node."""
    def __init__(self, info, digest):
        self.info = info
        self.digest = digest


def _apply_layer(tree, tf):
    members = tf.getmembers()
    # whiteouts apply to the layers below, so they go first
    for m in members:
        path = _norm(m.name)
        base = os.path.basename(path)
        parent = os.path.dirname(path)
        if base == ".wh..wh..opq":
            prefix = parent.rstrip("/") + "/"
            for p in [p for p in tree if p.startswith(prefix)]:
                del tree[p]
        elif base.startswith(".wh."):
            victim = os.path.join(parent, base[4:])
            for p in [p for p in tree if p == victim or p.startswith(victim + "/")]:
                del tree[p]
    for m in members:
        path = _norm(m.name)
        base = os.path.basename(path)
        if base.startswith(".wh."):
            continue
        if path == "/":
            tree[path] = Node(m, None)
            continue
        # parents that the layer implies but does not list: what extraction creates (0755 root)
        parent = os.path.dirname(path)
        while parent != "/" and parent not in tree:
            d = tarfile.TarInfo(parent)
            d.type, d.mode, d.uid, d.gid = tarfile.DIRTYPE, 0o755, 0, 0
            tree[parent] = Node(d, None)
            parent = os.path.dirname(parent)
        old = tree.get(path)
        if old is not None and old.info.isdir() and not m.isdir():
            for p in [p for p in tree if p.startswith(path + "/")]:
                del tree[p]
        if m.islnk():
            target = tree.get(_norm(m.linkname))
            tree[path] = target if target is not None else Node(m, "dangling hard link")
        elif m.isreg():
            h = hashlib.sha256()
            f = tf.extractfile(m)
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
                if m.size <= 200:
                    SMALL[h.hexdigest()] = chunk.decode("utf-8", "replace")
            tree[path] = Node(m, h.hexdigest())
        else:
            tree[path] = Node(m, None)


def read_archive(path):
    """(config dict, {path: entry dict}) of the single image in a docker-archive."""
    with tarfile.open(path) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))[0]
        config = json.load(outer.extractfile(manifest["Config"]))
        tree = {}
        for layer in manifest["Layers"] or []:
            with tarfile.open(fileobj=outer.extractfile(layer), mode="r:*") as tf:
                _apply_layer(tree, tf)
    groups = {}
    for p, node in tree.items():
        groups.setdefault(id(node), []).append(p)
    entries = {}
    for p, node in tree.items():
        i = node.info
        kind = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir",
                tarfile.SYMTYPE: "symlink", tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block",
                tarfile.FIFOTYPE: "fifo", tarfile.LNKTYPE: "file", tarfile.CONTTYPE: "file"}.get(i.type, repr(i.type))
        e = {"type": kind, "mode": "%04o" % (i.mode & 0o7777), "uid": i.uid, "gid": i.gid}
        if kind == "file":
            e["size"] = i.size
            e["sha256"] = node.digest
            names = sorted(groups[id(node)])
            if len(names) > 1:
                e["links"] = names
        elif kind == "symlink":
            e["target"] = i.linkname
        elif kind in ("char", "block"):
            e["dev"] = "%d:%d" % (i.devmajor, i.devminor)
        entries[p] = e
    return config, entries


def _empty(v):
    return v is None or v == [] or v == {} or v == ""


def summary(config):
    """The compared part of an image config, empty values as null."""
    c = config.get("config") or {}
    out = {}
    for f in CONFIG_FIELDS:
        v = c.get(f)
        out["config." + f] = None if _empty(v) else v
    out["os"] = config.get("os")
    out["architecture"] = config.get("architecture")
    out["history"] = [bool(h.get("empty_layer", False)) for h in config.get("history") or []]
    return out


def compare(kiln_tar, bk_tar):
    """{key: (kiln value, buildkit value)} for every difference."""
    kc, kt = read_archive(kiln_tar)
    bc, bt = read_archive(bk_tar)
    diffs = {}
    ks, bs = summary(kc), summary(bc)
    for key in ks:
        if ks[key] != bs[key]:
            diffs[key] = (ks[key], bs[key])
    for p in sorted(set(kt) | set(bt)):
        if kt.get(p) != bt.get(p):
            diffs[p] = (kt.get(p), bt.get(p))
    return diffs


def show(v):
    if v is None:
        return "(absent)"
    text = json.dumps(v, sort_keys=True)
    if isinstance(v, dict) and v.get("sha256") in SMALL:
        text += " " + json.dumps(SMALL[v["sha256"]])
    return text


# ---- the suite ---------------------------------------------------------------------------------

class Case:
    def __init__(self, name):
        self.name = name
        self.args = []          # (key, value or None)
        self.env = {}
        self.target = None
        self.fails = False
        self.dfdir = None       # directory of the Dockerfile when it is not in the context
        self.dfname = "Dockerfile"
        self.ctx = None
        self.kiln_err = self.bk_err = None


def rewrite_base(path, base):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    new = BASE_NAMES.sub(base, text)
    if new != text:
        with open(path, "w", encoding="utf-8") as f:
            f.write(new)


def prepare_own(src, work, base):
    c = Case(os.path.basename(src))
    dst = os.path.join(work, "cases", c.name)
    c.ctx = os.path.join(dst, "ctx")
    shutil.copytree(src, c.ctx, symlinks=True)
    meta = {n: os.path.join(c.ctx, n) for n in os.listdir(c.ctx) if n.startswith("_")}
    for n, p in meta.items():
        if n == "_setup":
            continue
        with open(p, encoding="utf-8") as f:
            lines = [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]
        if n == "_args":
            c.args = [(ln.split("=", 1)[0], ln.split("=", 1)[1] if "=" in ln else None) for ln in lines]
        elif n == "_env":
            c.env = dict(ln.split("=", 1) for ln in lines)
        elif n == "_target":
            c.target = lines[0]
        elif n == "_fails":
            c.fails = True
        os.unlink(p)
    if "_setup" in meta:
        setup = os.path.join(dst, "setup.sh")
        shutil.move(meta["_setup"], setup)
        subprocess.run(["sh", "-e", setup], cwd=c.ctx, check=True)
    for n in os.listdir(c.ctx):
        if n.startswith("Dockerfile"):
            rewrite_base(os.path.join(c.ctx, n), base)
    return c


def prepare_conformance(line, confdir, work, base):
    fields = line.split()
    c = Case(fields[0])
    dst = os.path.join(work, "cases", c.name)
    c.ctx = os.path.join(dst, "ctx")
    src_ctx = os.path.join(confdir, fields[2])
    if os.path.isdir(src_ctx):
        shutil.copytree(src_ctx, c.ctx, symlinks=True)
    else:
        os.makedirs(c.ctx)
    c.dfdir = os.path.join(dst, "df")
    os.makedirs(c.dfdir)
    shutil.copy(os.path.join(confdir, fields[1]), os.path.join(c.dfdir, "Dockerfile"))
    rewrite_base(os.path.join(c.dfdir, "Dockerfile"), base)
    for a in fields[3:]:
        if a == "fails":
            c.fails = True
        else:
            c.args.append((a.split("=", 1)[0], a.split("=", 1)[1]))
    return c


def run(cmd, env=None, log=None):
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    if log:
        with open(log, "wb") as f:
            f.write(p.stdout)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def build_kiln(c, kiln, root, out):
    env = dict(os.environ)
    env.update(c.env)
    cmd = [kiln, "--root", root, "build", "--progress", "plain", "-t", "diff-" + c.name.lower()]
    cmd += ["-f", os.path.join(c.dfdir or c.ctx, c.dfname)]
    for k, v in c.args:
        cmd += ["--build-arg", k if v is None else "%s=%s" % (k, v)]
    if c.target:
        cmd += ["--target", c.target]
    rc, text = run(cmd + [c.ctx], env=env, log=out + ".log")
    if rc == 0:
        rc, text2 = run([kiln, "--root", root, "save", "-o", out, "diff-" + c.name.lower()])
        text += text2
    return None if rc == 0 else text


def build_buildkit(c, buildkit, out):
    cmd = [buildkit, "build", c.ctx, out, "--no-cache"]
    if c.dfdir:
        cmd += ["--local", "dockerfile=" + c.dfdir]
    for k, v in c.args:
        if v is None:
            v = c.env.get(k)
        if v is not None:
            cmd += ["--opt", "build-arg:%s=%s" % (k, v)]
    if c.target:
        cmd += ["--opt", "target=" + c.target]
    rc, text = run(cmd, log=out + ".log")
    return None if rc == 0 else text


def load_deviations(path):
    devs = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for ln in f:
                if ln.strip() and not ln.startswith("#"):
                    case, key, reason = ln.rstrip("\n").split(None, 2)
                    devs[(case, key)] = reason
    return devs


def tail(text, n=15):
    return text.rstrip("\n").split("\n")[-n:]


def suite(a):
    base = os.environ["DIFF_BASE"]
    root = os.environ["DIFF_ROOT"]
    kiln = os.environ["KILN"]
    cases = []
    for n in sorted(os.listdir(a.cases)):
        if not a.only or n in a.only:
            cases.append(prepare_own(os.path.join(a.cases, n), a.work, base))
    if os.path.isdir(a.conformance_dir):
        with open(a.conformance, encoding="utf-8") as f:
            for ln in f:
                if ln.strip() and not ln.startswith("#") and (not a.only or ln.split()[0] in a.only):
                    cases.append(prepare_conformance(ln, a.conformance_dir, a.work, base))
    elif os.environ.get("KILN_TEST_MUST_RUN") == "1":
        print("differential: no conformance data in %s" % a.conformance_dir, file=sys.stderr)
        return 1
    else:
        print("# no conformance data in %s: those cases are left out" % a.conformance_dir)
    devs = load_deviations(a.deviations)

    def out(c, who):
        return os.path.join(a.work, "cases", c.name, who + ".tar")

    lock = threading.Lock()

    def kiln_all():
        for c in cases:
            c.kiln_err = build_kiln(c, kiln, root, out(c, "kiln"))

    def bk(c):
        err = build_buildkit(c, a.buildkit, out(c, "buildkit"))
        with lock:
            c.bk_err = err

    with concurrent.futures.ThreadPoolExecutor(max_workers=a.jobs + 1) as pool:
        jobs = [pool.submit(kiln_all)] + [pool.submit(bk, c) for c in cases]
        for j in jobs:
            j.result()

    print("1..%d" % len(cases))
    failed = equal = documented = 0
    seen = set()
    for i, c in enumerate(cases, 1):
        notes, bad = [], False
        if c.fails:
            if c.kiln_err is None or c.bk_err is None:
                bad = True
                notes.append("both builders must refuse this case: kiln %s, BuildKit %s" %
                             ("refused" if c.kiln_err else "built it", "refused" if c.bk_err else "built it"))
        elif c.kiln_err is not None or c.bk_err is not None:
            bad = True
            if c.kiln_err is not None:
                notes += ["kiln failed:"] + ["  " + x for x in tail(c.kiln_err)]
            if c.bk_err is not None:
                notes += ["BuildKit failed:"] + ["  " + x for x in tail(c.bk_err)]
        else:
            diffs = compare(out(c, "kiln"), out(c, "buildkit"))
            for key, (kv, bv) in diffs.items():
                dev = next(((n, k) for (n, k) in devs if n == c.name and fnmatch.fnmatchcase(key, k)), None)
                if dev:
                    seen.add(dev)
                    notes.append("documented deviation %s: %s" % (key, devs[dev]))
                else:
                    bad = True
                    notes += ["%s differs" % key, "  kiln:     " + show(kv), "  BuildKit: " + show(bv)]
        stale = [k for (n, k) in devs if n == c.name and (n, k) not in seen and not bad]
        for k in stale:
            bad = True
            notes.append("deviations.txt lists %s, but it no longer differs" % k)
        if bad:
            failed += 1
        elif any(n.startswith("documented") for n in notes):
            documented += 1
        else:
            equal += 1
        print("%s %d - %s" % ("not ok" if bad else "ok", i, c.name))
        for n in notes:
            print("# " + n)
    print("# %d cases: %d equal, %d equal apart from documented deviations, %d differ" %
          (len(cases), equal, documented, failed))
    return 1 if failed else 0


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "compare":
        diffs = compare(sys.argv[2], sys.argv[3])
        for key, (kv, bv) in diffs.items():
            print("%s\n  kiln:     %s\n  BuildKit: %s" % (key, show(kv), show(bv)))
        return 1 if diffs else 0
    p = argparse.ArgumentParser()
    p.add_argument("--work", required=True)
    p.add_argument("--cases", required=True)
    p.add_argument("--conformance", required=True)
    p.add_argument("--conformance-dir", required=True)
    p.add_argument("--deviations", required=True)
    p.add_argument("--buildkit", required=True)
    p.add_argument("--jobs", type=int, default=int(os.environ.get("DIFF_JOBS", "3")))
    p.add_argument("only", nargs="*")
    return suite(p.parse_args())


if __name__ == "__main__":
    sys.exit(main())
