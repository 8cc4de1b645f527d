//! JSON renderings of a [`Diff`](super::Diff) shared by `pagelog diff
//! --json` and the `pagelog_diff` table: a row's key, a row as an object of
//! its columns, and one object per change (the `--json` lines, whose fields
//! docs/cli.md lists).

use serde_json::{json, Map, Value as Json};

use super::{Action, Diff, Key, RowChange, TableDiff, TableStatus, Value};

/// `{"rowid": N}`, or the PRIMARY KEY columns of a WITHOUT ROWID table.
pub fn key(k: &Key, t: &TableDiff) -> Json {
    match k {
        Key::Rowid(r) => json!({ "rowid": r }),
        Key::Pk(v) => {
            Json::Object(t.table.pk.iter().zip(v).map(|(&c, v)| (t.table.columns[c].clone(), v.json())).collect())
        }
    }
}

/// `{column: value, ...}`.
pub fn row(cols: &[String], vals: &[Value]) -> Json {
    Json::Object(cols.iter().cloned().zip(vals.iter().map(Value::json)).collect())
}

/// An update's changed columns as two objects: (old values, new values).
pub fn changed(t: &TableDiff, old: &[Value], new: &[Value]) -> (Json, Json) {
    let (mut o, mut n) = (Map::new(), Map::new());
    for (name, ov, nv) in t.changed_columns(old, new) {
        o.insert(name.to_string(), ov.json());
        n.insert(name.to_string(), nv.json());
    }
    (Json::Object(o), Json::Object(n))
}

pub fn action(a: Action) -> &'static str {
    match a {
        Action::Create => "create",
        Action::Drop => "drop",
        Action::Alter => "alter",
    }
}

pub fn status(s: TableStatus) -> &'static str {
    match s {
        TableStatus::Same => "same",
        TableStatus::Created => "created",
        TableStatus::Dropped => "dropped",
        TableStatus::Altered => "altered",
    }
}

/// One object per change: schema changes, row changes, then a summary per table.
pub fn objects(d: &Diff) -> Vec<Json> {
    let mut out = Vec::new();
    for s in &d.schema {
        out.push(json!({"kind": "schema", "action": action(s.action), "type": s.kind, "name": s.name,
            "table": s.table, "old_sql": s.old_sql, "new_sql": s.new_sql}));
    }
    for t in &d.tables {
        for c in &t.changes {
            out.push(match c {
                RowChange::Insert { key: k, new } => json!({"kind": "insert", "table": t.name,
                    "key": key(k, t), "new": row(&t.table.columns, new)}),
                RowChange::Delete { key: k, old } => json!({"kind": "delete", "table": t.name,
                    "key": key(k, t), "old": row(&t.old_table.columns, old)}),
                RowChange::Update { key: k, old, new } => {
                    let ch: Map<String, Json> = t
                        .changed_columns(old, new)
                        .into_iter()
                        .map(|(n, o, v)| (n.to_string(), json!({"old": o.json(), "new": v.json()})))
                        .collect();
                    json!({"kind": "update", "table": t.name, "key": key(k, t), "changes": ch})
                }
            });
        }
    }
    for t in &d.tables {
        let (i, de, u) = t.counts();
        out.push(json!({"kind": "summary", "table": t.name, "status": status(t.status),
            "inserted": i, "deleted": de, "updated": u}));
    }
    out
}
