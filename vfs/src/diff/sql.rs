//! SQL that turns the older version of a [`Diff`] into the newer one, as
//! SQLite's `sqldiff` prints it: run it on a copy of version A
//! (`pagelog export --version A`) and the copy reads as version B.
//!
//! Order: triggers are dropped first and the new version's recreated last
//! (a trigger must not fire while rows are replayed); views and indexes that
//! were dropped or altered are dropped; tables dropped, created, and
//! altered ones recreated with every row; then row changes (deletes,
//! updates, inserts); then new indexes and views; `sqlite_sequence` is
//! rewritten whole at the end, since replayed inserts move it. SQLite does
//! not let `sqlite_sequence` be dropped: when B has none, A's is emptied.

use std::fmt::Write;

use super::{Action, Diff, Key, RowChange, TableDiff, TableStatus, Value};

/// An identifier in double quotes.
pub fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn where_key(t: &TableDiff, key: &Key) -> String {
    match key {
        Key::Rowid(r) => format!("rowid={r}"),
        Key::Pk(vals) => t
            .table
            .pk
            .iter()
            .zip(vals)
            .map(|(&c, v)| format!("{}={}", ident(&t.table.columns[c]), v.sql()))
            .collect::<Vec<_>>()
            .join(" AND "),
    }
}

fn insert(t: &TableDiff, key: &Key, values: &[Value]) -> String {
    let mut cols: Vec<String> = t.table.columns.iter().map(|c| ident(c)).collect();
    let mut vals: Vec<String> = values.iter().map(Value::sql).collect();
    if let (Key::Rowid(r), None) = (key, t.table.rowid_alias) {
        cols.insert(0, "rowid".into());
        vals.insert(0, r.to_string());
    }
    format!("INSERT INTO {}({}) VALUES({});\n", ident(&t.name), cols.join(","), vals.join(","))
}

/// The SQL script; empty when the versions hold the same content.
pub fn to_sql(d: &Diff) -> String {
    let mut out = String::new();
    let has_rows = d.tables.iter().any(|t| !t.changes.is_empty() || t.status != TableStatus::Same);
    let triggers_move = has_rows || d.schema.iter().any(|s| s.kind == "trigger");
    if triggers_move {
        for o in d.old_objects.iter().filter(|o| o.kind == "trigger") {
            let _ = writeln!(out, "DROP TRIGGER IF EXISTS {};", ident(&o.name));
        }
    }
    for s in &d.schema {
        if (s.kind == "view" || s.kind == "index") && s.action != Action::Create {
            let _ = writeln!(out, "DROP {} IF EXISTS {};", s.kind.to_uppercase(), ident(&s.name));
        }
    }
    let mut recreated = Vec::new();
    for t in &d.tables {
        let sql_of = |objs: &[super::Object]| {
            objs.iter().find(|o| o.kind == "table" && o.name == t.name).and_then(|o| o.sql.clone()).unwrap_or_default()
        };
        match t.status {
            TableStatus::Dropped if !t.name.starts_with("sqlite_") => {
                let _ = writeln!(out, "DROP TABLE {};", ident(&t.name));
            }
            TableStatus::Created if !t.name.starts_with("sqlite_") => {
                let _ = writeln!(out, "{};", sql_of(&d.objects));
            }
            TableStatus::Altered if !t.name.starts_with("sqlite_") => {
                let _ = writeln!(out, "DROP TABLE {};\n{};", ident(&t.name), sql_of(&d.objects));
                for (k, v) in t.all_rows.iter().flatten() {
                    out.push_str(&insert(t, k, v));
                }
                recreated.push(t.name.clone());
            }
            _ => {}
        }
    }
    for t in d.tables.iter().filter(|t| t.name != "sqlite_sequence") {
        if t.status == TableStatus::Altered || t.status == TableStatus::Dropped {
            continue;
        }
        for c in &t.changes {
            if let RowChange::Delete { key, .. } = c {
                let _ = writeln!(out, "DELETE FROM {} WHERE {};", ident(&t.name), where_key(t, key));
            }
        }
        for c in &t.changes {
            if let RowChange::Update { key, old, new } = c {
                let set: Vec<String> =
                    t.changed_columns(old, new).iter().map(|(n, _, v)| format!("{}={}", ident(n), v.sql())).collect();
                let _ = writeln!(out, "UPDATE {} SET {} WHERE {};", ident(&t.name), set.join(","), where_key(t, key));
            }
        }
        for c in &t.changes {
            if let RowChange::Insert { key, new } = c {
                out.push_str(&insert(t, key, new));
            }
        }
    }
    for s in &d.schema {
        if s.kind == "index" && s.action != Action::Drop {
            let _ = writeln!(out, "{};", s.new_sql.as_deref().unwrap_or_default());
        }
    }
    // Indexes of a recreated table that did not change went with DROP TABLE.
    for o in d.objects.iter().filter(|o| o.kind == "index" && o.sql.is_some() && recreated.contains(&o.table)) {
        if !d.schema.iter().any(|s| s.kind == "index" && s.name == o.name && s.action != Action::Drop) {
            let _ = writeln!(out, "{};", o.sql.as_deref().unwrap_or_default());
        }
    }
    for s in &d.schema {
        if s.kind == "view" && s.action != Action::Drop {
            let _ = writeln!(out, "{};", s.new_sql.as_deref().unwrap_or_default());
        }
    }
    if let Some(t) = d.tables.iter().find(|t| t.name == "sqlite_sequence") {
        if t.status == TableStatus::Created {
            // SQLite refuses CREATE TABLE sqlite_sequence; an AUTOINCREMENT
            // table creates it, and it stays when that table is dropped.
            out.push_str("CREATE TABLE \"pagelog diff seq\"(x INTEGER PRIMARY KEY AUTOINCREMENT);\n");
            out.push_str("DROP TABLE \"pagelog diff seq\";\n");
        }
        // (A dropped sqlite_sequence cannot be dropped: it is emptied.)
        out.push_str("DELETE FROM sqlite_sequence;\n");
        for (k, v) in t.all_rows.iter().flatten() {
            out.push_str(&insert(t, k, v));
        }
    }
    if triggers_move {
        for o in d.objects.iter().filter(|o| o.kind == "trigger") {
            let _ = writeln!(out, "{};", o.sql.as_deref().unwrap_or_default());
        }
    }
    out
}
