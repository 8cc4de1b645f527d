//! After the walk: what of the problems found is **damage** and what is an
//! **unfinished tail**, and whether the walk and recovery agree.
//!
//! Invariants (module documentation of [`super`], "Damage, or an
//! unfinished tail?"):
//! - the durable version is `max(recovered version, any horizon or MARK
//!   the file names)`, including the last well-formed record past the stop;
//! - a problem at or below it is damage; everything from the first problem
//!   past it on is the tail, whose well-formed commits are lost versions;
//! - recovery must reach exactly the last version the walk accepts, and the
//!   walk must reach recovery's latest commit: a disagreement is damage.

use super::map::Walk;
use super::report::{Item, Problem, Tail, VerifyReport};
use crate::error::Result;
use crate::format;
use crate::log::{Log, Version};

/// Where the walk ended, and the first problem that ended it with the
/// version it concerns (None: it reached the end of the file).
pub(super) struct End {
    pub(super) pos: u64,
    pub(super) stop: Option<(u64, Problem)>,
}

impl Log {
    /// Sorts what the walk that ended at `end` found; `recovered` is what
    /// recovery found just before the walk.
    pub(super) fn verdict(
        &self,
        salt: u64,
        len: u64,
        w: &mut Walk,
        end: End,
        recovered: &Version,
        rep: &mut VerifyReport,
    ) -> Result<()> {
        let End { pos, stop } = end;
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
            if let Ok(v) = self.refresh_latest() {
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
}
