//! The leaf table: the index-tree leaves this process has checked, held in
//! one flat table by leaf number (`first / 16`), each with the path that
//! last reached it, so that a lookup repeating a path costs one probe where
//! a descent costs one hash probe and pointer chase per level (issue 21:
//! point SELECTs on format 4 against format 3's flat map).
//!
//! # Invariants
//! 1. An entry holds the slots of the leaf read at `at` that was checked
//!    (`tree::check`) against `crc` as the leaf for the pages from `first`:
//!    only checked leaves enter, and one is handed out only to a reader
//!    asking for that same (`at`, `crc`, `first`).
//! 2. An entry's tag ([`Tag`]: root offset, crc and depth, control state)
//!    is set only by a lookup that reached this leaf from that root under
//!    that control state, every node on the way placed and checked as
//!    `index::lookup` places and checks it. Nodes are immutable and where
//!    a node is read depends on the control state alone (the version's end
//!    only bounds the root, which the caller checks before asking), so the
//!    same tag and page reach the same leaf: [`LeafTable::via`] may skip
//!    the descent. Another root (a new checkpoint, a revert) or another
//!    control state (a reclamation step) never matches an older tag, so
//!    such a lookup descends again, reading any node at its new place.
//! 3. Bounded: at most [`MAX_LEAVES`] entries of 240 bytes (3.75 MiB),
//!    allocated zeroed (pages no entry touched cost no memory), sized to
//!    the largest leaf number looked up so far (a power of two, at least
//!    [`MIN_LEAVES`]). Past that, leaf numbers share an entry (`n` modulo
//!    the size): the newer replaces the older, and forgetting only costs a
//!    read and a check. The node cache halves the bound for a tree of
//!    more than 4 GiB of 4 KiB pages (`mapping.rs`, `LARGE_TREE`), giving
//!    the memory to inner nodes; the table is then dropped and grows again
//!    up to the new bound ([`LeafTable::shrink_to`]).

use crate::tree::{self, Slot};

/// Entries at most: every leaf of a tree of 262,144 pages (1 GiB of 4 KiB
/// pages), in 3.75 MiB.
pub(crate) const MAX_LEAVES: usize = 16_384;
/// Entries at least (a small database's tree).
pub(crate) const MIN_LEAVES: usize = 64;

// One entry: 30 words.
const W_AT: usize = 0; // where the leaf was read; 0 = empty
const W_CRCS: usize = 1; // the leaf's crc | the tag's root crc << 32
const W_FIRST: usize = 2; // first page | the tag's root depth << 32
const W_ROOT: usize = 3; // the tag's root offset; 0 = no tag
const W_CONTROL: usize = 4; // the tag's control state: its offset
const W_CONTROL_CRC: usize = 5; // ... and its crc
const W_OFFSETS: usize = 6; // 16 slot offsets
const W_SLOT_CRCS: usize = W_OFFSETS + tree::LEAF_SLOTS; // 16 slot crcs, two a word
const WORDS: usize = W_SLOT_CRCS + tree::LEAF_SLOTS / 2;

type Entry = [u64];

/// The path a lookup took: the tree's root and the control state its nodes
/// were placed under (invariant 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tag {
    pub(crate) root: tree::Root,
    /// The control state's record offset and crc (0, 0 for a state that
    /// redirects nothing: every such state places every node where it was
    /// written).
    pub(crate) control: (u64, u32),
}

/// Checked leaves by leaf number (see the module's invariants).
pub(crate) struct LeafTable {
    /// The entries, [`WORDS`] words each, back to back (a vector of words
    /// of zero is a zeroed allocation: its untouched pages cost nothing,
    /// which a vector of arrays is not).
    words: Vec<u64>,
    /// Entries at most: [`MAX_LEAVES`], or fewer for a test (a power of
    /// two).
    limit: usize,
}

impl Default for LeafTable {
    fn default() -> Self {
        LeafTable { words: Vec::new(), limit: MAX_LEAVES }
    }
}

impl LeafTable {
    #[inline]
    fn index(&self, first: u32) -> Option<usize> {
        let n = self.capacity();
        (n > 0).then(|| (first as usize / tree::LEAF_SLOTS) & (n - 1))
    }

    #[inline]
    fn entry(&self, i: usize) -> &Entry {
        &self.words[i * WORDS..(i + 1) * WORDS]
    }

    #[inline]
    fn entry_mut(&mut self, i: usize) -> &mut Entry {
        &mut self.words[i * WORDS..(i + 1) * WORDS]
    }

    /// Page `pgno`'s slot, if the entry of its leaf was reached by `tag`
    /// (invariant 2). The caller has checked that the root lies where the
    /// version may read it.
    #[inline]
    pub(crate) fn via(&self, tag: &Tag, pgno: u32) -> Option<Slot> {
        let first = pgno & !(tree::LEAF_SLOTS as u32 - 1);
        let e = self.entry(self.index(first)?);
        let tagged = e[W_ROOT] == tag.root.offset
            && e[W_ROOT] != 0
            && e[W_FIRST] == first as u64 | (tag.root.depth as u64) << 32
            && (e[W_CRCS] >> 32) as u32 == tag.root.crc
            && e[W_CONTROL] == tag.control.0
            && e[W_CONTROL_CRC] == tag.control.1 as u64;
        tagged.then(|| slot(e, (pgno - first) as usize))
    }

    /// The entry of the leaf read at `at`, checked against `crc`, for the
    /// pages from `first` (invariant 1).
    #[inline]
    fn find(&self, at: u64, crc: u32, first: u32) -> Option<&Entry> {
        let e = self.entry(self.index(first)?);
        (e[W_AT] == at && at != 0 && e[W_CRCS] as u32 == crc && e[W_FIRST] as u32 == first).then_some(e)
    }

    /// Slot `i` of the leaf read at `at` (see [`LeafTable::find`]).
    #[inline]
    pub(crate) fn slot_of(&self, at: u64, crc: u32, first: u32, i: usize) -> Option<Slot> {
        self.find(at, crc, first).map(|e| slot(e, i))
    }

    /// The bytes of the leaf read at `at`, as they were checked: a leaf's
    /// bytes are its level, first page and slots, every other byte zero
    /// (`tree::structure`), so they are made again from the entry.
    pub(crate) fn bytes(&self, at: u64, crc: u32, first: u32) -> Option<Vec<u8>> {
        let e = self.find(at, crc, first)?;
        let mut node = tree::Node::empty(0, first);
        for (i, s) in node.slots.iter_mut().enumerate() {
            *s = slot(e, i);
        }
        let mut b = Vec::with_capacity(tree::LEAF_SIZE);
        node.encode_into(&mut b);
        Some(b)
    }

    /// Holds the leaf read at `at` whose bytes `b` were checked against
    /// `crc` as the leaf for the pages from `first`. Its tag is kept when
    /// the entry already holds that leaf, else cleared.
    pub(crate) fn insert(&mut self, at: u64, crc: u32, first: u32, b: &[u8]) {
        if b.len() != tree::LEAF_SIZE || at == 0 {
            return;
        }
        self.grow_for(first);
        let i = self.index(first).expect("grown");
        let e = self.entry_mut(i);
        if e[W_AT] == at && e[W_CRCS] as u32 == crc && e[W_FIRST] as u32 == first {
            return;
        }
        e.fill(0);
        e[W_AT] = at;
        e[W_CRCS] = crc as u64;
        e[W_FIRST] = first as u64;
        for k in 0..tree::LEAF_SLOTS {
            let s = tree::slot_at(b, k);
            e[W_OFFSETS + k] = s.offset;
            e[W_SLOT_CRCS + k / 2] |= (s.crc as u64) << (32 * (k % 2));
        }
    }

    /// Records that a lookup reached the leaf read at `at` (crc `crc`, pages
    /// from `first`) by `tag` (invariant 2); nothing when the entry holds
    /// another leaf.
    pub(crate) fn tag(&mut self, at: u64, crc: u32, first: u32, tag: &Tag) {
        let Some(i) = self.index(first) else { return };
        let e = self.entry_mut(i);
        if e[W_AT] != at || at == 0 || e[W_CRCS] as u32 != crc || e[W_FIRST] as u32 != first {
            return;
        }
        e[W_CRCS] = crc as u64 | (tag.root.crc as u64) << 32;
        e[W_FIRST] = first as u64 | (tag.root.depth as u64) << 32;
        e[W_ROOT] = tag.root.offset;
        e[W_CONTROL] = tag.control.0;
        e[W_CONTROL_CRC] = tag.control.1 as u64;
    }

    /// An empty table of at most `limit` entries (rounded up to a power
    /// of two, at least [`MIN_LEAVES`]), for tests.
    pub(crate) fn with_limit(limit: usize) -> LeafTable {
        LeafTable { words: Vec::new(), limit: limit.max(MIN_LEAVES).next_power_of_two() }
    }

    /// Lowers the bound to `limit` entries (a power of two, at least
    /// [`MIN_LEAVES`]). A larger table is dropped first, everything in it
    /// forgotten (which costs a read and a check of each leaf again), so
    /// that the process never holds the old and the new table at once (a
    /// peak of both would count in its peak RSS).
    pub(crate) fn shrink_to(&mut self, limit: usize) {
        self.limit = limit.max(MIN_LEAVES).next_power_of_two();
        if self.capacity() > self.limit {
            self.words = Vec::new();
        }
    }

    /// Bytes allocated.
    pub(crate) fn allocated(&self) -> usize {
        self.words.capacity() * 8
    }

    /// Entries allocated.
    #[inline]
    pub(crate) fn capacity(&self) -> usize {
        self.words.len() / WORDS
    }

    /// Makes room for leaf number `first / 16`, up to the bound
    /// ([`MAX_LEAVES`] or less, invariant 3); entries held move to their
    /// new index.
    fn grow_for(&mut self, first: u32) {
        let want = (first as usize / tree::LEAF_SLOTS + 1).next_power_of_two().clamp(MIN_LEAVES, self.limit);
        if want <= self.capacity() {
            return;
        }
        let old = std::mem::replace(&mut self.words, vec![0u64; want * WORDS]);
        for e in old.chunks_exact(WORDS).filter(|e| e[W_AT] != 0) {
            let i = self.index(e[W_FIRST] as u32).expect("grown");
            self.entry_mut(i).copy_from_slice(e);
        }
    }
}

#[inline]
fn slot(e: &Entry, i: usize) -> Slot {
    Slot { offset: e[W_OFFSETS + i], crc: (e[W_SLOT_CRCS + i / 2] >> (32 * (i % 2))) as u32 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(first: u32, seed: u64) -> (Vec<u8>, u32, Vec<Slot>) {
        let mut n = tree::Node::empty(0, first);
        for (i, s) in n.slots.iter_mut().enumerate() {
            if first + i as u32 != 0 {
                *s = Slot { offset: 4096 * (seed + i as u64 + 1), crc: (seed as u32).wrapping_mul(31) ^ i as u32 };
            }
        }
        let mut b = Vec::new();
        let crc = n.encode_into(&mut b);
        (b, crc, n.slots)
    }

    fn tag(root: u64, control: u64) -> Tag {
        Tag { root: tree::Root { offset: root, crc: root as u32 ^ 0x55, depth: 3 }, control: (control, 9) }
    }

    #[test]
    fn a_leaf_is_handed_out_only_as_the_leaf_it_was_checked_as_and_made_again_byte_for_byte() {
        let mut t = LeafTable::default();
        let (b, crc, slots) = leaf(32, 1);
        assert_eq!(t.slot_of(1 << 20, crc, 32, 0), None, "empty");
        t.insert(1 << 20, crc, 32, &b);
        assert_eq!(t.slot_of(1 << 20, crc, 32, 5), Some(slots[5]));
        assert_eq!(t.slot_of(1 << 20, crc ^ 1, 32, 5), None, "another crc");
        assert_eq!(t.slot_of((1 << 20) + 8, crc, 32, 5), None, "read elsewhere");
        assert_eq!(t.slot_of(1 << 20, crc, 48, 5), None, "another leaf number");
        assert_eq!(t.bytes(1 << 20, crc, 32), Some(b));
        assert_eq!(t.via(&tag(1 << 30, 0), 37), None, "no lookup reached it yet");
    }

    #[test]
    fn a_tag_serves_only_its_own_root_and_control_state() {
        let mut t = LeafTable::default();
        let (b, crc, slots) = leaf(160, 2);
        t.insert(8192, crc, 160, &b);
        let old = tag(1 << 30, 0);
        t.tag(8192, crc, 160, &old);
        assert_eq!(t.via(&old, 163), Some(slots[3]));
        assert_eq!(t.via(&old, 176), None, "another leaf");
        // A new checkpoint (another root), a step (another control state),
        // the same root read at another depth or crc: none is served.
        assert_eq!(t.via(&tag(2 << 30, 0), 163), None);
        assert_eq!(t.via(&tag(1 << 30, 4096), 163), None);
        assert_eq!(t.via(&Tag { control: (0, 8), ..old }, 163), None);
        assert_eq!(t.via(&Tag { root: tree::Root { depth: 4, ..old.root }, ..old }, 163), None);
        assert_eq!(t.via(&Tag { root: tree::Root { crc: 1, ..old.root }, ..old }, 163), None);
        // Another leaf taking the entry drops the tag with it.
        let (b2, crc2, _) = leaf(160, 3);
        t.insert(16384, crc2, 160, &b2);
        assert_eq!(t.via(&old, 163), None);
        // A tag for a leaf the entry does not hold is not recorded.
        t.tag(8192, crc, 160, &old);
        assert_eq!(t.via(&old, 163), None);
        // Reinserting the same leaf keeps its tag.
        let new = tag(3 << 30, 0);
        t.tag(16384, crc2, 160, &new);
        t.insert(16384, crc2, 160, &b2);
        assert!(t.via(&new, 163).is_some());
    }

    #[test]
    fn the_table_grows_to_the_largest_leaf_number_then_shares_entries() {
        let mut t = LeafTable::default();
        let (b, crc, slots) = leaf(16, 4);
        t.insert(4096, crc, 16, &b);
        t.tag(4096, crc, 16, &tag(1 << 30, 0));
        assert_eq!(t.capacity(), MIN_LEAVES);
        let far = 16 * 1000;
        let (b2, crc2, _) = leaf(far, 5);
        t.insert(8192, crc2, far, &b2);
        assert_eq!(t.capacity(), 1024);
        assert_eq!(t.via(&tag(1 << 30, 0), 17), Some(slots[1]), "entries and tags move when the table grows");
        let past = 16 * (MAX_LEAVES as u32 * 4 + 1);
        let (b3, crc3, _) = leaf(past, 6);
        t.insert(12288, crc3, past, &b3);
        assert_eq!(t.capacity(), MAX_LEAVES, "bounded");
        assert!(t.slot_of(12288, crc3, past, 0).is_some());
        assert_eq!(t.slot_of(4096, crc, 16, 0), None, "leaf numbers 1 and 4 × 16,384 + 1 share an entry");
        assert_eq!(WORDS * 8, 240);
    }
}
