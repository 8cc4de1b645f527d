//! Checks of single records and of the links between them, each saying
//! *why* a record fails as a [`Problem`] at an offset: what the walk stops
//! at, shared with [`crate::salvage`] (which reads what a damaged log still
//! holds by the same rules).
//!
//! Invariants:
//! - these only read; nothing here decides damage or tail (the caller
//!   knows which version a problem concerns);
//! - a record a check accepts is one recovery's walk accepts too (the same
//!   rules: FORMAT.md, "Where CONTROL records lie", steps 3 and 5).

use super::report::Problem;
use crate::control::Control;
use crate::error::{Error, Result};
use crate::format::{self, Entry, RecordHeader};
use crate::history::Prev;
use crate::log::{Log, Rec};

/// The bound on `db pages` recovery's walk applies (a larger size ends it:
/// in an unclaimed tail, that is a torn tail, not damage).
pub(super) fn db_pages_bound(rec: &Rec, len: u64) -> Option<Problem> {
    let limit = format::max_db_pages(len);
    (rec.info.db_pages as u64 > limit).then(|| Problem {
        offset: rec.offset + (format::RECORD_HEADER_SIZE + format::CI_DB_PAGES) as u64,
        expected: format!("a database size of at most {limit} pages in a file of {len} bytes"),
        found: format!("{} pages", rec.info.db_pages),
    })
}

impl Log {
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
        let t =
            crate::index::TreeMap::checkpoint(rec.info.db_pages, root, rec.offset, rec.crc, mapping.clone(), rec.end());
        let none = Control::none();
        match t.to_page_map(control.unwrap_or(&none), &mapping) {
            Ok(m) => Ok(Ok(m.entries())),
            Err(Error::Corrupt { offset, expected, found, .. }) => Ok(Err(Problem { offset, expected, found })),
            Err(e) => Err(e),
        }
    }

    /// The whole page map of checkpoint `rec`, read from its tree (every
    /// node checked): through `control`'s redirections when the log has a
    /// boundary (nodes below it are read at their copies), else in place.
    pub(super) fn tree_map(
        &self,
        rec: &Rec,
        control: Option<&Control>,
    ) -> Result<std::result::Result<Vec<Entry>, Problem>> {
        Ok(match control {
            Some(c) if c.redirects() => self.checkpoint_entries(rec, Some(c))?,
            _ => self.tree_entries(rec, 0)?.map_err(|d| Problem {
                offset: d.offset,
                expected: d.expected,
                found: d.found,
            }),
        })
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

    pub(super) fn all_zero(&self, from: u64, to: u64) -> Result<bool> {
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
