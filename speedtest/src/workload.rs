//! The SQL of `tool/speedtest.tcl`, generated up front as the Tcl script did
//! (it wrote `testN.sql` before timing `sqlite3 db <testN.sql`).
//!
//! * One random stream, `srand(1)` then `rand()` in script order, shared by
//!   every test that draws (tests 1, 2, 8, 9 and 14); see [`crate::rng`].
//! * Statements carry their literal values and end in `;`, one per string,
//!   exactly as the Tcl `puts` lines read.
//! * `--scale F` multiplies the *row* counts — the per-row statement loops
//!   (1000 and 3000 t1 INSERTs, 25000 t2 INSERTs/UPDATEs) and the `a<20000`
//!   bound of "DELETE with an index", each rounded and at least 1. The query
//!   loops (100, 100 and 5000 SELECTs, 1000 range UPDATEs) keep their counts.
//! * Each [`Test`] records the row counts the script implies afterwards
//!   ([`TableCounts`]), computed by a small model of the two tables, so a run
//!   can be checked against the database it produced.

use crate::rng::TclRng;
use crate::words::number_name;

/// Row counts of t1 and t2; `None` when the table does not exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableCounts {
    pub t1: Option<u64>,
    pub t2: Option<u64>,
}

/// One timed test: the statements one `sqlite3 db <testN.sql` ran.
#[derive(Clone, Debug)]
pub struct Test {
    /// 1-based, the script's `$cnt`.
    pub id: usize,
    /// The script's title, with scaled counts ("1000 INSERTs").
    pub title: String,
    pub statements: Vec<String>,
    /// Write transactions committed by the test (autocommit statements
    /// count one each; BEGIN…COMMIT counts one).
    pub commits: u64,
    /// What the tables hold after the test.
    pub expect: TableCounts,
}

/// The scaled sizes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scale {
    pub factor: f64,
    /// Test 1: INSERTs into t1 (1000).
    pub t1_rows: u64,
    /// Test 2: INSERTs into t2 (25000); also tests 8 and 9's UPDATEs.
    pub t2_rows: u64,
    /// Test 14: INSERTs into t1 after the big DELETE (3000).
    pub t1_refill_rows: u64,
    /// Test 12: `DELETE FROM t2 WHERE a>10 AND a<N` (20000).
    pub delete_below: u64,
}

/// The largest `--scale` accepted (2.5 million t2 rows, held in memory as SQL).
pub const MAX_SCALE: f64 = 100.0;

impl Scale {
    pub fn new(factor: f64) -> Result<Scale, String> {
        if !factor.is_finite() || factor <= 0.0 || factor > MAX_SCALE {
            return Err(format!("scale must be a number in (0, {MAX_SCALE}], got {factor}"));
        }
        let s = |base: u64| ((base as f64 * factor).round() as u64).max(1);
        Ok(Scale { factor, t1_rows: s(1000), t2_rows: s(25_000), t1_refill_rows: s(3000), delete_below: s(20_000) })
    }
}

/// Everything one run executes.
#[derive(Clone, Debug)]
pub struct Workload {
    pub scale: Scale,
    pub all_tests: bool,
    pub tests: Vec<Test>,
}

impl Workload {
    /// The row counts the script implies at the end of a run.
    pub fn final_counts(&self) -> TableCounts {
        self.tests.last().map(|t| t.expect).unwrap_or(TableCounts { t1: None, t2: None })
    }
}

/// A model row: the key and whether `c LIKE '%fifty%'`.
#[derive(Clone, Copy)]
struct Row {
    a: u64,
    fifty: bool,
}

fn row(a: u64, r: u64) -> (Row, String) {
    let c = number_name(r);
    (Row { a, fifty: c.contains("fifty") }, c)
}

struct Gen {
    rng: TclRng,
    t1: Option<Vec<Row>>,
    t2: Option<Vec<Row>>,
    tests: Vec<Test>,
}

impl Gen {
    fn push(&mut self, title: String, statements: Vec<String>, commits: u64) {
        let expect =
            TableCounts { t1: self.t1.as_ref().map(|t| t.len() as u64), t2: self.t2.as_ref().map(|t| t.len() as u64) };
        self.tests.push(Test { id: self.tests.len() + 1, title, statements, commits, expect });
    }
}

/// Generates the four tests of the seed, or with `all_tests` all fifteen of
/// speedtest.tcl, at `scale`.
pub fn generate(scale: Scale, all_tests: bool) -> Workload {
    let (rng, _) = TclRng::srand(1);
    let mut g = Gen { rng, t1: None, t2: None, tests: Vec::new() };
    let sc = scale;

    // Test 1: INSERTs, each its own transaction.
    let mut s = vec!["CREATE TABLE t1(a INTEGER, b INTEGER, c VARCHAR(100));".to_string()];
    let mut t1 = Vec::new();
    for i in 1..=sc.t1_rows {
        let r = g.rng.rand_int(100_000);
        let (m, c) = row(i, r);
        s.push(format!("INSERT INTO t1 VALUES({i},{r},'{c}');"));
        t1.push(m);
    }
    g.t1 = Some(t1);
    g.push(format!("{} INSERTs", sc.t1_rows), s, sc.t1_rows + 1);

    // Test 2: INSERTs in one transaction.
    let mut s = vec!["BEGIN;".to_string(), "CREATE TABLE t2(a INTEGER, b INTEGER, c VARCHAR(100));".to_string()];
    let mut t2 = Vec::new();
    for i in 1..=sc.t2_rows {
        let r = g.rng.rand_int(500_000);
        let (m, c) = row(i, r);
        s.push(format!("INSERT INTO t2 VALUES({i},{r},'{c}');"));
        t2.push(m);
    }
    s.push("COMMIT;".to_string());
    g.t2 = Some(t2);
    g.push(format!("{} INSERTs in a transaction", sc.t2_rows), s, 1);

    // Test 3: range SELECTs without an index.
    let s = (0..100u64)
        .map(|i| {
            let (lwr, upr) = (i * 100, (i + 10) * 100);
            format!("SELECT count(*), avg(b) FROM t2 WHERE b>={lwr} AND b<{upr};")
        })
        .collect();
    g.push("100 SELECTs without an index".into(), s, 0);

    // Test 4: LIKE SELECTs.
    let s =
        (1..=100u64).map(|i| format!("SELECT count(*), avg(b) FROM t2 WHERE c LIKE '%{}%';", number_name(i))).collect();
    g.push("100 SELECTs on a string comparison".into(), s, 0);

    if all_tests {
        generate_later_tests(&mut g, sc);
    }

    Workload { scale, all_tests, tests: g.tests }
}

/// Tests 5–15 of speedtest.tcl.
fn generate_later_tests(g: &mut Gen, sc: Scale) {
    // Test 5
    let s = vec!["CREATE INDEX i2a ON t2(a);".to_string(), "CREATE INDEX i2b ON t2(b);".to_string()];
    g.push("Creating an index".into(), s, 2);

    // Test 6
    let s = (0..5000u64)
        .map(|i| {
            let (lwr, upr) = (i * 100, (i + 1) * 100);
            format!("SELECT count(*), avg(b) FROM t2 WHERE b>={lwr} AND b<{upr};")
        })
        .collect();
    g.push("5000 SELECTs with an index".into(), s, 0);

    // Test 7: b changes, counts do not.
    let mut s = vec!["BEGIN;".to_string()];
    for i in 0..1000u64 {
        let (lwr, upr) = (i * 10, (i + 1) * 10);
        s.push(format!("UPDATE t1 SET b=b*2 WHERE a>={lwr} AND a<{upr};"));
    }
    s.push("COMMIT;".into());
    g.push("1000 UPDATEs without an index".into(), s, 1);

    // Test 8
    let mut s = vec!["BEGIN;".to_string()];
    for i in 1..=sc.t2_rows {
        let r = g.rng.rand_int(500_000);
        s.push(format!("UPDATE t2 SET b={r} WHERE a={i};"));
    }
    s.push("COMMIT;".into());
    g.push(format!("{} UPDATEs with an index", sc.t2_rows), s, 1);

    // Test 9: c changes, so does which rows say "fifty".
    let mut s = vec!["BEGIN;".to_string()];
    for i in 1..=sc.t2_rows {
        let r = g.rng.rand_int(500_000);
        let (m, c) = row(i, r);
        s.push(format!("UPDATE t2 SET c='{c}' WHERE a={i};"));
        // Until test 10 t2 holds exactly a = 1..=t2_rows, in order.
        if let Some(x) = g.t2.as_mut().and_then(|t| t.get_mut((i - 1) as usize)) {
            debug_assert_eq!(x.a, i);
            x.fifty = m.fifty;
        }
    }
    s.push("COMMIT;".into());
    g.push(format!("{} text UPDATEs with an index", sc.t2_rows), s, 1);

    // Test 10
    let s = vec![
        "BEGIN;".to_string(),
        "INSERT INTO t1 SELECT * FROM t2;".to_string(),
        "INSERT INTO t2 SELECT * FROM t1;".to_string(),
        "COMMIT;".to_string(),
    ];
    let t2_rows = g.t2.clone().unwrap_or_default();
    if let Some(t1) = g.t1.as_mut() {
        t1.extend(t2_rows);
    }
    let t1_rows = g.t1.clone().unwrap_or_default();
    if let Some(t2) = g.t2.as_mut() {
        t2.extend(t1_rows);
    }
    g.push("INSERTs from a SELECT".into(), s, 1);

    // Test 11
    if let Some(t2) = g.t2.as_mut() {
        t2.retain(|x| !x.fifty);
    }
    g.push("DELETE without an index".into(), vec!["DELETE FROM t2 WHERE c LIKE '%fifty%';".into()], 1);

    // Test 12
    let below = sc.delete_below;
    if let Some(t2) = g.t2.as_mut() {
        t2.retain(|x| !(x.a > 10 && x.a < below));
    }
    g.push("DELETE with an index".into(), vec![format!("DELETE FROM t2 WHERE a>10 AND a<{below};")], 1);

    // Test 13
    let t1_rows = g.t1.clone().unwrap_or_default();
    if let Some(t2) = g.t2.as_mut() {
        t2.extend(t1_rows);
    }
    g.push("A big INSERT after a big DELETE".into(), vec!["INSERT INTO t2 SELECT * FROM t1;".into()], 1);

    // Test 14
    let mut s = vec!["BEGIN;".to_string(), "DELETE FROM t1;".to_string()];
    let mut t1 = Vec::new();
    for i in 1..=sc.t1_refill_rows {
        let r = g.rng.rand_int(100_000);
        let (m, c) = row(i, r);
        s.push(format!("INSERT INTO t1 VALUES({i},{r},'{c}');"));
        t1.push(m);
    }
    s.push("COMMIT;".into());
    g.t1 = Some(t1);
    g.push("A big DELETE followed by many small INSERTs".into(), s, 1);

    // Test 15
    g.t1 = None;
    g.t2 = None;
    g.push("DROP TABLE".into(), vec!["DROP TABLE t1;".into(), "DROP TABLE t2;".into()], 2);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_workload() -> Workload {
        generate(Scale::new(1.0).unwrap(), false)
    }

    /// The head and tail of each test, as the seed prints them.
    #[test]
    fn test_1_matches_the_seed_rows() {
        let w = default_workload();
        let s = &w.tests[0].statements;
        assert_eq!(s.len(), 1001);
        assert_eq!(s[0], "CREATE TABLE t1(a INTEGER, b INTEGER, c VARCHAR(100));");
        assert_eq!(s[1], "INSERT INTO t1 VALUES(1,13153,'thirteen thousand one hundred fifty three');");
        assert_eq!(s[2], "INSERT INTO t1 VALUES(2,75560,'seventy five thousand five hundred sixty');");
        assert_eq!(s[998], "INSERT INTO t1 VALUES(998,66289,'sixty six thousand two hundred eighty nine');");
        assert_eq!(s[999], "INSERT INTO t1 VALUES(999,24322,'twenty four thousand three hundred twenty two');");
        assert_eq!(s[1000], "INSERT INTO t1 VALUES(1000,94142,'ninety four thousand one hundred forty two');");
    }

    #[test]
    fn test_2_matches_the_seed_rows() {
        let w = default_workload();
        let s = &w.tests[1].statements;
        assert_eq!(s.len(), 25_003);
        assert_eq!(s[0], "BEGIN;");
        assert_eq!(s[1], "CREATE TABLE t2(a INTEGER, b INTEGER, c VARCHAR(100));");
        assert_eq!(
            s[2],
            "INSERT INTO t2 VALUES(1,298361,'two hundred ninety eight thousand three hundred sixty one');"
        );
        assert_eq!(
            s[25_000],
            "INSERT INTO t2 VALUES(24999,447847,'four hundred forty seven thousand eight hundred forty seven');"
        );
        assert_eq!(
            s[25_001],
            "INSERT INTO t2 VALUES(25000,473330,'four hundred seventy three thousand three hundred thirty');"
        );
        assert_eq!(s[25_002], "COMMIT;");
    }

    #[test]
    fn test_3_matches_the_seed_selects() {
        let w = default_workload();
        let s = &w.tests[2].statements;
        assert_eq!(s.len(), 100);
        let want_head = [
            "SELECT count(*), avg(b) FROM t2 WHERE b>=0 AND b<1000;",
            "SELECT count(*), avg(b) FROM t2 WHERE b>=100 AND b<1100;",
            "SELECT count(*), avg(b) FROM t2 WHERE b>=200 AND b<1200;",
        ];
        let want_tail = [
            "SELECT count(*), avg(b) FROM t2 WHERE b>=9700 AND b<10700;",
            "SELECT count(*), avg(b) FROM t2 WHERE b>=9800 AND b<10800;",
            "SELECT count(*), avg(b) FROM t2 WHERE b>=9900 AND b<10900;",
        ];
        assert_eq!(&s[..3], &want_head);
        assert_eq!(&s[97..], &want_tail);
    }

    #[test]
    fn test_4_matches_the_seed_selects() {
        let w = default_workload();
        let s = &w.tests[3].statements;
        assert_eq!(s.len(), 100);
        let want_head = [
            "SELECT count(*), avg(b) FROM t2 WHERE c LIKE '%one%';",
            "SELECT count(*), avg(b) FROM t2 WHERE c LIKE '%two%';",
            "SELECT count(*), avg(b) FROM t2 WHERE c LIKE '%three%';",
        ];
        let want_tail = [
            "SELECT count(*), avg(b) FROM t2 WHERE c LIKE '%ninety eight%';",
            "SELECT count(*), avg(b) FROM t2 WHERE c LIKE '%ninety nine%';",
            "SELECT count(*), avg(b) FROM t2 WHERE c LIKE '%one hundred%';",
        ];
        assert_eq!(&s[..3], &want_head);
        assert_eq!(&s[97..], &want_tail);
    }

    #[test]
    fn the_four_tests_are_a_prefix_of_all_tests() {
        let four = default_workload();
        let all = generate(Scale::new(1.0).unwrap(), true);
        assert_eq!(all.tests.len(), 15);
        for (a, b) in four.tests.iter().zip(&all.tests) {
            assert_eq!(a.statements, b.statements);
        }
    }

    #[test]
    fn scale_multiplies_row_counts_only() {
        let sc = Scale::new(0.01).unwrap();
        assert_eq!((sc.t1_rows, sc.t2_rows, sc.t1_refill_rows, sc.delete_below), (10, 250, 30, 200));
        let w = generate(sc, true);
        assert_eq!(w.tests[0].statements.len(), 11);
        assert_eq!(w.tests[1].statements.len(), 253);
        assert_eq!(w.tests[2].statements.len(), 100);
        assert_eq!(w.tests[5].statements.len(), 5000);
        // The stream is shared: the scaled run starts with the same rows.
        assert_eq!(
            w.tests[0].statements[1],
            "INSERT INTO t1 VALUES(1,13153,'thirteen thousand one hundred fifty three');"
        );
    }

    #[test]
    fn bad_scales_are_refused() {
        for f in [0.0, -1.0, f64::NAN, f64::INFINITY, MAX_SCALE * 2.0] {
            assert!(Scale::new(f).is_err(), "{f}");
        }
    }

    #[test]
    fn expected_counts_follow_the_script() {
        let w = generate(Scale::new(1.0).unwrap(), true);
        let c: Vec<TableCounts> = w.tests.iter().map(|t| t.expect).collect();
        assert_eq!(c[0], TableCounts { t1: Some(1000), t2: None });
        assert_eq!(c[1], TableCounts { t1: Some(1000), t2: Some(25_000) });
        assert_eq!(c[8], TableCounts { t1: Some(1000), t2: Some(25_000) });
        assert_eq!(c[9], TableCounts { t1: Some(26_000), t2: Some(51_000) });
        assert_eq!(c[13].t1, Some(3000));
        assert_eq!(c[14], TableCounts { t1: None, t2: None });
        assert_eq!(w.final_counts(), TableCounts { t1: None, t2: None });
        assert_eq!(w.tests[0].commits, 1001);
    }
}
