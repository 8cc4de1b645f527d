//! `pagelog log`, the `pagelog_log` SQL table (which Python's `versions()`
//! reads) and the log's records agree on what each format-4 checkpoint
//! wrote. A checkpoint has no entry table (its index tree is its map), and
//! its transaction is `[SPILL …] [INDEX] CONTROL COMMIT`: every checkpoint
//! was listed with 0 pages written, and with the bytes of its COMMIT
//! record only (the listing started its transaction again at its own
//! CONTROL record).

mod common;
use common::*;

/// "N pages changed" from `pagelog diff DB A B --summary` (stderr): the
/// pages whose stored image differs, which for consecutive versions are
/// the pages B's transaction wrote.
fn pages_changed(db: &std::path::Path, a: u64, b: u64) -> u64 {
    let (a, b) = (a.to_string(), b.to_string());
    let r = pagelog(["diff".as_ref(), db.as_os_str(), a.as_ref(), b.as_ref(), "--summary".as_ref()]).ok();
    let at = r.stderr.find(" changed").unwrap_or_else(|| panic!("no 'pages changed' in: {}", r.stderr));
    let words: Vec<&str> = r.stderr[..at].split_whitespace().collect();
    words[words.len() - 2].parse().unwrap_or_else(|_| panic!("no count in: {}", r.stderr))
}

#[test]
fn every_checkpoint_is_listed_with_the_pages_and_bytes_its_transaction_wrote() {
    let d = TempDir::new("log-checkpoints");
    let db = d.path("app.db");
    drop(make_log(&db, 2));
    pagelog(["upgrade".as_ref(), db.as_os_str(), "--format".as_ref(), "4".as_ref()]).ok();
    let c = open(&db);
    for i in 0..300 {
        c.execute("INSERT INTO t(v) VALUES (?1)", [format!("row {i}")]).unwrap();
    }
    // The SQL table, as Python's versions() reads it.
    let sql: Vec<String> = rows(&c, "SELECT version, pages_written, bytes, full_map FROM pagelog_log ORDER BY version");
    drop(c);

    let mut h = history(&db);
    h.reverse(); // oldest first
    let field = |v: &serde_json::Value, f: &str| v[f].as_u64().unwrap();
    let listed: Vec<String> = h
        .iter()
        .map(|v| {
            let full = v["full_map"].as_bool().unwrap() as u8;
            format!("{}|{}|{}|{full}", field(v, "version"), field(v, "pages_written"), field(v, "bytes"))
        })
        .collect();
    assert_eq!(sql, listed, "the SQL table and `pagelog log` agree");

    // The upgrade's checkpoint (version 1) and at least one written since.
    let checkpoints: Vec<&serde_json::Value> = h.iter().filter(|v| v["full_map"] == true).collect();
    assert!(checkpoints.len() >= 2, "checkpoints: {checkpoints:?}");
    for ck in &checkpoints {
        let v = field(ck, "version");
        let changed = pages_changed(&db, v - 1, v);
        assert!(changed >= 1, "version {v} changed no page");
        assert_eq!(field(ck, "pages_written"), changed, "pages written by checkpoint {v}: {ck}");
    }

    // Every byte from 512 to the latest commit's end belongs to one
    // version's transaction (a checkpoint's INDEX and CONTROL records
    // included) or to a MARK (64 bytes) right after a commit. The versions
    // around a checkpoint are deltas of one row, which spill nothing: their
    // bytes are their COMMIT record's. So between the end of the version
    // before a checkpoint and the start of the one after it lie the
    // checkpoint's bytes and at most two MARKs.
    for ck in &checkpoints {
        let v = field(ck, "version");
        let at = h.iter().position(|x| field(x, "version") == v).unwrap();
        let before_end = match at.checked_sub(1).map(|i| &h[i]) {
            None => 512,
            Some(p) => {
                assert_eq!(p["full_map"], false, "version {} is a delta", field(p, "version"));
                field(p, "offset") + field(p, "bytes")
            }
        };
        let after = &h[at + 1];
        assert_eq!(after["full_map"], false, "version {} is a delta", field(after, "version"));
        let gap = field(after, "offset") - before_end - field(ck, "bytes");
        assert!(
            [0, 64, 128].contains(&gap),
            "checkpoint {v} ({ck}) lists {} bytes, but {} lie between version {} and version {}",
            field(ck, "bytes"),
            field(after, "offset") - before_end,
            v - 1,
            v + 1
        );
    }
}
