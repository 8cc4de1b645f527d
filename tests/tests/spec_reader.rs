//! A second implementation of the log format, written in Python from
//! `vfs/FORMAT.md` alone (`tests/spec_reader/spec_reader.py`), must reach
//! the outcome pagelog reaches: whether `Log::open` (read-only) succeeds, at
//! which latest version, and whether `verify` finds damage. A difference
//! means FORMAT.md and the code disagree (issue 9, item 4): fix the one that
//! is wrong.
//!
//! * Every file of the kept corpus (`vfs/tests/corpus`) is checked against
//!   its line in `EXPECTED` and against pagelog itself.
//! * The files in `tests/spec_reader/cases/` are the reproducers of the
//!   disagreements found by running the reader against pagelog on 23,000
//!   damaged variants of the corpus (`tests/spec_reader/mutate.py`,
//!   `compare.py`); [`KNOWN_DISAGREEMENTS`] lists each with what both sides
//!   say and the verdict (spec or code) from `tests/spec_reader/README.md`.
//!
//! Any difference not listed fails, and so does a listed one that no longer
//! occurs or whose outcomes changed (update the list and the README when the
//! spec or the code is fixed). The reader only ever reads copies.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use pagelog::{Log, OpenOptions};
use pagelog_e2e::spec::{json_word, pagelog_listing, pagelog_pages, reader_listing};
use pagelog_e2e::{python3, TempDir};

/// Known disagreements, all on files in `tests/spec_reader/cases/` (none on
/// the kept corpus): (file, what the reader from FORMAT.md says, what
/// pagelog says, the finding of issue 9 item 4 it reproduces; details and
/// the proposed fix in tests/spec_reader/README.md). Empty since D1-D19 were
/// settled; a new finding goes here until the spec or the code is fixed.
const KNOWN_DISAGREEMENTS: &[(&str, &str, &str, &str)] = &[];

/// Format-4 cases on which both sides agree, and the outcome both must give:
/// (file, outcome, what it shows).
const FORMAT4_AGREED: &[(&str, &str, &str)] = &[
    (
        "f4-boundary-at-the-first-checkpoint-its-index-and-control-below.log",
        "opens 31 clean",
        "D19, settled: a load, a policy of 20 versions, 30 one-page commits and one step of 64 KiB; the step set \
         B = 1016, version 1's checkpoint (the commit before the oldest kept version's checkpoint), leaving its \
         INDEX record (512) and CONTROL record below B. The forward read from B takes that reclaimed checkpoint \
         without checking the records its checkpoint info names (FORMAT.md, \"Reading a damaged format-4 \
         log\"), as verify does",
    ),
    (
        "f4-in-place.log",
        "opens 401 clean",
        "frames read in place below B (FORMAT.md, \"The boundary\"): a load of 40 ALIGNED frames at 1 KiB pages, \
         commits of 8 of its pages under a policy of 5 versions; the load's other pages are read where it wrote \
         them, below B = 290608, no base-tree slot naming them",
    ),
    (
        "f4-in-place-frame-punched.log",
        "opens 401 damaged",
        "as f4-in-place.log, page 31's frame read in place (at 75776, below B) zeroed as a punch leaves it: every \
         kept version fails that page's crc, damage, not a page of zeros",
    ),
    (
        "f4-reclaimed.log",
        "opens 269 clean",
        "a reclaimed log (policy `3 versions`, B = 179320, the bytes below it a hole): [512, B) is freed, not \
         damage; every kept version reads through the base tree",
    ),
    (
        "f4-reclaimed-unpunched.log",
        "opens 269 clean",
        "as f4-reclaimed.log, the freed region not punched (a reader held an older epoch): still never read",
    ),
    (
        "f4-relocated-copy-damaged.log",
        "opens 269 damaged",
        "a relocated page image in a reclamation step's CONTROL payload damaged, the payload crc re-computed: \
         the pages redirected to it fail their crc",
    ),
    (
        "f4-hole-at-the-boundary.log",
        "refused damaged",
        "512 zero bytes at B: a hole at or after the boundary is damage (the CONTROL record before the oldest \
         kept version's full map is gone)",
    ),
    (
        "f4-reclaimed-cut-before-the-last-steps-control.log",
        "refused damaged",
        "a log of seven reclamation steps (make_format4.rs, f4-reclaimed) cut after the last step's B = 375824 \
         but before its CONTROL record: the newest CONTROL record left (B = 354880) names a base-tree node in \
         the punched zeros, so recovery refuses; B is then not known, and the forward read starts at the first \
         non-zero word (375824) with the zeros as damage and lists 514-516 (the reader kept the refused \
         state's B and listed nothing)",
    ),
    (
        "f4-middle-commit-reserved-resealed.log",
        "opens 300 damaged",
        "version 134's COMMIT (148864, between full maps 2 and 258) with reserved bytes set: not well-formed; \
         the log opens at 300 from a later claim, and versions 1-133 (on no way to 134) read, 134-257 \
         (their maps cross it) do not: FORMAT.md step 5's search map commit to map commit (the reader \
         read 1-257 as damage walking `prev commit` back; pagelog read 1-129, not 130-133, whose \
         search walked back from 257 across the damage)",
    ),
    (
        "f4-torn-last-control.log",
        "opens 266 clean",
        "a reclamation step's CONTROL record torn in its payload (its crc fails) as the last record, nothing \
         punched: not a record; the log is as before the step",
    ),
];

/// The cases of disagreements that were settled, and the outcome both sides
/// must now give: (file, outcome, the finding and how it was settled).
const SETTLED: &[(&str, &str, &str)] = &[
    (
        "f4-first-full-map-without-its-control.log",
        "opens 12 damaged",
        "D11, code: version 1's full map is not preceded by its CONTROL record (it names version 2), so \
         Log::version(1) fails; verify did not check the rule and called the log clean",
    ),
    (
        "f4-first-checkpoint-control-names-version-2.log",
        "opens 12 damaged",
        "D11, code and spec: as above for a checkpoint; `log` no longer lists version 1, and FORMAT.md says a \
         version of the forward read needs the CONTROL record step 5 requires (the reader listed it)",
    ),
    (
        "f4-checkpoint-control-copy-resealed.log",
        "opens 12 damaged",
        "D15, code: version 1's checkpoint names its CONTROL record with a crc that no longer matches (the copy's \
         timestamp re-sealed): verify called the log clean and `log` listed version 1",
    ),
    (
        "f4-checkpoint-index-record-resealed.log",
        "opens 12 damaged",
        "D15, code: a checkpoint-tree node damaged and its INDEX record's payload crc recomputed, which changes \
         the record's trailer crc: the checkpoint no longer names its INDEX record, recovery's step 3 (and the \
         forward read) end before it; `log` read on and exited 0 (24 variants)",
    ),
    (
        "f4-checkpoint-control-record-resealed-later.log",
        "refused damaged",
        "D10, code: version 2's checkpoint names a CONTROL record that was re-sealed (a policy field changed): \
         its map does not build, but `log` listed versions 2 and 3",
    ),
    (
        "f4-boundary-past-the-oldest-kept-checkpoint.log",
        "opens 269 damaged",
        "a step's CONTROL record re-sealed with B at its own offset, past the checkpoint the kept versions' maps \
         start from: verify walked them as reclaimed and called the log clean; a kept version's full map below B \
         is damage",
    ),
    (
        "f4-boundary-past-the-end.log",
        "refused damaged",
        "a reclamation step's CONTROL record re-sealed with B = 2^40, past itself and the end of the file: verify \
         and `log` panicked on it; now such a record is not well-formed (FORMAT.md: B at or before the record)",
    ),
    (
        "f4-torn-first-transaction-bad-straggler-table.log",
        "opens 0 clean",
        "D12, code: a log whose first transaction was torn after its INDEX and CONTROL records (the CONTROL's \
         straggler table bad) has no control state; refresh installed that CONTROL record's and failed",
    ),
    (
        "f4-unclaimed-full-map-spilled-frame-flipped.log",
        "opens 0 clean",
        "D9, code: a full map's CONTROL record no longer moves where recovery checks an unclaimed commit's frames \
         from (its transaction's SPILL records came before it); pagelog opened version 1",
    ),
    (
        "header-padding-byte-100-set.log",
        "opens 8 damaged",
        "D1, spec: FORMAT.md now says recovery ignores bytes 64-511 and verify reports a non-zero one",
    ),
    (
        "mark-names-offset-0.log",
        "refused damaged",
        "D2, code: a MARK claiming version 10 at offset 0 names no commit; it was taken for no claim",
    ),
    (
        "mark-names-offset-0-older-frame-flipped.log",
        "refused damaged",
        "D2, code: as above; it used to open version 1 of 10 silently when a frame of version 2 was flipped",
    ),
    (
        "horizon-names-offset-0.log",
        "opens 10 damaged",
        "D2, code: a horizon (4, offset 0, crc 0) names no commit; verify took offset 0 for no horizon",
    ),
    (
        "walked-horizon-wrong-crc.log",
        "refused damaged",
        "D6, code: a walked commit's horizon with the wrong crc is damage; recovery trusted the version alone",
    ),
    (
        "horizon-version-0-offset-512.log",
        "refused damaged",
        "D3, spec: a horizon of version 0 with an offset names no commit (FORMAT.md step 2 now says so)",
    ),
    (
        "format-2-log-labelled-format-1.log",
        "refused damaged",
        "D4, spec: MARKs are accepted in format-1 files and their claims checked",
    ),
    ("horizon-above-own-version.log", "opens 8 damaged", "D5, spec: FORMAT.md now lists verify's horizon check"),
    (
        "claimed-delta-other-page-size-before-a-full-map.log",
        "refused damaged",
        "D7, code: a delta of another page size than its predecessor's ends the forward walk (it checked only step 5)",
    ),
    (
        "unclaimed-tail-delta-other-page-size.log",
        "opens 2 clean",
        "D7, code: such a delta in an unclaimed tail is not valid, so the log ends before it (it refused the log)",
    ),
    (
        "unreferenced-patch-base-is-a-patch.log",
        "opens 3 damaged",
        "D8, code: verify flags a patch whose base is not a stored image also when no entry names it",
    ),
    (
        "unreferenced-patch-base-is-a-record-header.log",
        "opens 3 damaged",
        "D8, code: as above, its base a record header",
    ),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The files of a directory but `skip`, sorted.
fn files_in(dir: &Path, skip: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !skip.contains(&n.as_str()))
        .collect();
    v.sort();
    v
}

/// EXPECTED's lines as file name -> outcome (`opens N [clean|damaged]` or
/// `refused [clean|damaged]`).
fn manifest(corpus: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(corpus.join("EXPECTED")).expect("read EXPECTED");
    let mut m = BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (name, outcome) =
            line.split_once(' ').unwrap_or_else(|| panic!("EXPECTED line without an outcome: {line}"));
        assert!(m.insert(name.to_string(), outcome.trim().to_string()).is_none(), "{name} twice in EXPECTED");
    }
    m
}

/// Whether an outcome (`opens N clean|damaged` / `refused clean|damaged`)
/// agrees with a manifest outcome, whose verify word is optional.
fn agrees(outcome: &str, expected: &str) -> bool {
    if expected.ends_with(" clean") || expected.ends_with(" damaged") {
        outcome == expected
    } else {
        outcome.rsplit_once(' ').map(|(open, _)| open) == Some(expected)
    }
}

/// Copies `files` from `from` into a scratch directory and runs the reader
/// on the copies: file name -> its outcome. The copies must be unchanged.
fn reader_outcomes(from: &Path, files: &[String]) -> (TempDir, BTreeMap<String, String>) {
    let python = python3(); // fails, never skips, without /usr/bin/python3
    let script = root().join("tests/spec_reader/spec_reader.py");
    assert!(script.exists(), "{} is missing", script.display());
    let dir = TempDir::new("spec-reader");
    for f in files {
        std::fs::copy(from.join(f), dir.path(f)).unwrap();
    }
    let out = Command::new(&python)
        .arg(&script)
        .arg("--summary")
        .args(files)
        .current_dir(&dir.0)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "spec_reader.py failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let said: BTreeMap<String, String> =
        stdout.lines().filter_map(|l| l.split_once(' ')).map(|(f, o)| (f.to_string(), o.to_string())).collect();
    for f in files {
        assert!(said.contains_key(f), "the reader printed nothing for {f}:\n{stdout}");
        assert_eq!(std::fs::read(from.join(f)).unwrap(), std::fs::read(dir.path(f)).unwrap(), "{f}: the copy changed");
    }
    (dir, said)
}

/// What pagelog says of the file at `path`, in the same words: `Log::open`
/// read-only (the latest version `refresh` gives) and `verify_file`.
fn pagelog_outcome(path: &Path) -> String {
    let open = match Log::open(path, OpenOptions { read_only: true, ..Default::default() }) {
        Ok(log) => match log.refresh() {
            Ok(v) => format!("opens {}", v.number),
            Err(e) => format!("refresh fails ({e})"),
        },
        Err(_) => "refused".to_string(),
    };
    let report = pagelog::verify::verify_file(path, &mut |_, _| {});
    format!("{open} {}", if report.damaged() { "damaged" } else { "clean" })
}

/// Compares the reader with pagelog on every file; returns the problems.
fn against_pagelog(dir: &TempDir, said: &BTreeMap<String, String>, known_here: bool) -> Vec<String> {
    let mut problems = Vec::new();
    for (f, reader) in said {
        let real = pagelog_outcome(&dir.path(f));
        let known = KNOWN_DISAGREEMENTS.iter().find(|(n, ..)| n == f);
        match known {
            None if *reader == real => {}
            None => problems.push(format!("{f}: pagelog says `{real}`, the reader from FORMAT.md `{reader}`")),
            Some(_) if !known_here => problems.push(format!("{f}: listed as a known disagreement, but not a case")),
            Some((_, r, p, _)) if (r, p) == (&reader.as_str(), &real.as_str()) => {}
            Some((_, r, p, why)) => problems.push(format!(
                "{f}: listed as a known disagreement (reader `{r}`, pagelog `{p}`: {why}), now the reader says \
                 `{reader}` and pagelog `{real}`: update the list and tests/spec_reader/README.md"
            )),
        }
    }
    problems
}

#[test]
fn the_spec_reader_agrees_with_the_kept_corpus_and_pagelog() {
    let corpus = root().join("vfs/tests/corpus");
    let want = manifest(&corpus);
    // Every kept file is compared: a file without a line fails here rather
    // than being skipped.
    let files = files_in(&corpus, &["EXPECTED", "README.md"]);
    assert_eq!(files.iter().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "corpus files and EXPECTED differ");
    assert!(files.len() >= 20, "only {} corpus files", files.len());

    let (dir, said) = reader_outcomes(&corpus, &files);
    let mut problems = Vec::new();
    for f in &files {
        if !agrees(&said[f], &want[f]) {
            problems.push(format!("{f}: EXPECTED says `{}`, the reader from FORMAT.md `{}`", want[f], said[f]));
        }
    }
    problems.extend(against_pagelog(&dir, &said, false));
    assert!(problems.is_empty(), "FORMAT.md and pagelog disagree (issue 9, item 4):\n{}", problems.join("\n"));
}

#[test]
fn the_spec_reader_disagrees_with_pagelog_only_as_documented() {
    let cases = root().join("tests/spec_reader/cases");
    let files = files_in(&cases, &[]);
    let listed: Vec<&str> = KNOWN_DISAGREEMENTS
        .iter()
        .map(|k| k.0)
        .chain(SETTLED.iter().map(|k| k.0))
        .chain(FORMAT4_AGREED.iter().map(|k| k.0))
        .collect();
    for f in &files {
        assert!(listed.contains(&f.as_str()), "{f}: a case without its line in KNOWN_DISAGREEMENTS or SETTLED");
    }
    for k in &listed {
        assert!(files.iter().any(|f| f == k), "{k}: listed, but not in {}", cases.display());
    }
    let (dir, said) = reader_outcomes(&cases, &files);
    let mut problems = against_pagelog(&dir, &said, true);
    for (f, want, why) in SETTLED.iter().chain(FORMAT4_AGREED) {
        if said[*f] != *want {
            problems.push(format!("{f}: settled ({why}) as `{want}`, the reader now says `{}`", said[*f]));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Format 4 (FORMAT.md, "Format 4"): the reader reads every version of every
/// format-4 file (kept corpus and cases) page for page as pagelog does —
/// through the control state, references below the boundary redirected
/// through the base tree — or agrees that it is reclaimed, absent or damaged.
#[test]
fn the_spec_reader_reads_every_version_of_format_4_logs_as_pagelog_does() {
    let python = python3();
    let script = root().join("tests/spec_reader/spec_reader.py");
    let mut checked = 0;
    for dir in [root().join("vfs/tests/corpus"), root().join("tests/spec_reader/cases")] {
        for f in files_in(&dir, &[]).into_iter().filter(|f| f.starts_with("format4-") || f.starts_with("f4-")) {
            // A known disagreement on which version is the latest: not comparable version by version.
            let open_words = |o: &str| o.rsplit_once(' ').map(|(a, _)| a.to_string());
            if KNOWN_DISAGREEMENTS.iter().any(|(n, r, p, _)| *n == f && open_words(r) != open_words(p)) {
                continue;
            }
            let tmp = TempDir::new("spec-reader-pages");
            std::fs::copy(dir.join(&f), tmp.path(&f)).unwrap();
            let out = Command::new(&python).arg(&script).arg("--pages").arg(&f).current_dir(&tmp.0).output().unwrap();
            assert!(out.status.success(), "spec_reader.py --pages {f}: {}", String::from_utf8_lossy(&out.stderr));
            let said = String::from_utf8_lossy(&out.stdout);
            let reader = said.trim().split_once(' ').map_or("", |(_, w)| w).to_string();
            let real = pagelog_pages(&tmp.path(&f));
            assert_eq!(reader, real, "{f}: the reader from FORMAT.md and pagelog read its versions differently");
            checked += 1;
        }
    }
    assert!(checked >= 7, "only {checked} format-4 files");
}

/// `pagelog log` on format-4 files (kept corpus and cases): the versions
/// listed ([`pagelog::Readable::listing`]) and whether damage was met (its
/// exit code) are the reader's `readable` and `damage_met` (FORMAT.md,
/// "Reading a damaged log" and its format-4 additions: D10, D13, D15).
#[test]
fn the_spec_reader_lists_the_readable_versions_of_format_4_logs_as_pagelog_log_does() {
    let python = python3();
    let script = root().join("tests/spec_reader/spec_reader.py");
    let mut problems = Vec::new();
    let mut checked = 0;
    for dir in [root().join("vfs/tests/corpus"), root().join("tests/spec_reader/cases")] {
        for f in files_in(&dir, &[]).into_iter().filter(|f| f.starts_with("format4-") || f.starts_with("f4-")) {
            let tmp = TempDir::new("spec-reader-readable");
            std::fs::copy(dir.join(&f), tmp.path(&f)).unwrap();
            let out = Command::new(&python).arg(&script).arg(&f).current_dir(&tmp.0).output().unwrap();
            assert!(out.status.success(), "spec_reader.py {f}: {}", String::from_utf8_lossy(&out.stderr));
            let json = String::from_utf8_lossy(&out.stdout);
            let reader = reader_listing(&json);
            let real = pagelog_listing(&tmp.path(&f));
            if reader != real {
                problems.push(format!("{f}: `pagelog log` lists {real}, the reader from FORMAT.md {reader}"));
            }
            checked += 1;
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(checked >= 12, "only {checked} format-4 files");
}

/// The reader's `"pages": {"1": "crc", ...}` in `--pages` words: `1:crc 2:crc ...`.
fn json_pages(json: &str) -> String {
    let at = json.find("\"pages\": {").unwrap_or_else(|| panic!("no pages in {json}"));
    let rest = &json[at + 10..];
    let body = &rest[..rest.find('}').unwrap()];
    let mut v: Vec<(u64, String)> = body
        .split(", ")
        .filter(|x| !x.is_empty())
        .map(|kv| {
            let (k, w) = kv.split_once(": ").unwrap();
            (k.trim_matches('"').parse().unwrap(), w.trim_matches('"').to_string())
        })
        .collect();
    v.sort();
    v.iter().map(|(n, w)| format!("{n}:{w}")).collect::<Vec<_>>().join(" ")
}

/// Issue 25, item 5: the corpus README's tables say, in their last column,
/// what `EXPECTED` says of each file (one row a file).
#[test]
fn the_corpus_readme_says_what_expected_says() {
    let corpus = root().join("vfs/tests/corpus");
    let want = manifest(&corpus);
    let text = std::fs::read_to_string(corpus.join("README.md")).expect("read README.md");
    let mut rows: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("| `")) {
        let cols: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        let name = cols[0].trim_matches('`').to_string();
        let said = cols.last().unwrap().to_string();
        assert!(rows.insert(name.clone(), said).is_none(), "{name}: two rows in the corpus README");
    }
    let mut problems = Vec::new();
    for (name, outcome) in &want {
        match rows.get(name) {
            None => problems.push(format!("{name}: no row in the corpus README")),
            Some(said) if said != outcome => {
                problems.push(format!("{name}: the README says `{said}`, EXPECTED `{outcome}`"))
            }
            Some(_) => {}
        }
    }
    for name in rows.keys().filter(|n| !want.contains_key(*n)) {
        problems.push(format!("{name}: a README row for a file EXPECTED does not list"));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn agreement_ignores_only_a_missing_verdict() {
    assert!(agrees("opens 8 clean", "opens 8 clean"));
    assert!(agrees("opens 8 damaged", "opens 8"));
    assert!(agrees("refused damaged", "refused"));
    assert!(!agrees("opens 8 clean", "opens 8 damaged"));
    assert!(!agrees("opens 7 clean", "opens 8"));
    assert!(!agrees("refused clean", "opens 0"));
}

/// ALIGNED records (FORMAT.md, "Aligned page images"): format-4 logs
/// written by pagelog with aligned loads, spills and (under a policy, pages
/// below 4096) aligned one-page commits, and damaged variants of each — a
/// gap byte flipped (the trailer crc fails), a gap byte set with the record
/// re-sealed (the crc checks out, the gap is not zeros), the file cut or
/// zeroed from inside a gap, the flag cleared and re-sealed (the layout
/// moves) — are read by the reader from FORMAT.md as by pagelog: the same
/// outcome (`opens N clean|damaged`, `refused ...`), every version's pages
/// and the versions `pagelog log` lists.
#[test]
fn the_spec_reader_reads_aligned_logs_and_their_damaged_variants_as_pagelog_does() {
    let src = TempDir::new("spec-reader-aligned-src");
    let mut files: Vec<String> = Vec::new();
    for (ps, policy) in [(1024usize, true), (4096, false), (65536, false)] {
        let name = format!("aligned-ps{ps}.log");
        let path = src.path(&name);
        aligned::write_log(&path, ps, policy);
        let b = std::fs::read(&path).unwrap();
        let recs = aligned::records(&b);
        let aligned_recs: Vec<&aligned::Record> =
            recs.iter().filter(|r| pagelog::format::is_aligned(r.h.kind, r.h.flags)).collect();
        assert!(aligned_recs.len() >= 3, "{name}: only {} aligned records", aligned_recs.len());
        let with_gap: Vec<&&aligned::Record> = aligned_recs.iter().filter(|r| r.gap() >= 16).collect();
        // The first aligned record (claimed: a load synced), the last
        // aligned COMMIT and the first aligned SPILL, where they have a gap.
        let mut picks: Vec<(&str, aligned::Record)> = Vec::new();
        if let Some(r) = with_gap.first() {
            picks.push(("first", ***r));
        }
        let commit = pagelog::format::KIND_COMMIT;
        if let Some(r) = with_gap.iter().rev().find(|r| r.h.kind == commit) {
            picks.push(("last-commit", ***r));
        }
        if let Some(r) = with_gap.iter().find(|r| r.h.kind == pagelog::format::KIND_SPILL) {
            picks.push(("spill", ***r));
        }
        assert!(picks.len() >= 2, "{name}: too few aligned records with a gap");
        files.push(name.clone());
        for (which, r) in picks {
            let mid = (r.offset + (r.lay.meta_end + r.lay.payload_start) / 2) as usize;
            let stem = format!("aligned-ps{ps}-{which}");
            let mut v = b.clone();
            v[mid] ^= 0x20;
            std::fs::write(src.path(&format!("{stem}-gap-byte-flipped.log")), &v).unwrap();
            aligned::reseal(&mut v, &r);
            std::fs::write(src.path(&format!("{stem}-gap-byte-resealed.log")), &v).unwrap();
            std::fs::write(src.path(&format!("{stem}-cut-in-gap.log")), &b[..mid]).unwrap();
            let mut v = b.clone();
            v[mid..].fill(0);
            std::fs::write(src.path(&format!("{stem}-zeros-from-gap.log")), &v).unwrap();
            let mut v = b.clone();
            v[r.offset as usize + pagelog::format::RH_FLAGS] &= !pagelog::format::aligned_bit(r.h.kind);
            aligned::reseal(&mut v, &r);
            std::fs::write(src.path(&format!("{stem}-flag-cleared.log")), &v).unwrap();
            for s in ["gap-byte-flipped", "gap-byte-resealed", "cut-in-gap", "zeros-from-gap", "flag-cleared"] {
                files.push(format!("{stem}-{s}.log"));
            }
        }
    }
    let (dir, said) = reader_outcomes(&src.0, &files);
    let mut problems = against_pagelog(&dir, &said, false);
    // Not all alike: damage (a claimed record) and torn tails both occur.
    let damaged = said.values().filter(|o| o.ends_with("damaged")).count();
    assert!(damaged > 0 && damaged < said.len(), "outcomes: {said:?}");
    let python = python3();
    let script = root().join("tests/spec_reader/spec_reader.py");
    for f in &files {
        let out = Command::new(&python).arg(&script).arg("--pages").arg(f).current_dir(&dir.0).output().unwrap();
        assert!(out.status.success(), "spec_reader.py --pages {f}: {}", String::from_utf8_lossy(&out.stderr));
        let words = String::from_utf8_lossy(&out.stdout);
        let reader = words.trim().split_once(' ').map_or("", |(_, w)| w).to_string();
        let real = pagelog_pages(&dir.path(f));
        if reader != real {
            problems.push(format!("{f}: pages: pagelog `{real}`, the reader `{reader}`"));
        }
        let out = Command::new(&python).arg(&script).arg(f).current_dir(&dir.0).output().unwrap();
        let json = String::from_utf8_lossy(&out.stdout);
        let reader = reader_listing(&json);
        let real = pagelog_listing(&dir.path(f));
        if reader != real {
            problems.push(format!("{f}: `pagelog log` lists {real}, the reader {reader}"));
        }
    }
    assert!(problems.is_empty(), "FORMAT.md and pagelog disagree on aligned records:\n{}", problems.join("\n"));
}

/// Writing and editing logs with ALIGNED records, for the test above.
mod aligned {
    use std::path::Path;
    use std::time::Duration;

    use pagelog::format::{self, RecordHeader};
    use pagelog::retention::Policy;
    use pagelog::{Durability, Log, OpenOptions};

    const T: Duration = Duration::from_secs(5);

    #[derive(Debug, Clone, Copy)]
    pub struct Record {
        pub offset: u64,
        pub h: RecordHeader,
        pub lay: format::Layout,
    }

    impl Record {
        pub fn gap(&self) -> u64 {
            self.lay.payload_start - self.lay.meta_end
        }
    }

    fn salt_and_format(b: &[u8]) -> (u64, u32) {
        let h = format::Header::decode(&b[..format::HEADER_SIZE]).expect("a log header");
        (h.salt, h.format)
    }

    /// The records from 512 on, back to back, up to the first bytes that
    /// are not a record header.
    pub fn records(b: &[u8]) -> Vec<Record> {
        let (salt, fmt) = salt_and_format(b);
        let mut out = Vec::new();
        let mut pos = format::FIRST_RECORD;
        while pos as usize + format::RECORD_HEADER_SIZE <= b.len() {
            let Some(h) = RecordHeader::decode(salt, &b[pos as usize..]) else { break };
            let entries = if h.kind == format::KIND_COMMIT {
                let at = pos as usize + format::RECORD_HEADER_SIZE + format::CI_ENTRIES;
                u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
            } else {
                0
            };
            let lay =
                format::layout_with_flags(fmt, pos, h.kind, h.flags, entries, h.frames, h.page_size, h.patch_words);
            out.push(Record { offset: pos, h, lay });
            pos += h.length;
        }
        out
    }

    /// Re-seals record `r` of `b` after an edit: its header crc, then its
    /// trailer crc over its metadata (the gap included) as laid out by its
    /// flags now.
    pub fn reseal(b: &mut [u8], r: &Record) {
        let (salt, fmt) = salt_and_format(b);
        let o = r.offset as usize;
        let crc = format::salted_crc(salt, &[&b[o..o + format::RH_CRC]]);
        b[o + format::RH_CRC..o + format::RH_CRC + 4].copy_from_slice(&crc.to_le_bytes());
        let flags = b[o + format::RH_FLAGS];
        let entries = if r.h.kind == format::KIND_COMMIT {
            let at = o + format::RECORD_HEADER_SIZE + format::CI_ENTRIES;
            u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
        } else {
            0
        };
        let lay = format::layout_with_flags(
            fmt,
            r.offset,
            r.h.kind,
            flags,
            entries,
            r.h.frames,
            r.h.page_size,
            r.h.patch_words,
        );
        // The trailer stays where it was (the length field is unchanged):
        // a record whose layout moved no longer matches its length.
        let t = o + r.h.length as usize - format::TRAILER_SIZE;
        let meta = b[o..o + lay.payload_start as usize].to_vec();
        format::encode_trailer(salt, r.offset, &meta, &mut b[t..t + format::TRAILER_SIZE]);
    }

    fn commit(log: &Log, spill: usize, writes: &[(u64, Vec<u8>)], d: Durability) {
        let _w = log.lock_writer(T).unwrap();
        let base = log.prepare_write().unwrap();
        let mut txn = log.begin(base, spill);
        for (at, data) in writes {
            txn.write(log, *at, data).unwrap();
        }
        log.commit(txn, d).unwrap().expect("a version");
    }

    /// A format-4 log of `ps`-byte pages: a load of 40 pages (synced), one-
    /// and three-page commits, a patch, transactions of 40 pages that spill
    /// 34, a last commit of 33 pages, and (`policy`) a retention policy
    /// from the third version on; the last three commits not synced (no
    /// MARK: the log is left as a crash would, so damage to them is a torn
    /// tail).
    pub fn write_log(path: &Path, ps: usize, policy: bool) {
        let log = Log::open(path, OpenOptions { create: true, format4: true, ..Default::default() }).unwrap();
        let mut seed = ps as u64;
        let mut bytes = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (seed >> 33) as u8
                })
                .collect()
        };
        let pages = |from: usize, to: usize, bytes: &mut dyn FnMut(usize) -> Vec<u8>| -> Vec<(u64, Vec<u8>)> {
            (from..to).map(|p| ((p * ps) as u64, bytes(ps))).collect()
        };
        commit(&log, 1 << 30, &pages(0, 40, &mut bytes), Durability::Full);
        commit(&log, 1 << 30, &pages(5, 6, &mut bytes), Durability::Full);
        if policy {
            log.set_retention(Policy { versions: Some(1000), age_secs: None, bytes: None }, T).unwrap();
        }
        commit(&log, 1 << 30, &pages(7, 10, &mut bytes), Durability::Full);
        commit(&log, 33 * ps, &pages(0, 40, &mut bytes), Durability::Full);
        commit(&log, 1 << 30, &[((2 * ps + 40) as u64, bytes(10))], Durability::Full);
        commit(&log, 1 << 30, &pages(11, 12, &mut bytes), Durability::Normal);
        commit(&log, 33 * ps, &pages(2, 42, &mut bytes), Durability::Normal);
        commit(&log, 1 << 30, &pages(0, 33, &mut bytes), Durability::Normal);
        drop(log);
        // The close synced and wrote a MARK after the last commit: as if
        // power failed before that MARK, nothing claims the last three.
        let mut b = std::fs::read(path).unwrap();
        let recs = records(&b);
        let last = recs.last().expect("records");
        if last.h.kind == format::KIND_MARK {
            b[last.offset as usize..(last.offset + last.h.length) as usize].fill(0);
            std::fs::write(path, &b).unwrap();
        }
    }
}

/// Summary commits (FORMAT.md, "Summary commits"): on logs whose long-lived
/// writer wrote summaries, and on damaged variants — a summary's entry
/// table flipped (no record there), a summary naming the checkpoint before
/// its own or a CONTROL record not in force, an entry moved to a page it
/// does not list (each re-sealed and re-chained so that the history after
/// it chains), the log cut right after a summary — the reader from
/// FORMAT.md reaches pagelog's outcome, reads every version's pages as
/// pagelog does, and lists the versions `pagelog log` lists.
#[test]
fn the_spec_reader_reads_summaries_and_damaged_summaries_as_pagelog_does() {
    let src = TempDir::new("spec-reader-summaries-src");
    let path = src.path("sum-intact.log");
    summaries::write_log(&path);
    let b = std::fs::read(&path).unwrap();
    let recs = summaries::records(&b);
    let sums: Vec<&summaries::Record> =
        recs.iter().filter(|r| r.h.flags & pagelog::format::FLAG_SUMMARY != 0).collect();
    let cks: Vec<&summaries::Record> =
        recs.iter().filter(|r| r.h.flags & pagelog::format::FLAG_CHECKPOINT != 0).collect();
    assert!(sums.len() >= 2 && cks.len() >= 2, "summaries {} checkpoints {}", sums.len(), cks.len());
    let s = *sums.last().unwrap();
    let info = s.summary_info();
    let mut files = vec!["sum-intact.log".to_string()];
    let mut put = |name: &str, v: &[u8]| {
        std::fs::write(src.path(name), v).unwrap();
        files.push(name.to_string());
    };
    // An entry byte flipped: the summary is no record.
    let mut v = b.clone();
    v[s.offset as usize + 48 + 56 + 5] ^= 0x08;
    put("sum-entry-byte-flipped.log", &v);
    // The checkpoint before its own (offset, crc, and `full map offset`).
    let older = cks[cks.len() - 2];
    let mut v = b.clone();
    summaries::rechain(&mut v, s.offset, |r| {
        r[info..info + 8].copy_from_slice(&older.offset.to_le_bytes());
        r[info + 8..info + 12].copy_from_slice(&older.crc.to_le_bytes());
        let fmo = 48 + pagelog::format::CI_FULL_MAP;
        r[fmo..fmo + 8].copy_from_slice(&older.offset.to_le_bytes());
    });
    put("sum-names-the-older-checkpoint.log", &v);
    // A CONTROL record not in force: the older checkpoint's copy.
    let older_ctl =
        recs.iter().rfind(|r| r.offset < older.offset && r.h.kind == pagelog::format::KIND_CONTROL).unwrap();
    let mut v = b.clone();
    summaries::rechain(&mut v, s.offset, |r| {
        r[info + 16..info + 24].copy_from_slice(&older_ctl.offset.to_le_bytes());
        r[info + 24..info + 28].copy_from_slice(&older_ctl.crc.to_le_bytes());
    });
    put("sum-names-an-older-control.log", &v);
    // An entry naming a frame moved to the page after it, which it does
    // not list (its own page then reads the checkpoint's slot).
    let ents = s.entries(&b);
    let db_pages = u32::from_le_bytes(b[s.offset as usize + 56..s.offset as usize + 60].try_into().unwrap());
    let k = (0..ents.len())
        .rev()
        .find(|&k| s.entry_offset(&b, k) != 0 && ents[k] < db_pages && ents.get(k + 1).is_none_or(|&n| n > ents[k] + 1))
        .expect("an entry naming a frame before an unlisted page");
    let mut v = b.clone();
    summaries::rechain(&mut v, s.offset, |r| {
        let at = 48 + 56 + 16 * k;
        r[at..at + 4].copy_from_slice(&(ents[k] + 1).to_le_bytes());
    });
    put("sum-entry-moved-to-an-unlisted-page.log", &v);
    // Cut right after the summary (its MARK and what follows gone).
    put("sum-cut-after-the-last-summary.log", &b[..(s.offset + s.h.length) as usize]);

    // One run of the reader a file (its JSON has the outcome, every
    // version's pages and the readable versions: each run reads every
    // version of a 18,000-page database).
    let python = python3();
    let script = root().join("tests/spec_reader/spec_reader.py");
    let mut said = BTreeMap::new();
    let mut problems = Vec::new();
    for f in &files {
        let out = Command::new(&python).arg(&script).arg(f).current_dir(&src.0).output().unwrap();
        assert!(out.status.success(), "spec_reader.py {f}: {}", String::from_utf8_lossy(&out.stderr));
        let json = String::from_utf8_lossy(&out.stdout);
        let opens = json.contains("\"opens\": true");
        let outcome = format!(
            "{}{}",
            if opens { format!("opens {} ", json_word(&json, "latest")) } else { "refused ".into() },
            if json.contains("\"verify\": \"clean\"") { "clean" } else { "damaged" }
        );
        let real = pagelog_outcome(&src.path(f));
        if outcome != real {
            problems.push(format!("{f}: pagelog says `{real}`, the reader from FORMAT.md `{outcome}`"));
        }
        said.insert(f.clone(), outcome);
        let reader = if opens { json_pages(&json) } else { "refused".into() };
        let real = pagelog_pages(&src.path(f));
        if reader != real {
            let diff: Vec<String> = reader
                .split(' ')
                .zip(real.split(' '))
                .filter(|(a, b)| a != b)
                .take(5)
                .map(|(a, b)| format!("reader {a} pagelog {b}"))
                .collect();
            problems.push(format!("{f}: pages differ: {diff:?}"));
        }
        let reader = reader_listing(&json);
        let real = pagelog_listing(&src.path(f));
        if reader != real {
            problems.push(format!("{f}: `pagelog log` lists {real}, the reader {reader}"));
        }
    }
    println!("{said:?}");
    assert!(problems.is_empty(), "FORMAT.md and pagelog disagree on summaries:\n{}", problems.join("\n"));
    // Not all alike: the intact log is clean, the damaged ones are not.
    assert!(said["sum-intact.log"].ends_with("clean"), "{said:?}");
    let damaged = said.values().filter(|o| o.ends_with("damaged")).count();
    assert!(damaged >= 4, "outcomes: {said:?}");
}

/// Writing and editing logs with summary commits, for the test above. (The
/// re-chaining is `vfs/tests/summaries.rs`'s: another crate.)
mod summaries {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::time::Duration;

    use pagelog::format::{self, RecordHeader};
    use pagelog::{Durability, Log, OpenOptions};

    const T: Duration = Duration::from_secs(5);
    const PS: usize = 512;
    /// max(pages / 64, 256) = 281 commits a checkpoint: a summary 256
    /// commits after each.
    const PAGES: u32 = 18_000;

    #[derive(Debug, Clone, Copy)]
    pub struct Record {
        pub offset: u64,
        pub h: RecordHeader,
        pub crc: u32,
        pub n_entries: usize,
    }

    impl Record {
        /// Where its summary info starts, from the record's start.
        pub fn summary_info(&self) -> usize {
            format::RECORD_HEADER_SIZE + format::COMMIT_INFO_SIZE + 16 * self.n_entries
        }
        /// Its `k`th entry's offset.
        pub fn entry_offset(&self, b: &[u8], k: usize) -> u64 {
            let at = self.offset as usize + format::RECORD_HEADER_SIZE + format::COMMIT_INFO_SIZE + 16 * k + 8;
            u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
        }
        /// The page numbers of its entries.
        pub fn entries(&self, b: &[u8]) -> Vec<u32> {
            let at = self.offset as usize + format::RECORD_HEADER_SIZE + format::COMMIT_INFO_SIZE;
            (0..self.n_entries)
                .map(|k| u32::from_le_bytes(b[at + 16 * k..at + 16 * k + 4].try_into().unwrap()))
                .collect()
        }
    }

    fn salt(b: &[u8]) -> u64 {
        format::Header::decode(&b[..format::HEADER_SIZE]).expect("a log header").salt
    }

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    /// The records from 512 on, back to back.
    pub fn records(b: &[u8]) -> Vec<Record> {
        let salt = salt(b);
        let mut out = Vec::new();
        let mut pos = format::FIRST_RECORD as usize;
        while pos + format::RECORD_HEADER_SIZE <= b.len() {
            let Some(h) = RecordHeader::decode(salt, &b[pos..]) else { break };
            let end = pos + h.length as usize;
            if end > b.len() {
                break;
            }
            let n_entries = if h.kind == format::KIND_COMMIT {
                u32_at(b, pos + format::RECORD_HEADER_SIZE + format::CI_ENTRIES) as usize
            } else {
                0
            };
            let crc = u32_at(b, end - 4);
            out.push(Record { offset: pos as u64, h, crc, n_entries });
            pos = end;
        }
        out
    }

    /// The metadata length of record `r` (what its trailer crc covers).
    fn meta_len(b: &[u8], r: &Record) -> usize {
        let body = r.offset as usize + format::RECORD_HEADER_SIZE;
        match r.h.kind {
            format::KIND_CONTROL => {
                format::control_layout(&format::ControlInfo::decode(&b[body..]).unwrap()).payload_start as usize
            }
            format::KIND_INDEX => {
                format::index_layout(&format::IndexInfo::decode(&b[body..]).unwrap()).payload_start as usize
            }
            _ => {
                let h = &r.h;
                let n = r.n_entries as u32;
                format::layout_with_flags(4, r.offset, h.kind, h.flags, n, h.frames, h.page_size, h.patch_words)
                    .payload_start as usize
            }
        }
    }

    /// Applies `edit` to the record at `at` (its bytes), then re-seals it and
    /// every record after it so that the history chains as a writer's
    /// would: each `prev crc`, horizon crc and checkpoint- or summary-info
    /// crc naming a re-sealed record takes its new trailer crc.
    pub fn rechain(b: &mut [u8], at: u64, edit: impl FnOnce(&mut [u8])) {
        let salt = salt(b);
        let mut new_crc: BTreeMap<u64, u32> = BTreeMap::new();
        let mut edit = Some(edit);
        for mut r in records(b).into_iter().filter(|r| r.offset >= at) {
            let (pos, len) = (r.offset as usize, r.h.length as usize);
            if r.offset == at {
                (edit.take().unwrap())(&mut b[pos..pos + len]);
            }
            if let Some(&c) = new_crc.get(&r.h.prev_commit) {
                r.h.prev_crc = c;
            }
            r.h.encode(salt, &mut b[pos..pos + format::RECORD_HEADER_SIZE]);
            let body = pos + format::RECORD_HEADER_SIZE;
            if r.h.kind == format::KIND_COMMIT {
                if let Some(&c) = new_crc.get(&u64_at(b, body + format::CI_HORIZON_OFFSET)) {
                    b[body + format::CI_HORIZON_CRC..body + format::CI_HORIZON_CRC + 4]
                        .copy_from_slice(&c.to_le_bytes());
                }
                let tail = pos + r.summary_info();
                let links: &[(usize, usize)] = if r.h.flags & format::FLAG_SUMMARY != 0 {
                    &[(format::SM_CHECKPOINT, format::SM_CHECKPOINT_CRC), (format::SM_CONTROL, format::SM_CONTROL_CRC)]
                } else if r.h.flags & format::FLAG_CHECKPOINT != 0 {
                    &[(format::CK_INDEX, format::CK_INDEX_CRC), (format::CK_CONTROL, format::CK_CONTROL_CRC)]
                } else {
                    &[]
                };
                for &(o, c) in links {
                    if let Some(&n) = new_crc.get(&u64_at(b, tail + o)) {
                        b[tail + c..tail + c + 4].copy_from_slice(&n.to_le_bytes());
                    }
                }
            }
            let meta = meta_len(b, &r);
            let (head, rest) = b.split_at_mut(pos + len - format::TRAILER_SIZE);
            format::encode_trailer(salt, r.offset, &head[pos..pos + meta], &mut rest[..format::TRAILER_SIZE]);
            new_crc.insert(r.offset, format::trailer_crc(&rest[..format::TRAILER_SIZE]));
        }
    }

    fn page(p: u32, g: u32) -> Vec<u8> {
        let mut b = vec![0u8; PS];
        for run in b.chunks_mut(16) {
            run[0] = b'S';
            run[1..5].copy_from_slice(&p.to_le_bytes());
            run[5..9].copy_from_slice(&g.to_le_bytes());
        }
        b
    }

    /// A format-4 log of 18,000 pages of 512 bytes, of which pages 1–40,
    /// 17,990 and 18,000 are written: a load, then 560 commits of a page
    /// and page 1 (a few cut the database below 17,990 or grow it back
    /// writing its last page only), one in 32 synced: checkpoints at 1,
    /// ~282 and ~563 and a summary 256 commits after each.
    pub fn write_log(path: &Path) {
        let log = Log::open(path, OpenOptions { create: true, format4: true, ..Default::default() }).unwrap();
        let mut seed = 99u64;
        let mut rand = |n: u64| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        let mut pages = PAGES;
        for i in 0..560u32 {
            let _w = log.lock_writer(T).unwrap();
            let base = log.prepare_write().unwrap();
            let mut txn = log.begin(base, 1 << 20);
            let w = |p: u32, txn: &mut pagelog::txn::WriteTxn| {
                txn.write(&log, (p as u64 - 1) * PS as u64, &page(p, i)).unwrap();
            };
            let r = rand(100);
            if i == 0 {
                for p in (1..=40).chain([PAGES - 10, PAGES]) {
                    w(p, &mut txn);
                }
            } else if r < 2 && pages == PAGES {
                pages = PAGES - 20 - rand(20) as u32;
                txn.truncate(pages as u64 * PS as u64);
            } else if r < 5 && pages < PAGES {
                pages = PAGES;
                w(PAGES, &mut txn);
            } else {
                w(2 + rand(39) as u32, &mut txn);
                w(1, &mut txn);
            }
            let d = if i % 32 == 0 { Durability::Full } else { Durability::Normal };
            log.commit(txn, d).unwrap().expect("a version");
        }
    }
}
