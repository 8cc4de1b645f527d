//! `pagelog::register_default()` makes every open without a VFS name go
//! through pagelog. Its own test binary: it changes the process default.

use pagelog_e2e::{version, TempDir};

#[test]
fn register_default_makes_plain_opens_use_pagelog() {
    let d = TempDir::new("default");
    pagelog::register_default().unwrap();
    pagelog::register_default().unwrap(); // idempotent
    let p = d.path("a.db");
    let c = rusqlite::Connection::open(&p).unwrap();
    c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1)").unwrap();
    assert_eq!(version(&c), 2);
    drop(c);
    assert_eq!(&std::fs::read(&p).unwrap()[..8], b"PAGELOG\0");
    assert_eq!(d.files(), vec!["a.db"]);
}
