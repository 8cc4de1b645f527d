#!/usr/bin/python3
"""A second reader of the pagelog log format, written from vfs/FORMAT.md alone.

    spec_reader.py --summary LOG...   prints `LOG opens N clean|damaged` or
                                      `LOG refused clean|damaged`, a line a file
    spec_reader.py --pages LOG...     prints `LOG 1:CRC 2:reclaimed ...`: every version
                                      1..latest as read (crc32 of its image, `reclaimed`,
                                      `none`, `error`), or `LOG refused`
    spec_reader.py LOG                prints one JSON object:
      {"opens": bool, "latest": N|null, "error": str|null,
       "verify": "clean"|"damaged", "verify_error": str|null,
       "versions": [{"version", "checksum", "stored_checksum", "db_pages",
                     "page_size", "offset", "full_map"}...],
       "readable": [N...], "readable_checksums": {N: stored checksum},
       "damage_met": bool}

"opens"/"latest"/"error" follow "Recovery (what a reader does on open)",
steps 1-5; "verify" follows the paragraph after step 5 (steps 3 and 4 from
offset 512 with version 0 as D, every frame of every version checked) plus
the "Claims" rule (a claim naming a commit that is not there is damage).
"readable" and "damage_met" follow "Reading a damaged log": the versions a reader
may read (recovery's walk back from the latest, the forward read from 512) and
whether it meets damage on the way (and so a tool exits 1).
"versions" lists the versions readable in place from the latest one
(following `prev commit` back, step 5's last sentence), each with the
whole-database checksum this reader computes from the page map and the one
the commit stores.

Python 3 standard library only.  Every rule below cites the FORMAT.md
section it comes from; where the text leaves a choice open the comment says
"CHOICE" and what was chosen.
"""

import bisect
import json
import struct
import sys
import zlib

FILE_MAGIC = b"PAGELOG\x00"
REC_MAGIC = b"PLRC"
TR_MAGIC = b"PLTR"
SPILL, COMMIT, MARK, INDEX, CONTROL = 1, 2, 3, 4, 5
FULL_MAP, SEALED, CHECKPOINT = 1, 2, 4
ALIGNED = 8  # "COMMIT: ... bit 3 = ALIGNED (format 4 only, with frames >= 1)"
RECYCLED = 16  # "bit 4 = RECYCLED (format 4 only, on a delta: never with FULL_MAP, CHECKPOINT or SUMMARY)"
SPILL_ALIGNED = 1  # "SPILL: bit 0 = ALIGNED (format 4 only, with frames >= 1)"
CLAIM = 1  # "Format 4": CONTROL flag bit 0
SUMMARY = 32  # "Summary commits": "COMMIT flag bit 5 (value 32), SUMMARY, format 4 only"
SUMMARY_INFO = 32  # "The summary info (32 bytes) follows the entry table"
HEADER_BLOCK = 512
REC_HEADER = 48
COMMIT_INFO = 56
CONTROL_INFO = 96  # "Format 4", "CONTROL records (kind 5)"
INDEX_INFO = 16  # "Checkpoints and INDEX records"
CHECKPOINT_INFO = 48
STRAGGLER = 16
FREE_ENTRY = 16
ENTRY = 16
TRAILER = 16
M64 = (1 << 64) - 1


class Damage(Exception):
    """The log is damaged (a claim that does not check out, a broken map path)."""

    def __init__(self, offset, msg):
        super().__init__("damaged at offset %d: %s" % (offset, msg))
        self.offset = offset


class NotALog(Exception):
    pass


def crc32(data, start=0):
    return zlib.crc32(data, start) & 0xFFFFFFFF


def mix(x):
    # "Whole-database checksum": the splitmix64 finaliser, modulo 2^64.
    z = (x + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def page_size_ok(ps):
    return 512 <= ps <= 65536 and ps & (ps - 1) == 0


class Rec:
    __slots__ = (
        "off", "kind", "flags", "length", "version", "prev", "ps", "frames", "prev_crc",
        "tcrc", "payload", "end", "db_pages", "n_entries", "hz_ver", "hz_off", "fm_off",
        "checksum", "hz_crc", "p1", "_entries", "data", "pw", "parea", "ctl", "ck", "sm",
    )

    @property
    def full(self):
        return bool(self.flags & FULL_MAP)

    @property
    def is_map(self):
        """ "a checkpoint counts as" a FULL_MAP commit wherever a map starts."""
        return self.kind == COMMIT and bool(self.flags & (FULL_MAP | CHECKPOINT))

    @property
    def is_map_commit(self):
        """ "Summary commits": "It is a map commit, as a checkpoint (or a FULL_MAP) is" """
        return self.is_map or (self.kind == COMMIT and self.sm is not None)

    @property
    def sealed(self):
        return bool(self.flags & SEALED)

    def ident(self):
        return (self.version, self.off, self.tcrc)

    @property
    def parea_end(self):
        """End of the patch area (= end of the payload region, where the trailer starts)."""
        return self.end - TRAILER

    def entries(self):
        if self._entries is None:
            base = self.off + REC_HEADER + COMMIT_INFO
            raw = self.data[base:base + ENTRY * self.n_entries]
            self._entries = list(struct.iter_unpack("<IIQ", raw))
        return self._entries


class Control:
    """A CONTROL record's control info ("Format 4")."""
    __slots__ = ("epoch", "keep_versions", "keep_seconds", "keep_bytes", "boundary", "oldest",
                 "payload_crc", "root", "root_crc", "depth", "oldest_ts", "oldest_counter",
                 "stragglers", "payload_bytes", "free_entries")


class Log:
    def __init__(self, data):
        self.data = data
        self.n = len(data)
        self.cache = {}
        self.frame_cache = {}
        self.fmt = None
        self.salt = None
        self.salt_crc = None
        # "Format 4": the control state (none before format 4 or a first commit)
        self.ctl, self.boundary, self.base, self.bases = None, HEADER_BLOCK, {}, {}
        self.moved, self.ctl_end, self.tree_cache = {}, 0, {}
        self.map_controls, self.map_commits = [], set()

    # ---- "File header" -------------------------------------------------------------
    def read_header(self):
        """Returns "empty" (a log at version 0 with no records) or "log"; raises NotALog."""
        d, n = self.data, self.n
        if n == 0:
            return "empty"  # "An empty (0-byte) file is a log at version 0."
        if n < 4:
            raise NotALog("a file of %d bytes (1 to 3 bytes say too little)" % n)
        if n >= 64 and self.header_valid(d[:64]) is None:
            if n < HEADER_BLOCK:
                return "empty"  # "a file of 64 to 511 bytes whose first 64 bytes are a valid header"
            return "log"
        if n < HEADER_BLOCK:
            k = min(n, 8)
            if d[:k] == FILE_MAGIC[:k]:
                # "a file of n bytes, 4 <= n < 512, whose first min(n, 8) bytes are the
                # magic's first min(n, 8) bytes is an empty log".  CHOICE: taken literally,
                # also for 64..511 bytes whose header is not valid.
                return "empty"
            raise NotALog("a short file that does not start with the magic")
        raise NotALog(self.header_valid(d[:64]))

    def header_valid(self, h):
        """None when valid, else why not (and sets fmt/salt when valid)."""
        if h[:8] != FILE_MAGIC:
            return "no pagelog magic"
        fmt, hsize, ps, flags = struct.unpack_from("<IIII", h, 8)
        (salt,) = struct.unpack_from("<Q", h, 24)
        (hcrc,) = struct.unpack_from("<I", h, 60)
        if crc32(h[:60]) != hcrc:
            return "header crc"
        if fmt not in (1, 2, 3, 4):  # "3 (this document). A reader also reads 1 and 2 ... and 4"
            return "format version %d" % fmt
        if hsize != 64:
            return "header size %d" % hsize
        if not page_size_ok(ps):
            return "header page size %d" % ps
        if flags != 0:
            return "header flags %#x" % flags
        if any(h[40:60]):
            return "header reserved bytes not zero"
        self.fmt = fmt
        self.salt = salt
        self.salt_crc = crc32(struct.pack("<Q", salt))
        return None

    def scrc(self, data):
        return crc32(data, self.salt_crc)

    # ---- "Record header", "Commit info", "Payload region and trailer", "Validity" ----
    def record(self, o):
        """The well-formed record at offset o, or None."""
        if o in self.cache:
            return self.cache[o]
        r = self._record(o)
        self.cache[o] = r
        return r

    def _record(self, o):
        d, n = self.data, self.n
        if o < HEADER_BLOCK or o % 8 or o + REC_HEADER > n:
            return None
        if d[o:o + 4] != REC_MAGIC:
            return None
        kind, flags, pw, length, version, prev, ps, frames, prev_crc, hcrc = struct.unpack_from(
            "<BBHQQQIIII", d, o + 4)
        if self.scrc(d[o:o + 44]) != hcrc:
            return None
        kinds = (SPILL, COMMIT, MARK)  # "in format-1 files too: ... a reader accepts one"
        if self.fmt == 4:
            kinds += (INDEX, CONTROL)  # "4 = INDEX and 5 = CONTROL (format 4 only ...)"
        if kind not in kinds:
            return None
        aligned = False
        if kind == COMMIT:
            if flags & ~(FULL_MAP | SEALED | CHECKPOINT | ALIGNED | RECYCLED | SUMMARY):
                return None
            # "Summary commits": "format 4 only"; "A record with SUMMARY and FULL_MAP, CHECKPOINT or
            # RECYCLED ... is not well-formed."
            if flags & SUMMARY and (self.fmt != 4 or flags & (FULL_MAP | CHECKPOINT | RECYCLED)):
                return None
            # "bit 2 = CHECKPOINT (format 4 only, never with FULL_MAP)"
            if flags & CHECKPOINT and (self.fmt != 4 or flags & FULL_MAP):
                return None
            # "Frames in recycled slots": "RECYCLED is valid only in a format-4 log and only on a
            # COMMIT that is neither FULL_MAP nor CHECKPOINT: anywhere else a record with it is not
            # well-formed."  (A RECYCLED commit may have frames = 0 and still have entries.)
            if flags & RECYCLED and (self.fmt != 4 or flags & (FULL_MAP | CHECKPOINT | SUMMARY)):
                return None
            aligned = bool(flags & ALIGNED)
        elif kind == CONTROL:
            if flags & ~CLAIM:  # "CONTROL (format 4): bit 0 = CLAIM"
                return None
        elif kind == SPILL:
            if flags & ~SPILL_ALIGNED:  # "SPILL: bit 0 = ALIGNED ...; all other bits zero"
                return None
            aligned = bool(flags & SPILL_ALIGNED)
        elif flags != 0:  # "MARK and INDEX flags zero"
            return None
        # "Aligned page images": "The flag is valid only in a format-4 log and only on a record
        # with frames >= 1 ... a record with it is not well-formed"
        if aligned and (self.fmt != 4 or frames < 1):
            return None
        # "patch words: formats 3 and 4, COMMIT only ... Zero in SPILL, MARK and CONTROL records
        # and in formats 1 and 2 ... (a record where it is not zero is not well-formed)"
        if pw != 0 and (self.fmt < 3 or kind != COMMIT):
            return None
        if not page_size_ok(ps):
            return None
        if kind == MARK and (frames != 0 or length != 64 or version < 1):
            return None
        r = Rec()
        r.off, r.kind, r.flags, r.length, r.version, r.prev = o, kind, flags, length, version, prev
        r.ps, r.frames, r.prev_crc, r._entries, r.data = ps, frames, prev_crc, None, d
        r.ctl = r.ck = r.sm = None
        meta_end = o + REC_HEADER
        if kind == CONTROL:
            return self._control(r, pw)
        if kind == INDEX:
            return self._index(r, pw)
        if kind == COMMIT:
            if meta_end + COMMIT_INFO > n:
                return None
            (_ts, r.db_pages, r.n_entries, r.hz_ver, r.hz_off, r.fm_off, r.checksum, r.hz_crc,
             r.p1) = struct.unpack_from("<QIIQQQQII", d, meta_end)
            meta_end += COMMIT_INFO + ENTRY * r.n_entries
            if flags & CHECKPOINT:
                # "Right after the entry table, before the page images, the checkpoint info"
                if meta_end + CHECKPOINT_INFO > n:
                    return None
                (root, root_crc, depth, r1, r2, ix, ix_crc, r3, ctl, ctl_crc, r4) = struct.unpack_from(
                    "<QIBBHQIIQII", d, meta_end)
                # "well-formed only when ... the reserved bytes are zero, the depth is 1 ... 6, an
                # offset of 0 has a crc of 0 (root, index record), and index root, index record and
                # control all lie before the checkpoint's own offset" ("control: at least 512")
                if (r1 or r2 or r3 or r4 or not 1 <= depth <= 6 or (root == 0 and root_crc != 0)
                        or (ix == 0 and ix_crc != 0) or ctl < HEADER_BLOCK or not (root < o and ix < o and ctl < o)):
                    return None
                r.ck = (root, root_crc, depth, ix, ix_crc, ctl, ctl_crc)
                meta_end += CHECKPOINT_INFO
            if flags & SUMMARY:
                r.sm = self.summary_info(o, meta_end, r.fm_off)
                if r.sm is None:
                    return None
                meta_end += SUMMARY_INFO
        payload = meta_end
        if self.fmt == 1 and frames > 0:
            # "Format 1 put zero padding before it, up to the next file offset that is a
            # multiple of 512".  CHOICE: with frames = 0 "there is no payload", so no padding.
            payload = (payload + 511) // 512 * 512
        if aligned:
            # "P = the smallest multiple of a that is >= m", "a = min(page size, 4096)"
            a = min(ps, 4096)
            payload = (payload + a - 1) // a * a
        # "payload start - record start + frames x page size + patch words x 8 + 16"
        if payload - o + frames * ps + pw * 8 + TRAILER != length:
            return None
        if o + length > n:
            return None
        t = o + length - TRAILER
        (t_off,) = struct.unpack_from("<Q", d, t)
        if t_off != o or d[t + 8:t + 12] != TR_MAGIC:
            return None
        (tcrc,) = struct.unpack_from("<I", d, t + 12)
        if self.scrc(d[o:payload] + d[t:t + 12]) != tcrc:
            return None
        # "A record whose gap holds a byte that is not zero is not well-formed, even when its
        # trailer crc checks out"
        if aligned and d[meta_end:payload].count(0) != payload - meta_end:
            return None
        r.tcrc, r.payload, r.end = tcrc, payload, o + length
        r.pw, r.parea = pw, payload + frames * ps  # "then ... the patch area"
        return r

    # ---- "Summary commits" ---------------------------------------------------------------
    def summary_info(self, o, at, fm_off):
        """The summary info at `at` of the summary at o: "well-formed only when ... the reserved
        bytes are zero, checkpoint and control are each at least 512 and below the summary's own
        offset, and its full map offset equals checkpoint"."""
        if at + SUMMARY_INFO > self.n:
            return None
        ck, ck_crc, r1, ctl, ctl_crc, r2 = struct.unpack_from("<QIIQII", self.data, at)
        if r1 or r2 or not (HEADER_BLOCK <= ck < o and HEADER_BLOCK <= ctl < o) or fm_off != ck:
            return None
        return (ck, ck_crc, ctl, ctl_crc)

    def summary_links(self, s):
        """ "Step 5, from a summary", checks 1-3: (C, K) when they hold; else (None, C'), C' the
        checkpoint 3. reaches from the commit before s (None when it is not a well-formed
        CHECKPOINT COMMIT with that crc)."""
        ck_off, ck_crc, ctl_off, ctl_crc = s.sm
        c = self.record(ck_off)
        c_ok = c is not None and c.kind == COMMIT and c.ck is not None and c.tcrc == ck_crc and c.version < s.version
        k = self.record(ctl_off) if c_ok else None
        k_ok = k is not None and k.kind == CONTROL and k.tcrc == ctl_crc and c.ck[5] <= k.off < s.off
        # 3. "the commit P that S names in prev commit (S's prev crc, S's version - 1, a well-formed
        # COMMIT) is C, or P's full map offset is C's offset, or names a well-formed summary whose
        # checkpoint and checkpoint crc are C's"
        chain = None
        p = self.record(s.prev)
        if p is not None and p.kind == COMMIT and p.tcrc == s.prev_crc and p.version + 1 == s.version:
            if p.ck is not None:
                chain = (p.off, p.tcrc)
            else:
                m = self.record(p.fm_off)
                # CHOICE: the record P names lies before P (as a map commit always does)
                if m is not None and m.kind == COMMIT and m.off < p.off:
                    if m.ck is not None:
                        chain = (m.off, m.tcrc)
                    elif m.sm is not None:
                        chain = (m.sm[0], m.sm[1])
        if c_ok and k_ok and chain == (c.off, c.tcrc):
            return c, k
        if chain is not None:
            f = self.record(chain[0])
            if (f is not None and f.kind == COMMIT and f.ck is not None and f.tcrc == chain[1]
                    and f.version < s.version and f.off < s.off):
                return None, f
        return None, None

    def summary_map(self, c, s):
        """ "the version's map is the checkpoint's map, cut or extended with zero pages to the
        summary's db pages, with the entries replacing those slots" """
        m = self.tree_map(c)[:s.db_pages]
        m += [(0, 0)] * (s.db_pages - len(m))
        for pg, cr, fo in s.entries():
            m[pg - 1] = (cr, fo)
        return m

    def _control(self, r, pw):
        """ "CONTROL records (kind 5)": the rest of a CONTROL record's checks."""
        d, n, o = self.data, self.n, r.off
        if r.frames != 0 or pw != 0:  # "`patch words` 0; `frames` 0"
            return None
        if o + REC_HEADER + CONTROL_INFO > n:
            return None
        c = Control()
        (c.epoch, c.keep_versions, c.keep_seconds, c.keep_bytes, c.boundary, c.oldest, c.payload_crc,
         c.free_entries, c.root, c.root_crc, c.depth, res2a, res2b, c.oldest_ts, c.oldest_counter, c.stragglers,
         c.payload_bytes) = struct.unpack_from("<QQQQQQIIQIBBHQIIQ", d, o + REC_HEADER)
        # "the control info's reserved bytes (69-71) are zero; epoch >= 1; payload bytes
        # is a multiple of 8; boundary is a multiple of 8 and at least 512; base root = 0 exactly
        # when base depth = 0, and base root crc = 0 when base root = 0"; "boundary ... at or
        # before the record's own offset"; "a base root != 0 is a multiple of 8 and at least 512"
        if res2a or res2b or c.epoch < 1 or c.payload_bytes % 8 or c.boundary % 8 \
                or c.boundary < HEADER_BLOCK or (c.root == 0) != (c.depth == 0) \
                or (c.root == 0 and c.root_crc != 0) or c.boundary > o \
                or (c.root != 0 and (c.root % 8 or c.root < HEADER_BLOCK)):
            return None
        # "the free list ... right after the straggler table"; "Readers skip it: the payload
        # starts after it"
        payload = o + REC_HEADER + CONTROL_INFO + STRAGGLER * c.stragglers + FREE_ENTRY * c.free_entries
        # "length = 48 + 96 + 16 x stragglers + 16 x free entries + payload bytes + 16"
        if payload - o + c.payload_bytes + TRAILER != r.length:
            return None
        if o + r.length > n:
            return None
        t = o + r.length - TRAILER
        (t_off,) = struct.unpack_from("<Q", d, t)
        if t_off != o or d[t + 8:t + 12] != TR_MAGIC:
            return None
        (tcrc,) = struct.unpack_from("<I", d, t + 12)
        if self.scrc(d[o:payload] + d[t:t + 12]) != tcrc:
            return None
        # "and the payload crc checks out" (salted crc of the payload bytes)
        if self.scrc(d[payload:payload + c.payload_bytes]) != c.payload_crc:
            return None
        r.tcrc, r.payload, r.end, r.ctl = tcrc, payload, o + r.length, c
        r.pw, r.parea = 0, t
        return r

    def _index(self, r, pw):
        """ "INDEX record (kind 4, format 4 only)" """
        d, n, o = self.data, self.n, r.off
        if r.frames != 0 or pw != 0 or r.flags != 0:
            return None
        if o + REC_HEADER + INDEX_INFO > n:
            return None
        pb, pcrc, res = struct.unpack_from("<QII", d, o + REC_HEADER)
        if pb == 0 or pb % 8 or res:  # "more than 0, a multiple of 8"; "reserved: zero"
            return None
        payload = o + REC_HEADER + INDEX_INFO
        if payload - o + pb + TRAILER != r.length or o + r.length > n:  # "length = 48 + 16 + payload bytes + 16"
            return None
        t = o + r.length - TRAILER
        (t_off,) = struct.unpack_from("<Q", d, t)
        if t_off != o or d[t + 8:t + 12] != TR_MAGIC:
            return None
        (tcrc,) = struct.unpack_from("<I", d, t + 12)
        if self.scrc(d[o:payload] + d[t:t + 12]) != tcrc or self.scrc(d[payload:payload + pb]) != pcrc:
            return None
        r.tcrc, r.payload, r.end, r.pw, r.parea = tcrc, payload, o + r.length, 0, t
        return r

    def structural(self, r):
        """None when a COMMIT's entries satisfy "Map entries" and the frame-offset rules, and
        `db pages` is within step 3's bound; else why not."""
        if r.db_pages > self.n // 512 + 65536:
            return "db pages %d over the bound for a file of %d bytes" % (r.db_pages, self.n)
        align = 512 if self.fmt == 1 else 8
        payload_end = r.end - TRAILER
        if r.full and r.n_entries != r.db_pages:
            return "full map with %d entries for %d pages" % (r.n_entries, r.db_pages)
        return self.entry_rules(r, r.entries())

    def entry_rules(self, r, ents):
        """ "Map entries" and the frame-offset rules for the entries ents of commit r."""
        align = 512 if self.fmt == 1 else 8
        payload_end = r.end - TRAILER
        last = 0
        for i, (pg, c, fo) in enumerate(ents):
            if pg <= last or pg > r.db_pages:
                return "entry %d: page %d out of order or range" % (i, pg)
            if r.full and pg != i + 1:
                return "full map entry %d names page %d" % (i, pg)
            last = pg
            if fo == 0:
                if c != 0:
                    return "zero page %d with crc %#x" % (pg, c)
            elif self.fmt >= 3 and fo % 8 == 1:
                # "A patch offset (the entry's offset - 1, format 3) is a multiple of 8, at
                # least 512, and its first 16 bytes lie before that end."
                if fo - 1 < HEADER_BLOCK or fo - 1 + 16 > payload_end:
                    return "page %d: patch offset %d" % (pg, fo - 1)
            elif fo % align or fo < HEADER_BLOCK or fo + r.ps > payload_end:
                # (format 1 and 2: an offset = 1 mod 8 is not a multiple of 8: "an entry of a
                # format-1 or format-2 log never names one")
                return "page %d: frame offset %d" % (pg, fo)
        return None

    def is_patch(self, fo):
        """ "Formats 3 and 4: an offset = 1 (mod 8) names a patch at offset - 1" """
        return self.fmt >= 3 and fo % 8 == 1

    # ---- "Patches (format 3)" ----------------------------------------------------------
    def parse_patch(self, p, ps, area_end):
        """The patch at p, read with page size ps, inside a patch area ending at area_end:
        (base, [(start, length)...], data offset, size) or a string saying which rule of
        "Patches" it breaks.  Does not check that base names a stored image (verify does)."""
        d = self.data
        if p % 8 or p < HEADER_BLOCK or p + 16 > area_end:
            return "patch at %d: its 16-byte head is not within the patch area" % p
        base, n, reserved, nbytes = struct.unpack_from("<QHHI", d, p)
        # "base: file offset of a page image (a multiple of 8, at least 512; base + page
        # size <= P)"
        if base % 8 or base < HEADER_BLOCK or base + ps > p:
            return "patch at %d: base %d" % (p, base)
        if n < 1:  # "number of ranges n, at least 1"
            return "patch at %d: no ranges" % p
        if reserved != 0:  # "reserved: zero"
            return "patch at %d: reserved %#x" % (p, reserved)
        raw = 16 + 4 * n + nbytes
        size = (raw + 7) // 8 * 8  # "16 + 4n + data bytes rounded up to a multiple of 8"
        if p + size > area_end:  # "it must end within the patch area of the record it is in"
            return "patch at %d: %d bytes, past the end of its patch area at %d" % (p, size, area_end)
        ranges = list(struct.iter_unpack("<HH", d[p + 16:p + 16 + 4 * n]))
        prev_end, total = 0, 0
        for k, (st, ln) in enumerate(ranges):
            # "length >= 1, start + length <= page size, each range starting at or after the
            # end of the one before"
            if ln < 1 or st + ln > ps or st < prev_end:
                return "patch at %d: range %d (%d, %d)" % (p, k, st, ln)
            prev_end = st + ln
            total += ln
        if total != nbytes:  # "data bytes: the sum of the ranges' lengths"
            return "patch at %d: data bytes %d, its ranges hold %d" % (p, nbytes, total)
        # "then zero bytes up to the next multiple of 8".  CHOICE (literal): non-zero
        # padding breaks a rule of the patch.
        if any(d[p + raw:p + size]):
            return "patch at %d: padding not zero" % p
        return (base, ranges, p + 16 + 4 * n, size)

    def patch_page(self, p, ps, area_end):
        """The page the patch at p makes, or a string saying why there is none."""
        pp = self.parse_patch(p, ps, area_end)
        if isinstance(pp, str):
            return pp
        base, ranges, at, _size = pp
        # "its base image (page size bytes at base) with the bytes of each range replaced
        # by its data"
        page = bytearray(self.data[base:base + ps])
        for st, ln in ranges:
            page[st:st + ln] = self.data[at:at + ln]
            at += ln
        return bytes(page)

    def patch_ok(self, p, ps, c, area):
        """The patch at p read with page size ps in the patch area area = (start, end) makes
        a page whose crc is c (and keeps every rule of "Patches" but the base's kind)."""
        key = (p, ps, c, area)
        v = self.frame_cache.get(key)
        if v is None:
            page = self.patch_page(p, ps, area[1]) if area is not None and area[0] <= p < area[1] else ""
            v = not isinstance(page, str) and crc32(page) == c
            self.frame_cache[key] = v
        return v

    def frame_ok(self, fo, ps, c):
        key = (fo, ps, c)
        v = self.frame_cache.get(key)
        if v is None:
            v = fo + ps <= self.n and crc32(self.data[fo:fo + ps]) == c
            self.frame_cache[key] = v
        return v

    def own_frames_ok(self, r, prev_end):
        """Step 4: the crc of every frame the commit's transaction wrote (offset >= prev_end);
        "for a patch, the page it makes, its fields checked as in "Patches"" (Validity: "such
        a patch is in the commit's own patch area").  "Checkpoints": a checkpoint without an
        entry table has its frames found through its tree, whose nodes are read and checked.
        "Recovery of a format-4 log", step 4: "for a RECYCLED commit, every page image its
        entries name, wherever it lies (the page size bytes at the entry's offset, read as they
        are, checked against its crc)" -- recycled slots before prev_end included."""
        recycled = r.kind == COMMIT and bool(r.flags & RECYCLED)
        ents = r.entries()
        if r.ck is not None and r.n_entries == 0:
            ents = self.tree_entries(r, prev_end)
            # "checked as entries are": their page numbers within 1 ... db pages, their offsets
            if ents is None or self.entry_rules(r, ents) is not None:
                return (0, r.ck[0])
        for pg, c, fo in ents:
            if fo == 0:
                continue
            if self.is_patch(fo):
                # "Patch entries are unchanged: a patch lies in its commit's own patch area."
                if fo >= prev_end and not self.patch_ok(fo - 1, r.ps, c, (r.parea, r.parea_end)):
                    return (pg, fo)
            elif (fo >= prev_end or recycled) and not self.frame_ok(fo, r.ps, c):
                return (pg, fo)
        return None

    # ---- Recovery step 2: the durable start -------------------------------------------
    def last_record(self, limit):
        pos = limit - limit % 8
        d = self.data
        while pos - 64 >= HEADER_BLOCK:
            if d[pos - 8:pos - 4] == TR_MAGIC:
                (ro,) = struct.unpack_from("<Q", d, pos - 16)
                if ro < pos:
                    r = self.record(ro)
                    if r is not None and r.end == pos:
                        return r
            pos -= 8
        return None

    def mark_after(self, p):
        m = self.record(p.end)
        return m is not None and m.kind == MARK and (m.version, m.prev, m.prev_crc) == p.ident()

    @staticmethod
    def horizon(c):
        """(0, 0, 0): none. Any other value is a claim; one that names no commit (version 0
        with an offset or crc, a version at offset 0) is damage when it is checked."""
        h = (c.hz_ver, c.hz_off, c.hz_crc)
        return None if h == (0, 0, 0) else h

    def durable_claim(self):
        """The (version, offset, crc) the last well-formed record claims durable, or None
        (version 0)."""
        limit = self.n
        while True:
            last = self.last_record(limit)
            if last is None:
                return None
            if last.kind == MARK:
                return (last.version, last.prev, last.prev_crc)
            if last.kind == CONTROL and last.flags & CLAIM:
                # "Format 4", step 2: "claims the commit (version - 1, prev commit, prev crc), as a
                # MARK claims the commit it names: (0, 0, 0) is no claim"
                h = (last.version - 1, last.prev, last.prev_crc)
                return None if h == (0, 0, 0) else h
            if last.kind == COMMIT:
                return last.ident() if last.sealed else self.horizon(last)
            if last.prev == 0:
                return None
            p = self.record(last.prev)
            if (p is not None and p.kind == COMMIT and p.tcrc == last.prev_crc
                    and p.version == last.version - 1):
                if p.sealed or self.mark_after(p):
                    return p.ident()
                h = self.horizon(p)
                if self.fmt >= 4 and h is not None:
                    r = self.record(h[1])
                    if r is None or r.kind != COMMIT or r.version != h[0] or r.tcrc != h[2]:
                        # "Format 4", step 2: debris naming an old commit whose horizon a step
                        # freed since: "search again ... before its start"
                        limit = last.off
                        continue
                return h
            limit = last.off  # debris: search again before it

    def claimed_commit(self, claim):
        v, off, c = claim
        r = self.record(off)
        if r is None or r.kind != COMMIT or r.version != v or r.tcrc != c:
            raise Damage(off, "expected the commit of version %d (crc %#x) claimed durable, "
                              "found none" % (v, c))
        return r

    # ---- Recovery steps 3 and 4 ----------------------------------------------------------
    def walk(self, d, reclaimed_at=None):
        """Step 3 from the end of commit d (None: version 0, offset 512).  Returns the commits
        passed and the claims made by the records passed (and keeps every record passed in
        self.passed, for verify).  reclaimed_at: (B, Vo) of a forward read from the boundary."""
        commits, claims = [], []
        self.passed = []
        index_passed = control_passed = None
        last = d
        pos = d.end if d is not None else HEADER_BLOCK
        while True:
            r = self.record(pos)
            if r is None:
                break
            if r.kind == MARK:
                if last is None or pos != last.end or (r.version, r.prev, r.prev_crc) != last.ident():
                    break
                claims.append(((r.version, r.prev, r.prev_crc), r.off))
            else:
                if last is None:
                    ok = (r.version >= 1 and r.prev == 0 and r.prev_crc == 0
                          and (r.kind != COMMIT or r.is_map))
                else:
                    ok = r.version == last.version + 1 and (r.prev, r.prev_crc) == (last.off, last.tcrc)
                if not ok:
                    break
                if r.kind == CONTROL and r.flags & CLAIM and last is not None:
                    # "Format 4", step 4: "Each CONTROL record with CLAIM the walk passes after a
                    # commit claims that commit durable"
                    claims.append((last.ident(), r.off))
                if r.kind == INDEX:
                    index_passed = r
                if r.kind == CONTROL:
                    control_passed = r
                if r.kind == COMMIT:
                    if self.structural(r) is not None:
                        break
                    # "Checkpoints": step 3 "ends the walk before a checkpoint whose checkpoint info
                    # does not name its transaction's records exactly"
                    # "Reading a damaged format-4 log": "A checkpoint (or FULL_MAP commit) right at B
                    # whose version is below Vo is a reclaimed version's ... step 3's check of the
                    # records its checkpoint info names is not made for it"
                    at_b = reclaimed_at is not None and r.off == reclaimed_at[0] and r.version < reclaimed_at[1]
                    if r.ck is not None and not at_b:
                        cp = control_passed
                        if cp is None or cp.end != r.off or (cp.off, cp.tcrc) != (r.ck[5], r.ck[6]):
                            break
                        if r.ck[3] != 0 and (index_passed is None or (index_passed.off, index_passed.tcrc)
                                             != (r.ck[3], r.ck[4])):
                            break
                    index_passed = None
                    # "Map entries": "A delta has the previous version's page size."  CHOICE:
                    # one of the entry rules that step 3's structural checks apply.
                    if not r.is_map and last is not None and r.ps != last.ps:
                        break
                    commits.append(r)
                    if r.sealed:
                        claims.append((r.ident(), r.off))
                    h = self.horizon(r)
                    if h is not None and h[0] <= r.version:
                        claims.append((h, r.off))
                    last = r
            self.passed.append(r)
            pos = r.end
        return commits, claims

    def durable_and_tail(self, d, commits, claims):
        """Step 4: the durable version V (checked against the walked commits: "Claims"), then
        the tail re-checked.  Returns (latest commit or None, V)."""
        known = {c.version: c for c in commits}
        if d is not None:
            known[d.version] = d
        base = d.version if d is not None else 0
        v = base
        for ident, src in claims:
            if ident[0] < base:
                continue  # older than D: not on the path walked (CHOICE: not checked)
            c = known.get(ident[0])
            if c is None or c.ident() != ident:
                raise Damage(ident[1], "the record at %d claims version %d (offset %d, crc %#x) "
                                       "durable; no such commit follows" % (src, ident[0], ident[1], ident[2]))
            v = max(v, ident[0])
        latest = d
        prev_end = d.end if d is not None else HEADER_BLOCK
        for c in commits:
            if c.version > v and self.own_frames_ok(c, prev_end) is not None:
                break
            latest = c
            prev_end = c.end
        return latest, v

    # ---- Recovery step 5: the page map -------------------------------------------------
    def build_map(self, c):
        """The page map of commit c: a list of (crc, offset) per page, index 0 = page 1."""
        # "Summary commits": a summary is its own map commit ("X itself when X is a summary")
        fm = c if c.sm is not None else self.record(c.fm_off)
        start = None
        if fm is not None and fm.kind == COMMIT and fm.sm is not None and fm.off <= c.off and fm.version <= c.version:
            ck, k = self.summary_links(fm)
            if ck is None and k is None:
                raise Damage(fm.off, "a summary naming its chain's checkpoint and a CONTROL record after it")
            if ck is not None:
                start = (fm, ck, k)
            else:
                fm = k  # "the reader builds X's map as if X named the checkpoint C' ... through S"
        if start is not None:
            s, ck, k = start
            why = self.structural(s)
            if why is not None:
                raise Damage(s.off, why)
            pmap = self.summary_map(ck, s)
            base_ck = ck
            # "the control state as of X is the record S names in control, then the CONTROL
            # records the walk passes after S"
            self.map_controls = [k]
            self.map_commits = {s.off, c.off, ck.off}
            cur, pos = s, s.end
        else:
            if (fm is None or fm.kind != COMMIT or not fm.is_map or fm.off > c.off
                    or fm.version > c.version):
                raise Damage(c.fm_off, "expected the full map named by version %d" % c.version)
            why = self.structural(fm)
            if why is not None:
                raise Damage(fm.off, why)
            pmap = self.apply([], fm)
            base_ck = fm if fm.ck is not None else None
            # "Format 4", step 5: the full map "must be immediately preceded by its CONTROL record"
            self.map_controls = [self.control_before(fm)] if self.fmt == 4 else []
            self.map_commits = {fm.off, c.off}
            cur, pos = fm, fm.end
        while cur.off != c.off:
            if pos > c.off or cur.version >= c.version:
                raise Damage(pos, "the path from the full map at %d does not reach version %d at %d"
                             % (fm.off, c.version, c.off))
            r = self.record(pos)
            if r is None:
                raise Damage(pos, "expected a record between versions %d and %d" % (cur.version, c.version))
            if r.kind == CONTROL:
                self.map_controls.append(r)  # "CONTROL records on the path are passed as SPILLs are"
            if r.kind == COMMIT:
                self.map_commits.add(r.off)
                if r.version != cur.version + 1:
                    raise Damage(pos, "version %d after version %d" % (r.version, cur.version))
                # step 5: "So is any commit replayed ... that fails a structural check of step 3"
                why = self.structural(r)
                if why is not None:
                    raise Damage(pos, why)
                # step 5: "any delta on it whose page size is not its predecessor's ... is damage"
                if not r.is_map and r.ps != cur.ps:
                    raise Damage(pos, "a delta of page size %d after version %d of page size %d"
                                 % (r.ps, cur.version, cur.ps))
                # "A summary met on the path": "when its checkpoint and checkpoint crc name the
                # checkpoint the map being built starts from ..., its map is built from that
                # checkpoint as above; otherwise it is applied as a delta"
                if r.sm is not None and base_ck is not None and (r.sm[0], r.sm[1]) == (base_ck.off, base_ck.tcrc):
                    pmap = self.summary_map(base_ck, r)
                else:
                    pmap = self.apply(pmap, r)
                if r.is_map:  # a checkpoint or FULL_MAP met on the path: the map is on it now
                    base_ck = r if r.ck is not None else None
                cur = r
            pos = r.end
        return pmap

    def control_before(self, fm):
        """ "the 16 bytes before the COMMIT record, read as a trailer, name a record offset where a
        well-formed CONTROL record lies that ends at the COMMIT's offset and names the same commit
        (version, prev commit, prev crc). Otherwise the log is damaged (named by the COMMIT's
        offset)." """
        t = fm.off - TRAILER
        r = None
        if t >= HEADER_BLOCK:
            (ro,) = struct.unpack_from("<Q", self.data, t)
            r = self.record(ro)
        if (r is None or r.kind != CONTROL or r.end != fm.off
                or (r.version, r.prev, r.prev_crc) != (fm.version, fm.prev, fm.prev_crc)
                or (fm.ck is not None and (r.off, r.tcrc) != (fm.ck[5], fm.ck[6]))):
            raise Damage(fm.off, "the CONTROL record of this full map's transaction right before it")
        return r

    def map_starts(self, fm):
        """ "step 5 builds its map within what the read passed (so, in format 4, not when that
        FULL_MAP or checkpoint lacks the CONTROL record step 5 requires right before it)" """
        if self.fmt != 4:
            return True
        if fm.sm is not None:  # "Step 5, from a summary": its links, or its chain's checkpoint
            ck, k = self.summary_links(fm)
            if ck is not None:
                return self.structural(fm) is None
            if k is None:
                return False
            fm = k
        try:
            self.control_before(fm)
            return True
        except Damage:
            return False

    def versions_in_place(self, latest):
        """Versions readable from the latest by following `prev commit` back ("Which versions a
        format-4 log holds": not below Vo when B > 512)."""
        chain = [latest]
        c = latest
        while c.prev != 0 and not (self.boundary > HEADER_BLOCK and c.version <= self.ctl.oldest):
            p = self.record(c.prev)
            if (p is None or p.kind != COMMIT or p.off >= c.off or p.tcrc != c.prev_crc
                    or p.version != c.version - 1):
                break
            chain.append(p)
            c = p
        out = []
        for c in reversed(chain):
            try:
                pmap = self.build_map(c)
            except Damage as e:
                out.append({"version": c.version, "error": str(e), "offset": c.off,
                            "stored_checksum": "%#018x" % c.checksum, "pages": "error"})
                continue
            sm = summary(c, pmap)
            sm["pages"] = self.image_crc(c, pmap)
            out.append(sm)
        return out

    def find_commit(self, latest, n):
        """Step 5's last sentences: the COMMIT of version n (below the latest's), found checkpoint to
        checkpoint.  From a commit C (first the latest): its full map F (C itself when C is one) --
        a well-formed FULL_MAP COMMIT at a lower offset, of a lower version, the record right after
        it naming it (prev commit, prev crc); if F's version <= n, n's commit is the COMMIT of
        version n on step 5's path from F (records by length, each COMMIT the next version, before
        C); if F's prev commit is 0, the file does not hold n; else C becomes the COMMIT F's prev
        commit names (at a lower offset, of F's version - 1, its trailer crc F's prev crc).
        Returns the commit, "none" (not in the file) or "error" (damage on the way)."""
        c = latest
        while True:
            if c.version == n:
                return c
            f = c
            if not c.is_map_commit:  # "Older versions": "a summary included ... is its own map commit"
                f = self.record(c.fm_off)
                if (f is None or f.kind != COMMIT or not f.is_map_commit or f.version >= c.version
                        or f.off >= c.off):
                    return "error"
                nxt = self.record(f.end)
                if nxt is None or (nxt.prev, nxt.prev_crc) != (f.off, f.tcrc):
                    return "error"
            if f.version == n:
                return f
            if f.version < n:
                pos, last = f.end, f.version
                while pos < c.off:
                    r = self.record(pos)
                    if r is None:
                        return "error"
                    if r.kind == COMMIT:
                        if r.version != last + 1:
                            return "error"
                        if r.version == n:
                            return r
                        last = r.version
                    pos = r.end
                return "error"
            if f.prev == 0:
                return "none"
            p = self.record(f.prev)
            if (f.prev >= f.off or p is None or p.kind != COMMIT or p.tcrc != f.prev_crc
                    or p.version != f.version - 1):
                return "error"
            c = p

    def find_version(self, latest, n, known=None):
        """Version n read in place: the image crc of the commit find_commit finds, "none" or
        "error" (its map does not build).  known: {commit offset: image crc} already computed."""
        c = self.find_commit(latest, n)
        if isinstance(c, str):
            return c
        if known is not None and c.off in known:
            return known[c.off]
        try:
            pmap = self.build_map(c)
        except Damage:
            return "error"
        return self.image_crc(c, pmap)

    # ---- "Format 4": the control state and the base tree --------------------------------
    def log_end_after(self, latest, passed):
        """ "The log end is past the latest commit and past every MARK and every CONTROL record
        with CLAIM the walk passed after it (up to the next COMMIT the walk passed ...)" """
        i = next((k for k, r in enumerate(passed) if r.off == latest.off), -1)
        end = latest.end
        for r in passed[i + 1:]:
            if r.kind == COMMIT:
                break
            if r.kind == MARK or (r.kind == CONTROL and r.flags & CLAIM):
                end = r.end
        return end

    def forget_control(self):
        """No control state: what a refused open leaves ("B is not known")."""
        self.ctl, self.boundary, self.base, self.bases = None, HEADER_BLOCK, {}, {}
        self.moved, self.ctl_end = {}, 0

    def load_control(self, latest, passed):
        """ "The control state ... is that of its last CONTROL record: of the CONTROL records that
        recovery passes -- step 5's path ... and step 3's walk up to the log end -- the one at the
        highest offset"; then its base tree read whole ("any node that is not where its parent
        says, or fails its crc or a rule of its structure, makes the log damaged")."""
        self.ctl, self.boundary, self.base, self.bases = None, HEADER_BLOCK, {}, {}
        self.moved, self.ctl_end = {}, 0
        if self.fmt != 4 or latest is None:
            return
        end = self.log_end_after(latest, passed)
        self.log_end = end
        # "a CONTROL record with CLAIM, or a copy right before a COMMIT of the log (the commit of its
        # transaction followed it)"
        kept = {r.off for r in passed if r.kind == COMMIT and r.off <= latest.off} | self.map_commits
        cands = [r for r in list(self.map_controls) + [x for x in passed if x.kind == CONTROL and x.end <= end]
                 if r.flags & CLAIM or r.end in kept]
        if not cands:
            return
        r = max(cands, key=lambda x: x.off)
        self.ctl, self.boundary, self.ctl_end = r.ctl, r.ctl.boundary, r.end
        # "The straggler table ... must be sorted by old offset, strictly increasing, and every new
        # offset a multiple of 8, at least B and below the end of the CONTROL record; otherwise the
        # log is damaged (named by the CONTROL record's offset)"
        moved, last = {}, None
        for k in range(r.ctl.stragglers):
            old, new = struct.unpack_from("<QQ", self.data, r.off + REC_HEADER + CONTROL_INFO + STRAGGLER * k)
            if (last is not None and old <= last) or new % 8 or new < r.ctl.boundary or new >= r.end:
                raise Damage(r.off, "a straggler table sorted by old offset, each copy in the record")
            moved[old], last = new, old
        self.moved = moved
        self.check_free_list(r)
        if r.ctl.root == 0:
            return
        if not 1 <= r.ctl.depth <= 6:  # "A base depth outside 1 ... 6 is damage too"
            raise Damage(r.ctl.root, "a base tree depth of 1 to 6, found %d" % r.ctl.depth)
        self.walk_node(r.ctl.root, r.ctl.root_crc, r.ctl.depth - 1, 0, end)
        for pg, (so, _sc) in self.base.items():
            if so % 8 == 1:  # a patch: its base field, "taken as they are"
                at = so & ~7
                if at + 8 > end:
                    raise Damage(at, "a patch of page %d named by the base tree, before the log end" % pg)
                self.bases[pg] = struct.unpack_from("<Q", self.data, at)[0]

    def check_free_list(self, r):
        """ "The free list": checked when the control state is loaded, never read through."""
        # "entries sorted by range offset, strictly increasing, and not overlapping (each range
        # ends at or before the next one's offset); every range at least 512 bytes long, starting
        # at or after 512 and ending at or before the CONTROL record's own offset; a SLOT range one
        # frame long: its length a valid page size (512 ... 65536, a power of two) and its offset a
        # multiple of min(length, 4096); no flag bit but SLOT set. Otherwise the log is damaged
        # (named by the CONTROL record's offset)."
        at = r.off + REC_HEADER + CONTROL_INFO + STRAGGLER * r.ctl.stragglers
        last_end = None
        self.free_list, self.free_slots = [], set()
        for k in range(r.ctl.free_entries):
            off, length, flags = struct.unpack_from("<QII", self.data, at + FREE_ENTRY * k)
            slot_ok = not flags & 1 or (page_size_ok(length) and off % min(length, 4096) == 0)
            if (last_end is not None and off < last_end) or length < 512 or off < HEADER_BLOCK \
                    or off + length > r.off or flags & ~1 or not slot_ok:
                raise Damage(r.off, "a free list sorted by offset, its ranges apart, in [512, the record)")
            last_end = off + length
            self.free_list.append((off, off + length))
            if flags & 1:
                self.free_slots.add((off, off + length))
        self.free_rec = r.off

    def walk_node(self, off, crc, level, first, end):
        """ "The base tree": the node at off, checked in the order the text gives, and its
        subtree.  Fills self.base with every non-zero leaf slot."""
        size = node_size(level)
        if off + size > end:
            raise Damage(off, "an index-tree node of %d bytes before the log end %d" % (size, end))
        for so, sc, i, f in self.check_node(self.data[off:off + size], off, crc, level, first):
            if level == 0:
                if (so, sc) != (0, 0):
                    self.base[f + i] = (so, sc)
            elif so:
                self.walk_node(so, sc, level - 1, f + i * span(level - 1), end)

    def check_node(self, b, off, crc, level, first):
        """ "The base tree": the checks of a node whose bytes b were read for the node at off
        (crc, level, first); its slots as (offset, crc, index, first).  Raises Damage(off)."""
        if crc32(b) != crc:
            raise Damage(off, "an index-tree node with crc %#x" % crc)
        lv = b[0]
        if lv > 5 or lv != level or any(b[1:4]):
            raise Damage(off, "a node at level %d (level byte %d, reserved %r)" % (level, lv, b[1:4]))
        (f,) = struct.unpack_from("<I", b, 4)
        if f % span(lv) or f != first:
            raise Damage(off, "a node for pages from %d, found %d" % (first, f))
        n = 16 if lv == 0 else 64
        out = []
        for i in range(n):
            so, sc, sr = struct.unpack_from("<QII", b, 8 + 16 * i)
            if sr or (so == 0 and sc != 0) or (lv == 0 and f == 0 and i == 0 and (so, sc) != (0, 0)):
                raise Damage(off, "slot %d: (%d, %#x, reserved %#x)" % (i, so, sc, sr))
            if lv > 0 and so != 0:
                if so % 8 or so < HEADER_BLOCK or so + node_size(lv - 1) > off:
                    raise Damage(off, "child %d at %d: 8-aligned, from 512, ending before its parent" % (i, so))
                if f + i * span(lv - 1) > 0xFFFFFFFF:
                    raise Damage(off, "child %d covers no page number" % i)
            out.append((so, sc, i, f))
        return out

    # ---- "Checkpoints and INDEX records" ------------------------------------------------
    def apply(self, pmap, c):
        """The map after commit c when pmap was its predecessor's: a full map's entries, a
        checkpoint's tree ("The tree gives the checkpoint's whole page map (its own entries
        included)"), or a delta applied."""
        if c.ck is not None:
            return self.tree_map(c)
        return apply(pmap, c)

    def tree_map(self, c):
        """Checkpoint c's page map from its tree, every node read as "Reading a node" says.  A
        page below a node that fails gets the offset -1 - (that node's offset): reading it is
        damage named by the node, not opening ("Opening reads no node")."""
        key = (c.off, self.boundary, id(self.moved))
        if key in self.tree_cache:
            return list(self.tree_cache[key])
        n = c.db_pages
        pm = [(0, 0)] * n
        root, root_crc, depth = c.ck[0], c.ck[1], c.ck[2]

        def go(off, crc, level, first):
            lo, hi = max(first, 1), min(first + span(level) - 1, n)
            try:
                slots = self.read_tree_node(off, crc, level, first, c.end)
            except Damage:
                for p in range(lo, hi + 1):
                    pm[p - 1] = (0, -1 - off)
                return
            for so, sc, i, f in slots:
                if level == 0:
                    if 1 <= f + i <= n:
                        pm[f + i - 1] = (sc, so)
                elif so and f + i * span(level - 1) <= n:
                    go(so, sc, level - 1, f + i * span(level - 1))
        if root:
            go(root, root_crc, depth - 1, 0)
        self.tree_cache[key] = pm
        return list(pm)

    def tree_entries(self, c, start):
        """Step 4 of a checkpoint without entries: every non-zero slot of its nodes at or after
        the start (its own: "a node written before the start names nothing written after it, and
        is not read"), as (page, crc, offset), its nodes read where they were written, each ending
        at or before the checkpoint's offset, and checked; None when one fails."""
        out = []

        def go(off, crc, level, first):
            if off < start:
                return
            size = node_size(level)
            if off + size > c.off:
                raise Damage(off, "a node before its checkpoint")
            for so, sc, i, f in self.check_node(self.data[off:off + size], off, crc, level, first):
                if level == 0:
                    if (so, sc) != (0, 0):
                        out.append((f + i, sc, so))
                elif so:
                    go(so, sc, level - 1, f + i * span(level - 1))
        if c.ck[0]:
            try:
                go(c.ck[0], c.ck[1], c.ck[2] - 1, 0)
            except Damage:
                return None
        return out

    def read_tree_node(self, off, crc, level, first, end):
        """ "Reading a node" of a checkpoint's tree: at its offset, before end (the version's
        COMMIT end), or, below B, at its straggler-table copy, before that CONTROL record's end;
        checked as the node at off."""
        at, lim = off, end
        if self.boundary > HEADER_BLOCK and off < self.boundary:
            at = self.moved.get(off)
            if at is None:
                raise Damage(off, "a copy of the node below B in the straggler table")
            lim = self.ctl_end
        size = node_size(level)
        if at < HEADER_BLOCK or at + size > lim or at + size > self.n:
            raise Damage(off, "an index-tree node within the committed log")
        return self.check_node(self.data[at:at + size], off, crc, level, first)

    def page(self, pg, cr, fo, ps):
        """Page pg whose map slot is (crc cr, offset fo), read with page size ps: "The boundary:
        freed regions, and references below B".  Raises Damage."""
        if fo == 0:
            return bytes(ps)
        if fo < 0:  # below a checkpoint-tree node that failed its checks
            raise Damage(-1 - fo, "the index-tree node above page %d" % pg)
        q = fo & ~7
        if q < self.boundary:
            # "first looked up in the table by X as the reference holds it ... (a map slot keeps
            # its tag)"; "only when the table has no entry for X is it resolved through the base
            # tree"; "with no base-tree slot for p ... read in place ... when o is a page image
            # (o a multiple of 8) at a multiple of a = min(page size, 4096)".
            m = self.moved.get(fo)
            t = self.base.get(pg)
            if m is not None:
                fo, q = m | (fo & 7), m
            elif t is not None:
                if t[1] != cr:
                    raise Damage(q, "a copy of page %d (crc %#x) in the base tree" % (pg, cr))
                fo, q = t[0], t[0] & ~7
            elif fo % 8 != 0 or fo % min(ps, 4096) != 0:
                raise Damage(q, "a copy of page %d (crc %#x) in the base tree, or a frame read in place"
                             % (pg, cr))
        if self.is_patch(fo):
            pp = self.parse_patch(q, ps, self.n)
            if isinstance(pp, str):
                raise Damage(q, pp)
            b, ranges, at, _size = pp
            if b < self.boundary:
                t = self.base.get(pg)
                if b in self.moved:
                    b = self.moved[b]
                elif t is not None:
                    b = self.bases[pg] if t[0] % 8 == 1 else t[0]
            page = bytearray(self.data[b:b + ps])
            for st, ln in ranges:
                page[st:st + ln] = self.data[at:at + ln]
                at += ln
            if len(page) != ps or crc32(bytes(page)) != cr:
                raise Damage(q, "a patch of page %d making crc %#x" % (pg, cr))
            return bytes(page)
        page = self.data[fo:fo + ps]
        if len(page) != ps or crc32(page) != cr:
            raise Damage(fo, "the frame of page %d with crc %#x" % (pg, cr))
        return page

    def image_crc(self, c, pmap):
        """crc32 of version c's database image as read: every page through the control state, page
        1 with its change counter ("Page 1's change counter"); "error" when a page is damage."""
        h = 0
        zero_run = 0  # zero pages not yet hashed (a database with summaries has many: speed only)
        for i, (cr, fo) in enumerate(pmap):
            if fo == 0 and i > 0:
                zero_run += 1
                continue
            while zero_run:
                k = min(zero_run, 1024)
                h = crc32(bytes(c.ps * k), h)
                zero_run -= k
            try:
                pg = self.page(i + 1, cr, fo, c.ps)
            except Damage:
                return "error"
            if i == 0 and fo != 0 and self.fmt >= 2 and pg[:16] == b"SQLite format 3\x00" and len(pg) >= 100:
                b = bytearray(pg)
                ctr = struct.pack(">I", c.p1)
                if b[92:96] == b[24:28]:
                    b[92:96] = ctr
                b[24:28] = ctr
                pg = bytes(b)
            h = crc32(pg, h)
        while zero_run:
            k = min(zero_run, 1024)
            h = crc32(bytes(c.ps * k), h)
            zero_run -= k
        return "%08x" % h

    # ---- "Reading a damaged log" --------------------------------------------------------
    def forward_read(self):
        """The forward read: steps 3 and 4 from offset 512 with version 0 as D, "a claim that
        step 4 would refuse the log for ... instead ends the read before the record that makes
        it".  Returns the commits it keeps (and sets self.forward_vo: the oldest version a
        format-4 read keeps, 0 for all)."""
        start = self.forward_start()
        self.forward_vo = 0
        if self.fmt == 4:
            # "the versions it keeps are those >= Vo of the last CONTROL record it passes (when B >
            # 512)"; with a boundary recovery found, that state's.
            ctl = self.ctl if self.boundary > HEADER_BLOCK else None
            if self.refused_ctl is not None:
                ctl = self.refused_ctl.ctl
            if ctl is not None and ctl.boundary > HEADER_BLOCK:
                self.forward_vo = ctl.oldest
        if start == "nothing":
            return []
        at_b = None
        if start is not None and self.fmt == 4 and self.forward_vo:
            at_b = (start.end, self.forward_vo)  # the read starts at B, where start "ends"
        commits, claims = self.walk(start, at_b)
        by_version = {c.version: c for c in commits}
        base = start.version if start is not None else 0
        cut, v = None, base
        if self.refused_ctl is not None and self.refused_ctl.flags & CLAIM:
            v = max(v, self.refused_ctl.version - 1)  # "what the newest CONTROL record claims"
        if start is not None and self.ctl is not None:
            v = max(v, self.open_v)  # "commits up to the version recovery found durable"
        for ident, src in claims:
            if cut is not None and src >= cut:
                break
            if start is not None and (ident == start.ident() or (1 <= ident[0] < base and ident[1] != 0)):
                # older than the start, or the start itself: not on the path read (a claim that
                # names no commit -- version 0 with an offset or crc, a version at offset 0 -- is
                # still damage: "Claims")
                continue
            c = by_version.get(ident[0])
            if c is None or c.ident() != ident or c.off > src:
                cut = src  # ends the read before the record that makes the claim
                break
            v = max(v, ident[0])
        kept = [c for c in commits if cut is None or c.off < cut]
        prev_end = start.end if start is not None else HEADER_BLOCK
        out = []
        for c in kept:
            # "up to the last before the first one after the newest claim whose own frames fail"
            if c.version > v and self.own_frames_ok(c, prev_end) is not None:
                break
            out.append(c)
            prev_end = c.end
        return out

    def forward_start(self):
        """Where the forward read starts: None (offset 512, version 0), the commit the record at B
        names ("Format 4": when the log has a boundary), or, when recovery refused a format-4 log
        whose bytes at 512 are zeros, the commit named by the well-formed record at the first
        non-zero 8-byte word (when the newest CONTROL record of the file does not declare the
        zeros freed they are damage, and the read still starts there); "nothing" when there is
        no record to start from."""
        self.refused_ctl = None
        if self.fmt != 4:
            return None
        pos = self.boundary
        if pos == HEADER_BLOCK:
            if self.ctl is not None or self.record(pos) is not None:
                return None
            while pos + 8 <= self.n and not any(self.data[pos:pos + 8]):
                pos += 8
            if pos == HEADER_BLOCK:
                return None
            c = self.newest_control(pos)
            if c is not None and c.ctl.boundary >= pos:
                self.refused_ctl = c
        r = self.record(pos)
        if r is None or r.kind == MARK:
            return "nothing"
        return Named(r)

    def newest_control(self, floor):
        """ "the newest CONTROL record of the file": scanning back from its end, record by record
        (a record found ending at a position is skipped whole), the first CONTROL record, at or
        after floor."""
        x = self.n - self.n % 8
        while x >= floor + TRAILER:
            if self.data[x - 8:x - 4] == TR_MAGIC:
                (ro,) = struct.unpack_from("<Q", self.data, x - 16)
                if floor <= ro < x:
                    r = self.record(ro)
                    if r is not None and r.end == x:
                        if r.kind == CONTROL:
                            return r
                        x = ro
                        continue
            x -= 8
        return None

    def readable(self, latest, refused):
        """(the versions a reader may read, whether it meets damage): recovery's walk back
        from the latest (when it opens) and the forward read."""
        kept = self.forward_read()
        damage = refused
        if latest is not None:
            kept = [c for c in kept if c.version <= latest.version and c.off <= latest.off]
        fulls = {c.off: c.version for c in kept if c.is_map_commit and self.map_starts(c)}
        forward = {}
        vo = self.forward_vo
        for c in kept:
            if c.version < vo:
                continue  # reclaimed: "not damaged"
            # "whose `full map offset` names a FULL_MAP commit the read passed"
            if c.fm_off in fulls and fulls[c.fm_off] <= c.version:
                forward[c.version] = c
            else:
                damage = True
        chain = {}
        if latest is not None and not any(c.ident() == latest.ident() for c in kept):
            damage = True  # the forward read ended before recovery's latest version
            idents = {c.ident() for c in kept}
            c = latest
            while c.ident() not in idents and c.version >= vo:
                try:
                    self.build_map(c)
                    chain[c.version] = c
                except Damage:
                    pass
                if c.prev == 0:
                    break
                p = self.record(c.prev)
                if (p is None or p.kind != COMMIT or p.off >= c.off or p.tcrc != c.prev_crc
                        or p.version != c.version - 1):
                    break
                c = p
        forward.update(chain)  # a version both walks found: recovery's
        return forward, damage

    # ---- open -------------------------------------------------------------------------
    def open(self):
        """Returns (latest commit or None, V, versions); raises NotALog / Damage."""
        if self.read_header() == "empty":
            return None, 0, []
        claim = self.durable_claim()
        d = self.claimed_commit(claim) if claim is not None else None
        commits, claims = self.walk(d)
        passed = self.passed
        latest, v = self.durable_and_tail(d, commits, claims)
        if latest is None:
            return None, v, []
        self.open_v = v
        self.build_map(latest)
        self.load_control(latest, passed)
        return latest, v, self.versions_in_place(latest)

    # ---- verify -----------------------------------------------------------------------
    def verify_from_boundary(self, open_latest):
        """ "Reading a damaged format-4 log, the forward read, and verify" with B > 512: the read
        starts at B (the commit the record there names taken as the last commit); it must reach
        recovery's latest version; every FULL_MAP commit from B on is preceded by its CONTROL
        record; every page of every held version reads with its entry's crc after resolution, and
        its checksum is the stored one.  [512, B) is freed, not damage."""
        r0 = self.record(self.boundary)
        if r0 is None or r0.kind == MARK:
            return "no record at the boundary %d" % self.boundary
        named = Named(r0)
        commits, claims = self.walk(named, (self.boundary, self.ctl.oldest))
        # what the records of reclaimed versions hold is not checked: their claims neither
        vo_off = next((c.off for c in commits if c.version >= self.ctl.oldest), None)
        claims = [(i, src) for i, src in claims if vo_off is None or src >= vo_off]
        try:
            latest, _v = self.durable_and_tail(named, commits, claims)
        except Damage as e:
            return str(e)
        if latest is None or open_latest is None or latest.ident() != open_latest.ident():
            return "the walk from the boundary does not reach recovery's latest version"
        for c in commits:
            if c.is_map:
                try:
                    self.control_before(c)
                except Damage as e:
                    return "version %d at %d: %s" % (c.version, c.off, e)
        # Format 3's checks of what opening does not need, from B on ("beyond format 3"): every
        # patch area filled exactly by well-formed patches whose base is a stored image (a relocated
        # one included) or lies below B (freed: resolved through the base tree); every entry names
        # a stored image, the start of a stored patch, or an item below B.
        passed = [r for r in self.passed if r.off <= open_latest.off]
        images = sorted((r.payload, r.parea, r.ps, r.off) for r in passed if r.frames > 0)
        starts = [x[0] for x in images]
        ctls = sorted((r.payload, r.parea, r.off) for r in passed if r.kind == CONTROL)
        cstarts = [x[0] for x in ctls]
        b = self.boundary

        def stored(fo, ps, upto):
            if fo < b:
                return True
            i = bisect.bisect_right(cstarts, fo) - 1
            if i >= 0 and fo % 8 == 0 and fo + ps <= ctls[i][1] and ctls[i][2] <= upto:
                return True
            i = bisect.bisect_right(starts, fo) - 1
            if i < 0:
                return False
            pay, pay_end, rps, roff = images[i]
            return roff <= upto and rps == ps and fo < pay_end and (fo - pay) % ps == 0

        patch_starts = {}
        vo = self.ctl.oldest
        for c in commits:
            if c.off > open_latest.off:
                break
            if c.version < vo:
                continue  # a reclaimed version's record: walked (it must chain), not checked
            pos = c.parea
            while pos < c.parea_end:
                pp = self.parse_patch(pos, c.ps, c.parea_end)
                if isinstance(pp, str):
                    return "version %d at %d: patch area: %s" % (c.version, c.off, pp)
                if not stored(pp[0], c.ps, c.off):
                    return "version %d at %d: the patch at %d has base %d, not a stored image" % (
                        c.version, c.off, pos, pp[0])
                patch_starts[pos] = pp[0]
                pos += pp[3]
            for pg, _cr, fo in c.entries():
                if fo == 0 or (fo & ~7) < b:
                    continue
                if self.is_patch(fo):
                    if fo - 1 not in patch_starts:
                        return "version %d at %d: page %d names %d, not the start of a stored patch" % (
                            c.version, c.off, pg, fo - 1)
                elif not stored(fo, c.ps, c.off):
                    return "version %d at %d: page %d names %d, not a stored image" % (c.version, c.off, pg, fo)
        for x in self.versions_in_place(open_latest):
            if "error" in x or x["pages"] == "error":
                return "version %d: %s" % (x["version"], x.get("error", "a page fails its crc"))
            if x["checksum"] != x["stored_checksum"]:
                return "version %d: checksum %s, its pages give %s" % (x["version"], x["stored_checksum"],
                                                                      x["checksum"])
        return self.free_list_overlap(open_latest)

    def free_list_overlap(self, latest):
        """ "The free list": "no version the log holds from this CONTROL record on, and nothing
        its control state names (base tree, straggler table), reaches any byte of it", checked by
        verify for the items at or after B (below B a held version reads what the control state
        redirects to): every frame (a page), patch (its size) and patch base (a page) of every
        held version's map."""
        fl = getattr(self, "free_list", [])
        if not fl:
            return None
        starts = [x[0] for x in fl]
        b = self.boundary
        # "except a page image, named by an entry of a RECYCLED commit after the listing record,
        # that lies exactly in a listed SLOT range (a recycled slot)"
        recycled = set()
        for r in getattr(self, "passed", []):
            if r.kind == COMMIT and r.flags & RECYCLED and self.free_rec < r.off <= latest.off:
                recycled.update(fo for _pg, _cr, fo in r.entries() if fo != 0 and fo % 8 == 0)

        def over(s, e):
            i = bisect.bisect_right(starts, e - 1) - 1
            return fl[i] if i >= 0 and fl[i][1] > s else None

        chain, c = [latest], latest
        while c.prev != 0 and c.version > self.ctl.oldest:
            p = self.record(c.prev)
            if p is None or p.kind != COMMIT or p.tcrc != c.prev_crc:
                break
            chain.append(p)
            c = p
        for c in chain:
            try:
                pmap = self.build_map(c)
            except Damage:
                continue  # reported as the version's damage above
            # "or a frame below B that a held version reads in place" ("The boundary": no
            # straggler entry, no base-tree slot, an image at a multiple of min(page size, 4096)).
            def in_place(pg, o):
                return o < b and o not in self.moved and pg not in self.base and o % 8 == 0 \
                    and o % min(c.ps, 4096) == 0

            for i, (_cr, fo) in enumerate(pmap):
                if fo <= 0:
                    continue
                spans = []
                if (fo & ~7) < b:
                    if in_place(i + 1, fo):
                        spans.append((fo, fo + c.ps))
                elif fo % 8 == 1:
                    pp = self.parse_patch(fo - 1, c.ps, self.n)
                    if isinstance(pp, str):
                        continue
                    spans.append((fo - 1, fo - 1 + pp[3]))
                    if pp[0] >= b or in_place(i + 1, pp[0]):
                        spans.append((pp[0], pp[0] + c.ps))
                else:
                    spans.append((fo, fo + c.ps))
                for s0, e0 in spans:
                    hit = over(s0, e0)
                    if hit is not None and not (s0 in recycled and e0 - s0 == c.ps and hit == (s0, e0)
                                                and hit in self.free_slots):
                        return "the free-list range (%d, %d) of the CONTROL record at %d covers page %d's " \
                               "item at %d (version %d)" % (hit[0], hit[1] - hit[0], self.free_rec, i + 1, s0,
                                                            c.version)
        return None

    def controls_in_force(self, passed):
        """{commit offset: (offset, crc) of the CONTROL record in force at it}: "the newest one
        before it that counts (one with CLAIM, or the copy in a checkpoint's transaction whose
        COMMIT followed it)" """
        out, cur, pending = {}, None, None
        for r in passed:
            if r.kind == CONTROL:
                if r.flags & CLAIM:
                    cur = (r.off, r.tcrc)
                else:
                    pending = r
            elif r.kind == COMMIT:
                if pending is not None and pending.end == r.off:
                    cur = (pending.off, pending.tcrc)
                pending = None
                out[r.off] = cur
        return out

    def verify_summary(self, c, last_ck, control, pmap):
        """ "verify checks, for every summary ...: its checkpoint and checkpoint crc name the newest
        checkpoint before it, its control and control crc the CONTROL record whose state is in force
        at it ..., and its map built both ways -- from the checkpoint with its entries, and as a
        delta on the previous version -- gives the same slot for every page" """
        if last_ck is None or (c.sm[0], c.sm[1]) != (last_ck.off, last_ck.tcrc):
            return "summary version %d at %d: names checkpoint %d, not the newest" % (c.version, c.off, c.sm[0])
        if self.summary_map(last_ck, c) != apply(pmap, c):
            return "summary version %d at %d: its map from the checkpoint is not its chain's" % (c.version, c.off)
        if (c.sm[2], c.sm[3]) != control:
            return "summary version %d at %d: names control %d, not the one in force" % (c.version, c.off, c.sm[2])
        return None

    def verify(self, open_latest, open_v):
        """None when clean, else the first damage found.  Steps 3 and 4 from offset 512 with
        version 0 as D, every frame of every version checked; then the versions so reached
        must be the ones open reached."""
        # "bytes 64-511 are zero ... pagelog verify reports one as damage at its offset"
        nz = next((i for i in range(64, min(HEADER_BLOCK, self.n)) if self.data[i] != 0), None)
        if nz is not None:
            return "header padding: byte %d is not zero" % nz
        if self.boundary > HEADER_BLOCK:
            return self.verify_from_boundary(open_latest)
        commits, claims = self.walk(None)
        try:
            latest, v = self.durable_and_tail(None, commits, claims)
        except Damage as e:
            return str(e)
        # "every commit's horizon is (0, 0, 0) or names an earlier commit of the log exactly"
        seen = {}
        for c in commits:
            h = (c.hz_ver, c.hz_off, c.hz_crc)
            if h != (0, 0, 0) and not (h[0] < c.version and seen.get(h[1]) == (h[0], h[2])):
                return "version %d at %d: horizon (%d, %d, %#x) names no earlier commit" % (
                    c.version, c.off, h[0], h[1], h[2])
            seen[c.off] = (c.version, c.tcrc)
        # "Commits up to V are trusted" by open: verify must find them intact.
        v = max(v, open_v)
        passed = self.passed
        images = sorted((r.payload, r.parea, r.ps, r.off) for r in passed if r.frames > 0)
        image_starts = [x[0] for x in images]
        areas = sorted((r.parea, r.parea_end, r.off) for r in passed if r.kind == COMMIT and r.pw > 0)
        area_starts = [x[0] for x in areas]

        # "Format 4": a patch's base may be an image relocated into the payload of a CONTROL
        # record at or before the patch's commit.
        ctl_payloads = sorted((r.payload, r.parea, r.off) for r in passed if r.kind == CONTROL)
        ctl_starts = [x[0] for x in ctl_payloads]

        def relocated_image(fo, ps, upto):
            i = bisect.bisect_right(ctl_starts, fo) - 1
            return i >= 0 and fo % 8 == 0 and fo + ps <= ctl_payloads[i][1] and ctl_payloads[i][2] <= upto

        def stored_image(fo, ps, upto, relocated=False):
            """ "an image stored in a record at or before its commit (at a multiple of the page
            size from its payload start, of that page size)" """
            if relocated and relocated_image(fo, ps, upto):
                return True
            i = bisect.bisect_right(image_starts, fo) - 1
            if i < 0:
                return False
            pay, pay_end, rps, roff = images[i]
            return roff <= upto and rps == ps and fo < pay_end and (fo - pay) % ps == 0

        def area_of(p, upto):
            """The patch area (start, end) of a commit at or before upto that holds p."""
            i = bisect.bisect_right(area_starts, p) - 1
            if i < 0 or p >= areas[i][1] or areas[i][2] > upto:
                return None
            return areas[i][:2]

        def page_ok(fo, ps, cr, upto):
            if self.is_patch(fo):
                return self.patch_ok(fo - 1, ps, cr, area_of(fo - 1, upto))
            return self.frame_ok(fo, ps, cr)

        # Step 4 again with V raised to open's: the versions are the commits up to the last
        # before the first tail commit whose own frames or patches fail.  "checks every frame
        # of every version": of these versions only (a tail commit that is not a version
        # is not blamed for the older frames it names).
        last_version, prev_end = None, HEADER_BLOCK
        for c in commits:
            if c.version > v and self.own_frames_ok(c, prev_end) is not None:
                break
            last_version, prev_end = c, c.end
        pmap, prev_end, reached, expect_fm = [], HEADER_BLOCK, None, None
        patch_starts = {}  # patch offset -> its base
        in_force = self.controls_in_force(passed)
        last_ck = None
        for c in commits:
            if last_version is None or c.off > last_version.off:
                break
            if c.sm is not None:
                why = self.verify_summary(c, last_ck, in_force.get(c.off), pmap)
                if why is not None:
                    return why
                if c.fm_off != last_ck.off:  # "a summary's own full map offset: ... its checkpoint"
                    return "version %d at %d: full map offset %d, its checkpoint is at %d" % (
                        c.version, c.off, c.fm_off, last_ck.off)
                expect_fm = c.off
            if c.ck is not None:
                last_ck = c
            if c.is_map:
                expect_fm = c.off
                if self.fmt == 4:
                    try:
                        self.control_before(c)  # "every FULL_MAP commit ... preceded by its CONTROL record"
                    except Damage as e:
                        return "version %d at %d: %s" % (c.version, c.off, e)
            if c.fm_off != expect_fm and c.sm is None:
                return "version %d at %d: full map offset %d, the newest full map is at %s" % (
                    c.version, c.off, c.fm_off, expect_fm)
            pmap = self.summary_map(last_ck, c) if c.sm is not None else self.apply(pmap, c)
            bad = next(((i + 1, fo) for i, (cr, fo) in enumerate(pmap)
                        if fo != 0 and not page_ok(fo, c.ps, cr, c.off)), None)
            if bad is not None:
                return "version %d at %d: page %d's %s at %d fails its crc or rules" % (
                    c.version, c.off, bad[0], "patch" if self.is_patch(bad[1]) else "frame",
                    bad[1] - self.is_patch(bad[1]))
            if checksum(pmap) != c.checksum:
                return "version %d at %d: checksum %#x, its pages give %#x" % (
                    c.version, c.off, c.checksum, checksum(pmap))
            # "every patch area is filled exactly by well-formed patches" (back to back in
            # the order of their offsets), each one's base "such an image".
            pos = c.parea
            while pos < c.parea_end:
                pp = self.parse_patch(pos, c.ps, c.parea_end)
                if isinstance(pp, str):
                    return "version %d at %d: patch area: %s" % (c.version, c.off, pp)
                if not stored_image(pp[0], c.ps, c.off, True):
                    return "version %d at %d: the patch at %d has base %d, not a stored image" % (
                        c.version, c.off, pos, pp[0])
                patch_starts[pos] = pp[0]
                pos += pp[3]
            # "every entry names an image stored in a record at or before its commit ... or
            # the start of a patch stored in a patch area at or before its commit"
            for pg, _cr, fo in c.entries():
                if fo == 0:
                    continue
                if self.is_patch(fo):
                    if fo - 1 not in patch_starts:
                        return "version %d at %d: page %d names %d, not the start of a stored patch" % (
                            c.version, c.off, pg, fo - 1)
                    # "whose base is such an image": of this commit's page size (CHOICE: "that
                    # page size" is the page size of the entry's commit, as for an image)
                    if not stored_image(patch_starts[fo - 1], c.ps, c.off, True):
                        return "version %d at %d: page %d names the patch at %d, whose base %d is not " \
                               "a stored image of page size %d" % (c.version, c.off, pg, fo - 1,
                                                                    patch_starts[fo - 1], c.ps)
                elif not stored_image(fo, c.ps, c.off):
                    return "version %d at %d: page %d names %d, not a stored image" % (
                        c.version, c.off, pg, fo)
            reached, prev_end = c, c.end
        got = reached.version if reached is not None else 0
        want = open_latest.version if open_latest is not None else 0
        if got < v:
            return "version %d is claimed durable; the walk from 512 reaches version %d" % (v, got)
        if got != want:
            return "the walk from 512 reaches version %d, recovery version %d" % (got, want)
        return None


def span(level):
    """ "A node at level l covers span(l) = 16 x 64^l page numbers" """
    return 16 << (6 * level)


def node_size(level):
    return 264 if level == 0 else 1032


class Named:
    """The commit the record at B names, taken as the last commit without reading it."""

    def __init__(self, r):
        self.version, self.off, self.tcrc = r.version - 1, r.prev, r.prev_crc
        self.end, self.ps, self.full = r.off, r.ps, True

    def ident(self):
        return (self.version, self.off, self.tcrc)


def apply(pmap, c):
    if c.full:
        return [(cr, fo) for _pg, cr, fo in c.entries()]
    m = pmap[:c.db_pages] + [(0, 0)] * max(0, c.db_pages - len(pmap))
    for pg, cr, fo in c.entries():
        m[pg - 1] = (cr, fo)
    return m


def checksum(pmap):
    x = 0
    for i, (cr, fo) in enumerate(pmap):
        if fo != 0:
            x ^= mix((((i + 1) << 32) | cr) & M64)
    return x


def summary(c, pmap):
    return {"version": c.version, "checksum": "%#018x" % checksum(pmap),
            "stored_checksum": "%#018x" % c.checksum, "db_pages": c.db_pages,
            "page_size": c.ps, "offset": c.off, "full_map": c.full}


def examine(data):
    log = Log(data)
    out = {"opens": False, "latest": None, "error": None, "verify": "damaged",
           "verify_error": None, "versions": [], "readable": [], "damage_met": True}
    try:
        latest, v, versions = log.open()
    except NotALog as e:
        out["error"] = "not a pagelog log: %s" % e
        out["verify_error"] = out["error"]
        return out
    except Damage as e:
        out["error"] = str(e)
        out["verify_error"] = "recovery refuses the log: %s" % e
        # "When recovery refuses the log, B is not known": not even the control state it was
        # loading when it met the damage (a base tree node, a straggler table).
        log.forget_control()
        try:
            found, out["damage_met"] = log.readable(None, True)
            out["readable"] = sorted(found)
            out["readable_checksums"] = {v: "%#018x" % c.checksum for v, c in found.items()}
        except NotALog:
            pass
        return out
    if latest is not None:
        found, out["damage_met"] = log.readable(latest, False)
        out["readable"] = sorted(found)
        out["readable_checksums"] = {v: "%#018x" % c.checksum for v, c in found.items()}
    else:
        out["damage_met"] = False
    out["opens"] = True
    out["latest"] = latest.version if latest is not None else 0
    out["versions"] = versions
    # Every version 1..latest as a reader asked for it reads: its image's crc32, "reclaimed"
    # ("Which versions a format-4 log holds"), "none" or "error".
    got = {x["offset"]: x["pages"] for x in versions if "offset" in x}
    out["pages"] = {}
    for n in range(1, out["latest"] + 1):
        if log.boundary > HEADER_BLOCK and n < log.ctl.oldest and n != out["latest"]:
            out["pages"][n] = "reclaimed"  # "the latest version is always held"
        else:
            out["pages"][n] = log.find_version(latest, n, got)
    if log.ctl is not None:
        out["control"] = {"epoch": log.ctl.epoch, "boundary": log.boundary, "oldest": log.ctl.oldest,
                          "base_pages": len(log.base)}
    if log.fmt is None:  # an empty log (no records can follow a torn header)
        out["verify"] = "clean"
        return out
    why = log.verify(latest, v)
    out["verify"] = "clean" if why is None else "damaged"
    out["verify_error"] = why
    return out


def brief(o):
    """The outcome in the corpus manifest's words: `opens N clean|damaged` or `refused ...`."""
    return ("opens %d " % o["latest"] if o["opens"] else "refused ") + o["verify"]


def main(argv):
    summary = len(argv) > 1 and argv[1] == "--summary"
    pages = len(argv) > 1 and argv[1] == "--pages"
    paths = argv[2:] if summary or pages else argv[1:]
    if not paths or (not (summary or pages) and len(paths) != 1):
        sys.stderr.write("usage: spec_reader.py LOG | spec_reader.py --summary|--pages LOG...\n")
        return 2
    for path in paths:
        with open(path, "rb") as f:
            o = examine(f.read())
        if pages:
            # `LOG 1:CRC 2:reclaimed ...`: every version 1..latest as a reader asked for it reads
            # (its image's crc32, "reclaimed", "none", "error"); `LOG refused` when the log does not open.
            words = ["%d:%s" % (n, w) for n, w in sorted(o.get("pages", {}).items())]
            print("%s %s" % (path, " ".join(words) if o["opens"] else "refused"))
        else:
            print("%s %s" % (path, brief(o)) if summary else json.dumps(o, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
