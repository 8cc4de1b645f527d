use rusqlite::{Connection, OpenFlags};

fn open(p: &std::path::Path) -> Connection {
    pagelog::register().unwrap();
    Connection::open_with_flags_and_vfs(p, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE, "pagelog")
        .unwrap()
}

#[test]
fn smoke() {
    let dir = std::env::temp_dir().join(format!("pl-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("a.db");
    {
        let c = open(&p);
        let v: i64 = c.query_row("PRAGMA pagelog_version", [], |r| r.get::<_, String>(0)).unwrap().parse().unwrap();
        assert_eq!(v, 0);
        c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES(1);").unwrap();
        let v: String = c.query_row("PRAGMA pagelog_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v, "2");
        c.execute_batch("BEGIN; INSERT INTO t VALUES(2); ROLLBACK;").unwrap();
        let v: String = c.query_row("PRAGMA pagelog_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v, "2");
        for i in 0..100 {
            c.execute("INSERT INTO t VALUES(?)", [i]).unwrap();
        }
        let n: i64 = c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 101);
    }
    let c = open(&p);
    let n: i64 = c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 101);
    let v: String = c.query_row("PRAGMA pagelog_version", [], |r| r.get(0)).unwrap();
    assert_eq!(v, "102");
    let ic: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ic, "ok");
    for e in std::fs::read_dir(&dir).unwrap() {
        println!("{:?}", e.unwrap().path());
    }
}
