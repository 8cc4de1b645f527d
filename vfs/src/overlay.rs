//! The overlay of a format-4 version (docs/format-4.md, "Reading a
//! version"): the delta entries from its checkpoint to it, held in memory
//! as page → slot, in front of the checkpoint's index tree.
//!
//! # Invariants
//! 1. An entry holds the slot of the newest commit after the checkpoint that
//!    wrote the page; pages no commit after it wrote are not here.
//! 2. `cut` is the least `db pages` of the checkpoint and the commits after
//!    it: a page past `cut` that has no entry was cut off by a truncation
//!    and reads as a zero page, whatever the tree says. A truncation drops
//!    the entries past the new end.
//! 3. Persistent by bucket: a clone shares every bucket, and applying a
//!    commit copies only the buckets it touches, so a reader's snapshot
//!    costs nothing to keep and a commit costs O(buckets + entries it
//!    touches), never O(overlay).
//! 4. Bounded by the writer: a checkpoint is written before the overlay
//!    since the last one would pass [`crate::checkpoint::MAX_OVERLAY`]
//!    entries (a log's first commit and a page-size change excepted: their
//!    entries are all in their checkpoint's tree).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use crate::format::Entry;
use crate::mapping::Mapping;
use crate::pagemap::Slot;

const BUCKETS: usize = 64;

/// How much log a walk reads through the memory map before giving it back.
const RELEASE_EVERY: u64 = 256 << 10;

/// Called as a walk that reads the records since a checkpoint through
/// `mapping` (to build an overlay, or format 3's page map: up to 2,048
/// commits) reaches `pos`, having given back what lay before `released`:
/// once 256 KiB more were read, drops the pages before `pos`
/// from this process's resident set (`MADV_DONTNEED`). The records are
/// read out of the map (a copy of a few hundred bytes each, cheaper than a
/// `pread`), but each page fault maps the page cache around it (large
/// folios: ~200 KiB), so without this the RSS of an open grew by the whole
/// span of log since the checkpoint (issue 21: +3.6 MiB for 930 one-row
/// commits). The pages stay in the page cache. Then it maps the next
/// 256 KiB in one call (`MADV_POPULATE_READ`, Linux 5.14; an error, e.g.
/// past the file's end or on an older kernel, is ignored: it only never
/// raises SIGBUS), where the walk took a page fault every few records:
/// paired, 0.96–0.98× the CPU of an open that replays 1,452 commits at
/// 1 GiB, the same peak RSS. Returns the new mark.
pub(crate) fn release_read(mapping: &Mapping, released: u64, pos: u64) -> u64 {
    const PAGE: u64 = 4096;
    if pos < released.saturating_add(RELEASE_EVERY) {
        return released;
    }
    let Some(m) = mapping.mmap.as_ref() else { return released };
    let from = released / PAGE * PAGE;
    let to = (pos / PAGE * PAGE).min(mapping.cap / PAGE * PAGE);
    if to > from {
        mapping.give_back(from, to);
        // The next stretch's page tables in one call, not a fault every
        // few records (past the file's end: an error, ignored).
        let ahead = RELEASE_EVERY.min(mapping.cap / PAGE * PAGE - to) as usize;
        let _ = m.advise_range(memmap2::Advice::PopulateRead, to as usize, ahead);
    }
    to
}

/// At the walk's end (`pos`): gives back what it read since `released`,
/// and the stretch [`release_read`] mapped ahead of it.
pub(crate) fn release_rest(mapping: &Mapping, released: u64, pos: u64) {
    mapping.give_back(released, pos.max(released.saturating_add(RELEASE_EVERY)));
}

/// A hasher for page numbers: one multiplication (SipHash costs more than
/// the rest of a lookup).
#[derive(Default, Clone, Copy)]
pub(crate) struct PageHasher(u64);

impl Hasher for PageHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn write_u64(&mut self, n: u64) {
        // File offsets are multiples of 8: fold the high bits in.
        self.0 = (n ^ n >> 29).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type Bucket = HashMap<u32, Slot, BuildHasherDefault<PageHasher>>;

#[derive(Debug, Clone, Default)]
pub struct Overlay {
    /// Empty until the first entry; then [`BUCKETS`] buckets, page `p` in
    /// bucket `p % BUCKETS`.
    buckets: Vec<Arc<Bucket>>,
    len: usize,
    cut: u32,
}

impl Overlay {
    /// The empty overlay of a checkpoint of `db_pages` pages.
    pub fn new(db_pages: u32) -> Overlay {
        Overlay { buckets: Vec::new(), len: 0, cut: db_pages }
    }

    /// Distinct pages held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Pages past this that have no entry read as zero pages (invariant 2).
    pub fn cut(&self) -> u32 {
        self.cut
    }

    #[inline]
    pub fn get(&self, pgno: u32) -> Option<Slot> {
        self.buckets.get(pgno as usize % BUCKETS)?.get(&pgno).copied()
    }

    /// Applies a commit of `db_pages` pages following a version of
    /// `prev_pages`, whose entries are `entries`.
    pub fn apply(&mut self, prev_pages: u32, db_pages: u32, entries: &[Entry]) {
        if db_pages < prev_pages {
            self.cut = self.cut.min(db_pages);
            for b in self.buckets.iter_mut() {
                if b.keys().any(|&p| p > db_pages) {
                    let b = Arc::make_mut(b);
                    let before = b.len();
                    b.retain(|&p, _| p <= db_pages);
                    self.len -= before - b.len();
                }
            }
        }
        if entries.is_empty() {
            return;
        }
        if self.buckets.is_empty() {
            self.buckets = (0..BUCKETS).map(|_| Arc::new(Bucket::default())).collect();
        }
        for e in entries {
            let b = Arc::make_mut(&mut self.buckets[e.pgno as usize % BUCKETS]);
            if b.insert(e.pgno, Slot { offset: e.offset, crc: e.crc }).is_none() {
                self.len += 1;
            }
        }
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, Slot)> + '_ {
        self.buckets.iter().flat_map(|b| b.iter().map(|(&p, &s)| (p, s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(pgno: u32, offset: u64) -> Entry {
        Entry { pgno, crc: pgno, offset }
    }

    #[test]
    fn later_entries_win_and_a_clone_keeps_what_it_had() {
        let mut a = Overlay::new(100);
        a.apply(100, 100, &[e(1, 512), e(70, 1024)]);
        let keep = a.clone();
        a.apply(100, 100, &[e(1, 2048), e(2, 4096)]);
        assert_eq!(a.get(1).unwrap().offset, 2048);
        assert_eq!(keep.get(1).unwrap().offset, 512);
        assert_eq!(keep.get(2), None);
        assert_eq!((a.len(), keep.len()), (3, 2));
    }

    #[test]
    fn a_truncation_drops_entries_past_the_end_and_lowers_the_cut() {
        let mut a = Overlay::new(100);
        a.apply(100, 120, &[e(110, 512), e(5, 1024)]);
        assert_eq!(a.cut(), 100, "growing does not move the cut");
        a.apply(120, 50, &[]);
        assert_eq!((a.get(110), a.len(), a.cut()), (None, 1, 50));
        a.apply(50, 120, &[e(110, 4096)]);
        assert_eq!((a.get(110).unwrap().offset, a.cut()), (4096, 50));
    }
}
