//! `pagelog verify`: clean logs pass, damage inside committed history fails
//! naming the offset, an unfinished tail is only a warning.

mod common;
use common::*;

const MARKER: &[u8] = b"MARKER-7f3a9c-IN-VERSION-3";

/// A log whose version 3 writes a row holding MARKER, then more versions.
fn log_with_marker(d: &TempDir) -> std::path::PathBuf {
    let db = d.path("app.db");
    let c = open(&db);
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)").unwrap();
    c.execute("INSERT INTO t VALUES(1, 'first')", []).unwrap();
    c.execute("INSERT INTO t VALUES(2, ?1)", [std::str::from_utf8(MARKER).unwrap()]).unwrap();
    for i in 3..10 {
        c.execute("INSERT INTO t VALUES(?1, 'later')", [i]).unwrap();
    }
    assert_eq!(version(&c), 10);
    db
}

/// `pagelog verify --verbose DB`: every version's line, then the summary.
fn verify(db: &std::path::Path) -> Run {
    pagelog(["verify".as_ref(), "--verbose".as_ref(), db.as_os_str()])
}

#[test]
fn a_clean_log_verifies_with_every_version_ok() {
    let d = TempDir::new("verify-clean");
    let db = log_with_marker(&d);
    let r = verify(&db).ok();
    for v in 1..=10 {
        assert!(r.stdout.contains(&format!("version {v}: ok")), "{}", r.stdout);
    }
    assert!(r.stdout.contains("10 ok, 0 invalid"), "{}", r.stdout);
    assert!(!r.stdout.contains("warning"), "{}", r.stdout);
    let j = pagelog(["verify".as_ref(), db.as_os_str(), "--json".as_ref()]).ok().json();
    assert_eq!(j["ok"], true);
    assert_eq!(j["versions_ok"], 10);
    assert_eq!(j["invalid"], 0);
    assert!(j["frames_checked"].as_u64().unwrap() >= 10);
    // An empty log is clean too.
    let e = d.path("empty.db");
    std::fs::write(&e, b"").unwrap();
    assert!(verify(&e).ok().stdout.contains("0 ok, 0 invalid"));
}

#[test]
fn a_flipped_byte_in_a_committed_frame_fails_and_names_its_offset() {
    let d = TempDir::new("verify-flip");
    let db = log_with_marker(&d);
    let mut bytes = std::fs::read(&db).unwrap();
    let at = bytes.windows(MARKER.len()).position(|w| w == MARKER).expect("marker in the log");
    bytes[at + 3] ^= 0x20;
    let bad = d.path("flipped.db");
    std::fs::write(&bad, &bytes).unwrap();

    let r = verify(&bad).expect_code(1);
    assert!(r.stdout.contains("version 3: invalid"), "{}", r.stdout);
    assert!(!r.stdout.contains(" 0 invalid"), "{}", r.stdout);
    assert!(r.stdout.contains("version 2: ok"), "{}", r.stdout);
    // The frame holding the byte is named: it starts at most a page before it.
    let flipped = (at + 3) as u64;
    assert!(
        offsets_named(&r.stdout).iter().any(|&o| o <= flipped && flipped < o + 4096 && o % 8 == 0),
        "no frame offset around {flipped} in:\n{}",
        r.stdout
    );
    assert!(r.stdout.contains("last good version 2"), "{}", r.stdout);
    let j = pagelog(["verify".as_ref(), bad.as_os_str(), "--json".as_ref()]).expect_code(1).json();
    assert_eq!(j["ok"], false);
    let o = j["first_damage"]["offset"].as_u64().unwrap();
    assert!(o <= flipped && flipped < o + 4096, "{o} vs {flipped}");
    // verify only reads.
    assert_eq!(std::fs::read(&bad).unwrap(), bytes);
}

#[test]
fn a_flipped_byte_in_a_commit_record_fails() {
    let d = TempDir::new("verify-meta");
    let db = log_with_marker(&d);
    let h = history(&db);
    let v5 = h.iter().find(|v| v["version"] == 5).unwrap()["offset"].as_u64().unwrap();
    let mut bytes = std::fs::read(&db).unwrap();
    bytes[v5 as usize + 20] ^= 1; // inside the record header (version field)
    let bad = d.path("meta.db");
    std::fs::write(&bad, &bytes).unwrap();
    let r = verify(&bad).expect_code(1);
    assert!(r.stdout.contains("version 4: ok"), "{}", r.stdout);
    assert!(offsets_named(&r.stdout).iter().any(|&o| o >= v5 && o < v5 + 48), "{}", r.stdout);
    // Each line names an offset once ("record at offset N: invalid at
    // offset N: …" said the same offset twice, as if a record started at
    // the byte that failed).
    for line in r.stdout.lines() {
        let o = offsets_named(line);
        assert!(o.windows(2).all(|w| w[0] != w[1]), "{line}");
    }
}

#[test]
fn a_truncated_tail_is_a_warning_and_open_goes_to_the_last_complete_version() {
    let d = TempDir::new("verify-torn");
    let db = log_with_marker(&d);
    let last = history(&db)[0]["offset"].as_u64().unwrap();
    let torn = d.path("torn.db");
    std::fs::copy(&db, &torn).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&torn).unwrap();
    f.set_len(last + 100).unwrap(); // cut inside the last commit record
    drop(f);
    let r = verify(&torn).ok();
    assert!(r.stdout.contains("warning"), "{}", r.stdout);
    assert!(r.stdout.contains("9 ok, 0 invalid"), "{}", r.stdout);
    assert!(!r.stdout.contains("version 10:"), "{}", r.stdout);
    let j = pagelog(["verify".as_ref(), torn.as_os_str(), "--json".as_ref()]).ok().json();
    assert_eq!(j["tail"]["offset"].as_u64().unwrap(), last);
    assert_eq!(j["recovered_version"], 9);
    assert_eq!(versions(&torn)[0], 9);
    assert_eq!(rows(&open(&torn), "SELECT count(*) FROM t"), vec!["8"]);
}

#[test]
fn files_that_are_not_logs_fail_verification() {
    let d = TempDir::new("verify-notlog");
    let junk = d.path("junk");
    std::fs::write(&junk, b"hello, this is not a log at all, not even close").unwrap();
    let r = verify(&junk).expect_code(1);
    assert!(r.stdout.contains("not a pagelog log"), "{}", r.stdout);
    let mut bytes = std::fs::read(log_with_marker(&d)).unwrap();
    bytes[9] ^= 1; // the header's format version: the header crc fails
    std::fs::write(&junk, &bytes).unwrap();
    let r = verify(&junk).expect_code(1);
    assert!(r.stdout.contains("offset 60"), "{}", r.stdout);
}

/// A small deterministic random number generator (no dependency).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The log's bytes, the end of its second-to-last commit and of its last.
fn log_and_ends(d: &TempDir) -> (Vec<u8>, u64, u64) {
    let db = log_with_marker(d);
    let h = history(&db);
    let last = h[0]["offset"].as_u64().unwrap();
    let end = last + h[0]["bytes"].as_u64().unwrap();
    // Keep 4 KiB of the pre-allocated zeros past the end: enough to test
    // flips there, small enough to write thousands of copies quickly.
    let mut bytes = std::fs::read(&db).unwrap();
    bytes.truncate(end as usize + 4096);
    (bytes, last, end)
}

fn check(path: &std::path::Path) -> pagelog::verify::VerifyReport {
    let r = std::panic::catch_unwind(|| pagelog::verify::verify_file(path, &mut |_, _| {}));
    r.unwrap_or_else(|_| panic!("verify panicked on {}", path.display()))
}

#[test]
fn every_flipped_byte_of_committed_history_is_found_and_nothing_panics() {
    let d = TempDir::new("verify-flips");
    let (orig, durable_end, end) = log_and_ends(&d);
    let path = d.path("mutant.db");
    let mut rng = Lcg(0x5eed);
    // Every byte that must be covered: the header (but its reserved bytes
    // 40..60, which the header crc covers too) and all of committed history.
    let mut offsets: Vec<u64> = (0..64).collect();
    offsets.extend((0..1500).map(|_| 64 + rng.below(durable_end - 64)));
    for &o in &offsets {
        let mut b = orig.clone();
        b[o as usize] ^= 1 << rng.below(8);
        std::fs::write(&path, &b).unwrap();
        let rep = check(&path);
        assert!(rep.damaged(), "a flip at {o} (history ends at {durable_end}) went unnoticed: {rep:?}");
    }
    // The last commit is durable too: the MARK after it says so (format 2;
    // under format 1 a flip there was taken for an unfinished tail).
    for _ in 0..200 {
        let o = durable_end + rng.below(end - durable_end);
        let mut b = orig.clone();
        b[o as usize] ^= 1 << rng.below(8);
        std::fs::write(&path, &b).unwrap();
        let rep = check(&path);
        assert!(rep.damaged(), "a flip at {o} in the last commit ({durable_end}..{end}) went unnoticed: {rep:?}");
    }
    // The MARK itself is not synced (a power cut may tear it) and the zeros
    // past it are pre-allocated space: flips there are harmless.
    let mark = pagelog::format::MARK_SIZE;
    for _ in 0..300 {
        let o = end + rng.below(orig.len() as u64 - end);
        let mut b = orig.clone();
        b[o as usize] ^= 1 << rng.below(8);
        std::fs::write(&path, &b).unwrap();
        let rep = check(&path);
        assert!(!rep.damaged(), "a flip at {o} past the last commit and its MARK ({end}..{}): {rep:?}", end + mark);
        assert_eq!(rep.recovered_version, Some(10), "flip at {o}");
    }
}

#[test]
fn truncations_and_overwrites_never_panic_and_truncation_is_never_damage() {
    let d = TempDir::new("verify-cuts");
    let (orig, _, _) = log_and_ends(&d);
    let path = d.path("mutant.db");
    let mut rng = Lcg(0xc0ffee);
    for _ in 0..300 {
        let t = 512 + rng.below(orig.len() as u64 - 512);
        std::fs::write(&path, &orig[..t as usize]).unwrap();
        let rep = check(&path);
        assert!(!rep.damaged(), "a cut at {t} is a torn tail, not damage: {rep:?}");
    }
    for _ in 0..300 {
        let mut b = orig.clone();
        let at = rng.below(orig.len() as u64) as usize;
        let n = (1 + rng.below(64) as usize).min(b.len() - at);
        for x in &mut b[at..at + n] {
            *x = rng.next() as u8;
        }
        std::fs::write(&path, &b).unwrap();
        check(&path);
        // Opening and listing must not panic either.
        let _ = std::panic::catch_unwind(|| {
            pagelog::Log::open(&path, pagelog::OpenOptions { read_only: true, ..Default::default() })
                .and_then(|l| l.history())
        })
        .unwrap_or_else(|_| panic!("open/history panicked on an overwrite at {at}"));
    }
}

#[test]
fn an_unfinished_spilled_transaction_at_the_end_is_a_warning_with_a_tail() {
    // Kept in the fuzz corpus: three versions, then the SPILL records of a
    // fourth transaction whose writer died before its COMMIT.
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/../vfs/tests/corpus/base4-unfinished-spill.log");
    let out = pagelog(["verify", p]).ok();
    assert!(out.stdout.contains("warning:") && out.stdout.contains("unfinished"), "{}", out.stdout);
    let v = pagelog(["verify", "--json", p]).ok().json();
    let (at, bytes) = (v["tail"]["offset"].as_u64().unwrap(), v["tail"]["bytes"].as_u64().unwrap());
    assert!(at > v["items"][2]["offset"].as_u64().unwrap() && bytes > 0, "{v}");
    assert_eq!(at + bytes, std::fs::metadata(p).unwrap().len(), "the tail runs to the end of the file");
    assert_eq!(v["last_good_version"], 3);
}

/// Without --verbose, a clean log is one summary line however many versions
/// it holds; damage is listed whether or not --verbose is given.
#[test]
fn verify_prints_a_summary_by_default_and_every_version_with_verbose() {
    let d = TempDir::new("verify-summary");
    let db = log_with_marker(&d);
    let r = pagelog(["verify".as_ref(), db.as_os_str()]).ok();
    assert_eq!(r.stdout.lines().collect::<Vec<_>>().len(), 1, "{}", r.stdout);
    assert!(r.stdout.starts_with("10 ok, 0 invalid (10 versions, "), "{}", r.stdout);
    assert_eq!(verify(&db).ok().stdout.lines().filter(|l| l.ends_with(": ok")).count(), 10);

    let mut bytes = std::fs::read(&db).unwrap();
    let at = bytes.windows(MARKER.len()).position(|w| w == MARKER).expect("marker in the log");
    bytes[at + 3] ^= 0x20;
    let bad = d.path("flipped.db");
    std::fs::write(&bad, &bytes).unwrap();
    let r = pagelog(["verify".as_ref(), bad.as_os_str()]).expect_code(1);
    assert!(r.stdout.contains("version 3: invalid"), "{}", r.stdout);
    assert!(!r.stdout.contains(": ok"), "{}", r.stdout);
}
