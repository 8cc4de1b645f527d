//! The index tree of format 4: a copy-on-write radix tree over page numbers
//! whose leaves hold map slots (offset, crc), as map entries do today.
//! Pure code: encodes, decodes, looks up and builds nodes; it reads nodes
//! through a [`NodeSource`] and hands new nodes back as bytes, never touching
//! a file. `docs/format-4.md` ("Index-tree nodes") is the agreed design.
//!
//! A node (all integers little-endian, offsets chained below):
//!
//! | field     | size   | meaning |
//! |-----------|-------:|---------|
//! | level     | 1      | 0 for a leaf, at most [`MAX_DEPTH`] − 1 |
//! | reserved  | 3      | zero |
//! | first     | 4      | the first page number the node covers: a multiple of its span |
//! | slots     | 16 × n | leaf: n = 16 map slots, page `first + i`; inner: n = 64 children, child `i` covering from `first + i × span(level − 1)` |
//!
//! and a slot is (offset u64, crc u32, reserved u32 zero). A leaf is 264
//! bytes, an inner node 1,032 (both multiples of 8). A node at level `l`
//! covers `span(l) = 16 × 64^l` page numbers; a tree of depth `d` has its
//! root at level `d − 1` with `first` = 0. Page numbers are used as they
//! are (no −1), so page 0's slot exists, is unused and must be zero. A slot
//! of offset 0 is a zero page (crc 0); a child of offset 0 is a subtree of
//! zero pages. A node's crc is crc32 (unsalted, like frame crcs) of its
//! bytes, held by its parent (the root's by whoever names the root).
//!
//! Invariants:
//! * nodes are immutable once written: an update writes new nodes for the
//!   paths it changes and shares every other node by offset, so every older
//!   root keeps reading exactly what it read (versions coexist);
//! * a node is found only through its parent's (offset, crc), or a root's,
//!   and is checked where it is read: its crc, its structure, and that it is
//!   the (level, first) its parent expects; damage names the node's offset;
//! * children are written before their parents, so a child's stored offset
//!   ends at or before its parent's (checked on every read);
//! * [`update`] keeps trees canonical: the depth is [`depth_for`] the
//!   database's size, no slot past `db_pages` is set, and no all-zero node is
//!   ever written (its parent holds offset 0).
//!
//! Nothing here panics on any bytes a [`NodeSource`] returns, and nothing
//! allocates in proportion to a value read from them.

use std::collections::BTreeMap;
use std::fmt;

use crate::format::FIRST_RECORD;

// ---- node ---------------------------------------------------------------------------
pub const NODE_LEVEL: usize = 0; // u8
pub const NODE_RESERVED: usize = NODE_LEVEL + 1; // 3 bytes, zero
pub const NODE_FIRST: usize = NODE_RESERVED + 3; // u32
pub const NODE_SLOTS: usize = NODE_FIRST + 4; // 8: the slots start here

// ---- slot (leaf: a page's map slot; inner: a child) ----------------------------------
pub const SLOT_OFFSET: usize = 0; // u64
pub const SLOT_CRC: usize = SLOT_OFFSET + 8; // u32
pub const SLOT_RESERVED: usize = SLOT_CRC + 4; // u32, zero
pub const SLOT_SIZE: usize = SLOT_RESERVED + 4; // 16

pub const LEAF_SLOTS: usize = 16;
pub const INNER_SLOTS: usize = 64;
pub const LEAF_SIZE: usize = NODE_SLOTS + LEAF_SLOTS * SLOT_SIZE; // 264
pub const INNER_SIZE: usize = NODE_SLOTS + INNER_SLOTS * SLOT_SIZE; // 1032
/// The deepest tree: depth 6 spans 2^34 page numbers, past any u32 page.
pub const MAX_DEPTH: u8 = 6;

/// A map slot (leaf) or a child pointer (inner node): an offset and the crc
/// of what it names. Offset 0 is a zero page, or a subtree of zero pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Slot {
    pub offset: u64,
    pub crc: u32,
}

impl Slot {
    pub const ZERO: Slot = Slot { offset: 0, crc: 0 };
    pub fn is_zero(&self) -> bool {
        *self == Slot::ZERO
    }
}

/// A tree as a checkpoint (or the base tree) names it. `offset` 0 is a tree
/// of zero pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Root {
    pub offset: u64,
    pub crc: u32,
    /// 1 ..= [`MAX_DEPTH`]: the root is at level `depth − 1`.
    pub depth: u8,
}

/// Where and why bytes break a rule of the tree: the offset of the node at
/// fault (or of the root that names an impossible depth), what was expected
/// there and what was found. Maps one to one to `Error::Corrupt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub offset: u64,
    pub expected: String,
    pub found: String,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at offset {}: expected {}, found {}", self.offset, self.expected, self.found)
    }
}

impl std::error::Error for Damage {}

fn damage(offset: u64, expected: impl Into<String>, found: impl Into<String>) -> Damage {
    Damage { offset, expected: expected.into(), found: found.into() }
}

/// Where nodes are read from (the log's memory map, or a test's buffer).
pub trait NodeSource {
    /// The `len` bytes at `offset`, or `None` when the source does not hold
    /// them all (past its end).
    fn node_bytes(&self, offset: u64, len: usize) -> Option<&[u8]>;
}

/// The number of page numbers a node at `level` covers: 16 × 64^level.
pub fn span(level: u8) -> u64 {
    (LEAF_SLOTS as u64) << (6 * level as u32)
}

/// The size in bytes of a node at `level`.
pub fn node_size(level: u8) -> usize {
    if level == 0 {
        LEAF_SIZE
    } else {
        INNER_SIZE
    }
}

/// The depth of the tree of a database of `db_pages` pages: the least depth
/// (at least 1) whose span holds page numbers 0 ..= `db_pages`.
pub fn depth_for(db_pages: u32) -> u8 {
    (1..MAX_DEPTH).find(|&d| span(d - 1) > db_pages as u64).unwrap_or(MAX_DEPTH)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from(u32_at(b, at)) | u64::from(u32_at(b, at + 4)) << 32
}
pub(crate) fn slot_at(b: &[u8], i: usize) -> Slot {
    let at = NODE_SLOTS + i * SLOT_SIZE;
    Slot { offset: u64_at(b, at + SLOT_OFFSET), crc: u32_at(b, at + SLOT_CRC) }
}

/// One node, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub level: u8,
    pub first: u32,
    /// [`LEAF_SLOTS`] map slots, or [`INNER_SLOTS`] children.
    pub slots: Vec<Slot>,
}

impl Node {
    /// An all-zero node at (`level`, `first`).
    pub fn empty(level: u8, first: u32) -> Node {
        let n = if level == 0 { LEAF_SLOTS } else { INNER_SLOTS };
        Node { level, first, slots: vec![Slot::ZERO; n] }
    }

    /// Appends the node's bytes to `out`; returns its crc.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> u32 {
        debug_assert_eq!(self.slots.len(), if self.level == 0 { LEAF_SLOTS } else { INNER_SLOTS });
        let start = out.len();
        out.push(self.level);
        out.extend_from_slice(&[0; 3]);
        out.extend_from_slice(&self.first.to_le_bytes());
        for s in &self.slots {
            out.extend_from_slice(&s.offset.to_le_bytes());
            out.extend_from_slice(&s.crc.to_le_bytes());
            out.extend_from_slice(&[0; 4]);
        }
        crc32fast::hash(&out[start..])
    }

    /// Decodes the node at `offset` whose bytes are `b`, checking that it
    /// has `crc` and is the node at (`level`, `first`) (see [`check`]).
    pub fn decode(b: &[u8], offset: u64, crc: u32, level: u8, first: u32) -> Result<Node, Damage> {
        check(b, offset, crc, level, first)?;
        let n = if level == 0 { LEAF_SLOTS } else { INNER_SLOTS };
        Ok(Node { level, first, slots: (0..n).map(|i| slot_at(b, i)).collect() })
    }
}

/// Checks that `b` is the node at `offset` with crc `crc` at (`level`,
/// `first`): its crc first (so damage anywhere in it reads as damage of this
/// node), then its structure ([`structure`]), then that it is the node its
/// parent expects.
pub fn check(b: &[u8], offset: u64, crc: u32, level: u8, first: u32) -> Result<(), Damage> {
    let what = || format!("the index-tree node at level {level} for pages from {first}");
    if b.len() != node_size(level) {
        return Err(damage(offset, format!("{} ({} bytes)", what(), node_size(level)), format!("{} bytes", b.len())));
    }
    let found = crc32fast::hash(b);
    if found != crc {
        return Err(damage(offset, format!("{} with crc {crc:#010x}", what()), format!("crc {found:#010x}")));
    }
    let (l, f) = structure(b, offset)?;
    if (l, f) != (level, first) {
        return Err(damage(offset, what(), format!("a node at level {l} for pages from {f}")));
    }
    Ok(())
}

/// Checks the rules a node obeys on its own (every rule but its crc and its
/// place in a tree) and returns its (level, first): the level is at most
/// `MAX_DEPTH − 1` and `b` is exactly that level's size; reserved bytes are
/// zero; `first` is a multiple of the node's span (and page 0's slot zero);
/// a slot or child of offset 0 has crc 0; a child's offset is a multiple of
/// 8, at least [`FIRST_RECORD`], and the child ends at or before `offset`;
/// a child whose range starts past page `u32::MAX` is zero.
pub fn structure(b: &[u8], offset: u64) -> Result<(u8, u32), Damage> {
    let Some(&level) = b.first() else {
        return Err(damage(offset, "an index-tree node", "no bytes"));
    };
    if level >= MAX_DEPTH {
        return Err(damage(offset, format!("an index-tree node level below {MAX_DEPTH}"), format!("level {level}")));
    }
    if b.len() != node_size(level) {
        let expected = format!("a level-{level} index-tree node of {} bytes", node_size(level));
        return Err(damage(offset, expected, format!("{} bytes", b.len())));
    }
    if let Some(i) = (NODE_RESERVED..NODE_FIRST).find(|&i| b[i] != 0) {
        return Err(damage(offset, "zero reserved bytes in an index-tree node", format!("byte {i} = {:#04x}", b[i])));
    }
    let first = u32_at(b, NODE_FIRST);
    if first as u64 % span(level) != 0 {
        let expected = format!("a level-{level} node's first page to be a multiple of {}", span(level));
        return Err(damage(offset, expected, format!("{first}")));
    }
    let n = if level == 0 { LEAF_SLOTS } else { INNER_SLOTS };
    for i in 0..n {
        let s = slot_at(b, i);
        let reserved = u32_at(b, NODE_SLOTS + i * SLOT_SIZE + SLOT_RESERVED);
        // Named only for damage: a node is checked on every read that misses
        // the node cache, and formatting per slot cost more than the check.
        let what =
            || if level == 0 { format!("page {}'s slot", first as u64 + i as u64) } else { format!("child {i}") };
        if reserved != 0 {
            return Err(damage(offset, format!("{}'s reserved bytes zero", what()), format!("{reserved:#010x}")));
        }
        if s.offset == 0 && s.crc != 0 {
            return Err(damage(offset, format!("crc 0 for {}, of offset 0", what()), format!("crc {:#010x}", s.crc)));
        }
        if level == 0 && first == 0 && i == 0 && !s.is_zero() {
            return Err(damage(offset, "page 0's slot (there is no page 0) zero", format!("offset {}", s.offset)));
        }
        if level == 0 || s.offset == 0 {
            continue;
        }
        let child_end = s.offset.checked_add(node_size(level - 1) as u64);
        if s.offset % 8 != 0 || s.offset < FIRST_RECORD || child_end.is_none_or(|end| end > offset) {
            let expected = format!("{} at an 8-aligned offset from {FIRST_RECORD}, ending before its parent", what());
            return Err(damage(offset, expected, format!("offset {}", s.offset)));
        }
        if first as u64 + i as u64 * span(level - 1) > u32::MAX as u64 {
            return Err(damage(
                offset,
                format!("{} zero: it covers no page number", what()),
                format!("offset {}", s.offset),
            ));
        }
    }
    Ok((level, first))
}

/// The bytes of a level-`level` node at `offset`, unchecked.
fn bytes_at<S: NodeSource>(src: &S, offset: u64, level: u8) -> Result<&[u8], Damage> {
    let len = node_size(level);
    src.node_bytes(offset, len)
        .ok_or_else(|| damage(offset, format!("an index-tree node of {len} bytes"), "the end of the log before it"))
}

/// The checked bytes of the node `ptr` names at (`level`, `first`).
fn read<S: NodeSource>(src: &S, ptr: Slot, level: u8, first: u32) -> Result<&[u8], Damage> {
    let b = bytes_at(src, ptr.offset, level)?;
    check(b, ptr.offset, ptr.crc, level, first)?;
    Ok(b)
}

/// The level of `root`'s node, or damage (named by the root's offset) when
/// its depth is impossible or it names no node with a crc other than 0.
fn root_level(root: Root) -> Result<u8, Damage> {
    if !(1..=MAX_DEPTH).contains(&root.depth) {
        return Err(damage(root.offset, format!("an index-tree depth of 1 to {MAX_DEPTH}"), root.depth.to_string()));
    }
    if root.offset == 0 && root.crc != 0 {
        return Err(damage(0, "crc 0 for an index-tree root of offset 0", format!("crc {:#010x}", root.crc)));
    }
    Ok(root.depth - 1)
}

/// Page `pgno`'s slot in the tree `root` names: `depth` node reads, each
/// checked. A page past the tree's span reads as a zero slot (the caller
/// checks `pgno` against the version's `db_pages`).
pub fn lookup(src: &impl NodeSource, root: Root, pgno: u32) -> Result<Slot, Damage> {
    let mut level = root_level(root)?;
    if pgno as u64 >= span(level) {
        return Ok(Slot::ZERO);
    }
    let (mut ptr, mut first) = (Slot { offset: root.offset, crc: root.crc }, 0u32);
    loop {
        if ptr.offset == 0 {
            return Ok(Slot::ZERO);
        }
        let b = read(src, ptr, level, first)?;
        if level == 0 {
            return Ok(slot_at(b, (pgno - first) as usize));
        }
        let child_span = span(level - 1);
        let i = (pgno - first) as u64 / child_span;
        ptr = slot_at(b, i as usize);
        first += (i * child_span) as u32;
        level -= 1;
    }
}

/// Calls `f(pgno, slot)` for every page of the tree whose slot is not zero,
/// in increasing page order, reading each node once (for verify, upgrade,
/// comparing trees).
pub fn walk(src: &impl NodeSource, root: Root, f: &mut impl FnMut(u32, Slot)) -> Result<(), Damage> {
    let level = root_level(root)?;
    walk_node(src, Slot { offset: root.offset, crc: root.crc }, level, 0, f)
}

fn walk_node(
    src: &impl NodeSource,
    ptr: Slot,
    level: u8,
    first: u32,
    f: &mut impl FnMut(u32, Slot),
) -> Result<(), Damage> {
    if ptr.offset == 0 {
        return Ok(());
    }
    let b = read(src, ptr, level, first)?;
    let n = if level == 0 { LEAF_SLOTS } else { INNER_SLOTS };
    for i in 0..n {
        let s = slot_at(b, i);
        if s.is_zero() {
            continue;
        }
        // `structure` allows no non-zero slot or child from past u32::MAX.
        if level == 0 {
            f(first + i as u32, s);
        } else {
            walk_node(src, s, level - 1, (first as u64 + i as u64 * span(level - 1)) as u32, f)?;
        }
    }
    Ok(())
}

/// What [`update`] made: the new nodes, to be appended at the offset it was
/// given, and the new tree's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// The new nodes back to back, children before parents (empty when the
    /// tree did not change, or is all zero pages).
    pub nodes: Vec<u8>,
    pub root: Root,
}

/// What a node of the old tree is, as [`update`] descends it.
#[derive(Debug, Clone, Copy)]
enum Old {
    /// Zero pages only.
    Zero,
    /// A written node.
    Node(Slot),
    /// A node that was never written, above a root that grew: its child 0
    /// is the written node at `level`, or another lifted node above it.
    Lifted(Slot, u8),
}

fn old(ptr: Slot) -> Old {
    if ptr.offset == 0 {
        Old::Zero
    } else {
        Old::Node(ptr)
    }
}

/// The tree of the next version, copy-on-write: `old`'s tree (`None`: all
/// zero pages) with the slots in `changes` set, cut or extended (with zero
/// pages) to `db_pages` pages. Its new nodes are to be appended at file
/// offset `at` (a multiple of 8, at least [`FIRST_RECORD`]). Only nodes on a
/// changed page's path, or holding a non-zero slot past `db_pages`, or above
/// the old root when the tree grows, are written; every other node is shared.
/// Changes past `db_pages` are cut like the rest; page 0 cannot be set, and
/// a slot of offset 0 must have crc 0 (as every slot that is read back).
/// Reads (and checks) the old nodes it rewrites, plus one per level the tree
/// shrinks by; damage in them is returned.
pub fn update(
    src: &impl NodeSource,
    old_root: Option<Root>,
    changes: &BTreeMap<u32, Slot>,
    db_pages: u32,
    at: u64,
) -> Result<Update, Damage> {
    debug_assert!(at % 8 == 0 && at >= FIRST_RECORD, "index nodes go at 8-aligned offsets in the log");
    debug_assert!(!changes.contains_key(&0), "there is no page 0");
    let depth = depth_for(db_pages);
    let mut start = Old::Zero;
    if let Some(r) = old_root {
        let mut level = root_level(r)?;
        let mut ptr = Slot { offset: r.offset, crc: r.crc };
        // Shrinking: the new root is the old tree's node at (depth − 1, 0);
        // everything beside it is past `db_pages`.
        while level > depth - 1 && ptr.offset != 0 {
            ptr = slot_at(read(src, ptr, level, 0)?, 0);
            level -= 1;
        }
        start = if ptr.offset == 0 {
            Old::Zero
        } else if level < depth - 1 {
            Old::Lifted(ptr, level)
        } else {
            Old::Node(ptr)
        };
    }
    let mut b = Builder { src, at, db_pages, nodes: Vec::new() };
    let s = b.build(depth - 1, 0, start, changes)?;
    Ok(Update { nodes: b.nodes, root: Root { offset: s.offset, crc: s.crc, depth } })
}

struct Builder<'a, S> {
    src: &'a S,
    at: u64,
    db_pages: u32,
    nodes: Vec<u8>,
}

impl<S: NodeSource> Builder<'_, S> {
    /// The new pointer for the node at (`level`, `first`), which was `old`.
    fn build(&mut self, level: u8, first: u32, old: Old, changes: &BTreeMap<u32, Slot>) -> Result<Slot, Damage> {
        let last = (first as u64 + span(level) - 1).min(u32::MAX as u64) as u32;
        if first > self.db_pages {
            return Ok(Slot::ZERO);
        }
        let changed = changes.range(first..=last).next().is_some();
        match old {
            Old::Zero if !changed => return Ok(Slot::ZERO),
            Old::Node(ptr) if !changed && last <= self.db_pages => return Ok(ptr),
            _ => {}
        }
        let mut node = match old {
            Old::Node(ptr) => Node::decode(bytes_at(self.src, ptr.offset, level)?, ptr.offset, ptr.crc, level, first)?,
            _ => Node::empty(level, first),
        };
        let before = node.slots.clone();
        if level == 0 {
            for (&p, &s) in changes.range(first.max(1)..=last) {
                debug_assert!(s.offset != 0 || s.crc == 0, "page {p}: a zero page's slot has crc 0");
                node.slots[(p - first) as usize] = s;
            }
            for (i, s) in node.slots.iter_mut().enumerate() {
                if first as u64 + i as u64 > self.db_pages as u64 {
                    *s = Slot::ZERO;
                }
            }
        } else {
            let child_span = span(level - 1);
            for i in 0..INNER_SLOTS {
                let from = first as u64 + i as u64 * child_span;
                if from > self.db_pages as u64 {
                    node.slots[i] = Slot::ZERO;
                    continue;
                }
                let child = match old {
                    Old::Lifted(ptr, l) if i == 0 => {
                        if l == level - 1 {
                            Old::Node(ptr)
                        } else {
                            Old::Lifted(ptr, l)
                        }
                    }
                    Old::Lifted(..) => Old::Zero,
                    _ => self::old(node.slots[i]),
                };
                node.slots[i] = self.build(level - 1, from as u32, child, changes)?;
            }
        }
        if node.slots.iter().all(Slot::is_zero) {
            return Ok(Slot::ZERO);
        }
        if let Old::Node(ptr) = old {
            if node.slots == before {
                return Ok(ptr);
            }
        }
        let offset = self.at + self.nodes.len() as u64;
        let crc = node.encode_into(&mut self.nodes);
        Ok(Slot { offset, crc })
    }
}

/// One node of a region of nodes, as [`list_nodes`] finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeInfo {
    pub offset: u64,
    pub level: u8,
    pub first: u32,
    /// The crc of its bytes (what a parent naming it must hold).
    pub crc: u32,
}

/// The nodes of `region`, whose bytes start at file offset `at` and hold
/// nodes back to back (as [`update`] makes them, and an INDEX record holds
/// them), each checked with [`structure`] (their crcs are their parents' to
/// check). So a reclaimer can tell which node each one is.
pub fn list_nodes(region: &[u8], at: u64) -> Result<Vec<NodeInfo>, Damage> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < region.len() {
        let offset = at + pos as u64;
        let level = region[pos];
        let len = if level < MAX_DEPTH { node_size(level) } else { 1 };
        let Some(b) = region.get(pos..pos + len) else {
            return Err(damage(
                offset,
                format!("a level-{level} index-tree node of {len} bytes"),
                "the end of the region",
            ));
        };
        let (level, first) = structure(b, offset)?;
        out.push(NodeInfo { offset, level, first, crc: crc32fast::hash(b) });
        pos += len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::splitmix64;

    /// A log in memory: byte `i` is file offset `i`; new nodes are appended
    /// at the offsets `update` was told, between other bytes (the records
    /// around them).
    struct Mem(Vec<u8>);

    impl NodeSource for Mem {
        fn node_bytes(&self, offset: u64, len: usize) -> Option<&[u8]> {
            let start = usize::try_from(offset).ok()?;
            self.0.get(start..start.checked_add(len)?)
        }
    }

    impl Mem {
        fn new() -> Mem {
            Mem(vec![0; FIRST_RECORD as usize])
        }
        fn end(&self) -> u64 {
            self.0.len() as u64
        }
        /// Updates the tree and appends the new nodes where it said.
        fn apply(&mut self, old: Option<Root>, changes: &BTreeMap<u32, Slot>, db_pages: u32) -> Update {
            let at = self.end();
            let u = update(self, old, changes, db_pages, at).unwrap();
            self.0.extend_from_slice(&u.nodes);
            u
        }
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            splitmix64(&mut self.0)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
        fn slot(&mut self) -> Slot {
            Slot { offset: 512 + self.below(1 << 40), crc: self.next() as u32 }
        }
    }

    fn contents(mem: &Mem, root: Root) -> Vec<(u32, Slot)> {
        let mut out = Vec::new();
        walk(mem, root, &mut |p, s| out.push((p, s))).unwrap();
        out
    }

    #[test]
    fn leaf_and_inner_nodes_round_trip_byte_for_byte() {
        let mut r = Rng(1);
        for (level, first) in [(0u8, 48u32), (0, 0), (1, 1024), (3, 4_194_304 * 3), (5, 0)] {
            let mut node = Node::empty(level, first);
            for (i, s) in node.slots.iter_mut().enumerate() {
                if (level > 0 || first + i as u32 > 0) && (level < 5 || i < 16) {
                    *s = if level == 0 {
                        r.slot()
                    } else {
                        Slot { offset: 512 + 8 * r.below(100), crc: r.next() as u32 }
                    };
                }
            }
            let mut b = Vec::new();
            let crc = node.encode_into(&mut b);
            assert_eq!(b.len(), if level == 0 { 264 } else { 1032 });
            assert_eq!((b[0], &b[1..4], u32_at(&b, 4)), (level, &[0u8; 3][..], first));
            assert_eq!(u64_at(&b, 8 + 16 * 2), node.slots[2].offset);
            assert_eq!(u32_at(&b, 8 + 16 * 2 + 8), node.slots[2].crc);
            assert_eq!(crc, crc32fast::hash(&b));
            let at = 1 << 41; // after every child
            assert_eq!(Node::decode(&b, at, crc, level, first).unwrap(), node);
            let info = list_nodes(&b, at).unwrap();
            assert_eq!(info, vec![NodeInfo { offset: at, level, first, crc }]);
        }
    }

    #[test]
    fn depth_grows_by_64_per_level_from_one_leaf_of_16_page_numbers() {
        let cases = [(0, 1), (15, 1), (16, 2), (1023, 2), (1024, 3), (65535, 3), (262_144, 4), (4_194_303, 4)];
        for (db_pages, depth) in cases.into_iter().chain([(4_194_304, 5), (268_435_456, 6), (u32::MAX, 6)]) {
            assert_eq!(depth_for(db_pages), depth, "{db_pages} pages");
            assert!(span(depth - 1) > db_pages as u64);
        }
    }

    /// A valid node's bytes with one rule broken, and its crc recomputed.
    fn broken(level: u8, first: u32, at: u64, edit: impl Fn(&mut Vec<u8>)) -> Result<(), Damage> {
        let mut node = Node::empty(level, first);
        node.slots[1] = Slot { offset: 512, crc: 7 };
        let mut b = Vec::new();
        node.encode_into(&mut b);
        edit(&mut b);
        check(&b, at, crc32fast::hash(&b), level, first)
    }

    #[test]
    fn each_structural_rule_is_checked_even_under_a_matching_crc() {
        let at = 1 << 20;
        assert_eq!(broken(1, 1024, at, |_| {}), Ok(()));
        type Edit = Box<dyn Fn(&mut Vec<u8>)>;
        fn put(at: usize, v: &[u8]) -> Edit {
            let v = v.to_vec();
            Box::new(move |b: &mut Vec<u8>| b[at..at + v.len()].copy_from_slice(&v))
        }
        let slot1 = NODE_SLOTS + SLOT_SIZE;
        let cases: Vec<(u8, u32, Edit)> = vec![
            (1, 1024, put(NODE_LEVEL, &[2])),                     // another level
            (1, 1024, put(NODE_RESERVED + 2, &[1])),              // reserved header byte
            (1, 1024, put(NODE_FIRST, &2048u32.to_le_bytes())),   // another node's first
            (1, 1024, put(NODE_FIRST, &1040u32.to_le_bytes())),   // first not aligned
            (1, 1024, put(slot1 + SLOT_RESERVED, &[1])),          // reserved slot bytes
            (1, 1024, put(slot1 + SLOT_OFFSET, &[0, 0])),         // offset 0, crc 7
            (1, 1024, put(slot1 + SLOT_OFFSET, &[4, 2])),         // child not 8-aligned
            (1, 1024, put(slot1 + SLOT_OFFSET, &[0, 1])),         // child below 512
            (1, 1024, put(slot1 + SLOT_OFFSET + 2, &[0x10])),     // child after its parent
            (1, 1024, put(slot1 + SLOT_OFFSET, &[0xf8; 8])),      // child end overflows
            (0, 0, put(NODE_SLOTS, &600u64.to_le_bytes())),       // page 0's slot
            (0, 16, Box::new(|b: &mut Vec<u8>| b.truncate(200))), // short node
            (5, 0, put(NODE_SLOTS + 16 * SLOT_SIZE, &[0, 2])),    // child past page 2^32
        ];
        for (n, (level, first, edit)) in cases.into_iter().enumerate() {
            let d = broken(level, first, at, edit).expect_err(&format!("case {n}"));
            assert_eq!(d.offset, at, "case {n}: {d}");
            assert!(!d.expected.is_empty() && !d.found.is_empty());
        }
        let level_6 = broken(5, 0, at, put(NODE_LEVEL, &[6]));
        assert!(level_6.is_err());
        let d = check(&[0; LEAF_SIZE], at, 5, 0, 16).unwrap_err();
        assert!(d.expected.contains("crc 0x00000005"), "{d}");
    }

    /// A tree of `n` random pages among `1..=db_pages`, built in one update
    /// (so every node written is reachable from its root).
    fn sample_tree(r: &mut Rng, n: usize, db_pages: u32) -> (Mem, Update, Vec<NodeInfo>, BTreeMap<u32, Slot>) {
        let mut mem = Mem::new();
        let changes: BTreeMap<u32, Slot> = (0..n).map(|_| (1 + r.below(db_pages as u64) as u32, r.slot())).collect();
        let at = mem.end();
        let u = mem.apply(None, &changes, db_pages);
        let nodes = list_nodes(&u.nodes, at).unwrap();
        (mem, u, nodes, changes)
    }

    #[test]
    fn a_damaged_byte_in_any_node_is_named_by_that_nodes_offset() {
        let mut r = Rng(2);
        let (mut mem, u, nodes, changes) = sample_tree(&mut r, 40, 5000);
        assert_eq!(u.root.depth, 3);
        assert_eq!(nodes.last().map(|n| (n.offset, n.crc)), Some((u.root.offset, u.root.crc)));
        assert!(nodes.len() > 40, "{} nodes", nodes.len());
        for n in &nodes {
            let pgno = n.first.max(1);
            for at in n.offset..n.offset + node_size(n.level) as u64 {
                let good = mem.0[at as usize];
                mem.0[at as usize] ^= 1 + r.below(255) as u8;
                let d = lookup(&mem, u.root, pgno).unwrap_err();
                assert_eq!(d.offset, n.offset, "byte {at}: {d}");
                if at % 97 == 0 {
                    assert_eq!(walk(&mem, u.root, &mut |_, _| {}).unwrap_err().offset, n.offset);
                    let change = BTreeMap::from([(pgno, r.slot())]);
                    assert_eq!(update(&mem, Some(u.root), &change, 5000, mem.end()).unwrap_err().offset, n.offset);
                }
                mem.0[at as usize] = good;
            }
        }
        assert_eq!(contents(&mem, u.root), changes.into_iter().collect::<Vec<_>>());
        let d = lookup(&mem, Root { depth: 7, ..u.root }, 1).unwrap_err();
        assert_eq!(d.offset, u.root.offset);
        assert!(lookup(&mem, Root { offset: 0, ..u.root }, 1).is_err(), "an empty root has crc 0");
        assert_eq!(lookup(&mem, Root { offset: 0, crc: 0, depth: 3 }, 1), Ok(Slot::ZERO));
        mem.0.truncate(u.root.offset as usize + 100);
        assert_eq!(lookup(&mem, u.root, 1).unwrap_err().offset, u.root.offset);
    }

    /// The next database size: mostly the same, else a growth (by a few
    /// pages, by a lot, or to the largest u32) or a truncation.
    fn next_size(r: &mut Rng, db_pages: u32) -> u32 {
        match r.below(20) {
            0..=11 => db_pages,
            12..=13 => db_pages.saturating_add(1 + r.below(40) as u32),
            14 => db_pages.saturating_add(r.below(300_000) as u32),
            15 => u32::MAX - r.below(3) as u32,
            16..=17 => r.below(db_pages as u64 + 1) as u32,
            _ => r.below(3000).min(db_pages as u64) as u32,
        }
    }

    #[test]
    fn updates_growths_and_truncations_match_a_model_and_old_roots_keep_their_pages() {
        let mut r = Rng(3);
        let mut mem = Mem::new();
        let (mut root, mut db_pages, mut model) = (None::<Root>, 0u32, BTreeMap::<u32, Slot>::new());
        let mut kept = Vec::new();
        let mut depths = [0usize; MAX_DEPTH as usize + 1];
        for round in 0..1500 {
            let new_pages = next_size(&mut r, db_pages);
            let mut changes = BTreeMap::new();
            for _ in 0..r.below(12) {
                // Mostly within the new size, near its end, or (cut) past it.
                let p = match r.below(8) {
                    0 => new_pages.saturating_sub(r.below(20) as u32),
                    1 => new_pages.saturating_add(1 + r.below(20) as u32),
                    _ => 1 + r.below(new_pages as u64) as u32,
                };
                let s = if r.below(6) == 0 { Slot::ZERO } else { r.slot() };
                changes.insert(p.max(1), s);
            }
            // Other records between index nodes.
            mem.0.extend(std::iter::repeat_n(0xA5, 8 * r.below(4) as usize));
            let at = mem.end();
            let u = mem.apply(root, &changes, new_pages);
            model.extend(&changes);
            model.retain(|&p, s| p <= new_pages && !s.is_zero());
            let depth = depth_for(new_pages);
            assert_eq!(u.root.depth, depth);
            depths[depth as usize] += 1;

            // The new nodes are well-formed, back to back, children first.
            let nodes = list_nodes(&u.nodes, at).unwrap();
            if let Some(last) = nodes.last() {
                assert_eq!((last.offset, last.crc, last.level), (u.root.offset, u.root.crc, depth - 1));
            }
            let k = changes.len();
            if new_pages == db_pages {
                assert!(nodes.len() <= k * depth as usize, "round {round}: {} nodes for {k} pages", nodes.len());
                if k == 0 {
                    assert_eq!(Some(u.root), root);
                }
            } else {
                assert!(nodes.len() <= (k + 1) * depth as usize, "round {round}: {} nodes", nodes.len());
            }

            // Every page: the walk lists exactly the model's non-zero pages;
            // lookups agree on every page of a small database, else on the
            // changed pages, the ends and a sample.
            assert_eq!(contents(&mem, u.root), model.iter().map(|(&p, &s)| (p, s)).collect::<Vec<_>>());
            let sample: Vec<u32> = if new_pages <= 600 {
                (1..=new_pages).collect()
            } else {
                let ends = [1, new_pages, new_pages - 1, db_pages];
                let random = (0..16).map(|_| 1 + r.below(new_pages as u64) as u32);
                changes.keys().copied().chain(ends).chain(random).collect()
            };
            for p in sample.into_iter().chain([new_pages.saturating_add(1), u32::MAX]) {
                let want = if p <= new_pages { model.get(&p).copied().unwrap_or_default() } else { Slot::ZERO };
                assert_eq!(lookup(&mem, u.root, p).unwrap(), want, "round {round}: page {p} of {new_pages}");
            }
            if round % 25 == 0 {
                kept.push((u.root, model.clone()));
            }
            (root, db_pages) = (Some(u.root), new_pages);
        }
        // Copy-on-write: every old version still reads exactly its pages.
        for (root, pages) in kept {
            assert_eq!(contents(&mem, root), pages.into_iter().collect::<Vec<_>>());
        }
        assert!(depths[1..].iter().all(|&n| n > 0), "every depth was exercised: {depths:?}");
    }

    #[test]
    fn zeroing_every_page_leaves_an_empty_tree_and_no_change_writes_nothing() {
        let mut r = Rng(4);
        let (mut mem, u, _, changes) = sample_tree(&mut r, 30, 70_000);
        assert_eq!(mem.apply(Some(u.root), &BTreeMap::new(), 70_000), Update { nodes: Vec::new(), root: u.root });
        let same: BTreeMap<u32, Slot> = changes.iter().take(5).map(|(&p, &s)| (p, s)).collect();
        assert_eq!(mem.apply(Some(u.root), &same, 70_000).nodes, Vec::<u8>::new());
        let zero: BTreeMap<u32, Slot> = changes.keys().map(|&p| (p, Slot::ZERO)).collect();
        let z = mem.apply(Some(u.root), &zero, 70_000);
        assert_eq!((z.nodes.len(), z.root), (0, Root { offset: 0, crc: 0, depth: 4 }));
        assert_eq!((lookup(&mem, z.root, 5).unwrap(), contents(&mem, z.root)), (Slot::ZERO, vec![]));
        let t = mem.apply(Some(u.root), &BTreeMap::new(), 0);
        assert_eq!(t.root, Root { offset: 0, crc: 0, depth: 1 });
        assert_eq!(contents(&mem, u.root), changes.into_iter().collect::<Vec<_>>());
    }

    /// Nodes that are nearly right: each rule holds with high probability,
    /// children point at earlier nodes (with their crcs) or anywhere.
    fn garbage_log(r: &mut Rng) -> (Mem, Vec<(u64, u8, u32, u32)>) {
        let mut mem = Mem::new();
        let mut made: Vec<(u64, u8, u32, u32)> = Vec::new();
        for _ in 0..1 + r.below(30) {
            let level = r.below(7) as u8;
            let mut b = vec![0u8; if level == 0 { LEAF_SIZE } else { INNER_SIZE }];
            b[0] = if r.below(10) == 0 { r.next() as u8 } else { level };
            let first = if r.below(4) == 0 { r.next() as u32 } else { (r.next() as u32) & !((span(level) - 1) as u32) };
            b[NODE_FIRST..NODE_SLOTS].copy_from_slice(&first.to_le_bytes());
            for i in 0..(b.len() - NODE_SLOTS) / SLOT_SIZE {
                let at = NODE_SLOTS + i * SLOT_SIZE;
                let s = match r.below(5) {
                    0 | 1 => Slot::ZERO,
                    2 if !made.is_empty() => {
                        let m = made[r.below(made.len() as u64) as usize];
                        Slot { offset: m.0, crc: m.3 }
                    }
                    _ => Slot { offset: r.next() >> r.below(64), crc: r.next() as u32 },
                };
                b[at..at + 8].copy_from_slice(&s.offset.to_le_bytes());
                b[at + 8..at + 12].copy_from_slice(&s.crc.to_le_bytes());
                if r.below(50) == 0 {
                    b[at + 12] = 1;
                }
            }
            if r.below(20) == 0 {
                b.truncate(r.below(b.len() as u64) as usize);
            }
            let offset = mem.end();
            mem.0.extend_from_slice(&b);
            mem.0.resize(mem.0.len().next_multiple_of(8), 0);
            made.push((offset, level, first, crc32fast::hash(&b)));
        }
        (mem, made)
    }

    #[test]
    fn garbage_gives_damage_never_a_panic() {
        let mut r = Rng(5);
        let mut answers = [0usize; 2];
        for _ in 0..400 {
            let (mem, made) = garbage_log(&mut r);
            let region = &mem.0[FIRST_RECORD as usize..];
            let _ = list_nodes(region, FIRST_RECORD);
            let noise: Vec<u8> = (0..r.below(3000)).map(|_| r.next() as u8).collect();
            assert!(list_nodes(&noise, 8 * r.below(1 << 50)).is_err() || noise.is_empty());
            for &(offset, level, _, crc) in &made {
                let depth = if r.below(10) == 0 { r.below(9) as u8 } else { level + 1 };
                let root = Root { offset, crc, depth };
                for _ in 0..20 {
                    answers[lookup(&mem, root, r.next() as u32).is_ok() as usize] += 1;
                }
                let mut seen = 0u64;
                let _ = walk(&mem, root, &mut |_, _| seen += 1);
                let changes: BTreeMap<u32, Slot> =
                    (0..r.below(4)).map(|_| (1 + r.below(1 << 31) as u32, r.slot())).collect();
                let grown = update(&mem, Some(root), &changes, r.next() as u32, mem.end());
                if let Ok(u) = grown {
                    assert!(u.nodes.len() <= (changes.len() + 2) * MAX_DEPTH as usize * INNER_SIZE);
                }
            }
        }
        assert!(answers[0] > 0 && answers[1] > 0, "both damage and pages were read: {answers:?}");
    }
}
