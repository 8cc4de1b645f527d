//! [`FrameTags`]: which frame each page number's last checked image is, so
//! that a frame is checked against its crc once per process, not on every
//! read (`Mapping::is_verified`, `Mapping::mark_verified`).
//!
//! A table of [`SLOTS`] 32-bit tags, page `pgno` in slot `pgno mod SLOTS`:
//! `crc ^ mix(offset, len, pgno)` of the frame last checked for that page
//! (0 = none). Shared by every `Mapping` of one log (a remap does not copy
//! it). Bounded: 1 MiB however large the database (issue 21: a long-lived
//! reader's memory), where one tag per page number grew by 1 MiB per GiB of
//! database (4 KiB pages); a database of up to 262,144 pages (1 GiB of
//! 4 KiB pages) has a slot per page, as before.
//!
//! # Invariants
//! 1. A slot's tag is only ever set to the tag of a frame that was checked
//!    (its bytes' crc equal to `crc`, over `len` bytes at `offset`) or
//!    written by this process, for page `pgno`; so a tag that matches names
//!    a checked frame unless two different (offset, len, crc, pgno) give
//!    one tag (below).
//! 2. The same frame (offset and length) named with another crc never
//!    matches: for a fixed (offset, len, pgno) the tag is `crc` xor a
//!    constant, a bijection of `crc`. So a crafted second entry naming a
//!    checked frame with another crc is checked again, always.
//! 3. The length is part of the tag: a frame checked as a 4 KiB page is not
//!    trusted as a 1 KiB page at the same offset (VACUUM can change the page
//!    size within one log, and frames of both sizes coexist), nor the other
//!    way round. So is the page number: a frame checked for page 3 is
//!    checked again if a crafted entry names it for page 4, also when the
//!    two pages share a slot.
//! 4. A page re-pointed to a new frame (a commit, another version), or a
//!    page whose slot last held another page's tag, matches only by chance
//!    (2^-32: a 64-bit mix of offset, length and page number folded to 32
//!    bits, xored with two crcs), so the frame is checked on its first read
//!    but for that chance (tags per 512-byte unit of an append-only log
//!    were 0 for every new frame: the one respect in which this is weaker,
//!    taken for the memory). A tag that would be 0 is never stored and never
//!    matches.
//! 5. One tag a slot: readers of two versions that map a page to two frames
//!    re-check it when they alternate, and so do reads alternating between
//!    two pages `SLOTS` apart (a crc of one page each time); correctness is
//!    unaffected, only that cost.
//! 6. Memory: the table is allocated zeroed at the first mark (an empty
//!    mapping, of which a log makes three, costs nothing), so a memory page
//!    of tags is touched only when a page number in it is checked: at most
//!    `SLOTS * 4` bytes (1 MiB).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// Slots: one a page for a database of up to 262,144 pages.
pub(crate) const SLOTS: usize = 1 << 18;

/// The tags of one log's checked frames, by page number (module comment).
#[derive(Default)]
pub(crate) struct FrameTags {
    slots: OnceLock<Box<[AtomicU32]>>,
}

/// The tag of the frame of `len` bytes at `offset` checked against `crc`
/// as page `pgno`'s (invariants 2–4); 0 is "none".
#[inline]
fn tag(offset: u64, len: usize, crc: u32, pgno: u32) -> u32 {
    // splitmix64's finalizer over the offset, the length and the page.
    let mut x = offset.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ (len as u64 | (pgno as u64) << 32).wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    crc ^ (x >> 32) as u32
}

#[inline]
fn slot(pgno: u32) -> usize {
    pgno as usize & (SLOTS - 1)
}

impl FrameTags {
    /// Whether the frame of `len` bytes at `offset` is the one this process
    /// last checked against `crc` for page `pgno`.
    #[inline]
    pub(crate) fn is_checked(&self, pgno: u32, offset: u64, len: usize, crc: u32) -> bool {
        let t = tag(offset, len, crc, pgno);
        t != 0 && self.slots.get().is_some_and(|s| s[slot(pgno)].load(Ordering::Relaxed) == t)
    }

    /// Remembers that the frame of `len` bytes at `offset` was checked
    /// against `crc` (or written by this process) as page `pgno`'s image.
    pub(crate) fn mark(&self, pgno: u32, offset: u64, len: usize, crc: u32) {
        let t = tag(offset, len, crc, pgno);
        if t == 0 {
            return; // never matches (invariant 4): checked on every read
        }
        self.slots.get_or_init(zeroed)[slot(pgno)].store(t, Ordering::Relaxed);
    }

    /// Bytes allocated for tags (invariant 6).
    pub(crate) fn allocated(&self) -> usize {
        self.slots.get().map_or(0, |s| std::mem::size_of_val(&**s))
    }
}

/// The table of zero tags from the allocator (calloc: its memory pages are
/// only touched when a tag in them is set).
fn zeroed() -> Box<[AtomicU32]> {
    let zeros: Box<[u32]> = vec![0u32; SLOTS].into_boxed_slice();
    // SAFETY: AtomicU32 has the same size, alignment and bit validity as
    // u32 (std docs), so a boxed slice of one is a boxed slice of the other.
    unsafe { Box::from_raw(Box::into_raw(zeros) as *mut [AtomicU32]) }
}

#[cfg(test)]
mod tests {
    use super::{tag, FrameTags, SLOTS};

    #[test]
    fn a_tag_matches_only_the_frame_length_crc_and_page_it_was_set_for() {
        let t = FrameTags::default();
        assert!(!t.is_checked(7, 4096, 4096, 0x1234), "nothing checked yet");
        t.mark(7, 4096, 4096, 0x1234);
        assert!(t.is_checked(7, 4096, 4096, 0x1234));
        assert!(!t.is_checked(7, 4096, 4096, 0x1235), "same frame, another crc");
        assert!(!t.is_checked(7, 4096, 1024, 0x1234), "same offset and crc, another page size");
        assert!(!t.is_checked(8, 4096, 4096, 0x1234), "another page");
        assert!(!t.is_checked(7, 8192, 4096, 0x1234), "page 7 re-pointed to another frame");
        t.mark(7, 8192, 4096, 0x99);
        assert!(t.is_checked(7, 8192, 4096, 0x99));
        assert!(!t.is_checked(7, 4096, 4096, 0x1234), "one tag a page: the older frame is checked again");
        // Page numbers at the top, and a tag that would be 0.
        t.mark(u32::MAX, 512, 512, 5);
        assert!(t.is_checked(u32::MAX, 512, 512, 5));
        let zero_crc = tag(1536, 512, 0, 9);
        assert_eq!(tag(1536, 512, zero_crc, 9), 0);
        t.mark(9, 1536, 512, zero_crc);
        assert!(!t.is_checked(9, 1536, 512, zero_crc), "a 0 tag never matches");
    }

    #[test]
    fn pages_sharing_a_slot_never_pass_for_each_other() {
        let t = FrameTags::default();
        let (p, q) = (5u32, 5 + SLOTS as u32);
        t.mark(p, 4096, 4096, 0x1234);
        assert!(t.is_checked(p, 4096, 4096, 0x1234));
        assert!(!t.is_checked(q, 4096, 4096, 0x1234), "p's checked frame named for q (invariant 3)");
        t.mark(q, 8192, 4096, 0x77);
        assert!(t.is_checked(q, 8192, 4096, 0x77));
        assert!(!t.is_checked(p, 4096, 4096, 0x1234), "one tag a slot: p is checked again");
    }

    /// Invariant 6: 1 MiB of tags at most, whatever page numbers are
    /// checked (one tag per page number took 1 MiB per 262,144 of them).
    #[test]
    fn the_tags_stay_within_one_mebibyte_for_any_page_numbers() {
        let t = FrameTags::default();
        assert_eq!(t.allocated(), 0, "an empty mapping costs nothing");
        for pgno in (1..=u32::MAX).step_by(4093) {
            t.mark(pgno, pgno as u64 * 4096, 4096, pgno ^ 0x5a5a);
            assert!(t.is_checked(pgno, pgno as u64 * 4096, 4096, pgno ^ 0x5a5a));
        }
        assert!(t.allocated() <= 1 << 20, "{} bytes of tags", t.allocated());
        assert_eq!(t.allocated(), SLOTS * 4);
    }

    #[test]
    fn for_one_frame_every_crc_has_its_own_tag() {
        // Invariant 2: a bijection of crc for a fixed frame and page.
        let base = tag(1 << 30, 4096, 0, 3);
        for crc in [1u32, 2, 0xffff, 0x1_0000, 0xdead_beef, u32::MAX] {
            assert_eq!(tag(1 << 30, 4096, crc, 3), base ^ crc);
        }
    }
}
