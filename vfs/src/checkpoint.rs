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
//!    spans more than [`MAX_COMMITS`] commits; a reader walks no more than
//!    [`FIRST_COMMIT_COMMITS`] after the newest map commit before a log
//!    handle's first commit (fewer than [`SUMMARY_COMMITS`] where summaries
//!    are written).
//! 3. A checkpoint's new nodes depend on which pages change and on their
//!    slots, never on where they will be written but through the offsets
//!    they are given, so a writer may compute them once to learn their
//!    length and again at their real place (`commit.rs`).

use std::collections::BTreeMap;

use crate::error::Result;
use crate::format::{self, ControlInfo, IndexInfo, RecordHeader};
use crate::log::{Link, Log, State};
use crate::overlay::Overlay;
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
/// … or, for the first commit a log handle makes (a process that opens a
/// log to commit once, then exits: every such commit comes with an open),
/// when this many commits follow the newest map commit (the checkpoint or
/// a summary). Opening replays every commit since that map commit (~0.5 µs
/// each on a 1 GiB log, one-commit processes' records). Since summaries
/// ([`SUMMARY_COMMITS`]) keep that walk below 256 on every database whose
/// interval is longer than this, the rule now fires only where a summary
/// could not be written; before them it made a stream of one-commit
/// processes checkpoint every 512 commits (a checkpoint rewrites the paths
/// to every page changed since the last: at 1 GiB, measured, ~1.25 KiB a
/// commit more at 512 than at 2,048), where a summary every 256 costs ~56
/// bytes a commit.
pub const FIRST_COMMIT_COMMITS: u64 = 512;

/// A delta becomes a summary (FORMAT.md, "Summary commits") when this many
/// commits follow the newest map commit (the checkpoint or the last
/// summary) and no checkpoint is due: an open then reads at most this many
/// commits' records less one after the summary, where it read up to
/// [`MAX_COMMITS`] after the checkpoint. A summary lists its version's whole
/// difference from the checkpoint (~2 pages a one-row commit since it,
/// 16 bytes each): every 256 commits between checkpoints 2,048 apart is
/// about 112 bytes a commit; every 512 halves that and doubles the walk.
pub const SUMMARY_COMMITS: u64 = 256;

/// Entries a summary after `base` writing pages `changed` of a `db_pages`
/// database lists, when the commit is to be one: a delta ([`due`] said
/// no) at least [`SUMMARY_COMMITS`] after its map commit, whose entry table
/// would stay within [`MAX_OVERLAY`] (a database cut and grown again past
/// pages it did not write lists them as zero pages), under a control state
/// it can name (`control_at`: its CONTROL record, 0 for none).
pub(crate) fn summary_due(
    base: &Pages,
    db_pages: u32,
    control_at: u64,
    changed: impl Iterator<Item = u32>,
) -> Option<usize> {
    let Pages::Tree(t) = base else { return None };
    if t.map_commits + 1 < SUMMARY_COMMITS || control_at < format::FIRST_RECORD {
        return None;
    }
    t.summary_len(db_pages, changed, MAX_OVERLAY)
}

/// How many commits may follow a checkpoint of a `db_pages`-page database.
pub fn commits_between(db_pages: u32) -> u64 {
    (db_pages as u64 / 64).clamp(MIN_COMMITS, MAX_COMMITS)
}

/// Whether the commit after `base` (of `base_number`) changing `changed`
/// must be a checkpoint; `first`: the first commit of this log handle
/// ([`FIRST_COMMIT_COMMITS`]).
pub(crate) fn due(
    base: &Pages,
    base_number: u64,
    same_ps: bool,
    first: bool,
    changed: impl Iterator<Item = u32>,
) -> bool {
    let Pages::Tree(t) = base else { return true }; // the first commit, or a log of full maps
    base_number == 0
        || (first && t.map_commits + 1 >= FIRST_COMMIT_COMMITS)
        || due_after(
            Some(&Since { root: t.root, overlay: &t.overlay, commits: t.commits, pages: t.pages }),
            same_ps,
            changed,
        )
}

/// What a version's map holds since its checkpoint: the checkpoint's tree,
/// the overlay of the commits after it, how many there were and the
/// version's `db pages`. A writer that is not a [`Log`] (the rewriter of
/// `compact.rs`) keeps one to decide and build checkpoints as a live writer
/// does.
pub(crate) struct Since<'a> {
    pub(crate) root: Option<Root>,
    pub(crate) overlay: &'a Overlay,
    pub(crate) commits: u64,
    pub(crate) pages: u32,
}

/// Whether the commit after a version whose map is `since` (None: no
/// checkpoint yet) changing `changed` must be a checkpoint.
pub(crate) fn due_after(since: Option<&Since>, same_ps: bool, changed: impl Iterator<Item = u32>) -> bool {
    let Some(t) = since else { return true };
    if !same_ps || t.commits + 1 >= commits_between(t.pages) {
        return true;
    }
    let added = changed.filter(|&p| t.overlay.get(p).is_none()).count();
    t.overlay.len() + added > MAX_OVERLAY
}

/// The slots the checkpoint after `since` sets in its tree: the pages past
/// the overlay's cut zeroed (overlay invariant 2), the overlay, then
/// `new_slots`.
pub(crate) fn changes_since(since: &Since, new_slots: &[(u32, Slot)], db_pages: u32) -> BTreeMap<u32, tree::Slot> {
    let ts = |s: Slot| tree::Slot { offset: s.offset, crc: s.crc };
    let mut out = BTreeMap::new();
    if since.root.is_some() {
        // Pages past the overlay's cut read as zeros unless written since,
        // the tree's old slots there included, up to the new size (a
        // database that grows again without writing them reads zeros).
        for p in since.overlay.cut().saturating_add(1)..=db_pages {
            out.insert(p, tree::Slot::ZERO);
        }
    }
    for (p, s) in since.overlay.iter() {
        if p <= db_pages {
            out.insert(p, ts(s));
        }
    }
    for &(p, s) in new_slots {
        out.insert(p, ts(s));
    }
    out
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
    if same_ps {
        if let Pages::Tree(t) = &base.map {
            let since = Since { root: t.root, overlay: &t.overlay, commits: t.commits, pages: t.pages };
            return Ok((t.root, changes_since(&since, new_slots, db_pages)));
        }
    }
    let mut out = BTreeMap::new();
    if same_ps {
        let m = base.whole_map()?;
        for p in 1..=m.pages().min(db_pages) {
            let s = m.get(p).expect("within the map");
            if s.offset != 0 {
                out.insert(p, ts(s));
            }
        }
    }
    for &(p, s) in new_slots {
        out.insert(p, ts(s));
    }
    Ok((None, out))
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
    /// COMMIT at offset `o`, are `slots_at(o)` ([`place`]). Old nodes below
    /// the boundary are read at their copies, as a version reads them
    /// (`index.rs` invariant 4).
    pub(crate) fn plan_checkpoint(
        &self,
        st: &State,
        base: &Version,
        p: &Plan,
        slots_at: &dyn Fn(u64) -> Vec<(u32, Slot)>,
        free: &[crate::freelist::FreeRange],
    ) -> Result<Planned> {
        let end = st.log_end.min(st.mapping.cap);
        let src = crate::index::ResolvedSource { map: &st.mapping, end, control: &st.control };
        let changes_at = |o: u64| Ok(changes(base, p.same_ps, &slots_at(o), p.db_pages)?.1);
        // The list as the state holds it, less the slots recycled since its
        // record (`free`, `slots.rs` invariant 4).
        let table = st.control.table();
        let control =
            |at: u64| crate::reclaim::control_record(p.salt, at, p.prev, p.page_size, &p.info, table, free, &[], false);
        // The tree it starts from (`changes` starts from the same one).
        let r0 = match (&base.map, p.same_ps) {
            (Pages::Tree(t), true) => t.root,
            _ => None,
        };
        let corrupt = |d: tree::Damage| self.corrupt(d.offset, d.expected, d.found);
        place(&corrupt, &src, r0, &changes_at, p.index_at, p.db_pages, &control)
    }
}

/// Places a checkpoint whose transaction's INDEX record goes at
/// `index_at`, whose tree is `root` (nodes read from `src`) with
/// `changes_at(o)` applied for a COMMIT at offset `o`, and whose CONTROL
/// record at `a` is `control(a)` (`corrupt` makes the error for damage met
/// reading old nodes): the nodes name the commit's frames, so
/// their length is found with the commit at a stand-in offset first, then
/// they are made at their place (invariant 3). Shared by the live writer
/// and the rewriter (`compact.rs`), so both write the same bytes.
pub(crate) fn place(
    corrupt: &dyn Fn(tree::Damage) -> crate::error::Error,
    src: &impl tree::NodeSource,
    root: Option<Root>,
    changes_at: &dyn Fn(u64) -> Result<BTreeMap<u32, tree::Slot>>,
    index_at: u64,
    db_pages: u32,
    control: &dyn Fn(u64) -> Vec<u8>,
) -> Result<Planned> {
    let nodes_at = index_at + INDEX_META;
    let tree = |changes: &BTreeMap<u32, tree::Slot>| -> Result<tree::Update> {
        tree::update(src, root, changes, db_pages, nodes_at).map_err(corrupt)
    };
    let rec_len = control(0).len() as u64;
    let guess = tree(&changes_at(index_at + rec_len)?)?;
    let control_at = index_at + index_len(guess.nodes.len());
    let offset = control_at + rec_len;
    let up = tree(&changes_at(offset)?)?;
    debug_assert_eq!(up.nodes.len(), guess.nodes.len(), "a checkpoint's nodes do not depend on its offset");
    if up.nodes.len() != guess.nodes.len() {
        return Err(corrupt(tree::Damage {
            offset: index_at,
            expected: "a checkpoint's index nodes of a stable length".into(),
            found: "another length".into(),
        }));
    }
    Ok(Planned { offset, nodes: up.nodes, root: up.root, control: control(control_at) })
}

/// The records that precede a checkpoint COMMIT at `offset` in its
/// transaction (its INDEX record holding `nodes`, if any, at `index_at`,
/// then its CONTROL record `control`), and the checkpoint info naming them
/// and the tree's `root` (commit4.rs invariants 1 and 2).
#[allow(clippy::too_many_arguments)]
pub(crate) fn head(
    salt: u64,
    index_at: u64,
    prev: Link,
    page_size: u32,
    nodes: &[u8],
    root: Root,
    control: &[u8],
    offset: u64,
) -> (Vec<u8>, format::CheckpointInfo) {
    let trailer_crc = |rec: &[u8]| format::trailer_crc(&rec[rec.len() - format::TRAILER_SIZE..]);
    let mut ck =
        format::CheckpointInfo { root: root.offset, root_crc: root.crc, depth: root.depth, ..Default::default() };
    let mut head = Vec::new();
    if !nodes.is_empty() {
        head = index_record(salt, index_at, prev, page_size, nodes);
        (ck.index, ck.index_crc) = (index_at, trailer_crc(&head));
    }
    let control_at = index_at + head.len() as u64;
    debug_assert_eq!(control_at + control.len() as u64, offset);
    (ck.control, ck.control_crc) = (control_at, trailer_crc(control));
    head.extend_from_slice(control);
    (head, ck)
}
