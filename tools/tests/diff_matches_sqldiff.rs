//! `pagelog diff` against an oracle, SQLite's `sqldiff`, on seeded random
//! workloads: inserts, updates (also of blobs larger than a page, and
//! same-size blob rewrites that change only overflow pages), deletes,
//! schema changes, VACUUM, a page_size change, `pagelog revert`; rowid,
//! INTEGER PRIMARY KEY and WITHOUT ROWID tables. For random version pairs
//! (A, B): `--sql` applied to `export A` gives a database `sqldiff` finds
//! equal to `export B`, and the per-table counts equal `sqldiff --summary`'s.
//! Default: 8 workloads × 3 pairs; PAGELOG_LONG=1: 60 × 5.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::{export, open, pagelog, TempDir};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn sqldiff() -> &'static str {
    assert!(Path::new("/usr/bin/sqldiff").exists(), "sqldiff is not installed (apt-get install sqlite3-tools)");
    "/usr/bin/sqldiff"
}

fn run(cmd: &str, args: &[&std::ffi::OsStr]) -> String {
    let o = Command::new(cmd).args(args).output().unwrap();
    assert!(o.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// One random transaction; returns false when it made no version.
fn step(c: &rusqlite::Connection, db: &Path, rng: &mut Rng, have_extra: &mut bool, cols: &mut u32) -> bool {
    let big = |rng: &mut Rng| if rng.below(4) == 0 { 3000 + rng.below(9000) } else { 1 + rng.below(200) };
    let sql = match rng.below(16) {
        0..=3 => {
            let n = 1 + rng.below(20);
            let (b1, b2) = (big(rng), big(rng));
            let s = format!("WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i<{n})");
            format!(
                "BEGIN; {s} INSERT INTO t(a, b, c) SELECT abs(random()) % 1000, hex(randomblob(4)), randomblob({b1}) FROM s;
                 {s} INSERT OR IGNORE INTO w SELECT hex(randomblob(2)), abs(random()) % 5, randomblob({b2}) FROM s;
                 {s} INSERT INTO r SELECT random(), CASE WHEN i % 3 = 0 THEN NULL ELSE i * 1.5 END FROM s; COMMIT;"
            )
        }
        4..=6 => format!(
            "BEGIN; UPDATE t SET a = a + 1, b = CASE WHEN random() % 2 THEN b ELSE 'x' || b END WHERE id % {m} = {k};
             UPDATE w SET v = randomblob({b}) WHERE j = {j};
             UPDATE r SET y = y * 2 WHERE rowid % 4 = {k4}; COMMIT;",
            m = 2 + rng.below(7),
            k = rng.below(2),
            b = big(rng),
            j = rng.below(5),
            k4 = rng.below(4)
        ),
        7 => "UPDATE t SET c = substr(c, 1, 100) || randomblob(length(c) - 100) WHERE length(c) > 3000;".into(),
        8 | 9 => format!(
            "BEGIN; DELETE FROM t WHERE id % {m} = 0; DELETE FROM w WHERE j = {j}; DELETE FROM r WHERE rowid % 5 = 1; COMMIT;",
            m = 2 + rng.below(5),
            j = rng.below(5)
        ),
        10 => {
            // (a revert may have brought it back or taken it away)
            *have_extra = c
                .query_row("SELECT count(*) FROM sqlite_schema WHERE name = 'extra'", [], |r| r.get::<_, i64>(0))
                .unwrap()
                == 1;
            if *have_extra {
                *have_extra = false;
                "DROP TABLE extra; DROP VIEW IF EXISTS v;".into()
            } else {
                *have_extra = true;
                "CREATE TABLE extra(id INTEGER PRIMARY KEY AUTOINCREMENT, s TEXT);
                 INSERT INTO extra(s) VALUES('one'), ('two');
                 CREATE VIEW v AS SELECT count(*) FROM extra;
                 CREATE TRIGGER tr AFTER INSERT ON extra BEGIN UPDATE extra SET s = s || '!' WHERE id = new.id; END;"
                    .into()
            }
        }
        11 => {
            *cols += 1;
            let n: i64 = c.query_row("SELECT count(*) FROM pragma_table_info('t')", [], |r| r.get(0)).unwrap();
            format!("ALTER TABLE t ADD COLUMN e{cols}_{n} DEFAULT {cols}; CREATE INDEX IF NOT EXISTS ta ON t(a);")
        }
        12 => "DROP INDEX IF EXISTS ta; CREATE INDEX IF NOT EXISTS wv ON w(v);".into(),
        13 => "VACUUM;".into(),
        14 => format!("PRAGMA page_size = {}; VACUUM;", [1024, 2048, 4096, 8192][rng.below(4) as usize]),
        _ => {
            let latest: u64 = common::version(c);
            if latest < 3 {
                return false;
            }
            let to = 1 + rng.below(latest - 1);
            pagelog(["revert".as_ref(), db.as_os_str(), "--to".as_ref(), to.to_string().as_ref()]).ok();
            return true;
        }
    };
    let before = common::version(c);
    c.execute_batch(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    common::version(c) != before
}

/// `sqldiff --summary` as table → (changes, inserts, deletes), for tables in both.
fn oracle_counts(a: &Path, b: &Path) -> BTreeMap<String, (u64, u64, u64)> {
    let out = run(sqldiff(), &["--summary".as_ref(), a.as_os_str(), b.as_os_str()]);
    let mut m = BTreeMap::new();
    for line in out.lines() {
        let Some((t, rest)) = line.split_once(": ") else { continue };
        let n: Vec<u64> = rest.split(", ").filter_map(|p| p.split(' ').next()?.parse().ok()).collect();
        if n.len() == 4 {
            m.insert(t.to_string(), (n[0], n[1], n[2]));
        }
    }
    m
}

fn cut(s: &str) -> String {
    s.lines().map(|l| l.chars().take(200).collect::<String>()).take(60).collect::<Vec<_>>().join("\n")
}

fn check_pair(d: &TempDir, db: &Path, a: u64, b: u64, what: &str) {
    let (ea, eb, applied) = (d.path("a.db"), d.path("b.db"), d.path("applied.db"));
    export(db, a, &ea);
    export(db, b, &eb);
    std::fs::copy(&ea, &applied).unwrap();
    let range = format!("{a}..{b}");
    let sql = pagelog(["diff".as_ref(), db.as_os_str(), range.as_ref(), "--sql".as_ref()]).ok().stdout;
    let script = d.path("diff.sql");
    std::fs::write(&script, &sql).unwrap();
    let o = Command::new(common::sqlite3_shell())
        .arg("-batch")
        .arg("-bail")
        .arg(&applied)
        .stdin(std::fs::File::open(&script).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{what}: applying --sql failed: {}\n{}", String::from_utf8_lossy(&o.stderr), cut(&sql));
    // A version without sqlite_sequence cannot be reached from one with it
    // (SQLite refuses to drop it); --sql empties it instead.
    let left: String = run(sqldiff(), &[applied.as_os_str(), eb.as_os_str()])
        .lines()
        .filter(|l| *l != "DROP TABLE sqlite_sequence;")
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(left.is_empty(), "{what}: after --sql, sqldiff still finds:\n{}\n--sql was:\n{}", cut(&left), cut(&sql));

    let json = pagelog(["diff".as_ref(), db.as_os_str(), range.as_ref(), "--json".as_ref()]).ok().stdout;
    let mut ours: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for line in json.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["kind"] == "summary" && v["status"] == "same" {
            let n = |k: &str| v[k].as_u64().unwrap();
            ours.insert(v["table"].as_str().unwrap().to_string(), (n("updated"), n("inserted"), n("deleted")));
        }
    }
    for (t, (ch, ins, del)) in oracle_counts(&ea, &eb) {
        let same_schema = !json.lines().any(|l| {
            l.contains("\"kind\":\"summary\"")
                && l.contains(&format!("\"table\":\"{t}\""))
                && !l.contains("\"status\":\"same\"")
        });
        if !same_schema {
            continue;
        }
        let got = ours.get(&t).copied().unwrap_or((0, 0, 0));
        assert_eq!(got, (ch, ins, del), "{what}: table {t}: (updated, inserted, deleted) against sqldiff --summary");
    }
}

#[test]
fn diff_agrees_with_sqldiff_on_random_workloads() {
    let long = std::env::var_os("PAGELOG_LONG").is_some();
    let (workloads, pairs) = if long { (60, 5) } else { (8, 3) };
    for seed in 1..=workloads {
        let d = TempDir::new("diffprop");
        let db = d.path("app.db");
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (seed * 0x1000_0001));
        let c = open(&db);
        c.execute_batch(
            "PRAGMA synchronous = OFF; BEGIN;
             CREATE TABLE t(id INTEGER PRIMARY KEY, a INT, b TEXT, c BLOB);
             CREATE TABLE w(k TEXT, j INT, v BLOB, PRIMARY KEY(k, j)) WITHOUT ROWID;
             CREATE TABLE r(x, y REAL); COMMIT;",
        )
        .unwrap();
        let (mut extra, mut cols) = (false, 0);
        let steps = 12 + rng.below(12);
        for _ in 0..steps {
            step(&c, &db, &mut rng, &mut extra, &mut cols);
        }
        let latest = common::version(&c);
        drop(c);
        for i in 0..pairs {
            let a = 1 + rng.below(latest);
            let b = if i == 0 { (a + 1).min(latest) } else { 1 + rng.below(latest) };
            check_pair(&d, &db, a, b, &format!("seed {seed}, versions {a}..{b} of {latest}"));
        }
    }
}
