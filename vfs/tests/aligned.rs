//! ALIGNED records (format 4; FORMAT.md, "Aligned page images"): a COMMIT
//! (flags bit 3) or SPILL (flags bit 0) whose page images start at the
//! first file offset at or after its metadata that is a multiple of
//! `a = min(page size, 4096)`, the gap zero and under the trailer crc.
//!
//! * The writer sets the flag as docs/format-4.md's writer policy says
//!   (every record of 32 frames or more; under a retention policy, every
//!   record with frames, at every page size; never in format 3), and each
//!   version reads back exactly, at every page size 512–65536.
//! * A bulk load's frames lie at multiples of `a` (their slots' offsets),
//!   for a padding of at most 3.2%; `upgrade --format 4` aligns a load as
//!   the live writer does.
//! * A record torn or damaged inside its gap is no record: recovery opens
//!   the version before an unclaimed one, refuses a claimed one, and
//!   `verify` names the byte; the flag in a format-3 log, or an unknown
//!   flag bit, is not a record either.
//! * Power loss at every write of a workload of aligned records
//!   (`common::SimDisk`): recovery reaches the last synced version and
//!   every version reads back exactly.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{Dir, Op, Rng, SimDisk};
use pagelog::format::{self, RecordHeader};
use pagelog::retention::Policy;
use pagelog::version::{Pages, Version};
use pagelog::{Durability, Log, OpenOptions};

const T: Duration = Duration::from_secs(5);
const PAGE_SIZES: [usize; 8] = [512, 1024, 2048, 4096, 8192, 16384, 32768, 65536];

fn f4() -> OpenOptions {
    OpenOptions { create: true, format4: true, ..Default::default() }
}

fn read_only() -> OpenOptions {
    OpenOptions { read_only: true, ..Default::default() }
}

/// One transaction writing `writes` (offset, bytes) with a spill limit of
/// `spill` bytes.
fn commit(log: &Log, spill: usize, writes: &[(u64, Vec<u8>)], d: Durability) -> Arc<Version> {
    let _w = log.lock_writer(T).unwrap();
    let base = log.prepare_write().unwrap();
    let mut txn = log.begin(base, spill);
    for (at, data) in writes {
        txn.write(log, *at, data).unwrap();
    }
    log.commit(txn, d).unwrap().expect("a version")
}

/// Pages `pgnos` (0-based) rewritten whole with random bytes, in `img` too.
fn whole_pages(
    rng: &mut Rng,
    img: &mut Vec<u8>,
    ps: usize,
    pgnos: impl IntoIterator<Item = usize>,
) -> Vec<(u64, Vec<u8>)> {
    pgnos
        .into_iter()
        .map(|p| {
            let d = rng.bytes(ps);
            if img.len() < (p + 1) * ps {
                img.resize((p + 1) * ps, 0);
            }
            img[p * ps..(p + 1) * ps].copy_from_slice(&d);
            ((p * ps) as u64, d)
        })
        .collect()
}

/// A record of the file as the format lays it out.
#[derive(Debug, Clone, Copy)]
struct Record {
    offset: u64,
    h: RecordHeader,
    lay: format::Layout,
}

/// The log's salt and format.
fn header(b: &[u8]) -> format::Header {
    format::Header::decode(&b[..format::HEADER_SIZE]).expect("a log header")
}

/// The records of the log `b` from 512 on, back to back, up to the first
/// bytes that are no record header (pre-allocated zeros).
fn records(b: &[u8]) -> Vec<Record> {
    let hd = header(b);
    let mut out = Vec::new();
    let mut pos = format::FIRST_RECORD;
    while pos as usize + format::RECORD_HEADER_SIZE <= b.len() {
        let Some(h) = RecordHeader::decode(hd.salt, &b[pos as usize..]) else { break };
        let entries = if h.kind == format::KIND_COMMIT {
            let at = pos as usize + format::RECORD_HEADER_SIZE + format::CI_ENTRIES;
            u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
        } else {
            0
        };
        let lay = if h.kind == format::KIND_CONTROL || h.kind == format::KIND_INDEX {
            format::Layout { meta_end: 0, payload_start: 0, patches_start: 0, length: h.length }
        } else {
            format::layout_with_flags(hd.format, pos, h.kind, h.flags, entries, h.frames, h.page_size, h.patch_words)
        };
        assert_eq!(lay.length, h.length, "the record at {pos}: its length is its layout's");
        out.push(Record { offset: pos, h, lay });
        pos += h.length;
    }
    out
}

/// What the writer policy says of a record of `frames` frames at `ps`.
fn should_align(frames: u32, _ps: usize, policy: bool) -> bool {
    frames > 0 && (frames >= 32 || policy)
}

/// Checks every record of the log at `path` against the writer policy
/// (`policy_from`: the first version written under a policy) and the
/// layout (an aligned record's images at a multiple of `a`, its gap zero);
/// returns (aligned records, padding bytes).
fn check_records(path: &Path, ps: usize, policy_from: u64) -> (usize, u64) {
    let b = std::fs::read(path).unwrap();
    let a = ps.min(4096) as u64;
    let (mut aligned, mut padding) = (0, 0);
    for r in records(&b) {
        let is = format::is_aligned(r.h.kind, r.h.flags);
        if r.h.kind == format::KIND_COMMIT || r.h.kind == format::KIND_SPILL {
            let want = should_align(r.h.frames, ps, r.h.version >= policy_from);
            assert_eq!(is, want, "ps {ps}: {:?} at {}", r.h, r.offset);
        } else {
            assert!(!is, "only a COMMIT or SPILL is ALIGNED");
        }
        if is {
            aligned += 1;
            let start = r.offset + r.lay.payload_start;
            assert_eq!(start % a, 0, "ps {ps}: the images of the record at {} start at {start}", r.offset);
            let gap = r.lay.payload_start - r.lay.meta_end;
            assert!(gap < a, "a gap of {gap} bytes");
            let g = &b[(r.offset + r.lay.meta_end) as usize..start as usize];
            assert!(g.iter().all(|&x| x == 0), "the gap of the record at {} is zeros", r.offset);
            padding += gap;
        } else if r.h.kind != format::KIND_CONTROL && r.h.kind != format::KIND_INDEX {
            assert_eq!(r.lay.payload_start, r.lay.meta_end, "an unaligned record is not padded");
        }
    }
    (aligned, padding)
}

/// Every version 1..=n of the log at `path` reads back as `images`, and
/// `verify` finds it clean.
fn check_versions(path: &Path, images: &[Vec<u8>]) {
    let log = Log::open(path, read_only()).unwrap();
    assert_eq!(log.latest().number as usize, images.len() - 1);
    for (n, want) in images.iter().enumerate().skip(1) {
        let v = log.version(n as u64).unwrap();
        let mut got = vec![0u8; v.size_bytes() as usize];
        v.read(0, &mut got).unwrap();
        assert!(got == *want, "version {n} reads back as committed");
    }
    let report = pagelog::verify::verify_file(path, &mut |_, _| {});
    assert!(!report.damaged(), "verify: {:?} {:?}", report.damage(), report.recovery_error);
}

/// The slot of page `pgno` in version `v`.
fn slot(v: &Version, pgno: u32) -> u64 {
    match &v.map {
        Pages::Tree(t) => t.get(pgno).unwrap().expect("a page").offset,
        Pages::Full(m) => m.get(pgno).expect("a page").offset,
    }
}

#[test]
fn aligned_records_round_trip_at_every_page_size() {
    let dir = Dir::new("aligned-round-trip");
    for ps in PAGE_SIZES {
        let path = dir.0.join(format!("ps{ps}.log"));
        let log = Log::open(&path, f4()).unwrap();
        let mut rng = Rng::new(ps as u64);
        let mut images = vec![Vec::new()];
        let mut img = Vec::new();
        let a = ps.min(4096) as u64;
        // 1: a bulk load of 40 pages: one ALIGNED checkpoint.
        let w = whole_pages(&mut rng, &mut img, ps, 0..40);
        let v1 = commit(&log, 1 << 30, &w, Durability::Full);
        images.push(img.clone());
        for p in 1..=40 {
            assert_eq!(slot(&v1, p) % a, 0, "ps {ps}: page {p} of the load at a multiple of {a}");
        }
        // 2: one page, no policy: unpadded at every page size.
        let w = whole_pages(&mut rng, &mut img, ps, [7]);
        commit(&log, 1 << 30, &w, Durability::Normal);
        images.push(img.clone());
        // 3: 40 pages with a spill limit of 33 pages: an ALIGNED SPILL of
        // 34 frames, then a commit of 6 (unaligned without a policy).
        let w = whole_pages(&mut rng, &mut img, ps, 2..42);
        commit(&log, 33 * ps, &w, Durability::Normal);
        images.push(img.clone());
        // From version 4 on, a policy is in force.
        log.set_retention(Policy { versions: Some(1000), age_secs: None, bytes: None }, T).unwrap();
        // 4: one page; 5: a few bytes (a patch, no frame); 6: three pages;
        // 7: a spill of 34 frames and a commit of 2.
        let w = whole_pages(&mut rng, &mut img, ps, [3]);
        let v4 = commit(&log, 1 << 30, &w, Durability::Normal);
        images.push(img.clone());
        assert_eq!(slot(&v4, 4) % a, 0, "ps {ps}: under a policy a one-frame commit is in a slot");
        let at = 2 * ps + 100;
        let d = rng.bytes(12);
        img[at..at + 12].copy_from_slice(&d);
        commit(&log, 1 << 30, &[(at as u64, d)], Durability::Normal);
        images.push(img.clone());
        let w = whole_pages(&mut rng, &mut img, ps, [1, 5, 9]);
        commit(&log, 1 << 30, &w, Durability::Full);
        images.push(img.clone());
        let w = whole_pages(&mut rng, &mut img, ps, 4..40);
        commit(&log, 33 * ps, &w, Durability::Full);
        images.push(img.clone());
        drop(log);

        let (aligned, _) = check_records(&path, ps, 4);
        // The load, the two spills, and under the policy the commits with
        // frames.
        let want = 6;
        assert!(aligned >= want, "ps {ps}: {aligned} aligned records, want at least {want}");
        check_versions(&path, &images);
        // And a writer that opens the log again goes on from it.
        let log = Log::open(&path, OpenOptions::default()).unwrap();
        let w = whole_pages(&mut rng, &mut img, ps, 0..33);
        commit(&log, 1 << 30, &w, Durability::Full);
        images.push(img.clone());
        drop(log);
        check_records(&path, ps, 4);
        check_versions(&path, &images);
    }
}

/// A bulk load's frames land at multiples of `a`, and the padding of the
/// smallest record that is aligned whatever the policy (32 frames) is at
/// most 3.2% of it; a format-3 log is never aligned.
#[test]
fn a_bulk_load_lands_its_frames_at_multiples_of_the_slot_size() {
    let dir = Dir::new("aligned-bulk");
    for ps in PAGE_SIZES {
        let a = ps.min(4096) as u64;
        for (fmt4, pages) in [(true, 32usize), (true, 200), (false, 200)] {
            let path = dir.0.join(format!("ps{ps}-{fmt4}-{pages}.log"));
            let opts = if fmt4 { f4() } else { OpenOptions { create: true, ..Default::default() } };
            let log = Log::open(&path, opts).unwrap();
            let mut rng = Rng::new(7);
            let mut img = Vec::new();
            // A one-page version first, so the load does not start at a
            // round offset.
            let w = whole_pages(&mut rng, &mut img, ps, [0]);
            commit(&log, 1 << 30, &w, Durability::Full);
            let w = whole_pages(&mut rng, &mut img, ps, 0..pages);
            let v = commit(&log, 1 << 30, &w, Durability::Full);
            drop(log);
            let all_at_slots = (1..=pages as u32).all(|p| slot(&v, p) % a == 0);
            let b = std::fs::read(&path).unwrap();
            let rec = records(&b).into_iter().find(|r| r.offset == v.commit_offset).expect("the load's commit");
            assert_eq!(rec.h.frames as usize, pages);
            let padding = rec.lay.payload_start - rec.lay.meta_end;
            if fmt4 {
                assert!(format::is_aligned(rec.h.kind, rec.h.flags), "ps {ps}: a load of {pages} pages is aligned");
                assert!(all_at_slots, "ps {ps}: every frame of the load at a multiple of {a}");
                assert!(padding < a);
                assert!(
                    padding as f64 <= 0.032 * rec.h.length as f64,
                    "ps {ps}: {padding} bytes of padding in a record of {}",
                    rec.h.length
                );
            } else {
                assert_eq!(rec.h.flags & format::FLAG_ALIGNED, 0, "format 3 never aligns");
                assert_eq!(padding, 0);
            }
            let mut images = vec![Vec::new(); 3];
            images[2] = img;
            let log = Log::open(&path, read_only()).unwrap();
            let mut got = vec![0u8; images[2].len()];
            log.version(2).unwrap().read(0, &mut got).unwrap();
            assert!(got == images[2], "ps {ps}: the load reads back");
        }
    }
}

/// Re-seals the record at `o` of the log image `b` (header crc, then the
/// trailer crc over its metadata, the gap included) after an edit.
fn reseal(b: &mut [u8], o: u64, payload_start: u64, length: u64) {
    let salt = header(b).salt;
    let o = o as usize;
    let crc = format::salted_crc(salt, &[&b[o..o + format::RH_CRC]]);
    b[o + format::RH_CRC..o + format::RH_CRC + 4].copy_from_slice(&crc.to_le_bytes());
    let (meta, rest) = b[o..].split_at_mut(payload_start as usize);
    let t = length as usize - payload_start as usize - format::TRAILER_SIZE;
    format::encode_trailer(salt, o as u64, meta, &mut rest[t..t + format::TRAILER_SIZE]);
}

/// A format-4 log at 4096-byte pages: version 1 a load of 40 pages, synced
/// (claimed); version 2 an ALIGNED commit of 33 pages, `claimed` or not.
/// Returns the file's bytes, the models, and version 2's record.
fn two_loads(path: &Path, claimed: bool) -> (Vec<u8>, Vec<Vec<u8>>, Record) {
    let ps = 4096;
    let log = Log::open(path, f4()).unwrap();
    let mut rng = Rng::new(3);
    let mut img = Vec::new();
    let w = whole_pages(&mut rng, &mut img, ps, 0..40);
    commit(&log, 1 << 30, &w, Durability::Full);
    let v1 = img.clone();
    let w = whole_pages(&mut rng, &mut img, ps, 3..36);
    let v2 = commit(&log, 1 << 30, &w, if claimed { Durability::Full } else { Durability::Normal });
    drop(log);
    let mut b = std::fs::read(path).unwrap();
    let recs = records(&b);
    let rec = *recs.iter().find(|r| r.offset == v2.commit_offset).unwrap();
    assert!(format::is_aligned(rec.h.kind, rec.h.flags));
    if !claimed {
        // The last connection's close synced and wrote a MARK: as if power
        // failed before it, nothing claims version 2.
        let end = (rec.offset + rec.h.length) as usize;
        if let Some(m) = recs.iter().find(|r| r.offset as usize == end && r.h.kind == format::KIND_MARK) {
            b[end..end + m.h.length as usize].fill(0);
            std::fs::write(path, &b).unwrap();
        }
    }
    assert!(rec.lay.payload_start - rec.lay.meta_end >= 64, "the test needs a gap: {rec:?}");
    (b, vec![Vec::new(), v1, img], rec)
}

/// What opening `b` (written to `path`) gives: the latest version, or
/// refused; and `verify`'s first damage.
fn outcome(path: &Path, b: &[u8]) -> (Option<u64>, Option<pagelog::verify::Problem>, bool) {
    std::fs::write(path, b).unwrap();
    let latest = Log::open(path, read_only()).ok().map(|l| l.latest().number);
    let r = pagelog::verify::verify_file(path, &mut |_, _| {});
    (latest, r.damage().cloned(), r.damaged())
}

#[test]
fn a_record_torn_or_damaged_in_its_gap_is_no_record() {
    let dir = Dir::new("aligned-torn");
    let path = dir.0.join("two-loads.log");
    let (b, images, rec) = two_loads(&path, false);
    let (o, gap_at) = (rec.offset, rec.offset + rec.lay.meta_end);
    let mid = (gap_at + (rec.offset + rec.lay.payload_start)) / 2;
    check_versions(&path, &images);
    let t = dir.0.join("t.log");

    // The last commit, not claimed, torn in its gap: recovery opens version 1.
    let mut cut = b.clone();
    cut.truncate(mid as usize);
    assert_eq!(outcome(&t, &cut).0, Some(1), "cut inside the gap");
    let mut zeros = b.clone();
    zeros[mid as usize..(o + rec.h.length) as usize].fill(0);
    let (latest, _, damaged) = outcome(&t, &zeros);
    assert_eq!((latest, damaged), (Some(1), false), "zeros from inside the gap: a torn tail, not damage");
    let mut flipped = b.clone();
    flipped[mid as usize] ^= 0x10;
    let (latest, _, damaged) = outcome(&t, &flipped);
    assert_eq!((latest, damaged), (Some(1), false), "a gap byte flipped in an unclaimed commit");
    // Re-sealed over the non-zero byte: the crc checks out, the gap is not
    // zeros, so it is still no record.
    reseal(&mut flipped, o, rec.lay.payload_start, rec.h.length);
    assert_eq!(outcome(&t, &flipped).0, Some(1), "a non-zero gap byte under a good crc");

    // Claimed (synced, a MARK names it): the same bytes are damage, and
    // verify names the byte.
    let (b, _, rec) = two_loads(&path, true);
    let mid = rec.offset + (rec.lay.meta_end + rec.lay.payload_start) / 2;
    for reseal_it in [false, true] {
        let mut bad = b.clone();
        bad[mid as usize] = 0x5a;
        if reseal_it {
            reseal(&mut bad, rec.offset, rec.lay.payload_start, rec.h.length);
        }
        let (latest, problem, damaged) = outcome(&t, &bad);
        assert_eq!(latest, None, "a claimed commit whose gap is not zeros: recovery refuses the log");
        assert!(damaged);
        let p = problem.expect("verify reports the damage");
        assert_eq!(p.offset, mid, "verify names the byte: {p}");
        assert!(p.expected.contains("zero bytes") && p.found == "byte 0x5a", "{p}");
    }
}

#[test]
fn the_aligned_flag_in_a_format_3_log_and_unknown_flag_bits_are_no_record() {
    let dir = Dir::new("aligned-flags");
    let t = dir.0.join("t.log");
    // Format 3: the flag set on a synced commit of 40 frames (its layout
    // would not move: format 3 has no ALIGNED), header and trailer
    // re-sealed.
    let path = dir.0.join("f3.log");
    let log = Log::open(&path, OpenOptions { create: true, ..Default::default() }).unwrap();
    let mut rng = Rng::new(5);
    let mut img = Vec::new();
    let w = whole_pages(&mut rng, &mut img, 4096, [0]);
    commit(&log, 1 << 30, &w, Durability::Full);
    let w = whole_pages(&mut rng, &mut img, 4096, 0..40);
    let v2 = commit(&log, 1 << 30, &w, Durability::Full);
    drop(log);
    let b = std::fs::read(&path).unwrap();
    let rec = records(&b).into_iter().find(|r| r.offset == v2.commit_offset).unwrap();
    assert_eq!(rec.h.flags & format::FLAG_ALIGNED, 0);
    let mut bad = b.clone();
    bad[(rec.offset + format::RH_FLAGS as u64) as usize] |= format::FLAG_ALIGNED;
    reseal(&mut bad, rec.offset, rec.lay.payload_start, rec.h.length);
    let (latest, problem, _) = outcome(&t, &bad);
    assert_eq!(latest, None, "format 3: ALIGNED makes no record, and the commit was claimed");
    let p = problem.expect("damage");
    assert_eq!(p.offset, rec.offset + format::RH_FLAGS as u64, "{p}");
    assert!(p.expected.contains("ALIGNED"), "{p}");

    // Format 3: RECYCLED (bit 4, format 4's) is no record either.
    let mut bad = b.clone();
    bad[(rec.offset + format::RH_FLAGS as u64) as usize] |= format::FLAG_RECYCLED;
    reseal(&mut bad, rec.offset, rec.lay.payload_start, rec.h.length);
    let (latest, _, damaged) = outcome(&t, &bad);
    assert_eq!((latest, damaged), (None, true), "format 3: RECYCLED makes no record");

    // Format 4: bits 5 and 6 of a COMMIT (bit 4 is RECYCLED, valid on a
    // delta: FORMAT.md, "Frames in recycled slots").
    let path = dir.0.join("f4.log");
    let (b, _, rec) = two_loads(&path, true);
    for flags in [rec.h.flags | 64, rec.h.flags | 32] {
        let mut bad = b.clone();
        bad[(rec.offset + format::RH_FLAGS as u64) as usize] = flags;
        reseal(&mut bad, rec.offset, rec.lay.payload_start, rec.h.length);
        let (latest, _, damaged) = outcome(&t, &bad);
        assert_eq!((latest, damaged), (None, true), "flags {flags:#x}");
    }
}

/// Power loss at every operation of a workload of ALIGNED records (pages of
/// 1024 bytes under a policy: every record with frames; loads and spills of
/// 32 frames and more): recovery opens a version between the last synced
/// one and the last written, every version from a few before the synced
/// one reads back exactly, and the log takes a commit after.
#[test]
fn power_loss_at_every_write_of_aligned_records() {
    let dir = Dir::new("aligned-power");
    let path = dir.0.join("sim.log");
    let ps = 1024;
    let disk = SimDisk::create(&path, &[]);
    let log = Log::open_with_io(&path, f4(), disk.clone()).unwrap();
    let mut rng = Rng::new(11);
    let mut img = Vec::new();
    let (mut images, mut written) = (vec![Vec::new()], vec![0usize]);
    for i in 0..30 {
        if i == 2 {
            log.set_retention(Policy { versions: Some(1000), age_secs: None, bytes: None }, T).unwrap();
        }
        let w = match (i, rng.below(6)) {
            (0, _) => whole_pages(&mut rng, &mut img, ps, 0..48),
            (_, 0) => {
                let from = rng.below(10) as usize;
                whole_pages(&mut rng, &mut img, ps, from..from + 40)
            }
            (_, 1) => {
                let at = rng.below(img.len() as u64 - 20) as usize;
                let n = 1 + rng.below(16) as usize;
                let d = rng.bytes(n);
                img[at..at + d.len()].copy_from_slice(&d);
                vec![(at as u64, d)]
            }
            _ => {
                let n = 1 + rng.below(3) as usize;
                let ps_n = (img.len() / ps) as u64;
                let pages: Vec<usize> = (0..n).map(|_| rng.below(ps_n) as usize).collect();
                whole_pages(&mut rng, &mut img, ps, pages)
            }
        };
        let d = if rng.chance(1, 3) { Durability::Full } else { Durability::Normal };
        let before = disk.op_count();
        let v = commit(&log, 33 * ps, &w, d);
        let at = disk.write_covering(before, v.commit_offset);
        images.push(img.clone());
        written.push(at);
    }
    drop(log);
    let (aligned, _) = check_records(&path, ps, 3);
    assert!(aligned >= 20, "only {aligned} aligned records");

    let ops = disk.ops_since(0);
    let mut crng = Rng::new(12);
    for k in 0..=ops.len() {
        for _ in 0..3 {
            let img = disk.crash_image(&[], k, &mut crng);
            let p = dir.0.join(format!("crash-{k}.log"));
            std::fs::write(&p, &img).unwrap();
            let last_sync = ops[..k].iter().rposition(|(_, o)| matches!(o, Op::Sync));
            let floor = last_sync.map_or(0, |s| (1..images.len()).rev().find(|&v| written[v] < s).unwrap_or(0));
            let ceiling = (1..images.len()).rev().find(|&v| written[v] < k).unwrap_or(0);
            let log = Log::open(&p, OpenOptions::default()).unwrap_or_else(|e| panic!("crash at op {k}: open: {e}"));
            let latest = log.latest().number as usize;
            assert!((floor..=ceiling).contains(&latest), "crash at op {k}: version {latest}, want {floor}..={ceiling}");
            let from = latest.saturating_sub(3).max(1);
            for (n, want) in images.iter().enumerate().take(latest + 1).skip(from) {
                let v = log.version(n as u64).unwrap();
                let mut got = vec![0u8; v.size_bytes() as usize];
                v.read(0, &mut got).unwrap_or_else(|e| panic!("crash at op {k}: version {n}: {e}"));
                assert!(got == *want, "crash at op {k}: version {n} differs from what was committed");
            }
            if latest > 0 {
                let d = vec![0xa5u8; 40];
                let _w = log.lock_writer(T).unwrap();
                let base = log.prepare_write().unwrap();
                let mut txn = log.begin(base, 1 << 20);
                txn.write(&log, 10, &d).unwrap();
                log.commit(txn, Durability::Full).unwrap_or_else(|e| panic!("crash at op {k}: commit after: {e}"));
            }
            drop(log);
            std::fs::remove_file(&p).unwrap();
        }
    }
}

/// `pagelog upgrade --format 4` (`compact::upgrade`) rewrites a format-3
/// log as a live writer writes format 4: its load of 40 pages is one
/// ALIGNED record, every page of it at a multiple of `a`, and every version
/// reads back.
#[test]
fn an_upgrade_to_format_4_aligns_a_load_as_a_live_writer_does() {
    let dir = Dir::new("aligned-upgrade");
    for ps in [1024usize, 4096, 65536] {
        let path = dir.0.join(format!("ps{ps}.log"));
        let log = Log::open(&path, OpenOptions { create: true, ..Default::default() }).unwrap();
        let mut rng = Rng::new(9);
        let mut img = Vec::new();
        let mut images = vec![Vec::new()];
        let w = whole_pages(&mut rng, &mut img, ps, [0]);
        commit(&log, 1 << 30, &w, Durability::Full);
        images.push(img.clone());
        let w = whole_pages(&mut rng, &mut img, ps, 0..40);
        commit(&log, 1 << 30, &w, Durability::Full);
        images.push(img.clone());
        drop(log);
        pagelog::compact::upgrade(&path, format::FORMAT_V4, &mut |_, _| {}).unwrap();
        let b = std::fs::read(&path).unwrap();
        assert_eq!(header(&b).format, format::FORMAT_V4);
        let (aligned, padding) = check_records(&path, ps, u64::MAX);
        assert!(aligned >= 1, "ps {ps}: the load is aligned");
        assert!(padding < ps.min(4096) as u64 * aligned as u64);
        let log = Log::open(&path, read_only()).unwrap();
        let v = log.version(2).unwrap();
        let a = ps.min(4096) as u64;
        assert!((1..=40).all(|p| slot(&v, p) % a == 0), "ps {ps}: the load's pages at multiples of {a}");
        drop(log);
        check_versions(&path, &images);
    }
}
