//! Replication of a log whose writer recycles dead frame slots (format 4
//! under a retention policy, vfs/FORMAT.md "Frames in recycled slots",
//! issue 20) against a real Garage server. A RECYCLED commit writes page
//! images into slots below the bytes already shipped, so the segment that
//! holds it carries them (replica/LAYOUT.md); without them a restore of
//! that version would read the dead frame the replica holds there and fail
//! its crc. Every version shipped restores with the pages the primary had
//! (those it no longer keeps included), the primary's kept versions read
//! alike through the replica, and `follow` keeps a replica current across
//! the recycling commits.

mod common;
#[path = "replica/garage.rs"]
mod garage;
mod retained;

use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use common::TempDir;
use garage::Garage;
use pagelog::format::{self, Entry, RecordHeader};
use pagelog::retention::Policy;
use pagelog::{Durability, Log, OpenOptions};
use pagelog_replica::fetch::{restore_into, Follower, Target};
use pagelog_replica::ship::{Options, Replicator};
use retained::hash;

const PS: usize = 1024;
const T: Duration = Duration::from_secs(10);
const RECYCLED: u8 = format::FLAG_RECYCLED;

/// The hash of version `n`'s database image as `log` reads it.
fn image_hash(log: &Log, n: u64) -> u64 {
    let v = log.version(n).unwrap();
    let mut img = vec![0u8; v.size_bytes() as usize];
    assert_eq!(v.read(0, &mut img).unwrap(), img.len());
    hash(&img)
}

/// One commit of `n` random bytes at page `page` (the whole database when
/// the log is empty: 40 pages).
fn commit(log: &Log, page: u64, next: &mut impl FnMut() -> u64) {
    let _w = log.lock_writer(T).unwrap();
    let base = log.prepare_write().unwrap();
    let mut txn = log.begin(base.clone(), 1 << 20);
    let (at, n) = if base.number == 0 { (0, 40 * PS) } else { (page as usize * PS, PS) };
    let mut d: Vec<u8> = (0..n).map(|_| next() as u8).collect();
    d[0] = b'X';
    txn.write(log, at as u64, &d).unwrap();
    log.commit(txn, Durability::Normal).unwrap().expect("a version");
}

/// The RECYCLED commits of the log at `path` from its boundary on:
/// (version, offsets of the images they name below their own record).
fn recycled_commits(path: &Path) -> Vec<(u64, Vec<u64>)> {
    let b = std::fs::read(path).unwrap();
    let h = format::Header::decode(&b[..format::HEADER_SIZE]).unwrap();
    let from =
        Log::open(path, OpenOptions { read_only: true, ..Default::default() }).unwrap().retention_state().boundary;
    let mut out = Vec::new();
    let mut pos = from as usize;
    while pos + format::RECORD_HEADER_SIZE <= b.len() {
        let Some(r) = RecordHeader::decode(h.salt, &b[pos..]) else { break };
        if r.kind == format::KIND_COMMIT && r.flags & RECYCLED != 0 {
            let at = pos + format::RECORD_HEADER_SIZE + format::CI_ENTRIES;
            let n = u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
            let e0 = pos + format::RECORD_HEADER_SIZE + format::COMMIT_INFO_SIZE;
            let slots = (0..n)
                .map(|i| Entry::decode(&b[e0 + i * format::ENTRY_SIZE..]))
                .filter(|e| e.offset != 0 && e.offset % 8 == 0 && e.offset < pos as u64)
                .map(|e| e.offset)
                .collect();
            out.push((r.version, slots));
        }
        pos += r.length as usize;
    }
    out
}

#[test]
fn a_recycling_log_restores_every_shipped_version_and_follow_keeps_up() {
    let g = Garage::start("replicate-recycled");
    let d = TempDir::new("rep-recycled");
    let db = d.path("app.db");
    let store = || g.store("recycled");
    let log = Log::open(&db, OpenOptions { create: true, format4: true, ..Default::default() }).unwrap();
    let mut seed = 5u64;
    let mut next = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        seed >> 33
    };
    let mut rep = Replicator::new(store(), &db, Options { max_segment: 64 << 10, ..Default::default() });
    let replica = d.path("replica.db");
    let mut follower = Follower::new(store(), &replica);
    // Every version's image as the primary had it when it was the latest.
    let mut hashes: BTreeMap<u64, u64> = BTreeMap::new();
    let mut followed = 0;
    let t0 = std::time::Instant::now();
    for i in 0..=400u64 {
        commit(&log, 1 + next() % 8, &mut next);
        let latest = log.latest().number;
        if latest == 1 {
            // A policy needs the log's header: after the load.
            log.set_retention(Policy::parse("20 versions").unwrap(), T).unwrap();
        }
        hashes.insert(latest, image_hash(&log, latest));
        // Shipped as it is written (a replicator keeps up with its log:
        // what a step finds dead was shipped before the step), so the slots
        // recycled later lie in segments already in the bucket.
        if i % 25 == 24 {
            log.sync_pending().unwrap();
            rep.pass().unwrap();
            log.reclaim(64 << 10, T).unwrap();
        }
        if i % 10 == 0 {
            rep.pass().unwrap();
        }
        if i % 50 == 49 {
            followed = follower.pass().unwrap().version;
        }
    }
    log.sync_pending().unwrap();
    let status = rep.pass().unwrap();
    let latest = log.latest().number;
    assert_eq!(status.version, latest);
    let recycled = recycled_commits(&db);
    let with_slots = recycled.iter().filter(|(_, s)| !s.is_empty()).count();
    assert!(with_slots >= 10, "only {with_slots} RECYCLED commits name a slot below them: {recycled:?}");
    // Segments carry the images of slots below them.
    let cat = pagelog_replica::catalog(&store()).unwrap();
    let carrying = cat.generations[0].segments.iter().filter(|s| s.recycled > 0).count();
    assert!(carrying >= 5, "only {carrying} segments carry recycled images");
    eprintln!(
        "{} RECYCLED commits ({with_slots} with slots below), {carrying} of {} segments carry images; written and \
         shipped in {:?}",
        recycled.len(),
        cat.generations[0].segments.len(),
        t0.elapsed()
    );

    // The first and last RECYCLED commits' versions and the ones before
    // them, the primary's oldest and latest kept versions, and a sample,
    // restored from the bucket: the pages the primary had.
    let ends = recycled.iter().take(3).chain(recycled.iter().rev().take(3));
    let mut check: Vec<u64> = ends.flat_map(|(v, _)| [*v - 1, *v]).collect();
    let oldest = log.oldest_version().unwrap();
    check.extend([oldest, oldest + 1, (oldest + latest) / 2, latest - 1, latest]);
    check.extend((2..latest).step_by(61));
    check.sort_unstable();
    check.dedup();
    let out = d.path("out.db");
    let s = store();
    for &n in &check {
        let _ = std::fs::remove_file(&out);
        let r = restore_into(&s, Target::Version(n), &out, &mut |_, _| {});
        let r = r.unwrap_or_else(|e| panic!("restore of version {n}: {e}"));
        assert_eq!(r.version, n);
        let got = Log::open(&out, OpenOptions { read_only: true, ..Default::default() }).unwrap();
        assert_eq!(got.latest().number, n);
        assert_eq!(image_hash(&got, n), hashes[&n], "version {n} restored");
        if n >= oldest {
            assert_eq!(image_hash(&got, n), image_hash(&log, n), "version {n}: as the primary reads it");
        }
    }
    eprintln!("{} versions restored in {:?}", check.len(), t0.elapsed());
    // The command line too: the latest, verified.
    let o = g.pagelog().arg("restore").arg(g.url("recycled")).arg(&out).arg("--force").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = Log::open(&out, OpenOptions { read_only: true, ..Default::default() }).unwrap();
    assert_eq!((got.latest().number, image_hash(&got, latest)), (latest, hashes[&latest]));

    // follow: the replica it keeps is current and intact. A reader of the
    // replica holding a snapshot older than the new segments' control state
    // (an epoch lock below it) could read the dead frames of the slots they
    // recycle: follow writes their images only once it lets go.
    let images_to_come = cat.generations[0].segments.iter().any(|s| s.last > followed && s.recycled > 0);
    assert!(images_to_come, "no segment after version {followed} carries recycled images");
    let reader = std::fs::File::open(&replica).unwrap();
    let epoch1 = pagelog::lock::EPOCH_BASE + 1;
    assert!(pagelog::lock::try_lock(reader.as_fd(), epoch1, pagelog::lock::Mode::Shared).unwrap());
    let lets_go = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(800));
        drop(reader);
    });
    let t0 = std::time::Instant::now();
    let f = follower.pass().unwrap();
    assert!(t0.elapsed() >= Duration::from_millis(700), "follow did not wait for the old reader: {:?}", t0.elapsed());
    lets_go.join().unwrap();
    assert_eq!(f.version, latest);
    let rl = Log::open(&replica, OpenOptions { read_only: true, ..Default::default() }).unwrap();
    assert_eq!(image_hash(&rl, latest), hashes[&latest]);
    for n in oldest..=latest {
        assert_eq!(image_hash(&rl, n), hashes[&n], "version {n} of the followed replica");
    }
    let report = pagelog::verify::verify_file(&replica, &mut |_, _| {});
    assert!(!report.damaged(), "the followed replica: {:?}", report.damage());
}

/// A new replica of a log that already recycles starts at its boundary
/// (its `head-` object holding the frames read in place below it: the
/// oldest kept version's, and the images commits wrote into recycled
/// slots below `B`): every version the primary keeps restores from it with
/// the primary's pages.
#[test]
fn a_new_replica_of_a_recycling_log_restores_every_kept_version() {
    let g = Garage::start("replicate-recycled-new");
    let d = TempDir::new("rep-recycled-new");
    let db = d.path("app.db");
    let log = Log::open(&db, OpenOptions { create: true, format4: true, ..Default::default() }).unwrap();
    let mut seed = 9u64;
    let mut next = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        seed >> 33
    };
    for i in 0..=400u64 {
        commit(&log, 1 + next() % 8, &mut next);
        if i == 0 {
            log.set_retention(Policy::parse("20 versions").unwrap(), T).unwrap();
        }
        if i % 25 == 24 {
            log.sync_pending().unwrap();
            log.reclaim(64 << 10, T).unwrap();
        }
    }
    log.sync_pending().unwrap();
    let boundary = log.retention_state().boundary;
    let below: Vec<u64> = recycled_commits(&db).iter().flat_map(|(_, s)| s.clone()).filter(|&o| o < boundary).collect();
    eprintln!("{} images in recycled slots below B = {boundary}", below.len());
    let mut rep = Replicator::new(g.store("fresh"), &db, Options { max_segment: 64 << 10, ..Default::default() });
    rep.pass().unwrap();
    commit(&log, 3, &mut next);
    log.sync_pending().unwrap();
    let latest = log.latest().number;
    assert_eq!(rep.pass().unwrap().version, latest);
    let s = g.store("fresh");
    let cat = pagelog_replica::catalog(&s).unwrap();
    let first = cat.generations[0].first_version();
    assert!(first > 1, "the generation starts at the boundary");
    let out = d.path("out.db");
    for n in first..=latest {
        let _ = std::fs::remove_file(&out);
        restore_into(&s, Target::Version(n), &out, &mut |_, _| {}).unwrap_or_else(|e| panic!("restore of {n}: {e}"));
        let got = Log::open(&out, OpenOptions { read_only: true, ..Default::default() }).unwrap();
        assert_eq!(image_hash(&got, n), image_hash(&log, n), "version {n}");
    }
}
