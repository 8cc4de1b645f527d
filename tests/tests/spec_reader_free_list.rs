//! The free list of format-4 CONTROL records (vfs/FORMAT.md, "The free
//! list"), read by the second reader written from FORMAT.md
//! (`tests/spec_reader/spec_reader.py`) as by pagelog: a log whose step
//! listed dead frames, and variants whose list breaks the rules (entries out
//! of order, overlapping, too short, an unknown flag, a slot off its
//! boundary), re-sealed so that only the rule tells them apart. Both must
//! give the same outcome, and pagelog's error names the CONTROL record.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pagelog::format::{self, RecordHeader};
use pagelog::retention::Policy;
use pagelog::{Durability, Log, OpenOptions};
use pagelog_e2e::{python3, TempDir};

const PS: usize = 1024;
const T: Duration = Duration::from_secs(5);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A format-4 log whose last CONTROL record (a step's) lists dead frames.
fn write_log(path: &Path) {
    let log = Log::open(path, OpenOptions { create: true, format4: true, ..Default::default() }).unwrap();
    let mut seed = 7u64;
    let mut next = || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        seed >> 33
    };
    for i in 0..600 {
        let _w = log.lock_writer(T).unwrap();
        let base = log.prepare_write().unwrap();
        let mut txn = log.begin(base, 1 << 20);
        let (at, n) = if i == 0 { (0, 40 * PS) } else { ((1 + next() % 8) as usize * PS, PS) };
        let mut d: Vec<u8> = (0..n).map(|_| next() as u8).collect();
        d[0] = b'X';
        txn.write(&log, at as u64, &d).unwrap();
        log.commit(txn, Durability::Normal).unwrap().expect("a version");
    }
    log.sync_pending().unwrap();
    log.set_retention(Policy::parse("20 versions").unwrap(), T).unwrap();
    let r = log.reclaim(64 << 10, T).unwrap();
    assert!(r.appended > 0, "the step appended no CONTROL record: {r:?}");
}

/// The offset, length and free-list start of the last CONTROL record.
fn last_control(b: &[u8]) -> (usize, usize, usize, usize) {
    let salt = format::Header::decode(&b[..format::HEADER_SIZE]).unwrap().salt;
    let mut found = None;
    for o in (format::FIRST_RECORD as usize..b.len() - format::RECORD_HEADER_SIZE).step_by(8) {
        if let Some(h) = RecordHeader::decode(salt, &b[o..]) {
            if h.kind == format::KIND_CONTROL {
                let info = format::ControlInfo::decode(&b[o + format::RECORD_HEADER_SIZE..]).unwrap();
                let free_at = o
                    + format::RECORD_HEADER_SIZE
                    + format::CONTROL_INFO_SIZE
                    + info.stragglers as usize * format::STRAGGLER_SIZE;
                found = Some((o, h.length as usize, free_at, info.free_entries as usize));
            }
        }
    }
    found.expect("a CONTROL record")
}

/// The first page image of the last COMMIT record before `before`.
fn last_commit_frame(b: &[u8], before: usize) -> u64 {
    let h = format::Header::decode(&b[..format::HEADER_SIZE]).unwrap();
    let mut found = None;
    for o in (format::FIRST_RECORD as usize..before).step_by(8) {
        if let Some(r) = RecordHeader::decode(h.salt, &b[o..]) {
            if r.kind == format::KIND_COMMIT && r.frames > 0 && o + r.length as usize <= before {
                let at = o + format::RECORD_HEADER_SIZE + format::CI_ENTRIES;
                let entries = u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
                let lay = format::layout_with_flags(
                    h.format,
                    o as u64,
                    r.kind,
                    r.flags,
                    entries,
                    r.frames,
                    r.page_size,
                    r.patch_words,
                );
                found = Some(o as u64 + lay.payload_start);
            }
        }
    }
    found.expect("a COMMIT record with a frame")
}

/// Re-seals the CONTROL record at `o` (length `len`, metadata up to
/// `meta_end`) after an edit of its metadata.
fn reseal(b: &mut [u8], o: usize, len: usize, meta_end: usize) {
    let salt = format::Header::decode(&b[..format::HEADER_SIZE]).unwrap().salt;
    let meta = b[o..meta_end].to_vec();
    let t = o + len - format::TRAILER_SIZE;
    format::encode_trailer(salt, o as u64, &meta, &mut b[t..t + format::TRAILER_SIZE]);
}

fn pagelog_outcome(path: &Path) -> (String, String) {
    let (open, err) = match Log::open(path, OpenOptions { read_only: true, ..Default::default() }) {
        Ok(log) => match log.refresh() {
            Ok(v) => (format!("opens {}", v.number), String::new()),
            Err(e) => (format!("refresh fails ({e})"), e.to_string()),
        },
        Err(e) => ("refused".to_string(), e.to_string()),
    };
    let report = pagelog::verify::verify_file(path, &mut |_, _| {});
    (format!("{open} {}", if report.damaged() { "damaged" } else { "clean" }), err)
}

#[test]
fn the_spec_reader_reads_free_lists_and_their_broken_variants_as_pagelog_does() {
    let dir = TempDir::new("spec-reader-free-list");
    let path = dir.path("free.log");
    write_log(&path);
    let b = std::fs::read(&path).unwrap();
    let (o, len, free_at, n) = last_control(&b);
    assert!(n >= 4, "the step listed only {n} ranges");
    let meta_end = free_at + n * format::FREE_ENTRY_SIZE;
    let entry = |b: &[u8], i: usize| -> (u64, u32, u32) {
        let e = &b[free_at + i * 16..free_at + i * 16 + 16];
        (
            u64::from_le_bytes(e[..8].try_into().unwrap()),
            u32::from_le_bytes(e[8..12].try_into().unwrap()),
            u32::from_le_bytes(e[12..16].try_into().unwrap()),
        )
    };
    let put = |b: &mut Vec<u8>, i: usize, (off, l, f): (u64, u32, u32)| {
        let at = free_at + i * 16;
        b[at..at + 8].copy_from_slice(&off.to_le_bytes());
        b[at + 8..at + 12].copy_from_slice(&l.to_le_bytes());
        b[at + 12..at + 16].copy_from_slice(&f.to_le_bytes());
    };
    let (e0, e1) = (entry(&b, 0), entry(&b, 1));
    let mut variants: Vec<(&str, Vec<u8>, bool)> = vec![("intact", b.clone(), false)];
    let mut v = b.clone();
    put(&mut v, 0, e1);
    put(&mut v, 1, e0);
    variants.push(("unsorted", v, true));
    let mut v = b.clone();
    put(&mut v, 1, (e0.0 + 8, e1.1, 0));
    variants.push(("overlapping", v, true));
    let mut v = b.clone();
    put(&mut v, 0, (e0.0, 504, 0));
    variants.push(("short", v, true));
    let mut v = b.clone();
    put(&mut v, 0, (e0.0, e0.1, 2));
    variants.push(("unknown-flag", v, true));
    let mut v = b.clone();
    put(&mut v, 0, (e0.0 + 8, PS as u32, 1));
    variants.push(("slot-off-boundary", v, true));
    let mut v = b.clone();
    put(&mut v, n - 1, (o as u64 - 256, 512, 0));
    variants.push(("past-its-record", v, true));
    let mut v = b.clone();
    v[free_at + 3] ^= 0x40; // not re-sealed: the record is torn
    variants.push(("flipped", v, false));
    // Well-formed, but over the latest version's own frame (the last
    // COMMIT record's first page image, before the CONTROL record).
    let live = last_commit_frame(&b, o);
    assert!(live > entry(&b, n - 2).0 + entry(&b, n - 2).1 as u64, "the live frame is not after the list");
    let mut v = b.clone();
    put(&mut v, n - 1, (live, PS as u32, 0));
    reseal(&mut v, o, len, meta_end);
    std::fs::write(dir.path("free-over-a-live-frame.log"), &v).unwrap();
    let mut files = Vec::new();
    for (name, mut v, seal) in variants {
        if seal {
            reseal(&mut v, o, len, meta_end);
        }
        let f = format!("free-{name}.log");
        std::fs::write(dir.path(&f), &v).unwrap();
        files.push((f, seal));
    }
    files.push(("free-over-a-live-frame.log".to_string(), false));
    let python = python3();
    let script = root().join("tests/spec_reader/spec_reader.py");
    let mut problems = Vec::new();
    for (f, broken) in &files {
        let out = Command::new(&python).arg(&script).arg("--summary").arg(f).current_dir(&dir.0).output().unwrap();
        assert!(out.status.success(), "spec_reader.py {f}: {}", String::from_utf8_lossy(&out.stderr));
        let said = String::from_utf8_lossy(&out.stdout);
        let reader = said.trim().split_once(' ').map_or("", |(_, w)| w).to_string();
        let (real, err) = pagelog_outcome(&dir.path(f));
        if reader != real {
            problems.push(format!("{f}: pagelog `{real}`, the reader `{reader}`"));
        }
        if *broken {
            assert!(real.ends_with("damaged"), "{f}: pagelog says `{real}` of a broken free list");
            assert!(err.contains(&o.to_string()), "{f}: the error does not name the CONTROL record at {o}: {err}");
        } else if f == "free-intact.log" {
            assert!(real.ends_with(" clean") && real.starts_with("opens"), "{f}: {real}");
        } else if f == "free-over-a-live-frame.log" {
            assert!(real.starts_with("opens") && real.ends_with(" damaged"), "{f}: {real}");
        }
    }
    assert!(problems.is_empty(), "FORMAT.md and pagelog disagree on free lists:\n{}", problems.join("\n"));
}
