//! What the diff needs to know of a schema: the objects of `sqlite_schema`
//! and, for each table, its columns in declaration order, which one is the
//! rowid alias (`INTEGER PRIMARY KEY`), whether it is `WITHOUT ROWID`, which
//! columns form its PRIMARY KEY, and each column's literal DEFAULT (what a
//! record written before `ALTER TABLE ADD COLUMN` reads as).
//!
//! The CREATE TABLE parser is a tokenizer plus a scan of the top-level
//! comma-separated definitions: enough for every statement SQLite stores
//! (it stores the text as the user wrote it). What it cannot read (a
//! DEFAULT that is an expression) is treated as NULL.

use super::Value;

/// One row of `sqlite_schema`.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub kind: String,
    pub name: String,
    pub table: String,
    pub root: u32,
    pub sql: Option<String>,
}

/// A table's layout as the records store it.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub columns: Vec<String>,
    pub defaults: Vec<Value>,
    /// Index of the INTEGER PRIMARY KEY column (stored as NULL, read as the rowid).
    pub rowid_alias: Option<usize>,
    pub without_rowid: bool,
    /// PRIMARY KEY columns in key order (WITHOUT ROWID: the record's first columns).
    pub pk: Vec<usize>,
}

impl Table {
    /// The record position of each column: for WITHOUT ROWID tables the
    /// PRIMARY KEY columns come first, then the others in table order.
    pub fn record_order(&self) -> Vec<usize> {
        if !self.without_rowid {
            return (0..self.columns.len()).collect();
        }
        let mut order = self.pk.clone();
        order.extend((0..self.columns.len()).filter(|c| !self.pk.contains(c)));
        order
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Punct(char),
}

fn tokens(sql: &str) -> Vec<Tok> {
    let b: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '-' && b.get(i + 1) == Some(&'-') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && b.get(i + 1) == Some(&'*') {
            i += 2;
            while i < b.len() && !(b[i] == '*' && b.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i += 2;
        } else if c == '"' || c == '`' || c == '[' || c == '\'' {
            let close = if c == '[' { ']' } else { c };
            let mut s = String::new();
            i += 1;
            while i < b.len() {
                if b[i] == close {
                    if close != ']' && b.get(i + 1) == Some(&close) {
                        s.push(close);
                        i += 2;
                        continue;
                    }
                    break;
                }
                s.push(b[i]);
                i += 1;
            }
            i += 1;
            out.push(if c == '\'' { Tok::Str(s) } else { Tok::Word(s) });
        } else if c.is_alphanumeric() || c == '_' || c == '$' || c == '.' || !c.is_ascii() {
            let mut s = String::new();
            while i < b.len()
                && (b[i].is_alphanumeric() || b[i] == '_' || b[i] == '$' || b[i] == '.' || !b[i].is_ascii())
            {
                s.push(b[i]);
                i += 1;
            }
            out.push(Tok::Word(s));
        } else {
            out.push(Tok::Punct(c));
            i += 1;
        }
    }
    out
}

fn is_kw(t: &Tok, kw: &str) -> bool {
    matches!(t, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
}

/// Parses a `CREATE TABLE` statement as stored in `sqlite_schema`.
pub fn parse_table(sql: &str) -> Result<Table, String> {
    let t = tokens(sql);
    let open = t.iter().position(|x| *x == Tok::Punct('(')).ok_or("no column list")?;
    // Split the parenthesised body into top-level definitions.
    let mut defs: Vec<&[Tok]> = Vec::new();
    let (mut depth, mut start, mut close) = (0usize, open + 1, None);
    for (i, tok) in t.iter().enumerate().skip(open) {
        match tok {
            Tok::Punct('(') => depth += 1,
            Tok::Punct(')') => {
                depth -= 1;
                if depth == 0 {
                    defs.push(&t[start..i]);
                    close = Some(i);
                    break;
                }
            }
            Tok::Punct(',') if depth == 1 => {
                defs.push(&t[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    let close = close.ok_or("unbalanced parentheses")?;
    let tail = &t[close + 1..];
    let without_rowid = tail.windows(2).any(|w| is_kw(&w[0], "without") && is_kw(&w[1], "rowid"));
    let mut table = Table { without_rowid, ..Default::default() };
    let constraint_start = ["constraint", "primary", "unique", "check", "foreign"];
    for def in defs {
        let Some(first) = def.first() else { continue };
        if constraint_start.iter().any(|k| is_kw(first, k)) {
            if let Some(p) = def.windows(2).position(|w| is_kw(&w[0], "primary") && is_kw(&w[1], "key")) {
                table.pk = pk_list(&def[p + 2..], &table.columns);
            }
            continue;
        }
        let name = match first {
            Tok::Word(w) | Tok::Str(w) => w.clone(),
            Tok::Punct(c) => return Err(format!("unexpected {c:?} where a column name belongs")),
        };
        let col = table.columns.len();
        table.columns.push(name);
        let rest = &def[1..];
        // Declared type: the words before the first constraint keyword.
        let type_end = rest
            .iter()
            .position(|x| {
                [
                    "constraint",
                    "primary",
                    "not",
                    "null",
                    "unique",
                    "check",
                    "default",
                    "collate",
                    "references",
                    "generated",
                    "as",
                ]
                .iter()
                .any(|k| is_kw(x, k))
            })
            .unwrap_or(rest.len());
        let decl: Vec<String> = rest[..type_end]
            .iter()
            .filter_map(|x| if let Tok::Word(w) = x { Some(w.to_ascii_uppercase()) } else { None })
            .collect();
        let mut default = Value::Null;
        for (i, x) in rest.iter().enumerate() {
            if is_kw(x, "primary") && rest.get(i + 1).is_some_and(|y| is_kw(y, "key")) {
                table.pk = vec![col];
                let desc = rest.get(i + 2).is_some_and(|y| is_kw(y, "desc"));
                if decl == ["INTEGER"] && !desc {
                    table.rowid_alias = Some(col);
                }
            }
            if is_kw(x, "default") {
                default = literal(&rest[i + 1..]);
            }
        }
        table.defaults.push(default);
    }
    if table.without_rowid {
        table.rowid_alias = None;
        if table.pk.is_empty() {
            return Err("WITHOUT ROWID table without a PRIMARY KEY".into());
        }
    } else if table.pk.len() != 1 {
        table.rowid_alias = None;
    } else if table.rowid_alias.is_none() {
        // `PRIMARY KEY(x)` as a table constraint also makes an INTEGER column the alias.
        let c = table.pk[0];
        let decl_is_integer = decl_of(&t, open, &table.columns[c]).is_some_and(|d| d == "INTEGER");
        if decl_is_integer {
            table.rowid_alias = Some(c);
        }
    }
    Ok(table)
}

/// The declared type of column `name` (only used for a table-constraint PK).
fn decl_of(t: &[Tok], open: usize, name: &str) -> Option<String> {
    let mut depth = 0;
    let mut at_def_start = true;
    for (i, tok) in t.iter().enumerate().skip(open) {
        match tok {
            Tok::Punct('(') => {
                depth += 1;
                at_def_start = depth == 1;
                continue;
            }
            Tok::Punct(')') => depth -= 1,
            Tok::Punct(',') if depth == 1 => {
                at_def_start = true;
                continue;
            }
            Tok::Word(w) | Tok::Str(w) if at_def_start && depth == 1 && w == name => {
                return match t.get(i + 1) {
                    Some(Tok::Word(ty)) => Some(ty.to_ascii_uppercase()),
                    _ => Some(String::new()),
                };
            }
            _ => {}
        }
        at_def_start = false;
    }
    None
}

/// `( a, b COLLATE x DESC, ... )` → column indices, duplicates dropped.
fn pk_list(t: &[Tok], columns: &[String]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut expect_name = false;
    for tok in t {
        match tok {
            Tok::Punct('(') => {
                depth += 1;
                expect_name = depth == 1;
            }
            Tok::Punct(')') => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            Tok::Punct(',') if depth == 1 => expect_name = true,
            Tok::Word(w) | Tok::Str(w) if expect_name => {
                if let Some(c) = columns.iter().position(|c| c.eq_ignore_ascii_case(w)) {
                    if !out.contains(&c) {
                        out.push(c);
                    }
                }
                expect_name = false;
            }
            _ => {}
        }
    }
    out
}

/// A DEFAULT's value when it is a literal; NULL otherwise.
fn literal(t: &[Tok]) -> Value {
    let (neg, t) = match t.first() {
        Some(Tok::Punct('-')) => (true, &t[1..]),
        Some(Tok::Punct('+')) => (false, &t[1..]),
        _ => (false, t),
    };
    match t.first() {
        Some(Tok::Str(s)) => Value::Text(s.clone().into_bytes()),
        Some(Tok::Word(w)) => {
            if w.eq_ignore_ascii_case("true") {
                return Value::Integer(1);
            }
            if w.eq_ignore_ascii_case("false") {
                return Value::Integer(0);
            }
            if let Ok(i) = w.parse::<i64>() {
                return Value::Integer(if neg { -i } else { i });
            }
            if let Ok(f) = w.parse::<f64>() {
                return Value::Real(if neg { -f } else { f });
            }
            if (w == "x" || w == "X") && matches!(t.get(1), Some(Tok::Str(_))) {
                if let Some(Tok::Str(h)) = t.get(1) {
                    let bytes: Option<Vec<u8>> =
                        (0..h.len() / 2).map(|i| u8::from_str_radix(h.get(2 * i..2 * i + 2)?, 16).ok()).collect();
                    return bytes.map(Value::Blob).unwrap_or(Value::Null);
                }
            }
            Value::Null
        }
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rowid_alias_pk_and_without_rowid_are_found() {
        let t = parse_table("CREATE TABLE t(id INTEGER PRIMARY KEY, \"a b\" TEXT DEFAULT 'x', c)").unwrap();
        assert_eq!(t.columns, ["id", "a b", "c"]);
        assert_eq!(t.rowid_alias, Some(0));
        assert_eq!(t.defaults[1], Value::Text(b"x".to_vec()));
        let t = parse_table("CREATE TABLE w(a TEXT, b INT, c, PRIMARY KEY(b, a)) WITHOUT ROWID").unwrap();
        assert!(t.without_rowid);
        assert_eq!(t.pk, [1, 0]);
        assert_eq!(t.record_order(), [1, 0, 2]);
        let t = parse_table("CREATE TABLE u(x int primary key, y DEFAULT -5)").unwrap();
        assert_eq!(t.rowid_alias, None);
        assert_eq!(t.defaults[1], Value::Integer(-5));
        let t = parse_table("CREATE TABLE v(x INTEGER, y, PRIMARY KEY(x))").unwrap();
        assert_eq!(t.rowid_alias, Some(0));
    }
}
