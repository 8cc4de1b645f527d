//! kill -9 of a writer process at random moments, many times: the reopened
//! database is always exactly some committed version, never a partial one,
//! every commit the writer saw succeed is there, older versions still read
//! whole and verify, and the next write works.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use pagelog_e2e::{integrity, open, version, TempDir};

fn rounds() -> u32 {
    std::env::var("PAGELOG_CRASH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(25)
}

#[test]
fn killing_a_writer_at_random_moments_never_leaves_a_partial_transaction() {
    let d = TempDir::new("crash");
    let p = d.path("w.db");
    {
        let c = open(&p);
        c.execute_batch(
            "CREATE TABLE t(txn INTEGER, k INTEGER, size INTEGER, pad BLOB);
             CREATE INDEX t_txn ON t(txn);
             CREATE TABLE gone(txn INTEGER)",
        )
        .unwrap();
    }
    let mut next = 1i64;
    let mut seed = 0x9e37_79b9_u64;
    let mut kills = 0;
    for round in 0..rounds() {
        let mut child = Command::new(env!("CARGO_BIN_EXE_plworker"))
            .args(["writer", p.to_str().unwrap(), &next.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait for a first commit, then kill at a pseudo-random moment.
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().expect("writer started").unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_micros(seed % 60_000));
        // SAFETY: plain kill(2) of our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        child.wait().unwrap();
        kills += 1;
        let mut last_reported: i64 = first.trim_start_matches("committed ").parse().unwrap();
        for l in lines.map_while(Result::ok) {
            last_reported = l.trim_start_matches("committed ").parse().unwrap();
        }

        let c = open(&p);
        assert_eq!(integrity(&c), "ok", "round {round}");
        // Every transaction present is whole.
        let bad: i64 = c
            .query_row(
                "SELECT count(*) FROM (SELECT txn, count(*) AS n, max(size) AS s FROM t GROUP BY txn) WHERE n != s",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(bad, 0, "round {round}: a transaction is partly present");
        // Every transaction the writer saw commit is there (or was deleted by a later one).
        let max_txn: i64 = c
            .query_row(
                "SELECT max(m) FROM (SELECT max(txn) AS m FROM t UNION ALL SELECT max(txn) + 3 FROM gone)",
                [],
                |r| r.get::<_, Option<i64>>(0),
            )
            .unwrap()
            .unwrap_or(0);
        assert!(
            max_txn >= last_reported,
            "round {round}: commit {last_reported} was reported but the log ends at {max_txn}"
        );
        let v = version(&c);
        // Every older version is still there and whole: one at random, read
        // in place, and the whole history's checksums.
        if v > 1 {
            let old = 1 + seed % (v - 1);
            let o = pagelog_e2e::open_version(&p, old);
            assert_eq!(integrity(&o), "ok", "round {round}: version {old}");
            let bad: i64 = o
                .query_row(
                    "SELECT count(*) FROM (SELECT txn, count(*) AS n, max(size) AS s FROM t GROUP BY txn) \
                     WHERE n != s",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(bad, 0, "round {round}: version {old} holds a partial transaction");
        }
        let rep = pagelog::verify::verify_file(&p, &mut |_, _| {});
        assert!(!rep.damaged() && rep.error.is_none(), "round {round}: verify: {:?}", rep.damage());
        c.execute("INSERT INTO t(txn, k, size) VALUES (-1, ?1, 1)", [round]).unwrap();
        assert_eq!(version(&c), v + 1, "the next write works");
        c.execute("DELETE FROM t WHERE txn = -1", []).unwrap();
        next = max_txn.max(last_reported) + 1;
    }
    assert_eq!(kills, rounds());
}
