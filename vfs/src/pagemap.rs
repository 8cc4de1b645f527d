//! The in-memory page map of one version: page number → (frame offset, crc).
//!
//! It is persistent (copy-on-write by chunk): deriving the next version's map
//! clones a vector of `Arc`s and copies only the chunks a commit touches, so
//! snapshots held by readers cost nothing to keep and a commit costs
//! O(pages / CHUNK + pages changed). Lookup is O(1): two index operations.

use std::sync::Arc;

use crate::format::Entry;

const CHUNK_BITS: u32 = 9;
pub const CHUNK: usize = 1 << CHUNK_BITS; // 512 entries per chunk

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Slot {
    /// File offset of the page image; 0 means the page reads as zeros.
    pub offset: u64,
    pub crc: u32,
}

#[derive(Debug, Clone, Default)]
pub struct PageMap {
    pages: u32,
    chunks: Vec<Arc<[Slot; CHUNK]>>,
}

impl PageMap {
    pub fn new() -> PageMap {
        PageMap::default()
    }

    /// Number of pages in the database (pages beyond read as absent).
    pub fn pages(&self) -> u32 {
        self.pages
    }

    /// The slot of page `pgno` (1-based), if it is within the database.
    #[inline]
    pub fn get(&self, pgno: u32) -> Option<Slot> {
        if pgno == 0 || pgno > self.pages {
            return None;
        }
        let i = (pgno - 1) as usize;
        Some(self.chunks[i >> CHUNK_BITS][i & (CHUNK - 1)])
    }

    /// Sets the number of pages; pages past the new end are forgotten and
    /// pages added read as zeros until set.
    pub fn set_pages(&mut self, pages: u32) {
        let need = (pages as usize).div_ceil(CHUNK);
        if pages < self.pages {
            // Clear forgotten slots in the last kept chunk so that a later
            // growth reads them as zeros.
            let start = pages as usize;
            let end = (self.pages as usize).min(need * CHUNK);
            if start < end {
                let c = Arc::make_mut(&mut self.chunks[start >> CHUNK_BITS]);
                for i in start..end {
                    c[i & (CHUNK - 1)] = Slot::default();
                }
            }
        }
        self.chunks.resize_with(need, || Arc::new([Slot::default(); CHUNK]));
        self.pages = pages;
    }

    /// Sets page `pgno` (which must be within `pages()`).
    pub fn set(&mut self, pgno: u32, slot: Slot) {
        assert!(pgno >= 1 && pgno <= self.pages, "page {pgno} outside map of {} pages", self.pages);
        let i = (pgno - 1) as usize;
        Arc::make_mut(&mut self.chunks[i >> CHUNK_BITS])[i & (CHUNK - 1)] = slot;
    }

    /// Applies a commit's entries after resizing to `db_pages`.
    pub fn apply(&mut self, db_pages: u32, entries: &[Entry]) {
        self.set_pages(db_pages);
        for e in entries {
            self.set(e.pgno, Slot { offset: e.offset, crc: e.crc });
        }
    }

    /// Appends the pages up to `limit` (and both maps' ends) whose slots
    /// differ in `self` and `other`, in increasing order. Chunks the two
    /// share (one allocation: neither version's commits touched it since
    /// they parted) are skipped unread, so the cost is the chunks either
    /// side touched, not the database.
    pub(crate) fn differing(&self, other: &PageMap, limit: u32, out: &mut Vec<u32>) {
        let limit = limit.min(self.pages).min(other.pages) as usize;
        for (ci, (x, y)) in self.chunks.iter().zip(&other.chunks).enumerate() {
            let start = ci * CHUNK;
            if start >= limit {
                break;
            }
            if Arc::ptr_eq(x, y) {
                continue;
            }
            let n = CHUNK.min(limit - start);
            out.extend((0..n).filter(|&j| x[j] != y[j]).map(|j| (start + j + 1) as u32));
        }
    }

    /// All entries, for writing a full map.
    pub fn entries(&self) -> Vec<Entry> {
        (1..=self.pages)
            .map(|p| {
                let s = self.get(p).unwrap();
                Entry { pgno: p, crc: s.crc, offset: s.offset }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_derived_map_does_not_change_the_original() {
        let mut a = PageMap::new();
        a.set_pages(1000);
        a.set(1, Slot { offset: 512, crc: 1 });
        a.set(1000, Slot { offset: 1024, crc: 2 });
        let mut b = a.clone();
        b.set(1, Slot { offset: 2048, crc: 3 });
        assert_eq!(a.get(1).unwrap().offset, 512);
        assert_eq!(b.get(1).unwrap().offset, 2048);
        assert_eq!(b.get(1000).unwrap().offset, 1024);
        assert_eq!(a.get(1001), None);
        assert_eq!(a.get(0), None);
    }

    #[test]
    fn shrinking_then_growing_reads_zero_pages() {
        let mut a = PageMap::new();
        a.set_pages(10);
        for p in 1..=10 {
            a.set(p, Slot { offset: p as u64 * 512, crc: p });
        }
        let keep = a.clone();
        a.set_pages(3);
        a.set_pages(10);
        assert_eq!(a.get(3).unwrap().offset, 3 * 512);
        assert_eq!(a.get(4).unwrap(), Slot::default());
        assert_eq!(keep.get(4).unwrap().offset, 4 * 512);
    }
}
