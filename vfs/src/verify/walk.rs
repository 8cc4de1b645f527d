//! The record walk ([`Log::walk`]): every record from where the walk starts
//! to the end of the file, by its length, the way the log was written
//! (steps 1 to 4 of the module documentation of [`super`]).
//!
//! Invariants:
//! - every record must follow the commit before it exactly ([`Prev`]); the
//!   first that does not, or is not well-formed, ends the walk (the *stop*,
//!   with the version it concerns), and nothing after it is history;
//! - a MARK is taken only right after a commit (once); a CONTROL record
//!   right after a commit sits between commits, as a MARK;
//! - a commit whose structure or links fail ends the walk; one whose page
//!   map fails is listed as invalid and the walk goes on;
//! - what the walk found is sorted into damage and tail only after it
//!   ([`super::verdict`]).

use super::map::Walk;
use super::reclaimed::settle_freed;
use super::records::db_pages_bound;
use super::report::{Item, Problem, VerifyReport};
use super::verdict::End;
use crate::error::Result;
use crate::format;
use crate::history::{describe_link, Prev};
use crate::log::{Log, Rec};

impl Log {
    /// Walks the records after the header and fills `rep` (see the module
    /// documentation).
    pub(super) fn walk(
        &self,
        salt: u64,
        len: u64,
        rep: &mut VerifyReport,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<()> {
        // What recovery found, just before (the walk must reach it).
        let recovered = self.lock().latest.clone();
        let (mut w, prev) = self.walk_start(salt, len, rep)?;
        let end = self.walk_records(salt, len, &mut w, prev, rep, progress)?;
        settle_freed(&w, rep);
        self.verdict(salt, len, &mut w, end, &recovered, rep)
    }

    /// The walk proper, from `w.start`: where it ended, and why.
    fn walk_records(
        &self,
        salt: u64,
        len: u64,
        w: &mut Walk,
        mut prev: Prev,
        rep: &mut VerifyReport,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<End> {
        let mut pos = w.start;
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
                self.hash_payload(&rec, w, len, progress)?;
                rep.frames_checked += rec.h.frames as u64;
            }
            if rec.h.patch_words > 0 {
                rep.frames_checked += self.make_patches(&rec, w)?;
            }
            if rec.is_control() {
                // A reclamation step's copies: patches may be based on them.
                w.payloads.push((rec.offset + rec.payload_start, rec.payload_end()));
                if rec.h.flags & format::FLAG_CLAIM != 0 {
                    w.max_horizon = w.max_horizon.max(prev.version);
                    w.control_in_force = (rec.offset, rec.crc);
                } else {
                    w.pending_control = Some((rec.offset, rec.crc, rec.end()));
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
                    w.index = Some((rec.offset, rec.crc));
                }
                pos = rec.end();
                continue;
            }
            if let Err(p) = self.walk_commit(salt, len, &rec, &prev, w, rep)? {
                stop = Some((rec.h.version, p));
                break;
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
        Ok(End { pos, stop })
    }

    /// Checks commit `rec` and applies it to the page map; Err: the problem
    /// that ends the walk there.
    fn walk_commit(
        &self,
        salt: u64,
        len: u64,
        rec: &Rec,
        prev: &Prev,
        w: &mut Walk,
        rep: &mut VerifyReport,
    ) -> Result<std::result::Result<(), Problem>> {
        let version = rec.h.version;
        if w.mid_start && w.page_size == 0 && !rec.is_map() {
            w.index = None;
            return self.before_first_map(rec, w, len);
        }
        if let Some(p) = self.check_structure(rec, prev, w, len)? {
            return Ok(Err(p));
        }
        // Its map must build (step 5), and recovery's walk ends before a
        // checkpoint that does not name its transaction's records.
        // A reclaimed checkpoint right at the boundary (below): its INDEX and
        // CONTROL records lay before B and were freed with its version; there
        // is nothing left to link.
        let reclaimed_at_b = w.mid_start && w.page_size == 0 && version < w.oldest && rec.offset == w.start;
        let links = if reclaimed_at_b { None } else { self.map_links(salt, len, rec, w.index.take())? };
        if let Some(p) = links {
            return Ok(Err(p));
        }
        // A format-4 checkpoint's map is its tree, read whole here (every
        // node checked) and applied as a full map.
        let entries = if rec.is_checkpoint() {
            match self.tree_map(rec, w.redirect.control.as_deref())? {
                Ok(e) => e,
                Err(_) if w.mid_start && version < w.oldest => {
                    // A reclaimed checkpoint after the boundary (right at it:
                    // the commit before the oldest kept version's checkpoint,
                    // which that one names; or any between a step's boundary
                    // and that checkpoint, a revert's say): its tree may
                    // share nodes below `B` that no kept checkpoint reaches,
                    // freed with its version and not relocated (FORMAT.md,
                    // "Which versions a format-4 log holds": a reclaimed
                    // version need not read). Its frames were checked above;
                    // nothing else of it is kept, and the reclaimed deltas
                    // after it are checked as records until the next map.
                    w.page_size = 0;
                    w.commits.insert(rec.offset, (version, rec.crc));
                    rep.reclaimed_versions += 1;
                    return Ok(Ok(()));
                }
                Err(p) => return Ok(Err(p)),
            }
        } else {
            self.read_entries(rec)?
        };
        if let Some((offset, expected, found)) = self.check_commit(rec, &entries, u64::MAX)? {
            return Ok(Err(Problem { offset, expected, found }));
        }
        let problem = w.apply(self, rec, &entries)?;
        w.max_horizon = w.max_horizon.max(rec.info.horizon_version);
        w.commits.insert(rec.offset, (version, rec.crc));
        if rec.is_map_commit() {
            w.last_full = rec.offset;
        }
        if version >= w.oldest {
            rep.items.push(Item { version: Some(version), offset: rec.offset, txn_start: w.txn_start, problem });
        } else {
            rep.reclaimed_versions += 1;
        }
        Ok(Ok(()))
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
}
