//! Step 3 of verification, per record: the crc of every page image a
//! record stores ([`Log::hash_payload`]) and of every page its patches make
//! ([`Log::make_patches`]), computed once from the bytes and kept in the
//! [`Walk`] for the map entries that name them.
//!
//! Invariants:
//! - a record's patch area must be filled exactly by well-formed patches
//!   whose bases are images stored in checked records (or relocated copies
//!   in a CONTROL record's payload); a patch breaking that is damage
//!   whether or not an entry names it;
//! - a patch based below the boundary is not computed here: the base tree
//!   redirects it by page number, known once an entry names it
//!   ([`super::redirect`]).

use super::map::{Region, Walk};
use super::report::Problem;
use crate::error::Result;
use crate::format;
use crate::log::{Log, Rec};
use crate::patch;

impl Log {
    /// Computes the crc of every frame in `rec`'s payload region.
    pub(super) fn hash_payload(
        &self,
        rec: &Rec,
        w: &mut Walk,
        len: u64,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<()> {
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
    pub(super) fn make_patches(&self, rec: &Rec, w: &mut Walk) -> Result<u64> {
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
            if w.mid_start && p.base < w.redirect.control.as_ref().map_or(0, |c| c.boundary()).max(w.start) {
                // Based below the boundary: the base tree redirects it by
                // page number, known once an entry names the patch.
                w.redirect.low_based.insert(at | patch::PATCH_TAG);
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
}
