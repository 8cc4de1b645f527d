#!/usr/bin/env python3
"""What reading pages stored as patches costs a one-query process (issue 10).

Each configuration gets its own database, built through the stock sqlite3
shell with COMMITS one-row INSERTs (speedtest.tcl's test-1 rows, one commit
each, synchronous=NORMAL): with format 3 most of its leaves are patches.
Then, in rounds (every configuration once per round, rotated order), one
run = PROCS shell processes in a row, each opening the database and scanning
the whole table once (`SELECT count(*), sum(b), sum(length(c)) FROM t1`).
Prints ms per process, per configuration and round, the medians and the
paired ratios.

Configurations: paths to pagelog extensions (libpagelog.so; its parent
directory names it), and `wal` (stock SQLite, journal_mode=WAL).

usage: scan_paired.py ROUNDS LIB... [--commits N] [--procs N] [--dir DIR]
  e.g. speedtest/scan_paired.py 9 before/libpagelog.so after/libpagelog.so wal
"""
import argparse, os, random, shutil, statistics, subprocess, time

ap = argparse.ArgumentParser()
ap.add_argument("rounds", type=int)
ap.add_argument("configs", nargs="+")
ap.add_argument("--commits", type=int, default=2000)
ap.add_argument("--procs", type=int, default=20)
ap.add_argument("--dir", default="target/scan_paired")
a = ap.parse_args()

shutil.rmtree(a.dir, ignore_errors=True)
os.makedirs(a.dir)
random.seed(7)
rows = "\n".join(
    f"INSERT INTO t1 VALUES({i},{r},'{r} number words and a few more of them');"
    for i, r in ((i, random.randint(0, 99999)) for i in range(1, a.commits + 1))
)


def name(c):
    return "wal" if c == "wal" else os.path.basename(os.path.dirname(os.path.abspath(c)))


def head(c):
    db = os.path.abspath(os.path.join(a.dir, name(c) + ".db"))
    if c == "wal":
        return f".open {db}\nPRAGMA journal_mode=WAL;\n"
    return f".load {os.path.abspath(c)[:-3]}\n.open file:{db}?vfs=pagelog\n"


for c in a.configs:
    setup = "CREATE TABLE t1(a INTEGER, b INTEGER, c VARCHAR(100));\nPRAGMA synchronous=NORMAL;\n"
    subprocess.run(["sqlite3", "-batch"], input=head(c) + setup + rows + "\n", text=True, check=True,
                   stdout=subprocess.DEVNULL)

query = "SELECT count(*), sum(b), sum(length(c)) FROM t1;\n"
times = {c: [] for c in a.configs}
for r in range(a.rounds):
    order = a.configs[r % len(a.configs):] + a.configs[:r % len(a.configs)]
    for c in order:
        subprocess.run(["sync"])
        script = head(c) + query
        t = time.perf_counter()
        for _ in range(a.procs):
            out = subprocess.run(["sqlite3", "-batch"], input=script, text=True, capture_output=True, check=True)
        times[c].append((time.perf_counter() - t) / a.procs * 1000)
        assert out.stdout.split("|")[0].strip().endswith(str(a.commits)), out.stdout
    print(f"round {r + 1}: " + "  ".join(f"{name(c)}={times[c][-1]:.2f}" for c in a.configs), flush=True)

print(f"{a.commits} one-row commits, then {a.procs} processes scanning t1 per run, {a.rounds} rounds, ms per process:")
for c in a.configs:
    v = times[c]
    print(f"  {name(c)}: median {statistics.median(v):.2f} (min {min(v):.2f}, max {max(v):.2f})")
base = a.configs[0]
for c in a.configs[1:]:
    q = [x / y for x, y in zip(times[c], times[base])]
    print(f"  {name(c)} / {name(base)} paired: median {statistics.median(q):.2f} [{min(q):.2f}-{max(q):.2f}]")
