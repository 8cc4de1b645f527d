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
use crate::format::{self, IndexInfo, RecordHeader};
use crate::log::Link;
use crate::pagemap::Slot;
use crate::tree::{self, Root};
use crate::version::{Pages, Version};

/// A checkpoint is written before the overlay would hold more pages …
pub const MAX_OVERLAY: usize = 8192;
/// … or when max(database pages / 64, [`MIN_COMMITS`]) commits, at most
/// this many, follow the last one: a small database checkpoints more often
/// (its tree is small), so the reclaimer, which never frees past the
/// checkpoint the oldest kept version reads, is never held back long; a
/// large one's checkpoint costs at most 16 × 64 ≈ 1 KiB of nodes a commit
/// when its tree is rewritten whole (a log with a retention policy).
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
/// cut) and `new_slots` applied; from nothing (`fresh`, or a page-size
/// change, or a base that is not a tree) with every page's slot.
pub(crate) fn changes(
    base: &Version,
    same_ps: bool,
    fresh: bool,
    new_slots: &[(u32, Slot)],
    db_pages: u32,
) -> Result<(Option<Root>, BTreeMap<u32, tree::Slot>)> {
    let ts = |s: Slot| tree::Slot { offset: s.offset, crc: s.crc };
    let mut out = BTreeMap::new();
    let mut root = None;
    if same_ps {
        match &base.map {
            Pages::Tree(t) if !fresh => {
                root = t.root;
                if t.root.is_some() {
                    // Pages a truncation cut since the checkpoint read as
                    // zeros unless written since (overlay invariant 2).
                    for p in t.overlay.cut().saturating_add(1)..=db_pages.min(t.pages) {
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
