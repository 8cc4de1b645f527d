//! Issue 25, items 1 and 2: when a disk goes bad, the tools get out every
//! version that recovery or a forward read from the start of the log can
//! prove intact, name the damage, and exit 1. Each test is a reproducer of
//! the issue: a log made through SQL, a copy of it damaged by one flipped
//! byte, then every tool run on the copy through the CLI. Every version
//! exported from the damaged copy must be byte for byte the intact log's
//! export of it; every other version must fail with an error naming the
//! damage and leave nothing at OUT.

mod common;

use std::path::Path;

use common::*;

/// `pagelog log DB --json`: exit code, versions oldest first, stderr.
fn listed(db: &Path) -> (i32, Vec<u64>, String) {
    let r = pagelog(["log".as_ref(), db.as_os_str(), "--json".as_ref()]);
    let mut v: Vec<u64> = r.json().as_array().unwrap().iter().map(|c| c["version"].as_u64().unwrap()).collect();
    v.reverse();
    (r.code, v, r.stderr)
}

/// The versions of the intact log that are full maps, oldest first.
fn full_maps(db: &Path) -> Vec<u64> {
    let mut v: Vec<u64> =
        history(db).iter().filter(|c| c["full_map"] == true).map(|c| c["version"].as_u64().unwrap()).collect();
    v.sort();
    v
}

/// Checks the damaged copy `bad` of `good` through the CLI: `log` lists
/// exactly `want` (and exits 1, naming `damage_at`), `info` agrees, and
/// the versions of `sample` export from `bad` byte for byte as from `good`
/// when listed, and fail naming the damage when not.
fn check(d: &TempDir, good: &Path, bad: &Path, want: &[u64], damage_at: u64, sample: &[u64]) {
    let (code, got, stderr) = listed(bad);
    assert_eq!(code, 1, "log exits 1 on a damaged log: {stderr}");
    assert!(offsets_named(&stderr).contains(&damage_at), "log names the damage at {damage_at}: {stderr}");
    assert_eq!(got, want, "the versions log lists");

    let info = pagelog(["info".as_ref(), bad.as_os_str(), "--json".as_ref()]);
    assert_eq!(info.code, 1, "info exits 1 on a damaged log: {}", info.stderr);
    let j = info.json();
    assert_eq!(j["versions"].as_u64(), Some(want.len() as u64), "{j}");
    assert_eq!(j["oldest_version"].as_u64(), want.first().copied(), "{j}");
    assert_eq!(j["latest_version"].as_u64(), want.last().copied(), "{j}");
    let named: Vec<u64> = j["damage"].as_array().unwrap().iter().map(|p| p["offset"].as_u64().unwrap()).collect();
    assert!(named.contains(&damage_at), "info names the damage at {damage_at}: {j}");
    let human = pagelog(["info".as_ref(), bad.as_os_str()]);
    assert_eq!(human.code, 1);
    assert!(human.stdout.contains(&format!("damage        at offset {damage_at}:")), "{}", human.stdout);

    for &n in sample {
        let out = d.path(&format!("bad-{n}.db"));
        let ns = n.to_string();
        let r = pagelog(["export".as_ref(), bad.as_os_str(), out.as_os_str(), "--version".as_ref(), ns.as_ref()]);
        if want.contains(&n) {
            assert!(r.code == 0 || r.code == 1, "export of version {n}: {}", r.stderr);
            assert_eq!(
                r.code == 1,
                r.stderr.contains("is damaged at offset"),
                "exit 1 iff damage was named: {}",
                r.stderr
            );
            let intact = export(good, n, &d.path(&format!("good-{n}.db")));
            assert_eq!(std::fs::read(&out).unwrap(), intact, "version {n} exports as from the intact log");
        } else {
            assert_eq!(r.code, 1, "version {n} is not readable: {}", r.stderr);
            assert!(r.stderr.contains(&format!("version {n} cannot be read")), "{}", r.stderr);
            assert!(!offsets_named(&r.stderr).is_empty() && r.stderr.contains("can be read are 0, "), "{}", r.stderr);
            assert!(!out.exists(), "nothing is left at OUT");
        }
    }
}

/// The versions around each boundary of `want` within 1..=latest, and every
/// 64th: where being readable changes, and a spread in between.
fn sample(want: &[u64], latest: u64) -> Vec<u64> {
    let mut s: Vec<u64> = (1..=latest).step_by(64).collect();
    for w in want.windows(2).filter(|w| w[1] != w[0] + 1) {
        s.extend([w[0], w[0] + 1, w[1] - 1, w[1]]);
    }
    s.extend([1, 2, latest]);
    s.extend(want.first().map(|f| f.saturating_sub(1)));
    s.retain(|&n| n >= 1 && n <= latest);
    s.sort();
    s.dedup();
    s
}

#[test]
fn a_flipped_db_pages_of_the_oldest_commit_leaves_every_version_after_the_next_full_map() {
    let d = TempDir::new("damaged-oldest");
    let good = d.path("good.db");
    {
        let c = open(&good);
        c.execute_batch("PRAGMA page_size=65536; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)").unwrap();
        for i in 1..=400 {
            c.execute("INSERT INTO t VALUES(?1, 'row ' || ?1 || hex(randomblob(20)))", [i]).unwrap();
        }
        for i in 1..=300 {
            c.execute("UPDATE t SET v = 'update ' || ?1 WHERE id = ?1 % 400 + 1", [i]).unwrap();
        }
        assert_eq!(version(&c), 701);
    }
    let fulls = full_maps(&good);
    assert!(fulls.len() >= 2 && fulls[0] == 1, "full maps {fulls:?}");
    let bad = d.path("bad.db");
    std::fs::copy(&good, &bad).unwrap();
    // The oldest commit's `db pages` (record header 48 bytes, then 8 bytes
    // of timestamp): its trailer crc no longer checks out.
    flip(&bad, 512 + 48 + 8, 0x10);

    // SQL reads the latest version, as before.
    let c = open_version(&bad, 701);
    assert_eq!(rows(&c, "SELECT count(*) FROM t"), ["400"]);
    drop(c);
    let want: Vec<u64> = (fulls[1]..=701).collect();
    // Named by its trailer, which no longer checks out.
    let b = std::fs::read(&good).unwrap();
    let trailer = 512 + u64::from_le_bytes(b[520..528].try_into().unwrap()) - 16;
    check(&d, &good, &bad, &want, trailer, &sample(&want, 701));
    // The latest version, by default, without meeting the damage: exit 0.
    let out = d.path("latest.db");
    let r = pagelog(["export".as_ref(), bad.as_os_str(), out.as_os_str()]).ok();
    assert!(!r.stderr.contains("is damaged"), "{}", r.stderr);
    assert_eq!(std::fs::read(&out).unwrap(), export(&good, 701, &d.path("good-latest.db")));
}

#[test]
fn a_damaged_record_header_of_version_2_leaves_version_1_and_every_version_after_the_next_full_map() {
    let d = TempDir::new("damaged-v2");
    let good = d.path("good.db");
    {
        let c = open(&good);
        c.execute_batch("PRAGMA synchronous=NORMAL; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)").unwrap();
        for i in 2..=600 {
            c.execute("INSERT INTO t VALUES(?1, 'row ' || ?1)", [i]).unwrap();
        }
        c.execute_batch("PRAGMA synchronous=FULL").unwrap();
        for i in 1..=100 {
            c.execute("UPDATE t SET v = 'update ' || ?1 WHERE id = ?1 + 1", [i]).unwrap();
        }
        assert_eq!(version(&c), 700);
    }
    let v2 = history(&good).iter().find(|c| c["version"] == 2).unwrap()["offset"].as_u64().unwrap();
    let fulls = full_maps(&good);
    let bad = d.path("bad.db");
    std::fs::copy(&good, &bad).unwrap();
    flip(&bad, v2 + 20, 0x10); // version 2's record header: its header crc fails

    let c = open_version(&bad, 700);
    assert_eq!(rows(&c, "SELECT count(*) FROM t"), ["599"]);
    drop(c);
    let verify = pagelog(["verify".as_ref(), "--verbose".as_ref(), bad.as_os_str()]);
    assert_eq!(verify.code, 1);
    assert!(verify.stdout.contains("version 1: ok"), "{}", verify.stdout);

    let next_full = *fulls.iter().find(|&&f| f > 2).unwrap();
    let want: Vec<u64> = std::iter::once(1).chain(next_full..=700).collect();
    check(&d, &good, &bad, &want, v2 + 44, &sample(&want, 700));
    // Version 1, the reproducer: it is read, whether the way to it
    // meets the damage (exit 1, naming it: a walk back commit by commit,
    // or the forward read from the start) or not (exit 0: the walk from
    // the latest goes full map to full map and never reads version 2).
    let out = d.path("v1.db");
    let r = pagelog(["export".as_ref(), bad.as_os_str(), out.as_os_str(), "--version".as_ref(), "1".as_ref()]);
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    assert_eq!(r.code == 1, r.stderr.contains("is damaged at offset"), "exit 1 iff damage was named: {}", r.stderr);
    assert_eq!(std::fs::read(&out).unwrap(), export(&good, 1, &d.path("good-v1.db")));
    // diff reads both sides of the damage, and says so when it met it.
    let r =
        pagelog(["diff".as_ref(), bad.as_os_str(), "1".as_ref(), next_full.to_string().as_ref(), "--summary".as_ref()]);
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    let g = pagelog([
        "diff".as_ref(),
        good.as_os_str(),
        "1".as_ref(),
        next_full.to_string().as_ref(),
        "--summary".as_ref(),
    ])
    .ok();
    assert_eq!(r.stdout, g.stdout, "the same diff as on the intact log");
    assert_eq!(r.code == 1, offsets_named(&r.stderr).contains(&(v2 + 44)), "{}", r.stderr);
}

#[test]
fn an_intact_log_reads_as_before_with_exit_0() {
    let d = TempDir::new("intact");
    let db = d.path("app.db");
    drop(make_log(&db, 6));
    let (code, got, stderr) = listed(&db);
    assert_eq!((code, got), (0, (1..=6).collect::<Vec<u64>>()), "{stderr}");
    let j = pagelog(["info".as_ref(), db.as_os_str(), "--json".as_ref()]).ok().json();
    assert_eq!(j["damage"].as_array().map(Vec::len), Some(0));
    assert!(j["recovery_error"].is_null());
    pagelog(["export".as_ref(), db.as_os_str(), d.path("out.db").as_os_str(), "--version".as_ref(), "3".as_ref()]).ok();
}
