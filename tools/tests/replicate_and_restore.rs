//! `pagelog replicate`, `restore`, `log s3://` and `info s3://` against a
//! real Garage server (one per test binary; each test its own prefix):
//! restores are byte for byte the source log's prefix, versions and plain
//! exports match, bad objects and bad credentials are clear errors.

mod common;
#[path = "replica/garage.rs"]
mod garage;

use std::path::Path;
use std::process::Output;
use std::sync::OnceLock;

use common::{export, make_log, open, version, TempDir};
use garage::Garage;

fn server() -> &'static Garage {
    static G: OnceLock<Garage> = OnceLock::new();
    G.get_or_init(|| Garage::start("replicate"))
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "exit {:?}:\n{}", o.status.code(), text(&o));
    o
}

/// Exit 1 with one line on stderr starting "pagelog: "; returns that line.
fn fails(o: Output) -> String {
    assert_eq!(o.status.code(), Some(1), "expected exit 1:\n{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(err.starts_with("pagelog: ") && err.trim_end().lines().count() == 1, "not one error line:\n{err}");
    err
}

fn replicate_once(g: &Garage, db: &Path, url: &str, extra: &[&str]) -> Output {
    g.pagelog().arg("replicate").arg(db).arg(url).arg("--once").args(extra).output().unwrap()
}

fn restore(g: &Garage, url: &str, out: &Path, extra: &[&str]) -> Output {
    g.pagelog().arg("restore").arg(url).arg(out).args(extra).output().unwrap()
}

/// The source log's bytes up to `len`.
fn prefix(db: &Path, len: usize) -> Vec<u8> {
    let b = std::fs::read(db).unwrap();
    assert!(b.len() >= len, "source shorter than the restored file");
    b[..len].to_vec()
}

fn info_json(g: &Garage, url: &str) -> serde_json::Value {
    let o = ok(g.pagelog().args(["info", url, "--json"]).output().unwrap());
    serde_json::from_slice(&o.stdout).unwrap()
}

fn latest_of(db: &Path) -> u64 {
    let o = ok(std::process::Command::new(env!("CARGO_BIN_EXE_pagelog"))
        .arg("info")
        .arg(db)
        .arg("--json")
        .output()
        .unwrap());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["latest_version"].as_u64().unwrap()
}

#[test]
fn a_restore_is_the_source_log_byte_for_byte_and_replication_resumes_where_the_bucket_ends() {
    let g = server();
    let d = TempDir::new("rep-basic");
    let db = d.path("app.db");
    let url = g.url("basic");
    let c = make_log(&db, 40);
    drop(c);
    let o = ok(replicate_once(g, &db, &url, &["--json"]));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((s["version"].as_u64(), s["lag_versions"].as_u64()), (Some(40), Some(0)), "{s}");

    let out = d.path("out.db");
    ok(restore(g, &url, &out, &[]));
    let got = std::fs::read(&out).unwrap();
    assert_eq!(got, prefix(&db, got.len()), "restore differs from the source's prefix");
    assert_eq!(latest_of(&out), 40);

    // More commits, one with a spill (a transaction larger than its buffer).
    let c = open(&db);
    c.execute_batch("PRAGMA pagelog_spill_limit = 65536").unwrap();
    c.execute_batch("BEGIN; CREATE TABLE big(b)").unwrap();
    for _ in 0..300 {
        c.execute("INSERT INTO big VALUES(randomblob(3000))", []).unwrap();
    }
    c.execute_batch("COMMIT").unwrap();
    for i in 0..20 {
        c.execute("INSERT INTO t(v) VALUES(?1)", [format!("more {i}")]).unwrap();
    }
    let latest = version(&c);
    drop(c);
    let o = ok(replicate_once(g, &db, &url, &["--json"]));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["version"].as_u64(), Some(latest), "{s}");
    // Resumed: the second run uploaded only the new commits.
    assert_eq!(s["segments_uploaded"].as_u64(), Some(1), "{s}");

    // An existing OUT is kept unless --force.
    let e = fails(restore(g, &url, &out, &[]));
    let name = out.file_name().unwrap().to_str().unwrap();
    assert!(e.contains(&format!("{name} already exists (use --force")), "{e}");
    ok(restore(g, &url, &out, &["--force"]));
    let got = std::fs::read(&out).unwrap();
    assert_eq!(got, prefix(&db, got.len()));
    assert_eq!(latest_of(&out), latest);
    // Everything up to the latest commit (the source may go on with the
    // MARK after it and pre-allocated zeros, which are not shipped).
    let o = ok(std::process::Command::new(env!("CARGO_BIN_EXE_pagelog"))
        .arg("info")
        .arg(&db)
        .arg("--json")
        .output()
        .unwrap());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["commit_end"].as_u64(), Some(got.len() as u64), "the restore ends at the latest commit");

    // Listing the bucket.
    let info = info_json(g, &url);
    assert_eq!(info["latest_version"].as_u64(), Some(latest), "{info}");
    assert_eq!(info["generations"].as_array().unwrap().len(), 1);
    let o = ok(g.pagelog().args(["log", &url, "--json"]).output().unwrap());
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2, "{rows}");
    assert_eq!(rows[0]["last_version"].as_u64(), Some(latest));
    assert_eq!(rows[1]["first_version"].as_u64(), Some(1));
}

#[test]
fn restore_of_a_version_is_that_prefix_and_plain_equals_export() {
    let g = server();
    let d = TempDir::new("rep-version");
    let db = d.path("app.db");
    let url = g.url("versions");
    drop(make_log(&db, 60));
    // Small segments: many objects, cut at commit boundaries.
    ok(replicate_once(g, &db, &url, &["--max-segment", "4k"]));
    let segs = info_json(g, &url)["generations"][0]["segments"].as_u64().unwrap();
    assert!(segs > 5, "{segs} segments");
    for n in [1u64, 2, 17, 33, 60] {
        let out = d.path(&format!("v{n}.db"));
        ok(restore(g, &url, &out, &["--version", &n.to_string()]));
        let got = std::fs::read(&out).unwrap();
        assert_eq!(got, prefix(&db, got.len()), "version {n}");
        assert_eq!(latest_of(&out), n);
        let plain = d.path(&format!("v{n}.plain"));
        ok(restore(g, &url, &plain, &["--version", &n.to_string(), "--plain"]));
        assert_eq!(std::fs::read(&plain).unwrap(), export(&db, n, &d.path("x.plain")), "plain version {n}");
    }
    let e = fails(restore(g, &url, &d.path("none.db"), &["--version", "61"]));
    assert!(e.contains("version 61") && e.contains("versions 1 to 60"), "{e}");
    assert!(!e.contains("..="), "{e}");
    // A time before the first commit is echoed as written, not in µs.
    let e = fails(restore(g, &url, &d.path("none.db"), &["--time", "2001-09-09T01:46Z"]));
    assert!(e.contains("as of 2001-09-09T01:46Z") && e.contains("at or before that time"), "{e}");
    assert!(!e.contains("µs") && !e.contains("1000000000000000"), "{e}");
    assert!(!d.path("none.db").exists());
    // --time: the newest version committed at or before it.
    let hist = common::history(&db);
    let t = hist.iter().find(|v| v["version"] == 30).unwrap()["timestamp_us"].as_u64().unwrap();
    let out = d.path("t.db");
    ok(restore(g, &url, &out, &["--time", &format!("{}.{:06}", t / 1_000_000, t % 1_000_000)]));
    let n = latest_of(&out);
    assert!(n >= 30, "restored {n}");
    let tn = hist.iter().find(|v| v["version"] == n).unwrap()["timestamp_us"].as_u64().unwrap();
    assert!(tn <= t);
}

#[test]
fn wrong_credentials_a_missing_bucket_and_an_unreachable_endpoint_are_one_line_errors() {
    let g = server();
    let d = TempDir::new("rep-errors");
    let db = d.path("app.db");
    drop(make_log(&db, 3));
    // Garage's messages quote names as &quot;…&quot;: decoded, and each
    // context said once.
    let once = |e: &str| {
        assert!(!e.contains("&quot;") && !e.contains("&amp;"), "{e}");
        let ctx = e.split(": ").collect::<Vec<_>>();
        assert!(ctx.windows(2).all(|w| w[0] != w[1]), "a context said twice: {e}");
    };
    let e = fails(replicate_once(g, &db, "s3://nosuchbucket/x", &[]));
    assert!(e.contains("NoSuchBucket") || e.contains("404"), "{e}");
    once(&e);
    let e = fails(g.pagelog().env("AWS_SECRET_ACCESS_KEY", "wrong").args(["info", &g.url("x")]).output().unwrap());
    assert!(e.contains("403") || e.contains("Forbidden") || e.contains("Access"), "{e}");
    once(&e);
    assert_eq!(e.matches("list ").count(), 1, "{e}");
    let t0 = std::time::Instant::now();
    let dead = format!(
        "http://127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    );
    let e = fails(
        g.pagelog().env("AWS_ENDPOINT_URL", &dead).arg("restore").arg(g.url("x")).arg(d.path("o.db")).output().unwrap(),
    );
    assert!(e.contains("127.0.0.1") && e.contains("gave up"), "{e}");
    assert!(t0.elapsed().as_secs() < 30);
    assert!(!d.path("o.db").exists());
    let e =
        fails(g.pagelog().env("AWS_ENDPOINT_URL", "http://example.com").args(["info", &g.url("x")]).output().unwrap());
    assert!(e.contains("loopback"), "{e}");
    let e = fails(g.pagelog().env_remove("AWS_ACCESS_KEY_ID").args(["info", &g.url("x")]).output().unwrap());
    assert!(e.contains("AWS_ACCESS_KEY_ID"), "{e}");
}

fn put(s: &pagelog_replica::Store, key: &str, bytes: Vec<u8>) {
    let len = bytes.len() as u64;
    s.put(key, len, false, &mut || Ok(Box::new(std::io::Cursor::new(bytes.clone())) as Box<dyn std::io::Read>))
        .unwrap();
}

#[test]
fn a_damaged_truncated_missing_or_foreign_object_is_refused_by_name_and_nothing_is_left() {
    let g = server();
    let d = TempDir::new("rep-damage");
    let db = d.path("app.db");
    drop(make_log(&db, 30));
    let keys = |s: &pagelog_replica::Store| -> Vec<String> {
        s.list(&s.loc.dir(), None).unwrap().into_iter().map(|o| o.key).filter(|k| k.contains("/seg-")).collect()
    };
    let out = d.path("out.db");
    // Altered: one byte flipped in the middle object.
    let url = g.url("dmg-alter");
    ok(replicate_once(g, &db, &url, &["--max-segment", "8k"]));
    let s = g.store("dmg-alter");
    let k = keys(&s);
    let victim = &k[k.len() / 2];
    let mut b = s.get(victim, None).unwrap();
    let at = b.len() / 2;
    b[at] ^= 0x40;
    put(&s, victim, b);
    let e = fails(restore(g, &url, &out, &[]));
    assert!(e.contains(victim.as_str()) && e.contains("damaged"), "{e}");
    assert!(!out.exists());
    assert_eq!(d.files(), vec!["app.db".to_string()], "no temporary file left");

    // Truncated.
    let url = g.url("dmg-trunc");
    ok(replicate_once(g, &db, &url, &["--max-segment", "8k"]));
    let s = g.store("dmg-trunc");
    let victim = keys(&s)[1].clone();
    let mut b = s.get(&victim, None).unwrap();
    b.truncate(b.len() - 100);
    put(&s, &victim, b);
    let e = fails(restore(g, &url, &out, &[]));
    assert!(e.contains(&victim) && e.contains("truncated"), "{e}");
    assert!(!out.exists());

    // Missing.
    let url = g.url("dmg-missing");
    ok(replicate_once(g, &db, &url, &["--max-segment", "8k"]));
    let s = g.store("dmg-missing");
    let victim = keys(&s)[2].clone();
    s.delete(&victim).unwrap();
    let e = fails(restore(g, &url, &out, &[]));
    assert!(e.contains("missing"), "{e}");
    assert!(!out.exists());

    // Foreign.
    let url = g.url("dmg-foreign");
    ok(replicate_once(g, &db, &url, &[]));
    let s = g.store("dmg-foreign");
    put(&s, &s.loc.key("notes.txt"), b"hello".to_vec());
    let e = fails(restore(g, &url, &out, &[]));
    assert!(e.contains("dmg-foreign/notes.txt") && e.contains("not part of a pagelog replica"), "{e}");
    assert!(!out.exists());

    // A newer log on the same prefix starts a generation of its own (as a
    // compaction does); the older one may then no longer append.
    let url = g.url("dmg-other");
    ok(replicate_once(g, &db, &url, &[]));
    let other = d.path("other.db");
    drop(make_log(&other, 5));
    ok(replicate_once(g, &other, &url, &[]));
    assert_eq!(info_json(g, &url)["generations"].as_array().unwrap().len(), 2);
    let e = fails(replicate_once(g, &db, &url, &[]));
    assert!(e.contains("older copy"), "{e}");
    ok(restore(g, &url, &out, &[]));
    assert_eq!(latest_of(&out), 5);
}

#[test]
fn a_damaged_primary_is_shipped_up_to_the_damage_and_the_error_says_where() {
    let g = server();
    let d = TempDir::new("rep-primary");
    let db = d.path("app.db");
    drop(make_log(&db, 30));
    // Byte 8 of a page version 20 wrote: in a page image, or a patch's
    // range count (format 3): the page no longer checks out either way.
    let at = {
        let log = pagelog::Log::open(&db, pagelog::OpenOptions { read_only: true, ..Default::default() }).unwrap();
        let (v, w) = (log.version(20).unwrap(), log.version(19).unwrap());
        let pg = (1..=v.db_pages()).find(|&p| v.map.get(p) != w.map.get(p)).unwrap();
        pagelog::patch::position(v.map.get(pg).unwrap().offset) as usize + 8
    };
    let mut b = std::fs::read(&db).unwrap();
    b[at] ^= 0x01;
    std::fs::write(&db, &b).unwrap();
    let url = g.url("primary");
    let e = fails(replicate_once(g, &db, &url, &[]));
    assert!(e.contains("damaged at offset") && e.contains("replicated up to version 19"), "{e}");
    assert_eq!(info_json(g, &url)["latest_version"].as_u64(), Some(19));
}

#[test]
fn a_second_replicator_on_the_same_prefix_is_refused() {
    let g = server();
    let d = TempDir::new("rep-two");
    let db = d.path("app.db");
    drop(make_log(&db, 10));
    let url = g.url("two");
    let mut first = g
        .pagelog()
        .arg("replicate")
        .arg(&db)
        .arg(&url)
        .args(["--interval", "100ms", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it has shipped.
    let t0 = std::time::Instant::now();
    while info_json(g, &url)["latest_version"].as_u64() != Some(10) {
        assert!(t0.elapsed().as_secs() < 30, "first replicator never shipped");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let copy = d.path("copy.db");
    std::fs::copy(&db, &copy).unwrap();
    let e = fails(replicate_once(g, &copy, &url, &[]));
    assert!(e.contains("another replicator holds the lease"), "{e}");
    first.kill().unwrap();
    first.wait().unwrap();
    // Killed (-9): its lease is stale at once on this host, so a new
    // replicator resumes.
    ok(replicate_once(g, &db, &url, &[]));
}

#[test]
fn a_compaction_starts_a_generation_older_versions_stay_restorable_and_retain_drops_them() {
    let g = server();
    let d = TempDir::new("rep-compact");
    let db = d.path("app.db");
    drop(make_log(&db, 20));
    let url = g.url("compact");
    ok(replicate_once(g, &db, &url, &[]));
    let before = std::fs::read(&db).unwrap();
    ok(std::process::Command::new(env!("CARGO_BIN_EXE_pagelog"))
        .arg("compact")
        .arg(&db)
        .args(["--keep-last", "5"])
        .output()
        .unwrap());
    let c = open(&db);
    c.execute("INSERT INTO t(v) VALUES('after compaction')", []).unwrap();
    drop(c);
    ok(replicate_once(g, &db, &url, &[]));
    let info = info_json(g, &url);
    let gens = info["generations"].as_array().unwrap();
    assert_eq!(gens.len(), 2, "{info}");
    assert_eq!((gens[1]["first_version"].as_u64(), gens[1]["last_version"].as_u64()), (Some(16), Some(21)));
    // Version 3 is gone from the log, not from the bucket.
    let out = d.path("v3.db");
    ok(restore(g, &url, &out, &["--version", "3"]));
    let got = std::fs::read(&out).unwrap();
    assert_eq!(got, before[..got.len()], "version 3 from the old generation");
    let out = d.path("latest.db");
    ok(restore(g, &url, &out, &[]));
    let got = std::fs::read(&out).unwrap();
    assert_eq!(got, prefix(&db, got.len()));
    assert_eq!(latest_of(&out), 21);
    // --retain 0s: the replaced generation goes.
    ok(replicate_once(g, &db, &url, &["--retain", "0s"]));
    let info = info_json(g, &url);
    assert_eq!(info["generations"].as_array().unwrap().len(), 1, "{info}");
    let e = fails(restore(g, &url, &d.path("gone.db"), &["--version", "3"]));
    assert!(e.contains("version 3"), "{e}");
}

#[test]
fn unsynced_commits_are_synced_before_they_ship_and_a_torn_tail_never_ships() {
    let g = server();
    let d = TempDir::new("rep-durable");
    let db = d.path("app.db");
    let url = g.url("durable");
    let c = make_log(&db, 5);
    // NORMAL commits of a connection that stays open: nothing claims them
    // durable yet; the replicator syncs the log itself, then ships them.
    c.execute_batch("PRAGMA synchronous = NORMAL").unwrap();
    for i in 0..5 {
        c.execute("INSERT INTO t(v) VALUES(?1)", [format!("n{i}")]).unwrap();
    }
    let o = ok(replicate_once(g, &db, &url, &["--json"]));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["version"].as_u64(), Some(10), "{s}");
    drop(c);
    // Debris of a crashed writer after the log's end: a torn record.
    let o = ok(std::process::Command::new(env!("CARGO_BIN_EXE_pagelog"))
        .arg("info")
        .arg(&db)
        .arg("--json")
        .output()
        .unwrap());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let end = v["commit_end"].as_u64().unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    let mut junk = b"PLRC\x02".to_vec();
    junk.extend((0..3000u32).map(|i| (i * 7919 % 251) as u8));
    std::os::unix::fs::FileExt::write_all_at(&f, &junk, end + 64).unwrap();
    drop(f);
    ok(replicate_once(g, &db, &url, &[]));
    let out = d.path("out.db");
    ok(restore(g, &url, &out, &[]));
    let got = std::fs::read(&out).unwrap();
    assert_eq!(got.len() as u64, end, "shipped exactly up to the last commit");
    assert_eq!(got, prefix(&db, got.len()));
}
