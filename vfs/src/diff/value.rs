//! A decoded SQLite value and its three renderings: an SQL literal (for
//! `--sql`), JSON (for `--json` and `pagelog_diff`) and a short form for
//! people. Also the ordering of keys, as SQLite's BINARY collation orders
//! them: NULL, then numbers, then text, then blobs.

use std::cmp::Ordering;
use std::fmt::Write;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    /// UTF-8 bytes (converted from UTF-16 databases); not necessarily valid UTF-8.
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(2 * b.len());
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

fn real_sql(f: f64) -> String {
    if f.is_infinite() {
        return if f > 0.0 { "9e999".into() } else { "-9e999".into() };
    }
    let s = format!("{f:?}");
    if s.contains(['.', 'e', 'E']) || s.contains("inf") || s.contains("NaN") {
        s
    } else {
        format!("{s}.0")
    }
}

impl Value {
    /// An SQL literal that reads back as exactly this value.
    pub fn sql(&self) -> String {
        match self {
            Value::Null => "NULL".into(),
            Value::Integer(i) => i.to_string(),
            Value::Real(f) => real_sql(*f),
            Value::Text(t) => match std::str::from_utf8(t) {
                Ok(s) if !s.contains('\0') => format!("'{}'", s.replace('\'', "''")),
                _ => format!("CAST(x'{}' AS TEXT)", hex(t)),
            },
            Value::Blob(b) => format!("x'{}'", hex(b)),
        }
    }

    /// JSON: numbers, strings (text), `{"blob": "hex"}`, null.
    pub fn json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Integer(i) => (*i).into(),
            Value::Real(f) => serde_json::Number::from_f64(*f).map(Into::into).unwrap_or_else(|| real_sql(*f).into()),
            Value::Text(t) => String::from_utf8_lossy(t).into_owned().into(),
            Value::Blob(b) => serde_json::json!({ "blob": hex(b) }),
        }
    }

    /// For people: text quoted, blobs longer than 16 bytes abbreviated.
    pub fn short(&self) -> String {
        match self {
            Value::Blob(b) if b.len() > 16 => format!("x'{}…' ({} bytes)", hex(&b[..16]), b.len()),
            Value::Text(t) if t.len() > 60 => {
                let s = String::from_utf8_lossy(t);
                let cut: String = s.chars().take(50).collect();
                format!("'{}…' ({} bytes)", cut.replace('\'', "''"), t.len())
            }
            v => v.sql(),
        }
    }

    fn class(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Integer(_) | Value::Real(_) => 1,
            Value::Text(_) => 2,
            Value::Blob(_) => 3,
        }
    }
}

/// SQLite's order of two values under the BINARY collation.
pub fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Integer(x), Value::Integer(y)) => x.cmp(y),
        (Value::Integer(x), Value::Real(y)) => (*x as f64).partial_cmp(y).unwrap_or(Ordering::Equal),
        (Value::Real(x), Value::Integer(y)) => x.partial_cmp(&(*y as f64)).unwrap_or(Ordering::Equal),
        (Value::Real(x), Value::Real(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        (Value::Text(x), Value::Text(y)) | (Value::Blob(x), Value::Blob(y)) => x.cmp(y),
        _ => a.class().cmp(&b.class()),
    }
}

/// Order of two keys, column by column.
pub fn compare_keys(a: &[Value], b: &[Value]) -> Ordering {
    a.iter().zip(b).map(|(x, y)| compare(x, y)).find(|o| o.is_ne()).unwrap_or(a.len().cmp(&b.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_literals_round_trip_their_type() {
        assert_eq!(Value::Real(1.0).sql(), "1.0");
        assert_eq!(Value::Real(1e300).sql(), "1e300");
        assert_eq!(Value::Text(b"it's".to_vec()).sql(), "'it''s'");
        assert_eq!(Value::Text(vec![0xff]).sql(), "CAST(x'ff' AS TEXT)");
        assert_eq!(Value::Blob(vec![1, 2]).sql(), "x'0102'");
        assert_eq!(compare(&Value::Integer(2), &Value::Real(1.5)), Ordering::Greater);
        assert_eq!(compare(&Value::Text(vec![]), &Value::Integer(9)), Ordering::Greater);
    }
}
