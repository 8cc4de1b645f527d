//! `pagelog diff DB A [B]`: what changed between two versions, row by row.
//!
//! The comparison is `pagelog::diff` (the b-tree pages of both versions,
//! read from the log; pages both versions share are not read). This file
//! only prints it: aligned for people (coloured on a terminal), one JSON
//! object per line, a summary, or SQL that turns A into B.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use pagelog::diff::{self, Action, Diff, DiffError, Key, RowChange};
use pagelog::Error;

use crate::cli::{
    closed_pipe_exits, describe, diag, open_readable, plural, report_damage, unreadable, version_reading, CmdResult,
    Context, Failure,
};

/// Show the rows and schema objects that changed between two versions
///
/// VERSIONS is A (then B = A+1), A B, or A..B; version 0 is the empty
/// database. For each table: the rows inserted, deleted and updated (by
/// rowid, or by PRIMARY KEY for WITHOUT ROWID tables; an update shows each
/// changed column, old → new), then a summary per table. Schema changes
/// (tables, indexes, views, triggers created, dropped or altered) come first.
///
/// --json prints one object per line: {"kind":"insert"|"delete"|"update",
/// "table", "key", "new"|"old"|"changes"}, {"kind":"schema", ...},
/// {"kind":"summary", ...} (see docs/cli.md). --sql prints SQL that turns a copy
/// of version A (`pagelog export --version A`) into version B.
///
/// A damaged log: any two versions that recovery, or a read forward from
/// the start of the log, prove intact can be compared; the damage met is
/// named on stderr and the exit status is 1.
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The pagelog database (log file)
    db: PathBuf,
    /// A, A..B, or A followed by B
    #[arg(value_name = "VERSIONS", num_args = 1..=2, required = true)]
    versions: Vec<String>,
    /// Only this table
    #[arg(long, value_name = "T")]
    table: Option<String>,
    /// One JSON object per change, one per line
    #[arg(long, conflicts_with_all = ["summary", "sql"])]
    json: bool,
    /// Only the per-table counts
    #[arg(long, conflicts_with = "sql")]
    summary: bool,
    /// SQL that turns version A into version B
    #[arg(long)]
    sql: bool,
}

/// A, A..B or A B as numbers; anything else is a usage error (exit 2).
fn parse_versions(v: &[String]) -> Result<(u64, Option<u64>), Failure> {
    let usage = |why: String| {
        Failure::usage(
            "diff",
            format_args!("{why}; give VERSIONS as A, A B or A..B, each a version number (0 is the empty database)"),
        )
    };
    let num = |s: &str| s.trim().parse::<u64>().map_err(|_| usage(format!("{s:?} is not a version number")));
    match v {
        [one] => match one.split_once("..") {
            Some((a, b)) if a.trim().is_empty() || b.trim().is_empty() => {
                Err(usage(format!("{one:?} needs a version on each side of \"..\"")))
            }
            Some((a, b)) => Ok((num(a)?, Some(num(b)?))),
            None => Ok((num(one)?, None)),
        },
        [a, b] => Ok((num(a)?, Some(num(b)?))),
        _ => Err(usage("one or two VERSIONS arguments expected".into())),
    }
}

pub fn run(a: Args) -> CmdResult {
    let (from, to) = parse_versions(&a.versions)?;
    let to = to.unwrap_or(from + 1);
    let r = open_readable(&a.db)?;
    let ra = r.version(from).map_err(|e| unreadable(&r, from, e))?;
    let rb = r.version(to).map_err(|e| unreadable(&r, to, e))?;
    let what = format!("diff {} {from}..{to}", a.db.display());
    let (va, vb) = (&ra.version, &rb.version);
    let mut damage = ra.damage.clone();
    damage.extend(rb.damage.iter().filter(|p| !ra.damage.contains(p)).cloned());
    let started = Instant::now();
    let opts = diff::Options { table: a.table.clone(), full_rows: a.sql };
    let d = diff::diff(va, vb, &opts).map_err(|e| match e {
        // A page image that fails its crc: name the version it hides.
        DiffError::Log(e @ Error::Corrupt { offset, .. }) => match version_reading(&[va, vb], offset) {
            Some(v) => Failure::new(&what, format_args!("version {} cannot be read: {}", v.number, describe(&e))),
            None => Failure::new(&what, describe(&e)),
        },
        e => Failure::new(&what, e),
    })?;
    let elapsed = started.elapsed();
    if let Some(t) = &a.table {
        let known = d.objects.iter().chain(&d.old_objects).any(|o| o.kind == "table" && o.name.eq_ignore_ascii_case(t));
        if !known {
            return Err(Failure::new(&what, format_args!("no table {t:?} in version {from} or {to}")));
        }
    }
    let out = std::io::stdout();
    let mut w = std::io::BufWriter::new(out.lock());
    let r = if a.sql {
        w.write_all(diff::to_sql(&d).as_bytes())
    } else if a.json {
        json_lines(&mut w, &d)
    } else {
        let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        human(&mut w, &d, a.summary, colour)
    };
    closed_pipe_exits(r.and_then(|()| w.flush())).ctx("write output")?;
    if !a.sql && !a.json {
        diag!(
            "{} read, {} changed, {:.1} ms",
            plural(d.pages_read as u64, "page"),
            plural(d.pages_changed as u64, "page"),
            elapsed.as_secs_f64() * 1000.0
        );
    }
    Ok(report_damage(&a.db, &damage))
}

fn json_lines(w: &mut impl Write, d: &Diff) -> std::io::Result<()> {
    for o in diff::json::objects(d) {
        writeln!(w, "{o}")?;
    }
    Ok(())
}

fn key_text(k: &Key, t: &diff::TableDiff) -> String {
    match k {
        Key::Rowid(r) => format!("rowid {r}"),
        Key::Pk(v) => t
            .table
            .pk
            .iter()
            .zip(v)
            .map(|(&c, v)| format!("{}={}", t.table.columns[c], v.short()))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn human(w: &mut impl Write, d: &Diff, summary_only: bool, colour: bool) -> std::io::Result<()> {
    let paint = |code: &str, s: &str| if colour { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_string() };
    let mark = |c: char| match c {
        '+' => paint("32", "+"),
        '-' => paint("31", "-"),
        _ => paint("33", "~"),
    };
    writeln!(w, "version {} -> {}", d.from, d.to)?;
    if !summary_only {
        if !d.schema.is_empty() {
            writeln!(w, "schema:")?;
            let width = d.schema.iter().map(|s| s.kind.len()).max().unwrap_or(0);
            let nw = d.schema.iter().map(|s| s.name.chars().count()).max().unwrap_or(0);
            for s in &d.schema {
                let (m, sql) = match s.action {
                    Action::Create => ('+', s.new_sql.as_deref()),
                    Action::Drop => ('-', s.old_sql.as_deref()),
                    Action::Alter => ('~', s.new_sql.as_deref()),
                };
                writeln!(
                    w,
                    "  {} {:<width$}  {:<nw$}  {}",
                    mark(m),
                    s.kind,
                    s.name,
                    sql.unwrap_or("").replace('\n', " ")
                )?;
            }
        }
        for t in &d.tables {
            if t.changes.is_empty() {
                continue;
            }
            match t.status {
                diff::TableStatus::Same => writeln!(w, "{}:", t.name)?,
                s => writeln!(w, "{} ({}):", t.name, diff::json::status(s))?,
            }
            let keys: Vec<String> = t.changes.iter().map(|c| key_text(c.key(), t)).collect();
            let kw = keys.iter().map(|k| k.chars().count()).max().unwrap_or(0);
            for (c, k) in t.changes.iter().zip(&keys) {
                match c {
                    RowChange::Insert { new, .. } => {
                        let vals: Vec<String> =
                            t.table.columns.iter().zip(new).map(|(n, v)| format!("{n}={}", v.short())).collect();
                        writeln!(w, "  {} {k:<kw$}  {}", mark('+'), vals.join(", "))?;
                    }
                    RowChange::Delete { old, .. } => {
                        let vals: Vec<String> =
                            t.old_table.columns.iter().zip(old).map(|(n, v)| format!("{n}={}", v.short())).collect();
                        writeln!(w, "  {} {k:<kw$}  {}", mark('-'), vals.join(", "))?;
                    }
                    RowChange::Update { old, new, .. } => {
                        let ch: Vec<String> = t
                            .changed_columns(old, new)
                            .into_iter()
                            .map(|(n, o, v)| format!("{n}: {} -> {}", o.short(), v.short()))
                            .collect();
                        writeln!(w, "  {} {k:<kw$}  {}", mark('~'), ch.join(", "))?;
                    }
                }
            }
        }
    }
    if d.tables.is_empty() {
        writeln!(w, "no row changed")?;
        return Ok(());
    }
    let nw = d.tables.iter().map(|t| t.name.chars().count()).max().unwrap_or(5).max(5);
    writeln!(w, "{:<nw$}  {:>9}  {:>9}  {:>9}  status", "table", "inserted", "deleted", "updated")?;
    for t in &d.tables {
        let (i, de, u) = t.counts();
        writeln!(w, "{:<nw$}  {i:>9}  {de:>9}  {u:>9}  {}", t.name, diff::json::status(t.status))?;
    }
    Ok(())
}
