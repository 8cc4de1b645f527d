//! Format 4: the free list's meaning, checked (FORMAT.md, "The free list":
//! no version the log holds, and nothing its control state names, reaches
//! a byte of a listed range).
//!
//! Invariants:
//! - items at or after the boundary `B` are checked, and below it the
//!   frames a held version reads in place (`control.rs` invariant 6); any
//!   other item below it is read where the control state redirects it, and
//!   its original bytes are freed whether listed or not;
//! - every item a held version reaches is checked: the oldest held
//!   version's map whole, then the entries of every later commit (a
//!   checkpoint's tree whole), each frame a page long, each patch as long
//!   as its header states, and the image each patch names as its base;
//! - the first overlap found is the problem, named by the range, the
//!   version and the page;
//! - except a recycled slot (FORMAT.md, "Frames in recycled slots"): a
//!   page image named by an entry of a RECYCLED commit after the listing
//!   record that lies exactly in a listed SLOT range (a page long, at the
//!   range's offset) was written there by that commit's transaction, and
//!   the next list leaves the slot out (`slots.rs` invariant 4). Which
//!   commits recycled what is read from the log (their entry tables), not
//!   taken from any process's memory.

use super::report::Problem;
use crate::error::Result;
use crate::freelist::FreeRange;
use crate::log::Log;
use crate::patch;

impl Log {
    /// The first range of the log's free list that overlaps an item a held
    /// version reaches (see the module documentation); None: none does.
    pub(super) fn free_list_overlap(&self, salt: u64, len: u64) -> Result<Option<Problem>> {
        let (control, latest) = {
            let st = self.lock();
            (st.control.clone(), st.latest.clone())
        };
        let list = control.free();
        if list.is_empty() || latest.number == 0 {
            return Ok(None);
        }
        let b = control.boundary();
        let over = |start: u64, end: u64| -> Option<FreeRange> {
            let i = list.partition_point(|r| r.end() <= start);
            list.get(i).filter(|r| r.offset < end).copied()
        };
        // The held commits, newest first, back to the oldest held.
        let oldest = control.info.oldest_version.max(1);
        let mut commits = Vec::new();
        let (mut off, mut crc) = (latest.commit_offset, latest.commit_crc);
        loop {
            let Some(r) = self.read_record(salt, off, len)?.filter(|r| r.is_commit() && r.crc == crc) else {
                return Ok(None); // the walk reports a broken chain
            };
            let (v, prev, prev_crc) = (r.h.version, r.h.prev_commit, r.h.prev_crc);
            commits.push(r);
            if v <= oldest || prev == 0 || prev < b {
                break;
            }
            (off, crc) = (prev, prev_crc);
        }
        // The images RECYCLED commits after the listing record name.
        let mut recycled = std::collections::HashSet::new();
        let mut pos = control.offset;
        while pos < len {
            let Some(r) = self.read_record(salt, pos, len)? else { break };
            if r.is_commit() && r.h.flags & crate::format::FLAG_RECYCLED != 0 {
                for e in self.read_entries(&r)? {
                    if e.offset != 0 && !patch::is_patch(e.offset) {
                        recycled.insert((e.offset, r.h.page_size));
                    }
                }
            }
            pos = r.end();
        }
        let in_slot = |x: u64, ps: u32, r: &FreeRange| {
            r.is_slot() && r.offset == x && r.length == ps && recycled.contains(&(x, ps))
        };
        let first = commits.last().expect("the latest");
        let (map, _, _) = self.build_map(salt, len, first, &control)?;
        let mut items: Vec<(u64, u32, u64, u32)> = Vec::new(); // version, page, slot, page size
        for p in 1..=map.pages() {
            if let Some(s) = map.get(p).filter(|s| s.offset != 0) {
                items.push((first.h.version, p, s.offset, first.h.page_size));
            }
        }
        for r in commits.iter().rev().skip(1) {
            for e in self.kept_entries(r, &control)? {
                if e.offset != 0 {
                    items.push((r.h.version, e.pgno, e.offset, r.h.page_size));
                }
            }
        }
        for (v, p, x, ps) in items {
            let pos = patch::position(x);
            if pos < b {
                if control.reads_in_place(p, x, ps) {
                    if let Some(r) = over(pos, pos + ps as u64).filter(|r| !in_slot(pos, ps, r)) {
                        return Ok(Some(Problem {
                            offset: r.offset,
                            expected: format!(
                                "a free-list range of the CONTROL record at {} over no frame a held version reads in \
                                 place below the boundary {b}",
                                control.offset
                            ),
                            found: format!(
                                "the range ({}, {}) over page {p}'s frame at {pos} (version {v})",
                                r.offset, r.length
                            ),
                        }));
                    }
                }
                continue;
            }
            let mut spans = Vec::with_capacity(2);
            if patch::is_patch(x) {
                let head = self.read_vec(pos, 16)?;
                let size = patch::stated_size(&head).unwrap_or(16) as u64;
                spans.push((pos, pos + size.max(16)));
                if let Some(base) =
                    patch::base_of(&head).filter(|&base| base >= b || control.reads_in_place(p, base, ps))
                {
                    spans.push((base, base + ps as u64));
                }
            } else {
                if over(pos, pos + ps as u64).is_some_and(|r| in_slot(pos, ps, &r)) {
                    continue;
                }
                spans.push((pos, pos + ps as u64));
            }
            for (s, e) in spans {
                // A patch's base may be a recycled slot's image too.
                if let Some(r) = over(s, e).filter(|r| !(e - s == ps as u64 && in_slot(s, ps, r))) {
                    return Ok(Some(Problem {
                        offset: r.offset,
                        expected: format!(
                            "a free-list range of the CONTROL record at {} over no item a held version reaches",
                            control.offset
                        ),
                        found: format!(
                            "the range ({}, {}) over page {p}'s item at {s} (version {v})",
                            r.offset, r.length
                        ),
                    }));
                }
            }
        }
        Ok(None)
    }
}
