#!/usr/bin/env python3
"""Paired runs of speedtest.tcl's test 1 (1000 one-row INSERTs, one commit
each) through the stock sqlite3 shell: each round runs every configuration
once, in rotated order, with `sync` before each run; a run is one shell
process executing the 1000 INSERTs (the table is created by an untimed
process before it). Prints each round, the medians and the paired ratios.

Configurations: a path to a pagelog extension (libpagelog.so; its parent
directory names it in the output), `wal` (stock SQLite, journal_mode=WAL),
and with --raw the floor under a commit at FULL from raw_sync.py (beside
this script): `raw` 1000 × (pwrite of the commit's bytes, fdatasync, 64-byte
MARK) with pre-allocation as pagelog does it, and `rawwal` 1000 × (two
pwrites: 24-byte frame header + page, fdatasync).

usage: t1_paired.py SYNC ROUNDS [--raw] [--dir DIR] LIB...
  e.g. speedtest/t1_paired.py NORMAL 15 target/release/libpagelog.so
"""
import argparse, os, random, statistics, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import raw_sync  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("sync", choices=["OFF", "NORMAL", "FULL", "EXTRA"])
ap.add_argument("rounds", type=int)
ap.add_argument("libs", nargs="*")
ap.add_argument("--raw", action="store_true")
ap.add_argument("--dir", default="target/t1_paired")
a = ap.parse_intermixed_args()

random.seed(7)
rows = []
for i in range(1, 1001):
    r = random.randint(0, 99999)
    rows.append(f"INSERT INTO t1 VALUES({i},{r},'{r} number words');")
body = "\n".join(rows) + "\n"
os.makedirs(a.dir, exist_ok=True)
db = os.path.join(os.path.abspath(a.dir), "t.db")

def name(c):
    return os.path.basename(os.path.dirname(os.path.abspath(c))) if c.endswith(".so") else c

def run(cfg):
    for suf in ("", "-wal", "-shm", "-journal"):
        try:
            os.unlink(db + suf)
        except FileNotFoundError:
            pass
    if cfg in ("raw", "rawwal"):
        os.sync()
        t = time.perf_counter()
        raw_sync.run("pagelog" if cfg == "raw" else "wal", db, 1000, 4232, 4096)
        return (time.perf_counter() - t) * 1000
    if cfg == "wal":
        pre = f".open {db}\nPRAGMA journal_mode=WAL;\nPRAGMA synchronous={a.sync};\n"
    else:
        pre = f".load {os.path.abspath(cfg)}\n.open file:{db}?vfs=pagelog\nPRAGMA synchronous={a.sync};\n"
    create = "CREATE TABLE t1(a INTEGER, b INTEGER, c VARCHAR(100));\n"
    subprocess.run(["sqlite3"], input=pre + create, text=True, check=True, capture_output=True)
    os.sync()
    t = time.perf_counter()
    subprocess.run(["sqlite3"], input=pre + body, text=True, check=True, capture_output=True)
    return (time.perf_counter() - t) * 1000

cfgs = a.libs + ["wal"] + (["raw", "rawwal"] if a.raw else [])
res = {c: [] for c in cfgs}
for k in range(a.rounds):
    order = cfgs[k % len(cfgs):] + cfgs[:k % len(cfgs)]
    for c in order:
        res[c].append(run(c))
    print(f"round {k + 1}: " + "  ".join(f"{name(c)}={res[c][-1]:.1f}" for c in cfgs), flush=True)
print(f"test 1, synchronous={a.sync}, {a.rounds} rounds, ms per run of 1000 commits:")
for c in cfgs:
    v = res[c]
    print(f"  {name(c)}: median {statistics.median(v):.1f} (min {min(v):.1f}, max {max(v):.1f})")
def paired(x, y):
    r = [p / q for p, q in zip(res[x], res[y])]
    print(f"  {name(x)} / {name(y)} paired: median {statistics.median(r):.2f} [{min(r):.2f}-{max(r):.2f}]")
for c in a.libs:
    paired(c, "wal")
    if a.raw:
        paired(c, "raw")
if a.raw:
    paired("wal", "rawwal")
for i in range(1, len(a.libs)):
    paired(a.libs[i], a.libs[0])
