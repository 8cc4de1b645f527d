//! Reading a damaged log (FORMAT.md, "Reading a damaged log"): every
//! version that recovery or a forward read from offset 512 can prove
//! intact, and the damage that keeps the others from being read. The
//! `pagelog` tools that read a log (`export`, `log`, `info`, `diff`,
//! `restore --plain`) are built on [`Readable`].
//!
//! Invariants:
//! 1. A version is readable when its commit and page map check out, found
//!    one of two ways: recovery's walk back from the latest version (`prev
//!    commit` links, each crc matching) with its map built from its full
//!    map (step 5), or the forward read from offset 512 (steps 3 and 4 from
//!    version 0, a claim that names no commit ending the read before the
//!    record that makes it). Its pages are still checked against their
//!    crcs when read.
//! 2. Every damage met is named (`Error::Corrupt`: offset, what was
//!    expected, what was found); a log where none is met reads exactly as
//!    `Log::open` reads it, by the same calls (no extra walk).
//! 3. What is not damage is not called so: where a forward read of a log
//!    that recovery refuses ends is reported apart (`Listing::forward_end`),
//!    since it may be an unfinished transaction after the damage.
//! 4. Nothing here writes; the log is opened read-only.
//! 5. Format 4 with retention (docs/format-4.md): bytes below the boundary
//!    `B` are freed, never damage, and never read as records. The forward
//!    read starts at `B` (recovery's control state), or, when recovery
//!    refuses the log, at the first record after the zeros at 512, which the
//!    newest CONTROL record in the file must then declare freed (else the
//!    zeros are damage). Versions below the oldest kept `Vo` are reclaimed:
//!    neither listed nor called damage (`Error::Reclaimed` names `Vo`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::{self, Entry};
use crate::history::{describe_link, CommitSummary, Prev};
use crate::log::{Link, Log, OpenOptions, Rec};
use crate::verify::Problem;
use crate::version::{Mapping, Version};

/// A log opened for reading whatever of it can be read.
pub struct Readable {
    log: Log,
    salt: u64,
    /// Why recovery refuses the log (it is then read forward from 512).
    recovery_error: Option<Problem>,
}

/// Where the forward read starts: offset 512 with no commit before it, or
/// (format 4) the boundary, after a commit that was freed.
struct Start {
    pos: u64,
    prev: Prev,
    /// The boundary the start relies on (512: none).
    boundary: u64,
    /// Recovery's oldest kept version (0: recovery did not say).
    oldest: u64,
    /// Recovery refused the log and the read starts after zeros at 512:
    /// the newest CONTROL record in the file must declare them freed.
    unproven_hole: bool,
    /// That record, if there is one.
    control: Option<Rec>,
    /// A version known durable before the read starts: recovery's horizon,
    /// or what the newest CONTROL record claims (a step syncs before it
    /// writes one). Commits up to it need not have their frames re-read,
    /// which for a patch based below the boundary would take redirection.
    durable: u64,
}

/// Every readable version of a log, and the damage met finding them.
pub struct Listing {
    /// Oldest first; version 0 (the empty database) is not listed.
    pub versions: Vec<CommitSummary>,
    /// Damage: recovery's error, the record at which the forward read from
    /// 512 ended before recovery's latest version, a `prev commit` link
    /// that does not check out, a page map that does not build.
    pub damage: Vec<Problem>,
    /// When recovery refuses the log: where the forward read from 512 ended
    /// (the damage, or an unfinished transaction after the last version).
    pub forward_end: Option<Problem>,
    recs: Vec<Rec>,
}

/// A version read from a [`Readable`] log, and the damage met on the way.
pub struct Read {
    pub version: Arc<Version>,
    pub damage: Vec<Problem>,
}

impl Listing {
    /// The versions, oldest first, as ranges: `[(1, 1), (257, 701)]`.
    pub fn ranges(&self) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = Vec::new();
        for v in &self.versions {
            match out.last_mut() {
                Some(r) if r.1 + 1 == v.version => r.1 = v.version,
                _ => out.push((v.version, v.version)),
            }
        }
        out
    }

    pub fn has(&self, n: u64) -> bool {
        self.versions.binary_search_by_key(&n, |v| v.version).is_ok()
    }
}

/// One commit a walk passed, and where its transaction's records start.
struct Step {
    rec: Rec,
    entries: Vec<Entry>,
    txn_start: u64,
}

impl Readable {
    /// Opens the log at `path` read-only: recovered, or, when recovery
    /// finds damage, ready to be read forward from 512. Fails only when the
    /// file is not a log, its header is damaged, or it cannot be read.
    pub fn open(path: &Path) -> Result<Readable> {
        let opts = OpenOptions { read_only: true, ..Default::default() };
        let (log, recovery_error) = match Log::open(path, opts) {
            Ok(log) => (log, None),
            Err(Error::Corrupt { offset, expected, found, .. }) => {
                (Log::open_unrecovered(path, opts)?, Some(Problem { offset, expected, found }))
            }
            Err(e) => return Err(e),
        };
        let salt = match log.header()? {
            Some(h) => h.salt,
            None if recovery_error.is_none() => 0, // an empty log: nothing to read
            None => {
                let p = recovery_error.expect("checked");
                return Err(log.corrupt(p.offset, p.expected, p.found));
            }
        };
        Ok(Readable { log, salt, recovery_error })
    }

    /// The log; recovered unless [`Readable::recovery_error`] says why not.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// FORMAT.md's log end (where the next record goes: past the MARK that
    /// may follow the latest commit); None when recovery refuses the log.
    pub fn log_end(&self) -> Option<u64> {
        match self.recovery_error {
            None => Some(self.log.lock().log_end),
            Some(_) => None,
        }
    }

    pub fn recovery_error(&self) -> Option<&Problem> {
        self.recovery_error.as_ref()
    }

    /// The latest version: recovery's, or, when recovery refuses the log,
    /// the newest the forward read from 512 reaches.
    pub fn latest(&self) -> Result<u64> {
        if self.recovery_error.is_none() {
            return Ok(self.log.refresh()?.number);
        }
        Ok(self.listing()?.versions.last().map_or(0, |v| v.version))
    }

    /// Version `n`. A log recovery opens reads it as `Log::version` does;
    /// when that meets damage (or recovery refused the log), from the
    /// commit the listing found. `Err`: `n` is not readable (the damage
    /// that hides it, or `NoSuchVersion`).
    pub fn version(&self, n: u64) -> Result<Read> {
        let first = match &self.recovery_error {
            None => match self.log.version(n) {
                Ok(v) => return Ok(Read { version: v, damage: Vec::new() }),
                Err(Error::Corrupt { offset, expected, found, .. }) => Problem { offset, expected, found },
                Err(e) => return Err(e),
            },
            Some(p) => p.clone(),
        };
        let listing = self.listing()?;
        let mut damage = listing.damage.clone();
        if !damage.iter().any(|d| d.offset == first.offset) {
            damage.insert(0, first.clone());
        }
        if n == 0 {
            let empty = Version::empty(format::MIN_PAGE_SIZE, Arc::new(Mapping::empty(self.log.path())));
            return Ok(Read { version: Arc::new(empty), damage });
        }
        let (oldest, _) = self.kept()?;
        if n < oldest {
            let latest = listing.versions.last().map_or(0, |v| v.version);
            return Err(Error::Reclaimed { path: self.log.path().to_path_buf(), version: n, oldest, latest });
        }
        match listing.recs.iter().find(|r| r.h.version == n) {
            Some(rec) => Ok(Read { version: self.log.version_of(self.salt, rec)?, damage }),
            None => Err(self.log.corrupt(first.offset, first.expected, first.found)),
        }
    }

    /// Format 4: the oldest version the retention policy keeps and the
    /// boundary (`(0, 512)`: nothing was reclaimed), as recovery found them
    /// or, when recovery refuses the log, as the forward read found them.
    pub fn kept(&self) -> Result<(u64, u64)> {
        if self.recovery_error.is_none() {
            self.log.refresh()?;
            let st = self.log.lock();
            return Ok(if st.control.redirects() {
                (st.control.info.oldest_version, st.control.boundary())
            } else {
                (0, format::FIRST_RECORD)
            });
        }
        let len = self.log.file_len()?;
        let start = self.start(len)?;
        Ok(start
            .control
            .filter(|c| c.control.boundary >= start.pos)
            .map_or((0, format::FIRST_RECORD), |c| (c.control.oldest_version, c.control.boundary)))
    }

    /// Where the forward read starts (see [`Start`]).
    fn start(&self, len: u64) -> Result<Start> {
        let log = &self.log;
        let mut s = Start {
            pos: format::FIRST_RECORD,
            prev: Prev::NONE,
            boundary: 0,
            oldest: 0,
            unproven_hole: false,
            control: None,
            durable: 0,
        };
        if log.format() < format::FORMAT_V4 {
            return Ok(s);
        }
        if self.recovery_error.is_none() {
            let st = log.lock();
            if !st.control.redirects() {
                return Ok(s);
            }
            s.pos = st.control.boundary();
            s.boundary = s.pos;
            s.oldest = st.control.info.oldest_version;
            s.durable = st.horizon.version;
        } else {
            // The first nonzero 8-byte word after 512 (the region below the
            // boundary reads as zeros once punched).
            let at = log.first_nonzero(format::FIRST_RECORD, len)?;
            if at == format::FIRST_RECORD || at >= len {
                return Ok(s);
            }
            s.pos = at;
            s.unproven_hole = true;
            s.control = log.newest_control(self.salt, len, at)?;
            if let Some(c) = s.control.as_ref().filter(|c| c.control.boundary >= at) {
                s.oldest = c.control.oldest_version;
                if c.h.flags & format::FLAG_CLAIM != 0 {
                    s.durable = c.prev_link().version;
                }
            }
        }
        if let Some(r) = log.read_record(self.salt, s.pos, len)? {
            let l = r.prev_link();
            s.prev = Prev { version: l.version, offset: l.offset, crc: l.crc };
        }
        Ok(s)
    }

    /// Every readable version (invariant 1) and the damage met.
    pub fn listing(&self) -> Result<Listing> {
        let mut out = Listing { versions: Vec::new(), damage: Vec::new(), forward_end: None, recs: Vec::new() };
        if self.recovery_error.is_none() && self.log.refresh()?.number == 0 {
            return Ok(out);
        }
        let len = self.log.file_len()?;
        let start = self.start(len)?;
        let (mut steps, mut end, end_pos, mut clean) = self.forward(len, &start)?;
        let mut oldest = start.oldest;
        if start.unproven_hole {
            // Recovery refused the log: the zeros at 512 are freed only if a
            // CONTROL record the read passed says so.
            match &start.control {
                Some(c) if c.control.boundary >= start.pos => {
                    oldest = c.control.oldest_version;
                    let mut st = self.log.lock();
                    // A damaged base tree is damage of the versions read
                    // through it, named here; the zeros are still freed and
                    // what the read passed is still listed.
                    if let Err(e) = self.log.install_control(&mut st, c, c.end()) {
                        out.damage.push(problem(e)?);
                    }
                }
                _ => {
                    out.damage.push(Problem {
                        offset: format::FIRST_RECORD,
                        expected: Prev::NONE.describe(),
                        found: format!("zero bytes up to {} that no CONTROL record declares freed", start.pos),
                    });
                    if steps.is_empty() {
                        // Nothing read: where it ended is the damage above.
                        end = None;
                        clean = true;
                    }
                }
            }
        }
        let latest = match &self.recovery_error {
            Some(p) => {
                out.damage.push(p.clone());
                out.forward_end = if clean { None } else { end.clone() };
                None
            }
            None => Some(self.log.latest()),
        };
        let mut chain = Vec::new();
        if let Some(l) = &latest {
            // Commits the forward read passed after recovery's latest are
            // not versions (a writer is appending, or recovery ended the log
            // before them).
            steps.retain(|s| s.rec.h.version <= l.number && s.rec.offset <= l.commit_offset);
            let reached = steps.last().is_some_and(|s| s.rec.offset == l.commit_offset && s.rec.crc == l.commit_crc);
            if !reached {
                out.damage.extend(end);
                let stop = (start.boundary.max(format::FIRST_RECORD), oldest);
                chain = self.back_from_latest(len, l, &steps, end_pos, stop, &mut out.damage)?;
            }
        }
        // The forward read's versions whose stated full map it passed.
        let fulls: HashMap<u64, u64> =
            steps.iter().filter(|s| s.rec.is_map_commit()).map(|s| (s.rec.offset, s.rec.h.version)).collect();
        let forward: Vec<(Rec, u64, Vec<Entry>)> = steps
            .into_iter()
            .filter(|s| s.rec.h.version >= oldest) // older ones were reclaimed
            .filter(|s| {
                let ok = fulls.get(&s.rec.info.full_map_offset).is_some_and(|&v| v <= s.rec.h.version);
                if !ok {
                    out.damage.push(Problem {
                        offset: s.rec.info.full_map_offset,
                        expected: format!(
                            "the full page map of version {} (named by its commit at {})",
                            s.rec.h.version, s.rec.offset
                        ),
                        found: "no full-map commit the forward read passed".into(),
                    });
                }
                ok && !chain.iter().any(|(c, ..): &(Rec, u64, Vec<Entry>)| c.h.version == s.rec.h.version)
            })
            .map(|s| (s.rec, s.txn_start, s.entries))
            .collect();
        let mut all: Vec<(Rec, u64, Vec<Entry>)> = forward.into_iter().chain(chain).collect();
        all.sort_by_key(|(r, ..)| r.h.version);
        for (rec, txn_start, entries) in all {
            // A checkpoint's entries are in its tree (Log::written_entries).
            let entries = match self.log.written_entries(&rec, txn_start, entries)? {
                Ok(e) => e,
                Err(d) => {
                    let expected = format!("{} (the index tree of version {})", d.expected, rec.h.version);
                    out.damage.push(Problem { offset: d.offset, expected, found: d.found });
                    Vec::new()
                }
            };
            out.versions.push(CommitSummary::of(&rec, txn_start, &entries));
            out.recs.push(rec);
        }
        let mut seen: Vec<u64> = Vec::new();
        out.damage.retain(|d| {
            let new = !seen.contains(&d.offset);
            seen.push(d.offset);
            new
        });
        Ok(out)
    }

    /// The forward read from offset 512: FORMAT.md recovery steps 3 and 4
    /// with version 0 as the start, except that a claim that names no
    /// commit ends the read before the record that makes it (instead of
    /// refusing the log). Returns the commits passed, why the read ended,
    /// the offset of the record it ended at, and whether that is a clean
    /// end (zeros or the end of the file right after a commit).
    /// Format 4: the read starts at `start` (the boundary).
    fn forward(&self, len: u64, start: &Start) -> Result<(Vec<Step>, Option<Problem>, u64, bool)> {
        let log = &self.log;
        let salt = self.salt;
        let mut steps: Vec<Step> = Vec::new();
        let mut pos = start.pos;
        let mut prev = start.prev;
        let mut prev_ps = 0u32;
        let mut txn_start = pos;
        let mut marked = false;
        let mut durable = start.durable;
        let mut clean = false;
        // The last INDEX record since the previous commit (format 4).
        let mut index: Option<(u64, u32)> = None;
        let end = loop {
            let Some(rec) = log.read_record(salt, pos, len)? else {
                let p = log.describe_bad_record(salt, pos, len, &prev)?;
                // Zeros or the end of the file right after a commit: where a
                // log ends, damage only if recovery's latest lies further on.
                let nothing = p.found == "zero bytes" || p.found.starts_with("the end of the file");
                clean = nothing && txn_start == pos;
                break Some(p);
            };
            let stop = |expected: String, found: String| Some(Problem { offset: pos, expected, found });
            if rec.h.kind == format::KIND_MARK {
                // A MARK follows the commit it names directly, once.
                if prev.offset == 0 || marked || pos != txn_start || !prev.follows(&rec) {
                    break stop(prev.describe(), describe_link(&rec));
                }
                durable = durable.max(prev.version);
                marked = true;
                pos = rec.end();
                txn_start = pos;
                continue;
            }
            if !prev.follows(&rec) {
                break stop(prev.describe(), describe_link(&rec));
            }
            if rec.is_control() && rec.h.flags & format::FLAG_CLAIM != 0 {
                durable = durable.max(prev.version); // a step synced first
            }
            if rec.is_control() && rec.h.flags & format::FLAG_CLAIM != 0 && pos == txn_start {
                // Between commits, as a MARK (the log may end after it). One
                // without CLAIM is a checkpoint's own, part of its
                // transaction (its bytes are the checkpoint's, as in
                // `Log::history`).
                pos = rec.end();
                txn_start = pos;
                continue;
            }
            if !rec.is_commit() {
                if rec.is_index() {
                    index = Some((rec.offset, rec.crc));
                }
                pos = rec.end();
                continue;
            }
            // (A read from the boundary takes the record there as it names
            // its commit, even none: that record is a reclaimed version's.)
            if prev.offset == 0 && start.pos == format::FIRST_RECORD && !rec.is_map() {
                break stop("a full page map (the first commit of a log)".into(), "a delta".into());
            }
            if prev_ps != 0 && !rec.is_map() && rec.h.page_size != prev_ps {
                break stop(
                    format!("page size {prev_ps} (a delta keeps its predecessor's)"),
                    rec.h.page_size.to_string(),
                );
            }
            // Step 3 ends before a checkpoint that does not name its
            // transaction's INDEX and CONTROL records; a full map without its
            // CONTROL record starts no map that builds (step 5). But for the
            // map commit right at the boundary of a reclaimed version (a step
            // puts `B` at the commit before the oldest kept version's
            // checkpoint, which may be a checkpoint itself): its
            // transaction's records lay below `B` and were freed with its
            // version (FORMAT.md, "Reading a damaged format-4 log"), as
            // verify takes it (`verify/walk.rs`).
            let reclaimed_at_b = start.pos > format::FIRST_RECORD && pos == start.pos && rec.h.version < start.oldest;
            let links =
                if reclaimed_at_b { index.take().and(None) } else { log.map_links(salt, len, &rec, index.take())? };
            if let Some(p) = links {
                break Some(p);
            }
            let entries = log.read_entries(&rec)?;
            if let Err(e) = log.check_map_structure(&rec, &entries, len) {
                break Some(problem(e)?);
            }
            let claim = if rec.h.flags & format::FLAG_SEALED != 0 { rec.link() } else { rec.horizon() };
            // A claim of a commit before where the read started (a freed
            // region's) cannot be checked, and is not damage.
            // (A read from 512 has no such commit: a claim of version 0 with
            // an offset or crc, or at an offset below 512, names none.)
            let before_start =
                start.pos > format::FIRST_RECORD && claim.offset < start.pos && claim.version <= start.prev.version;
            if claim != Link::default() && claim.version <= rec.h.version && !before_start {
                let named = if claim.version == rec.h.version {
                    rec.link()
                } else {
                    steps.iter().rfind(|s| s.rec.h.version == claim.version).map_or(Link::default(), |s| s.rec.link())
                };
                if named != claim {
                    break Some(Problem {
                        offset: rec.offset + (format::RECORD_HEADER_SIZE + format::CI_HORIZON_VERSION) as u64,
                        expected: format!(
                            "a horizon naming an earlier commit of this log exactly (version {})",
                            rec.h.version
                        ),
                        found: format!(
                            "version {} at offset {} with crc {:#010x}: no such commit",
                            claim.version, claim.offset, claim.crc
                        ),
                    });
                }
                durable = durable.max(claim.version);
            }
            prev = Prev::of(&rec);
            prev_ps = rec.h.page_size;
            pos = rec.end();
            steps.push(Step { rec, entries, txn_start });
            txn_start = pos;
            marked = false;
        };
        // Step 4: the commits no record claims durable must have every frame
        // their transaction wrote.
        // Reclaimed versions (format 4) are not read: their frames may be
        // based in the freed region.
        if let Some(first) = steps.iter().position(|s| s.rec.h.version > durable.max(start.oldest.saturating_sub(1))) {
            for i in first..steps.len() {
                let s = &steps[i];
                if let Some((offset, expected, found)) = log.check_unclaimed_commit(&s.rec, &s.entries, s.txn_start)? {
                    let at = steps[i].rec.offset;
                    steps.truncate(i);
                    return Ok((steps, Some(Problem { offset, expected, found }), at, false));
                }
            }
        }
        Ok((steps, end, pos, clean))
    }

    /// The commits recovery's walk back from `latest` reaches (before it
    /// meets one the forward read passed) whose page maps build, oldest
    /// first, each with where its transaction starts and its entries.
    fn back_from_latest(
        &self,
        len: u64,
        latest: &Version,
        forward: &[Step],
        forward_end: u64,
        (boundary, oldest): (u64, u64),
        damage: &mut Vec<Problem>,
    ) -> Result<Vec<(Rec, u64, Vec<Entry>)>> {
        let log = &self.log;
        let salt = self.salt;
        let mut chain: Vec<Rec> = Vec::new();
        let mut want = Link { version: latest.number, offset: latest.commit_offset, crc: latest.commit_crc };
        loop {
            if forward.iter().any(|s| s.rec.link() == want) {
                break;
            }
            if want.offset < boundary || want.version < oldest {
                break; // reclaimed (format 4): freed, not damage
            }
            let rec = match log.read_record(salt, want.offset, len)? {
                Some(r) if r.is_commit() && r.link() == want => r,
                // The record where the forward read ended: named already.
                _ if want.offset == forward_end => break,
                _ => {
                    let by = chain.last().map_or("recovery".to_string(), |c| format!("the commit at {}", c.offset));
                    damage.push(Problem {
                        offset: want.offset,
                        expected: format!(
                            "the commit of version {} (crc {:#010x}) named by {by}",
                            want.version, want.crc
                        ),
                        found: "no such commit".into(),
                    });
                    break;
                }
            };
            let next = rec.prev_link();
            let first = rec.h.prev_commit == 0;
            chain.push(rec);
            if first {
                break; // the first commit of the file
            }
            if next.offset >= want.offset {
                damage.push(Problem {
                    offset: want.offset,
                    expected: format!("a commit before version {} at an offset below {}", want.version, want.offset),
                    found: format!("offset {}", next.offset),
                });
                break;
            }
            want = next;
        }
        chain.reverse();
        // Which maps build: one walk by length from each full map named
        // (step 5), advanced as the chain goes on.
        let mut paths: HashMap<u64, MapPath> = HashMap::new();
        let mut out = Vec::new();
        for (i, rec) in chain.iter().enumerate() {
            let fo = rec.info.full_map_offset;
            let path = match paths.entry(fo) {
                std::collections::hash_map::Entry::Occupied(p) => p.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => v.insert(MapPath::start(log, salt, len, fo, rec)?),
            };
            if let Err(p) = path.reach(log, salt, len, rec)? {
                if p.offset != forward_end {
                    damage.push(p);
                }
                continue;
            }
            let txn_start = match i.checked_sub(1).map(|j| &chain[j]) {
                Some(p) => self.after(len, p)?,
                None => match log.read_record(salt, rec.h.prev_commit, len)? {
                    Some(p) if p.is_commit() && p.link() == rec.prev_link() => self.after(len, &p)?,
                    // The commit before it cannot be read: count its own record only.
                    _ => rec.offset,
                },
            };
            let entries = log.read_entries(rec)?;
            out.push((rec.clone(), txn_start, entries));
        }
        Ok(out)
    }

    /// Where the transaction after commit `p` starts: its end, or past the
    /// MARK that follows it.
    fn after(&self, len: u64, p: &Rec) -> Result<u64> {
        Ok(match self.log.read_record(self.salt, p.end(), len)? {
            Some(m) if m.h.kind == format::KIND_MARK && m.prev_link() == p.link() => m.end(),
            _ => p.end(),
        })
    }
}

/// Step 5's walk from one full map, by record length, as far as the
/// commits asked about: `reach(rec)` is Ok when `rec`'s map builds.
struct MapPath {
    /// The last commit the walk passed, and the position after it.
    last: Option<Rec>,
    pos: u64,
    /// Why the walk cannot go on.
    broken: Option<Problem>,
}

impl MapPath {
    fn start(log: &Log, salt: u64, len: u64, fo: u64, rec: &Rec) -> Result<MapPath> {
        let mut p = MapPath { last: None, pos: 0, broken: None };
        let mut named = log.read_record(salt, fo, len)?;
        // A summary (FORMAT.md, "Step 5, from a summary"): the path starts
        // at it when its links check out, else at its chain's checkpoint.
        if let Some(s) = named.clone().filter(|s| s.is_summary() && s.h.version <= rec.h.version) {
            match log.summary_links(salt, len, &s)? {
                Ok(_) => {
                    let entries = log.read_entries(&s)?;
                    match log.check_map_structure(&s, &entries, len) {
                        Ok(()) => {
                            p.pos = s.end();
                            p.last = Some(s);
                        }
                        Err(e) => p.broken = Some(problem(e)?),
                    }
                    return Ok(p);
                }
                Err(ck) => named = ck,
            }
        }
        match named {
            Some(full) if full.is_commit() && full.is_map() && full.h.version <= rec.h.version => {
                let entries = log.read_entries(&full)?;
                match log.check_map_structure(&full, &entries, len) {
                    // Format 4: step 5 needs its CONTROL record right before
                    // it (a checkpoint: the one its checkpoint info names).
                    Ok(()) => match log.control_link(salt, len, &full)? {
                        Some(bad) => p.broken = Some(bad),
                        None => {
                            p.pos = full.end();
                            p.last = Some(full);
                        }
                    },
                    Err(e) => p.broken = Some(problem(e)?),
                }
            }
            _ => {
                p.broken = Some(Problem {
                    offset: fo,
                    expected: format!("full page map (named by commit {} at {})", rec.h.version, rec.offset),
                    found: "no valid full-map commit".into(),
                })
            }
        }
        Ok(p)
    }

    fn reach(&mut self, log: &Log, salt: u64, len: u64, rec: &Rec) -> Result<std::result::Result<(), Problem>> {
        while self.broken.is_none() {
            let last = self.last.as_ref().expect("a walk that is not broken has passed its full map");
            if last.offset >= rec.offset {
                break;
            }
            let at = self.pos;
            let Some(r) = log.read_record(salt, at, len)? else {
                let expected = format!("a record between versions {} and {}", last.h.version, rec.h.version);
                self.broken = Some(Problem { offset: at, expected, found: "none".into() });
                break;
            };
            if r.is_commit() {
                let want = last.h.version.saturating_add(1);
                if r.h.version != want {
                    let expected = format!("version {want}");
                    self.broken = Some(Problem { offset: at, expected, found: r.h.version.to_string() });
                    break;
                }
                if !r.is_map() && r.h.page_size != last.h.page_size {
                    self.broken = Some(Problem {
                        offset: at + format::RH_PAGE_SIZE as u64,
                        expected: format!("page size {} (a delta keeps its predecessor's)", last.h.page_size),
                        found: r.h.page_size.to_string(),
                    });
                    break;
                }
                let entries = log.read_entries(&r)?;
                if let Err(e) = log.check_map_structure(&r, &entries, len) {
                    self.broken = Some(problem(e)?);
                    break;
                }
                self.pos = r.end();
                self.last = Some(r);
            } else {
                self.pos = r.end();
            }
        }
        if self.last.as_ref().is_some_and(|l| l.offset == rec.offset && l.crc == rec.crc) {
            return Ok(Ok(()));
        }
        Ok(Err(self.broken.clone().unwrap_or_else(|| Problem {
            offset: rec.offset,
            expected: format!("version {} on the path from its full map", rec.h.version),
            found: "a path that does not pass its commit".into(),
        })))
    }
}

/// A damage error as a [`Problem`]; any other error is returned.
fn problem(e: Error) -> Result<Problem> {
    match e {
        Error::Corrupt { offset, expected, found, .. } => Ok(Problem { offset, expected, found }),
        e => Err(e),
    }
}
