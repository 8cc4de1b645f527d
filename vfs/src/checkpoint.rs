//! Writing format-4 checkpoints (docs/format-4.md, "Checkpoints as index
//! trees: the bytes"): when one is due, the tree changes it makes, and its
//! INDEX record. The commit that carries it is `commit.rs`'s; reading it
//! back is `index.rs`'s.
//!
//! # Invariants
//! 1. A checkpoint's tree is its whole page map, its own entries included:
//!    a reader of the checkpoint needs no overlay.
//! 2. The overlay a reader builds never passes [`MAX_OVERLAY`] entries but
//!    (its first commit and a page-size change are checkpoints), and never
//!    spans more than [`MAX_COMMITS`] commits.
//! 3. A checkpoint's new nodes depend on which pages change and on their
//!    slots, never on where they will be written but through the offsets
//!    they are given, so a writer may compute them once to learn their
//!    length and again at their real place (`commit.rs`).

use std::collections::BTreeMap;

use crate::error::Result;
use crate::format::{self, ControlInfo, IndexInfo, RecordHeader};
use crate::log::{Link, Log, State};
use crate::pagemap::Slot;
use crate::tree::{self, Root};
use crate::version::{Pages, Version};

/// A checkpoint is written before the overlay would hold more pages …
pub const MAX_OVERLAY: usize = 8192;
/// … or when max(database pages / 64, [`MIN_COMMITS`]) commits, at most
/// this many, follow the last one: a small database checkpoints more often
/// (its tree is small), so the reclaimer, which never frees past the
/// checkpoint the oldest kept version reads, is never held back long; a
/// checkpoint rewrites only the paths to the pages changed since the last
/// one (at most 8,192 leaves and their parents).
pub const MAX_COMMITS: u64 = 2048;
pub const MIN_COMMITS: u64 = 256;

/// How many commits may follow a checkpoint of a `db_pages`-page database.
pub fn commits_between(db_pages: u32) -> u64 {
    (db_pages as u64 / 64).clamp(MIN_COMMITS, MAX_COMMITS)
}

/// Whether the commit after `base` (of `base_number`) changing `changed`
/// must be a checkpoint.
pub(crate) fn due(base: &Pages, base_number: u64, same_ps: bool, changed: impl Iterator<Item = u32>) -> bool {
    let Pages::Tree(t) = base else { return true }; // the first commit, or a log of full maps
    if base_number == 0 || !same_ps || t.commits + 1 >= commits_between(t.pages) {
        return true;
    }
    let added = changed.filter(|&p| t.overlay.get(p).is_none()).count();
    t.overlay.len() + added > MAX_OVERLAY
}

/// The tree the checkpoint after `base` starts from, and the slots to set
/// in it: the base's tree with its overlay (and the pages its truncations
/// cut) and `new_slots` applied; from nothing (a page-size change, or a
/// base that is not a tree) with every page's slot.
pub(crate) fn changes(
    base: &Version,
    same_ps: bool,
    new_slots: &[(u32, Slot)],
    db_pages: u32,
) -> Result<(Option<Root>, BTreeMap<u32, tree::Slot>)> {
    let ts = |s: Slot| tree::Slot { offset: s.offset, crc: s.crc };
    let mut out = BTreeMap::new();
    let mut root = None;
    if same_ps {
        match &base.map {
            Pages::Tree(t) => {
                root = t.root;
                if t.root.is_some() {
                    // Pages past the overlay's cut read as zeros unless
                    // written since (overlay invariant 2), the tree's old
                    // slots there included, up to the new size (a database
                    // that grows again without writing them reads zeros).
                    for p in t.overlay.cut().saturating_add(1)..=db_pages {
                        out.insert(p, tree::Slot::ZERO);
                    }
                }
                for (p, s) in t.overlay.iter() {
                    if p <= db_pages {
                        out.insert(p, ts(s));
                    }
                }
            }
            _ => {
                let m = base.whole_map()?;
                for p in 1..=m.pages().min(db_pages) {
                    let s = m.get(p).expect("within the map");
                    if s.offset != 0 {
                        out.insert(p, ts(s));
                    }
                }
            }
        }
    }
    for &(p, s) in new_slots {
        out.insert(p, ts(s));
    }
    Ok((root, out))
}

/// The bytes of an INDEX record at `at` holding `nodes` (made by
/// `tree::update` for offset `at + INDEX_META`), in the transaction after
/// commit `prev`, for a checkpoint of page size `page_size`.
pub(crate) fn index_record(salt: u64, at: u64, prev: Link, page_size: u32, nodes: &[u8]) -> Vec<u8> {
    let info = IndexInfo { payload_bytes: nodes.len() as u64, payload_crc: format::salted_crc(salt, &[nodes]) };
    let lay = format::index_layout(&info);
    let mut buf = vec![0u8; lay.length as usize];
    RecordHeader {
        kind: format::KIND_INDEX,
        flags: 0,
        length: lay.length,
        version: prev.version + 1,
        prev_commit: prev.offset,
        page_size,
        frames: 0,
        patch_words: 0,
        prev_crc: prev.crc,
    }
    .encode(salt, &mut buf);
    info.encode(&mut buf[format::RECORD_HEADER_SIZE..]);
    let ps = lay.payload_start as usize;
    buf[ps..ps + nodes.len()].copy_from_slice(nodes);
    let (meta, rest) = buf.split_at_mut(ps);
    let tl = rest.len();
    format::encode_trailer(salt, at, meta, &mut rest[tl - format::TRAILER_SIZE..]);
    buf
}

/// Where an INDEX record's nodes start, from the record's offset.
pub const INDEX_META: u64 = (format::RECORD_HEADER_SIZE + format::INDEX_INFO_SIZE) as u64;

/// The length of an INDEX record holding `nodes` bytes (0: none is written).
pub fn index_len(nodes: usize) -> u64 {
    if nodes == 0 {
        0
    } else {
        INDEX_META + nodes as u64 + format::TRAILER_SIZE as u64
    }
}

/// What a checkpoint's place in its transaction depends on.
pub(crate) struct Plan {
    pub(crate) salt: u64,
    /// The commit it follows.
    pub(crate) prev: Link,
    /// Where its INDEX record goes (after the transaction's spills).
    pub(crate) index_at: u64,
    pub(crate) page_size: u32,
    pub(crate) same_ps: bool,
    pub(crate) db_pages: u32,
    /// Its CONTROL record's info.
    pub(crate) info: ControlInfo,
}

/// A checkpoint placed: its COMMIT's offset, its tree's new nodes (the
/// INDEX record's payload, empty: no INDEX record) and root, and its
/// CONTROL record's bytes.
pub(crate) struct Planned {
    pub(crate) offset: u64,
    pub(crate) nodes: Vec<u8>,
    pub(crate) root: Root,
    pub(crate) control: Vec<u8>,
}

impl Log {
    /// Places the checkpoint after `base` whose changed pages' slots, for a
    /// COMMIT at offset `o`, are `slots_at(o)`: the nodes name the commit's
    /// frames, so their length is found with the commit at a stand-in
    /// offset first, then they are made at their place (invariant 3). Old
    /// nodes below the boundary are read at their copies, as a version
    /// reads them (`index.rs` invariant 4).
    pub(crate) fn plan_checkpoint(
        &self,
        st: &State,
        base: &Version,
        p: &Plan,
        slots_at: &dyn Fn(u64) -> Vec<(u32, Slot)>,
    ) -> Result<Planned> {
        let end = st.log_end.min(st.mapping.cap);
        let src = crate::index::ResolvedSource { map: &st.mapping, end, control: &st.control };
        let nodes_at = p.index_at + INDEX_META;
        let tree = |slots: &[(u32, Slot)]| -> Result<tree::Update> {
            let (root, changes) = changes(base, p.same_ps, slots, p.db_pages)?;
            tree::update(&src, root, &changes, p.db_pages, nodes_at)
                .map_err(|d| self.corrupt(d.offset, d.expected, d.found))
        };
        let table = st.control.table();
        let control =
            |at: u64| crate::reclaim::control_record(p.salt, at, p.prev, p.page_size, &p.info, table, &[], false);
        let rec_len = control(0).len() as u64;
        let guess = tree(&slots_at(p.index_at + rec_len))?;
        let control_at = p.index_at + index_len(guess.nodes.len());
        let offset = control_at + rec_len;
        let up = tree(&slots_at(offset))?;
        debug_assert_eq!(up.nodes.len(), guess.nodes.len(), "a checkpoint's nodes do not depend on its offset");
        if up.nodes.len() != guess.nodes.len() {
            return Err(self.corrupt(p.index_at, "a checkpoint's index nodes of a stable length", "another length"));
        }
        Ok(Planned { offset, nodes: up.nodes, root: up.root, control: control(control_at) })
    }
}
