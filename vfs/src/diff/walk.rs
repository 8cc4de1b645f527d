//! The walk of one b-tree in two versions, at a cost proportional to the
//! change: the interior pages of both trees are read to list their leaves in
//! key order; a leaf that both versions hold at the same page number with
//! the same [`Slot`](crate::pagemap::Slot) (same frame, so identical bytes)
//! holds the same rows in both, and is dropped from both lists unread.
//! Only the remaining leaves (and, for index b-trees, interior cells, which
//! hold entries too) are decoded; the caller matches their rows by key.
//!
//! A skipped leaf's own bytes are identical, but an overflow page of one of
//! its cells can change alone (SQLite overwrites a payload of the same size
//! in place, and `sqlite3_blob_write` writes overflow pages directly). So
//! every page of the newer version whose slot changed must be accounted for
//! (`Accounting`); a changed page that no walked tree, freelist or pointer
//! map explains may be such an overflow page, and then the skipped leaves'
//! overflow chains are checked ([`Tree::recheck`]).
//!
//! Bounds: a tree is at most 64 levels deep and no page is visited twice,
//! so a damaged page that points back up the tree is an error, not a loop.

use super::pageset::PageSet;

use super::btree::{record, Node, Pages, INTERIOR_INDEX};
use super::{DiffError, Value};

const MAX_DEPTH: usize = 64;

/// A piece of a tree in key order: a leaf page, or an entry stored in an
/// interior page of an index b-tree (page, cell index).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Seg {
    Leaf(u32),
    Cell(u32, usize),
}

/// One entry as stored: the rowid (table b-trees), the page holding its
/// cell, and the record's raw bytes. Equal bytes are an equal row, so a row
/// is decoded only when the two versions' bytes differ.
#[derive(Debug, Clone)]
pub struct Entry {
    pub pgno: u32,
    pub rowid: i64,
    pub payload: Vec<u8>,
}

impl Entry {
    pub fn values(&self, p: &Pages<'_>) -> Result<Vec<Value>, DiffError> {
        record(&self.payload, p.encoding).map_err(|e| p.err(self.pgno, format!("record of a cell: {e}")))
    }
}

/// One tree in one version: its pieces in key order, and every page it uses.
pub struct Tree {
    segs: Vec<Seg>,
    /// Interior and leaf pages of the tree.
    pub pages: PageSet,
}

impl Tree {
    pub fn empty() -> Tree {
        Tree { segs: Vec::new(), pages: PageSet::new() }
    }

    /// Reads the interior pages of the tree rooted at `root` (0: no tree).
    pub fn read(p: &Pages<'_>, root: u32) -> Result<Tree, DiffError> {
        let mut t = Tree { segs: Vec::new(), pages: PageSet::new() };
        if root == 0 {
            return Ok(t);
        }
        // SQLite's b-trees are balanced: the left-most path gives the depth
        // of every leaf, and leaves are then listed from their parents
        // without being read.
        let mut leaf_depth = 0;
        let mut pg = root;
        loop {
            let node = Node::read(p, pg)?;
            if node.is_leaf() {
                break;
            }
            leaf_depth += 1;
            if leaf_depth > MAX_DEPTH {
                return Err(p.err(pg, format!("b-tree deeper than {MAX_DEPTH} levels")));
            }
            pg = if node.cells.is_empty() { node.right } else { node.child(0) };
        }
        t.descend(p, root, 0, leaf_depth)?;
        Ok(t)
    }

    fn descend(&mut self, p: &Pages<'_>, pgno: u32, depth: usize, leaf_depth: usize) -> Result<(), DiffError> {
        if !self.pages.insert(pgno) {
            return Err(p.err(pgno, "page appears twice in one b-tree"));
        }
        if pgno == 0 || pgno > p.version.db_pages() {
            return Err(p.err(pgno, "b-tree page outside the database"));
        }
        if depth == leaf_depth {
            self.segs.push(Seg::Leaf(pgno));
            return Ok(());
        }
        let node = Node::read(p, pgno)?;
        if node.is_leaf() {
            return Err(p.err(pgno, format!("leaf at depth {depth}, other leaves at {leaf_depth}")));
        }
        for i in 0..node.cells.len() {
            self.descend(p, node.child(i), depth + 1, leaf_depth)?;
            if node.kind == INTERIOR_INDEX {
                self.segs.push(Seg::Cell(pgno, i));
            }
        }
        self.descend(p, node.right, depth + 1, leaf_depth)
    }

    /// Drops the leaves both trees hold unchanged (same page, same slot):
    /// those in both versions that `changed` (the pages whose slots differ,
    /// `crate::changed`) does not hold; no map lookup a leaf.
    /// Returns the dropped leaves.
    pub fn cancel(a: &mut Tree, pa: &Pages<'_>, b: &mut Tree, pb: &Pages<'_>, changed: &PageSet) -> Vec<u32> {
        if pa.version.page_size != pb.version.page_size {
            return Vec::new();
        }
        let lo = pa.version.db_pages().min(pb.version.db_pages());
        let same = |pg: u32| pg >= 1 && pg <= lo && !changed.contains(&pg);
        let a_leaves: PageSet =
            a.segs.iter().filter_map(|s| if let Seg::Leaf(p) = s { Some(*p) } else { None }).collect();
        let both: PageSet = b
            .segs
            .iter()
            .filter_map(|s| if let Seg::Leaf(p) = s { Some(*p) } else { None })
            .filter(|p| a_leaves.contains(p) && same(*p))
            .collect();
        a.segs.retain(|s| !matches!(s, Seg::Leaf(p) if both.contains(p)));
        b.segs.retain(|s| !matches!(s, Seg::Leaf(p) if both.contains(p)));
        both.iter().collect()
    }

    /// The remaining entries, in key order, one leaf in memory at a time.
    pub fn stream(&self) -> Stream<'_> {
        Stream { segs: &self.segs, at: 0, buf: std::collections::VecDeque::new() }
    }

    /// All remaining entries; overflow pages read go into `chains`.
    pub fn entries(&self, p: &Pages<'_>, chains: &mut PageSet) -> Result<Vec<Entry>, DiffError> {
        let mut s = self.stream();
        let mut out = Vec::new();
        while let Some(e) = s.next(p, chains)? {
            out.push(e);
        }
        Ok(out)
    }
}

/// A tree's remaining entries in key order.
pub struct Stream<'t> {
    segs: &'t [Seg],
    at: usize,
    buf: std::collections::VecDeque<Entry>,
}

impl Stream<'_> {
    /// The next entry; overflow pages read go into `chains`.
    pub fn next(&mut self, p: &Pages<'_>, chains: &mut PageSet) -> Result<Option<Entry>, DiffError> {
        while self.buf.is_empty() {
            let Some(seg) = self.segs.get(self.at) else { return Ok(None) };
            self.at += 1;
            match *seg {
                Seg::Leaf(pg) => {
                    let mut v = Vec::new();
                    leaf_entries(p, pg, chains, &mut v)?;
                    self.buf.extend(v);
                }
                Seg::Cell(pg, i) => {
                    let node = Node::read(p, pg)?;
                    self.buf.push_back(entry(p, &node, i, chains)?);
                }
            }
        }
        Ok(self.buf.pop_front())
    }
}

/// Appends the entries of leaf `pg`.
pub fn leaf_entries(p: &Pages<'_>, pg: u32, chains: &mut PageSet, out: &mut Vec<Entry>) -> Result<(), DiffError> {
    let node = Node::read(p, pg)?;
    if !node.is_leaf() {
        return Err(p.err(pg, "expected a leaf page"));
    }
    for i in 0..node.cells.len() {
        out.push(entry(p, &node, i, chains)?);
    }
    Ok(())
}

fn entry(p: &Pages<'_>, node: &Node<'_>, i: usize, chains: &mut PageSet) -> Result<Entry, DiffError> {
    let cell = node.cell(p, i)?;
    let mut chain = Vec::new();
    let payload = cell.payload(p, node, &mut chain)?;
    chains.extend(chain);
    Ok(Entry { pgno: node.pgno, rowid: cell.rowid, payload })
}

/// True when a cell of leaf `pg` has an overflow page in `changed`.
pub fn leaf_overflow_touches(p: &Pages<'_>, pg: u32, changed: &PageSet) -> Result<bool, DiffError> {
    let node = Node::read(p, pg)?;
    for i in 0..node.cells.len() {
        let cell = node.cell(p, i)?;
        if cell.overflow != 0 && cell.chain(p)?.iter().any(|c| changed.contains(c)) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The freelist pages (trunks and leaves) and pointer-map pages of a version.
pub fn free_and_ptrmap(p: &Pages<'_>) -> Result<PageSet, DiffError> {
    let mut out = PageSet::new();
    let n = p.version.db_pages();
    if n == 0 {
        return Ok(out);
    }
    let page1 = p.page(1)?;
    let be = |b: &[u8], at: usize| u32::from_be_bytes(b[at..at + 4].try_into().unwrap());
    let mut trunk = be(&page1, 32);
    while trunk != 0 {
        if !out.insert(trunk) || out.len() > n as usize {
            return Err(p.err(trunk, "freelist trunk visited twice"));
        }
        let t = p.page(trunk)?;
        let count = be(&t, 4) as usize;
        if 8 + 4 * count > p.usable {
            return Err(p.err(trunk, format!("freelist trunk lists {count} leaves")));
        }
        out.extend((0..count).map(|i| be(&t, 8 + 4 * i)));
        trunk = be(&t, 0);
    }
    if be(&page1, 52) != 0 {
        let step = (p.usable / 5) as u32 + 1;
        let mut pg = 2;
        while pg <= n {
            out.insert(pg);
            pg += step;
        }
    }
    // The page holding the lock byte (offset 2^30) is never used.
    out.insert((0x4000_0000 / p.version.page_size) + 1);
    Ok(out)
}
