//! Summary commits (issue 21, state (c); FORMAT.md "Summary commits"): a
//! long-lived writer makes every 256th commit after its newest map commit a
//! summary, a delta listing its version's whole difference from the
//! checkpoint, and the commits after it name it as their map commit. So an
//! open walks at most 255 commits after a summary instead of up to 2,047
//! after the checkpoint.
//!
//! The database is large to the checkpoint rule (65,536 pages of 512
//! bytes: a checkpoint every 1,024 commits) but only ~70 of its pages are
//! ever written, so the model is sparse: each version's generation of
//! every written page and its size. Truncations below pages the
//! checkpoint holds and growth back past them make summaries list zero
//! pages (the overlay's cut).
//!
//! Checked: the records an open reads (`pagelog::record::records_read`);
//! every page of versions before, at and after each summary read back
//! through the writer's versions, `Log::version` of a fresh handle and a
//! sample of the others; `verify` clean; damaged summaries (bytes flipped,
//! a wrong checkpoint link, entries that disagree with the chain) reported
//! by verify naming the summary, the latest version still read when it
//! does not need the damage; power loss at every write around summaries.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::{Dir, Op, Rng, SimDisk};
use pagelog::format::{self, RecordHeader};
use pagelog::version::Pages;
use pagelog::{Durability, Log, OpenOptions, Version};

const PS: usize = 512;
/// The database's size: max(pages / 64, 256) = 1,024 commits a checkpoint
/// (the most a log of any length may say it has: 65,536 pages more than
/// its 512-byte blocks, FORMAT.md "Recovery" step 3).
const BIG: u32 = 65_536;
/// A page the first checkpoint holds, cut off and grown back unwritten.
const FAR: u32 = 65_480;
const T: Duration = Duration::from_secs(5);

/// Page `p`'s bytes at generation `g` (0: a zero page).
fn page(p: u32, g: u32) -> Vec<u8> {
    let mut b = vec![0u8; PS];
    if g == 0 {
        return b;
    }
    for run in b.chunks_mut(16) {
        run[0] = b'S';
        run[1..5].copy_from_slice(&p.to_le_bytes());
        run[5..9].copy_from_slice(&g.to_le_bytes());
    }
    b
}

#[derive(Clone, Default)]
struct State {
    pages: u32,
    gens: BTreeMap<u32, u32>,
}

struct Model {
    /// states[v]: version v (0: empty).
    states: Vec<State>,
    rng: Rng,
    next_gen: u32,
    /// Versions whose commit is a summary.
    summaries: Vec<u64>,
    checkpoints: Vec<u64>,
}

impl Model {
    fn new(seed: u64) -> Model {
        Model {
            states: vec![State::default()],
            rng: Rng::new(seed),
            next_gen: 1,
            summaries: Vec::new(),
            checkpoints: Vec::new(),
        }
    }

    fn write(&mut self, log: &Log, txn: &mut pagelog::txn::WriteTxn, s: &mut State, p: u32) {
        let g = self.next_gen;
        self.next_gen += 1;
        txn.write(log, (p as u64 - 1) * PS as u64, &page(p, g)).unwrap();
        s.gens.insert(p, g);
        s.pages = s.pages.max(p);
    }

    /// One commit: a load first (pages 1..=64, FAR and BIG), then mostly
    /// one-row commits (a leaf and page 1), now and then a truncation
    /// below FAR or growth back to BIG writing only its last page.
    fn commit(&mut self, log: &Log) -> std::sync::Arc<Version> {
        self.commit_as(log, Durability::Normal)
    }

    fn commit_as(&mut self, log: &Log, d: Durability) -> std::sync::Arc<Version> {
        let mut s = self.states.last().unwrap().clone();
        let _w = log.lock_writer(T).unwrap();
        let base = log.prepare_write().unwrap();
        let mut txn = log.begin(base, 1 << 20);
        let r = self.rng.below(100);
        if s.pages == 0 {
            for p in (1..=64).chain([FAR, BIG]) {
                self.write(log, &mut txn, &mut s, p);
            }
        } else if r < 2 && s.pages == BIG {
            let keep = FAR - 1 - self.rng.below(40) as u32;
            txn.truncate(keep as u64 * PS as u64);
            s.pages = keep;
            s.gens.retain(|&p, _| p <= keep);
        } else if r < 5 && s.pages < BIG {
            self.write(log, &mut txn, &mut s, BIG);
        } else {
            let p = 2 + self.rng.below(63) as u32;
            self.write(log, &mut txn, &mut s, p);
            self.write(log, &mut txn, &mut s, 1);
        }
        let v = log.commit(txn, d).unwrap().expect("a version");
        assert_eq!(v.number as usize, self.states.len());
        let t = tree(&v);
        if t.checkpoint_offset() == v.commit_offset {
            self.checkpoints.push(v.number);
        } else if t.map_commit().0 == v.commit_offset {
            self.summaries.push(v.number);
        }
        self.states.push(s);
        v
    }

    /// Every written page of `v`, and a few never written, read back.
    fn check(&self, v: &Version, who: &str) -> Result<(), String> {
        let s = &self.states[v.number as usize];
        if v.db_pages() != s.pages {
            return Err(format!("{who}: version {} has {} pages, want {}", v.number, v.db_pages(), s.pages));
        }
        let mut got = vec![0u8; PS];
        let probes = [65, 1000, FAR - 1, FAR, FAR + 1, BIG - 1, BIG];
        let pages = s.gens.keys().copied().chain(probes).filter(|&p| p <= s.pages);
        for p in pages {
            v.read((p as u64 - 1) * PS as u64, &mut got)
                .map_err(|e| format!("{who}: version {} page {p}: {e}", v.number))?;
            let want = page(p, s.gens.get(&p).copied().unwrap_or(0));
            if got != want {
                return Err(format!("{who}: version {} page {p} differs from what was committed", v.number));
            }
        }
        Ok(())
    }
}

fn tree(v: &Version) -> &pagelog::index::TreeMap {
    match &v.map {
        Pages::Tree(t) => t,
        Pages::Full(_) => panic!("version {}: a format-4 version's map is a tree", v.number),
    }
}

fn build(path: &Path, seed: u64, commits: usize) -> Model {
    let log = Log::open(path, OpenOptions { create: true, format4: true, ..Default::default() }).unwrap();
    let mut m = Model::new(seed);
    for i in 0..commits {
        let v = m.commit_as(&log, if i % 64 == 63 { Durability::Full } else { Durability::Normal });
        // The writer's own version at and after a summary.
        if m.summaries.last().is_some_and(|&s| v.number <= s + 1) {
            m.check(&v, "writer").unwrap();
        }
    }
    m
}

/// Records a fresh handle's open reads (the durable start, the map
/// commit's links, the walk after it).
fn open_counted(path: &Path) -> (Log, u64) {
    let before = pagelog::record::records_read();
    let log = Log::open(path, OpenOptions { read_only: true, ..Default::default() }).unwrap();
    (log, pagelog::record::records_read() - before)
}

/// After 5,000 commits of one handle, and at every 97th commit past the
/// first summary, a new handle's open reads at most the 255 commits after
/// the newest summary and a few records more; before summaries it walked
/// up to 1,023 after the checkpoint.
#[test]
fn an_open_after_a_long_lived_writer_reads_at_most_255_commits_after_a_summary() {
    let dir = Dir::new("summary-walk");
    let path = dir.0.join("walk.db");
    let log = Log::open(&path, OpenOptions { create: true, format4: true, ..Default::default() }).unwrap();
    let mut m = Model::new(21);
    let (mut worst, mut walked) = ((0u64, 0u64), 0u64);
    for i in 1..=5000u64 {
        // The commit before each open is synced: the open's forward walk
        // from the durable commit is short, and what it reads after is the
        // map's walk (one record a commit: no MARK between them).
        let check = i >= 300 && (i % 97 == 0 || i == 5000);
        m.commit_as(&log, if check { Durability::Full } else { Durability::Normal });
        if check {
            let (r, reads) = open_counted(&path);
            let latest = r.latest();
            m.check(&latest, "a new handle").unwrap();
            walked = walked.max(tree(&latest).map_commit().1);
            if reads > worst.1 {
                worst = (i, reads);
            }
        }
    }
    println!("summaries at {:?}, checkpoints at {:?}", &m.summaries[..m.summaries.len().min(8)], m.checkpoints);
    println!(
        "the most records an open read: {} (at version {}); commits after a map commit {walked}",
        worst.1, worst.0
    );
    assert!(walked <= 255, "an open walked {walked} commits after its map commit");
    assert!(m.checkpoints.len() >= 3 && m.summaries.len() >= 14, "{:?} {:?}", m.checkpoints, m.summaries);
    assert!(worst.1 <= 256 + 16, "an open read {} records at version {}", worst.1, worst.0);
}

/// Every page of the versions before, at and after each summary (and each
/// checkpoint), and a sample of the others, read back through
/// `Log::version` of a new handle (`?version=N`, map commit to map commit);
/// `verify` finds the log clean.
#[test]
fn every_version_reads_back_across_summaries_and_verify_finds_them_clean() {
    let dir = Dir::new("summary-versions");
    let path = dir.0.join("versions.db");
    let m = build(&path, 7, 4700);
    assert!(m.summaries.len() >= 12, "{:?}", m.summaries);
    let log = Log::open(&path, OpenOptions { read_only: true, ..Default::default() }).unwrap();
    let latest = log.latest().number;
    let mut rng = Rng::new(3);
    let mut want: Vec<u64> = m.summaries.iter().chain(&m.checkpoints).flat_map(|&s| [s - 1, s, s + 1]).collect();
    want.extend((0..60).map(|_| 1 + rng.below(latest)));
    want.retain(|&n| n >= 1 && n <= latest);
    for n in want {
        let v = log.version(n).unwrap_or_else(|e| panic!("version {n}: {e}"));
        m.check(&v, "?version=N").unwrap();
    }
    let rep = log.verify();
    assert!(!rep.damaged(), "verify: {:?}", rep.damage());
    assert_eq!(rep.versions_checked(), latest as usize);
}

/// The log's salt and its records (offset, header), walked by length.
fn records(bytes: &[u8]) -> (u64, Vec<(usize, RecordHeader)>) {
    let salt = format::Header::decode(&bytes[..format::HEADER_SIZE]).unwrap().salt;
    let mut out = Vec::new();
    let mut pos = format::FIRST_RECORD as usize;
    while pos + format::RECORD_HEADER_SIZE <= bytes.len() {
        let Some(h) = RecordHeader::decode(salt, &bytes[pos..]) else { break };
        out.push((pos, h));
        pos += h.length as usize;
    }
    (salt, out)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// The metadata length of record `h` at `pos` (what its trailer crc covers).
fn meta_len(bytes: &[u8], pos: usize, h: &RecordHeader) -> usize {
    let body = pos + format::RECORD_HEADER_SIZE;
    match h.kind {
        format::KIND_CONTROL => {
            format::control_layout(&format::ControlInfo::decode(&bytes[body..]).unwrap()).payload_start as usize
        }
        format::KIND_INDEX => {
            format::index_layout(&format::IndexInfo::decode(&bytes[body..]).unwrap()).payload_start as usize
        }
        _ => {
            let entries = if h.kind == format::KIND_COMMIT { u32_at(bytes, body + format::CI_ENTRIES) } else { 0 };
            format::layout_with_flags(
                format::FORMAT_V4,
                pos as u64,
                h.kind,
                h.flags,
                entries,
                h.frames,
                h.page_size,
                h.patch_words,
            )
            .payload_start as usize
        }
    }
}

/// Applies `edit` to the record at `at`, then re-seals it and every record
/// after it so that the history chains as a writer's would: each `prev
/// crc`, horizon crc, checkpoint-info and summary-info crc naming a
/// re-sealed record takes its new trailer crc.
fn rechain(bytes: &mut [u8], at: usize, edit: impl FnOnce(&mut [u8])) {
    let (salt, recs) = records(bytes);
    let mut new_crc: BTreeMap<u64, u32> = BTreeMap::new();
    let mut edit = Some(edit);
    for (pos, mut h) in recs.into_iter().filter(|(p, _)| *p >= at) {
        let len = h.length as usize;
        if pos == at {
            (edit.take().unwrap())(&mut bytes[pos..pos + len]);
        }
        if let Some(&c) = new_crc.get(&h.prev_commit) {
            h.prev_crc = c;
        }
        h.encode(salt, &mut bytes[pos..pos + format::RECORD_HEADER_SIZE]);
        let body = pos + format::RECORD_HEADER_SIZE;
        if h.kind == format::KIND_COMMIT {
            let ho = u64_at(bytes, body + format::CI_HORIZON_OFFSET);
            if let Some(&c) = new_crc.get(&ho) {
                put_u32(bytes, body + format::CI_HORIZON_CRC, c);
            }
            let tail = body + format::COMMIT_INFO_SIZE + u32_at(bytes, body + format::CI_ENTRIES) as usize * 16;
            let links: &[(usize, usize)] = if h.flags & format::FLAG_SUMMARY != 0 {
                &[(format::SM_CHECKPOINT, format::SM_CHECKPOINT_CRC), (format::SM_CONTROL, format::SM_CONTROL_CRC)]
            } else if h.flags & format::FLAG_CHECKPOINT != 0 {
                &[(format::CK_INDEX, format::CK_INDEX_CRC), (format::CK_CONTROL, format::CK_CONTROL_CRC)]
            } else {
                &[]
            };
            for &(o, c) in links {
                if let Some(&n) = new_crc.get(&u64_at(bytes, tail + o)) {
                    put_u32(bytes, tail + c, n);
                }
            }
        }
        let meta = meta_len(bytes, pos, &h);
        let (head, rest) = bytes.split_at_mut(pos + len - format::TRAILER_SIZE);
        format::encode_trailer(salt, pos as u64, &head[pos..pos + meta], &mut rest[..format::TRAILER_SIZE]);
        new_crc.insert(pos as u64, format::trailer_crc(&rest[..format::TRAILER_SIZE]));
    }
}

/// Summaries of the log (offset, version, entries), in file order.
fn summaries_in(bytes: &[u8]) -> Vec<(usize, u64, u32)> {
    let (_, recs) = records(bytes);
    recs.into_iter()
        .filter(|(_, h)| h.kind == format::KIND_COMMIT && h.flags & format::FLAG_SUMMARY != 0)
        .map(|(p, h)| (p, h.version, u32_at(bytes, p + format::RECORD_HEADER_SIZE + format::CI_ENTRIES)))
        .collect()
}

fn verify_damage(path: &Path) -> Option<pagelog::verify::Problem> {
    let rep = pagelog::verify::verify_file(path, &mut |_, _| {});
    rep.damage().cloned()
}

/// A summary whose bytes are damaged (an entry flipped: no record there)
/// hides the versions from it to the next map commit, whose path crosses
/// it, and no other: the latest version, whose map commit is a later
/// summary, opens and reads exactly; versions before it read; `verify`
/// names the damaged summary's record.
#[test]
fn a_damaged_summary_hides_only_the_versions_whose_path_crosses_it() {
    let dir = Dir::new("summary-damaged");
    let path = dir.0.join("damaged.db");
    let m = build(&path, 11, 1500);
    let mut bytes = std::fs::read(&path).unwrap();
    let sums = summaries_in(&bytes);
    assert!(sums.len() >= 4, "{sums:?}");
    let (at, version, _) = sums[sums.len() - 2];
    bytes[at + format::RECORD_HEADER_SIZE + format::COMMIT_INFO_SIZE + 3] ^= 0x40;
    let p = dir.0.join("flipped.db");
    std::fs::write(&p, &bytes).unwrap();
    let log = Log::open(&p, OpenOptions { read_only: true, ..Default::default() })
        .unwrap_or_else(|e| panic!("summaries {sums:?}, checkpoints {:?}: {e}", m.checkpoints));
    m.check(&log.latest(), "latest past a damaged summary").unwrap();
    assert!(log.version(version + 3).is_err(), "a version whose path crosses the damaged summary");
    // Older versions: the walk back from the latest crosses the summary's
    // record (FORMAT.md step 5's search); the forward read finds them.
    let r = pagelog::Readable::open(&p).unwrap();
    for n in [2, version / 2, version - 1] {
        m.check(&r.version(n).unwrap().version, "a version before the damaged summary").unwrap();
    }
    assert!(r.version(version + 3).is_err(), "a version whose path crosses the damaged summary");
    let len = record_len(&bytes, at);
    let d = verify_damage(&p).expect("verify reports the damaged summary");
    assert!(d.offset >= at as u64 && d.offset < (at + len) as u64, "verify: {d}, summary at {at}");
}

/// A summary naming the wrong checkpoint (re-sealed so that it and the
/// history after it chain): an open of the latest version falls back to
/// the walk from the checkpoint its chain names and reads it exactly;
/// `verify` names the summary.
#[test]
fn a_summary_naming_the_wrong_checkpoint_is_damage_and_the_latest_version_still_reads() {
    let dir = Dir::new("summary-wrong-checkpoint");
    let path = dir.0.join("wrong.db");
    let m = build(&path, 13, 4400);
    assert!(m.checkpoints.len() >= 3);
    let mut bytes = std::fs::read(&path).unwrap();
    let (at, version, entries) = *summaries_in(&bytes).last().unwrap();
    assert!(m.states.len() as u64 > version + 5, "the latest is after the last summary");
    // The checkpoint before the summary's (its offset and crc).
    let (_, recs) = records(&bytes);
    let cks: Vec<usize> = recs
        .iter()
        .filter(|(_, h)| h.kind == format::KIND_COMMIT && h.flags & format::FLAG_CHECKPOINT != 0)
        .map(|r| r.0)
        .collect();
    let info = at + format::RECORD_HEADER_SIZE + format::COMMIT_INFO_SIZE + entries as usize * 16;
    let named = u64_at(&bytes, info + format::SM_CHECKPOINT) as usize;
    let i = cks.iter().position(|&c| c == named).expect("it names a checkpoint");
    let older = cks[i - 1];
    let older_end = older + records(&bytes).1.iter().find(|r| r.0 == older).unwrap().1.length as usize;
    let older_crc = u32_at(&bytes, older_end - 4);
    rechain(&mut bytes, at, |r| {
        let info = info - at;
        r[info..info + 8].copy_from_slice(&(older as u64).to_le_bytes());
        put_u32(r, info + format::SM_CHECKPOINT_CRC, older_crc);
        let fmo = format::RECORD_HEADER_SIZE + format::CI_FULL_MAP;
        r[fmo..fmo + 8].copy_from_slice(&(older as u64).to_le_bytes());
    });
    let p = dir.0.join("wrong-link.db");
    std::fs::write(&p, &bytes).unwrap();
    let log = Log::open(&p, OpenOptions { read_only: true, ..Default::default() }).unwrap();
    m.check(&log.latest(), "latest after a summary naming the wrong checkpoint").unwrap();
    for n in [version - 1, version, version + 1, version + 5] {
        m.check(&log.version(n).unwrap(), "?version=N").unwrap();
    }
    let d = verify_damage(&p).expect("verify reports the summary");
    assert!(
        d.offset >= at as u64 && d.offset < (at + 64 + 56) as u64 + entries as u64 * 16 + 32,
        "verify: {d}, summary at {at}"
    );
}

/// Summary `at`'s record length.
fn record_len(bytes: &[u8], at: usize) -> usize {
    records(bytes).1.iter().find(|r| r.0 == at).unwrap().1.length as usize
}

/// The first item `verify` calls damaged: its version and problem.
fn first_damaged(path: &Path) -> (Option<u64>, pagelog::verify::Problem) {
    let rep = pagelog::verify::verify_file(path, &mut |_, _| {});
    let i = rep.items.iter().find(|i| i.problem.is_some()).expect("verify reports damage");
    (i.version, i.problem.clone().unwrap())
}

/// A summary whose entries disagree with its chain, re-sealed and
/// re-chained: `verify` reports damage in the summary's record, as the
/// summary's version. (a) A page it does not list although its slot differs
/// from the checkpoint's (its entry moved to the page before, unlisted):
/// the map from the checkpoint and the chain's differ, named at the
/// summary's offset. (b) A repeated entry naming an older frame of its
/// page: both ways give that frame, and the stored checksum is what differs.
#[test]
fn a_summary_whose_entries_disagree_with_its_chain_is_reported_by_verify() {
    let dir = Dir::new("summary-disagree");
    let path = dir.0.join("disagree.db");
    let m = build(&path, 17, 1400);
    let bytes = std::fs::read(&path).unwrap();
    let (at, version, entries) = *summaries_in(&bytes).last().unwrap();
    let len = record_len(&bytes, at);
    let before = Log::open(&path, OpenOptions { read_only: true, ..Default::default() }).unwrap();
    let old = before.version(version - 100).unwrap();
    let base = at + format::RECORD_HEADER_SIZE + format::COMMIT_INFO_SIZE;
    let pg = |k: usize| u32_at(&bytes, base + k * 16);

    // (a) An entry for page p moved to page p - 1, which it does not list.
    let k = (1..entries as usize).find(|&k| pg(k) > 2 && pg(k) - 1 > pg(k - 1)).expect("a page after a gap");
    let mut a = bytes.clone();
    rechain(&mut a, at, |r| put_u32(r, base - at + k * 16, pg(k) - 1));
    let p = dir.0.join("unlisted.db");
    std::fs::write(&p, &a).unwrap();
    let (v, d) = first_damaged(&p);
    assert_eq!((v, d.offset), (Some(version), at as u64), "verify: {d}");
    assert!(d.expected.contains(&format!("version {version}")), "verify names the version: {d}");

    // (b) A repeated entry naming its page's frame ~100 commits earlier.
    let (k, slot) = (0..entries as usize)
        .find_map(|k| {
            let e = base + k * 16;
            let s = tree(&old).get(pg(k)).unwrap()?;
            (pg(k) > 1 && s.offset != 0 && s.offset != u64_at(&bytes, e + 8) && s.offset < at as u64).then_some((k, s))
        })
        .expect("a repeated entry whose page changed in the last 100 commits");
    let mut b = bytes.clone();
    rechain(&mut b, at, |r| {
        let e = base - at + k * 16;
        put_u32(r, e + 4, slot.crc);
        r[e + 8..e + 16].copy_from_slice(&slot.offset.to_le_bytes());
    });
    let p = dir.0.join("older-frame.db");
    std::fs::write(&p, &b).unwrap();
    let (v, d) = first_damaged(&p);
    assert_eq!(v, Some(version), "verify: {d}");
    assert!(d.offset >= at as u64 && d.offset < (at + len) as u64, "verify: {d}, summary at {at}");
    drop(m);
}

/// Power loss at every write from the operation before each summary's
/// commit record to the third after it (`SimDisk`: the durable image plus
/// unsynced operations kept, dropped or torn): recovery opens at a version
/// between the last synced and the last written, every version from the
/// last synced one (and a sample of the older ones) reads back exactly,
/// and the log takes a new commit that a new handle reads back.
#[test]
fn power_loss_around_summaries_keeps_every_synced_version() {
    let dir = Dir::new("summary-power");
    let path = dir.0.join("power.db");
    let disk = SimDisk::create(&path, &[]);
    let log = Log::open_with_io(&path, OpenOptions { format4: true, ..Default::default() }, disk.clone()).unwrap();
    let mut m = Model::new(5);
    let mut written = vec![0usize];
    let mut summary_ops = Vec::new();
    for i in 0..700 {
        let before = disk.op_count();
        // Some commits synced, so that a crash keeps a floor.
        let v = m.commit_as(&log, if i % 5 == 0 { Durability::Full } else { Durability::Normal });
        let at = disk.write_covering(before, v.commit_offset);
        if m.summaries.last() == Some(&v.number) {
            summary_ops.push(at);
        }
        written.push(at);
    }
    drop(log);
    assert!(summary_ops.len() >= 2, "{:?}", m.summaries);
    let ops = disk.ops_since(0);
    let mut rng = Rng::new(9);
    let mut tried = 0;
    for &s in &summary_ops {
        for k in s.saturating_sub(1)..=(s + 3).min(ops.len()) {
            for _ in 0..3 {
                let img = disk.crash_image(&[], k, &mut rng);
                let p = dir.0.join(format!("crash-{k}.db"));
                std::fs::write(&p, &img).unwrap();
                let last_sync = ops[..k].iter().rposition(|(_, o)| matches!(o, Op::Sync));
                let floor = last_sync.map_or(0, |s| (1..m.states.len()).rev().find(|&v| written[v] < s).unwrap_or(0));
                let ceiling = (1..m.states.len()).rev().find(|&v| written[v] < k).unwrap_or(0);
                let log =
                    Log::open(&p, OpenOptions::default()).unwrap_or_else(|e| panic!("crash at op {k}: open: {e}"));
                let latest = log.latest().number as usize;
                assert!(
                    latest >= floor && latest <= ceiling,
                    "crash at op {k}: version {latest}, want {floor}..={ceiling}"
                );
                for n in (1..=latest).filter(|&n| n + 3 >= floor || n % 53 == 0) {
                    let v = log.version(n as u64).unwrap_or_else(|e| panic!("crash at op {k}: version {n}: {e}"));
                    m.check(&v, &format!("crash at op {k}")).unwrap();
                }
                {
                    let _w = log.lock_writer(T).unwrap();
                    let base = log.prepare_write().unwrap();
                    let mut txn = log.begin(base, 1 << 20);
                    txn.write(&log, 8, &[b'Z'; 100]).unwrap();
                    log.commit(txn, Durability::Full).unwrap();
                }
                drop(log);
                let again = Log::open(&p, OpenOptions { read_only: true, ..Default::default() }).unwrap();
                assert_eq!(again.latest().number as usize, latest + 1, "crash at op {k}: the commit after recovery");
                tried += 1;
            }
        }
    }
    println!("{tried} crash images around {} summaries", summary_ops.len());
}

/// Retention steps across summaries (a policy of 300 versions, steps after
/// every 450 commits): the oldest kept version's map commit is at times a
/// summary, whose checkpoint the step keeps (it frees up to that
/// checkpoint's transaction, never into the interval); every kept version reads
/// back exactly through the writer and a new handle, older ones are
/// reclaimed, `verify` finds the log clean, and the log was freed.
#[test]
fn retention_steps_across_summaries_keep_every_kept_version() {
    use pagelog::retention::Policy;
    let dir = Dir::new("summary-retention");
    let path = dir.0.join("retain.db");
    let log = Log::open(&path, OpenOptions { create: true, format4: true, ..Default::default() }).unwrap();
    let mut m = Model::new(23);
    m.commit(&log);
    log.set_retention(Policy::parse("300 versions").unwrap(), T).unwrap();
    let mut freed = 0;
    let mut oldest_seen = Vec::new();
    for i in 2..=3200u64 {
        m.commit(&log);
        if i % 450 == 0 {
            loop {
                let r = log.reclaim(256 << 10, T).unwrap();
                freed += r.freed;
                if r.freed == 0 {
                    break;
                }
            }
            let oldest = log.oldest_kept().unwrap_or(1);
            oldest_seen.push(oldest);
            let fresh = Log::open(&path, OpenOptions { read_only: true, ..Default::default() }).unwrap();
            let latest = m.states.len() as u64 - 1;
            for n in (oldest..=latest).filter(|n| n % 7 == 0 || m.summaries.contains(n) || *n == oldest) {
                for (who, l) in [("the writer", &log), ("a new handle", &fresh)] {
                    let v = l.version(n).unwrap_or_else(|e| panic!("{who}: version {n} (oldest {oldest}): {e}"));
                    m.check(&v, who).unwrap();
                }
            }
            if oldest > 1 {
                assert!(matches!(fresh.version(oldest - 1), Err(pagelog::Error::Reclaimed { .. })));
            }
        }
    }
    let fresh = Log::open(&path, OpenOptions { read_only: true, ..Default::default() }).unwrap();
    let rep = fresh.verify();
    assert!(!rep.damaged(), "verify: {:?}", rep.damage());
    println!("oldest kept after each step {oldest_seen:?}, freed {freed}, summaries {:?}", m.summaries);
    assert!(freed > 0 && *oldest_seen.last().unwrap() > 2000, "{oldest_seen:?}");
    // Some step kept a version whose map commit is a summary.
    assert!(oldest_seen.iter().any(|&o| m.summaries.iter().any(|&s| s < o && o < s + 256)), "{oldest_seen:?}");
}
