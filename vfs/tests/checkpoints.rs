//! Format-4 checkpoints as index trees (issue 21, docs/format-4.md step 5):
//! a format-4 log writes a checkpoint (INDEX, CONTROL, COMMIT) where format
//! 3 writes a full map, and a version reads its checkpoint's tree where it
//! lies, with the commits after it as an overlay.
//!
//! Checked against a model of every version's image: every version reads
//! back byte for byte through the writer, through `Log::version`, and after
//! reopening; truncations and regrowth; revert; the overlay stays bounded;
//! a damaged node is an error naming its offset, never a wrong page.

mod common;

use std::time::Duration;

use common::{Dir, Rng};
use pagelog::version::Pages;
use pagelog::{Durability, Error, Log, OpenOptions, Version};

const PS: usize = 4096;
const T: Duration = Duration::from_secs(5);

struct Model {
    images: Vec<Vec<u8>>,
    rng: Rng,
}

impl Model {
    fn new(seed: u64) -> Model {
        Model { images: vec![Vec::new()], rng: Rng::new(seed) }
    }

    /// One commit: a bulk load first, then a whole page, a few bytes (a
    /// patch), a truncation or a growth.
    fn commit(&mut self, log: &Log, max_pages: usize) {
        let mut img = self.images.last().unwrap().clone();
        let _w = log.lock_writer(T).unwrap();
        let base = log.prepare_write().unwrap();
        let spill = if self.rng.chance(1, 30) { 2048 } else { 1 << 20 };
        let mut txn = log.begin(base, spill);
        let pages = img.len() / PS;
        let r = self.rng.below(100);
        if img.is_empty() {
            img = vec![0u8; max_pages / 2 * PS];
            for p in 0..max_pages / 2 {
                img[p * PS] = b'X';
                img[p * PS + 1] = p as u8;
            }
            txn.write(log, 0, &img).unwrap();
        } else if r < 4 && pages > 20 {
            let keep = 10 + self.rng.below(pages as u64 - 10) as usize;
            txn.truncate((keep * PS) as u64);
            img.truncate(keep * PS);
        } else if r < 10 && pages < max_pages {
            let add = 1 + self.rng.below((max_pages - pages) as u64) as usize;
            let mut more = vec![0u8; add * PS];
            for p in 0..add {
                if self.rng.chance(1, 2) {
                    more[p * PS] = b'X';
                    more[p * PS + 2] = self.rng.next() as u8;
                }
            }
            txn.write(log, img.len() as u64, &more).unwrap();
            img.extend_from_slice(&more);
        } else if r < 50 {
            let p = self.rng.below(pages as u64) as usize;
            let mut data = self.rng.bytes(PS);
            data[0] = b'X';
            txn.write(log, (p * PS) as u64, &data).unwrap();
            img[p * PS..(p + 1) * PS].copy_from_slice(&data);
        } else {
            let p = self.rng.below(pages as u64) as usize;
            let at = p * PS + 8 + self.rng.below(4000) as usize;
            let n = 1 + self.rng.below(40) as usize;
            let data = self.rng.bytes(n);
            txn.write(log, at as u64, &data).unwrap();
            img[at..at + data.len()].copy_from_slice(&data);
        }
        let v = log.commit(txn, Durability::Normal).unwrap().expect("a version");
        assert_eq!(v.number as usize, self.images.len());
        self.images.push(img);
    }

    fn check(&self, v: &Version, who: &str) {
        let want = &self.images[v.number as usize];
        assert_eq!(v.size_bytes() as usize, want.len(), "{who}: version {} size", v.number);
        let mut got = vec![0u8; want.len()];
        v.read(0, &mut got).unwrap_or_else(|e| panic!("{who}: version {}: {e}", v.number));
        assert!(got == *want, "{who}: version {} differs from what was committed", v.number);
    }
}

fn new_log(dir: &Dir) -> (Log, std::path::PathBuf) {
    let path = dir.0.join("f4.db");
    let log = Log::open(&path, OpenOptions { create: true, format4: true, ..Default::default() }).unwrap();
    (log, path)
}

fn tree(v: &Version) -> &pagelog::index::TreeMap {
    match &v.map {
        Pages::Tree(t) => t,
        Pages::Full(_) => panic!("version {}: a format-4 version's map is a tree", v.number),
    }
}

#[test]
fn every_version_reads_back_through_checkpoints_and_overlays_after_reopening() {
    let dir = Dir::new("ckpt-model");
    let (log, path) = new_log(&dir);
    let mut m = Model::new(21);
    let mut checkpoints = std::collections::BTreeSet::new();
    for _ in 0..900 {
        m.commit(&log, 300);
        let v = log.latest();
        m.check(&v, "writer");
        let t = tree(&v);
        checkpoints.insert(t.checkpoint_offset());
        assert!(t.overlay_len() <= pagelog::checkpoint::MAX_OVERLAY);
    }
    assert!(checkpoints.len() >= 3, "900 commits of a 300-page database write checkpoints: {checkpoints:?}");
    log.sync_pending().unwrap();
    let fresh = Log::open(&path, OpenOptions { read_only: true, ..Default::default() }).unwrap();
    let latest = fresh.latest();
    assert_eq!(latest.number, 900);
    m.check(&latest, "fresh open");
    for n in (1..=900).step_by(7).chain([1, 255, 256, 257, 899]) {
        m.check(&fresh.version(n).unwrap(), "fresh open, old version");
        m.check(&log.version(n).unwrap(), "writer, old version");
    }
    // verify walks every commit and checks each checkpoint's tree, node by
    // node, against the map the deltas make.
    let rep = fresh.verify();
    assert!(rep.damage().is_none(), "verify of an intact format-4 log: {:?}", rep.damage());
    // The writer goes on from a reopened log.
    drop((log, fresh));
    let log = Log::open(&path, OpenOptions::default()).unwrap();
    for _ in 0..300 {
        m.commit(&log, 300);
    }
    m.check(&log.latest(), "after reopening for writing");
    m.check(&log.version(950).unwrap(), "after reopening for writing, old version");
}

#[test]
fn revert_to_a_version_before_a_checkpoint_reads_it_back() {
    let dir = Dir::new("ckpt-revert");
    let (log, path) = new_log(&dir);
    let mut m = Model::new(7);
    for _ in 0..400 {
        m.commit(&log, 120);
    }
    for to in [3u64, 300, 1] {
        let before = log.latest().end;
        let v = log.revert(to, T).unwrap().expect("a new version");
        // A checkpoint on the target's tree: its new nodes are the paths to
        // page 1 and to the target's overlay, not a map of every page.
        assert_eq!(tree(&v).checkpoint_offset(), v.commit_offset, "a revert writes a checkpoint");
        assert!(v.end - before < 64 << 10, "revert to {to} appended {} bytes", v.end - before);
        let want = m.images[to as usize].clone();
        let mut got = vec![0u8; want.len()];
        v.read(0, &mut got).unwrap();
        // Page 1's change counter is the revert's own: compare past it.
        assert_eq!(v.size_bytes() as usize, want.len());
        assert!(got[PS..] == want[PS..] && got[..24] == want[..24], "revert to {to}");
        m.images.push(got);
        m.commit(&log, 120);
    }
    let fresh = Log::open(&path, OpenOptions { read_only: true, ..Default::default() }).unwrap();
    m.check(&fresh.latest(), "fresh open after reverts");
}

#[test]
fn a_damaged_index_node_is_an_error_naming_it_never_a_wrong_page() {
    let dir = Dir::new("ckpt-damage");
    let (log, path) = new_log(&dir);
    let mut m = Model::new(3);
    for _ in 0..300 {
        m.commit(&log, 200);
    }
    log.sync_pending().unwrap();
    let v = log.latest();
    let root = tree(&v).root().expect("a tree");
    drop((v, log));
    // Flip a byte inside the root node's slots.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[root.offset as usize + 100] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let log = Log::open(&path, OpenOptions { read_only: true, ..Default::default() }).unwrap();
    let v = log.latest();
    let mut buf = vec![0u8; v.size_bytes() as usize];
    match v.read(0, &mut buf) {
        Err(Error::Corrupt { offset, .. }) => assert_eq!(offset, root.offset, "the damaged node is named"),
        other => panic!("a damaged node must be an error naming it, got {:?}", other.map(|_| ())),
    }
    let rep = log.verify();
    let d = rep.damage().expect("verify finds the damaged node");
    // The node, or the INDEX record holding it (whose payload crc fails).
    let record = d.offset > root.offset && d.expected.contains("trailer");
    assert!(d.offset == root.offset || record, "verify names the damaged node or its record: {d:?}");
}

/// Pages cut off by a truncation and not written since read as zeros when
/// the database grows again, through the overlay and through the next
/// checkpoint's tree (which must not keep their old slots).
#[test]
fn pages_cut_then_grown_back_unwritten_read_as_zeros_across_a_checkpoint() {
    let dir = Dir::new("ckpt-regrow");
    let (log, path) = new_log(&dir);
    let mut m = Model::new(5);
    m.commit(&log, 100); // 50 pages, each non-zero
    let write = |m: &mut Model, log: &Log, f: &dyn Fn(&mut pagelog::txn::WriteTxn, &mut Vec<u8>)| {
        let mut img = m.images.last().unwrap().clone();
        let _w = log.lock_writer(T).unwrap();
        let base = log.prepare_write().unwrap();
        let mut txn = log.begin(base, 1 << 20);
        f(&mut txn, &mut img);
        log.commit(txn, Durability::Normal).unwrap().expect("a version");
        m.images.push(img);
    };
    // Cut to 10 pages, then grow to 50 by writing the last page only.
    write(&mut m, &log, &|txn, img| {
        txn.truncate(10 * PS as u64);
        img.truncate(10 * PS);
    });
    let grow = |m: &mut Model, log: &Log, last: usize| {
        write(m, log, &|txn, img| {
            let page = vec![b'L'; PS];
            txn.write(log, (last - 1) as u64 * PS as u64, &page).unwrap();
            img.resize((last - 1) * PS, 0);
            img.extend_from_slice(&page);
        })
    };
    grow(&mut m, &log, 30);
    m.check(&log.latest(), "grown back through the overlay");
    // Small commits until the next one is a checkpoint, and that one grows
    // the database again: its tree must zero what the cut left behind.
    let small = |m: &mut Model, log: &Log| {
        write(m, log, &|txn, img| {
            let n = img[PS + 1].wrapping_add(1);
            txn.write(log, PS as u64 + 1, &[n]).unwrap();
            img[PS + 1] = n;
        })
    };
    let due = |v: &Version| tree(v).commits() + 1 >= pagelog::checkpoint::commits_between(v.db_pages());
    while !due(&log.latest()) {
        small(&mut m, &log);
    }
    grow(&mut m, &log, 50);
    let v = log.latest();
    assert_eq!(tree(&v).checkpoint_offset(), v.commit_offset, "the growing commit is a checkpoint");
    m.check(&v, "grown back by a checkpoint");
    small(&mut m, &log);
    m.check(&log.latest(), "grown back, through a later checkpoint's tree");
    let fresh = Log::open(&path, OpenOptions { read_only: true, ..Default::default() }).unwrap();
    m.check(&fresh.latest(), "fresh open");
    assert!(fresh.verify().damage().is_none());
}

/// Bytes flipped in a format-4 log, half of them in its INDEX records'
/// nodes: opening fails cleanly or every version read is either exactly
/// what was committed or an error, never other bytes.
#[test]
fn flipped_bytes_in_index_records_give_errors_never_wrong_pages() {
    let dir = Dir::new("ckpt-flip");
    let (log, path) = new_log(&dir);
    let mut m = Model::new(11);
    for _ in 0..600 {
        m.commit(&log, 120);
    }
    log.sync_pending().unwrap();
    drop(log);
    let bytes = std::fs::read(&path).unwrap();
    // INDEX records: record magic at an 8-aligned offset, kind 4.
    let index_payloads: Vec<(usize, usize)> = (512..bytes.len().saturating_sub(64))
        .step_by(8)
        .filter(|&o| bytes[o..o + 4] == *b"PLRC" && bytes[o + 4] == pagelog::format::KIND_INDEX)
        .map(|o| {
            let n = u64::from_le_bytes(bytes[o + 48..o + 56].try_into().unwrap()) as usize;
            (o + 64, n)
        })
        .filter(|&(at, n)| n > 0 && at + n <= bytes.len())
        .collect();
    assert!(index_payloads.len() >= 2, "the log holds INDEX records: {}", index_payloads.len());
    let mut rng = Rng::new(99);
    let (mut opened, mut errors) = (0, 0);
    for i in 0..80 {
        let mut b = bytes.clone();
        let at = if i % 2 == 0 {
            let (start, n) = index_payloads[rng.below(index_payloads.len() as u64) as usize];
            start + rng.below(n as u64) as usize
        } else {
            512 + rng.below((b.len() - 512) as u64) as usize
        };
        b[at] ^= 1 << rng.below(8);
        let p = dir.0.join(format!("flip-{i}.db"));
        std::fs::write(&p, &b).unwrap();
        let Ok(log) = Log::open(&p, OpenOptions { read_only: true, ..Default::default() }) else {
            errors += 1;
            continue;
        };
        opened += 1;
        let latest = log.latest().number;
        for n in (1..=latest).rev().step_by(37).chain([latest]) {
            let Ok(v) = log.version(n) else { continue };
            let want = &m.images[n as usize];
            let mut got = vec![0u8; want.len()];
            if v.read(0, &mut got).is_ok() {
                assert_eq!(v.size_bytes() as usize, want.len(), "flip at {at}: version {n}'s size");
                assert!(got == *want, "flip at {at}: version {n} read other bytes than were committed");
            }
        }
        drop(log);
        let _ = std::fs::remove_file(&p);
    }
    eprintln!("{opened} opened, {errors} refused");
}

/// Through SQLite: a format-4 log (made by the log API, then opened through
/// the VFS, which keeps its format) takes hundreds of one-row commits over
/// several checkpoints, a page-size change by VACUUM (a checkpoint built
/// from nothing) and reads back every row in a new connection and at an
/// old version.
#[test]
fn through_sqlite_commits_over_checkpoints_and_a_vacuum_read_back() {
    use rusqlite::{Connection, OpenFlags};
    let dir = Dir::new("ckpt-sqlite");
    let path = dir.0.join("app.db");
    common::format4_from_sqlite(&path, "PRAGMA page_size=1024; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);");
    pagelog::register().unwrap();
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_URI;
    let w = Connection::open_with_flags_and_vfs(&path, flags, "pagelog").unwrap();
    w.execute_batch("PRAGMA synchronous=NORMAL").unwrap();
    for i in 0..700 {
        w.execute("INSERT INTO t(v) VALUES (printf('row %d ', ?1) || replace(hex(zeroblob(50)), '0', 'x'))", [i])
            .unwrap();
        if i == 400 {
            w.execute_batch("PRAGMA page_size=4096; VACUUM").unwrap();
        }
    }
    let at_500: i64 = {
        let v: i64 = w.query_row("SELECT pagelog_version()", [], |r| r.get(0)).unwrap();
        v - 200
    };
    drop(w);
    let log = Log::open(&path, OpenOptions { read_only: true, ..Default::default() }).unwrap();
    let v = log.latest();
    assert!(matches!(v.map, Pages::Tree(_)), "the VFS kept format 4");
    assert!(log.verify().damage().is_none());
    drop(log);
    let r = Connection::open_with_flags_and_vfs(&path, flags, "pagelog").unwrap();
    let (n, sum): (i64, i64) =
        r.query_row("SELECT count(*), sum(length(v)) FROM t", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    assert_eq!(n, 700);
    assert!(sum > 700 * 100);
    let ok: String = r.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok");
    let old = Connection::open_with_flags_and_vfs(
        format!("file:{}?version={at_500}", path.display()),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
        "pagelog",
    )
    .unwrap();
    let n_old: i64 = old.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(n_old, 500, "version {at_500} holds the first 500 rows");
}

/// A log whose first transaction lost its COMMIT (its INDEX and CONTROL
/// records remain): version 0, and no control state from the torn copy
/// (FORMAT.md: a log with no commit has none); a new commit goes on and
/// reads back after reopening.
#[test]
fn a_first_transaction_without_its_commit_is_version_zero_and_the_log_goes_on() {
    let dir = Dir::new("ckpt-torn-first");
    let (log, path) = new_log(&dir);
    let mut m = Model::new(1);
    m.commit(&log, 60);
    let at = log.latest().commit_offset;
    drop(log);
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(at).unwrap();
    drop(f);
    let log = Log::open(&path, OpenOptions::default()).unwrap();
    assert_eq!(log.latest().number, 0);
    assert_eq!(log.refresh().unwrap().number, 0);
    assert!(log.retention().is_all() && log.oldest_kept().is_none());
    let mut m = Model::new(2);
    m.commit(&log, 60);
    drop(log);
    let log = Log::open(&path, OpenOptions { read_only: true, ..Default::default() }).unwrap();
    m.check(&log.latest(), "the commit after a torn first transaction");
    assert!(log.verify().damage().is_none(), "{:?}", log.verify().damage());
}

/// The record starts of a log's bytes, from the first record on, as
/// (offset, kind, flags), up to the first that is not a whole record.
fn records(bytes: &[u8]) -> Vec<(usize, u8, u8)> {
    let mut out = Vec::new();
    let mut at = 512;
    while at + 48 <= bytes.len() && &bytes[at..at + 4] == b"PLRC" {
        let len = u64::from_le_bytes(bytes[at + 8..at + 16].try_into().unwrap()) as usize;
        if len == 0 || at + len > bytes.len() {
            break;
        }
        out.push((at, bytes[at + 4], bytes[at + 5]));
        at += len;
    }
    out
}

/// A reader that refreshed while a checkpoint's transaction was half
/// written (its INDEX and CONTROL records there, its COMMIT not yet) must
/// take the checkpoint once it lands. A walk that had moved its end past the
/// CONTROL copy refused the checkpoint for ever (it names records the walk
/// then no longer passed): the reader stayed on its old version and epoch
/// while reclamation steps punched the pages that version reads, and SQLite
/// was served zeros ("file is not a database").
#[test]
fn a_reader_that_refreshed_inside_a_checkpoint_transaction_takes_the_checkpoint() {
    let dir = Dir::new("ckpt-half");
    let (log, path) = new_log(&dir);
    let mut m = Model::new(5);
    // Commits until the newest checkpoint (not the first commit's) has a
    // few commits after it.
    loop {
        m.commit(&log, 40);
        log.sync_pending().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let recs = records(&bytes);
        let cks: Vec<usize> =
            recs.iter().enumerate().filter(|(_, r)| r.1 == 2 && r.2 & 4 != 0).map(|(i, _)| i).collect();
        if cks.len() >= 2 && recs.len() - 1 - cks[cks.len() - 1] >= 3 {
            break;
        }
        assert!(m.images.len() < 5000, "no second checkpoint in 5000 commits");
    }
    drop(log);
    let full = std::fs::read(&path).unwrap();
    let recs = records(&full);
    let end =
        recs.last().map(|r| r.0 + u64::from_le_bytes(full[r.0 + 8..r.0 + 16].try_into().unwrap()) as usize).unwrap();
    let latest = m.images.len() as u64 - 1;
    let ck = recs.iter().rposition(|r| r.1 == 2 && r.2 & 4 != 0).unwrap();
    let cut_path = dir.0.join("cut.db");
    // Every cut from a few records before the checkpoint's transaction to
    // the end: open at the record before the cut, refresh at the cut, then
    // refresh once the rest is there.
    for i in ck.saturating_sub(4)..recs.len() {
        let (first, cut) = (recs[i - 1].0, recs[i].0);
        std::fs::write(&cut_path, &full[..first]).unwrap();
        let reader = Log::open(&cut_path, OpenOptions { read_only: true, ..Default::default() }).unwrap();
        let f = std::fs::OpenOptions::new().append(true).open(&cut_path).unwrap();
        use std::io::Write;
        (&f).write_all(&full[first..cut]).unwrap();
        reader.refresh().unwrap();
        (&f).write_all(&full[cut..end]).unwrap();
        let v = reader.refresh().unwrap();
        assert_eq!(
            v.number, latest,
            "a reader that refreshed at the record at {cut} (the checkpoint's is at {})",
            recs[ck].0
        );
        m.check(&v, "reader after the cut");
    }
}

/// The rewriter (`compact.rs`, used by `pagelog upgrade --format 4`) writes
/// what a live writer writes: rewriting a log the writer made, every
/// version kept, puts the checkpoints at the same versions (the writer's
/// rule, `checkpoint::due_after`), writes no full map, and every version
/// reads back, old ones through `Log::version`'s checkpoint-to-checkpoint
/// walk included. A revert (a checkpoint wherever it falls) stays one.
#[test]
fn a_rewritten_log_has_its_checkpoints_where_the_writer_put_them() {
    let dir = Dir::new("ckpt-rewrite");
    let (log, path) = new_log(&dir);
    let mut m = Model::new(11);
    for i in 0..700 {
        m.commit(&log, 300);
        if i == 400 {
            // A revert is a checkpoint wherever it falls.
            let v = log.revert(390, T).unwrap().expect("a new version");
            let mut img = vec![0u8; v.size_bytes() as usize];
            v.read(0, &mut img).unwrap();
            m.images.push(img);
        }
    }
    log.sync_pending().unwrap();
    let checkpoints = |log: &Log| -> Vec<u64> {
        (1..=log.latest().number)
            .filter(|&n| {
                let v = log.version(n).unwrap();
                tree(&v).checkpoint_offset() == v.commit_offset
            })
            .collect()
    };
    let before = checkpoints(&log);
    assert!(before.len() >= 3, "{before:?}");
    drop(log);
    let stats = pagelog::compact::compact(&path, pagelog::compact::Keep::All, &mut |_, _| {}).unwrap();
    assert!(stats.rewritten);
    let log = Log::open(&path, OpenOptions { read_only: true, ..Default::default() }).unwrap();
    assert_eq!(log.latest().number, 701);
    assert_eq!(checkpoints(&log), before, "the rewrite's checkpoints are the writer's");
    assert!(log.history().unwrap().iter().all(|c| c.full_map == (before.binary_search(&c.version).is_ok())));
    for n in 1..=701 {
        m.check(&log.version(n).unwrap(), "rewritten");
    }
    assert!(log.verify().damage().is_none());
}
