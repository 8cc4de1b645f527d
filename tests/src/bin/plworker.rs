//! A worker process for the multi-process and crash tests.
//!
//! * `plworker increment DB N` — adds 1 to the counter N times, each in its
//!   own transaction, with a busy timeout.
//! * `plworker writer DB START` — forever: transaction i (from START) inserts
//!   a batch of rows tagged i whose size it also records, and prints
//!   `committed i` after COMMIT returns. Some batches are large enough to
//!   spill. Meant to be killed with SIGKILL at random moments.
use std::io::Write;
use std::path::Path;
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let conn = pagelog_e2e::open(Path::new(&args[2]));
    conn.busy_timeout(Duration::from_secs(30)).unwrap();
    match args[1].as_str() {
        "increment" => {
            let n: u32 = args[3].parse().unwrap();
            for _ in 0..n {
                conn.execute("UPDATE counter SET n = n + 1", []).unwrap();
            }
        }
        "writer" => {
            conn.execute_batch("PRAGMA pagelog_spill_limit = 65536").unwrap();
            let mut i: i64 = args[3].parse().unwrap();
            let mut out = std::io::stdout();
            loop {
                let rows = [1i64, 3, 50, 400][(i % 4) as usize];
                let blob = if i % 7 == 0 { 3000 } else { 20 };
                let tx = conn.unchecked_transaction().unwrap();
                for k in 0..rows {
                    tx.execute(
                        "INSERT INTO t(txn, k, size, pad) VALUES (?1, ?2, ?3, randomblob(?4))",
                        rusqlite::params![i, k, rows, blob],
                    )
                    .unwrap();
                }
                if i % 5 == 0 {
                    tx.execute("DELETE FROM t WHERE txn = ?1", [i - 3]).unwrap();
                    tx.execute("INSERT INTO gone(txn) VALUES (?1)", [i - 3]).unwrap();
                }
                tx.commit().unwrap();
                writeln!(out, "committed {i}").unwrap();
                out.flush().unwrap();
                i += 1;
            }
        }
        m => panic!("unknown mode {m}"),
    }
}
