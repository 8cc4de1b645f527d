#!/usr/bin/env python3
"""Raw append+fdatasync loops: the floor under a one-row commit at FULL.

Each mode writes N commits of the given byte sizes to a fresh file, one
fdatasync per commit, and reports the median time per commit and the bytes
the kernel accounted to this process as written to storage (/proc/self/io
write_bytes) and, with --device, the sectors the disk reports written
(/sys/block/DEV/stat; only meaningful on an otherwise quiet machine).

  pagelog   commit of C bytes, fdatasync, 64-byte MARK after it (pagelog FULL);
            zeros pre-allocated ahead (an eighth of the file, 64 KiB-4 MiB,
            written and synced with the commit that crosses the end)
  noprealloc  the same without pre-allocation: every sync changes the size
  aligned   the same as pagelog, but every commit+MARK padded to 4 KiB, so a
            commit never rewrites the block holding the previous one's tail
  wal       two writes (24-byte frame header, P-byte page) appended, fdatasync
            (WAL's frames; the WAL file grows, as in test 1 before its
            checkpoint)

usage: raw_sync.py [--n N] [--commit C] [--page P] [--device vda] [--rounds R] DIR
"""
import argparse, os, statistics, time

def io_write_bytes():
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return 0

def dev_sectors(dev):
    if not dev:
        return 0
    with open(f"/sys/block/{dev}/stat") as f:
        return int(f.read().split()[6])

def run(mode, path, n, commit, page):
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    os.pwrite(fd, b"\0" * 512, 0)
    os.fdatasync(fd)
    off, alloc = 512, 512
    rec = b"\x01" * commit
    mark = b"\x02" * 64
    times = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        if mode == "wal":
            os.pwrite(fd, rec[:24], off)
            os.pwrite(fd, rec[:page], off + 24)
            os.fdatasync(fd)
            off += 24 + page
        else:
            need = off + commit + 64
            if mode == "aligned":
                need = (need + 4095) // 4096 * 4096
            if mode != "noprealloc" and need > alloc:
                chunk = min(max(off // 8, 64 << 10), 4 << 20)
                chunk = (chunk + 4095) // 4096 * 4096
                os.pwrite(fd, b"\0" * chunk, off + commit)
                alloc = off + commit + chunk
            os.pwrite(fd, rec, off)
            os.fdatasync(fd)
            os.pwrite(fd, mark, off + commit)
            off = need if mode == "aligned" else off + commit + 64
        times.append(time.perf_counter_ns() - t0)
    os.close(fd)
    return times

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--commit", type=int, default=4232)
    ap.add_argument("--page", type=int, default=4096)
    ap.add_argument("--device", default="")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    modes = ["pagelog", "noprealloc", "aligned", "wal"]
    res = {m: [] for m in modes}
    for r in range(a.rounds):
        for m in modes:  # interleaved
            p = os.path.join(a.dir, f"raw-{m}.bin")
            os.sync()
            w0, s0 = io_write_bytes(), dev_sectors(a.device)
            t = run(m, p, a.n, a.commit, a.page)
            os.sync()
            w1, s1 = io_write_bytes(), dev_sectors(a.device)
            res[m].append((statistics.median(t) / 1000, (w1 - w0) / a.n, (s1 - s0) * 512 / a.n))
            os.unlink(p)
    print(f"{a.n} commits of {a.commit} bytes (+64-byte MARK), page {a.page}, {a.rounds} interleaved rounds")
    print(f"{'mode':<11} {'us/commit median (min-max of rounds)':<38} {'write_bytes/commit':>18} {'device bytes/commit':>20}")
    for m in modes:
        us = [x[0] for x in res[m]]
        wb = statistics.median(x[1] for x in res[m])
        db = statistics.median(x[2] for x in res[m])
        print(f"{m:<11} {statistics.median(us):8.1f} ({min(us):.1f}-{max(us):.1f}){'':<17} {wb:18.0f} {db:20.0f}")

if __name__ == "__main__":
    main()
