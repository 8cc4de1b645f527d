//! Format 4: where the walk starts on a log whose oldest part a retention
//! policy freed, the reclaimed versions it meets before the first full map
//! after the boundary, and how freed bytes are reported.
//!
//! Invariants (docs/format-4.md; FORMAT.md, "Which versions a format-4 log
//! holds" and "Claims"):
//! - bytes below the boundary `B` are never read and never damage; they are
//!   reported apart ([`VerifyReport::freed_bytes`]);
//! - the record at `B` follows a freed commit, taken as it names it (a
//!   horizon may name that commit exactly);
//! - when recovery refuses the log, zeros at 512 are freed only if a
//!   CONTROL record the walk meets declares them so; else they are damage;
//! - a reclaimed version (below the oldest kept) is checked as records,
//!   not listed; a kept version whose full map lies below `B` is damage.

use super::map::Walk;
use super::records::db_pages_bound;
use super::report::{Item, Problem, VerifyReport};
use crate::error::{Error, Result};
use crate::format;
use crate::history::Prev;
use crate::log::{Log, Rec};

impl Log {
    /// The walk's starting state: at 512, or at the boundary recovery found
    /// (or, when recovery refuses a format-4 log, after the zeros at 512),
    /// with the commit the record there must follow.
    pub(super) fn walk_start(&self, salt: u64, len: u64, rep: &mut VerifyReport) -> Result<(Walk, Prev)> {
        let mut w = Walk::default();
        w.txn_start = format::FIRST_RECORD;
        let mut pos = format::FIRST_RECORD;
        let mut prev = Prev::NONE;
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
            w.redirect.control = Some(control);
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
                                w.redirect.control = Some(st.control.clone());
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
        w.start = pos;
        if w.mid_start && prev.offset != 0 {
            // The freed commit the record at the start names: a horizon may
            // name it, exactly (FORMAT.md, "Claims").
            w.commits.insert(prev.offset, (prev.version, prev.crc));
            w.freed_version = prev.version;
        }
        Ok((w, prev))
    }

    /// A commit after the boundary before the first full map after it: a
    /// reclaimed version whose map cannot be built (its full map was freed).
    /// Its record must still keep step 3's rules, or the walk from B (the
    /// forward read) ends there.
    pub(super) fn before_first_map(
        &self,
        rec: &Rec,
        w: &mut Walk,
        len: u64,
    ) -> Result<std::result::Result<(), Problem>> {
        let version = rec.h.version;
        if let Some(p) = db_pages_bound(rec, len) {
            return Ok(Err(p));
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
            return Ok(Err(p));
        }
        let entries = self.read_entries(rec)?;
        if let Some((offset, expected, found)) = self.check_commit(rec, &entries, u64::MAX)? {
            return Ok(Err(Problem { offset, expected, found }));
        }
        w.commits.insert(rec.offset, (version, rec.crc));
        Ok(Ok(()))
    }
}

/// After the walk: the zeros at 512 no CONTROL record declared freed are
/// damage; else the bytes below where the walk started are freed, and the
/// versions a CONTROL record met later says were reclaimed leave the list.
pub(super) fn settle_freed(w: &Walk, rep: &mut VerifyReport) {
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
    } else if w.start > format::FIRST_RECORD {
        rep.freed_bytes = w.start - format::FIRST_RECORD;
        rep.oldest_kept = Some(w.oldest);
        // Versions a CONTROL record met later says were reclaimed.
        let before = rep.items.len();
        rep.items.retain(|i| i.version.is_none_or(|v| v >= w.oldest));
        rep.reclaimed_versions += (before - rep.items.len()) as u64;
    }
}
