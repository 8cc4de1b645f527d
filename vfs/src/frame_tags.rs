//! [`FrameTags`]: which frame each page number's last checked image is, so
//! that a frame is checked against its crc once per process, not on every
//! read (`Mapping::is_verified`, `Mapping::mark_verified`).
//!
//! One 32-bit tag per database page number: `crc ^ mix(offset, len)` of the
//! frame last checked for that page (0 = none). Shared by every `Mapping`
//! of one log (a remap does not copy it), sized by the largest page number
//! seen, not by the log: 4 bytes a page (1 MiB for a 1 GiB database of
//! 4 KiB pages), where a tag per 512-byte unit of the log (2 bytes each)
//! grew with the log's history (~3.9 MiB after reading every page of a
//! 1 GiB log) and was copied whole at every remap.
//!
//! # Invariants
//! 1. A page's tag is only ever set to the tag of a frame that was checked
//!    (its bytes' crc equal to `crc`, over `len` bytes at `offset`) or
//!    written by this process; so a tag that matches names a checked frame
//!    unless two different (offset, len, crc) give one tag (below).
//! 2. The same frame (offset and length) named with another crc never
//!    matches: for a fixed (offset, len) the tag is `crc` xor a constant, a
//!    bijection of `crc`. So a crafted second entry naming a checked frame
//!    with another crc is checked again, always (the per-unit tags matched
//!    one such crc in 65,535).
//! 3. The length is part of the tag: a frame checked as a 4 KiB page is not
//!    trusted as a 1 KiB page at the same offset (VACUUM can change the page
//!    size within one log, and frames of both sizes coexist), nor the other
//!    way round. The page number is the key: a frame checked for page 3 is
//!    checked again if a crafted entry names it for page 4.
//! 4. A page re-pointed to a new frame (a commit, another version) gets
//!    another (offset, crc): its tag matches the old one only by chance
//!    (2^-32, a 64-bit mix of offset and length folded to 32 bits, xored
//!    with two crcs), so the new frame is checked on its first read but
//!    for that chance, where tags per unit of an append-only log were 0
//!    for every new frame: the one respect in which this is weaker, taken
//!    for the memory (an exact 8-byte tag, unit and crc, would hold 2 MiB
//!    at 1 GiB). A tag that would be 0 is never stored and never matches.
//! 5. One tag per page: readers of two versions that map a page to two
//!    frames re-check it when they alternate (a crc of one page each time);
//!    correctness is unaffected, only that cost.
//! 6. Memory: chunks of 2^22 tags (16 MiB of address space, allocated
//!    zeroed: a memory page of tags is touched only when a page number in
//!    it is checked), one made the first time a page number in it is
//!    marked; the chunk directory is 1,024 slots (24 KiB), made at the
//!    first mark (an empty mapping, of which a log makes three, costs
//!    nothing).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// Page numbers per chunk.
const CHUNK_BITS: u32 = 22;
/// Chunks: every u32 page number has a slot.
const CHUNKS: usize = 1 << (32 - CHUNK_BITS);

/// The tags of one log's checked frames, by page number (module comment).
#[derive(Default)]
pub(crate) struct FrameTags {
    chunks: OnceLock<Box<[Chunk]>>,
}

type Chunk = OnceLock<Box<[AtomicU32]>>;

/// The tag of the frame of `len` bytes at `offset` checked against `crc`
/// (invariants 2, 4); 0 is "none".
#[inline]
fn tag(offset: u64, len: usize, crc: u32) -> u32 {
    // splitmix64's finalizer over the offset and the length.
    let mut x = offset.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (len as u64).wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    crc ^ (x >> 32) as u32
}

#[inline]
fn split(pgno: u32) -> (usize, usize) {
    ((pgno >> CHUNK_BITS) as usize, (pgno & ((1 << CHUNK_BITS) - 1)) as usize)
}

impl FrameTags {
    /// Whether the frame of `len` bytes at `offset` is the one this process
    /// last checked against `crc` for page `pgno`.
    #[inline]
    pub(crate) fn is_checked(&self, pgno: u32, offset: u64, len: usize, crc: u32) -> bool {
        let t = tag(offset, len, crc);
        let (c, i) = split(pgno);
        t != 0 && self.chunks.get().and_then(|d| d[c].get()).is_some_and(|chunk| chunk[i].load(Ordering::Relaxed) == t)
    }

    /// Remembers that the frame of `len` bytes at `offset` was checked
    /// against `crc` (or written by this process) as page `pgno`'s image.
    pub(crate) fn mark(&self, pgno: u32, offset: u64, len: usize, crc: u32) {
        let t = tag(offset, len, crc);
        if t == 0 {
            return; // never matches (invariant 4): checked on every read
        }
        let (c, i) = split(pgno);
        let dir = self.chunks.get_or_init(|| (0..CHUNKS).map(|_| Chunk::new()).collect());
        dir[c].get_or_init(zeroed)[i].store(t, Ordering::Relaxed);
    }
}

/// A chunk of zero tags from the allocator (calloc: its memory pages are
/// only touched when a tag in them is set).
fn zeroed() -> Box<[AtomicU32]> {
    let zeros: Box<[u32]> = vec![0u32; 1 << CHUNK_BITS].into_boxed_slice();
    // SAFETY: AtomicU32 has the same size, alignment and bit validity as
    // u32 (std docs), so a boxed slice of one is a boxed slice of the other.
    unsafe { Box::from_raw(Box::into_raw(zeros) as *mut [AtomicU32]) }
}

#[cfg(test)]
mod tests {
    use super::{tag, FrameTags};

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
        // Page numbers in the last chunk, and a tag that would be 0.
        t.mark(u32::MAX, 512, 512, 5);
        assert!(t.is_checked(u32::MAX, 512, 512, 5));
        let zero_crc = tag(1536, 512, 0);
        assert_eq!(tag(1536, 512, zero_crc), 0);
        t.mark(9, 1536, 512, zero_crc);
        assert!(!t.is_checked(9, 1536, 512, zero_crc), "a 0 tag never matches");
    }

    #[test]
    fn for_one_frame_every_crc_has_its_own_tag() {
        // Invariant 2: a bijection of crc for a fixed frame.
        let base = tag(1 << 30, 4096, 0);
        for crc in [1u32, 2, 0xffff, 0x1_0000, 0xdead_beef, u32::MAX] {
            assert_eq!(tag(1 << 30, 4096, crc), base ^ crc);
        }
    }
}
