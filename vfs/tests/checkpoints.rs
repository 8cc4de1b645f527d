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
