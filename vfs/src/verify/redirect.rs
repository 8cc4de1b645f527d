//! Format 4: checking the references of kept versions that read through the
//! base tree ([`Redirects`]), because they lie below the boundary `B` or
//! are patches based below it.
//!
//! Invariants (INV-1 of docs/format-4.md; FORMAT.md, "Which versions a
//! format-4 log holds"):
//! - a reference below `B` must resolve, through the control state recovery
//!   installed, to an item at or after `B` that makes the entry's crc, or
//!   be read in place (`control.rs` invariant 6: a frame of an ALIGNED
//!   record a step kept) and make it there; one that does not is damage at
//!   the item (or at the reference when none);
//! - nothing else below `B` is ever read: bytes there are freed, not damage;
//! - each relocated item's crc is computed once (`resolved`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::report::Problem;
use crate::control::Control;
use crate::error::Result;
use crate::format::{self, Entry};
use crate::log::Log;
use crate::pagemap::Slot;
use crate::patch;

/// What the walk knows of the region below the boundary.
#[derive(Default)]
pub(super) struct Redirects {
    /// The control state references below the boundary resolve through
    /// (None: the log has no boundary).
    pub(super) control: Option<Arc<Control>>,
    /// Patches (entry offsets) whose base lies below the boundary.
    pub(super) low_based: HashSet<u64>,
    /// The crc each relocated item a reference resolved to makes, by offset.
    resolved: HashMap<u64, std::result::Result<u32, Problem>>,
}

impl Redirects {
    /// The crc of the page the item at `offset` (an image, or a patch whose
    /// base resolves through `c` for page `pgno`) makes, or why it makes none.
    fn item_crc(log: &Log, c: &Control, pgno: u32, offset: u64, ps: u32) -> Result<std::result::Result<u32, Problem>> {
        let at = patch::position(offset);
        if c.reads_in_place(pgno, offset, ps) {
            // A frame a step left in place (`control.rs` invariant 6).
            return Ok(Ok(format::frame_crc(&log.read_vec(offset, ps as usize)?)));
        }
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
        let Some(base) = c.base(pgno, p.base, ps) else {
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
        let Some(s) = c.slot(e.pgno, Slot { offset: e.offset, crc: e.crc }, ps) else {
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
                let r = Redirects::item_crc(log, c, e.pgno, s.offset, ps)?;
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
    pub(super) fn check(&mut self, log: &Log, e: &Entry, ps: u32, version: u64) -> Result<Option<Option<Problem>>> {
        let Some(c) = self.control.clone() else { return Ok(None) };
        let at = patch::position(e.offset);
        if at < c.boundary() {
            return Ok(Some(self.resolve(log, &c, e, ps, version)?));
        }
        if !self.low_based.contains(&e.offset) {
            return Ok(None);
        }
        Ok(Some(match Redirects::item_crc(log, &c, e.pgno, e.offset, ps)? {
            Err(p) => Some(p),
            Ok(crc) if crc != e.crc => Some(Problem {
                offset: at,
                expected: format!("a patch making crc {:#010x} (page {} of version {version})", e.crc, e.pgno),
                found: format!("crc {crc:#010x}"),
            }),
            Ok(_) => None,
        }))
    }
}
