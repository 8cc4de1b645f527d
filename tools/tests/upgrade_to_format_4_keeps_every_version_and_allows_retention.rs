//! `pagelog upgrade --format 4`: a log made by SQLite in format 3 is
//! rewritten in format 4 with every version as it was; SQLite goes on
//! writing it in format 4, and a retention policy can then be set and
//! enforced. The default target stays format 3. The upgraded log is what a
//! live format-4 writer writes: checkpoints (INDEX, CONTROL, COMMIT with
//! CHECKPOINT) where format 3 had full maps, and no FULL_MAP commit; a
//! fresh open reads every version through a checkpoint's tree. Format 2
//! logs upgrade to format 4 the same way.

mod common;
mod retained;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use pagelog::format::{self, Header, RecordHeader};
use pagelog::version::Pages;
use pagelog::{Log, OpenOptions};
use retained::*;

/// The record kinds of the log at `db`, walked from its first record by
/// their lengths: (offsets of CHECKPOINT commits, FULL_MAP commits, all
/// commits, CONTROL records that do not immediately precede a checkpoint).
struct Shape {
    checkpoints: Vec<u64>,
    full_maps: u64,
    commits: u64,
    stray_controls: u64,
}

fn shape(db: &Path) -> Shape {
    let b = std::fs::read(db).unwrap();
    let salt = Header::decode(&b[..format::HEADER_SIZE]).unwrap().salt;
    let mut s = Shape { checkpoints: Vec::new(), full_maps: 0, commits: 0, stray_controls: 0 };
    let mut pos = format::FIRST_RECORD;
    let mut control_end = None;
    while pos + format::RECORD_HEADER_SIZE as u64 <= b.len() as u64 {
        let Some(h) = RecordHeader::decode(salt, &b[pos as usize..]) else { break };
        if h.length == 0 {
            break;
        }
        if let Some(end) = control_end.take() {
            let ck = h.kind == format::KIND_COMMIT && h.flags & format::FLAG_CHECKPOINT != 0;
            if !(ck && end == pos) {
                s.stray_controls += 1;
            }
        }
        match h.kind {
            format::KIND_COMMIT => {
                s.commits += 1;
                if h.flags & format::FLAG_FULL_MAP != 0 {
                    s.full_maps += 1;
                }
                if h.flags & format::FLAG_CHECKPOINT != 0 {
                    s.checkpoints.push(pos);
                }
            }
            format::KIND_CONTROL => control_end = Some(pos + h.length),
            _ => {}
        }
        pos += h.length;
    }
    s
}

/// Asserts the log at `db` (`latest` versions) is all checkpoints and
/// deltas, and that a fresh open reads every version through a checkpoint.
fn assert_checkpoints_only(db: &Path, latest: u64) {
    let s = shape(db);
    assert_eq!(s.full_maps, 0, "a format-4 log holds no FULL_MAP commit");
    assert_eq!(s.commits, latest, "one commit per version");
    assert_eq!(s.stray_controls, 0, "every CONTROL record precedes its checkpoint");
    assert!(!s.checkpoints.is_empty());
    let log = Log::open(db, OpenOptions { read_only: true, ..Default::default() }).unwrap();
    for n in log.oldest_version().unwrap()..=latest {
        let v = log.version(n).unwrap();
        let Pages::Tree(t) = &v.map else { panic!("version {n} is not read through a checkpoint") };
        assert!(s.checkpoints.contains(&t.checkpoint_offset()), "version {n}: its checkpoint is no CHECKPOINT commit");
    }
}

/// Every version's pages and commit time, through the library.
fn versions_and_times(db: &Path) -> BTreeMap<u64, (u64, u64)> {
    let log = Log::open(db, OpenOptions { read_only: true, ..Default::default() }).unwrap();
    let times: BTreeMap<u64, u64> = log.history().unwrap().iter().map(|c| (c.version, c.timestamp_us)).collect();
    version_hashes(db).into_iter().map(|(n, h)| (n, (h, times[&n]))).collect()
}

#[test]
fn a_format_3_log_upgraded_to_format_4_keeps_every_version_and_takes_a_policy() {
    let d = TempDir::new("upgrade-f4");
    let db = d.path("app.db");
    drop(make_log(&db, 80));
    let before = version_hashes(&db);
    assert_eq!(pagelog(["info".as_ref(), db.as_os_str(), "--json".as_ref()]).ok().json()["format_version"], 3);

    let r = pagelog(["upgrade".as_ref(), db.as_os_str(), "--format".as_ref(), "4".as_ref()]).ok();
    assert!(r.stdout.contains("format 3 -> 4, versions 1 to 80 kept"), "{}", r.stdout);
    assert_eq!(pagelog(["info".as_ref(), db.as_os_str(), "--json".as_ref()]).ok().json()["format_version"], 4);
    assert_eq!(version_hashes(&db), before, "a version changed in the upgrade");
    assert_checkpoints_only(&db, 80);
    let out = d.path("out.db");
    for n in [1, 40, 80] {
        assert_eq!(hash(&export(&db, n, &out)), before[&n]);
    }
    pagelog(["verify".as_ref(), db.as_os_str()]).ok();
    // Again: nothing to do; the default target (3) does not go back.
    let r = pagelog(["upgrade".as_ref(), db.as_os_str(), "--format".as_ref(), "4".as_ref()]).ok();
    assert!(r.stdout.contains("already in format 4"), "{}", r.stdout);
    let r = pagelog(["upgrade".as_ref(), db.as_os_str()]).ok();
    assert!(r.stdout.contains("nothing to do"), "{}", r.stdout);
    pagelog(["upgrade".as_ref(), db.as_os_str(), "--format".as_ref(), "5".as_ref()]).expect_code(2);

    // SQLite writes on in format 4, and retention works.
    let c = open(&db);
    c.execute_batch("PRAGMA synchronous=NORMAL").unwrap();
    for i in 0..300 {
        c.execute("UPDATE t SET v = 'u' || ?1 WHERE id = ?1 % 79 + 2", [i]).unwrap();
    }
    assert_eq!(version(&c), 380);
    drop(c);
    assert_checkpoints_only(&db, 380);
    let all = version_hashes(&db);
    let r = pagelog(["retain".as_ref(), db.as_os_str(), "10 versions".as_ref(), "--now".as_ref()]).ok();
    assert!(r.stdout.contains("freed in"), "{}", r.stdout);
    let (b, vo) = kept(&db);
    assert!(b > 512 && vo > 80, "{}", r.stdout);
    assert_eq!(versions(&db), (vo..=380).rev().collect::<Vec<_>>());
    for n in [vo, 380] {
        assert_eq!(hash(&export(&db, n, &out)), all[&n]);
    }
    pagelog(["verify".as_ref(), db.as_os_str()]).ok();
}

/// A format-3 log with several checkpoints' worth of versions, a truncation
/// and a regrowth: the upgrade writes checkpoints where a live writer would
/// (so more than one, each tree built on the one before), keeps every
/// version's pages and time, and the result verifies.
#[test]
fn an_upgrade_to_format_4_writes_checkpoints_where_a_live_writer_would() {
    let d = TempDir::new("upgrade-f4-ck");
    let db = d.path("app.db");
    let c = make_log(&db, 40);
    for i in 0..560 {
        c.execute("UPDATE t SET v = 'u' || ?1 WHERE id = ?1 % 39 + 2", [i]).unwrap();
    }
    c.execute_batch("DELETE FROM t WHERE id > 10; VACUUM;").unwrap();
    for v in 100..140 {
        c.execute("INSERT INTO t VALUES(?1, 'again ' || ?1, zeroblob(?1 * 10))", [v]).unwrap();
    }
    let latest = version(&c);
    drop(c);
    let before = versions_and_times(&db);
    assert_eq!(shape(&db).checkpoints.len(), 0, "format 3 writes no checkpoint");

    pagelog(["upgrade".as_ref(), db.as_os_str(), "--format".as_ref(), "4".as_ref()]).ok();
    assert_eq!(versions_and_times(&db), before, "a version or its time changed in the upgrade");
    assert_checkpoints_only(&db, latest);
    assert!(shape(&db).checkpoints.len() >= 3, "a checkpoint at least every 256 commits");
    pagelog(["verify".as_ref(), db.as_os_str()]).ok();
}

/// A format-2 log (from the fuzz corpus: no patches) upgrades to format 4
/// directly, every version as it was.
#[test]
fn a_format_2_log_upgrades_to_format_4() {
    let d = TempDir::new("upgrade-f2-f4");
    let db = d.path("old.log");
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/../vfs/tests/corpus/format2-base0-deltas.log");
    std::fs::copy(src, &db).unwrap();
    let before = versions_and_times(&db);
    let latest = *before.keys().last().unwrap();
    let r = pagelog(["upgrade".as_ref(), db.as_os_str(), "--format".as_ref(), "4".as_ref()]).ok();
    assert!(r.stdout.contains("format 2 -> 4"), "{}", r.stdout);
    assert_eq!(versions_and_times(&db), before);
    assert_checkpoints_only(&db, latest);
    pagelog(["verify".as_ref(), db.as_os_str()]).ok();
}

/// A log with no commit yet (0 bytes, as an open through the VFS that
/// commits nothing leaves it; or a header whose first record never made it
/// to disk) has nothing to rewrite and no page size to write a header with:
/// `upgrade --format 4` said "already in format 4" or "format 3 -> 4" and
/// left it in format 3, so `retain` then refused it. It must say so and
/// fail instead, and never claim a format `info` does not show.
#[test]
fn an_empty_log_is_not_said_to_be_upgraded() {
    let d = TempDir::new("upgrade-empty");
    let empty = d.path("empty.db");
    drop(open(&empty));
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);
    let header_only = d.path("header-only.db");
    drop(make_log(&header_only, 1));
    let f = std::fs::OpenOptions::new().write(true).open(&header_only).unwrap();
    f.set_len(format::FIRST_RECORD).unwrap();
    drop(f);
    for db in [&empty, &header_only] {
        let before = std::fs::read(db).unwrap();
        let r = pagelog(["upgrade".as_ref(), db.as_os_str(), "--format".as_ref(), "4".as_ref()]).expect_code(1);
        assert!(r.stderr.contains("no commit yet"), "{}: {}", db.display(), r.stderr);
        assert!(!r.stdout.contains("format 4"), "{}: {}", db.display(), r.stdout);
        assert_eq!(std::fs::read(db).unwrap(), before, "{}", db.display());
        let info = pagelog(["info".as_ref(), db.as_os_str(), "--json".as_ref()]).ok().json();
        assert_eq!(info["format_version"], 3, "{}: {info}", db.display());
        // The default target is the format new logs are written in.
        let r = pagelog(["upgrade".as_ref(), db.as_os_str()]).ok();
        assert!(r.stdout.contains("already in format 3"), "{}: {}", db.display(), r.stdout);
    }
}
