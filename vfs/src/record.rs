//! Reading one record of the log: the file header, a record's header,
//! metadata and trailer checked, a COMMIT's entries and their structure,
//! and the search for the last record of a file (FORMAT.md, "Validity" and
//! recovery step 2). The walks that chain records into versions are in
//! `recovery.rs`.
//!
//! # Invariants
//! 1. Every field of a returned record comes from the one read of its
//!    metadata that its crcs checked (issue 26): a reader beside a writer
//!    may see an append half done, and a record whose bytes change between
//!    two looks is not (yet) a record.
//! 2. Bytes that do not form a record are `None`, never an error: whether
//!    that is damage is for the walk that met them to say.
//! 3. Nothing read here is trusted to size an allocation beyond the file.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::{
    self, CheckpointInfo, CommitInfo, ControlInfo, Entry, Header, HeaderError, IndexInfo, RecordHeader, SummaryInfo,
};
use crate::log::{Log, Rec};
use crate::patch;

/// Index of the last non-zero byte of `b`. Pre-allocated tails are megabytes
/// of zeros, so whole blocks are compared against a block of zeros first
/// (a `memcmp`, fast in debug builds too), then the last non-zero block is
/// searched byte by byte.
fn last_nonzero(b: &[u8]) -> Option<usize> {
    const BLOCK: usize = 4096;
    static ZEROS: [u8; BLOCK] = [0; BLOCK];
    let mut end = b.len();
    let tail = end % BLOCK;
    if tail != 0 && b[end - tail..] == ZEROS[..tail] {
        end -= tail;
    }
    while end >= BLOCK && b[end - BLOCK..end] == ZEROS[..] {
        end -= BLOCK;
    }
    b[..end].iter().rposition(|&x| x != 0)
}

thread_local! {
    static RECORDS_READ: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Records this thread asked [`Log::read_record`] for since it started
/// (whether or not one was there): what an open reads, for tests that
/// bound it (`vfs/tests/summaries.rs`).
#[doc(hidden)]
pub fn records_read() -> u64 {
    RECORDS_READ.with(|c| c.get())
}

impl Log {
    /// Reads the header, if the file has one. Ok(None): an empty log.
    pub(crate) fn read_header(&self, len: u64) -> Result<Option<Header>> {
        if len == 0 {
            return Ok(None);
        }
        let n = len.min(format::HEADER_SIZE as u64) as usize;
        let b = self.read_vec(0, n)?;
        match Header::decode(&b) {
            Ok(h) => {
                self.format.store(h.format, std::sync::atomic::Ordering::Relaxed);
                Ok(Some(h))
            }
            Err(e) => {
                // A header torn by a crash while the log was being created
                // (one 512-byte write, synced before any record): nothing was
                // ever committed, so the log is empty.
                let magic_prefix = b.len() >= 4 && b[..b.len().min(8)] == format::MAGIC[..b.len().min(8)];
                if magic_prefix && len < format::FIRST_RECORD {
                    return Ok(None);
                }
                let reason = if b.starts_with(b"SQLite format 3\0") {
                    "it is a plain SQLite database; `pagelog import` converts it".to_string()
                } else {
                    match e {
                        HeaderError::TooShort => format!("{len} bytes is too short for a pagelog header"),
                        HeaderError::BadMagic => "it does not start with the pagelog magic \"PAGELOG\\0\"".into(),
                        HeaderError::BadCrc { stored, computed } => {
                            return Err(self.corrupt(
                                format::HDR_CRC as u64,
                                format!("header crc {computed:#010x}"),
                                format!("{stored:#010x}"),
                            ))
                        }
                        HeaderError::UnsupportedFormat(v) => {
                            format!("format version {v}; this build reads version {}", format::FORMAT_VERSION)
                        }
                        HeaderError::BadField(f, v) => format!("header field {f} has invalid value {v}"),
                    }
                };
                Err(Error::NotALog { path: self.path.clone(), reason })
            }
        }
    }

    /// Reads and checks the record at `offset` (header, commit info, trailer
    /// crc over all metadata). None: no valid record there.
    ///
    /// Every field of the returned record (header, commit info, entries) is
    /// decoded from the one read of its metadata that the trailer crc was
    /// checked over. A reader beside a writer may see an append half done
    /// (a `pread` or a mapped page can observe another process's `pwrite`
    /// part-way through): the first look at the header only says how much
    /// to read, and fields taken from it could mix bytes that no crc
    /// checked, such as a horizon whose crc was not yet copied, which
    /// recovery would then call damage (issue 26). A record whose bytes
    /// change between the two looks is simply not (yet) a record.
    pub(crate) fn read_record(&self, salt: u64, offset: u64, len: u64) -> Result<Option<Rec>> {
        RECORDS_READ.with(|c| c.set(c.get() + 1));
        if offset % 8 != 0 || offset < format::FIRST_RECORD || offset + format::RECORD_HEADER_SIZE as u64 > len {
            return Ok(None);
        }
        // First look: the header and commit info, to learn the layout.
        let head_len = (len - offset).min((format::RECORD_HEADER_SIZE + format::COMMIT_INFO_SIZE) as u64) as usize;
        let head = self.read_vec(offset, head_len)?;
        let Some(h) = RecordHeader::decode(salt, &head) else { return Ok(None) };
        if h.patch_words != 0 && self.format() < format::FORMAT_VERSION {
            return Ok(None); // reserved before format 3
        }
        if h.kind == format::KIND_CONTROL {
            return self.read_control(salt, offset, h, &head);
        }
        if h.kind == format::KIND_INDEX {
            return self.read_index(salt, offset, h, &head);
        }
        if h.flags & (format::FLAG_CHECKPOINT | format::FLAG_RECYCLED | format::FLAG_SUMMARY) != 0
            && h.kind == format::KIND_COMMIT
            && self.format() < format::FORMAT_V4
        {
            return Ok(None); // a checkpoint, a recycled slot and a summary are format 4's
        }
        let aligned = format::is_aligned(h.kind, h.flags);
        if aligned && self.format() < format::FORMAT_V4 {
            return Ok(None); // so is an aligned payload
        }
        let entries = if h.kind == format::KIND_COMMIT {
            if head.len() < format::RECORD_HEADER_SIZE + format::COMMIT_INFO_SIZE {
                return Ok(None);
            }
            CommitInfo::decode(&head[format::RECORD_HEADER_SIZE..]).entries
        } else {
            0
        };
        let lay = format::layout_with_flags(
            self.format(),
            offset,
            h.kind,
            h.flags,
            entries,
            h.frames,
            h.page_size,
            h.patch_words,
        );
        if lay.length != h.length {
            return Ok(None);
        }
        // Second look: all the metadata and the trailer; what the crc checks
        // is what the record says.
        let meta = self.read_vec(offset, lay.payload_start as usize)?;
        let t = self.read_vec(offset + h.length - format::TRAILER_SIZE as u64, format::TRAILER_SIZE)?;
        if !format::check_trailer(salt, offset, &meta, &t) {
            return Ok(None);
        }
        if RecordHeader::decode(salt, &meta) != Some(h) {
            return Ok(None); // changed between the looks: not a whole record yet
        }
        if aligned && meta[lay.meta_end as usize..].iter().any(|&b| b != 0) {
            return Ok(None); // the gap before aligned page images is zeros
        }
        let mut info = CommitInfo::default();
        let mut ckpt = CheckpointInfo::default();
        let mut sum = SummaryInfo::default();
        if h.kind == format::KIND_COMMIT {
            info = CommitInfo::decode(&meta[format::RECORD_HEADER_SIZE..]);
            if info.entries != entries {
                return Ok(None);
            }
            if h.flags & format::FLAG_CHECKPOINT != 0 {
                let at = format::RECORD_HEADER_SIZE + format::COMMIT_INFO_SIZE + entries as usize * format::ENTRY_SIZE;
                match CheckpointInfo::decode(&meta[at..]) {
                    Some(c) if c.control < offset && c.index < offset && c.root < offset => ckpt = c,
                    _ => return Ok(None),
                }
            }
            if h.flags & format::FLAG_SUMMARY != 0 {
                // Its links lie before it, and it names its checkpoint in
                // `full map offset` too (FORMAT.md, "Summary commits").
                let at = format::RECORD_HEADER_SIZE + format::COMMIT_INFO_SIZE + entries as usize * format::ENTRY_SIZE;
                match SummaryInfo::decode(&meta[at..]) {
                    Some(c) if c.checkpoint < offset && c.control < offset && info.full_map_offset == c.checkpoint => {
                        sum = c
                    }
                    _ => return Ok(None),
                }
            }
        }
        let crc = format::trailer_crc(&t);
        let control = ControlInfo::default();
        let payload_start = lay.payload_start;
        Ok(Some(Rec { offset, h, info, control, ckpt, sum, payload_start, crc, meta: Arc::new(meta) }))
    }

    /// Why the record whose header `h` (its crc checked) is at `pos` is not
    /// well-formed, when that is its ALIGNED flag (format 4): set in a log
    /// of an older format, or a byte of its gap before the page images not
    /// zero (reported at that byte, which the trailer crc, covering the gap,
    /// then fails on too or was re-sealed over). None: the flag is not why.
    /// For `verify`'s account of a record that does not check out.
    pub(crate) fn aligned_problem(
        &self,
        pos: u64,
        h: &RecordHeader,
        len: u64,
    ) -> Result<Option<(u64, String, String)>> {
        if !format::is_aligned(h.kind, h.flags) {
            return Ok(None);
        }
        let what = if h.kind == format::KIND_SPILL { "SPILL" } else { "COMMIT" };
        if self.format() < format::FORMAT_V4 {
            return Ok(Some((
                pos + format::RH_FLAGS as u64,
                format!("{what} flags without ALIGNED (format 4's) in a format-{} log", self.format()),
                format!("flags {:#04x}", h.flags),
            )));
        }
        let entries = if h.kind == format::KIND_COMMIT {
            let at = pos + (format::RECORD_HEADER_SIZE + format::CI_ENTRIES) as u64;
            if at + 4 > len {
                return Ok(None);
            }
            u32::from_le_bytes(self.read_vec(at, 4)?.try_into().expect("4 bytes"))
        } else {
            0
        };
        let lay = format::layout_with_flags(
            self.format(),
            pos,
            h.kind,
            h.flags,
            entries,
            h.frames,
            h.page_size,
            h.patch_words,
        );
        if lay.length != h.length || pos + lay.payload_start > len {
            return Ok(None);
        }
        let gap = self.read_vec(pos + lay.meta_end, (lay.payload_start - lay.meta_end) as usize)?;
        Ok(gap.iter().position(|&b| b != 0).map(|i| {
            (
                pos + lay.meta_end + i as u64,
                format!(
                    "zero bytes: the gap of the ALIGNED version {} {what} record at {pos}, {}..{}, before its page \
                     images",
                    h.version,
                    pos + lay.meta_end,
                    pos + lay.payload_start
                ),
                format!("byte {:#04x}", gap[i]),
            )
        }))
    }

    /// `read_record` for a CONTROL record (format 4), whose header `h` and
    /// first bytes `head` were read: its layout comes from its control info,
    /// and, as for every record, each field from the read its crc checked.
    fn read_control(&self, salt: u64, offset: u64, h: RecordHeader, head: &[u8]) -> Result<Option<Rec>> {
        if self.format() < format::FORMAT_V4
            || h.frames != 0
            || h.flags & !format::FLAG_CLAIM != 0
            || h.patch_words != 0
        {
            return Ok(None);
        }
        let mut first = vec![0u8; format::CONTROL_INFO_SIZE];
        let have = head.len().saturating_sub(format::RECORD_HEADER_SIZE).min(first.len());
        first[..have].copy_from_slice(&head[format::RECORD_HEADER_SIZE..format::RECORD_HEADER_SIZE + have]);
        if have < format::CONTROL_INFO_SIZE {
            let rest =
                self.read_vec(offset + (format::RECORD_HEADER_SIZE + have) as u64, format::CONTROL_INFO_SIZE - have)?;
            first[have..].copy_from_slice(&rest);
        }
        let Some(c0) = ControlInfo::decode(&first) else { return Ok(None) };
        // The boundary a record sets lies at or before the record itself
        // (what it frees was written before it).
        if c0.boundary > offset {
            return Ok(None);
        }
        let lay = format::control_layout(&c0);
        // The payload (a step's copies and tree nodes) must be whole: a
        // step's record torn by a power loss before its sync is not one.
        let Some((meta, crc)) =
            self.sealed(salt, offset, h, lay.length, lay.payload_start, c0.payload_bytes, c0.payload_crc)?
        else {
            return Ok(None);
        };
        let Some(control) = ControlInfo::decode(&meta[format::RECORD_HEADER_SIZE..]).filter(|c| *c == c0) else {
            return Ok(None);
        };
        let info = CommitInfo::default();
        let ckpt = CheckpointInfo::default();
        let sum = SummaryInfo::default();
        let payload_start = lay.payload_start;
        Ok(Some(Rec { offset, h, info, control, ckpt, sum, payload_start, crc, meta: Arc::new(meta) }))
    }

    /// The metadata (bytes up to `payload_start`) and trailer crc of a
    /// CONTROL or INDEX record at `offset` with header `h`, whose info says
    /// its length is `length` and its payload `payload_bytes` with crc
    /// `payload_crc`: None unless that length is the header's, the trailer
    /// and header check out over the metadata, and the payload is whole
    /// (its own crc), so that a record torn by a power loss is no record.
    #[allow(clippy::too_many_arguments)]
    fn sealed(
        &self,
        salt: u64,
        offset: u64,
        h: RecordHeader,
        length: u64,
        payload_start: u64,
        payload_bytes: u64,
        payload_crc: u32,
    ) -> Result<Option<(Vec<u8>, u32)>> {
        if length != h.length {
            return Ok(None);
        }
        let meta = self.read_vec(offset, payload_start as usize)?;
        let t = self.read_vec(offset + h.length - format::TRAILER_SIZE as u64, format::TRAILER_SIZE)?;
        if !format::check_trailer(salt, offset, &meta, &t) || RecordHeader::decode(salt, &meta) != Some(h) {
            return Ok(None);
        }
        let payload = self.read_vec(offset + payload_start, payload_bytes as usize)?;
        if format::salted_crc(salt, &[&payload]) != payload_crc {
            return Ok(None);
        }
        Ok(Some((meta, format::trailer_crc(&t))))
    }

    /// `read_record` for an INDEX record (format 4), whose header `h` and
    /// first bytes `head` were read: well-formed only when its payload (the
    /// nodes) is whole, as a CONTROL record's, so that a record torn by a
    /// power loss is no record.
    fn read_index(&self, salt: u64, offset: u64, h: RecordHeader, head: &[u8]) -> Result<Option<Rec>> {
        if self.format() < format::FORMAT_V4 || h.frames != 0 || h.flags != 0 || h.patch_words != 0 {
            return Ok(None);
        }
        let end = format::RECORD_HEADER_SIZE + format::INDEX_INFO_SIZE;
        let Some(i0) = head.get(format::RECORD_HEADER_SIZE..end).and_then(IndexInfo::decode) else {
            return Ok(None);
        };
        let lay = format::index_layout(&i0);
        let Some((meta, crc)) =
            self.sealed(salt, offset, h, lay.length, lay.payload_start, i0.payload_bytes, i0.payload_crc)?
        else {
            return Ok(None);
        };
        if IndexInfo::decode(&meta[format::RECORD_HEADER_SIZE..]) != Some(i0) {
            return Ok(None);
        }
        let (info, control, ckpt) = (CommitInfo::default(), ControlInfo::default(), CheckpointInfo::default());
        let (sum, payload_start) = (SummaryInfo::default(), lay.payload_start);
        Ok(Some(Rec { offset, h, info, control, ckpt, sum, payload_start, crc, meta: Arc::new(meta) }))
    }

    /// The record's map entries, decoded from the metadata its crc checked
    /// (no I/O).
    pub(crate) fn read_entries(&self, rec: &Rec) -> Result<Vec<Entry>> {
        let n = rec.info.entries as usize;
        let start = format::RECORD_HEADER_SIZE + format::COMMIT_INFO_SIZE;
        let b = &rec.meta[start..start + n * format::ENTRY_SIZE];
        Ok(b.chunks_exact(format::ENTRY_SIZE).map(Entry::decode).collect())
    }

    /// Checks a commit's entries for structure and, for frames written by its
    /// own transaction (offset >= txn_start), their crc. Err(description).
    /// A format-4 checkpoint has no entry table: its frames are found
    /// through its tree (the slots at or after `txn_start`), when there are
    /// frames to check.
    pub(crate) fn check_commit(
        &self,
        rec: &Rec,
        entries: &[Entry],
        txn_start: u64,
    ) -> Result<Option<(u64, String, String)>> {
        self.check_commit_as(rec, entries, txn_start, false)
    }

    /// [`Log::check_commit`] of a commit no claim covers (recovery's and
    /// the forward read's step 4): with `txn_start`, a RECYCLED commit's
    /// images are checked wherever they lie, those in recycled slots
    /// before `txn_start` too (FORMAT.md, "Recovery of a format-4 log").
    /// Only there: a slot an older commit recycled may hold a newer
    /// commit's frame since (it died and was recycled again), which is
    /// not damage.
    pub(crate) fn check_unclaimed_commit(
        &self,
        rec: &Rec,
        entries: &[Entry],
        txn_start: u64,
    ) -> Result<Option<(u64, String, String)>> {
        self.check_commit_as(rec, entries, txn_start, true)
    }

    fn check_commit_as(
        &self,
        rec: &Rec,
        entries: &[Entry],
        txn_start: u64,
        slots: bool,
    ) -> Result<Option<(u64, String, String)>> {
        if rec.is_checkpoint() && entries.is_empty() && txn_start != u64::MAX {
            let own: Vec<Entry> = match self.tree_entries(rec, txn_start)? {
                Ok(all) => all.into_iter().filter(|e| patch::position(e.offset) >= txn_start).collect(),
                Err(d) => return Ok(Some((d.offset, d.expected, d.found))),
            };
            return self.check_entries(rec, &own, txn_start, false);
        }
        self.check_entries(rec, entries, txn_start, slots)
    }

    /// Every non-zero slot of checkpoint `rec`'s tree as map entries, in
    /// page order, its nodes read and checked (`index::walk_read`); with
    /// `floor` > 512, only the slots of its nodes at or after `floor` (its
    /// own nodes when `floor` is its transaction's start: all that can name
    /// its own frames; the older nodes it shares may lie below the boundary,
    /// freed, and a recovery that read them there dropped a returned revert).
    pub(crate) fn tree_entries(
        &self,
        rec: &Rec,
        floor: u64,
    ) -> Result<std::result::Result<Vec<Entry>, crate::tree::Damage>> {
        let root = crate::tree::Root { offset: rec.ckpt.root, crc: rec.ckpt.root_crc, depth: rec.ckpt.depth };
        let mut out = Vec::new();
        let read = |at: u64, len: usize| self.read_vec(at, len).ok();
        let walked = crate::index::walk_read(&read, rec.offset, floor, root, &mut |pgno, s| {
            out.push(Entry { pgno, crc: s.crc, offset: s.offset });
        });
        Ok(walked.map(|()| out))
    }

    /// [`Log::check_commit`] of the entries given.
    fn check_entries(
        &self,
        rec: &Rec,
        entries: &[Entry],
        txn_start: u64,
        slots: bool,
    ) -> Result<Option<(u64, String, String)>> {
        let ps = rec.h.page_size as u64;
        let payload_end = rec.payload_end();
        let patches = self.format() >= format::FORMAT_VERSION;
        let recycled = slots && rec.h.flags & format::FLAG_RECYCLED != 0 && self.format() >= format::FORMAT_V4;
        let mut prev = 0u32;
        for (i, e) in entries.iter().enumerate() {
            let at =
                rec.offset + (format::RECORD_HEADER_SIZE + format::COMMIT_INFO_SIZE + i * format::ENTRY_SIZE) as u64;
            if e.pgno <= prev || e.pgno > rec.info.db_pages {
                return Ok(Some((
                    at,
                    format!("page number in {}..={}", prev + 1, rec.info.db_pages),
                    e.pgno.to_string(),
                )));
            }
            if rec.is_full() && e.pgno != i as u32 + 1 {
                return Ok(Some((at, format!("full map entry for page {}", i + 1), e.pgno.to_string())));
            }
            prev = e.pgno;
            if e.offset == 0 {
                if e.crc != 0 {
                    return Ok(Some((at + 4, format!("crc 0 for zero page {}", e.pgno), format!("{:#010x}", e.crc))));
                }
                continue;
            }
            let is_patch = patches && patch::is_patch(e.offset);
            let pos = if is_patch { patch::position(e.offset) } else { e.offset };
            let need = if is_patch { patch::HEADER as u64 } else { ps };
            if pos < format::FIRST_RECORD
                || (!is_patch && e.offset % format::frame_align(self.format()) != 0)
                || pos.saturating_add(need) > payload_end
            {
                return Ok(Some((at, format!("frame offset below {payload_end}"), e.offset.to_string())));
            }
            // A RECYCLED commit (format 4) wrote every image it names,
            // some into recycled slots before its transaction's start
            // (FORMAT.md, "Frames in recycled slots"): each is checked
            // where it lies, so a frame torn in a slot makes the commit
            // unfinished, never a page served wrong.
            let own_slot = recycled && !is_patch && txn_start != u64::MAX;
            if pos >= txn_start || own_slot {
                // Written by this transaction: a patch is in this record's
                // own patch area.
                if is_patch && pos < rec.patches_start() {
                    return Ok(Some((
                        at,
                        format!("a patch in the patch area from {}", rec.patches_start()),
                        e.offset.to_string(),
                    )));
                }
                let page = match self.entry_page(e.offset, ps as u32, Some(payload_end))? {
                    Ok(p) => p,
                    Err(bad) => return Ok(Some(bad)),
                };
                let crc = format::frame_crc(&page);
                if crc != e.crc {
                    return Ok(Some((
                        pos,
                        format!(
                            "{} crc {:#010x} (page {})",
                            if is_patch { "patched page" } else { "frame" },
                            e.crc,
                            e.pgno
                        ),
                        format!("{crc:#010x}"),
                    )));
                }
            }
        }
        if rec.is_full() && entries.len() as u32 != rec.info.db_pages {
            return Ok(Some((
                rec.offset,
                format!("{} full map entries", rec.info.db_pages),
                entries.len().to_string(),
            )));
        }
        Ok(None)
    }

    /// Finds the last record ending at or below `below` (at 8-aligned
    /// positions, scanning back) whose header and trailer check out.
    pub(crate) fn find_last_record(&self, salt: u64, len: u64, below: u64) -> Result<Option<Rec>> {
        let mut end = below.min(len) - below.min(len) % 8;
        // Pre-allocated zeros (up to 4 MiB, written out: no hole to ask the
        // file system about) end most logs: skip them first, in windows
        // growing from 4 KiB to 64 KiB into one buffer that stays in the
        // CPU's cache (fresh 1 MiB buffers cost a page fault per 4 KiB on
        // top of the copy). A record never ends inside trailing zeros (its
        // trailer ends in its magic), so the search resumes at the first
        // multiple of 8 past the last non-zero byte, as it would without
        // this pass.
        const ZERO_WINDOW: u64 = 64 << 10;
        let mut zbuf = vec![0u8; ZERO_WINDOW as usize];
        let mut zw = 4 << 10;
        while end > format::FIRST_RECORD {
            let lo = end.saturating_sub(zw).max(format::FIRST_RECORD);
            zw = (zw * 2).min(ZERO_WINDOW);
            let b = &mut zbuf[..(end - lo) as usize];
            self.read_into(lo, b)?;
            match last_nonzero(b) {
                None => end = lo,
                Some(nz) => {
                    end = end.min(format::align_up(lo + nz as u64 + 1, 8));
                    break;
                }
            }
        }
        // The last trailer usually ends right there: read a small window
        // first, doubling up to 1 MiB while the search goes on.
        const WINDOW: u64 = 1 << 20;
        let mut window = 4 << 10;
        while end >= format::FIRST_RECORD + format::TRAILER_SIZE as u64 {
            let lo = end.saturating_sub(window).max(format::FIRST_RECORD);
            window = (window * 2).min(WINDOW);
            let buf = self.read_vec(lo, (end - lo) as usize)?;
            // A trailer's last 8 bytes hold its magic, so a record never ends
            // inside trailing zeros (pre-allocated space): skip them a word
            // at a time.
            let Some(nz) = last_nonzero(&buf) else {
                if lo == format::FIRST_RECORD {
                    break;
                }
                end = lo;
                continue;
            };
            let mut e = end.min(format::align_up(lo + nz as u64 + 1, 8));
            while e >= lo + format::TRAILER_SIZE as u64 {
                let t = &buf[(e - format::TRAILER_SIZE as u64 - lo) as usize..(e - lo) as usize];
                if t[format::TR_MAGIC..format::TR_MAGIC + 4] == format::TRAILER_MAGIC {
                    let ro = format::trailer_record_offset(t);
                    if ro < e {
                        if let Some(rec) = self.read_record(salt, ro, len)? {
                            if rec.end() == e {
                                return Ok(Some(rec));
                            }
                        }
                    }
                }
                e -= 8;
            }
            if lo == format::FIRST_RECORD {
                break;
            }
            end = e;
        }
        Ok(None)
    }

    /// Checks a commit's entries for structure only (no frame crcs): what
    /// building a page map from it relies on. A record can pass its crcs and
    /// still be nonsense only if crafted; it must give an error, not a panic
    /// or an allocation larger than the file.
    pub(crate) fn check_map_structure(&self, rec: &Rec, entries: &[Entry], len: u64) -> Result<()> {
        if rec.info.db_pages as u64 > format::max_db_pages(len) {
            return Err(self.corrupt(
                rec.offset,
                format!("at most {} database pages for a {len}-byte log", format::max_db_pages(len)),
                rec.info.db_pages.to_string(),
            ));
        }
        match self.check_commit(rec, entries, u64::MAX)? {
            None => Ok(()),
            Some((offset, expected, found)) => Err(self.corrupt(offset, expected, found)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::last_nonzero;

    #[test]
    fn last_nonzero_finds_the_last_nonzero_byte() {
        assert_eq!(last_nonzero(&[]), None);
        assert_eq!(last_nonzero(&[0; 100]), None);
        assert_eq!(last_nonzero(&[0; 3 * 4096 + 5]), None);
        for len in [1usize, 7, 8, 9, 64, 100, 4095, 4096, 4097, 3 * 4096 + 5] {
            let near_edges = |at: &usize| len < 200 || at % 4096 < 2 || at % 4096 > 4093 || at % 61 == 0;
            for at in (0..len).filter(near_edges) {
                let mut b = vec![0u8; len];
                b[at] = 1;
                if at > 0 {
                    b[0] = 2;
                }
                assert_eq!(last_nonzero(&b), Some(at), "len {len} at {at}");
            }
        }
    }
}
