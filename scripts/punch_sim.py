#!/usr/bin/env python3
"""Simulate how format 4's log holds disk blocks under a retention policy
(issue 20 item 4), for the current FIFO cleaner and for punching dead frames
in place (docs/format-4.md, "Punching dead frames in place").

It models the log's byte layout (record headers, commit info, entries,
frames, patches, trailers, MARKs, checkpoints' INDEX/CONTROL/COMMIT records,
steps' CONTROL records) and the file system's 4 KiB blocks (st_blocks: the
pre-allocated tail counts, a block is given back once every byte of it was
punched), not SQLite: each commit changes the pages a workload picks.

Strategies (-s):
  none       no policy: the baseline for bytes per commit and the kept bytes
  fifo       today's cleaner (vfs/src/reclaim.rs): copy what Vo reaches in
             [B, B') into the step's CONTROL record, punch [512, B_{k-1})
  unaligned  punch dead items where they lie, frames not aligned
  aligned    the same with every frame on a block boundary (records with
             frames padded), small live items (patches, nodes) left in place
  hybrid     aligned, and live small items (patches, index nodes) of a
             region passing B copied (once) into the step's CONTROL record
  gen2       frames written unaligned; live frames of a region passing B
             copied, aligned, into the step's CONTROL record (redirected by
             the base tree), the region punched whole; copies punched in place
  whole      aligned, and no patches while a policy is set
  reuse      frames written into dead blocks (a free pool, one step late)
             instead of appended; metadata appended and punched in place
  recycle    the design of docs/format-4.md: reuse, with a small record's
             frames unpadded when no slot is free (those still live when B
             passes are copied once into slots), a live patch passing B
             written whole (materialized), items dying above B punched with
             their record's run, only slots below B recycled, and slots left
             unused for a checkpoint interval punched

Every in-place design punches the items that die above B together with
their record's metadata when B passes it, and the items that die below B
where they lie; a step's punches run at the next step (epochs).

Workloads (-w): uniform (1000-byte rows: a whole page per commit), hot (90 %
of commits on 10 % of the pages), append (rows added at the end: the last
page rewritten, a new page every 4 commits), small (uniform, 100-byte rows:
patches), oneproc (uniform, every commit by a new process: a MARK after each
commit, and the FIFO's growth counter starts at 0 in each process).

Sizes (--scale): issue (262,144 pages of 4 KiB, 500,000 commits, a sample
every 10,000) or quick (16,384 pages, 50,000 commits, a sample every 2,000).

Output: one line per run (--json for everything): blocks ÷ (live + K × the
bytes one version takes without a policy) at every sample (min, median,
max), bytes appended per commit and its ratio to `none` (write
amplification), bytes copied per commit, punch calls (fallocate, adjacent
ranges merged) per commit, edge-block reads (a punch whose end is inside a
block reads that block to see whether the rest is zeros already), steps,
and the per-step maxima.

usage: scripts/punch_sim.py [--scale quick|issue] [-s fifo,aligned,...] [-w uniform,...]
"""
import argparse
import json
import random
import sys
import time
from array import array

BLK = 4096
HDR, INFO, ENTRY, TRL = 48, 56, 16, 16
CINFO, CKINFO, IDXINFO, MARK = 96, 48, 16, 64
LEAF, INNER = 264, 1032
FIRST = 512
SPILL_FRAMES = 8192  # 32 MiB spill records of the bulk load
PREALLOC_MIN, PREALLOC_MAX = 64 << 10, 4 << 20
FIFO_STEP, FIFO_GROWTH = 4 << 20, 1 << 20
PATCH_MAX = 724  # sqrt(128 * 4096)

# Unit costs (µs) for a rough estimate of the writer's time, measured on the
# development machine with scripts/punch_costs.py (ext4 mounted with
# `discard`, Linux 6.18, 2 shared cores, load average 10-11) and the retain
# benchmark: a commit without a policy (speedtest --parts retain: 19,472
# commits/s); a fallocate that frees a block, on a quiet file ("punch", 67)
# and beside a writer's appends ("punch_busy", ~430-1,000: the median
# commit with one punch took 446 and 1,017 µs against 12.5 and 17 µs
# without); the extra cost of writing a 4 KiB frame into a random dead block
# instead of appending it (~10-15 µs at the write, ~25-35 µs more in the
# periodic fdatasync: random writeback); an appended 4 KiB copy (read +
# write); a step's own fdatasync (FIFO only: the in-place designs take no
# sync of their own — a step's CONTROL record is made durable by the
# writer's next periodic sync, NORMAL syncs every 16 MiB or second, and its
# dead blocks are reused or freed only after that). Partial zeroing costs 0:
# the design frees blocks of small items by per-block counters (see
# docs/format-4.md), not by zeroing calls.
COST = {"commit": 51.0, "punch": 67.0, "punch_busy": 1000.0, "zero": 0.0, "inplace": 40.0, "copy4k": 20.0, "sync": 20000.0}


def estimate(r, punch):
    """The writer's extra µs per commit of a run's report, and the commits/s
    ratio it implies against the run without a policy."""
    cost = (
        r["punch_calls_per_commit"] * punch
        + r["zeroing_calls_per_commit"] * COST["zero"]
        + r["inplace_writes_per_commit"] * COST["inplace"]
        + r["copied_per_commit"] / 4096 * COST["copy4k"]
        + r["syncs_per_commit"] * COST["sync"]
    )
    return round(cost, 1), round(COST["commit"] / (COST["commit"] + cost), 2)


FRAME, PATCH, NODE, BNODE = 0, 1, 2, 3
NODE_KEY = 1 << 40  # key space of checkpoint-tree nodes
BNODE_KEY = 1 << 41  # key space of base-tree nodes


def node_positions(pages):
    """Every node (level, index) a tree of 16-slot leaves / 64-way inner nodes
    rewrites when `pages` change (depth 4: 16 × 64^3 pages)."""
    out = set()
    for p in pages:
        out.add((0, p >> 4))
        out.add((1, p >> 10))
        out.add((2, p >> 16))
        out.add((3, 0))
    return out


def node_key(space, lv, ix):
    return space + (lv << 32) + ix


class Sim:
    def __init__(self, strategy, workload, pages, commits, keep, ck, sample, step_commits, load_aligned, seed, page_size=4096):
        self.s = strategy
        self.ps = page_size
        self.patch_max = int((128 * page_size) ** 0.5)
        self.spill_frames = (32 << 20) // page_size
        self.w = workload
        self.P = pages
        self.N = commits
        self.K = keep
        self.CK = ck
        self.sample = sample
        self.R = step_commits
        self.policy = strategy != "none"
        self.align = strategy in ("aligned", "hybrid", "whole", "reuse", "recycle")
        self.reusing = strategy in ("reuse", "recycle")
        self.patches = workload == "small" and strategy != "whole"
        # gen2 aligns only records of many frames (the bulk load's)
        self.load_aligned = load_aligned and (self.align or strategy == "gen2")
        self.rng = random.Random(seed)
        # items
        self.off = array("q")
        self.ln = array("i")
        self.key = array("q")
        self.kind = bytearray()
        self.base = array("q")  # item id of a patch's base, -1
        self.live = bytearray()
        self.punched = bytearray()
        self.copied = bytearray()  # a copy: left in place when it passes B
        self.inrec = bytearray()  # written inside a record (not a slot)
        self.redirect = {}
        # records: start, end, first item, end item, kind (0 commit/spill/index, 1 control)
        self.rs, self.re, self.ri0, self.ri1, self.rk = array("q"), array("q"), array("q"), array("q"), bytearray()
        self.rver = array("q")  # commit records: version, else 0
        self.commit_at = array("q", [0])  # version -> its COMMIT record's offset
        self.ck_of = array("q", [0])  # version -> the version of its checkpoint
        self.ck_txn_prev = {}  # checkpoint version -> offset of the commit before it
        self.rec_next = 0  # index of the first record at or after B
        self.end = FIRST
        self.alloc_end = FIRST
        self.left = array("H")  # bytes of each block not yet punched
        self.freed_blocks = 0
        self.written = 0  # bytes written (appended or in place)
        self.appended0 = 0
        # state
        self.vomap = {}
        self.deltas = [None]
        self.latest = 0
        self.vo = 1
        self.B = FIRST
        self.B_prev = FIRST
        self.db_pages = pages
        self.page_item = {}  # page -> its latest item
        self.img_of = {}  # page -> its latest image item (patch base)
        self.cum = {}  # page -> (ranges, data bytes) of its cumulative patch
        self.since_ck = set()
        self.nstrag = 0
        self.basemap = {}
        self.pool = []  # reuse: free block offsets
        self.mat_pending = []
        self.pool_step = {}
        self.pool_next = []
        self.schedule = []  # punches of the last step, executed by the next
        self.looked = 0
        self.backlog = False
        # stats
        self.copied_bytes = 0
        self.punch_calls = 0
        self.edge_reads = 0
        self.inplace = 0
        self.zero_calls = 0
        self.steps = 0
        self.syncs = 0
        self.meta_read = 0
        self.region_read = 0
        self.step_max = {"copied": 0, "calls": 0, "freed_blocks": 0, "read": 0}
        self.samples = []

    # --- file -------------------------------------------------------------
    def grow_to(self, end):
        while self.alloc_end < end:
            chunk = min(max(self.alloc_end // 8, PREALLOC_MIN), PREALLOC_MAX)
            self.alloc_end = -(-(end + chunk) // PREALLOC_MIN) * PREALLOC_MIN
        need = -(-self.alloc_end // BLK)
        if len(self.left) < need:
            self.left.extend([BLK] * (need - len(self.left)))
            if len(self.left) and self.left[0] == BLK:
                self.left[0] = BLK - FIRST  # the header is never punched

    def punch(self, a, b, freed=None):
        """Punch [a, b) (a range the step knows is dead: never twice). The
        blocks it completes (every byte punched) go to `freed`."""
        if b <= a:
            return
        blk, last = a // BLK, (b - 1) // BLK
        left = self.left
        while blk <= last:
            lo, hi = max(a, blk * BLK), min(b, (blk + 1) * BLK)
            left[blk] -= hi - lo
            if left[blk] == 0:
                self.freed_blocks += 1
                if freed is not None:
                    freed.append(blk)
            blk += 1

    def run_schedule(self, ranges):
        """Execute punches. What costs is a call that gives blocks back (a
        journal transaction, and on this machine a discard): the step punches
        exact ranges, and a block whose other bytes are zeros already (it
        reads it: an edge read) is punched whole, so one freeing call per run
        of adjacent blocks freed; a dead range that completes no block is
        zeroed (a cheap call that frees nothing)."""
        if not ranges:
            return 0
        ranges.sort()
        merged = []
        ca, cb = ranges[0]
        for a, b in ranges[1:]:
            if a <= cb:
                cb = max(cb, b)
            else:
                merged.append((ca, cb))
                ca, cb = a, b
        merged.append((ca, cb))
        freed = []
        for a, b in merged:
            n0 = len(freed)
            self.punch(a, b, freed)
            if a % BLK:
                self.edge_reads += 1
            if b % BLK and (b // BLK) != (a // BLK):
                self.edge_reads += 1
            whole = (b // BLK) - (-(-a // BLK))
            if len(freed) == n0 or (a % BLK or b % BLK):
                self.zero_calls += 1  # partial blocks zeroed
        freed.sort()
        calls = 0
        prev = -2
        left = self.left
        for blk in freed:
            # one call covers blocks freed now and the holes between them
            # (punching a hole again is harmless)
            if blk != prev + 1 and not (0 <= prev < blk <= prev + 64 and all(left[b] == 0 for b in range(prev + 1, blk))):
                calls += 1
            prev = blk
        self.punch_calls += calls
        return calls

    # --- items and records --------------------------------------------------
    def item(self, off, ln, key, kind, base=-1, copied=0):
        self.off.append(off)
        self.ln.append(ln)
        self.key.append(key)
        self.kind.append(kind)
        self.base.append(base)
        self.live.append(1)
        self.punched.append(0)
        self.copied.append(copied)
        self.inrec.append(0)
        return len(self.off) - 1

    def record(self, start, end, i0, rk=0, ver=0):
        self.rs.append(start)
        self.re.append(end)
        self.ri0.append(i0)
        self.ri1.append(len(self.off))
        self.rk.append(rk)
        self.rver.append(ver)
        for x in range(i0, len(self.off)):
            self.inrec[x] = 1
        self.end = end
        self.written += end - start
        self.grow_to(end)

    def res(self, x):
        while x in self.redirect:
            x = self.redirect[x]
        return x

    # --- the writer ----------------------------------------------------------
    def pad_to_block(self, at, meta, aligned):
        """Where a record at `at` with `meta` bytes of metadata starts its
        frames (on a block boundary when `aligned`)."""
        f = at + meta
        return -(-f // BLK) * BLK if aligned else f

    def write_commit(self, changes, checkpoint=False, load=False):
        """changes: list of (page, bytes changed). Returns the version."""
        v = self.latest + 1
        frames, patches = [], []
        for p, c in changes:
            has = p in self.img_of
            if self.patches and not load and has:
                r, d = self.cum.get(p, (0, 0))
                size = -(-(16 + 4 * (r + 1) + d + c) // 8) * 8
                if size <= self.patch_max:
                    self.cum[p] = (r + 1, d + c)
                    patches.append((p, size))
                    continue
            self.cum.pop(p, None)
            frames.append(p)
        delta = []
        at = self.end
        if checkpoint:
            self.write_checkpoint_records(v, [p for p, _ in changes])
            at = self.end
        meta = HDR + INFO + (0 if checkpoint else ENTRY * len(changes)) + (CKINFO if checkpoint else 0)
        i0 = len(self.off)
        slotted = []
        if self.reusing and not load:
            # frames go to free slots; the rest in the record, aligned
            n = min(len(self.pool), len(frames))
            slotted, frames = frames[:n], frames[n:]
        aligned = self.load_aligned if load else self.align
        if self.s == "recycle" and not load and len(frames) < 32 and self.ps >= BLK:
            # no free slot: a small record's frames go unaligned (no padding);
            # those still live when B passes are copied into slots then
            aligned = False
        f = self.pad_to_block(at, meta, aligned) if frames else at + meta
        for p in frames:
            x = self.item(f, self.ps, p, FRAME)
            delta.append((p, x))
            self.img_of[p] = x
            f += self.ps
        for p, size in patches:
            x = self.item(f, size, p, PATCH, base=self.img_of[p])
            delta.append((p, x))
            f += size
        rec_end = f + TRL
        self.record(at, rec_end, i0, 0, v)
        for p in slotted:
            x = self.item(self.frame_block(), self.ps, p, FRAME)
            delta.append((p, x))
            self.img_of[p] = x
        if checkpoint:
            delta.extend(self.ck_nodes)
        self.deltas.append(delta)
        self.commit_at.append(at)
        self.latest = v
        self.ck_of.append(v if checkpoint else self.ck_of[v - 1])
        if checkpoint:
            self.ck_txn_prev[v] = self.ck_prev_commit
            self.since_ck = set()
        else:
            self.since_ck.update(p for p, _ in changes)
        for p, x in delta:
            if p < NODE_KEY:
                self.page_item[p] = x
        if self.w == "oneproc" and not load:
            self.record(self.end, self.end + MARK, len(self.off))
        return v

    def frame_block(self):
        """reuse: a free block for a frame, else one appended (aligned)."""
        if self.pool:
            self.written += self.ps
            self.inplace += 1
            return self.pool.pop()
        o = -(-self.end // self.ps) * self.ps
        if o > self.end:
            self.record(self.end, o, len(self.off), 2)  # padding
        self.written += self.ps
        self.end = o + self.ps
        self.grow_to(self.end)
        return o

    def write_checkpoint_records(self, v, own):
        self.ck_prev_commit = self.commit_at[v - 1] if v > 1 else 0
        pos = node_positions(self.since_ck | set(own)) if v > 1 else node_positions(range(1, self.P + 1))
        at = self.end
        i0 = len(self.off)
        f = at + HDR + IDXINFO
        nodes = []
        for lv, ix in sorted(pos):
            size = LEAF if lv == 0 else INNER
            x = self.item(f, size, node_key(NODE_KEY, lv, ix), NODE)
            nodes.append((node_key(NODE_KEY, lv, ix), x))
            f += size
        self.record(at, f + TRL, i0)
        # the CONTROL copy (the FIFO's carries its straggler table)
        c = HDR + CINFO + TRL + (16 * self.nstrag if self.s == "fifo" else 0)
        self.record(self.end, self.end + c, len(self.off), 1)
        self.ck_nodes = nodes

    # --- retirement (every policy strategy) ----------------------------------
    def kill(self, x, dead):
        x = self.res(x)
        if x >= 0 and self.live[x]:
            self.live[x] = 0
            if self.copied[x] and self.kind[x] == NODE:
                self.nstrag -= 1
            dead.append(x)

    def retire(self, upto):
        dead = []
        for v in range(self.vo + 1, upto + 1):
            for k, new in self.deltas[v]:
                new = self.res(new)
                old = self.vomap.get(k)
                self.vomap[k] = new
                if old is None:
                    continue
                old = self.res(old)
                nb = self.res(self.base[new]) if self.base[new] >= 0 else -2
                if old != new and old != nb:
                    self.kill(old, dead)
                if self.kind[old] == PATCH:
                    b = self.res(self.base[old])
                    if b != new and b != nb:
                        self.kill(b, dead)
            self.meta_read += HDR + INFO + ENTRY * len(self.deltas[v])
            self.deltas[v] = None
        self.vo = upto
        return dead

    def boundary_for(self, vo):
        ck = self.ck_of[vo]
        return max(self.ck_txn_prev.get(ck, FIRST), FIRST)

    # --- steps -------------------------------------------------------------
    def control_record(self, payload_items, table_entries, punch_ranges=0):
        """Append a step's CONTROL record; payload_items: list of (len, key,
        kind, base, align) placed in order. Returns the new item ids."""
        at = self.end
        meta = HDR + CINFO + 16 * table_entries + 16 * punch_ranges
        f = at + meta
        i0 = len(self.off)
        ids = []
        for ln, k, kind, base, al in payload_items:
            if al:
                f = -(-f // BLK) * BLK
            ids.append(self.item(f, ln, k, kind, base, copied=1))
            f += ln
        self.record(at, f + TRL, i0, 1)
        self.copied_bytes += f - at - meta
        if self.s == "fifo":
            self.syncs += 2  # reclaim.rs: sync, then the CONTROL record, sync
        return ids

    def base_nodes(self, pages):
        """The base tree's nodes a step rewrites for relocated pages."""
        out = []
        for lv, ix in sorted(node_positions(pages)):
            out.append((LEAF if lv == 0 else INNER, node_key(BNODE_KEY, lv, ix), BNODE, -1, False))
        return out

    def install_base(self, ids, dead):
        for x in ids:
            k = self.key[x]
            if k >= BNODE_KEY:
                old = self.basemap.get(k)
                self.basemap[k] = x
                if old is not None:
                    self.kill(old, dead)

    def relocate(self, x, nx):
        """Item x now lives at nx (a copy): the maps follow."""
        self.redirect[x] = nx
        self.live[x] = 0
        k = self.key[x]
        if self.vomap.get(k) == x:
            self.vomap[k] = nx
        if self.page_item.get(k) == x:
            self.page_item[k] = nx
        if self.img_of.get(k) == x:
            self.img_of[k] = nx

    def fifo_step(self):
        self.steps += 1
        vo = max(self.latest - self.K + 1, self.vo)
        dead = self.retire(vo)  # FIFO frees by region: the dead need no list
        target = self.boundary_for(vo)
        if target <= self.B:
            return 0
        # records from B while within the step's size
        i = self.rec_next
        pos = self.B
        take = []
        while i < len(self.rs) and pos < target and pos - self.B < FIFO_STEP:
            if self.re[i] > target:
                break
            take.append(i)
            pos = self.re[i]
            i += 1
        if not take:
            return 0
        bp = pos
        items = []
        pages = set()
        for r in take:
            self.region_read += self.re[r] - self.rs[r]
            for x in range(self.ri0[r], self.ri1[r]):
                if not self.live[x]:
                    continue
                k, kd = self.key[x], self.kind[x]
                if kd == BNODE:
                    continue  # rewritten below with its path
                items.append(x)
                if kd in (FRAME, PATCH):
                    pages.add(k)
            for x in range(self.ri0[r], self.ri1[r]):
                if self.live[x] and self.kind[x] == BNODE:
                    lv = (self.key[x] - BNODE_KEY) >> 32
                    ix = (self.key[x] - BNODE_KEY) & 0xFFFFFFFF
                    pages.add(ix << (4 + 6 * lv) if lv < 3 else 1)
        nodes_copied = sum(1 for x in items if self.kind[x] == NODE and not self.copied[x])
        payload = [(self.ln[x], self.key[x], self.kind[x], self.base[x], False) for x in items]
        payload += self.base_nodes(pages)
        ids = self.control_record(payload, self.nstrag + nodes_copied)
        for x, nx in zip(items, ids):
            self.relocate(x, nx)
            if self.kind[x] == PATCH:
                self.base[nx] = self.base[x]
        self.nstrag += nodes_copied
        dead2 = []
        self.install_base(ids[len(items):], dead2)
        # punch [512, B_{k-1}) (the reserve rule), then move B
        self.run_schedule([(self.B_prev, self.B)] if self.B > self.B_prev else [])
        self.B_prev, self.B = self.B, bp
        self.rec_next = i
        self.step_max["copied"] = max(self.step_max["copied"], sum(p[0] for p in payload))
        self.step_max["read"] = max(self.step_max["read"], bp - self.B_prev)
        return bp - self.B_prev

    def punch_step(self):
        """A step of the in-place designs: retire, punch the dead where they
        lie, move B over the metadata (and copy what the strategy copies)."""
        self.steps += 1
        vo = self.latest - self.K + 1
        dead = self.retire(vo)
        new_b = max(self.boundary_for(vo), self.B)
        ranges = []
        pool_add = []
        for x in dead:
            if self.punched[x]:
                continue
            if self.off[x] >= self.B and not self.in_slot(x):
                continue  # punched with its record's metadata when B passes it
            if self.reusing and self.kind[x] == FRAME and self.off[x] % self.ps == 0 and self.ln[x] == self.ps and not self.in_record(x):
                pool_add.append(self.off[x])
                self.punched[x] = 1  # its block is reused, not punched
                continue
            ranges.append((self.off[x], self.off[x] + self.ln[x]))
            self.punched[x] = 1
        # the region passing B: metadata and dead items, minus what stays
        copy, region = [], []
        dead2_pre = []
        i = self.rec_next
        while i < len(self.rs) and self.re[i] <= new_b:
            region.append(i)
            i += 1
        for r in region:
            self.region_read += self.re[r] - self.rs[r] if self.s in ("gen2", "hybrid") else 0
            for x in range(self.ri0[r], self.ri1[r]):
                if not self.live[x] or self.copied[x]:
                    continue
                kd = self.kind[x]
                if (self.s == "gen2" and kd == FRAME and self.off[x] % min(BLK, self.ps)) or (self.s == "hybrid" and kd in (PATCH, NODE)):
                    copy.append(x)
                elif self.s == "recycle" and kd == FRAME and self.rk[r] == 0 and (
                    self.ri1[r] - self.ri0[r] < 32 or self.off[x] % min(BLK, self.ps)
                ):
                    # a live frame appended in a small record (or not on a
                    # slot boundary) moves once, so that the region's
                    # metadata is punched in one run, not one per frame
                    copy.append(x)
        if self.s == "recycle":
            # a live patch passing B is written whole into a free block; its
            # base goes when no later slot of the page names it
            mat = []
            for r in region:
                for x in range(self.ri0[r], self.ri1[r]):
                    if self.live[x] and not self.copied[x] and self.kind[x] == PATCH:
                        mat.append(x)
            mat_payload = []
            for x in mat:
                p = self.key[x]
                b = self.res(self.base[x])
                if self.pool:
                    nx = self.item(self.frame_block(), self.ps, p, FRAME, copied=1)
                    self.relocate(x, nx)
                else:
                    mat_payload.append(x)
                cur = self.res(self.page_item.get(p, -1))
                if cur == x or (cur != b and (cur < 0 or self.res(self.base[cur]) != b)):
                    self.kill(b, dead2_pre)  # no held slot names it any more
                if self.page_item.get(p) == x:
                    # the page's latest slot is this patch: the writer's next
                    # patch of it is made against the materialized page (its
                    # old base is dead), so the writer learns where it went
                    self.mat_pending.append((x, p))
            copy_extra = {self.key[x] for x in mat}
        else:
            copy_extra, mat_payload = set(), []
        payload = [(self.ln[x], self.key[x], self.kind[x], self.base[x], self.kind[x] == FRAME) for x in copy]
        payload += [(self.ps, self.key[x], FRAME, -1, True) for x in mat_payload]
        copy = copy + mat_payload
        relocated_pages = {self.key[x] for x in copy if self.kind[x] in (FRAME, PATCH)} | copy_extra
        payload += self.base_nodes(relocated_pages) if relocated_pages else []
        ids = self.control_record(payload, 0, punch_ranges=len(ranges) + len(region))
        for x, nx in zip(copy, ids):
            self.relocate(x, nx)
            if self.kind[nx] == PATCH:
                self.base[nx] = self.base[x]
        for x, p in self.mat_pending:
            self.img_of[p] = self.res(x)
            self.cum.pop(p, None)
        self.mat_pending = []
        dead2 = dead2_pre
        self.install_base(ids[len(copy):], dead2)
        for x in dead2:
            if self.punched[x]:
                continue
            if self.off[x] >= self.B and not self.in_slot(x):
                continue  # punched with its record's metadata when B passes it
            if self.reusing and self.kind[x] == FRAME and self.off[x] % self.ps == 0 and self.ln[x] == self.ps:
                pool_add.append(self.off[x])
            else:
                ranges.append((self.off[x], self.off[x] + self.ln[x]))
            self.punched[x] = 1
        for r in region:
            pos = self.rs[r]
            for x in range(self.ri0[r], self.ri1[r]):
                o = self.off[x]
                if o < self.rs[r] or o >= self.re[r]:  # reuse: a frame outside the record
                    continue
                if self.live[x] or self.punched[x] or x in self.redirect:
                    if o > pos:
                        ranges.append((pos, o))
                    if x in self.redirect:  # copied away: punch it with the region
                        ranges.append((o, o + self.ln[x]))
                    pos = o + self.ln[x]
            if self.re[r] > pos:
                ranges.append((pos, self.re[r]))
        # a relocated item is punched once, with its region
        self.rec_next = i
        self.B_prev, self.B = self.B, new_b
        # the previous step's punches run now (epoch: readers of the last
        # epoch are gone by the next step); this step's wait for the next
        # slots released a checkpoint interval ago and still unused are
        # punched (forgetting; the blocks go back); the rest wait for frames
        hold = max(1, self.CK // self.R)
        old = [o for o in self.pool if self.steps - self.pool_step[o] >= hold]
        keep = [o for o in self.pool if self.steps - self.pool_step[o] < hold]
        calls = self.run_schedule(self.schedule + [(o, o + self.ps) for o in old])
        self.schedule = ranges
        for o in self.pool_next:
            self.pool_step[o] = self.steps
        self.pool = sorted(keep + self.pool_next, reverse=True)  # taken in ascending order
        self.pool_next = pool_add
        self.step_max["calls"] = max(self.step_max["calls"], calls)
        self.step_max["copied"] = max(self.step_max["copied"], sum(p[0] for p in payload))
        return 1

    def in_slot(self, x):
        """A frame in a recycled slot: written outside any record."""
        return self.kind[x] == FRAME and not self.inrec[x]

    def in_record(self, x):
        return False if not self.reusing else self.kind[x] != FRAME

    # --- workloads ---------------------------------------------------------
    def pick(self, n):
        w = self.w
        if w in ("uniform", "oneproc"):
            return [(self.rng.randint(2, self.db_pages), 1000)]
        if w == "small":
            return [(self.rng.randint(2, self.db_pages), 100)]
        if w == "hot":
            hot = max(self.P // 10, 2)
            if self.rng.random() < 0.9:
                return [(self.rng.randint(2, hot), 1000)]
            return [(self.rng.randint(2, self.db_pages), 1000)]
        if w == "append":
            if n % 4 == 0:
                self.db_pages += 1
            return [(self.db_pages, 1000)]
        raise ValueError(w)

    def load(self):
        self.grow_to(FIRST)
        p = 1
        while self.P - p + 1 > self.spill_frames:
            at = self.end
            f = self.pad_to_block(at, HDR, self.load_aligned)
            i0 = len(self.off)
            for q in range(p, p + self.spill_frames):
                x = self.item(f, self.ps, q, FRAME)
                self.img_of[q] = x
                self.page_item[q] = x
                f += self.ps
            self.record(at, f + TRL, i0)
            p += self.spill_frames
        spilled = {q: self.img_of[q] for q in range(1, p)}
        self.write_commit([(q, self.ps) for q in range(p, self.P + 1)], checkpoint=True, load=True)
        self.deltas[1] = [(q, x) for q, x in spilled.items()] + self.deltas[1]
        for k, x in self.deltas[1]:
            self.vomap[k] = x
        self.deltas[1] = None
        self.vo = 1
        self.appended0 = self.end
        self.written0 = self.written

    def run(self, denominators=None):
        self.load()
        t0 = time.time()
        for n in range(1, self.N + 1):
            ck = (self.latest + 1 - self.ck_of[self.latest]) >= self.CK
            self.write_commit(self.pick(n), checkpoint=ck)
            if self.policy:
                if self.s == "fifo":
                    if self.w == "oneproc":
                        self.looked = 0
                    grown = self.end - self.looked
                    every = FIFO_GROWTH if self.backlog else max((self.end - self.B) // 8, FIFO_GROWTH)
                    if grown >= every:
                        self.looked = self.end
                        self.backlog = self.fifo_step() > 0
                elif self.latest - self.K + 1 - self.vo >= self.R:
                    self.punch_step()
            if n % self.sample == 0:
                held = -(-self.alloc_end // BLK) - self.freed_blocks
                live = self.db_pages * self.ps
                self.samples.append((n, held * BLK, live, self.end - self.appended0, self.written - self.written0))
        self.secs = time.time() - t0

    def report(self, base=None):
        n = self.N
        out = {
            "strategy": self.s,
            "workload": self.w,
            "pages": self.P,
            "commits": n,
            "bytes_appended_per_commit": round((self.end - self.appended0) / n),
            "bytes_written_per_commit": round((self.written - self.written0) / n),
            "copied_per_commit": round(self.copied_bytes / n),
            "punch_calls_per_commit": round(self.punch_calls / n, 3),
            "edge_reads_per_commit": round(self.edge_reads / n, 3),
            "zeroing_calls_per_commit": round(self.zero_calls / n, 3),
            "inplace_writes_per_commit": round(self.inplace / n, 3),
            "steps": self.steps,
            "syncs_per_commit": round(self.syncs / n, 4),
            "metadata_read_per_commit": round(self.meta_read / n),
            "region_read_per_commit": round(self.region_read / n),
            "step_max": self.step_max,
            "oldest_kept_final": self.vo,
            "secs": round(self.secs, 1),
        }
        if base:
            ratios = []
            for (k, held, live, _, _), (_, _, _, bapp, _) in zip(self.samples, base.samples):
                kept = min(self.K, k) * bapp / k
                ratios.append(held / (live + kept))
            ratios_s = sorted(ratios)
            out["blocks_ratio"] = {
                "min": round(ratios_s[0], 3),
                "median": round(ratios_s[len(ratios_s) // 2], 3),
                "max": round(ratios_s[-1], 3),
                "at_max": self.samples[ratios.index(ratios_s[-1])][0],
                "final": round(ratios[-1], 3),
            }
            b = base.report()
            out["write_amplification"] = round(
                out["bytes_written_per_commit"] / b["bytes_written_per_commit"], 2
            )
            out["est_overhead_us_per_commit"], out["est_commit_ratio"] = estimate(out, COST["punch"])
            out["est_overhead_us_busy"], out["est_commit_ratio_busy"] = estimate(out, COST["punch_busy"])
            out["samples"] = [(k, held, round(r, 3)) for (k, held, *_), r in zip(self.samples, ratios)]
        return out


SCALES = {
    "issue": dict(pages=262144, commits=500000, keep=1000, ck=2048, sample=10000, step_commits=256),
    "quick": dict(pages=16384, commits=50000, keep=1000, ck=256, sample=2000, step_commits=256),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", default="quick", choices=SCALES)
    ap.add_argument("-s", "--strategies", default="fifo,unaligned,aligned,hybrid,gen2,reuse")
    ap.add_argument("-w", "--workloads", default="uniform,hot,append,small,oneproc")
    ap.add_argument("--commits", type=int)
    ap.add_argument("--step-commits", type=int, help="commits a punch step retires at most (default 256)")
    ap.add_argument("--legacy-load", action="store_true", help="the bulk load was written before the policy: unaligned")
    ap.add_argument("--seed", type=int, default=20)
    ap.add_argument("--page-size", type=int, default=4096, help="pages of this size (the database's bytes stay the scale's)")
    ap.add_argument("--json", help="write every run's report here")
    a = ap.parse_args()
    cfg = dict(SCALES[a.scale])
    if a.commits:
        cfg["commits"] = a.commits
    if a.page_size != 4096:
        cfg["pages"] = cfg["pages"] * 4096 // a.page_size
        cfg["ck"] = min(max(cfg["pages"] // 64, 256), 2048)
    cfg["page_size"] = a.page_size
    if a.step_commits:
        cfg["step_commits"] = a.step_commits
    reports = []
    for w in a.workloads.split(","):
        base = Sim("none", w, load_aligned=False, seed=a.seed, **cfg)
        base.run()
        rb = base.report()
        print(f"{w:8} none      {rb['bytes_appended_per_commit']:6} B/commit  ({rb['secs']} s)", flush=True)
        for s in a.strategies.split(","):
            sim = Sim(s, w, load_aligned=not a.legacy_load, seed=a.seed, **cfg)
            sim.run()
            r = sim.report(base)
            br = r["blocks_ratio"]
            print(
                f"{w:8} {s:9} blocks {br['min']:.2f}-{br['max']:.2f} (median {br['median']:.2f}, final {br['final']:.2f})"
                f"  WA {r['write_amplification']:5.2f}  copied {r['copied_per_commit']:6} B/c"
                f"  freeing calls {r['punch_calls_per_commit']:.3f}/c  zeroing {r['zeroing_calls_per_commit']:.2f}/c"
                f"  in place {r['inplace_writes_per_commit']:.2f}/c  syncs {r['syncs_per_commit']:.4f}/c"
                f"  est +{r['est_overhead_us_per_commit']} us/c ({r['est_commit_ratio']}x; busy {r['est_commit_ratio_busy']}x)  Vo {r['oldest_kept_final']}  ({r['secs']} s)",
                flush=True,
            )
            reports.append(r)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"config": cfg, "legacy_load": a.legacy_load, "runs": reports}, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
