#!/usr/bin/env python3
"""Bytes appended per one-row commit, pagelog against stock WAL (issue 10).

For each page size, speedtest.tcl's test-1 table gets COMMITS one-row
INSERTs, one commit each, at synchronous=FULL:

* pagelog, through the stock sqlite3 shell with the extension LIB: the bytes
  of each commit's record as `pagelog log --json` reports them, plus the
  64-byte MARK that follows every FULL commit;
* stock SQLite in WAL mode (Python's sqlite3, checkpoints off): how much the
  -wal file grew at each commit (frame headers + pages).

Prints, per page size, the median and mean per commit and the ratios.

With --format4 the pagelog log is rewritten in format 4 (`pagelog upgrade
--format 4`) after the CREATE TABLE, and with --retain POLICY it is given
that retention policy (`pagelog retain`), before the INSERTs.

usage: bytes_per_commit.py PAGELOG LIB [--commits N] [--page-sizes 1024,4096,65536] [--dir DIR]
                           [--format4 [--retain POLICY]]
  e.g. speedtest/bytes_per_commit.py target/release/pagelog target/release/libpagelog.so
"""
import argparse, json, os, random, shutil, sqlite3, statistics, subprocess

MARK = 64

ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def words(n):
    """speedtest.tcl's number_name."""
    out = []
    for div, name in ((1000000, "million"), (1000, "thousand"), (100, "hundred")):
        if n >= div:
            out += [words(n // div), name]
            n %= div
    if n >= 20:
        out.append(TENS[n // 10])
        n %= 10
    if n > 0 or not out:
        out.append(ONES[n])
    return " ".join(out)


def inserts(count):
    random.seed(11)
    rows = []
    for i in range(1, count + 1):
        r = random.randint(0, 99999)
        rows.append(f"INSERT INTO t1 VALUES({i},{r},'{words(r)}');")
    return rows


def pagelog_bytes(pagelog, lib, d, ps, rows, format4=False, retain=None):
    db = os.path.join(d, f"p{ps}.db")
    setup = f"PRAGMA page_size={ps};\nCREATE TABLE t1(a INTEGER, b INTEGER, c VARCHAR(100));\n"
    sql = f".load {os.path.abspath(lib)}\n.open file:{db}?vfs=pagelog\nPRAGMA synchronous=FULL;\n"
    subprocess.run(["sqlite3"], input=sql + setup, text=True, check=True)
    if format4:
        subprocess.run([pagelog, "upgrade", "--format", "4", db], check=True, stdout=subprocess.DEVNULL)
        if retain:
            subprocess.run([pagelog, "retain", db, retain], check=True, stdout=subprocess.DEVNULL)
    first = len(json.loads(subprocess.check_output([pagelog, "log", "--json", db])))
    subprocess.run(["sqlite3"], input=sql + "\n".join(rows) + "\n", text=True, check=True)
    log = json.loads(subprocess.check_output([pagelog, "log", "--json", db]))
    return [c["bytes"] + MARK for c in log if c["version"] > first]


def wal_bytes(d, ps, rows):
    db = os.path.join(d, f"w{ps}.db")
    con = sqlite3.connect(db, isolation_level=None)
    con.execute(f"PRAGMA page_size={ps}")
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA wal_autocheckpoint=0")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("CREATE TABLE t1(a INTEGER, b INTEGER, c VARCHAR(100))")
    out = []
    for r in rows:
        before = os.path.getsize(db + "-wal")
        con.execute(r)
        out.append(os.path.getsize(db + "-wal") - before)
    con.close()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pagelog")
    ap.add_argument("lib")
    ap.add_argument("--commits", type=int, default=150)
    ap.add_argument("--page-sizes", default="1024,4096,65536")
    ap.add_argument("--dir", default="target/bytes_per_commit")
    ap.add_argument("--format4", action="store_true")
    ap.add_argument("--retain")
    a = ap.parse_args()
    shutil.rmtree(a.dir, ignore_errors=True)
    os.makedirs(a.dir)
    rows = inserts(a.commits)
    print(f"{'page size':>9} | {'pagelog median':>14} {'mean':>8} | {'WAL median':>10} {'mean':>8} | median ratio | mean ratio")
    for ps in map(int, a.page_sizes.split(",")):
        p = pagelog_bytes(a.pagelog, a.lib, a.dir, ps, rows, a.format4, a.retain)
        w = wal_bytes(a.dir, ps, rows)
        assert len(p) == len(w) == a.commits, (len(p), len(w))
        pm, pa, wm, wa = statistics.median(p), statistics.mean(p), statistics.median(w), statistics.mean(w)
        print(f"{ps:>9} | {pm:>14,.0f} {pa:>8,.0f} | {wm:>10,.0f} {wa:>8,.0f} | {pm / wm:>12.3f} | {pa / wa:>10.3f}")


if __name__ == "__main__":
    main()
