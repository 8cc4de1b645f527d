//! The log's control state (format 4, docs/format-4.md): its retention
//! policy, the boundary `B` below which the log is freed, the oldest kept
//! version, and the base tree through which every reference below `B` is
//! redirected.
//!
//! # Invariants
//! 1. A reference to an item below `B` (a map slot, a patch's base) is
//!    read where it points only by the rule of invariant 6; otherwise it is
//!    redirected through the straggler table or the base tree (the slot of
//!    the same page), and the referencing entry's crc checks the result, as
//!    it checks any page.
//! 2. The base tree's slots name items at or after `B` only, a patch's base
//!    included (the reclaimer relocates a patch together with its base).
//! 3. A `Control` is immutable: a new CONTROL record makes a new one, and a
//!    version keeps the one it was made with for as long as it lives (its
//!    reader's epoch lock keeps the bytes it redirects to).
//! 4. The straggler table relocates by offset what lies below `B` and a
//!    kept version reaches but the base tree cannot redirect: an index-tree
//!    node that a kept checkpoint's tree reaches (read at its copy, byte for
//!    byte the same node; its parent's crc checks it as before), a kept
//!    revert's entry that the oldest kept version does not share, the base
//!    a kept patch names (read at its copy; the referencing entry's crc
//!    checks the page it makes as always). It is consulted before the base
//!    tree. Entries are sorted by old offset, strictly increasing (an old
//!    offset is tagged as in map entries for a patch; the new one is the
//!    copy's position), and every copy lies at or after `B` in a CONTROL
//!    record, a patch's copy naming a base at or after `B` too.
//!
//! 5. The free list (`freelist.rs`) is parsed and checked with the
//!    straggler table and carried by a copy; nothing here reads through it.
//! 6. Read in place (FORMAT.md, "The boundary"): a map slot below `B` that
//!    the straggler table does not hold and whose page has no base-tree
//!    slot (a zero slot) is read where it points when it names a page image
//!    (no patch tag) at a multiple of `format::slot_align(page size)`: a
//!    frame of an ALIGNED record that a step left in place. So is a patch's
//!    base below `B` whose page has no base-tree slot. The entry's crc checks
//!    the page as always: a hole there (a punched frame a held version still
//!    reaches) fails it and is damage, never a page of zeros. Any other
//!    reference below `B` that nothing redirects is damage. A base-tree slot
//!    that exists but has another crc is damage too (not read in place): a
//!    step that leaves a page's item in place clears the page's base-tree
//!    slot (`reclaim.rs` invariant 7), so the two never disagree.
//!
//! Phase 1 (this file): the base tree is read whole into memory when a
//! control state is loaded (its size is the pages relocated, at most the
//! database's); step 5 of the design reads it on demand.

use std::collections::HashMap;
use std::sync::Arc;

use crate::format::{self, ControlInfo};
use crate::freelist::{self, FreeRange};
use crate::pagemap::Slot;
use crate::patch;
use crate::retention::Policy;
use crate::tree;
use crate::version::Mapping;

/// One control state: a CONTROL record and its base tree.
#[derive(Debug, Default)]
pub struct Control {
    /// The CONTROL record's offset (0: none; the state of a log that has no
    /// CONTROL record) and trailer crc.
    pub offset: u64,
    pub crc: u32,
    pub info: ControlInfo,
    /// The base tree's slots, by page.
    base: HashMap<u32, Slot>,
    /// For base-tree slots that are patches: the offset of their base image.
    bases: HashMap<u32, u64>,
    /// The straggler table: (old offset, new offset), sorted (invariant 4).
    moved: Arc<Vec<(u64, u64)>>,
    /// The free list (invariant 5).
    free: Arc<Vec<FreeRange>>,
    /// What this state reads in place below `B` (invariant 6), once
    /// measured (`Log::in_place_items`): the lowest item's offset (`B`:
    /// none) and the bytes of those items.
    pub(crate) in_place: std::sync::OnceLock<(u64, u64)>,
}

/// The state of a log that has no CONTROL record, for readers that have no
/// version at hand.
pub(crate) fn none_ref() -> &'static Control {
    static NONE: std::sync::LazyLock<Control> = std::sync::LazyLock::new(Control::none);
    &NONE
}

impl Control {
    /// The state of a log that has no CONTROL record.
    pub fn none() -> Control {
        Control { info: ControlInfo { boundary: format::FIRST_RECORD, ..Default::default() }, ..Default::default() }
    }

    /// Loads the state of the CONTROL record at `offset` (crc `crc`, info
    /// `info`), reading its base tree through `map`, which covers every
    /// byte below `end`. Err: the base tree is damaged.
    /// `table`: the record's straggler table (`info.stragglers` entries)
    /// followed by its free list (`info.free_entries`).
    pub(crate) fn load(
        offset: u64,
        crc: u32,
        info: ControlInfo,
        table: &[u8],
        map: &Mapping,
        end: u64,
    ) -> Result<Control, tree::Damage> {
        let moved = Arc::new(parse_table(offset, &info, table)?);
        let rest = table.get(info.stragglers as usize * format::STRAGGLER_SIZE..).unwrap_or(&[]);
        let free = Arc::new(freelist::parse(offset, info.free_entries as usize, rest)?);
        let mut c = Control {
            offset,
            crc,
            info,
            base: HashMap::new(),
            bases: HashMap::new(),
            moved,
            free,
            in_place: Default::default(),
        };
        if info.base_root == 0 {
            return Ok(c);
        }
        let src = MapSource { map, end };
        let root = tree::Root { offset: info.base_root, crc: info.base_crc, depth: info.base_depth };
        tree::walk(&src, root, &mut |pgno, s| {
            c.base.insert(pgno, Slot { offset: s.offset, crc: s.crc });
        })?;
        for (&pgno, s) in &c.base {
            if patch::is_patch(s.offset) {
                let at = patch::position(s.offset);
                let base = src.node_bytes_at(at, 8).and_then(patch::base_of).ok_or_else(|| tree::Damage {
                    offset: at,
                    expected: format!("a patch of page {pgno} named by the base tree"),
                    found: "bytes past the end of the log".into(),
                })?;
                c.bases.insert(pgno, base);
            }
        }
        Ok(c)
    }

    /// The same state, now held by the CONTROL record at `offset` (a copy
    /// written before a full map, whose info may differ only in what a copy
    /// updates: the oldest version's record while the log starts).
    pub(crate) fn copied(&self, offset: u64, crc: u32, info: ControlInfo) -> Control {
        Control {
            offset,
            crc,
            info,
            base: self.base.clone(),
            bases: self.bases.clone(),
            moved: self.moved.clone(),
            free: self.free.clone(),
            // The same frames, unless the copy names another oldest version
            // or boundary (then measured again).
            in_place: if (info.oldest_version, info.boundary) == (self.info.oldest_version, self.info.boundary) {
                self.in_place.clone()
            } else {
                Default::default()
            },
        }
    }

    /// [`Control::copied`] with another free list (a checkpoint's copy
    /// leaves out the slots recycled since: `slots.rs` invariant 4).
    pub(crate) fn copied_with_free(&self, offset: u64, crc: u32, info: ControlInfo, free: Vec<FreeRange>) -> Control {
        let mut c = self.copied(offset, crc, info);
        c.info.free_entries = free.len() as u32;
        c.free = Arc::new(free);
        c
    }

    /// The free list, sorted by offset (invariant 5).
    pub fn free(&self) -> &[FreeRange] {
        &self.free
    }

    /// Where the item at `old` (below `B`) was relocated to, if it was.
    #[inline]
    pub fn moved_to(&self, old: u64) -> Option<u64> {
        self.moved.binary_search_by_key(&old, |e| e.0).ok().map(|i| self.moved[i].1)
    }

    /// The straggler table, sorted by old offset.
    pub fn table(&self) -> &[(u64, u64)] {
        &self.moved
    }

    /// The end of the CONTROL record (0: none): relocated items lie below.
    pub fn end(&self) -> u64 {
        if self.offset == 0 {
            0
        } else {
            self.offset + format::control_layout(&self.info).length
        }
    }

    /// `B`: bytes below it are freed (or about to be).
    pub fn boundary(&self) -> u64 {
        self.info.boundary.max(format::FIRST_RECORD)
    }

    /// Whether any reference can need redirecting.
    pub fn redirects(&self) -> bool {
        self.boundary() > format::FIRST_RECORD
    }

    pub fn epoch(&self) -> u64 {
        self.info.epoch
    }

    pub fn policy(&self) -> Policy {
        let some = |v: u64| (v != 0).then_some(v);
        Policy {
            versions: some(self.info.keep_versions),
            age_secs: some(self.info.keep_seconds),
            bytes: some(self.info.keep_bytes),
        }
    }

    /// The slot page `pgno` (of a version of `page_size`-byte pages) reads
    /// through when its map slot is `s`: `s` itself at or after `B`; below
    /// it, the straggler table's copy, else the base tree's slot for the
    /// page, which must make the same page (the same crc), else `s` itself
    /// when it is read in place (invariant 6). None: a reference below `B`
    /// that nothing redirects and that is not read in place (damage).
    #[inline]
    pub fn slot(&self, pgno: u32, s: Slot, page_size: u32) -> Option<Slot> {
        if s.offset == 0 || patch::position(s.offset) >= self.boundary() {
            return Some(s);
        }
        if let Some(new) = self.moved_to(s.offset) {
            return Some(Slot { offset: new | (s.offset & patch::PATCH_TAG), crc: s.crc });
        }
        match self.base.get(&pgno) {
            Some(b) => Some(*b).filter(|b| b.crc == s.crc && patch::position(b.offset) >= self.boundary()),
            None => in_place(s.offset, page_size).then_some(s),
        }
    }

    /// Where the base image of a patch of page `pgno` (`page_size`-byte
    /// pages) lies when the patch names `base`: `base` itself at or after
    /// `B`; below it, the straggler table's copy, else the base tree slot's
    /// image, or that slot's patch's base; else `base` itself when it is
    /// read in place (invariant 6). None: none of these.
    #[inline]
    pub fn base(&self, pgno: u32, base: u64, page_size: u32) -> Option<u64> {
        if base >= self.boundary() {
            return Some(base);
        }
        if let Some(new) = self.moved_to(base) {
            return Some(new);
        }
        if self.base.contains_key(&pgno) {
            return self.base_tree_base(pgno);
        }
        in_place(base, page_size).then_some(base)
    }

    /// Whether page `pgno`'s item at `offset` below `B` is read in place by
    /// this state (invariant 6): neither the straggler table nor the base
    /// tree redirects it, and it may be a frame of an ALIGNED record.
    pub fn reads_in_place(&self, pgno: u32, offset: u64, page_size: u32) -> bool {
        offset != 0
            && offset < self.boundary()
            && self.moved_to(offset).is_none()
            && !self.base.contains_key(&pgno)
            && in_place(offset, page_size)
    }

    /// Where the base tree alone resolves a patch base of page `pgno`
    /// below `B` (its slot's image, or that slot's patch's base).
    pub(crate) fn base_tree_base(&self, pgno: u32) -> Option<u64> {
        let s = self.base.get(&pgno)?;
        let at = if patch::is_patch(s.offset) { *self.bases.get(&pgno)? } else { s.offset };
        // Never a freed byte (invariant 2): a read there would find zeros
        // that a frame checked earlier in this process would not re-check.
        (at >= self.boundary()).then_some(at)
    }

    /// The base tree's slots (for the reclaimer).
    pub(crate) fn base_slots(&self) -> &HashMap<u32, Slot> {
        &self.base
    }
}

/// Whether a reference below `B` that nothing redirects may be read where
/// it points (invariant 6): a page image (no patch tag) at a multiple of
/// `format::slot_align(page_size)`, the place of a frame of an ALIGNED
/// record.
#[inline]
pub fn in_place(offset: u64, page_size: u32) -> bool {
    offset >= format::FIRST_RECORD && !patch::is_patch(offset) && offset % format::slot_align(page_size) == 0
}

/// The straggler table of the CONTROL record at `offset`, whose bytes (all
/// `info.stragglers` entries) start `table`: sorted strictly by old offset,
/// every new offset 8-aligned, at or after the boundary and before the
/// record's end (invariant 4). Anything else is damage naming the record.
fn parse_table(offset: u64, info: &ControlInfo, table: &[u8]) -> Result<Vec<(u64, u64)>, tree::Damage> {
    let n = info.stragglers as usize;
    let bad = |found: String| tree::Damage {
        offset,
        expected: "a straggler table sorted by old offset, each copy in the CONTROL record".into(),
        found,
    };
    let Some(b) = table.get(..n * format::STRAGGLER_SIZE) else {
        return Err(bad(format!("{} bytes for {n} entries", table.len())));
    };
    let end = offset.saturating_add(format::control_layout(info).length);
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(n);
    for e in b.chunks_exact(format::STRAGGLER_SIZE) {
        let old = u64::from_le_bytes(e[..8].try_into().expect("8 bytes"));
        let new = u64::from_le_bytes(e[8..16].try_into().expect("8 bytes"));
        if out.last().is_some_and(|l| l.0 >= old) || new % 8 != 0 || new < info.boundary || new >= end {
            return Err(bad(format!("the entry {old} -> {new}")));
        }
        out.push((old, new));
    }
    Ok(out)
}

/// The straggler table's bytes, as a CONTROL record holds it.
pub(crate) fn encode_table(table: &[(u64, u64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(table.len() * format::STRAGGLER_SIZE);
    for (old, new) in table {
        out.extend_from_slice(&old.to_le_bytes());
        out.extend_from_slice(&new.to_le_bytes());
    }
    out
}

/// The log's committed bytes as a [`tree::NodeSource`].
pub(crate) struct MapSource<'a> {
    pub(crate) map: &'a Mapping,
    /// Bytes below this are committed and in the file.
    pub(crate) end: u64,
}

impl MapSource<'_> {
    fn node_bytes_at(&self, offset: u64, len: usize) -> Option<&[u8]> {
        let end = offset.checked_add(len as u64)?;
        (end <= self.end && end <= self.map.cap && self.map.mmap.is_some()).then(|| self.map.slice(offset, len))
    }
}

impl tree::NodeSource for MapSource<'_> {
    fn node_bytes(&self, offset: u64, len: usize) -> Option<&[u8]> {
        self.node_bytes_at(offset, len)
    }
}

#[cfg(test)]
mod tests {
    use super::{encode_table, parse_table};
    use crate::format::{self, ControlInfo};

    #[test]
    fn the_straggler_table_round_trips_and_a_bad_one_is_refused() {
        let info = |n: usize| ControlInfo {
            epoch: 2,
            boundary: 8192,
            stragglers: n as u32,
            payload_bytes: 8 << 10,
            ..Default::default()
        };
        // The record at 9000: its copies, and earlier ones, lie in [8192, its end).
        let at = 9000;
        let t = vec![(600, 9200), (2049, 9216), (4096, 12000)];
        assert_eq!(parse_table(at, &info(3), &encode_table(&t)).ok(), Some(t.clone()));
        assert_eq!(parse_table(at, &info(0), &[]).ok(), Some(vec![]));
        let end = at + format::control_layout(&info(1)).length;
        for bad in [
            vec![(2049, 9216), (600, 9200)], // not increasing
            vec![(600, 9200), (600, 9216)],  // twice
            vec![(600, 8184)],               // a copy below the boundary
            vec![(600, 9201)],               // not 8-aligned (a copy's tag is its key's)
            vec![(600, end)],                // past the record
        ] {
            assert!(parse_table(at, &info(bad.len()), &encode_table(&bad)).is_err(), "{bad:?}");
        }
        assert!(parse_table(at, &info(3), &encode_table(&t)[..40]).is_err(), "a short table");
    }
}
