//! Matching one table's entries in two versions into row changes.
//!
//! Rowid tables: the two trees' remaining leaves are streamed in rowid
//! order and merged, one leaf of each in memory at a time. WITHOUT ROWID
//! tables (index b-trees, ordered by their PRIMARY KEY's collations, which
//! pagelog does not evaluate) and re-checked leaves: entries are matched
//! through a hash of their key. Either way, two entries whose stored bytes
//! are equal are the same row and are not decoded; a pair whose bytes
//! differ is decoded and compared column by column (by column name, so a
//! table whose definition changed is compared by what its columns hold).

use std::collections::HashMap;

use super::pageset::PageSet;

use super::btree::Pages;
use super::walk::{Entry, Tree};
use super::{changed_columns, DiffError, Key, RowChange, Table, Value};

/// An entry as the table's columns, and its key.
pub fn row(t: &Table, rowid: i64, rec: Vec<Value>) -> (Key, Vec<Value>) {
    let mut values = vec![Value::Null; t.columns.len()];
    let mut rec = rec.into_iter();
    for col in t.record_order() {
        values[col] = rec.next().unwrap_or_else(|| t.defaults.get(col).cloned().unwrap_or(Value::Null));
    }
    if let Some(a) = t.rowid_alias {
        values[a] = Value::Integer(rowid);
    }
    let key =
        if t.without_rowid { Key::Pk(t.pk.iter().map(|&c| values[c].clone()).collect()) } else { Key::Rowid(rowid) };
    (key, values)
}

/// One side of the comparison: a version's pages and the table's layout there.
pub struct Side<'a, 'v> {
    pub pages: &'a Pages<'v>,
    pub table: &'a Table,
}

impl Side<'_, '_> {
    fn decode(&self, e: &Entry) -> Result<(Key, Vec<Value>), DiffError> {
        Ok(row(self.table, e.rowid, e.values(self.pages)?))
    }
}

fn update(
    a: &Side<'_, '_>,
    b: &Side<'_, '_>,
    ea: &Entry,
    eb: &Entry,
    out: &mut Vec<RowChange>,
) -> Result<(), DiffError> {
    if ea.payload == eb.payload {
        return Ok(());
    }
    let (_, old) = a.decode(ea)?;
    let (key, new) = b.decode(eb)?;
    if !changed_columns(a.table, b.table, &old, &new).is_empty() {
        out.push(RowChange::Update { key, old, new });
    }
    Ok(())
}

/// Merges two rowid-ordered streams. `chains_b` receives the overflow pages
/// read in the newer version.
pub fn merge_rowid(
    a: &Side<'_, '_>,
    ta: &Tree,
    b: &Side<'_, '_>,
    tb: &Tree,
    chains_b: &mut PageSet,
    out: &mut Vec<RowChange>,
) -> Result<(), DiffError> {
    let mut scratch = PageSet::new();
    let (mut sa, mut sb) = (ta.stream(), tb.stream());
    let mut next_a = |last: Option<i64>| -> Result<Option<Entry>, DiffError> {
        let e = sa.next(a.pages, &mut scratch)?;
        ordered(a.pages, last, e)
    };
    let mut next_b = |last: Option<i64>| -> Result<Option<Entry>, DiffError> {
        let e = sb.next(b.pages, chains_b)?;
        ordered(b.pages, last, e)
    };
    let (mut ea, mut eb) = (next_a(None)?, next_b(None)?);
    loop {
        match (ea.take(), eb.take()) {
            (None, None) => return Ok(()),
            (Some(x), None) => {
                let (key, old) = a.decode(&x)?;
                out.push(RowChange::Delete { key, old });
                ea = next_a(Some(x.rowid))?;
            }
            (None, Some(y)) => {
                let (key, new) = b.decode(&y)?;
                out.push(RowChange::Insert { key, new });
                eb = next_b(Some(y.rowid))?;
            }
            (Some(x), Some(y)) => {
                if x.rowid < y.rowid {
                    let (key, old) = a.decode(&x)?;
                    out.push(RowChange::Delete { key, old });
                    ea = next_a(Some(x.rowid))?;
                    eb = Some(y);
                } else if x.rowid > y.rowid {
                    let (key, new) = b.decode(&y)?;
                    out.push(RowChange::Insert { key, new });
                    eb = next_b(Some(y.rowid))?;
                    ea = Some(x);
                } else {
                    update(a, b, &x, &y, out)?;
                    ea = next_a(Some(x.rowid))?;
                    eb = next_b(Some(y.rowid))?;
                }
            }
        }
    }
}

/// A stream's next entry, checked to come after the previous one.
fn ordered(p: &Pages<'_>, last: Option<i64>, e: Option<Entry>) -> Result<Option<Entry>, DiffError> {
    match (&e, last) {
        (Some(x), Some(l)) if x.rowid <= l => {
            Err(p.err(x.pgno, format!("rowid {} after rowid {l}: the table b-tree is out of order", x.rowid)))
        }
        _ => Ok(e),
    }
}

/// A key as bytes, for matching rows of the two versions.
fn key_bytes(k: &Key) -> Vec<u8> {
    match k {
        Key::Rowid(r) => r.to_be_bytes().to_vec(),
        Key::Pk(v) => v.iter().map(|x| x.sql()).collect::<Vec<_>>().join("\u{0}").into_bytes(),
    }
}

/// Matches two sets of entries by key.
pub fn match_keyed(
    a: &Side<'_, '_>,
    ea: Vec<Entry>,
    b: &Side<'_, '_>,
    eb: Vec<Entry>,
    out: &mut Vec<RowChange>,
) -> Result<(), DiffError> {
    // Entries stored identically in both are the same row: drop them unread.
    let mut by_bytes: HashMap<&[u8], Vec<usize>> = HashMap::new();
    for (i, e) in ea.iter().enumerate() {
        by_bytes.entry(&e.payload).or_default().push(i);
    }
    let mut gone = vec![false; ea.len()];
    let mut rest_b = Vec::new();
    for e in &eb {
        let same_rowid = |i: &usize| ea[*i].rowid == e.rowid;
        match by_bytes
            .get_mut(e.payload.as_slice())
            .and_then(|v| v.iter().position(same_rowid).map(|p| v.swap_remove(p)))
        {
            Some(i) => gone[i] = true,
            None => rest_b.push(e),
        }
    }
    let mut old: HashMap<Vec<u8>, &Entry> = HashMap::new();
    for (e, _) in ea.iter().zip(&gone).filter(|(_, g)| !**g) {
        let (k, _) = a.decode(e)?;
        old.insert(key_bytes(&k), e);
    }
    for e in rest_b {
        let (k, new) = b.decode(e)?;
        match old.remove(&key_bytes(&k)) {
            Some(x) => update(a, b, x, e, out)?,
            None => out.push(RowChange::Insert { key: k, new }),
        }
    }
    for e in old.into_values() {
        let (key, old) = a.decode(e)?;
        out.push(RowChange::Delete { key, old });
    }
    Ok(())
}
