//! A check of every byte of committed history ([`Log::verify`],
//! [`verify_file`]): what `pagelog verify` reports. It only reads, and takes
//! no lock, so writers go on.
//!
//! # Verification
//! [`Log::verify`] walks every record from offset 512 by its length, the way
//! the log was written, and checks:
//! 1. every record: header and trailer crcs, layout, and that it follows the
//!    commit before it exactly (version, `prev commit`, `prev crc`);
//! 2. every commit's entries (page numbers, frame offsets), its `full map
//!    offset` and its horizon (which must name an earlier commit exactly);
//! 3. every frame: the crc of every page image stored in any record is
//!    computed once, and each map entry must name the start of a frame of its
//!    page size in a record at or before its commit, with that crc;
//! 4. every version's whole-database checksum: the XOR of
//!    `format::page_hash(pgno, crc)` over its page map, with the map rebuilt
//!    from the entries and each crc recomputed from the frame's bytes, must
//!    equal the one stored. This proves that what a version reads back is
//!    what was committed;
//! 5. the header: its crc (when the log is opened) and the zero padding after
//!    it, up to offset 512.
//!
//! A version is *invalid* when its commit fails a check or its page map
//! refers to a damaged frame (so a damaged frame taints every version that
//! still uses it). A record that is not well-formed, or does not follow the
//! previous commit, ends the walk.
//!
//! ## Format 4: a log whose oldest part a retention policy freed
//! Bytes below the boundary `B` are freed (a hole, or not yet punched):
//! the walk starts at `B`, never reads below it, and reports them apart
//! ([`VerifyReport::freed_bytes`]), never as damage (docs/format-4.md). The
//! record at `B` follows a freed commit, taken as it names it; commits
//! before the first full map after `B`, and versions below the oldest kept
//! `Vo`, are walked (every record and frame checked) but not listed, and a
//! problem of their page maps is not damage. Every reference of a kept
//! version below `B` (a map entry, a patch's base) must resolve through the
//! base tree (the control state recovery installed) to an item at or after
//! `B` that makes the entry's crc (INV-1 of the design).
//!
//! ## Damage, or an unfinished tail?
//! A crash may leave an unfinished transaction after the last commit (its
//! records torn, or complete but with frames that never reached the disk);
//! pre-allocation and rolled-back transactions leave zeros and debris there.
//! Recovery ends the log before such bytes, and the next writer overwrites
//! them: they are not damage. What was made durable is: every version up to
//! the one recovery reaches, and every version some commit names as its
//! horizon (it was synced before that commit was written). So a problem at
//! a version at or below `max(recovered version, any horizon)` is **damage**
//! ([`VerifyReport::damaged`]); a problem past it is an **unfinished tail**
//! ([`VerifyReport::tail`]): recoverable, reported as a warning.
//!
//! Compaction, which rewrites a log keeping only its newest versions, is
//! in [`crate::compact`].

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use crate::control::Control;
use crate::error::{Error, Result};
use crate::format::{self, Entry, RecordHeader};
use crate::log::{Log, OpenOptions, Rec};
use crate::pagemap::Slot;
use crate::patch;

use crate::history::{describe_link, Prev};

/// The bound on `db pages` recovery's walk applies (a larger size ends it:
/// in an unclaimed tail, that is a torn tail, not damage).
fn db_pages_bound(rec: &Rec, len: u64) -> Option<Problem> {
    let limit = format::max_db_pages(len);
    (rec.info.db_pages as u64 > limit).then(|| Problem {
        offset: rec.offset + (format::RECORD_HEADER_SIZE + format::CI_DB_PAGES) as u64,
        expected: format!("a database size of at most {limit} pages in a file of {len} bytes"),
        found: format!("{} pages", rec.info.db_pages),
    })
}

impl Log {
    /// Checks every record, commit, frame and version checksum of the file
    /// (see the module documentation). Never panics on damaged input.
    pub fn verify(&self) -> VerifyReport {
        self.verify_with_progress(&mut |_, _| {})
    }

    /// [`Log::verify`], calling `progress(bytes checked, file length)` as it goes.
    ///
    /// Verification takes no lock, so writers go on. A commit being written
    /// while it is read could look torn; when a check finds a problem and
    /// the log changed meanwhile, it runs again (up to three times).
    pub fn verify_with_progress(&self, progress: &mut dyn FnMut(u64, u64)) -> VerifyReport {
        let mut attempt = 0;
        loop {
            let rep = self.verify_once(progress);
            attempt += 1;
            let problem = rep.damaged() || rep.tail.as_ref().is_some_and(|t| !t.zeros);
            let changed = self.file_len().ok() != Some(rep.file_len)
                || self.refresh().ok().map(|v| v.number) != rep.recovered_version;
            if !problem || !changed || attempt == 3 {
                return rep;
            }
        }
    }

    fn verify_once(&self, progress: &mut dyn FnMut(u64, u64)) -> VerifyReport {
        let mut rep = VerifyReport::default();
        // Recovery first, then the file's length: everything recovery
        // reached lies below it, whatever writers append meanwhile.
        match self.refresh() {
            Ok(v) => rep.recovered_version = Some(v.number),
            Err(e) => rep.recovery_error = Some(e.to_string()),
        }
        let len = match self.file_len() {
            Ok(l) => l,
            Err(e) => {
                rep.error = Some(e);
                return rep;
            }
        };
        rep.file_len = len;
        let header = match self.read_header(len) {
            Ok(Some(h)) => h,
            Ok(None) => {
                rep.bytes_checked = len;
                return rep; // an empty log
            }
            Err(e) => {
                rep.error = Some(e);
                return rep;
            }
        };
        if len < format::FIRST_RECORD {
            // A header written, the first record not: an empty log.
            rep.bytes_checked = len;
            return rep;
        }
        rep.bytes_checked = format::FIRST_RECORD;
        match self.read_vec(format::HEADER_SIZE as u64, (format::FIRST_RECORD as usize) - format::HEADER_SIZE) {
            Ok(pad) => {
                if let Some(i) = pad.iter().position(|&b| b != 0) {
                    let offset = (format::HEADER_SIZE + i) as u64;
                    let p = Problem {
                        offset,
                        expected: "zero bytes after the header (to offset 512)".into(),
                        found: format!("byte {:#04x}", pad[i]),
                    };
                    rep.items.push(Item { version: None, offset, txn_start: offset, problem: Some(p) });
                }
            }
            Err(e) => {
                rep.error = Some(e);
                return rep;
            }
        }
        if let Err(e) = self.walk(header.salt, len, &mut rep, progress) {
            rep.error = Some(e);
        }
        progress(len, len);
        rep
    }

    fn walk(&self, salt: u64, len: u64, rep: &mut VerifyReport, progress: &mut dyn FnMut(u64, u64)) -> Result<()> {
        let mut w = Walk { txn_start: format::FIRST_RECORD, ..Default::default() };
        let mut pos = format::FIRST_RECORD;
        let mut prev = Prev::NONE;
        // What recovery found, just before (the walk must reach it).
        let recovered = self.latest();
        // Format 4: start at the boundary recovery found (see the module
        // documentation); the record there follows a freed commit.
        let control = self.lock().control.clone();
        if rep.recovery_error.is_none() && control.redirects() {
            pos = control.boundary();
            if let Some(r) = self.read_record(salt, pos, len)? {
                let l = r.prev_link();
                prev = Prev { version: l.version, offset: l.offset, crc: l.crc };
            }
            w.txn_start = pos;
            w.oldest = control.info.oldest_version;
            rep.freed_bytes = pos - format::FIRST_RECORD;
            rep.oldest_kept = Some(w.oldest);
            w.control = Some(control);
            w.mid_start = true;
        } else if rep.recovery_error.is_some() && self.format() >= format::FORMAT_V4 {
            // Recovery refuses the log: start after the zeros at 512, which
            // a CONTROL record the walk meets must declare freed.
            let at = self.first_nonzero(format::FIRST_RECORD, len)?;
            if at > format::FIRST_RECORD && at < len {
                pos = at;
                if let Some(r) = self.read_record(salt, pos, len)? {
                    let l = r.prev_link();
                    prev = Prev { version: l.version, offset: l.offset, crc: l.crc };
                }
                w.txn_start = pos;
                w.mid_start = true;
                w.unproven = Some(at);
                // The newest control state in the file: recovery's, had it
                // not failed. It declares the zeros freed, or they are damage.
                if let Some(c) = self.newest_control(salt, len, at)? {
                    if c.control.boundary >= at {
                        let mut st = self.lock();
                        match self.install_control(&mut st, &c, c.end()) {
                            Ok(()) => {
                                w.unproven = None;
                                w.oldest = st.control.info.oldest_version;
                                w.control = Some(st.control.clone());
                            }
                            Err(Error::Corrupt { offset, expected, found, .. }) => {
                                // Its base tree is damaged: the zeros are
                                // still declared freed, the versions read
                                // through it are damaged.
                                w.unproven = None;
                                w.oldest = c.control.oldest_version;
                                let p = Problem { offset, expected, found };
                                rep.items.push(Item { version: None, offset, txn_start: offset, problem: Some(p) });
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
            }
        }
        let start = pos;
        w.start = pos;
        if w.mid_start && prev.offset != 0 {
            // The freed commit the record at the start names: a horizon may
            // name it, exactly (FORMAT.md, "Claims").
            w.commits.insert(prev.offset, (prev.version, prev.crc));
            w.freed_version = prev.version;
        }
        // The last INDEX record since the previous commit (format 4).
        let mut index: Option<(u64, u32)> = None;
        // The first problem that ends the walk, and the version it concerns.
        let mut stop: Option<(u64, Problem)> = None;
        while pos < len {
            progress(pos, len);
            let Some(rec) = self.read_record(salt, pos, len)? else {
                stop = Some((prev.version.saturating_add(1), self.describe_bad_record(salt, pos, len, &prev)?));
                break;
            };
            let mark_here = rec.h.kind == format::KIND_MARK && pos == w.txn_start && !w.marked;
            if !prev.follows(&rec) || (rec.h.kind == format::KIND_MARK && !mark_here) {
                let p = Problem { offset: pos, expected: prev.describe(), found: describe_link(&rec) };
                stop = Some((prev.version.saturating_add(1), p));
                break;
            }
            if mark_here {
                // The commit before it was durable: damage up to it is damage.
                w.max_horizon = w.max_horizon.max(rec.h.version);
                w.marked = true;
                pos = rec.end();
                w.txn_start = pos;
                continue;
            }
            if rec.h.frames > 0 {
                self.hash_payload(&rec, &mut w, len, progress)?;
                rep.frames_checked += rec.h.frames as u64;
            }
            if rec.h.patch_words > 0 {
                rep.frames_checked += self.make_patches(&rec, &mut w)?;
            }
            if rec.is_control() {
                // A reclamation step's copies: patches may be based on them.
                w.payloads.push((rec.offset + rec.payload_start, rec.payload_end()));
                if rec.h.flags & format::FLAG_CLAIM != 0 {
                    w.max_horizon = w.max_horizon.max(prev.version);
                }
                // Right after a commit (or its MARK) it sits between
                // commits, as a MARK: the log may end after it. One after a
                // transaction's spills is part of that transaction.
                if pos == w.txn_start {
                    w.txn_start = rec.end();
                }
                pos = rec.end();
                continue;
            }
            if !rec.is_commit() {
                if rec.is_index() {
                    index = Some((rec.offset, rec.crc));
                }
                pos = rec.end();
                continue;
            }
            let version = rec.h.version;
            if w.mid_start && w.page_size == 0 && !rec.is_map() {
                // Before the first full map after the boundary: a reclaimed
                // version whose map cannot be built (its full map was freed).
                // Its record must still keep step 3's rules, or the walk
                // from B (the forward read) ends there.
                if let Some(p) = db_pages_bound(&rec, len) {
                    stop = Some((version, p));
                    break;
                }
                // A kept version's full map lies at or after B (FORMAT.md,
                // "Which versions a format-4 log holds"): one that does not
                // cannot be read, which is damage, not reclamation.
                if w.oldest > 0 && version >= w.oldest {
                    let p = Problem {
                        offset: rec.info.full_map_offset,
                        expected: format!(
                            "the full page map of version {version} (kept: the oldest kept is {}) at or after the \
                             boundary {}",
                            w.oldest, w.start
                        ),
                        found: "one below it, in the freed region".into(),
                    };
                    stop = Some((version, p));
                    break;
                }
                let entries = self.read_entries(&rec)?;
                if let Some((offset, expected, found)) = self.check_commit(&rec, &entries, u64::MAX)? {
                    stop = Some((version, Problem { offset, expected, found }));
                    break;
                }
                w.commits.insert(rec.offset, (version, rec.crc));
                prev = Prev::of(&rec);
                pos = rec.end();
                w.txn_start = pos;
                w.marked = false;
                index = None;
                continue;
            }
            if let Some(p) = self.check_structure(&rec, &prev, &w, len)? {
                stop = Some((version, p));
                break;
            }
            // Its map must build (step 5), and recovery's walk ends before a
            // checkpoint that does not name its transaction's records.
            // A reclaimed checkpoint right at the boundary (below): its
            // INDEX and CONTROL records lay before B and were freed with
            // its version; there is nothing left to link.
            let reclaimed_at_b = w.mid_start && w.page_size == 0 && version < w.oldest && rec.offset == w.start;
            let links = if reclaimed_at_b { None } else { self.map_links(salt, len, &rec, index.take())? };
            if let Some(p) = links {
                stop = Some((version, p));
                break;
            }
            // A format-4 checkpoint's map is its tree, read whole here
            // (every node checked) and applied as a full map; on a reclaimed
            // log, nodes below the boundary are read at their copies.
            let entries = if rec.is_checkpoint() {
                let tree = match w.control.as_deref() {
                    Some(c) if c.redirects() => self.checkpoint_entries(&rec, Some(c))?,
                    _ => self.tree_entries(&rec, 0)?.map_err(|d| Problem {
                        offset: d.offset,
                        expected: d.expected,
                        found: d.found,
                    }),
                };
                match tree {
                    Ok(e) => e,
                    Err(_) if w.mid_start && version < w.oldest => {
                        // A reclaimed checkpoint after the boundary (right at
                        // it: the commit before the oldest kept version's
                        // checkpoint, which that one names; or any between a
                        // step's boundary and that checkpoint, a revert's
                        // say): its tree may share nodes below `B` that no
                        // kept checkpoint reaches, freed with its version
                        // and not relocated (FORMAT.md, "Which versions a
                        // format-4 log holds": a reclaimed version need not
                        // read). Its frames were checked above; nothing else
                        // of it is kept, and the reclaimed deltas after it
                        // are checked as records until the next map.
                        w.page_size = 0;
                        w.commits.insert(rec.offset, (version, rec.crc));
                        rep.reclaimed_versions += 1;
                        prev = Prev::of(&rec);
                        pos = rec.end();
                        w.txn_start = pos;
                        w.marked = false;
                        continue;
                    }
                    Err(p) => {
                        stop = Some((version, p));
                        break;
                    }
                }
            } else {
                self.read_entries(&rec)?
            };
            if let Some((offset, expected, found)) = self.check_commit(&rec, &entries, u64::MAX)? {
                stop = Some((version, Problem { offset, expected, found }));
                break;
            }
            let problem = w.apply(self, &rec, &entries)?;
            w.max_horizon = w.max_horizon.max(rec.info.horizon_version);
            w.commits.insert(rec.offset, (version, rec.crc));
            if rec.is_map() {
                w.last_full = rec.offset;
            }
            if version >= w.oldest {
                rep.items.push(Item { version: Some(version), offset: rec.offset, txn_start: w.txn_start, problem });
            } else {
                rep.reclaimed_versions += 1;
            }
            prev = Prev::of(&rec);
            pos = rec.end();
            w.txn_start = pos;
            w.marked = false;
        }
        if stop.is_none() && w.txn_start < pos {
            // The file ends in SPILL records that no COMMIT follows: an
            // unfinished transaction (a killed writer), reported as a tail.
            stop = Some((
                prev.version.saturating_add(1),
                Problem {
                    offset: pos,
                    expected: format!(
                        "the COMMIT of version {} after its SPILL records at {}..{pos}",
                        prev.version.saturating_add(1),
                        w.txn_start
                    ),
                    found: "the end of the file".into(),
                },
            ));
        }
        if let Some(at) = w.unproven {
            rep.items.insert(
                0,
                Item {
                    version: None,
                    offset: format::FIRST_RECORD,
                    txn_start: format::FIRST_RECORD,
                    problem: Some(Problem {
                        offset: format::FIRST_RECORD,
                        expected: Prev::NONE.describe(),
                        found: format!("zero bytes up to {at} that no CONTROL record declares freed"),
                    }),
                },
            );
        } else if start > format::FIRST_RECORD {
            rep.freed_bytes = start - format::FIRST_RECORD;
            rep.oldest_kept = Some(w.oldest);
            // Versions a CONTROL record met later says were reclaimed.
            let before = rep.items.len();
            rep.items.retain(|i| i.version.is_none_or(|v| v >= w.oldest));
            rep.reclaimed_versions += (before - rep.items.len()) as u64;
        }
        // (A crafted boundary may lie past the end of the file.)
        rep.bytes_checked = if stop.is_some() { pos } else { len }.saturating_sub(rep.freed_bytes);
        rep.end = w.txn_start;

        // The last well-formed record of the file may name a later horizon
        // than any commit the walk reached.
        if stop.is_some() {
            if let Some(last) = self.find_last_record(salt, len, len)? {
                if last.is_commit() && last.offset >= pos {
                    w.max_horizon = w.max_horizon.max(last.info.horizon_version);
                }
                if last.h.kind == format::KIND_MARK && last.offset >= pos {
                    w.max_horizon = w.max_horizon.max(last.h.version);
                }
            }
        }
        let durable = w.max_horizon.max(rep.recovered_version.unwrap_or(0));
        rep.durable_version = durable;

        // Sort the problems into damage and an unfinished tail: everything
        // from the first problem past the durable version on is the tail.
        let first_tail = rep.items.iter().position(|i| i.problem.is_some() && i.version.unwrap_or(0) > durable);
        let tail_items = match first_tail {
            Some(i) => rep.items.split_off(i),
            None => Vec::new(),
        };
        let tail = if let Some(t) = tail_items.first() {
            Some((t.txn_start, t.problem.clone().expect("a tail starts at a problem")))
        } else {
            match stop {
                Some((v, p)) if v > durable => Some((w.txn_start, p)),
                Some((_, p)) => {
                    rep.items.push(Item { version: None, offset: p.offset, txn_start: p.offset, problem: Some(p) });
                    None
                }
                None => None,
            }
        };
        if let Some((start, reason)) = tail {
            let lost_versions = tail_items.iter().filter_map(|i| i.version).collect();
            let zeros = self.all_zero(start, len)?;
            rep.tail = Some(Tail { offset: start, bytes: len - start, lost_versions, reason, zeros });
        }
        if let Some(t) = tail_items.first() {
            rep.end = t.txn_start; // the end of the last commit kept
        }
        if let Some(last_ok) = rep.items.iter().take_while(|i| i.problem.is_none()).last() {
            rep.last_good_version = last_ok.version.unwrap_or(0);
        }
        // Recovery must reach exactly the last version verification accepts.
        // Commits a writer appended between recovery and the walk were walked
        // but not recovered: recover again, and compare what the two saw of
        // the same bytes (a later recovery may see more, never less).
        let walked = rep.items.last().and_then(|i| i.version).unwrap_or(0);
        if rep.recovery_error.is_none() && rep.recovered_version.unwrap_or(0) < walked {
            if let Ok(v) = self.refresh() {
                if v.number >= walked {
                    rep.recovered_version = Some(walked);
                }
            }
        }
        // And the walk must reach recovery's latest commit: a problem before
        // it lies in history recovery accepted, whatever version it names.
        let reached = recovered.number == 0
            || recovered.end > len
            || w.commits.get(&recovered.commit_offset) == Some(&(recovered.number, recovered.commit_crc));
        if rep.recovery_error.is_none() && !reached && rep.damage().is_none() {
            let p = Problem {
                offset: rep.end,
                expected: format!(
                    "the walk to reach version {} at {}, as recovery (what `open` does) does",
                    recovered.number, recovered.commit_offset
                ),
                found: format!("it stops at version {walked}"),
            };
            rep.items.push(Item { version: None, offset: rep.end, txn_start: rep.end, problem: Some(p) });
        }
        if rep.recovery_error.is_none() && rep.recovered_version.unwrap_or(0) < walked && rep.damage().is_none() {
            let p = Problem {
                offset: rep.end,
                expected: format!("recovery (what `open` does) to reach version {walked}"),
                found: format!("it stops at version {}", rep.recovered_version.unwrap_or(0)),
            };
            rep.items.push(Item { version: None, offset: rep.end, txn_start: rep.end, problem: Some(p) });
        }
        Ok(())
    }

    /// Checks of a commit that must pass before its entries can be applied.
    fn check_structure(&self, rec: &Rec, prev: &Prev, w: &Walk, len: u64) -> Result<Option<Problem>> {
        if prev.offset == 0 && !rec.is_map() {
            return Ok(Some(Problem {
                offset: rec.offset + format::RH_FLAGS as u64,
                expected: "a full page map (the first commit of a log)".into(),
                found: "a delta".into(),
            }));
        }
        if !rec.is_map() && rec.h.page_size != w.page_size {
            return Ok(Some(Problem {
                offset: rec.offset + format::RH_PAGE_SIZE as u64,
                expected: format!("page size {} (a delta keeps its predecessor's page size)", w.page_size),
                found: rec.h.page_size.to_string(),
            }));
        }
        Ok(db_pages_bound(rec, len))
    }

    /// Computes the crc of every frame in `rec`'s payload region.
    fn hash_payload(&self, rec: &Rec, w: &mut Walk, len: u64, progress: &mut dyn FnMut(u64, u64)) -> Result<()> {
        let ps = rec.h.page_size as u64;
        let start = rec.offset + rec.payload_start;
        let n = rec.h.frames as u64;
        let per_read = ((4u64 << 20) / ps).max(1);
        let mut crcs = Vec::with_capacity(n as usize);
        let mut i = 0u64;
        while i < n {
            let k = per_read.min(n - i);
            let buf = self.read_vec(start + i * ps, (k * ps) as usize)?;
            crcs.extend(buf.chunks_exact(ps as usize).map(format::frame_crc));
            i += k;
            progress(start + i * ps, len);
        }
        w.regions.push(Region { start, page_size: rec.h.page_size, crcs });
        Ok(())
    }

    /// Parses `rec`'s patch area, which must be filled exactly by
    /// well-formed patches whose bases are images stored in checked records,
    /// and computes the crc of the page each one makes. Returns how many.
    fn make_patches(&self, rec: &Rec, w: &mut Walk) -> Result<u64> {
        let ps = rec.h.page_size;
        let (start, end) = (rec.patches_start(), rec.payload_end());
        let area = self.read_vec(start, (end - start) as usize)?;
        let mut q = 0usize;
        let mut n = 0u64;
        while q < area.len() {
            let at = start + q as u64;
            let p = match patch::parse(&area[q..], at, ps) {
                Ok(p) => p,
                Err(e) => {
                    w.area_problem.get_or_insert(Problem {
                        offset: at,
                        expected: format!("a patch area filled with well-formed patches (to {end})"),
                        found: format!("a patch breaking a rule: {e}"),
                    });
                    break;
                }
            };
            if w.mid_start && p.base < w.control.as_ref().map_or(0, |c| c.boundary()).max(w.start) {
                // Based below the boundary: the base tree redirects it by
                // page number, known once an entry names the patch.
                w.low_based.insert(at | patch::PATCH_TAG);
                q += p.size;
                n += 1;
                continue;
            }
            let copied_base = w.payloads.iter().any(|&(s, e)| p.base >= s && p.base + ps as u64 <= e);
            let made = match w.frame_crc(p.base, ps).or(copied_base.then_some(0)) {
                None => {
                    // Damage whether or not an entry names this patch: the
                    // area must hold well-formed patches only.
                    let problem = Problem {
                        offset: at,
                        expected: format!("a patch based on a {ps}-byte image stored before it"),
                        found: format!("base {}", p.base),
                    };
                    w.area_problem.get_or_insert(problem.clone());
                    Err(problem)
                }
                Some(_) => Ok(format::frame_crc(&self.make_page(&area[q..], &p, ps)?)),
            };
            w.patches.insert(at | patch::PATCH_TAG, made);
            q += p.size;
            n += 1;
        }
        Ok(n)
    }

    /// Says why there is no well-formed record following `prev` at `pos`.
    pub(crate) fn describe_bad_record(&self, salt: u64, pos: u64, len: u64, prev: &Prev) -> Result<Problem> {
        let hs = format::RECORD_HEADER_SIZE as u64;
        let expected = prev.describe();
        if pos % 8 != 0 || pos < format::FIRST_RECORD {
            return Ok(Problem { offset: pos, expected, found: "a misaligned record offset".into() });
        }
        if pos + hs > len {
            return Ok(Problem {
                offset: pos,
                expected,
                // (pos may lie past the end: a crafted boundary.)
                found: format!("the end of the file after {} bytes", len.saturating_sub(pos)),
            });
        }
        let hb = self.read_vec(pos, hs as usize)?;
        if hb[..4] != format::REC_MAGIC {
            let found = if hb.iter().all(|&b| b == 0) {
                "zero bytes".to_string()
            } else {
                format!("bytes {:02x?} instead of the record magic \"PLRC\"", &hb[..4])
            };
            return Ok(Problem { offset: pos, expected, found });
        }
        let stored = u32::from_le_bytes(hb[format::RH_CRC..format::RH_CRC + 4].try_into().unwrap());
        let computed = format::salted_crc(salt, &[&hb[..format::RH_CRC]]);
        if stored != computed {
            return Ok(Problem {
                offset: pos + format::RH_CRC as u64,
                expected: format!("record header crc {computed:#010x}"),
                found: format!("{stored:#010x}"),
            });
        }
        let Some(h) = RecordHeader::decode(salt, &hb).filter(|h| h.kind != format::KIND_CONTROL) else {
            return Ok(Problem { offset: pos, expected, found: "a record header with invalid fields".into() });
        };
        if pos.saturating_add(h.length) > len {
            return Ok(Problem {
                offset: pos,
                expected: format!("a record of {} bytes (version {})", h.length, h.version),
                found: format!("the end of the file {} bytes after its start", len - pos),
            });
        }
        if let Some((offset, expected, found)) = self.aligned_problem(pos, &h, len)? {
            return Ok(Problem { offset, expected, found });
        }
        Ok(Problem {
            offset: pos + h.length - format::TRAILER_SIZE as u64,
            expected: format!("the trailer of the version {} record at {pos} (magic, offset, crc)", h.version),
            found: "a trailer that does not check out".into(),
        })
    }

    /// The whole page map of checkpoint `rec` (format 4), read from its
    /// tree (through `control`'s redirections), as full-map entries; Err:
    /// the tree is damaged.
    fn checkpoint_entries(
        &self,
        rec: &Rec,
        control: Option<&Control>,
    ) -> Result<std::result::Result<Vec<Entry>, Problem>> {
        let ck = &rec.ckpt;
        let root = (ck.root != 0).then_some(crate::tree::Root { offset: ck.root, crc: ck.root_crc, depth: ck.depth });
        let mapping = {
            let mut st = self.lock();
            self.mapping_covering(&mut st, rec.end())?
        };
        let t = crate::index::TreeMap::checkpoint(rec.info.db_pages, root, rec.offset, mapping.clone(), rec.end());
        let none = Control::none();
        match t.to_page_map(control.unwrap_or(&none), &mapping) {
            Ok(m) => Ok(Ok(m.entries())),
            Err(Error::Corrupt { offset, expected, found, .. }) => Ok(Err(Problem { offset, expected, found })),
            Err(e) => Err(e),
        }
    }

    /// Format 4 (FORMAT.md, "Where CONTROL records lie", step 3 and step 5
    /// with checkpoints): a FULL_MAP or checkpoint commit `rec` is
    /// immediately preceded by the CONTROL record of its own transaction
    /// (ending at its offset, naming the same commit; for a
    /// checkpoint, the one its checkpoint info names by offset and crc), and
    /// a checkpoint's `index record`, when not 0, is `index`, the last INDEX
    /// record since the previous commit. A version whose map starts at a
    /// commit that fails this does not read: the problem is damage at `rec`.
    pub(crate) fn map_links(
        &self,
        salt: u64,
        len: u64,
        rec: &Rec,
        index: Option<(u64, u32)>,
    ) -> Result<Option<Problem>> {
        if self.format() < format::FORMAT_V4 || !rec.is_commit() || !rec.is_map() {
            return Ok(None);
        }
        let ck = &rec.ckpt;
        if rec.is_checkpoint() && ck.index != 0 && index != Some((ck.index, ck.index_crc)) {
            return Ok(Some(Problem {
                offset: rec.offset,
                expected: format!(
                    "the INDEX record of this checkpoint's transaction at {} (crc {:#010x}), as its checkpoint info says",
                    ck.index, ck.index_crc
                ),
                found: match index {
                    Some((o, c)) => format!("the last INDEX record before it at {o} (crc {c:#010x})"),
                    None => "no INDEX record since the previous commit".into(),
                },
            }));
        }
        self.control_link(salt, len, rec)
    }

    /// The CONTROL-record half of [`Log::map_links`]: what step 5 checks
    /// of the full map (or checkpoint) a version's map starts from.
    pub(crate) fn control_link(&self, salt: u64, len: u64, rec: &Rec) -> Result<Option<Problem>> {
        if self.format() < format::FORMAT_V4 || !rec.is_commit() || !rec.is_map() {
            return Ok(None);
        }
        let ck = &rec.ckpt;
        let ts = format::TRAILER_SIZE as u64;
        let control = if rec.offset >= format::FIRST_RECORD + ts {
            let ro = format::trailer_record_offset(&self.read_vec(rec.offset - ts, format::TRAILER_SIZE)?);
            self.read_record(salt, ro, len)?.filter(|r| r.is_control() && r.end() == rec.offset)
        } else {
            None
        };
        let what = if rec.is_checkpoint() { "checkpoint" } else { "full map" };
        let expected = if rec.is_checkpoint() {
            format!(
                "the CONTROL record of this checkpoint's transaction right before it, at {} (crc {:#010x}) as its \
                 checkpoint info says (format 4)",
                ck.control, ck.control_crc
            )
        } else {
            format!("the CONTROL record of this {what}'s transaction right before it (format 4)")
        };
        let found = match control {
            None => "no well-formed CONTROL record ending there".to_string(),
            Some(c) if c.prev_link() != rec.prev_link() => format!(
                "the CONTROL record at {} of version {} following the commit at {} (prev crc {:#010x})",
                c.offset, c.h.version, c.h.prev_commit, c.h.prev_crc
            ),
            Some(c) if rec.is_checkpoint() && (c.offset, c.crc) != (ck.control, ck.control_crc) => {
                format!("the CONTROL record at {} (crc {:#010x})", c.offset, c.crc)
            }
            Some(_) => return Ok(None),
        };
        Ok(Some(Problem { offset: rec.offset, expected, found }))
    }

    /// The newest well-formed CONTROL record at or after `floor`, found by
    /// scanning back from the end of the file record by record (for a log
    /// recovery refuses: the control state it would have installed).
    pub(crate) fn newest_control(&self, salt: u64, len: u64, floor: u64) -> Result<Option<Rec>> {
        const WINDOW: u64 = 1 << 20;
        let ts = format::TRAILER_SIZE as u64;
        let mut e = len - len % 8;
        while e >= floor + ts {
            let lo = e.saturating_sub(WINDOW).max(floor);
            let buf = self.read_vec(lo, (e - lo) as usize)?;
            let mut x = e;
            while x >= lo + ts {
                let t = &buf[(x - ts - lo) as usize..(x - lo) as usize];
                if t[format::TR_MAGIC..format::TR_MAGIC + 4] == format::TRAILER_MAGIC {
                    let ro = format::trailer_record_offset(t);
                    if ro < x && ro >= floor {
                        if let Some(rec) = self.read_record(salt, ro, len)? {
                            if rec.end() == x {
                                if rec.is_control() {
                                    return Ok(Some(rec));
                                }
                                x = ro; // a record's payload may hold anything
                                continue;
                            }
                        }
                    }
                }
                x -= 8;
            }
            if lo == floor || x >= e {
                break;
            }
            e = x;
        }
        Ok(None)
    }

    /// The first offset at or after `from` (8-aligned) holding a nonzero
    /// byte in its 8 bytes; `to` when there is none.
    pub(crate) fn first_nonzero(&self, from: u64, to: u64) -> Result<u64> {
        let mut at = from;
        while at < to {
            let n = (to - at).min(1 << 20);
            let b = self.read_vec(at, n as usize)?;
            if let Some(i) = b.chunks(8).position(|w| w.iter().any(|&x| x != 0)) {
                return Ok(at + 8 * i as u64);
            }
            at += n;
        }
        Ok(to)
    }

    fn all_zero(&self, from: u64, to: u64) -> Result<bool> {
        let mut at = from;
        while at < to {
            let n = (to - at).min(1 << 20);
            if self.read_vec(at, n as usize)?.iter().any(|&b| b != 0) {
                return Ok(false);
            }
            at += n;
        }
        Ok(true)
    }
}

/// Verifies the log at `path` (see [`Log::verify`]), also when it cannot
/// be opened normally: recovery failing is itself reported as damage.
/// Opens the file read-only.
pub fn verify_file(path: &Path, progress: &mut dyn FnMut(u64, u64)) -> VerifyReport {
    match Log::open_unrecovered(path, OpenOptions { read_only: true, ..Default::default() }) {
        Ok(log) => log.verify_with_progress(progress),
        Err(e) => VerifyReport { error: Some(e), ..Default::default() },
    }
}

/// A check that failed: where, and what was expected and found there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub offset: u64,
    pub expected: String,
    pub found: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at offset {}: expected {}, found {}", self.offset, self.expected, self.found)
    }
}

/// One checked item: a version (its commit record), or a record that is
/// not a valid part of committed history (`version` None).
#[derive(Debug, Clone)]
pub struct Item {
    pub version: Option<u64>,
    /// The COMMIT record (or the bad record).
    pub offset: u64,
    /// Where the version's transaction starts (its first SPILL record).
    pub txn_start: u64,
    pub problem: Option<Problem>,
}

/// Bytes past the last version that recovery keeps: an unfinished
/// transaction, pre-allocated zeros or debris. Not damage.
#[derive(Debug, Clone)]
pub struct Tail {
    pub offset: u64,
    pub bytes: u64,
    /// Well-formed commits in the tail that `open` does not keep (their
    /// transaction was never made durable).
    pub lost_versions: Vec<u64>,
    /// Why the walk did not take the tail as history.
    pub reason: Problem,
    /// The tail is all zero bytes (pre-allocated space).
    pub zeros: bool,
}

/// What [`Log::verify`] found.
#[derive(Debug, Default)]
pub struct VerifyReport {
    pub file_len: u64,
    /// Versions in file order, each ok or invalid, then any bad record that
    /// ended the walk inside committed history.
    pub items: Vec<Item>,
    /// Page images whose crc was computed (every frame stored in a checked record).
    pub frames_checked: u64,
    /// Bytes walked from the start of the file.
    pub bytes_checked: u64,
    /// End of the last walked commit.
    pub end: u64,
    /// The last version with no problem before the first invalid one.
    pub last_good_version: u64,
    /// The latest version `open` recovers, if recovery succeeds.
    pub recovered_version: Option<u64>,
    /// Why recovery fails (damage).
    pub recovery_error: Option<String>,
    /// Versions up to this one were durable: problems there are damage.
    pub durable_version: u64,
    pub tail: Option<Tail>,
    /// The file could not be read as a log at all (not a log, I/O error).
    pub error: Option<Error>,
    /// Format 4: bytes below the boundary, freed by the retention policy
    /// (`[512, B)`): not read, not damage.
    pub freed_bytes: u64,
    /// Format 4, when a retention policy reclaimed versions: the oldest kept.
    pub oldest_kept: Option<u64>,
    /// Commits walked after the boundary that belong to reclaimed versions
    /// (below the oldest kept): checked as records, not listed.
    pub reclaimed_versions: u64,
}

impl VerifyReport {
    /// The first damage inside committed history, if any.
    pub fn damage(&self) -> Option<&Problem> {
        self.items.iter().find_map(|i| i.problem.as_ref())
    }

    /// True when committed history is damaged, recovery fails, or the file
    /// could not be read as a log.
    pub fn damaged(&self) -> bool {
        self.error.is_some() || self.recovery_error.is_some() || self.damage().is_some()
    }

    pub fn ok_count(&self) -> usize {
        self.items.iter().filter(|i| i.problem.is_none()).count()
    }

    pub fn invalid_count(&self) -> usize {
        self.items.iter().filter(|i| i.problem.is_some()).count() + usize::from(self.recovery_error.is_some())
    }

    pub fn versions_checked(&self) -> usize {
        self.items.iter().filter(|i| i.version.is_some()).count()
    }
}

/// A payload region: the crcs of the frames stored there, as computed.
struct Region {
    start: u64,
    page_size: u32,
    crcs: Vec<u32>,
}

/// The state of the verification walk: the page map as rebuilt so far.
#[derive(Default)]
struct Walk {
    regions: Vec<Region>,
    /// Patches stored in checked records (entry offset, i.e. with the
    /// patch tag) → the crc of the page each makes, or why it makes none.
    patches: HashMap<u64, std::result::Result<u32, Problem>>,
    /// A problem of the patch area of the record being checked.
    area_problem: Option<Problem>,
    /// Page map of the last version: (frame offset, crc) per page.
    map: Vec<(u64, u32)>,
    /// Pages of `map` whose frame is damaged, with the frame offset.
    bad: HashMap<u32, u64>,
    checksum: u64,
    page_size: u32,
    /// Commit offset → (version, trailer crc), for horizon checks.
    commits: HashMap<u64, (u64, u32)>,
    last_full: u64,
    max_horizon: u64,
    txn_start: u64,
    /// A MARK already follows the last commit.
    marked: bool,
    /// Format 4: the control state references below the boundary resolve
    /// through (None: the log has no boundary).
    control: Option<Arc<Control>>,
    /// The oldest kept version (0: all are).
    oldest: u64,
    /// Patches (entry offsets) whose base lies below the boundary.
    low_based: HashSet<u64>,
    /// Where the walk started.
    start: u64,
    /// The version of the freed commit the record at the start names (0:
    /// the walk started at 512).
    freed_version: u64,
    /// The walk started after 512 (at the boundary): commits before the
    /// first full map after it have no map to check.
    mid_start: bool,
    /// Recovery refused the log and the walk started after zeros at 512
    /// (this offset) that no CONTROL record declared freed yet.
    unproven: Option<u64>,
    /// CONTROL records' payloads walked (start, end): relocated items.
    payloads: Vec<(u64, u64)>,
    /// The crc each relocated item a reference resolved to makes, by offset.
    resolved: HashMap<u64, std::result::Result<u32, Problem>>,
}

impl Walk {
    /// The computed crc of the frame of `ps` bytes starting at `offset`, if
    /// a checked record stores one there.
    fn frame_crc(&self, offset: u64, ps: u32) -> Option<u32> {
        let i = self.regions.partition_point(|r| r.start <= offset).checked_sub(1)?;
        let r = &self.regions[i];
        let rel = offset - r.start;
        if r.page_size != ps || rel % ps as u64 != 0 {
            return None;
        }
        r.crcs.get((rel / ps as u64) as usize).copied()
    }

    /// The crc of the page the item at `offset` (an image, or a patch whose
    /// base resolves through `c` for page `pgno`) makes, or why it makes none.
    fn item_crc(log: &Log, c: &Control, pgno: u32, offset: u64, ps: u32) -> Result<std::result::Result<u32, Problem>> {
        let at = patch::position(offset);
        if offset == 0 || at < c.boundary() {
            return Ok(Err(Problem {
                offset: at,
                expected: format!("an item of page {pgno} at or after the boundary {}", c.boundary()),
                found: format!("offset {at}"),
            }));
        }
        if !patch::is_patch(offset) {
            return Ok(Ok(format::frame_crc(&log.read_vec(offset, ps as usize)?)));
        }
        let (b, p) = match log.patch_at(at, ps, None)? {
            Ok(x) => x,
            Err((offset, expected, found)) => return Ok(Err(Problem { offset, expected, found })),
        };
        let Some(base) = c.base(pgno, p.base) else {
            return Ok(Err(Problem {
                offset: at,
                expected: format!("a base image of page {pgno} in the base tree (the patch's lies below the boundary)"),
                found: "none".into(),
            }));
        };
        let mut page = log.read_vec(base, ps as usize)?;
        p.apply(&b, &mut page);
        Ok(Ok(format::frame_crc(&page)))
    }

    /// A kept version's entry `e` below the boundary: it must resolve
    /// through the base tree to an item making its crc.
    fn resolve(&mut self, log: &Log, c: &Control, e: &Entry, ps: u32, version: u64) -> Result<Option<Problem>> {
        let at = patch::position(e.offset);
        let Some(s) = c.slot(e.pgno, Slot { offset: e.offset, crc: e.crc }) else {
            return Ok(Some(Problem {
                offset: at,
                expected: format!(
                    "a copy of page {} (crc {:#010x}) in the base tree: the reference lies in the region freed below {}",
                    e.pgno,
                    e.crc,
                    c.boundary()
                ),
                found: "none".into(),
            }));
        };
        let crc = match self.resolved.get(&s.offset) {
            Some(r) => r.clone(),
            None => {
                let r = Walk::item_crc(log, c, e.pgno, s.offset, ps)?;
                self.resolved.insert(s.offset, r.clone());
                r
            }
        };
        Ok(match crc {
            Err(p) => Some(p),
            Ok(crc) if crc != e.crc => Some(Problem {
                offset: patch::position(s.offset),
                expected: format!("a relocated copy of page {} with crc {:#010x} (version {version})", e.pgno, e.crc),
                found: format!("crc {crc:#010x}"),
            }),
            Ok(_) => None,
        })
    }

    /// Format 4: checks entry `e` when it reads through the base tree (it
    /// lies below the boundary, or is a patch based below it): Some(the
    /// problem found, if any); None when it is checked as in any log.
    fn check_redirected(&mut self, log: &Log, e: &Entry, ps: u32, version: u64) -> Result<Option<Option<Problem>>> {
        let Some(c) = self.control.clone() else { return Ok(None) };
        let at = patch::position(e.offset);
        if at < c.boundary() {
            return Ok(Some(self.resolve(log, &c, e, ps, version)?));
        }
        if !self.low_based.contains(&e.offset) {
            return Ok(None);
        }
        Ok(Some(match Walk::item_crc(log, &c, e.pgno, e.offset, ps)? {
            Err(p) => Some(p),
            Ok(crc) if crc != e.crc => Some(Problem {
                offset: at,
                expected: format!("a patch making crc {:#010x} (page {} of version {version})", e.crc, e.pgno),
                found: format!("crc {crc:#010x}"),
            }),
            Ok(_) => None,
        }))
    }

    /// Applies a commit (whose entries passed `check_commit`) to the page
    /// map; returns the first problem of the version it makes.
    fn apply(&mut self, log: &Log, rec: &Rec, entries: &[Entry]) -> Result<Option<Problem>> {
        let mut problem: Option<Problem> = self.area_problem.take();
        let version = rec.h.version;
        let ps = rec.h.page_size;
        let at_info = rec.offset + format::RECORD_HEADER_SIZE as u64;
        let want_full = if rec.is_map() { rec.offset } else { self.last_full };
        if rec.info.full_map_offset != want_full {
            problem.get_or_insert(Problem {
                offset: at_info + format::CI_FULL_MAP as u64,
                expected: format!("full map offset {want_full}"),
                found: rec.info.full_map_offset.to_string(),
            });
        }
        let (hv, ho, hc) = (rec.info.horizon_version, rec.info.horizon_offset, rec.info.horizon_crc);
        // No horizon is (0, 0, 0); any other must name an earlier commit
        // exactly (a version with offset 0 names none: damage).
        // One below the boundary names a freed commit, which cannot be read:
        // it must be older than the one the record at the boundary names
        // (or that one, exactly).
        let freed = self.control.as_ref().is_some_and(|c| ho < c.boundary()) && hv < self.freed_version;
        let horizon_ok = hv < version
            && if ho == 0 { hv == 0 && hc == 0 } else { self.commits.get(&ho) == Some(&(hv, hc)) || freed };
        if !horizon_ok {
            problem.get_or_insert(Problem {
                offset: at_info + format::CI_HORIZON_VERSION as u64,
                expected: format!("a horizon naming an earlier commit of this log (before version {version})"),
                found: format!("version {hv} at offset {ho} with crc {hc:#010x}"),
            });
        }

        let pages = rec.info.db_pages as usize;
        if rec.is_map() {
            self.map.clear();
            self.bad.clear();
            self.checksum = 0;
            self.page_size = ps;
        } else if pages < self.map.len() {
            for (i, &(off, crc)) in self.map[pages..].iter().enumerate() {
                let pgno = (pages + i + 1) as u32;
                if off != 0 {
                    self.checksum ^= format::page_hash(pgno, crc);
                }
                self.bad.remove(&pgno);
            }
            self.map.truncate(pages);
        }
        self.map.resize(pages, (0, 0));
        let entry_base = at_info + format::COMMIT_INFO_SIZE as u64;
        for (i, e) in entries.iter().enumerate() {
            let slot = &mut self.map[e.pgno as usize - 1];
            if slot.0 != 0 {
                self.checksum ^= format::page_hash(e.pgno, slot.1);
            }
            *slot = (e.offset, e.crc);
            self.bad.remove(&e.pgno);
            if e.offset == 0 {
                continue;
            }
            self.checksum ^= format::page_hash(e.pgno, e.crc);
            if let Some(checked) = self.check_redirected(log, e, ps, version)? {
                if let Some(p) = checked {
                    self.bad.insert(e.pgno, patch::position(e.offset));
                    problem.get_or_insert(p);
                }
                continue;
            }
            if patch::is_patch(e.offset) {
                let at = patch::position(e.offset);
                let found = match self.patches.get(&e.offset) {
                    None => Some(Problem {
                        offset: entry_base + (i * format::ENTRY_SIZE) as u64,
                        expected: format!("the start of a patch stored at or before this commit (page {})", e.pgno),
                        found: format!("patch offset {at}"),
                    }),
                    Some(Err(p)) => Some(p.clone()),
                    Some(Ok(crc)) if *crc != e.crc => Some(Problem {
                        offset: at,
                        expected: format!("a patch making crc {:#010x} (page {} of version {version})", e.crc, e.pgno),
                        found: format!("crc {crc:#010x}"),
                    }),
                    Some(Ok(_)) => None,
                };
                if let Some(p) = found {
                    self.bad.insert(e.pgno, at);
                    problem.get_or_insert(p);
                }
                continue;
            }
            match self.frame_crc(e.offset, ps) {
                None => {
                    self.bad.insert(e.pgno, e.offset);
                    problem.get_or_insert(Problem {
                        offset: entry_base + (i * format::ENTRY_SIZE) as u64,
                        expected: format!(
                            "the offset of a {ps}-byte frame stored at or before this commit (page {})",
                            e.pgno
                        ),
                        found: format!("frame offset {}", e.offset),
                    });
                }
                Some(crc) if crc != e.crc => {
                    self.bad.insert(e.pgno, e.offset);
                    problem.get_or_insert(Problem {
                        offset: e.offset,
                        expected: format!("a frame with crc {:#010x} (page {} of version {version})", e.crc, e.pgno),
                        found: format!("crc {crc:#010x}"),
                    });
                }
                Some(_) => {}
            }
        }
        if self.checksum != rec.info.checksum {
            problem.get_or_insert(Problem {
                offset: at_info + format::CI_CHECKSUM as u64,
                expected: format!(
                    "whole-database checksum {:#018x} (recomputed from the page map and frame crcs)",
                    self.checksum
                ),
                found: format!("{:#018x}", rec.info.checksum),
            });
        }
        if problem.is_none() {
            if let Some((&pgno, &off)) = self.bad.iter().min_by_key(|(p, _)| **p) {
                problem = Some(Problem {
                    offset: off,
                    expected: format!("an intact frame for page {pgno} (unchanged since an earlier version)"),
                    found: "a damaged frame".into(),
                });
            }
        }
        Ok(problem)
    }
}
