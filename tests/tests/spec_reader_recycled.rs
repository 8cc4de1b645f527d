//! Frames in recycled slots (vfs/FORMAT.md, "Frames in recycled slots",
//! issue 20), read by the second reader written from FORMAT.md
//! (`tests/spec_reader/spec_reader.py`) as by pagelog: a format-4 log under
//! a retention policy whose many one-row commits let steps release dead
//! frame slots and later commits write into them (RECYCLED commits), and
//! damaged variants — a recycled slot of the last, unclaimed commit torn
//! (both drop that commit), a recycled slot of a claimed commit damaged
//! (damage naming the slot's offset), RECYCLED set on a checkpoint and on
//! a full map (not well-formed), cleared on a RECYCLED commit and set on a
//! delta that names only its own frames (both re-sealed). Both sides must
//! give the same outcome (`opens N clean|damaged`, `refused …`), read every
//! version's pages alike and list the same versions as `pagelog log`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pagelog::format::{self, Entry, RecordHeader};
use pagelog::retention::Policy;
use pagelog::{Durability, Log, OpenOptions};
use pagelog_e2e::spec::{pagelog_listing, pagelog_pages, reader_listing};
use pagelog_e2e::{python3, TempDir};

const PS: usize = 1024;
const T: Duration = Duration::from_secs(5);
const RECYCLED: u8 = format::FLAG_RECYCLED;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A format-4 log of 1 KiB pages under a policy of 20 versions: a load of
/// 40 pages, then `commits` one-page commits (one of 8 hot pages), a step
/// every 25 of them; the writer recycles the slots the steps release.
fn write_log(path: &Path, commits: u32) {
    let log = Log::open(path, OpenOptions { create: true, format4: true, ..Default::default() }).unwrap();
    let mut seed = 11u64;
    let mut next = || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        seed >> 33
    };
    for i in 0..=commits {
        {
            let _w = log.lock_writer(T).unwrap();
            let base = log.prepare_write().unwrap();
            let mut txn = log.begin(base, 1 << 20);
            let (at, n) = if i == 0 { (0, 40 * PS) } else { ((1 + next() % 8) as usize * PS, PS) };
            let mut d: Vec<u8> = (0..n).map(|_| next() as u8).collect();
            d[0] = b'X';
            txn.write(&log, at as u64, &d).unwrap();
            log.commit(txn, Durability::Normal).unwrap().expect("a version");
        }
        if i == 0 {
            log.set_retention(Policy::parse("20 versions").unwrap(), T).unwrap();
        }
        if i % 25 == 24 {
            log.sync_pending().unwrap();
            log.reclaim(64 << 10, T).unwrap();
        }
    }
}

#[derive(Debug, Clone)]
struct Rec {
    offset: u64,
    h: RecordHeader,
    lay: format::Layout,
    entries: Vec<Entry>,
}

impl Rec {
    fn end(&self) -> u64 {
        self.offset + self.h.length
    }
    /// Page images named below the record (in recycled slots).
    fn slots(&self) -> Vec<Entry> {
        self.entries.iter().copied().filter(|e| e.offset != 0 && e.offset % 8 == 0 && e.offset < self.offset).collect()
    }
}

fn salt_and_format(b: &[u8]) -> (u64, u32) {
    let h = format::Header::decode(&b[..format::HEADER_SIZE]).expect("a log header");
    (h.salt, h.format)
}

/// The records from `from` on, back to back, up to the first bytes that
/// are not a record header.
fn records(b: &[u8], from: u64) -> Vec<Rec> {
    let (salt, fmt) = salt_and_format(b);
    let mut out = Vec::new();
    let mut pos = from;
    while pos as usize + format::RECORD_HEADER_SIZE <= b.len() {
        let Some(h) = RecordHeader::decode(salt, &b[pos as usize..]) else { break };
        let n = if h.kind == format::KIND_COMMIT {
            let at = pos as usize + format::RECORD_HEADER_SIZE + format::CI_ENTRIES;
            u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
        } else {
            0
        };
        let lay = format::layout_with_flags(fmt, pos, h.kind, h.flags, n, h.frames, h.page_size, h.patch_words);
        let e0 = pos as usize + format::RECORD_HEADER_SIZE + format::COMMIT_INFO_SIZE;
        let entries = (0..n as usize)
            .map(|i| Entry::decode(&b[e0 + i * format::ENTRY_SIZE..e0 + (i + 1) * format::ENTRY_SIZE]))
            .collect();
        out.push(Rec { offset: pos, h, lay, entries });
        pos += h.length;
    }
    out
}

/// Re-seals record `r` of `b` after an edit of its header: its header crc,
/// then its trailer crc over its metadata.
fn reseal(b: &mut [u8], r: &Rec) {
    let (salt, _) = salt_and_format(b);
    let o = r.offset as usize;
    let crc = format::salted_crc(salt, &[&b[o..o + format::RH_CRC]]);
    b[o + format::RH_CRC..o + format::RH_CRC + 4].copy_from_slice(&crc.to_le_bytes());
    let t = o + r.h.length as usize - format::TRAILER_SIZE;
    let meta = b[o..o + r.lay.payload_start as usize].to_vec();
    format::encode_trailer(salt, r.offset, &meta, &mut b[t..t + format::TRAILER_SIZE]);
}

fn pagelog_outcome(path: &Path) -> (String, Option<u64>) {
    let open = match Log::open(path, OpenOptions { read_only: true, ..Default::default() }) {
        Ok(log) => match log.refresh() {
            Ok(v) => format!("opens {}", v.number),
            Err(e) => format!("refresh fails ({e})"),
        },
        Err(_) => "refused".to_string(),
    };
    let report = pagelog::verify::verify_file(path, &mut |_, _| {});
    let at = report.damage().map(|d| d.offset);
    (format!("{open} {}", if report.damaged() { "damaged" } else { "clean" }), at)
}

fn reader(dir: &Path, args: &[&str], f: &str) -> String {
    let script = root().join("tests/spec_reader/spec_reader.py");
    let out = Command::new(python3()).arg(&script).args(args).arg(f).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "spec_reader.py {args:?} {f}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_spec_reader_reads_logs_with_recycled_slots_and_their_damaged_variants_as_pagelog_does() {
    let dir = TempDir::new("spec-reader-recycled");
    let path = dir.path("recycled.log");
    write_log(&path, 400);
    let b = std::fs::read(&path).unwrap();
    let boundary =
        Log::open(&path, OpenOptions { read_only: true, ..Default::default() }).unwrap().retention_state().boundary;
    assert!(boundary > 512, "the steps moved no boundary");
    let recs = records(&b, boundary);
    let commit = format::KIND_COMMIT;
    let recycled: Vec<&Rec> =
        recs.iter().filter(|r| r.h.kind == commit && r.h.flags & RECYCLED != 0 && !r.slots().is_empty()).collect();
    assert!(recycled.len() >= 5, "only {} RECYCLED commits with a slot below them", recycled.len());
    let commits: Vec<&Rec> = recs.iter().filter(|r| r.h.kind == commit).collect();
    let mut files: Vec<(String, Vec<u8>)> = vec![("recycled-intact.log".into(), b.clone())];

    // The last RECYCLED commit, the file cut after it (nothing claims it),
    // whole and with a recycled slot torn: both drop it, nothing else.
    let last = *recycled.last().unwrap();
    let cut = b[..last.end() as usize].to_vec();
    files.push(("recycled-last-unclaimed.log".into(), cut.clone()));
    let mut v = cut.clone();
    let slot = last.slots()[0].offset as usize;
    v[slot + PS / 2] ^= 0x10;
    files.push(("recycled-last-unclaimed-slot-torn.log".into(), v));

    // A claimed RECYCLED commit among the last 20 versions (all held), one
    // of its slots damaged: damage, at that offset.
    let latest = commits.last().unwrap().h.version;
    let claimed = recycled.iter().rev().find(|r| r.h.version + 15 <= latest).expect("an older RECYCLED commit");
    let claimed_slot = claimed.slots()[0].offset;
    let mut v = b.clone();
    v[claimed_slot as usize + 100] ^= 0x01;
    files.push(("recycled-claimed-slot-damaged.log".into(), v));

    // RECYCLED where it is not well-formed: on a checkpoint, on a full map.
    for (name, pick) in [("checkpoint", format::FLAG_CHECKPOINT), ("full-map", format::FLAG_FULL_MAP)] {
        if let Some(r) = commits.iter().rev().find(|r| r.h.flags & pick != 0) {
            let mut v = b.clone();
            v[r.offset as usize + format::RH_FLAGS] |= RECYCLED;
            reseal(&mut v, r);
            files.push((format!("recycled-flag-on-a-{name}.log"), v));
        }
    }
    // Cleared on the last RECYCLED commit (cut after it): well-formed, a
    // delta naming older frames, but its images lie in slots the list in
    // force still lists, which only a RECYCLED commit may do (verify's
    // overlap rule).
    let mut v = cut.clone();
    v[last.offset as usize + format::RH_FLAGS] &= !RECYCLED;
    reseal(&mut v, last);
    files.push(("recycled-flag-cleared.log".into(), v));
    // Set on the last commit of a log under a policy that no step ran on
    // yet, a delta naming only its own frames, cut after it: well-formed,
    // and every image it names checks out.
    let small = dir.path("small.log");
    write_log(&small, 20);
    let sb = std::fs::read(&small).unwrap();
    let srecs = records(&sb, 512);
    let r = srecs.iter().rev().find(|r| r.h.kind == commit).unwrap();
    assert!(r.h.flags & (RECYCLED | format::FLAG_FULL_MAP | format::FLAG_CHECKPOINT) == 0, "{:?}", r.h);
    let mut v = sb[..r.end() as usize].to_vec();
    v[r.offset as usize + format::RH_FLAGS] |= RECYCLED;
    reseal(&mut v, r);
    files.push(("recycled-flag-on-an-own-frames-delta.log".into(), v));
    let own = r.h.version;

    let mut problems = Vec::new();
    let mut outcomes = std::collections::BTreeMap::new();
    for (f, bytes) in &files {
        std::fs::write(dir.path(f), bytes).unwrap();
        let said = reader(&dir.0, &["--summary"], f);
        let r = said.trim().split_once(' ').map_or("", |(_, w)| w).to_string();
        let (p, at) = pagelog_outcome(&dir.path(f));
        if r != p {
            problems.push(format!("{f}: pagelog `{p}`, the reader from FORMAT.md `{r}`"));
        }
        let said = reader(&dir.0, &["--pages"], f);
        let r = said.trim().split_once(' ').map_or("", |(_, w)| w).to_string();
        let real = pagelog_pages(&dir.path(f));
        if r != real {
            problems.push(format!("{f}: pages: pagelog `{real}`, the reader `{r}`"));
        }
        let json = reader(&dir.0, &[], f);
        let r = reader_listing(&json);
        let real = pagelog_listing(&dir.path(f));
        if r != real {
            problems.push(format!("{f}: `pagelog log` lists {real}, the reader {r}"));
        }
        outcomes.insert(f.clone(), (p, at));
    }
    assert!(problems.is_empty(), "FORMAT.md and pagelog disagree on recycled slots:\n{}", problems.join("\n"));
    // What each variant must give.
    let o = |f: &str| outcomes[f].0.clone();
    let v = last.h.version;
    assert_eq!(o("recycled-intact.log"), format!("opens {latest} clean"));
    assert_eq!(o("recycled-last-unclaimed.log"), format!("opens {v} clean"));
    assert_eq!(o("recycled-last-unclaimed-slot-torn.log"), format!("opens {} clean", v - 1), "a torn slot: unfinished");
    assert_eq!(o("recycled-claimed-slot-damaged.log"), format!("opens {latest} damaged"));
    assert_eq!(outcomes["recycled-claimed-slot-damaged.log"].1, Some(claimed_slot), "the damage names the slot");
    assert_eq!(o("recycled-flag-cleared.log"), format!("opens {v} damaged"));
    let at = outcomes["recycled-flag-cleared.log"].1.expect("an offset");
    assert!(last.slots().iter().any(|e| e.offset == at), "the damage names a slot of {last:?}: {at}");
    assert_eq!(o("recycled-flag-on-an-own-frames-delta.log"), format!("opens {own} clean"));
    for (f, (p, _)) in &outcomes {
        if f.starts_with("recycled-flag-on-a-") {
            assert!(p.ends_with("damaged") || !p.contains(&format!("opens {latest}")), "{f}: {p}");
        }
    }
}
