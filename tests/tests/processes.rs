//! Several OS processes on one log: one writer at a time, busy_timeout,
//! no lost update.

use std::process::Command;

use pagelog_e2e::{integrity, open, version, TempDir};

#[test]
fn four_processes_each_adding_250_leave_exactly_1000() {
    let d = TempDir::new("procs");
    let p = d.path("counter.db");
    {
        let c = open(&p);
        c.execute_batch("CREATE TABLE counter(n); INSERT INTO counter VALUES (0)").unwrap();
    }
    let kids: Vec<_> = (0..4)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_plworker"))
                .args(["increment", p.to_str().unwrap(), "250"])
                .spawn()
                .unwrap()
        })
        .collect();
    for mut k in kids {
        assert!(k.wait().unwrap().success());
    }
    let c = open(&p);
    let n: i64 = c.query_row("SELECT n FROM counter", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 1000);
    assert_eq!(version(&c), 1002, "two setup versions plus one per increment");
    assert_eq!(integrity(&c), "ok");
}

#[test]
fn a_reader_in_this_process_keeps_its_snapshot_while_other_processes_commit() {
    let d = TempDir::new("procsnap");
    let p = d.path("counter.db");
    let c = open(&p);
    c.execute_batch("CREATE TABLE counter(n); INSERT INTO counter VALUES (0)").unwrap();
    c.execute_batch("BEGIN").unwrap();
    let before: i64 = c.query_row("SELECT n FROM counter", [], |r| r.get(0)).unwrap();
    let st =
        Command::new(env!("CARGO_BIN_EXE_plworker")).args(["increment", p.to_str().unwrap(), "20"]).status().unwrap();
    assert!(st.success(), "the writer process must not be blocked by our open read transaction");
    let during: i64 = c.query_row("SELECT n FROM counter", [], |r| r.get(0)).unwrap();
    assert_eq!((before, during), (0, 0));
    c.execute_batch("COMMIT").unwrap();
    let after: i64 = c.query_row("SELECT n FROM counter", [], |r| r.get(0)).unwrap();
    assert_eq!(after, 20);
}
