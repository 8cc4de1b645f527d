//! The pages whose map slots differ between two versions, at a cost
//! proportional to the difference rather than to the database (issue 21,
//! item 5: revert in constant time, diff proportional to the change).
//!
//! * Format 4: the two checkpoint trees are walked together from their
//!   roots; a child pointer (offset, crc) equal in both names the same bytes
//!   (nodes are immutable once written, and a node a reclamation step
//!   relocated is read at a byte-for-byte copy checked against that same
//!   crc), so the subtree is the same in both and is skipped unread. Nodes
//!   are read as lookups read them (`index::place`: below the boundary at
//!   their copy; `Mapping::node`: checked, cached). The pages the walk finds
//!   different, those either overlay holds and those between the two cuts
//!   are candidates, each compared by its effective slot
//!   (`Version::map_slot`, the lookup every read uses).
//! * Format 3: full maps are persistent by chunk; chunks the two maps share
//!   (the same allocation) are skipped, the others compared slot by slot.
//! * Different page sizes, or one map of each kind: every page.
//!
//! # Invariants
//! 1. [`changed_pages`] lists, in increasing order, exactly the pages `p`
//!    in `1..=max(db pages)` for which `a.map_slot(p)` and `b.map_slot(p)`
//!    are not both `Ok` and equal (a page past one version's end is
//!    `Ok(None)` there), every page when the page sizes differ. A damaged
//!    node therefore makes its pages changed, never silently equal, except
//!    inside a subtree both trees share: its pages read exactly alike in
//!    both (the same bytes at the same place), damaged or not.
//! 2. Format 4: nodes read are those on the paths to differing pages (plus
//!    overlay and cut candidates' lookups), never a shared subtree.

use crate::control::Control;
use crate::error::Result;
use crate::index::{self, TreeMap};
use crate::mapping::Mapping;
use crate::tree;
use crate::version::{Pages, Version};

/// The pages that differ, and what finding them cost.
#[derive(Debug, Default, Clone)]
pub struct Changed {
    /// Increasing page numbers (invariant 1).
    pub pages: Vec<u32>,
    /// Index-tree nodes the walk of the two trees read (format 4).
    pub nodes_read: u64,
    /// Effective-slot lookups of candidate pages (two a page, format 4 or
    /// mixed maps).
    pub lookups: u64,
}

/// The pages whose map slots differ between `a` and `b` (invariant 1).
pub fn changed_pages(a: &Version, b: &Version) -> Changed {
    let (na, nb) = (a.db_pages(), b.db_pages());
    let (lo, hi) = (na.min(nb), na.max(nb));
    let mut c = Changed::default();
    if a.page_size != b.page_size {
        c.pages = (1..=hi).collect();
        return c;
    }
    match (&a.map, &b.map) {
        (Pages::Full(x), Pages::Full(y)) => x.differing(y, lo, &mut c.pages),
        (Pages::Tree(x), Pages::Tree(y)) => {
            let mut cand = Vec::new();
            candidates(a, x, b, y, lo, &mut cand, &mut c.nodes_read);
            cand.sort_unstable();
            cand.dedup();
            c.lookups = 2 * cand.len() as u64;
            c.pages = cand.into_iter().filter(|&p| differs(a, b, p)).collect();
        }
        _ => {
            c.lookups = 2 * lo as u64;
            c.pages = (1..=lo).filter(|&p| differs(a, b, p)).collect();
        }
    }
    c.pages.extend(lo + 1..=hi);
    c
}

/// Page `pgno`'s map slot in `v` as reads look it up (format 4: a node
/// below the boundary read at its copy), before any redirection of the slot
/// itself: what [`changed_pages`] compares (None past the database's end).
pub fn map_slot(v: &Version, pgno: u32) -> Result<Option<crate::pagemap::Slot>> {
    v.map_slot(pgno)
}

/// Invariant 1's comparison of one page.
fn differs(a: &Version, b: &Version, p: u32) -> bool {
    !matches!((a.map_slot(p), b.map_slot(p)), (Ok(x), Ok(y)) if x == y)
}

/// Pages up to `lo` whose effective slots may differ: those the trees'
/// walk finds different (up to the lower cut), every overlay entry, and the
/// pages between the two cuts (past its cut a page without an entry is a
/// zero page whatever its tree says: `overlay.rs` invariant 2).
fn candidates(a: &Version, ta: &TreeMap, b: &Version, tb: &TreeMap, lo: u32, out: &mut Vec<u32>, nodes: &mut u64) {
    out.extend(ta.overlay.iter().chain(tb.overlay.iter()).map(|(p, _)| p).filter(|&p| p <= lo));
    let (ca, cb) = (ta.overlay.cut().min(lo), tb.overlay.cut().min(lo));
    out.extend(ca.min(cb) + 1..=ca.max(cb));
    let sa = Side { root: ta.root, m: &a.mapping, end: ta.end, control: &a.control };
    let sb = Side { root: tb.root, m: &b.mapping, end: tb.end, control: &b.control };
    let limit = ca.min(cb);
    if limit == 0 {
        return;
    }
    let (Some(la), Some(lb)) = (sa.root_level(), sb.root_level()) else {
        // A depth no tree has: every page, and the lookups name the damage.
        out.extend(1..=limit);
        return;
    };
    let top = la.max(lb);
    let mut w = Walk { a: sa, b: sb, limit, out, nodes };
    w.go(top, 0, w.a.start(top), w.b.start(top));
}

/// One version's tree, and how its nodes are read.
struct Side<'a> {
    root: Option<tree::Root>,
    m: &'a Mapping,
    end: u64,
    control: &'a Control,
}

/// A child pointer during the walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum P {
    /// A subtree of zero pages.
    Zero,
    /// A node, named by its parent (or the checkpoint).
    At(tree::Slot),
    /// Above this side's root (the other tree is deeper): child 0 leads to
    /// the root, the other children are zero (a shallower tree spans fewer
    /// pages; a lookup past its span is a zero page).
    Lifted,
}

impl Side<'_> {
    /// The root's level; Some(0) for no tree (only zero pages); None for a
    /// depth no tree has.
    fn root_level(&self) -> Option<u8> {
        match self.root {
            None => Some(0),
            Some(r) if r.offset == 0 => Some(0),
            Some(r) if (1..=tree::MAX_DEPTH).contains(&r.depth) => Some(r.depth - 1),
            Some(_) => None,
        }
    }

    fn start(&self, top: u8) -> P {
        match self.root {
            Some(r) if r.offset != 0 => {
                if r.depth - 1 == top {
                    P::At(tree::Slot { offset: r.offset, crc: r.crc })
                } else {
                    P::Lifted
                }
            }
            _ => P::Zero,
        }
    }

    /// The bytes of the node `p` names at (`level`, `first`), read as a
    /// lookup reads them; None for a zero or lifted node.
    fn read(&self, p: P, level: u8, first: u32, nodes: &mut u64) -> Result<Option<Vec<u8>>> {
        let P::At(s) = p else { return Ok(None) };
        *nodes += 1;
        let (at, bound) = index::place(self.m, self.end, self.control, s, level)?;
        self.m.node(s, at, level, first, bound).map(Some)
    }

    /// Child `i` of the inner node `p` at `level` (its bytes `b`).
    fn child(&self, p: P, b: &Option<Vec<u8>>, level: u8, i: usize) -> P {
        match (p, b) {
            (P::Lifted, _) if i == 0 => match self.root {
                Some(r) if r.depth == level => P::At(tree::Slot { offset: r.offset, crc: r.crc }),
                _ => P::Lifted,
            },
            (P::At(_), Some(b)) => {
                let s = tree::slot_at(b, i);
                if s.is_zero() {
                    P::Zero
                } else {
                    P::At(s)
                }
            }
            _ => P::Zero,
        }
    }
}

struct Walk<'a, 'o> {
    a: Side<'a>,
    b: Side<'a>,
    /// Pages past this are not compared here.
    limit: u32,
    out: &'o mut Vec<u32>,
    nodes: &'o mut u64,
}

impl Walk<'_, '_> {
    fn go(&mut self, level: u8, first: u32, pa: P, pb: P) {
        if pa == pb || first > self.limit {
            return;
        }
        let (ba, bb) = match (self.a.read(pa, level, first, self.nodes), self.b.read(pb, level, first, self.nodes)) {
            (Ok(x), Ok(y)) => (x, y),
            _ => {
                // A node that does not read: its pages are candidates, and
                // their lookups name the damage (invariant 1).
                let last = (first as u64 + tree::span(level) - 1).min(self.limit as u64) as u32;
                self.out.extend(first.max(1)..=last);
                return;
            }
        };
        if level == 0 {
            let slot = |b: &Option<Vec<u8>>, i| b.as_ref().map_or(tree::Slot::ZERO, |b| tree::slot_at(b, i));
            for i in 0..tree::LEAF_SLOTS {
                let p = first as u64 + i as u64;
                if p >= 1 && p <= self.limit as u64 && slot(&ba, i) != slot(&bb, i) {
                    self.out.push(p as u32);
                }
            }
            return;
        }
        for i in 0..tree::INNER_SLOTS {
            let from = first as u64 + i as u64 * tree::span(level - 1);
            if from > self.limit as u64 {
                break;
            }
            let (ca, cb) = (self.a.child(pa, &ba, level, i), self.b.child(pb, &bb, level, i));
            self.go(level - 1, from as u32, ca, cb);
        }
    }
}
