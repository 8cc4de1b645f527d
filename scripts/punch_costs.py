#!/usr/bin/env python3
"""What freeing a dead 4 KiB block costs a writer, on this machine's file
system: the unit costs behind scripts/punch_sim.py's estimate
(docs/format-4.md, "Punching dead frames in place").

A log file of SIZE MiB (written and synced first, as a bulk load), then
rounds of COMMITS "commits" without a sync (synchronous=NORMAL between its
periodic syncs), each in one of these ways, the ways interleaved in a
rotating order each round:

  append      pwrite a 4,232-byte record at the end (a one-row commit today)
  punch       append, then fallocate(PUNCH_HOLE|KEEP_SIZE) one random
              4 KiB-aligned block of the loaded region (frees a block)
  zero        append, then punch 4,000 bytes at a random unaligned offset
              (zeroes parts of two blocks, frees nothing)
  reuse       pwrite the 4 KiB frame into a random block of the loaded
              region, then append 136 bytes of metadata
  sorted      reuse, the round's random blocks taken in ascending order (a
              free pool consumed in offset order)

Prints the median µs per commit of each way over the rounds, and the
median of the per-round ratios to `append`. Each round ends with an
fdatasync (timed apart). Linux only (fallocate through ctypes).

usage: scripts/punch_costs.py [--dir DIR] [--size-mib 256] [--commits 5000] [--rounds 5]
"""
import argparse
import ctypes
import os
import random
import statistics
import time

PUNCH = 0x01 | 0x02  # FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default="/tmp")
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--commits", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
    path = os.path.join(a.dir, "punch_costs.bin")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        chunk = os.urandom(1 << 20)
        for i in range(a.size_mib):
            os.pwrite(fd, chunk, i << 20)
        os.fsync(fd)
        blocks = a.size_mib * 256
        rng = random.Random(1)
        rec, frame, meta = os.urandom(4232), os.urandom(4096), os.urandom(136)
        end = [a.size_mib << 20]

        def fall(off, n):
            if libc.fallocate(fd, PUNCH, off, n) != 0:
                raise OSError(ctypes.get_errno(), "fallocate")

        def append():
            os.pwrite(fd, rec, end[0])
            end[0] += len(rec)

        def punch():
            append()
            fall(rng.randrange(blocks) * 4096, 4096)

        def zero():
            append()
            fall(rng.randrange(blocks - 2) * 4096 + 100, 4000)

        def reuse():
            os.pwrite(fd, frame, rng.randrange(blocks) * 4096)
            os.pwrite(fd, meta, end[0])
            end[0] += len(meta)

        pool = []

        def sorted_reuse():
            if not pool:
                pool.extend(sorted(rng.sample(range(blocks), a.commits), reverse=True))
            os.pwrite(fd, frame, pool.pop() * 4096)
            os.pwrite(fd, meta, end[0])
            end[0] += len(meta)

        ways = [("append", append), ("punch", punch), ("zero", zero), ("reuse", reuse), ("sorted", sorted_reuse)]
        us = {w: [] for w, _ in ways}
        syncs = {w: [] for w, _ in ways}
        for r in range(a.rounds):
            order = ways[r % len(ways):] + ways[: r % len(ways)]
            for name, f in order:
                t = time.perf_counter()
                for _ in range(a.commits):
                    f()
                us[name].append(1e6 * (time.perf_counter() - t) / a.commits)
                t = time.perf_counter()
                os.fdatasync(fd)
                syncs[name].append(1e3 * (time.perf_counter() - t))
        for name, _ in ways:
            ratios = [x / y for x, y in zip(us[name], us["append"])]
            print(
                f"{name:7} {statistics.median(us[name]):8.1f} us/commit (rounds {min(us[name]):.1f}-{max(us[name]):.1f}),"
                f" x{statistics.median(ratios):.2f} append; fdatasync after {a.commits}: median {statistics.median(syncs[name]):.0f} ms"
            )
    finally:
        os.close(fd)
        os.unlink(path)


if __name__ == "__main__":
    main()
