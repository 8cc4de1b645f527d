//! The state of the verification walk ([`Walk`]): the page map rebuilt from
//! the commits walked so far, the crcs computed of every stored frame and
//! patch, and [`Walk::apply`], which checks one commit against them.
//!
//! Invariants:
//! - `map` is the page map of the last version applied, rebuilt from the
//!   entries (never read from the file's own full maps), and `checksum` the
//!   XOR of `format::page_hash(pgno, crc)` over it;
//! - a crc here is computed from bytes read, never taken from the file;
//! - a damaged frame stays in `bad` for as long as the map uses it, so it
//!   taints every version that still reads it;
//! - `regions` are in file order (frames are looked up by bisection).

use std::collections::HashMap;

use super::redirect::Redirects;
use super::report::Problem;
use crate::error::Result;
use crate::format::{self, Entry};
use crate::log::{Log, Rec};
use crate::patch;

/// A payload region: the crcs of the frames stored there, as computed.
pub(super) struct Region {
    pub(super) start: u64,
    pub(super) page_size: u32,
    pub(super) crcs: Vec<u32>,
}

/// The state of the verification walk: the page map as rebuilt so far.
#[derive(Default)]
pub(super) struct Walk {
    pub(super) regions: Vec<Region>,
    /// Patches stored in checked records (entry offset, i.e. with the
    /// patch tag) → the crc of the page each makes, or why it makes none.
    pub(super) patches: HashMap<u64, std::result::Result<u32, Problem>>,
    /// A problem of the patch area of the record being checked.
    pub(super) area_problem: Option<Problem>,
    /// Page map of the last version: (frame offset, crc) per page.
    map: Vec<(u64, u32)>,
    /// Pages of `map` whose frame is damaged, with the frame offset.
    bad: HashMap<u32, u64>,
    checksum: u64,
    pub(super) page_size: u32,
    /// Commit offset → (version, trailer crc), for horizon checks.
    pub(super) commits: HashMap<u64, (u64, u32)>,
    /// The newest map commit (a full map, a checkpoint or a summary): what
    /// a delta names in `full map offset`.
    pub(super) last_full: u64,
    /// Format 4: the newest checkpoint (offset, trailer crc) and its page
    /// map, which a summary's entries are relative to.
    pub(super) last_ckpt: (u64, u32),
    ckpt_map: Vec<(u64, u32)>,
    /// Format 4: the CONTROL record in force (offset, trailer crc): the
    /// newest with CLAIM, or a checkpoint's copy once its COMMIT followed
    /// (`pending_control`, with its end).
    pub(super) control_in_force: (u64, u32),
    pub(super) pending_control: Option<(u64, u32, u64)>,
    pub(super) max_horizon: u64,
    pub(super) txn_start: u64,
    /// A MARK already follows the last commit.
    pub(super) marked: bool,
    /// Format 4: the last INDEX record since the previous commit (offset,
    /// crc), which a checkpoint must name.
    pub(super) index: Option<(u64, u32)>,
    /// Format 4: how references below the boundary resolve.
    pub(super) redirect: Redirects,
    /// The oldest kept version (0: all are).
    pub(super) oldest: u64,
    /// Where the walk started.
    pub(super) start: u64,
    /// The version of the freed commit the record at the start names (0:
    /// the walk started at 512).
    pub(super) freed_version: u64,
    /// The walk started after 512 (at the boundary): commits before the
    /// first full map after it have no map to check.
    pub(super) mid_start: bool,
    /// Recovery refused the log and the walk started after zeros at 512
    /// (this offset) that no CONTROL record declared freed yet.
    pub(super) unproven: Option<u64>,
    /// CONTROL records' payloads walked (start, end): relocated items.
    pub(super) payloads: Vec<(u64, u64)>,
}

impl Walk {
    /// The computed crc of the frame of `ps` bytes starting at `offset`, if
    /// a checked record stores one there.
    pub(super) fn frame_crc(&self, offset: u64, ps: u32) -> Option<u32> {
        let i = self.regions.partition_point(|r| r.start <= offset).checked_sub(1)?;
        let r = &self.regions[i];
        let rel = offset - r.start;
        if r.page_size != ps || rel % ps as u64 != 0 {
            return None;
        }
        r.crcs.get((rel / ps as u64) as usize).copied()
    }

    /// Applies a commit (whose entries passed `check_commit`) to the page
    /// map; returns the first problem of the version it makes.
    pub(super) fn apply(&mut self, log: &Log, rec: &Rec, entries: &[Entry]) -> Result<Option<Problem>> {
        let mut problem: Option<Problem> = self.area_problem.take();
        let version = rec.h.version;
        let ps = rec.h.page_size;
        let at_info = rec.offset + format::RECORD_HEADER_SIZE as u64;
        if let Some((at, crc, end)) = self.pending_control.take() {
            if end == rec.offset {
                self.control_in_force = (at, crc);
            }
        }
        let want_full = if rec.is_map() {
            rec.offset
        } else if rec.is_summary() {
            self.last_ckpt.0
        } else {
            self.last_full
        };
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
        let freed = self.redirect.control.as_ref().is_some_and(|c| ho < c.boundary()) && hv < self.freed_version;
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
            if let Some(checked) = self.redirect.check(log, e, ps, version)? {
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
        if rec.is_summary() {
            if let Some(p) = self.summary(rec, entries) {
                problem.get_or_insert(p);
            }
        }
        if rec.is_checkpoint() {
            self.last_ckpt = (rec.offset, rec.crc);
            self.ckpt_map = self.map.clone();
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

    /// Checks summary `rec` (FORMAT.md, "Summary commits", verify), its
    /// entries applied as a delta to `map` already: it names the newest
    /// checkpoint and the control state in force, and its map built from
    /// that checkpoint with its entries is the one its chain gives. On a
    /// difference the map goes on as readers build it (from the
    /// checkpoint), and the problem names the summary.
    fn summary(&mut self, rec: &Rec, entries: &[Entry]) -> Option<Problem> {
        let version = rec.h.version;
        let info_at = rec.offset
            + (format::RECORD_HEADER_SIZE + format::COMMIT_INFO_SIZE + entries.len() * format::ENTRY_SIZE) as u64;
        let sum = rec.sum;
        if (sum.checkpoint, sum.checkpoint_crc) != self.last_ckpt {
            return Some(Problem {
                offset: info_at,
                expected: format!(
                    "the summary of version {version} at {} naming the newest checkpoint, at {} (crc {:#010x})",
                    rec.offset, self.last_ckpt.0, self.last_ckpt.1
                ),
                found: format!("checkpoint {} (crc {:#010x})", sum.checkpoint, sum.checkpoint_crc),
            });
        }
        let mut alt = self.ckpt_map.clone();
        alt.resize(rec.info.db_pages as usize, (0, 0));
        for e in entries {
            alt[e.pgno as usize - 1] = (e.offset, e.crc);
        }
        let differs = alt.iter().zip(&self.map).position(|(a, b)| a != b);
        let problem = if let Some(i) = differs {
            let (ao, bo) = (alt[i].0, self.map[i].0);
            self.map = alt;
            self.checksum = self
                .map
                .iter()
                .enumerate()
                .filter(|(_, s)| s.0 != 0)
                .fold(0, |x, (i, s)| x ^ format::page_hash(i as u32 + 1, s.1));
            Some(Problem {
                offset: rec.offset,
                expected: format!(
                    "the summary of version {version} at {}: its map (checkpoint {} and its entries) the previous \
                     version's with its own changes",
                    rec.offset, sum.checkpoint
                ),
                found: format!("page {} at {ao} from the checkpoint, at {bo} by the chain", i + 1),
            })
        } else {
            None
        };
        if problem.is_none() && (sum.control, sum.control_crc) != self.control_in_force {
            return Some(Problem {
                offset: info_at + format::SM_CONTROL as u64,
                expected: format!(
                    "the summary of version {version} at {} naming the CONTROL record in force, at {} (crc {:#010x})",
                    rec.offset, self.control_in_force.0, self.control_in_force.1
                ),
                found: format!("control {} (crc {:#010x})", sum.control, sum.control_crc),
            });
        }
        problem
    }
}
