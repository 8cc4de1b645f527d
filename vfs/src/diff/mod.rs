//! The difference between two versions of a database, row by row, read
//! straight from the log's b-tree pages (no SQLite involved), at a cost
//! proportional to the change rather than to the database.
//!
//! [`diff`] lists, for every table, the rows inserted, deleted and updated
//! (keyed by rowid, or by PRIMARY KEY for WITHOUT ROWID tables), and the
//! objects of `sqlite_schema` created, dropped or altered. How little it
//! reads: see [`walk`]. Regular indexes are not compared (their content
//! follows from the tables'); their definitions are, as schema changes.
//!
//! Invariants: a [`Diff`] holds no change for a row whose values are equal
//! in both versions; every page number read from the file is checked before
//! use, and a damaged page is a [`DiffError::Malformed`] naming it.

pub mod btree;
mod catalog;
pub mod json;
mod pageset;
mod rows;
pub mod schema;
mod sql;
pub mod value;
mod walk;

use std::collections::{BTreeMap, HashSet};

use pageset::PageSet;
use std::fmt;

pub use schema::{Object, Table};
pub use sql::to_sql;
pub use value::Value;

use crate::error::Error;
use crate::log::Version;
use btree::Pages;
use walk::Tree;

/// Why a diff failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum DiffError {
    /// Reading the log failed (I/O, a crc mismatch).
    Log(Error),
    /// A b-tree page that is not what SQLite writes.
    Malformed { version: u64, page: u32, what: String },
}

impl DiffError {
    pub fn malformed(version: u64, page: u32, what: impl Into<String>) -> DiffError {
        DiffError::Malformed { version, page, what: what.into() }
    }
}

impl fmt::Display for DiffError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiffError::Log(e) => write!(f, "{e}"),
            DiffError::Malformed { version, page, what } => {
                write!(f, "version {version}, page {page}: malformed b-tree page: {what}")
            }
        }
    }
}

impl std::error::Error for DiffError {}

/// What to compare.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Only this table (and schema changes of objects on it).
    pub table: Option<String>,
    /// Also keep every row of tables whose definition changed, and of a
    /// changed `sqlite_sequence` (what `--sql` needs to rewrite them whole).
    pub full_rows: bool,
}

/// A row's identity.
#[derive(Debug, Clone, PartialEq)]
pub enum Key {
    Rowid(i64),
    /// PRIMARY KEY values of a WITHOUT ROWID table, in key order.
    Pk(Vec<Value>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum RowChange {
    Insert {
        key: Key,
        new: Vec<Value>,
    },
    Delete {
        key: Key,
        old: Vec<Value>,
    },
    /// `old` in the old version's columns, `new` in the new one's.
    Update {
        key: Key,
        old: Vec<Value>,
        new: Vec<Value>,
    },
}

impl RowChange {
    pub fn key(&self) -> &Key {
        match self {
            RowChange::Insert { key, .. } | RowChange::Delete { key, .. } | RowChange::Update { key, .. } => key,
        }
    }
}

/// How a table's definition changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableStatus {
    Same,
    Created,
    Dropped,
    Altered,
}

/// The changes of one table.
#[derive(Debug, Clone)]
pub struct TableDiff {
    pub name: String,
    pub status: TableStatus,
    /// Layout in the new version (the old one for a dropped table).
    pub table: Table,
    pub old_table: Table,
    pub changes: Vec<RowChange>,
    /// Every row of the new version, when [`Options::full_rows`] asked for
    /// it and the table was altered (or is `sqlite_sequence`).
    pub all_rows: Option<Vec<(Key, Vec<Value>)>>,
}

impl TableDiff {
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for ch in &self.changes {
            match ch {
                RowChange::Insert { .. } => c.0 += 1,
                RowChange::Delete { .. } => c.1 += 1,
                RowChange::Update { .. } => c.2 += 1,
            }
        }
        c
    }

    /// The columns an update changed: (name, old, new), by column name.
    pub fn changed_columns<'a>(&'a self, old: &'a [Value], new: &'a [Value]) -> Vec<(&'a str, &'a Value, &'a Value)> {
        changed_columns(&self.old_table, &self.table, old, new)
    }
}

/// The columns of `new_t` whose value differs from the same-named column
/// of `old_t` (a column the old table lacks counts as NULL there).
pub fn changed_columns<'a>(
    old_t: &'a Table,
    new_t: &'a Table,
    old: &'a [Value],
    new: &'a [Value],
) -> Vec<(&'a str, &'a Value, &'a Value)> {
    let same_layout = old_t.columns == new_t.columns;
    let mut out = Vec::new();
    for (i, name) in new_t.columns.iter().enumerate() {
        let j = if same_layout { Some(i) } else { old_t.columns.iter().position(|c| c == name) };
        let o = j.and_then(|j| old.get(j)).unwrap_or(&Value::Null);
        let n = &new[i];
        if o != n {
            out.push((name.as_str(), o, n));
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Drop,
    Alter,
}

/// A created, dropped or altered object of `sqlite_schema`.
#[derive(Debug, Clone)]
pub struct SchemaChange {
    pub action: Action,
    pub kind: String,
    pub name: String,
    pub table: String,
    pub old_sql: Option<String>,
    pub new_sql: Option<String>,
}

/// The difference between two versions.
#[derive(Debug, Clone)]
pub struct Diff {
    pub from: u64,
    pub to: u64,
    pub schema: Vec<SchemaChange>,
    /// Tables with at least one change or a changed definition, by name.
    pub tables: Vec<TableDiff>,
    /// Distinct page images read (both versions).
    pub pages_read: usize,
    /// Pages whose image differs between the versions (all of them when the
    /// page size differs).
    pub pages_changed: usize,
    /// Skipped leaves whose overflow chains had to be checked because a
    /// changed page was not otherwise accounted for (0 on the fast path).
    pub overflow_rechecks: usize,
    /// Objects of both versions' schemas (for `--sql`).
    pub old_objects: Vec<Object>,
    pub objects: Vec<Object>,
}

fn key_order(a: &Key, b: &Key) -> std::cmp::Ordering {
    match (a, b) {
        (Key::Rowid(x), Key::Rowid(y)) => x.cmp(y),
        (Key::Pk(x), Key::Pk(y)) => value::compare_keys(x, y),
        _ => std::cmp::Ordering::Equal,
    }
}

/// One table being compared: both trees, before decoding.
struct Pending {
    name: String,
    status: TableStatus,
    a: Option<(Table, Tree)>,
    b: Option<(Table, Tree)>,
    cancelled: Vec<u32>,
    changes: Vec<RowChange>,
}

/// Compares version `a` (older, usually) with version `b`.
pub fn diff(a: &Version, b: &Version, opts: &Options) -> Result<Diff, DiffError> {
    let pa = Pages::new(a)?;
    let pb = Pages::new(b)?;
    // Pages of the newer version known to be b-tree, overflow, freelist or
    // pointer-map pages (see `walk`).
    let mut explained_b = PageSet::new();
    let oa = catalog::objects(&pa, &mut PageSet::new())?;
    let ob = catalog::objects(&pb, &mut explained_b)?;
    let wanted = |o: &Object| opts.table.as_ref().is_none_or(|t| o.table.eq_ignore_ascii_case(t));

    let schema_changes = catalog::changes(&oa, &ob, &wanted);

    // The pages whose slots differ: a leaf outside them is shared.
    let changed = changed_pages(a, b);

    // Tables: read both trees' interior pages, drop the leaves they share.
    let ta: BTreeMap<&str, &Object> =
        oa.iter().filter(|o| catalog::is_btree_table(o) && wanted(o)).map(|o| (o.name.as_str(), o)).collect();
    let tb: BTreeMap<&str, &Object> =
        ob.iter().filter(|o| catalog::is_btree_table(o) && wanted(o)).map(|o| (o.name.as_str(), o)).collect();
    let names: Vec<&str> = {
        let mut n: Vec<&str> = ta.keys().chain(tb.keys()).copied().collect();
        n.sort_unstable();
        n.dedup();
        n
    };
    let mut pending = Vec::new();
    for name in names {
        let a_side = match ta.get(name) {
            Some(o) => Some((catalog::layout(&pa, o)?, Tree::read(&pa, o.root)?)),
            None => None,
        };
        let b_side = match tb.get(name) {
            Some(o) => Some((catalog::layout(&pb, o)?, Tree::read(&pb, o.root)?)),
            None => None,
        };
        let status = match (ta.get(name), tb.get(name)) {
            (Some(x), Some(y)) if x.sql == y.sql => TableStatus::Same,
            (Some(_), Some(_)) => TableStatus::Altered,
            (None, _) => TableStatus::Created,
            (_, None) => TableStatus::Dropped,
        };
        let mut p = Pending {
            name: name.to_string(),
            status,
            a: a_side,
            b: b_side,
            cancelled: Vec::new(),
            changes: Vec::new(),
        };
        if let (Some((_, ta)), Some((_, tb))) = (&mut p.a, &mut p.b) {
            p.cancelled = Tree::cancel(ta, &pa, tb, &pb, &changed);
        }
        if let Some((_, t)) = &p.b {
            explained_b.extend(t.pages.iter());
        }
        pending.push(p);
    }

    // Compare what was not shared.
    for p in &mut pending {
        let empty = Tree::empty();
        let none = Table::default();
        let (lt_a, tree_a) = p.a.as_ref().map_or((&none, &empty), |(l, t)| (l, t));
        let (lt_b, tree_b) = p.b.as_ref().map_or((lt_a, &empty), |(l, t)| (l, t));
        let lt_a = if p.a.is_none() { lt_b } else { lt_a };
        let sa = rows::Side { pages: &pa, table: lt_a };
        let sb = rows::Side { pages: &pb, table: lt_b };
        if !lt_a.without_rowid && !lt_b.without_rowid {
            rows::merge_rowid(&sa, tree_a, &sb, tree_b, &mut explained_b, &mut p.changes)?;
        } else {
            let ea = tree_a.entries(&pa, &mut PageSet::new())?;
            let eb = tree_b.entries(&pb, &mut explained_b)?;
            rows::match_keyed(&sa, ea, &sb, eb, &mut p.changes)?;
        }
    }

    // Account for every changed page of the newer version: one that no walked
    // tree explains may be an overflow page of a skipped leaf's cell.
    let same_size = a.page_size == b.page_size;
    let mut overflow_rechecks = 0;
    if same_size {
        let mut unexplained: HashSet<u32> =
            changed.iter().filter(|p| *p <= b.db_pages() && !explained_b.contains(p)).collect();
        if !unexplained.is_empty() && opts.table.is_some() {
            // Only one table was walked: the others' pages explain the rest.
            for o in ob.iter().filter(|o| catalog::is_btree_table(o) && !wanted(o)) {
                let t = Tree::read(&pb, o.root)?;
                unexplained.retain(|p| !t.pages.contains(p));
            }
        }
        if !unexplained.is_empty() {
            let free = walk::free_and_ptrmap(&pb)?;
            unexplained.retain(|p| !free.contains(p));
        }
        if !unexplained.is_empty() {
            for o in ob.iter().filter(|o| o.kind == "index" && o.root != 0) {
                let t = Tree::read(&pb, o.root)?;
                unexplained.retain(|p| !t.pages.contains(p));
            }
        }
        if !unexplained.is_empty() {
            overflow_rechecks = recheck(&pa, &pb, &mut pending, &changed)?;
        }
    }

    let mut tables = Vec::new();
    for p in pending {
        let old_table = p.a.as_ref().map(|(t, _)| t.clone()).unwrap_or_default();
        let table = p.b.as_ref().map(|(t, _)| t.clone()).unwrap_or_else(|| old_table.clone());
        let old_table = if p.a.is_none() { table.clone() } else { old_table };
        let mut changes = p.changes;
        changes.sort_by(|x, y| key_order(x.key(), y.key()));
        let rewrite = p.status == TableStatus::Altered || (p.name == "sqlite_sequence" && !changes.is_empty());
        let all_rows = match &p.b {
            Some((t, _)) if rewrite && opts.full_rows => {
                let root = tb[p.name.as_str()].root;
                let mut rows = Vec::new();
                for e in Tree::read(&pb, root)?.entries(&pb, &mut PageSet::new())? {
                    rows.push(rows::row(t, e.rowid, e.values(&pb)?));
                }
                rows.sort_by(|x, y| key_order(&x.0, &y.0));
                Some(rows)
            }
            _ => None,
        };
        if changes.is_empty() && p.status == TableStatus::Same {
            continue;
        }
        tables.push(TableDiff { name: p.name, status: p.status, table, old_table, changes, all_rows });
    }
    let mut frames = pa.frames_read();
    frames.extend(pb.frames_read());
    Ok(Diff {
        from: a.number,
        to: b.number,
        schema: schema_changes,
        tables,
        pages_read: frames.len(),
        pages_changed: changed.len(),
        overflow_rechecks,
        old_objects: oa,
        objects: ob,
    })
}

/// Skipped leaves whose cells' overflow chains (in the newer version) touch
/// a changed page are compared after all. Returns how many skipped leaves
/// were examined.
fn recheck(pa: &Pages<'_>, pb: &Pages<'_>, pending: &mut [Pending], changed: &PageSet) -> Result<usize, DiffError> {
    let mut n = 0;
    for p in pending.iter_mut() {
        let (Some((lt_a, _)), Some((lt_b, _))) = (&p.a, &p.b) else { continue };
        for &leaf in &p.cancelled {
            n += 1;
            if walk::leaf_overflow_touches(pb, leaf, changed)? {
                let (mut ea, mut eb) = (Vec::new(), Vec::new());
                walk::leaf_entries(pa, leaf, &mut PageSet::new(), &mut ea)?;
                walk::leaf_entries(pb, leaf, &mut PageSet::new(), &mut eb)?;
                let sa = rows::Side { pages: pa, table: lt_a };
                let sb = rows::Side { pages: pb, table: lt_b };
                rows::match_keyed(&sa, ea, &sb, eb, &mut p.changes)?;
            }
        }
    }
    Ok(n)
}

/// Pages whose slot differs between the versions (every page of either when
/// the page size differs). Map lookups only, at a cost proportional to the
/// change (`changed.rs`): no page is read.
fn changed_pages(a: &Version, b: &Version) -> PageSet {
    crate::changed::changed_pages(a, b).pages.into_iter().collect()
}
