#!/usr/bin/python3
"""Writes damaged variants of log files, for compare.py.

    mutate.py OUTDIR LOG...

Per log: truncations at every record boundary (start, payload, trailer, end)
+-0..9 bytes and at lengths that are not a multiple of 8; bit flips in the
file header, in every record header, commit info, map entry, trailer and in
the first byte of every frame; file-header fields set to edge values with the
header crc recomputed; record fields set to edge values and the record
re-sealed (header and trailer crcs recomputed with the log's salt); zero
tails and garbage tails appended; the last record, the last MARK and the
last commit zeroed; cuts followed by zeros or a stale copy of the first
record (crash images with pre-allocated or reused space); horizons naming
the previous commit wrongly, the history after them re-chained (re-sealed
so that it chains); earlier records re-sealed at the end of the log.  The records are found with spec_reader's parser.

Format 3 (patches), for a sample of the patches of a log (the first two and
the last of the patch areas of the first three and last three commits that
have one): every patch field (base, ranges, reserved, data bytes, each
range's start and length, the data, the zero padding) set to edge values,
once as is (the patch area is not covered by the trailer crc, so nothing is
re-sealed and the entry's crc no longer matches) and once with the crc of
the page the edited patch makes written into every entry that names it and
the stored checksums that count it ("-fix": only the patch rules can catch
it), the history re-chained; entries naming a patch moved (offset - 1, + 7,
+ 8, another patch) and entries naming an image made to name a patch
(offset + 1), re-chained, as is and with the crc of what they now name; `patch words` changed alone (re-sealed), and the
last COMMIT (and the last SPILL and MARK) grown by a word of zeros or
shrunk by one with `length` to match, cut after it.

ALIGNED records (format 4): the first, middle and last byte of each gap flipped; the
first and last set and the record re-sealed; the flag toggled on every COMMIT and SPILL
with frames, re-sealed.

Format 4 (`control_variants`): every control-info field of every CONTROL record set to
edge values, re-sealed (the payload crc kept); CLAIM toggled; a straggler entry added
(length to match, the log cut after it); the payload torn (a byte flipped: its crc fails)
and damaged with the payload crc re-computed ("-fix"); every base-tree node of the last
CONTROL record that has one damaged (level, first, slot offsets, crc, reserved), payload
crc re-computed; holes (zeros) at B, over a CONTROL payload, and the region below B zeroed
(punched) and zeroed past B.

Issue 25 ("Reading a damaged log", step 5's structural checks): every commit
re-sealed with a structural violation (a zero page with a crc, an image offset
off by 4, `db pages` over the bound or below an entry's page, the FULL_MAP flag
toggled, two entries' page numbers swapped, a delta's page size changed), the
history after it re-chained so that it follows as a writer's would, as is and
cut after the last commit (its MARK gone): on step 5's replay path, in the
walked tail, or in history only verify and the readers of a damaged log walk;
and the oldest two commits damaged (their `db pages`, entry count and a header
byte flipped, unsealed), so that what is readable after the next full map
counts.
"""

import os
import struct
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import spec_reader as sr  # noqa: E402


def records(log):
    out = []
    for o in range(512, log.n, 8):
        r = log.record(o)
        if r is not None:
            out.append(r)
    return out


def reseal(log, d, r):
    """Recomputes r's header crc and trailer crc in d (its layout as parsed)."""
    o = r.off
    struct.pack_into("<I", d, o + 44, log.scrc(bytes(d[o:o + 44])))
    t = r.end - 16
    struct.pack_into("<I", d, t + 12, log.scrc(bytes(d[o:r.payload]) + bytes(d[t:t + 12])))


def gap_of(r):
    """The file offsets [start, end) of an ALIGNED record's gap, or None (no gap)."""
    if r.kind == sr.COMMIT and r.flags & sr.ALIGNED:
        m = r.off + sr.REC_HEADER + sr.COMMIT_INFO + sr.ENTRY * r.n_entries
        m += sr.CHECKPOINT_INFO if r.flags & sr.CHECKPOINT else 0
    elif r.kind == sr.SPILL and r.flags & sr.SPILL_ALIGNED:
        m = r.off + sr.REC_HEADER
    else:
        return None
    return (m, r.payload) if r.payload > m else None


def header_reseal(d):
    struct.pack_into("<I", d, 60, zlib.crc32(bytes(d[:60])) & 0xFFFFFFFF)


def rechain(data, edit_off, edit):
    """Applies edit(d, rec) to the record at edit_off, then re-seals it and every later
    record, repairing the `prev crc`, `horizon crc` and MARK links that named a re-sealed
    commit: a crafted history that chains as a writer's would.  edit_off may also be a dict
    {offset: edit}."""
    edits = edit_off if isinstance(edit_off, dict) else {edit_off: edit}
    edit_off = min(edits)
    log = sr.Log(data)
    log.read_header()
    d = bytearray(data)
    newcrc = {}
    for r in records(log):
        if r.off < edit_off:
            continue
        if r.off in edits:
            edits[r.off](d, r)
        if r.prev in newcrc:
            struct.pack_into("<I", d, r.off + 40, newcrc[r.prev])
        if r.kind == sr.COMMIT:
            (hz_off,) = struct.unpack_from("<Q", d, r.off + 48 + 24)
            if hz_off in newcrc:
                struct.pack_into("<I", d, r.off + 48 + 48, newcrc[hz_off])
        reseal(log, d, r)
        if r.kind == sr.COMMIT:
            newcrc[r.off] = struct.unpack_from("<I", d, r.end - 4)[0]
    return bytes(d)


def moved(log, data, r, newoff):
    """Record r's bytes as they would be at newoff (trailer offset and crc redone)."""
    b = bytearray(data[r.off:r.end])
    struct.pack_into("<Q", b, r.length - 16, newoff)
    pay = r.payload - r.off
    struct.pack_into("<I", b, r.length - 4, log.scrc(bytes(b[:pay]) + bytes(b[r.length - 16:r.length - 4])))
    return bytes(b)


def patches_of(log, r):
    """The patches of commit r's patch area that parse, in order: (P, base, ranges, data at, size)."""
    out = []
    pos = r.parea
    while pos < r.parea_end:
        pp = log.parse_patch(pos, r.ps, r.parea_end)
        if isinstance(pp, str):
            break
        out.append((pos,) + pp)
        pos += pp[3]
    return out


def lenient_page(d, p, ps):
    """The page the (possibly broken) patch at p makes when its fields are applied as they
    are, as far as they go; None when there is no base image to apply them to."""
    base, n, _res, _nb = struct.unpack_from("<QHHI", d, p)
    if base + ps > len(d):
        return None
    page = bytearray(d[base:base + ps])
    at = p + 16 + 4 * n
    for k in range(n):
        if p + 20 + 4 * k > len(d):
            break
        st, ln = struct.unpack_from("<HH", d, p + 16 + 4 * k)
        ln = max(0, min(ln, ps - st, len(d) - at))
        page[st:st + ln] = d[at:at + ln]
        at += ln
    return bytes(page)


def recrc(data, commits, fixes):
    """Gives every entry whose offset is in fixes ({entry offset: new crc}) its new crc, and
    every commit whose map holds such an entry the stored checksum that goes with it; the
    history re-chained."""
    edits = {}
    pmap = {}
    for c in commits:
        ents = c.entries()
        if c.full:
            pmap = {}
        for pg in [pg for pg in pmap if pg > c.db_pages]:
            del pmap[pg]
        for pg, cr, fo in ents:
            pmap[pg] = (cr, fo)
        delta = 0
        for pg, (cr, fo) in pmap.items():
            if fo in fixes and fixes[fo] != cr:
                delta ^= sr.mix(((pg << 32) | cr) & sr.M64) ^ sr.mix(((pg << 32) | fixes[fo]) & sr.M64)
        idx = [k for k, (_pg, _cr, fo) in enumerate(ents) if fo in fixes]
        if delta or idx:
            def edit(d, r, delta=delta, idx=idx):
                for k in idx:
                    e = r.off + 104 + 16 * k
                    (fo,) = struct.unpack_from("<Q", d, e + 8)
                    struct.pack_into("<I", d, e + 4, fixes[fo])
                (ck,) = struct.unpack_from("<Q", d, r.off + 88)
                struct.pack_into("<Q", d, r.off + 88, ck ^ delta)
            edits[c.off] = edit
    if not edits:
        return data
    return rechain(data, edits, None)


def patch_variants(log, data, recs):
    commits = [r for r in recs if r.kind == sr.COMMIT]
    with_area = [c for c in commits if c.pw > 0]
    sample = with_area[:3] + [c for c in with_area[-3:] if c not in with_area[:3]]
    all_starts = [pt[0] for c in with_area for pt in patches_of(log, c)]
    for c in sample:
        ps = c.ps
        pts = patches_of(log, c)
        for (p, base, ranges, at, size) in pts[:2] + pts[2:][-1:]:
            n = len(ranges)
            nb = sum(ln for _st, ln in ranges)
            raw_end = p + 16 + 4 * n + nb
            other = [q for q in all_starts if q != p and q < p]
            edits = [
                ("base+8", p, "<Q", base + 8), ("base-8", p, "<Q", base - 8), ("base0", p, "<Q", 0),
                ("base504", p, "<Q", 504), ("base+1", p, "<Q", base + 1), ("baseP", p, "<Q", p),
                ("baseP-ps+8", p, "<Q", p - ps + 8), ("basehdr", p, "<Q", c.off),
                ("n0", p + 8, "<H", 0), ("n+1", p + 8, "<H", n + 1), ("nmax", p + 8, "<H", 0xFFFF),
                ("res1", p + 10, "<H", 1), ("res8000", p + 10, "<H", 0x8000),
                ("db+1", p + 12, "<I", nb + 1), ("db-1", p + 12, "<I", nb - 1), ("db0", p + 12, "<I", 0),
                ("dbmax", p + 12, "<I", 0xFFFFFFFF),
                ("r0st+1", p + 16, "<H", ranges[0][0] + 1), ("r0stmax", p + 16, "<H", 0xFFFF),
                ("r0st-ps", p + 16, "<H", ps - ranges[0][1] + 1),
                ("r0len0", p + 18, "<H", 0), ("r0len+1", p + 18, "<H", ranges[0][1] + 1),
                ("r0lenps", p + 18, "<H", min(ps, 0xFFFF)),
                ("data0", p + 16 + 4 * n, "<B", data[p + 16 + 4 * n] ^ 1),
                ("datalast", raw_end - 1, "<B", data[raw_end - 1] ^ 0x80),
            ]
            if n > 1:
                edits += [("n-1", p + 8, "<H", n - 1),
                          ("r1overlap", p + 20, "<H", ranges[0][0] + ranges[0][1] - 1),
                          ("r1same", p + 20, "<H", ranges[0][0]),
                          ("rlast-st+1", p + 16 + 4 * (n - 1), "<H", ranges[-1][0] + 1)]
            if other:
                edits += [("basepatch", p, "<Q", other[-1])]
            if raw_end < p + size:
                edits.append(("pad", raw_end, "<B", 1))
            for name, off, fmt, val in edits:
                if val < 0 or val >= 1 << (8 * struct.calcsize(fmt)):
                    continue
                d = bytearray(data)
                struct.pack_into(fmt, d, off, val)
                if bytes(d) == data:
                    continue
                yield "p%d-%s" % (p, name), bytes(d)
                page = lenient_page(d, p, ps)
                if page is not None:
                    yield "p%d-%s-fix" % (p, name), recrc(bytes(d), commits, {p + 1: sr.crc32(page)})
        # Entries naming a patch moved, entries naming an image made to name a patch.
        ents = c.entries()
        pe = [(k, e) for k, e in enumerate(ents) if e[2] % 8 == 1][:3]
        ie = [(k, e) for k, e in enumerate(ents) if e[2] != 0 and e[2] % 8 == 0][:2]
        for k, (pg, cr, fo) in pe + ie:
            moves = [("m1", fo - 1), ("p7", fo + 7), ("p8", fo + 8), ("p1", fo + 1)]
            if fo % 8 == 1:
                moves += [("other", q + 1) for q in all_starts if q + 1 != fo][:1]
            for tag, nfo in moves:
                def edit(d, r, k=k, nfo=nfo):
                    struct.pack_into("<Q", d, r.off + 104 + 16 * k + 8, nfo)
                img = rechain(data, c.off, edit)
                yield "v%d-e%d-%s" % (c.version, k, tag), img
                # the same with the crc of what the entry now names (an image's bytes, or
                # the page the patch there makes as far as its fields go)
                page = (lenient_page(img, nfo - 1, ps) if nfo % 8 == 1 and nfo + 15 < len(img)
                        else img[nfo:nfo + ps] if nfo % 8 == 0 and nfo + ps <= len(img) else None)
                if page is not None:
                    lg = sr.Log(img)
                    lg.read_header()
                    cs = [r for r in records(lg) if r.kind == sr.COMMIT]
                    yield "v%d-e%d-%s-fix" % (c.version, k, tag), recrc(img, cs, {nfo: sr.crc32(page)})
    # Patch words: changed alone (the length no longer matches), and grown / shrunk by a
    # word with the length to match, cut after the record.
    for c in with_area[:2] + with_area[-1:]:
        for tag, val in (("pw+1", c.pw + 1), ("pw-1", c.pw - 1), ("pwmax", 0xFFFF)):
            d = bytearray(data)
            struct.pack_into("<H", d, c.off + 6, val)
            reseal(log, d, c)
            yield "v%d-%s" % (c.version, tag), bytes(d)
    lasts = [r for r in (with_area[-1:] + [r for r in recs if r.kind == sr.SPILL][-1:]
                         + [r for r in recs if r.kind == sr.MARK][-1:] + commits[-1:])]
    for r in lasts:
        for words, tag in ((1, "grow"), (-1, "shrink"), (1, "growjunk")):
            if r.pw + words < 0 or (words < 0 and r.kind != sr.COMMIT):
                continue
            body = bytearray(data[r.off:r.end - 16])
            if words > 0:
                body += bytes(8) if tag == "grow" else bytes(range(0xA0, 0xA8))
            else:
                body = body[:-8]
            struct.pack_into("<H", body, 6, r.pw + words)
            struct.pack_into("<Q", body, 8, r.length + 8 * words)
            body += struct.pack("<Q", r.off) + b"PLTR" + bytes(4)
            d = bytearray(data[:r.off]) + body
            struct.pack_into("<I", d, r.off + 44, log.scrc(bytes(d[r.off:r.off + 44])))
            t = len(d) - 16
            struct.pack_into("<I", d, t + 12, log.scrc(bytes(d[r.off:r.payload]) + bytes(d[t:t + 12])))
            yield "r@%d-%s" % (r.off, tag), bytes(d)


def structural_variants(log, data, recs):
    commits = [r for r in recs if r.kind == sr.COMMIT]
    if not commits:
        return
    last_end = commits[-1].end
    for c in commits:
        ents = c.entries()
        ci = c.off + 48
        edits = [("dbpbig", lambda d, r: struct.pack_into("<I", d, r.off + 56, log.n // 512 + 65537)),
                 ("fullflag", lambda d, r: struct.pack_into("<B", d, r.off + 5, r.flags ^ 1))]
        if ents:
            top = ents[-1][0]
            edits.append(("dbplow", lambda d, r, top=top: struct.pack_into("<I", d, r.off + 56, top - 1)))
            z = [k for k, e in enumerate(ents) if e[2] == 0]
            if z:
                edits.append(("zerocrc", lambda d, r, k=z[0]: struct.pack_into("<I", d, r.off + 104 + 16 * k + 4, 1)))
            else:
                edits.append(("tozero", lambda d, r: struct.pack_into("<Q", d, r.off + 104 + 8, 0)))
            img = [k for k, e in enumerate(ents) if e[2] != 0 and e[2] % 8 == 0]
            if img:
                k = img[0]
                edits.append(("off4", lambda d, r, k=k: struct.pack_into(
                    "<Q", d, r.off + 104 + 16 * k + 8, ents[k][2] + 4)))
            if len(ents) > 1:
                def swap(d, r, a=ents[0][0], b=ents[1][0]):
                    struct.pack_into("<I", d, r.off + 104, b)
                    struct.pack_into("<I", d, r.off + 120, a)
                edits.append(("pgswap", swap))
        if not c.full:
            edits.append(("deltaps", lambda d, r: struct.pack_into("<I", d, r.off + 32, 2048 if r.ps != 2048 else 1024)))
        for tag, edit in edits:
            img = rechain(data, c.off, edit)
            yield "v%d-rp-%s" % (c.version, tag), img
            yield "v%d-rp-%s-cut" % (c.version, tag), img[:last_end]
    for c in commits[:2]:
        for tag, off in (("dbp", c.off + 56), ("entries", c.off + 60), ("hdr", c.off + 20)):
            d = bytearray(data)
            d[off] ^= 0x10
            yield "oldest-v%d-%s" % (c.version, tag), bytes(d)


def payload_reseal(log, d, r):
    """Recomputes a CONTROL record's payload crc, then its trailer crc."""
    struct.pack_into("<I", d, r.off + 48 + 48, log.scrc(bytes(d[r.payload:r.payload + r.ctl.payload_bytes])))
    reseal(log, d, r)


def control_variants(log, data, recs):
    """Format 4: every control-info field of every CONTROL record set to edge values and the
    record re-sealed (its payload crc kept, or re-computed where the payload changes); CLAIM
    toggled; the payload torn (a byte flipped, unsealed: not a record) and damaged with its crc
    re-computed (a relocated item or a base-tree node fails its own check), every base-tree node
    of the log's last CONTROL record flipped that way; holes (zeros) at and after the boundary,
    over a CONTROL record's payload, and the region below it zeroed or punched too far."""
    ctls = [r for r in recs if r.kind == sr.CONTROL]
    for i, r in enumerate(ctls):
        o, c, ci = r.off, r.ctl, r.off + 48
        edits = [
            ("epoch0", ci, "<Q", 0), ("epochp1", ci + 0, "<Q", c.epoch + 1),
            ("keepv1", ci + 8, "<Q", 1), ("keeps1", ci + 16, "<Q", 1), ("keepb", ci + 24, "<Q", 1 << 40),
            ("b0", ci + 32, "<Q", 0), ("b504", ci + 32, "<Q", 504), ("b512", ci + 32, "<Q", 512),
            ("bp4", ci + 32, "<Q", c.boundary + 4), ("bp8", ci + 32, "<Q", c.boundary + 8),
            ("bm8", ci + 32, "<Q", max(c.boundary - 8, 0)), ("bself", ci + 32, "<Q", o),
            ("bend", ci + 32, "<Q", r.end), ("bbig", ci + 32, "<Q", 1 << 40),
            ("vo0", ci + 40, "<Q", 0), ("vop1", ci + 40, "<Q", c.oldest + 1),
            ("vom1", ci + 40, "<Q", max(c.oldest - 1, 0)), ("vomax", ci + 40, "<Q", (1 << 64) - 1),
            ("pcrc", ci + 48, "<I", c.payload_crc ^ 1), ("res52", ci + 52, "<I", 1),
            ("root0", ci + 56, "<Q", 0), ("rootp8", ci + 56, "<Q", c.root + 8),
            ("rootm8", ci + 56, "<Q", max(c.root - 8, 0)), ("rootend", ci + 56, "<Q", r.end),
            ("rootcrc", ci + 64, "<I", c.root_crc ^ 1), ("depth0", ci + 68, "<B", 0),
            ("depth7", ci + 68, "<B", 7), ("depthp1", ci + 68, "<B", c.depth + 1),
            ("depthm1", ci + 68, "<B", max(c.depth - 1, 0)), ("res69", ci + 69, "<B", 1),
            ("res71", ci + 71, "<B", 1), ("ts", ci + 72, "<Q", 1), ("ctr", ci + 80, "<I", 7),
            ("strag1", ci + 84, "<I", 1), ("payp8", ci + 88, "<Q", c.payload_bytes + 8),
            ("paym8", ci + 88, "<Q", max(c.payload_bytes - 8, 0)), ("pay4", ci + 88, "<Q", 4),
            ("claim", o + 5, "<B", r.flags ^ 1),
        ]
        if c.root == 0:
            edits += [("rootonly", ci + 56, "<Q", 512), ("rootcrconly", ci + 64, "<I", 1)]
        for name, off, fmt, val in edits:
            d = bytearray(data)
            struct.pack_into(fmt, d, off, val)
            reseal(log, d, r)
            yield "c%d@%d-%s" % (i, o, name), bytes(d)
        # A straggler entry, with the length to match (the table is ignored).
        d = bytearray(data[:r.payload]) + bytes(range(16)) + bytearray(data[r.payload:r.end])
        struct.pack_into("<I", d, o + 48 + 84, 1)
        struct.pack_into("<Q", d, o + 8, r.length + 16)
        struct.pack_into("<Q", d, r.end, o)
        tmp = sr.Rec()
        tmp.off, tmp.payload, tmp.end = o, r.payload + 16, r.end + 16
        reseal(log, d, tmp)
        yield "c%d@%d-straggler-entry" % (i, o), bytes(d)  # the log ends after it
        if c.payload_bytes:
            for name, at in (("first", r.payload), ("mid", r.payload + c.payload_bytes // 2 // 8 * 8),
                             ("last", r.payload + c.payload_bytes - 1)):
                d = bytearray(data)
                d[at] ^= 0x20
                yield "c%d@%d-torn-%s" % (i, o, name), bytes(d)
                payload_reseal(log, d, r)
                yield "c%d@%d-payload-%s-fix" % (i, o, name), bytes(d)
    # Every node of the base tree of the last CONTROL record that has one: a byte of its level,
    # first page, a slot's offset, crc and reserved bytes flipped, payload crc re-computed.
    with_tree = [r for r in ctls if r.ctl.root]
    if with_tree:
        r = with_tree[-1]
        nodes = []

        def collect(off, level):
            nodes.append((off, level))
            if level > 0:
                for k in range(64):
                    so, _sc = struct.unpack_from("<QI", data, off + 8 + 16 * k)
                    if so and r.payload <= so < r.end:
                        collect(so, level - 1)
        collect(r.ctl.root, r.ctl.depth - 1)
        for off, level in nodes:
            for tag, dd in (("level", 0), ("res", 1), ("first", 4), ("s0off", 8), ("s1off", 24),
                            ("s1crc", 32), ("s1res", 36), ("s5off", 88)):
                d = bytearray(data)
                d[off + dd] ^= 0x01 if tag != "s1off" else 0x08
                payload_reseal(log, d, r)
                yield "node@%d-%s-fix" % (off, tag), bytes(d)
    # Straggler tables: entries out of order, copies moved, outside the record.
    for r in ctls:
        t = r.off + 48 + 96
        for k in range(min(r.ctl.stragglers, 3)):
            e = t + 16 * k
            old, new = struct.unpack_from("<QQ", data, e)
            for tag, off, val in (("oldp8", e, old + 8), ("oldm8", e, old - 8), ("newp8", e + 8, new + 8),
                                  ("newm8", e + 8, new - 8), ("newp4", e + 8, new + 4),
                                  ("newB", e + 8, r.ctl.boundary - 8), ("newend", e + 8, r.end)):
                d = bytearray(data)
                struct.pack_into("<Q", d, off, val)
                reseal(log, d, r)
                yield "c@%d-straggler%d-%s" % (r.off, k, tag), bytes(d)
        if r.ctl.stragglers >= 2:
            d = bytearray(data)
            d[t:t + 16], d[t + 16:t + 32] = data[t + 16:t + 32], data[t:t + 16]
            reseal(log, d, r)
            yield "c@%d-stragglers-swapped" % r.off, bytes(d)
    # Checkpoints (the checkpoint info after the entries) and INDEX records.
    for r in recs:
        if r.kind == sr.COMMIT and r.ck is not None:
            ck = r.off + 48 + 56 + 16 * r.n_entries
            root, rc, depth, ix, ixc, cl, clc = r.ck
            for tag, off, fmt, val in (
                    ("rootp8", ck, "<Q", root + 8), ("root0", ck, "<Q", 0), ("rootself", ck, "<Q", r.off),
                    ("rootcrc", ck + 8, "<I", rc ^ 1), ("depth0", ck + 12, "<B", 0), ("depth7", ck + 12, "<B", 7),
                    ("depthp1", ck + 12, "<B", depth + 1), ("depthm1", ck + 12, "<B", depth - 1),
                    ("res13", ck + 13, "<B", 1), ("ixp8", ck + 16, "<Q", ix + 8), ("ix0", ck + 16, "<Q", 0),
                    ("ixcrc", ck + 24, "<I", ixc ^ 1), ("res28", ck + 28, "<I", 1), ("ctlp8", ck + 32, "<Q", cl + 8),
                    ("ctl0", ck + 32, "<Q", 0), ("ctlcrc", ck + 40, "<I", clc ^ 1), ("res44", ck + 44, "<I", 1),
                    ("noflag", r.off + 5, "<B", r.flags & ~sr.CHECKPOINT),
                    ("fullflag", r.off + 5, "<B", r.flags | sr.FULL_MAP)):
                d = bytearray(data)
                struct.pack_into(fmt, d, off, val)
                reseal(log, d, r)
                yield "ck@%d-%s" % (r.off, tag), bytes(d)
        if r.kind == sr.INDEX:
            pb = r.end - 16 - r.payload
            for tag, off, fmt, val in (("pbp8", r.off + 48, "<Q", pb + 8), ("pb0", r.off + 48, "<Q", 0),
                                       ("pcrc", r.off + 56, "<I", 1), ("res", r.off + 60, "<I", 1),
                                       ("flags", r.off + 5, "<B", 1)):
                d = bytearray(data)
                struct.pack_into(fmt, d, off, val)
                reseal(log, d, r)
                yield "ix@%d-%s" % (r.off, tag), bytes(d)
            for k, at in enumerate(range(r.payload, r.payload + pb, max(8, pb // 12 // 8 * 8))):
                d = bytearray(data)
                d[at] ^= 0x04
                yield "ix@%d-torn%d" % (r.off, k), bytes(d)
                struct.pack_into("<I", d, r.off + 56, log.scrc(bytes(d[r.payload:r.payload + pb])))
                reseal(log, d, r)
                yield "ix@%d-node%d-fix" % (r.off, k), bytes(d)
    # Holes: zeros at and after B (the record at B, a page of it, a CONTROL payload), and the
    # freed region zeroed (punched) or zeroed past B.
    b = max((r.ctl.boundary for r in ctls), default=512)
    for ln in (8, 48, 512, 4096):
        if b + ln <= len(data):
            d = bytearray(data)
            d[b:b + ln] = bytes(ln)
            yield "hole-at-B+%d" % ln, bytes(d)
    for r in ctls:
        if r.ctl.payload_bytes:
            d = bytearray(data)
            d[r.payload:r.payload + min(4096, r.ctl.payload_bytes)] = bytes(min(4096, r.ctl.payload_bytes))
            yield "hole-over-payload@%d" % r.off, bytes(d)
    if b > 512:
        d = bytearray(data)
        d[512:b] = bytes(b - 512)
        yield "punched-to-B", bytes(d)
        for past in (8, 512, 4096):
            d = bytearray(data)
            d[512:b + past] = bytes(b + past - 512)
            yield "punched-past-B+%d" % past, bytes(d)


def variants(data):
    log = sr.Log(data)
    try:
        if log.read_header() != "log":
            return
    except sr.NotALog:
        return
    recs = records(log)
    n = len(data)
    # Truncations.
    cuts = set()
    for r in recs:
        for x in (r.off, r.payload, r.end - 16, r.end, r.off + 48):
            for dd in range(-9, 10):
                cuts.add(x + dd)
    for c in (0, 1, 3, 4, 7, 8, 40, 63, 64, 100, 511, 512, 513, n - 1, n - 3, n - 7):
        cuts.add(c)
    for c in sorted(cuts):
        if 0 <= c < n:
            yield "cut%d" % c, data[:c]
    # Bit flips, unsealed.
    flips = set(range(0, 64))
    for r in recs:
        flips.update(range(r.off, r.off + 48, 3))
        if r.kind == sr.COMMIT:
            flips.update(range(r.off + 48, r.off + 104, 2))
            flips.update(range(r.off + 104, min(r.off + 104 + 16 * r.n_entries, r.off + 104 + 64), 4))
        flips.update(range(r.end - 16, r.end, 2))
        for k in range(r.frames):
            flips.add(r.payload + k * r.ps)
            flips.add(r.payload + k * r.ps + r.ps - 1)
        g = gap_of(r)
        if g:
            flips.update((g[0], (g[0] + g[1]) // 2, g[1] - 1))
        if r.kind == sr.COMMIT and r.pw:
            # the first bytes of each patch field, and the area's last byte
            for pt in patches_of(log, r)[:4]:
                flips.update((pt[0], pt[0] + 8, pt[0] + 10, pt[0] + 12, pt[0] + 16, pt[0] + 18, pt[3]))
            flips.add(r.parea_end - 1)
    for p in sorted(flips):
        if p < n:
            d = bytearray(data)
            d[p] ^= 0x10
            yield "flip%d" % p, bytes(d)
    # File header fields, header crc recomputed.
    for name, off, fmt, val in (
        ("fmt1", 8, "<I", 1), ("fmt2", 8, "<I", 2), ("fmt3", 8, "<I", 3), ("fmt0", 8, "<I", 0),
        ("fmt4", 8, "<I", 4),
        ("hsize65", 12, "<I", 65), ("hps0", 16, "<I", 0), ("hps1000", 16, "<I", 1000),
        ("hps256", 16, "<I", 256), ("hps128k", 16, "<I", 131072), ("hps4096", 16, "<I", 4096),
        ("hflags1", 20, "<I", 1), ("hres40", 40, "<B", 1), ("hres59", 59, "<B", 0x80),
        ("hsalt", 24, "<Q", 1),
    ):
        d = bytearray(data)
        struct.pack_into(fmt, d, off, val)
        header_reseal(d)
        yield "hdr-" + name, bytes(d)
    d = bytearray(data)
    d[100] = 1
    yield "hdr-pad100", bytes(d)
    # Record fields, re-sealed.
    for i, r in enumerate(recs):
        o = r.off
        edits = [
            ("kind1", o + 4, "<B", 1), ("kind2", o + 4, "<B", 2), ("kind3", o + 4, "<B", 3),
            ("kind4", o + 4, "<B", 4), ("flags4", o + 5, "<B", r.flags | 4),
            ("flagsfull", o + 5, "<B", r.flags ^ 1), ("flagssealed", o + 5, "<B", r.flags ^ 2),
            ("res", o + 6, "<H", 1), ("verp1", o + 16, "<Q", r.version + 1),
            ("verm1", o + 16, "<Q", max(r.version - 1, 0)), ("ver0", o + 16, "<Q", 0),
            ("vermax", o + 16, "<Q", (1 << 64) - 1), ("prev0", o + 24, "<Q", 0),
            ("prevself", o + 24, "<Q", o), ("prevcrc0", o + 40, "<I", 0),
            ("ps1024", o + 32, "<I", 1024 if r.ps != 1024 else 2048),
        ]
        if r.kind == sr.COMMIT:
            ci = o + 48
            edits += [
                ("dbp0", ci + 8, "<I", 0), ("dbpp1", ci + 8, "<I", r.db_pages + 1),
                ("dbpm1", ci + 8, "<I", max(r.db_pages - 1, 0)), ("dbpmax", ci + 8, "<I", 0xFFFFFFFF),
                ("hzv0", ci + 16, "<Q", 0), ("hzvp1", ci + 16, "<Q", r.hz_ver + 1),
                ("hzvself", ci + 16, "<Q", r.version), ("hzvbig", ci + 16, "<Q", r.version + 5),
                ("hzoff", ci + 24, "<Q", r.hz_off + 8), ("hzcrc", ci + 48, "<I", r.hz_crc ^ 1),
                ("fmoff", ci + 32, "<Q", r.fm_off + 8), ("fmoff512", ci + 32, "<Q", 512),
                ("fmoffself", ci + 32, "<Q", o), ("cks", ci + 40, "<Q", r.checksum ^ 1),
                ("p1", ci + 52, "<I", r.p1 + 1),
            ]
            ents = r.entries()
            for k, (pg, c, fo) in enumerate(ents[:4]):
                e = ci + 56 + 16 * k
                edits += [
                    ("e%dpg0" % k, e, "<I", 0), ("e%dpgp" % k, e, "<I", pg + 1),
                    ("e%dcrc" % k, e + 4, "<I", c ^ 1), ("e%doff0" % k, e + 8, "<Q", 0),
                    ("e%doffp8" % k, e + 8, "<Q", fo + 8), ("e%doff511" % k, e + 8, "<Q", 504),
                    ("e%doffbig" % k, e + 8, "<Q", r.end),
                ]
                if fo == 0:
                    edits.append(("e%dzerocrc" % k, e + 4, "<I", 1))
        if r.kind in (sr.COMMIT, sr.SPILL) and r.frames:
            # "Aligned page images": the flag toggled (the layout moves), and a gap byte set
            edits.append(("flagsaligned", o + 5, "<B", r.flags ^ (sr.ALIGNED if r.kind == sr.COMMIT
                                                                  else sr.SPILL_ALIGNED)))
        g = gap_of(r)
        if g:
            edits += [("gapfirst", g[0], "<B", 1), ("gaplast", g[1] - 1, "<B", 0x80)]
        for name, off, fmt, val in edits:
            d = bytearray(data)
            struct.pack_into(fmt, d, off, val)
            reseal(log, d, r)
            yield "r%d@%d-%s" % (i, o, name), bytes(d)
        # The record zeroed / removed.
        d = bytearray(data)
        d[r.off:r.end] = bytes(r.length)
        yield "r%d@%d-zeroed" % (i, o), bytes(d)
    # Crash images: cut at a record boundary (+-0, 1, 7, 8 bytes), then
    # pre-allocated zeros or a stale record (an earlier one copied) past it.
    for r in recs:
        for x in (r.off, r.payload, r.end - 16, r.end):
            for dd in (-8, -7, -1, 0, 1, 7, 8):
                c = x + dd
                if 512 <= c < n:
                    yield "cut%d+z4k" % c, data[:c] + bytes(4096)
        if r.kind != sr.MARK:
            yield "cut%d+stale" % r.end, data[:r.end] + data[recs[0].off:recs[0].end]
    # A commit's horizon naming the commit before it with a wrong crc or offset, or at
    # offset 0, the history after it re-chained; with and without what follows the last
    # commit (its MARK).
    commits = [r for r in recs if r.kind == sr.COMMIT]
    byv = {c.version: c for c in commits}
    end = max(r.end for r in recs) if recs else 0
    for c in commits:
        p = byv.get(c.version - 1)
        if p is None:
            continue
        for tag, (hv, ho, hc) in (("crc", (p.version, p.off, p.tcrc ^ 1)), ("off", (p.version, p.off + 8, p.tcrc)),
                                  ("zerooff", (p.version, 0, 0))):
            def edit(d, r, hv=hv, ho=ho, hc=hc):
                struct.pack_into("<Q", d, r.off + 64, hv)
                struct.pack_into("<Q", d, r.off + 72, ho)
                struct.pack_into("<I", d, r.off + 96, hc)
            img = rechain(data, c.off, edit)
            yield "v%d-horizon-%s" % (c.version, tag), img
            yield "v%d-horizon-%s-cut" % (c.version, tag), img[:commits[-1].end]
    # Earlier records copied, re-sealed at the end of the log (stale records that check out).
    for r in recs[:-1]:
        if r.kind != sr.SPILL or r.off < 4096:
            yield "r%d@%d-appended" % (recs.index(r), r.off), data[:end] + moved(log, data, r, end)
    if recs and recs[-1].kind == sr.MARK and recs[-1].end == end:
        yield "double-mark", data[:end] + moved(log, data, recs[-1], end)
    # Issue 25: structural violations re-sealed and re-chained; damaged oldest commits.
    yield from structural_variants(log, data, recs)
    # Format 3: patches.
    if log.fmt >= 3:
        yield from patch_variants(log, data, recs)
    # Format 4: CONTROL records, the base tree, holes.
    if log.fmt == 4:
        yield from control_variants(log, data, recs)
    # Tails.
    for name, tail in (("z7", bytes(7)), ("z8", bytes(8)), ("z4k", bytes(4096)), ("z64k", bytes(65536)),
                       ("g5", b"\x01\x02\x03\x04\x05"), ("g16", bytes(range(1, 17))),
                       ("pltr", b"\x00" * 8 + b"PLTR" + b"\x00" * 4)):
        yield "tail-" + name, data + tail
    if recs:
        last = recs[-1]
        yield "append-copy-last", data + data[last.off:last.end]
        marks = [r for r in recs if r.kind == sr.MARK]
        commits = [r for r in recs if r.kind == sr.COMMIT]
        if marks:
            d = bytearray(data)
            d[marks[-1].off:marks[-1].end] = bytes(64)
            yield "lastmark-zeroed", bytes(d)
            d = bytearray(data)
            for m in marks:
                d[m.off:m.end] = bytes(64)
            yield "allmarks-zeroed", bytes(d)
        if commits:
            c = commits[-1]
            for k in range(c.frames):
                d = bytearray(data)
                d[c.payload + k * c.ps] ^= 1
                yield "lastcommit-frame%d" % k, bytes(d)


def main(argv):
    out = argv[1]
    os.makedirs(out, exist_ok=True)
    count = 0
    for path in argv[2:]:
        with open(path, "rb") as f:
            data = f.read()
        base = os.path.basename(path).rsplit(".", 1)[0]
        seen = set()
        for name, img in variants(data):
            if img in seen or img == data:
                continue
            seen.add(img)
            with open(os.path.join(out, "%s~%s.log" % (base, name)), "wb") as f:
                f.write(img)
            count += 1
    print(count)


if __name__ == "__main__":
    main(sys.argv)
