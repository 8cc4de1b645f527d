//! The log's control state (format 4, docs/format-4.md): its retention
//! policy, the boundary `B` below which the log is freed, the oldest kept
//! version, and the base tree through which every reference below `B` is
//! redirected.
//!
//! # Invariants
//! 1. A reference to an item below `B` (a map slot, a patch's base) is never
//!    read where it points: it is redirected through the base tree (the
//!    slot of the same page), and the referencing entry's crc checks the
//!    result, as it checks any page.
//! 2. The base tree's slots name items at or after `B` only, a patch's base
//!    included (the reclaimer relocates a patch together with its base).
//! 3. A `Control` is immutable: a new CONTROL record makes a new one, and a
//!    version keeps the one it was made with for as long as it lives (its
//!    reader's epoch lock keeps the bytes it redirects to).
//! 4. The straggler table maps references below `B` that the base tree
//!    cannot redirect (a kept revert's entries that the oldest kept version
//!    does not share, and the bases of their patches) to their copies: keys
//!    strictly increasing and below `B`, values at or after `B`, a patch's
//!    copy naming a base at or after `B` too. It is consulted before the
//!    base tree; a reference in it resolves to the same item, and the
//!    referencing entry's crc checks the page it makes as always.
//!
//! Phase 1 (this file): the base tree is read whole into memory when a
//! control state is loaded (its size is the pages relocated, at most the
//! database's); step 5 of the design reads it on demand.

use std::collections::HashMap;
use std::sync::Arc;

use crate::format::{self, ControlInfo};
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
    /// The straggler table: (old offset, new offset), sorted by old offset
    /// (invariant 4). Shared by the copies of this state.
    stragglers: Arc<Vec<(u64, u64)>>,
}

/// The straggler table's bytes (16 per entry, old offset then new, little
/// endian) as entries; `None` when a key is not below `boundary`, a value
/// is below it, or the keys are not strictly increasing.
pub(crate) fn decode_stragglers(b: &[u8], boundary: u64) -> Option<Vec<(u64, u64)>> {
    let mut out = Vec::with_capacity(b.len() / format::STRAGGLER_SIZE);
    for e in b.chunks_exact(format::STRAGGLER_SIZE) {
        let old = u64::from_le_bytes(e[..8].try_into().expect("8 bytes"));
        let new = u64::from_le_bytes(e[8..].try_into().expect("8 bytes"));
        let increasing = out.last().is_none_or(|&(o, _)| o < old);
        if !increasing || old >= boundary || patch::position(new) < boundary {
            return None;
        }
        out.push((old, new));
    }
    Some(out)
}

/// The straggler table as bytes (see `decode_stragglers`).
pub(crate) fn encode_stragglers(t: &[(u64, u64)]) -> Vec<u8> {
    t.iter().flat_map(|&(o, n)| o.to_le_bytes().into_iter().chain(n.to_le_bytes())).collect()
}

impl Control {
    /// The state of a log that has no CONTROL record.
    pub fn none() -> Control {
        Control { info: ControlInfo { boundary: format::FIRST_RECORD, ..Default::default() }, ..Default::default() }
    }

    /// Loads the state of the CONTROL record at `offset` (crc `crc`, info
    /// `info`, and `meta`, its bytes up to its payload, as its crc checked
    /// them), reading its base tree through `map`, which covers every byte
    /// below `end`. Err: the straggler table or the base tree is damaged.
    pub(crate) fn load(
        offset: u64,
        crc: u32,
        info: ControlInfo,
        meta: &[u8],
        map: &Mapping,
        end: u64,
    ) -> Result<Control, tree::Damage> {
        let at = format::RECORD_HEADER_SIZE + format::CONTROL_INFO_SIZE;
        let table = meta.get(at..at + info.stragglers as usize * format::STRAGGLER_SIZE);
        let boundary = info.boundary.max(format::FIRST_RECORD);
        let stragglers = table.and_then(|t| decode_stragglers(t, boundary)).ok_or_else(|| tree::Damage {
            offset: offset + at as u64,
            expected: format!(
                "a straggler table of {} entries, old offsets increasing and below the boundary {boundary}, \
                 new ones at or after it",
                info.stragglers
            ),
            found: "another".into(),
        })?;
        let mut c = Control {
            offset,
            crc,
            info,
            base: HashMap::new(),
            bases: HashMap::new(),
            stragglers: Arc::new(stragglers),
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
            stragglers: self.stragglers.clone(),
        }
    }

    /// The straggler table (invariant 4).
    pub(crate) fn stragglers(&self) -> &[(u64, u64)] {
        &self.stragglers
    }

    /// The copy a reference below `B` to `offset` (tagged as in map entries
    /// for a patch) resolves to through the straggler table.
    #[inline]
    fn straggler(&self, offset: u64) -> Option<u64> {
        if self.stragglers.is_empty() {
            return None;
        }
        self.stragglers.binary_search_by_key(&offset, |&(o, _)| o).ok().map(|i| self.stragglers[i].1)
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

    /// The slot page `pgno` reads through when its map slot is `s`: `s`
    /// itself at or after `B`; below it, the straggler table's copy, else
    /// the base tree's slot for the page, which must make the same page (the
    /// same crc). None: a reference below `B` that neither can redirect
    /// (damage).
    #[inline]
    pub fn slot(&self, pgno: u32, s: Slot) -> Option<Slot> {
        if s.offset == 0 || patch::position(s.offset) >= self.boundary() {
            return Some(s);
        }
        if let Some(new) = self.straggler(s.offset) {
            return Some(Slot { offset: new, crc: s.crc });
        }
        self.base.get(&pgno).copied().filter(|b| b.crc == s.crc && patch::position(b.offset) >= self.boundary())
    }

    /// Where the base image of a patch of page `pgno` lies when the patch
    /// names `base`: `base` itself at or after `B`; below it, the base tree
    /// slot's image, or that slot's patch's base.
    #[inline]
    pub fn base(&self, pgno: u32, base: u64) -> Option<u64> {
        if base >= self.boundary() {
            return Some(base);
        }
        if let Some(new) = self.straggler(base) {
            return Some(new);
        }
        self.base_tree_base(pgno)
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
    use super::{decode_stragglers, encode_stragglers};

    #[test]
    fn the_straggler_table_round_trips_and_a_bad_one_is_refused() {
        let t = vec![(600, 9000), (2049, 9217), (4096, 12000)];
        assert_eq!(decode_stragglers(&encode_stragglers(&t), 8192), Some(t.clone()));
        assert_eq!(decode_stragglers(&[], 8192), Some(vec![]));
        // Keys not increasing, a key at or past the boundary, a value below it.
        for bad in [
            vec![(2049, 9217), (600, 9000)],
            vec![(600, 9000), (600, 9100)],
            vec![(8192, 9000)],
            vec![(600, 8184)],
            vec![(600, 8185 - 8)], // a patch whose position lies below the boundary
        ] {
            assert_eq!(decode_stragglers(&encode_stragglers(&bad), 8192), None, "{bad:?}");
        }
    }
}
