#!/usr/bin/python3
"""Makes the layer benchmark's tree: FILES files totalling about MB megabytes in nested
directories, RANDOM_PCT percent of the bytes incompressible (random), the rest text-like
(words and numbers, compressing about 3-4x with gzip -6). Deterministic for a seed.

usage: gen-tree.py OUTDIR [--mb 300] [--files 20000] [--random-pct 40] [--seed 1]
"""
import argparse
import os
import random

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--mb", type=float, default=300)
ap.add_argument("--files", type=int, default=20000)
ap.add_argument("--random-pct", type=float, default=40)
ap.add_argument("--seed", type=int, default=1)
a = ap.parse_args()

rng = random.Random(a.seed)
words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz_") for _ in range(rng.randint(2, 10)))
         for _ in range(4000)]
total = int(a.mb * 1024 * 1024)
avg = total // a.files
n_random = int(a.files * a.random_pct / 100)
# A pool of text to cut files from: generating fresh text for 180 MB in Python is slow.
pool_lines = []
for _ in range(60000):
    k = rng.randint(4, 14)
    line = " ".join(rng.choice(words) for _ in range(k))
    if rng.random() < 0.3:
        line += " = %d;" % rng.randint(0, 1 << 20)
    pool_lines.append(line)
pool = ("\n".join(pool_lines) + "\n").encode()

for i in range(a.files):
    d = os.path.join(a.out, "d%02d" % (i % 37), "s%03d" % (i % 211))
    os.makedirs(d, exist_ok=True)
    size = max(1, int(rng.expovariate(1 / avg)))
    size = min(size, avg * 20)
    path = os.path.join(d, "f%05d%s" % (i, ".bin" if i < n_random else ".txt"))
    with open(path, "wb") as f:
        if i < n_random:
            f.write(rng.randbytes(size))
        else:
            off = rng.randrange(0, len(pool) - 1)
            chunk = pool[off:off + size]
            while len(chunk) < size:
                chunk += pool[:size - len(chunk)]
            f.write(chunk)
    os.utime(path, (1600000000, 1600000000))
