//! The format-4 tail of a commit (`commit.rs` does the rest): the commit
//! record of a delta or a checkpoint, the checksum and the new version's
//! map (a tree and an overlay, `index.rs`), without any per-page structure
//! proportional to the database.
//!
//! # Invariants
//! 1. A checkpoint's transaction ends `[INDEX] CONTROL COMMIT`, all three
//!    written in one `write_at` after its spills, each naming the commit it
//!    follows; the CONTROL record ends where the COMMIT starts.
//! 2. A checkpoint COMMIT's checkpoint info names its tree's root and the
//!    INDEX and CONTROL records of its own transaction (offset and crc), so
//!    each is found and checked from the commit alone.
//! 3. A delta commit names its newest map commit in `full map offset` (its
//!    checkpoint, or the summary after it), as format 3's deltas name their
//!    full map; a summary names its checkpoint.
//! 4. A checkpoint has no entry table (its tree, which includes its own
//!    pages, is its map): opening a version reads its checkpoint's
//!    metadata in constant size, however many pages the checkpoint's
//!    transaction wrote. Recovery finds its frames through the tree.
//! 6. A summary (FORMAT.md, "Summary commits") is a delta whose entry
//!    table is every page its version's slot differs from its
//!    checkpoint's in (`TreeMap::summary_entries`), followed by its summary
//!    info naming the checkpoint and the control state in force; the new
//!    map is rebuilt from the checkpoint with those entries, as a reader
//!    that opens at it builds it.
//! 5. ALIGNED (`aligned_flag`) is set only on format-4 records with
//!    frames; the layout, and so every frame's offset, is computed with the
//!    flags the header is written with, at the record's final offset (an
//!    aligned record's length depends on where it starts).

use crate::commit::Prepared;
use crate::error::Result;
use crate::format::{self, CommitInfo, ControlInfo, Entry, Layout, RecordHeader};
use crate::index::TreeMap;
use crate::log::{now_us, Durability, Link, Log, State};
use crate::pagemap::Slot;
use crate::tree::Root;
use crate::txn::WriteTxn;
use crate::version::{Pages, Version};

/// Records with at least this many page images are ALIGNED in format 4
/// whatever the policy (docs/format-4.md, "What changes on disk"): the gap
/// is under a slot, at most 1/32 of the frames (≤ 3.2% with the metadata),
/// and a bulk load stays freeable slot by slot if a policy comes later.
pub(crate) const ALIGN_MIN_FRAMES: u32 = 32;

/// The ALIGNED flag bit (`format::aligned_bit`) a writer sets on a record of
/// `kind` with `frames` page images of `page_size` bytes in a log of
/// `format`, `policy`: a retention policy is in force (writer policy,
/// FORMAT.md "Aligned page images"): never in format 3 or before, nor on a
/// record without frames; always at [`ALIGN_MIN_FRAMES`] frames; below that
/// only under a policy, at every page size: the retirement step frees a
/// dead frame in place (`retire_step.rs`), which gives blocks back only
/// when the frame fills its blocks, and until dead slots are reused a
/// one-frame commit is padded to one (docs/format-4.md, "What remains",
/// step 2). Without a policy a one-row commit stays unpadded.
pub(crate) fn aligned_flag(format: u32, kind: u8, frames: u32, _page_size: u32, policy: bool) -> u8 {
    let align = format >= format::FORMAT_V4 && frames > 0 && (frames >= ALIGN_MIN_FRAMES || policy);
    if align {
        format::aligned_bit(kind)
    } else {
        0
    }
}

/// Where a transaction's in-memory page goes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Place {
    /// The record's k-th page image.
    Frame(usize),
    /// A patch at this offset in the record's patch area.
    Patch(usize),
    /// A recycled slot at this file offset (format 4 under a policy,
    /// `slots.rs`): written before the record.
    Slot(u64),
}

/// What `prepare_commit` worked out for a format-4 commit.
pub(crate) struct Commit4<'a> {
    /// The version whose pages the commit changes.
    pub(crate) base: &'a Version,
    /// The commit it follows: `base`, or the latest for a revert.
    pub(crate) chain: &'a Version,
    pub(crate) salt: u64,
    pub(crate) version: u64,
    /// The COMMIT record's offset.
    pub(crate) offset: u64,
    /// Where the transaction's INDEX record (or its CONTROL record) starts.
    pub(crate) index_at: u64,
    /// A checkpoint's new nodes and its tree's root.
    pub(crate) index: Option<(Vec<u8>, Root)>,
    /// A checkpoint's CONTROL record.
    pub(crate) control: Option<(ControlInfo, Vec<u8>)>,
    /// Its free list, when not the state's (`slots.rs` invariant 4).
    pub(crate) control_free: Option<Vec<crate::freelist::FreeRange>>,
    pub(crate) new_slots: Vec<(u32, Slot)>,
    pub(crate) lay: Layout,
    /// Entries the layout counted (a summary's: `TreeMap::summary_len`).
    pub(crate) lay_entries: u32,
    pub(crate) flags: u8,
    pub(crate) db_pages: u32,
    pub(crate) page_size: u32,
    pub(crate) counter: u32,
    pub(crate) images: &'a [Box<[u8]>],
    /// Where each image of `images` goes.
    pub(crate) place: &'a [Place],
    pub(crate) area: &'a [u8],
    pub(crate) patch_words: u16,
    pub(crate) image_count: usize,
}

impl Log {
    pub(crate) fn finish_commit4(
        &self,
        st: &mut State,
        txn: &WriteTxn,
        c: Commit4<'_>,
        durability: Durability,
    ) -> Result<Option<Prepared>> {
        let base = c.base;
        let same_ps = c.page_size == base.page_size;
        let checkpoint = c.flags & format::FLAG_CHECKPOINT != 0;
        // The checksum: the base's, less the pages cut off and the old
        // slots of the pages changed, plus the new ones.
        let mut checksum = if same_ps { base.checksum } else { 0 };
        if same_ps {
            for p in (c.db_pages + 1)..=base.db_pages() {
                if let Some(s) = base.map_slot(p)?.filter(|s| s.offset != 0) {
                    checksum ^= format::page_hash(p, s.crc);
                }
            }
        }
        for &(pgno, slot) in &c.new_slots {
            if same_ps && pgno <= base.db_pages() {
                if let Some(old) = base.map_slot(pgno)?.filter(|s| s.offset != 0) {
                    checksum ^= format::page_hash(pgno, old.crc);
                }
            }
            if slot.offset != 0 {
                checksum ^= format::page_hash(pgno, slot.crc);
            }
        }
        let entries: Vec<Entry> =
            c.new_slots.iter().map(|(p, s)| Entry { pgno: *p, crc: s.crc, offset: s.offset }).collect();
        // A summary's entries are its map relative to its checkpoint
        // (invariant 6): the overlay since it, its own pages applied.
        let summary = match (&base.map, c.flags & format::FLAG_SUMMARY != 0) {
            (Pages::Tree(t), true) => {
                let all = t.summary_entries(c.db_pages, &c.new_slots, usize::MAX).expect("no bound");
                debug_assert_eq!(all.len(), c.lay_entries as usize, "the layout counted the summary's entries");
                Some((t, all))
            }
            _ => None,
        };
        // A checkpoint has no entry table (invariant 4): its tree holds them.
        let table: &[Entry] = match &summary {
            _ if checkpoint => &[],
            Some((_, all)) => all,
            None => &entries,
        };
        // A summary names its checkpoint, a delta the newest map commit
        // (invariant 3).
        let map_offset = match (&base.map, checkpoint) {
            (_, true) => c.offset,
            (Pages::Tree(t), false) if summary.is_some() => t.checkpoint,
            (Pages::Tree(t), false) => t.map_at,
            (Pages::Full(_), false) => unreachable!("a format-4 commit after a full map is a checkpoint"),
        };
        let info = CommitInfo {
            timestamp_us: now_us(),
            db_pages: c.db_pages,
            entries: table.len() as u32,
            horizon_version: st.horizon.version,
            horizon_offset: st.horizon.offset,
            horizon_crc: st.horizon.crc,
            full_map_offset: map_offset,
            checksum,
            page1_counter: c.counter,
        };
        let lay = c.lay;
        let mut buf = vec![0u8; lay.length as usize];
        RecordHeader {
            kind: format::KIND_COMMIT,
            flags: c.flags,
            length: lay.length,
            version: c.version,
            prev_commit: c.chain.commit_offset,
            prev_crc: c.chain.commit_crc,
            page_size: c.page_size,
            frames: c.image_count as u32,
            patch_words: c.patch_words,
        }
        .encode(c.salt, &mut buf);
        info.encode(&mut buf[format::RECORD_HEADER_SIZE..]);
        let eb = format::RECORD_HEADER_SIZE + format::COMMIT_INFO_SIZE;
        for (i, e) in table.iter().enumerate() {
            e.encode(&mut buf[eb + i * format::ENTRY_SIZE..]);
        }
        if let Some((t, _)) = &summary {
            let sum = format::SummaryInfo {
                checkpoint: t.checkpoint,
                checkpoint_crc: t.ckpt_crc,
                control: st.control.offset,
                control_crc: st.control.crc,
            };
            sum.encode(&mut buf[eb + table.len() * format::ENTRY_SIZE..]);
        }
        let trailer_crc = |rec: &[u8]| format::trailer_crc(&rec[rec.len() - format::TRAILER_SIZE..]);
        let mut head: Vec<u8> = Vec::new();
        let mut control = None;
        let mut root = None;
        if checkpoint {
            let (nodes, r) = c.index.expect("a checkpoint has its tree");
            let (cinfo, crec) = c.control.expect("a checkpoint has its CONTROL record");
            let prev = Link { version: c.chain.number, offset: c.chain.commit_offset, crc: c.chain.commit_crc };
            let (h, ck) = crate::checkpoint::head(c.salt, c.index_at, prev, c.page_size, &nodes, r, &crec, c.offset);
            head = h;
            control = Some((ck.control, ck.control_crc, cinfo));
            ck.encode(&mut buf[eb + table.len() * format::ENTRY_SIZE..]);
            root = Some(r);
        }
        let mut slot_writes = Vec::new();
        for (data, place) in c.images.iter().zip(c.place) {
            if let Place::Slot(o) = place {
                slot_writes.push((*o, data.to_vec()));
            }
            if let Place::Frame(k) = place {
                let at = lay.payload_start as usize + k * c.page_size as usize;
                buf[at..at + c.page_size as usize].copy_from_slice(data);
            }
        }
        let pa = lay.patches_start as usize;
        buf[pa..pa + c.area.len()].copy_from_slice(c.area);
        let (meta, rest) = buf.split_at_mut(lay.payload_start as usize);
        let tl = rest.len();
        format::encode_trailer(c.salt, c.offset, meta, &mut rest[tl - format::TRAILER_SIZE..]);
        let link = Link { version: c.version, offset: c.offset, crc: trailer_crc(&buf) };
        let end = c.offset + lay.length;
        let txn_bytes = end - txn.start();
        let write_at = c.offset - head.len() as u64;
        if !head.is_empty() {
            buf.splice(0..0, head);
        }
        // The new version's map; `install` points it at the mapping that
        // covers the commit.
        let map = match (&base.map, root) {
            (_, Some(r)) => TreeMap::checkpoint(c.db_pages, Some(r), c.offset, link.crc, st.mapping.clone(), end),
            (Pages::Tree(t), None) if summary.is_some() => {
                let mut t = t.clone();
                let commits = t.commits + 1;
                t.summary(c.db_pages, table, commits, c.offset, st.mapping.clone(), end);
                t
            }
            (Pages::Tree(t), None) => {
                let mut t = t.clone();
                t.apply(c.db_pages, &entries, st.mapping.clone(), end);
                t
            }
            (Pages::Full(_), None) => unreachable!("a format-4 commit after a full map is a checkpoint"),
        };
        let (sync, mark) = self.sync_and_mark(st, durability, txn_bytes);
        Ok(Some(Prepared {
            buf,
            write_at,
            control,
            control_free: c.control_free,
            slot_writes,
            offset: c.offset,
            end,
            link,
            full: checkpoint,
            n_entries: table.len() as u32,
            new_slots: c.new_slots,
            map: Pages::Tree(map),
            checksum,
            timestamp_us: info.timestamp_us,
            page_size: c.page_size,
            alloc_end: st.alloc_end,
            salt: c.salt,
            counter: c.counter,
            sync,
            mark,
            durable_wait: false,
            txn_bytes,
            durability,
        }))
    }
}
