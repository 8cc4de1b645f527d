//! Reading a format-4 version's page map from the log: its checkpoint's
//! index tree (read node by node where the log lies, nothing loaded whole)
//! with the overlay of the commits after it in front ([`TreeMap`]).
//!
//! # Invariants
//! 1. A lookup reads at most `depth` nodes, each through
//!    `Mapping::node`: checked against the crc its parent (or the
//!    checkpoint) holds on its first read in this process, from the
//!    process's node cache after; damage is `Error::Corrupt` naming the
//!    node's offset, never a wrong slot. A lookup repeating the path of an
//!    earlier one (same root, same control state) reads its leaf straight
//!    from the leaf table (`leaves.rs`, invariant 2), the root still
//!    checked to lie below `end`.
//! 2. Memory is the overlay (bounded by the writer) and the process's node
//!    cache (bounded): nothing proportional to the database.
//! 3. Every node a lookup reads lies below `end`, the committed end of the
//!    version the map belongs to (its checkpoint's nodes precede it).
//! 4. A node below the boundary `B` is never read where it was written: it
//!    is read at the copy the control state's straggler table names (the
//!    reclaimer relocates every node a kept checkpoint's tree reaches, byte
//!    for byte), and checked as the node it replaces; one the table does
//!    not name is damage (a hole there would fail its crc anyway).

use std::sync::Arc;

use crate::control::Control;
use crate::error::{Error, Result};
use crate::format::Entry;
use crate::leaves::Tag;
use crate::mapping::Mapping;
use crate::overlay::Overlay;
use crate::pagemap::{PageMap, Slot};
use crate::tree::{self, Root};

/// The page map of a format-4 version: a checkpoint's tree and an overlay.
#[derive(Clone)]
pub struct TreeMap {
    /// `db pages` of the version.
    pub(crate) pages: u32,
    /// The checkpoint's tree (None: every page of it is a zero page).
    pub(crate) root: Option<Root>,
    pub(crate) overlay: Overlay,
    /// The checkpoint COMMIT's offset, and the commits after it up to this
    /// version (the writer's thresholds).
    pub(crate) checkpoint: u64,
    pub(crate) commits: u64,
    /// The checkpoint's trailer crc and `db pages` (a summary's map is the
    /// checkpoint's, cut or extended to its size, and its entries).
    pub(crate) ckpt_crc: u32,
    pub(crate) ckpt_pages: u32,
    /// The newest map commit (the checkpoint, or a summary after it: what
    /// the next delta names in `full map offset`), and the commits after it
    /// up to this version (FORMAT.md, "Summary commits").
    pub(crate) map_at: u64,
    pub(crate) map_commits: u64,
    /// Where the nodes are read, and the committed end they lie below.
    pub(crate) mapping: Arc<Mapping>,
    pub(crate) end: u64,
}

impl std::fmt::Debug for TreeMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeMap")
            .field("pages", &self.pages)
            .field("root", &self.root)
            .field("overlay", &self.overlay.len())
            .field("checkpoint", &self.checkpoint)
            .finish()
    }
}

impl TreeMap {
    /// The map of a checkpoint (at `at`, trailer crc `crc`): its tree, an
    /// empty overlay.
    pub(crate) fn checkpoint(
        pages: u32,
        root: Option<Root>,
        at: u64,
        crc: u32,
        mapping: Arc<Mapping>,
        end: u64,
    ) -> TreeMap {
        TreeMap {
            pages,
            root,
            overlay: Overlay::new(pages),
            checkpoint: at,
            commits: 0,
            ckpt_crc: crc,
            ckpt_pages: pages,
            map_at: at,
            map_commits: 0,
            mapping,
            end,
        }
    }

    /// The map after a delta commit of `db_pages` pages with `entries`,
    /// whose record ends at `end`.
    pub(crate) fn apply(&mut self, db_pages: u32, entries: &[Entry], mapping: Arc<Mapping>, end: u64) {
        self.overlay.apply(self.pages, db_pages, entries);
        self.pages = db_pages;
        self.commits += 1;
        self.map_commits += 1;
        self.mapping = mapping;
        self.end = end;
    }

    /// The map of a summary commit (at `at`, ending at `end`) of `db_pages`
    /// pages with `entries`, `commits` after this map's checkpoint: the
    /// checkpoint's map, cut or extended with zero pages to `db_pages`,
    /// with the entries replacing those slots (FORMAT.md, "Summary
    /// commits"); whatever this map's overlay held is dropped.
    pub(crate) fn summary(
        &mut self,
        db_pages: u32,
        entries: &[Entry],
        commits: u64,
        at: u64,
        mapping: Arc<Mapping>,
        end: u64,
    ) {
        let mut overlay = Overlay::new(self.ckpt_pages);
        overlay.apply(self.ckpt_pages, db_pages, entries);
        self.overlay = overlay;
        self.pages = db_pages;
        self.commits = commits;
        self.map_at = at;
        self.map_commits = 0;
        self.mapping = mapping;
        self.end = end;
    }

    /// The entries a summary after this map, of `db_pages` pages, writing
    /// `new` (sorted by page), lists: every page whose slot differs from the
    /// checkpoint's map cut or extended to `db_pages` (the overlay's
    /// entries, the zero pages past its cut up to the checkpoint's size, and
    /// `new`), in page order. None when that is more than `max`.
    pub(crate) fn summary_entries(&self, db_pages: u32, new: &[(u32, Slot)], max: usize) -> Option<Vec<Entry>> {
        let mut m: std::collections::BTreeMap<u32, Slot> = std::collections::BTreeMap::new();
        let zero_to = self.ckpt_pages.min(db_pages);
        let cut = self.overlay.cut();
        if zero_to > cut && (zero_to - cut) as usize > max {
            return None;
        }
        for p in cut.saturating_add(1)..=zero_to {
            m.insert(p, Slot::default());
        }
        for (p, s) in self.overlay.iter() {
            if p <= db_pages {
                m.insert(p, s);
            }
        }
        for &(p, s) in new {
            m.insert(p, s);
        }
        (m.len() <= max).then(|| m.into_iter().map(|(pgno, s)| Entry { pgno, crc: s.crc, offset: s.offset }).collect())
    }

    /// Pages a summary after this map would list (see
    /// [`TreeMap::summary_entries`]), before the slots of `new` are known.
    pub(crate) fn summary_len(&self, db_pages: u32, new: impl Iterator<Item = u32>, max: usize) -> Option<usize> {
        let zero_to = self.ckpt_pages.min(db_pages);
        let cut = self.overlay.cut();
        let zeros = zero_to.saturating_sub(cut) as usize;
        if zeros > max {
            return None;
        }
        let mut n = zeros + self.overlay.iter().filter(|&(p, _)| p <= db_pages && (p <= cut || p > zero_to)).count();
        for p in new {
            let counted = self.overlay.get(p).is_some() || (p > cut && p <= zero_to);
            if !counted && p <= db_pages {
                n += 1;
            }
        }
        (n <= max).then_some(n)
    }

    /// The checkpoint's tree (for tests and tools).
    pub fn root(&self) -> Option<Root> {
        self.root
    }

    /// The commit of the checkpoint this map is built on, and the number of
    /// commits after it (the overlay's).
    pub fn checkpoint_offset(&self) -> u64 {
        self.checkpoint
    }

    /// Commits after the checkpoint up to this version.
    pub fn commits(&self) -> u64 {
        self.commits
    }

    /// The newest map commit (the checkpoint or a summary after it) and
    /// the commits after it up to this version (FORMAT.md, "Summary
    /// commits").
    pub fn map_commit(&self) -> (u64, u64) {
        (self.map_at, self.map_commits)
    }

    /// Pages the overlay holds.
    pub fn overlay_len(&self) -> usize {
        self.overlay.len()
    }

    /// Page `pgno`'s slot: None past the end of the database; nodes read
    /// through this map's own mapping, none below the boundary redirected
    /// (see [`TreeMap::get_in`]).
    #[inline]
    pub fn get(&self, pgno: u32) -> Result<Option<Slot>> {
        self.get_in(pgno, crate::control::none_ref(), &self.mapping)
    }

    /// Page `pgno`'s slot as a version under control state `control`
    /// reads it through `mapping` (which covers `control`'s record).
    #[inline]
    pub fn get_in(&self, pgno: u32, control: &Control, mapping: &Mapping) -> Result<Option<Slot>> {
        if pgno == 0 || pgno > self.pages {
            return Ok(None);
        }
        if let Some(s) = self.overlay.get(pgno) {
            return Ok(Some(s));
        }
        if pgno > self.overlay.cut() {
            return Ok(Some(Slot::default()));
        }
        let Some(root) = self.root else { return Ok(Some(Slot::default())) };
        let s = lookup(mapping, self.end, control, root, pgno)?;
        Ok(Some(Slot { offset: s.offset, crc: s.crc }))
    }

    /// The slots the checkpoint's tree holds and the overlay does not
    /// override, and the overlay's: the whole map, for the writer's next
    /// checkpoint when it starts from nothing, and the reclaimer.
    pub fn to_page_map(&self, control: &Control, mapping: &Mapping) -> Result<PageMap> {
        let mut m = PageMap::new();
        m.set_pages(self.pages);
        if let Some(root) = self.root {
            let cut = self.overlay.cut().min(self.pages);
            walk(mapping, self.end, control, root, &mut |n| {
                if n.level == 0 {
                    for i in 0..tree::LEAF_SLOTS {
                        let p = n.first as u64 + i as u64;
                        let s = tree::slot_at(n.bytes, i);
                        if p >= 1 && p <= cut as u64 && !s.is_zero() {
                            m.set(p as u32, Slot { offset: s.offset, crc: s.crc });
                        }
                    }
                }
            })?;
        }
        for (p, s) in self.overlay.iter() {
            if p <= self.pages {
                m.set(p, s);
            }
        }
        Ok(m)
    }
}

/// Where the node `ptr` names is read, and the end it must lie below: where
/// it was written, below `end`; or, below the boundary, its copy in the
/// CONTROL record that relocated it (invariant 4).
pub(crate) fn place(m: &Mapping, end: u64, control: &Control, ptr: tree::Slot, level: u8) -> Result<(u64, u64)> {
    if !control.redirects() || ptr.offset >= control.boundary() {
        return Ok((ptr.offset, end));
    }
    match control.moved_to(ptr.offset) {
        Some(at) => Ok((at, control.end())),
        None => Err(Error::Corrupt {
            path: m.path.clone(),
            offset: ptr.offset,
            expected: format!(
                "an index-tree node at level {level} relocated by the CONTROL record at {} (it lies below the \
                 boundary {})",
                control.offset,
                control.boundary()
            ),
            found: "no copy in its straggler table".into(),
        }),
    }
}

/// Calls `f(pgno, slot)` for every page of the tree `root` names whose
/// slot is not zero, in page order, each node read with `read` (None: not
/// in the file) and checked, and required to end at or before `end`: for
/// `verify`, which reads a log it has not recovered. Subtrees whose node
/// lies below `floor` are not read: a node written before a transaction
/// names nothing that transaction wrote (copy-on-write), so a checkpoint's
/// own frames are found from its own nodes, and the nodes it shares with
/// older trees, which a step may have freed (read at their copies), are not
/// read where they lay.
pub(crate) fn walk_read(
    read: &dyn Fn(u64, usize) -> Option<Vec<u8>>,
    end: u64,
    floor: u64,
    root: Root,
    f: &mut dyn FnMut(u32, tree::Slot),
) -> std::result::Result<(), tree::Damage> {
    #[allow(clippy::too_many_arguments)]
    fn go(
        read: &dyn Fn(u64, usize) -> Option<Vec<u8>>,
        end: u64,
        floor: u64,
        ptr: tree::Slot,
        level: u8,
        first: u32,
        f: &mut dyn FnMut(u32, tree::Slot),
    ) -> std::result::Result<(), tree::Damage> {
        if ptr.offset == 0 || ptr.offset < floor {
            return Ok(());
        }
        let len = tree::node_size(level);
        let b = ptr.offset.checked_add(len as u64).filter(|&e| e <= end).and_then(|_| read(ptr.offset, len));
        let Some(b) = b else {
            return Err(tree::Damage {
                offset: ptr.offset,
                expected: format!("an index-tree node of {len} bytes before the checkpoint at {end}"),
                found: "no such bytes".into(),
            });
        };
        tree::check(&b, ptr.offset, ptr.crc, level, first)?;
        let n = if level == 0 { tree::LEAF_SLOTS } else { tree::INNER_SLOTS };
        for i in 0..n {
            let s = tree::slot_at(&b, i);
            if s.is_zero() {
                continue;
            }
            if level == 0 {
                f(first + i as u32, s);
            } else {
                go(read, end, floor, s, level - 1, (first as u64 + i as u64 * tree::span(level - 1)) as u32, f)?;
            }
        }
        Ok(())
    }
    if !(1..=tree::MAX_DEPTH).contains(&root.depth) {
        return Err(tree::Damage {
            offset: root.offset,
            expected: format!("an index-tree depth of 1 to {}", tree::MAX_DEPTH),
            found: root.depth.to_string(),
        });
    }
    go(read, end, floor, tree::Slot { offset: root.offset, crc: root.crc }, root.depth - 1, 0, f)
}

/// The log's committed bytes as a [`tree::NodeSource`] for `tree::update`
/// (the writer's next checkpoint): a node below the boundary is read at its
/// copy (invariant 4), and checked by `tree` as the node its parent names.
pub(crate) struct ResolvedSource<'a> {
    pub(crate) map: &'a Mapping,
    /// Bytes below this are committed and in the file.
    pub(crate) end: u64,
    pub(crate) control: &'a Control,
}

impl tree::NodeSource for ResolvedSource<'_> {
    fn node_bytes(&self, offset: u64, len: usize) -> Option<&[u8]> {
        let (at, end) = if self.control.redirects() && offset < self.control.boundary() {
            (self.control.moved_to(offset)?, self.control.end())
        } else {
            (offset, self.end)
        };
        let e = at.checked_add(len as u64)?;
        (e <= end && e <= self.map.cap && self.map.mmap.is_some()).then(|| self.map.slice(at, len))
    }
}

/// One node as [`walk`] hands it out.
pub(crate) struct Visit<'a> {
    /// The offset the node was written at (its parent names it so).
    pub(crate) offset: u64,
    pub(crate) level: u8,
    pub(crate) first: u32,
    pub(crate) bytes: &'a [u8],
}

/// Calls `f` for every node of the tree `root` names, parents before
/// children, each read and checked as a lookup reads it.
pub(crate) fn walk(m: &Mapping, end: u64, control: &Control, root: Root, f: &mut dyn FnMut(&Visit)) -> Result<()> {
    fn go(
        m: &Mapping,
        end: u64,
        control: &Control,
        ptr: tree::Slot,
        level: u8,
        first: u32,
        f: &mut dyn FnMut(&Visit),
    ) -> Result<()> {
        if ptr.offset == 0 {
            return Ok(());
        }
        let (at, bound) = place(m, end, control, ptr, level)?;
        let b = m.node(ptr, at, level, first, bound)?;
        f(&Visit { offset: ptr.offset, level, first, bytes: &b });
        if level == 0 {
            return Ok(());
        }
        for i in 0..tree::INNER_SLOTS {
            let s = tree::slot_at(&b, i);
            let from = first as u64 + i as u64 * tree::span(level - 1);
            if !s.is_zero() && from <= u32::MAX as u64 {
                go(m, end, control, s, level - 1, from as u32, f)?;
            }
        }
        Ok(())
    }
    check_depth(m, root)?;
    go(m, end, control, tree::Slot { offset: root.offset, crc: root.crc }, root.depth - 1, 0, f)
}

fn check_depth(m: &Mapping, root: Root) -> Result<()> {
    if !(1..=tree::MAX_DEPTH).contains(&root.depth) {
        return Err(Error::Corrupt {
            path: m.path.clone(),
            offset: root.offset,
            expected: format!("an index-tree depth of 1 to {}", tree::MAX_DEPTH),
            found: root.depth.to_string(),
        });
    }
    Ok(())
}

/// Page `pgno`'s slot in the tree `root` names, its nodes read through `m`
/// below `end` (invariant 1), or relocated (invariant 4). A page past the
/// tree's span is a zero page.
pub(crate) fn lookup(m: &Mapping, end: u64, control: &Control, root: Root, pgno: u32) -> Result<tree::Slot> {
    check_depth(m, root)?;
    let mut level = root.depth - 1;
    if pgno as u64 >= tree::span(level) || root.offset == 0 {
        return Ok(tree::Slot::ZERO);
    }
    let (mut ptr, mut first) = (tree::Slot { offset: root.offset, crc: root.crc }, 0u32);
    let tag = Tag { root, control: if control.redirects() { (control.offset, control.crc) } else { (0, 0) } };
    // Fast path: the leaf a lookup by the same path reached (`leaves.rs`
    // invariant 2; the root checked here to lie where this version reads
    // it), else the levels whose nodes this process has checked, under one
    // lock of the cache, read from the cache (`Mapping::node`'s invariant).
    {
        let mut cache = m.node_cache();
        let (at, bound) = place(m, end, control, ptr, level)?;
        let fits = at.checked_add(tree::node_size(level) as u64).is_some_and(|e| e <= bound);
        if fits {
            if let Some(s) = cache.leaves.via(&tag, pgno) {
                return Ok(s);
            }
        }
        loop {
            if ptr.offset == 0 {
                return Ok(tree::Slot::ZERO);
            }
            let (at, bound) = place(m, end, control, ptr, level)?;
            let len = tree::node_size(level) as u64;
            if at.checked_add(len).is_none_or(|e| e > bound) {
                break;
            }
            if level == 0 {
                let Some(s) = cache.leaves.slot_of(at, ptr.crc, first, (pgno - first) as usize) else { break };
                cache.leaves.tag(at, ptr.crc, first, &tag);
                return Ok(s);
            }
            let Some(b) = cache.inner(at, ptr.crc) else { break };
            let child_span = tree::span(level - 1);
            let i = (pgno - first) as u64 / child_span;
            ptr = tree::slot_at(b, i as usize);
            first += (i * child_span) as u32;
            level -= 1;
        }
    }
    loop {
        if ptr.offset == 0 {
            return Ok(tree::Slot::ZERO);
        }
        let (at, bound) = place(m, end, control, ptr, level)?;
        let b = m.node(ptr, at, level, first, bound)?;
        if level == 0 {
            // Every node on the way was placed and checked: the path is
            // known good for this tag.
            m.node_cache().leaves.tag(at, ptr.crc, first, &tag);
            return Ok(tree::slot_at(&b, (pgno - first) as usize));
        }
        let child_span = tree::span(level - 1);
        let i = (pgno - first) as u64 / child_span;
        ptr = tree::slot_at(&b, i as usize);
        first += (i * child_span) as u32;
        level -= 1;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::lookup;
    use crate::control::{encode_table, Control};
    use crate::error::Error;
    use crate::format::ControlInfo;
    use crate::mapping::Mapping;
    use crate::tree::{self, Node, Root, Slot};

    /// A leaf for pages 0..16 whose slots say `gen`, its bytes and crc.
    fn leaf(gen: u64) -> (Vec<u8>, u32) {
        let mut n = Node::empty(0, 0);
        for (i, s) in n.slots.iter_mut().enumerate().skip(1) {
            *s = Slot { offset: (gen << 20) + 4096 * i as u64, crc: (gen as u32) << 8 | i as u32 };
        }
        let mut b = Vec::new();
        let crc = n.encode_into(&mut b);
        (b, crc)
    }

    /// A depth-2 tree: its root (level 1) naming a leaf at `leaf_at`.
    fn root_over(leaf_at: u64, leaf_crc: u32) -> (Vec<u8>, u32) {
        let mut n = Node::empty(1, 0);
        n.slots[0] = Slot { offset: leaf_at, crc: leaf_crc };
        let mut b = Vec::new();
        let crc = n.encode_into(&mut b);
        (b, crc)
    }

    /// A control state at `offset` whose boundary `b` frees the leaf at
    /// 512, relocated to `copy` (the record is not in the file: only its
    /// straggler table is read).
    fn control(offset: u64, boundary: u64, copy: u64) -> Control {
        let info = ControlInfo { epoch: 2, boundary, stragglers: 1, payload_bytes: 4096, ..Default::default() };
        Control::load(offset, 77, info, &encode_table(&[(512, copy)]), &Mapping::empty("t".as_ref()), 0).unwrap()
    }

    /// The leaf table serves a leaf only to a lookup by the path that
    /// reached it: under a control state that relocates the leaf (a
    /// reclamation step), the lookup reads it at its copy, and damage
    /// there is named; a second tree (a new checkpoint, a revert) over the
    /// same pages reads its own leaf.
    #[test]
    fn a_leaf_reached_under_one_control_state_or_root_is_read_again_under_another() {
        let dir = std::env::temp_dir().join(format!("pagelog-leafpath-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        // 512: leaf A; 776: root A over it; 1808: a damaged copy of leaf A;
        // 2072: an intact copy; 2336: leaf B; 2600: root B over it.
        let (la, la_crc) = leaf(1);
        let (ra, ra_crc) = root_over(512, la_crc);
        let (lb, lb_crc) = leaf(2);
        let (rb, rb_crc) = root_over(2336, lb_crc);
        let mut bytes = vec![0u8; 512];
        for part in [&la, &ra, &la, &la, &lb, &rb] {
            bytes.extend_from_slice(part);
        }
        assert_eq!(bytes.len(), 2600 + tree::INNER_SIZE);
        bytes[1808 + 100] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        let end = bytes.len() as u64;
        let file = Arc::new(std::fs::File::open(&path).unwrap());
        let m = Mapping::new(&file, &path, end, None).unwrap();
        let (root_a, root_b) =
            (Root { offset: 776, crc: ra_crc, depth: 2 }, Root { offset: 2600, crc: rb_crc, depth: 2 });
        let none = Control::none();
        let want = |gen: u64, p: u32| tree::Slot { offset: (gen << 20) + 4096 * p as u64, crc: (gen as u32) << 8 | p };

        for _ in 0..2 {
            assert_eq!(lookup(&m, end, &none, root_a, 5).unwrap(), want(1, 5));
        }
        // Another tree over the same pages (a new checkpoint, a revert).
        for _ in 0..2 {
            assert_eq!(lookup(&m, end, &none, root_b, 5).unwrap(), want(2, 5));
            assert_eq!(lookup(&m, end, &none, root_a, 5).unwrap(), want(1, 5));
        }
        // A step: the leaf lies below the boundary, its copy is damaged.
        let step = control(2000, 776, 1808);
        match lookup(&m, end, &step, root_a, 5) {
            Err(Error::Corrupt { offset, .. }) => assert_eq!(offset, 512, "named as the leaf it replaces"),
            other => panic!("a damaged relocated leaf must be an error, got {other:?}"),
        }
        // Another step, whose copy is intact: read there, then by the path.
        let next = control(2100, 776, 2072);
        for _ in 0..2 {
            assert_eq!(lookup(&m, end, &next, root_a, 7).unwrap(), want(1, 7));
        }
        // Another tree over the same pages, then the first one again.
        for _ in 0..2 {
            assert_eq!(lookup(&m, end, &none, root_b, 7).unwrap(), want(2, 7));
            assert_eq!(lookup(&m, end, &next, root_a, 7).unwrap(), want(1, 7));
        }
        assert!(lookup(&m, end, &step, root_a, 7).is_err(), "the damaged copy is still damage");
        // A version whose end does not reach the root does not read it, by
        // any path.
        assert!(matches!(lookup(&m, 1000, &none, root_b, 7), Err(Error::Corrupt { offset: 2600, .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
