//! The catalog side of a diff: the objects of `sqlite_schema` in each
//! version, each table's layout, and which objects were created, dropped
//! or altered (compared by type and name, then by their SQL text).
//! Internal objects (`sqlite_*`: autoindexes, `sqlite_sequence`) follow
//! from the others and are not listed as schema changes.

use std::collections::BTreeMap;

use super::btree::Pages;
use super::pageset::PageSet;
use super::walk::Tree;
use super::{schema, Action, DiffError, Object, SchemaChange, Table, Value};

/// The rows of `sqlite_schema`; its pages go into `pages`.
pub fn objects(p: &Pages<'_>, pages: &mut PageSet) -> Result<Vec<Object>, DiffError> {
    if p.version.db_pages() == 0 {
        return Ok(Vec::new());
    }
    let tree = Tree::read(p, 1)?;
    pages.extend(tree.pages.iter());
    let mut out = Vec::new();
    for e in tree.entries(p, pages)? {
        let values = e.values(p)?;
        let text = |i: usize| match values.get(i) {
            Some(Value::Text(t)) => Some(String::from_utf8_lossy(t).into_owned()),
            _ => None,
        };
        let root = match values.get(3) {
            Some(Value::Integer(r)) => *r as u32,
            _ => 0,
        };
        out.push(Object {
            kind: text(0).unwrap_or_default(),
            name: text(1).unwrap_or_default(),
            table: text(2).unwrap_or_default(),
            root,
            sql: text(4),
        });
    }
    Ok(out)
}

pub fn is_btree_table(o: &Object) -> bool {
    o.kind == "table" && o.root != 0
}

pub fn layout(p: &Pages<'_>, o: &Object) -> Result<Table, DiffError> {
    match &o.sql {
        Some(sql) => schema::parse_table(sql)
            .map_err(|e| DiffError::malformed(p.version.number, 1, format!("table {:?}: {e}", o.name))),
        // sqlite_schema itself has no row; the other internal tables have SQL.
        None => Ok(Table { columns: vec![], ..Default::default() }),
    }
}

/// Objects created, dropped or altered between `oa` and `ob`, among those
/// `wanted` selects.
pub fn changes(oa: &[Object], ob: &[Object], wanted: &dyn Fn(&Object) -> bool) -> Vec<SchemaChange> {
    let key = |o: &Object| (o.kind.clone(), o.name.clone());
    let listed = |o: &&Object| o.sql.is_some() && !o.name.starts_with("sqlite_") && wanted(o);
    let ma: BTreeMap<_, &Object> = oa.iter().filter(listed).map(|o| (key(o), o)).collect();
    let mb: BTreeMap<_, &Object> = ob.iter().filter(listed).map(|o| (key(o), o)).collect();
    let change = |action, o: &Object, old: Option<&Object>, new: Option<&Object>| SchemaChange {
        action,
        kind: o.kind.clone(),
        name: o.name.clone(),
        table: o.table.clone(),
        old_sql: old.and_then(|x| x.sql.clone()),
        new_sql: new.and_then(|x| x.sql.clone()),
    };
    let mut out = Vec::new();
    for (k, o) in &ma {
        match mb.get(k) {
            None => out.push(change(Action::Drop, o, Some(o), None)),
            Some(n) if n.sql != o.sql => out.push(change(Action::Alter, n, Some(o), Some(n))),
            _ => {}
        }
    }
    for (k, n) in &mb {
        if !ma.contains_key(k) {
            out.push(change(Action::Create, n, None, Some(n)));
        }
    }
    out
}
