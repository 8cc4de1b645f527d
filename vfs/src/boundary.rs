//! Commit boundaries: the places where a copy of the log may be cut.
//!
//! The bytes of a log from offset 0 up to the end of any valid COMMIT record
//! are themselves a valid log (FORMAT.md: the log is the longest prefix of
//! valid commits; nothing before a commit refers past it). A replica of the
//! log (`pagelog replicate`, crate `pagelog-replica`) is such a prefix,
//! shipped piece by piece: each piece ends at a commit boundary.
//!
//! [`Log::checked_commits`] is what a shipper calls: it walks forward from a
//! boundary the copy already holds, checking every record exactly as
//! `pagelog verify` does (header and trailer crcs, each record following the
//! commit before it, entries, and the crc of every frame each transaction
//! wrote), and returns the boundaries of the commits it passed, never past a
//! version the caller says is durable. Damage ends the walk and is returned
//! with the commits before it, so a shipper can ship those and refuse the rest.
//!
//! Format 4 (retention): bytes in `[512, B)` may be freed (holes) while the
//! log is in use. A walk that meets a hole there stops with
//! [`Checked::freed`] (what is freed is not damage). A shipper reads a
//! primary only at and after the `B` of the [`Shippable`] it holds while it
//! walks and copies (the shared epoch lock readers take, docs/format-4.md
//! "Readers and the epoch locks"), so no step punches what it reads: it
//! never reads a hole as if it were the log.
//!
//! Nothing here writes.

use std::fs::File;
use std::os::fd::AsFd;

use crate::error::{Error, Result};
use crate::format;
use crate::format::Entry;
use crate::lock;
use crate::log::{Link, Log, Rec};
use crate::patch;

/// The end of one commit: a copy of the log cut at `end` holds versions up
/// to `version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Boundary {
    pub version: u64,
    /// Offset of the COMMIT record (0 for version 0: no record).
    pub commit_offset: u64,
    /// The commit's trailer crc (0 for version 0).
    pub crc: u32,
    /// End of the COMMIT record (512 for version 0). A MARK that follows the
    /// commit is not included: it starts the next piece.
    pub end: u64,
    /// Commit time, microseconds since the Unix epoch (0 for version 0).
    pub timestamp_us: u64,
}

impl Boundary {
    /// The start of every log: version 0, before the first record.
    pub const START: Boundary =
        Boundary { version: 0, commit_offset: 0, crc: 0, end: format::FIRST_RECORD, timestamp_us: 0 };

    fn of(rec: &Rec) -> Boundary {
        Boundary {
            version: rec.h.version,
            commit_offset: rec.offset,
            crc: rec.crc,
            end: rec.end(),
            timestamp_us: rec.info.timestamp_us,
        }
    }

    fn link(&self) -> Link {
        Link { version: self.version, offset: self.commit_offset, crc: self.crc }
    }
}

/// What [`Log::checked_commits`] found.
#[derive(Debug)]
pub struct Checked {
    /// The commits passed, in order, each fully checked.
    pub commits: Vec<Boundary>,
    /// Damage right after the last commit of `commits` (or after the start):
    /// a record that should be there (the caller said a later version is
    /// durable) does not check out.
    pub damage: Option<Error>,
    /// The walk met a hole (or what is no record) below the log's boundary
    /// `B`, which retention freed: it stopped there, and this is not damage
    /// ("a hole below `B` is a freed region, a hole at or after `B` is
    /// damage", docs/format-4.md). Bytes below `B` that are still whole (a
    /// replica keeps what it shipped) are walked and checked as any.
    pub freed: Option<u64>,
}

/// The log's bytes from `from` on, held against reclamation until dropped
/// (see the module comment). `from` is the boundary `B` (512: nothing was
/// ever freed); `oldest` the oldest kept version once a step reclaimed any.
#[derive(Debug)]
pub struct Shippable {
    /// A description of the log's file of its own, holding the epoch lock.
    fd: Option<File>,
    epoch: u64,
    pub from: u64,
    pub oldest: Option<u64>,
    /// The offset of the CONTROL record whose boundary is `from` (0: none).
    /// A copy of the log that holds only its header and the bytes from
    /// `from` on reads the versions whose commits follow that record
    /// (their control state redirects everything below `from`), no older.
    pub control: u64,
    /// The lowest offset below `from` that the control state of `control`
    /// reads in place (`control.rs` invariant 6: frames of ALIGNED records
    /// a step left where they were); `from` when none. A copy that starts
    /// at `from` must also hold the bytes `[low, from)` (the frames there;
    /// the rest of them is freed and read by no one), or the versions it
    /// restores miss those pages.
    pub low: u64,
}

impl Drop for Shippable {
    fn drop(&mut self) {
        if let Some(fd) = &self.fd {
            let _ = lock::unlock(fd.as_fd(), lock::EPOCH_BASE + self.epoch);
        }
    }
}

impl Log {
    /// `entries` without the patches written by this transaction whose base
    /// lies below the boundary: their base was freed, so the patched page's
    /// crc cannot be checked from the bytes (a reader resolves the base
    /// through the base tree; `pagelog verify` and a restore check them
    /// that way). Every other frame is checked as before.
    fn based_at_or_after(&self, rec: &Rec, entries: Vec<Entry>, txn_start: u64, boundary: u64) -> Result<Vec<Entry>> {
        let mut kept = Vec::with_capacity(entries.len());
        for e in entries {
            if patch::is_patch(e.offset) && patch::position(e.offset) >= txn_start {
                let at = patch::position(e.offset);
                let based_below = match self.patch_at(at, rec.h.page_size, Some(rec.payload_end()))? {
                    Ok((_, p)) => p.base < boundary,
                    Err(_) => false, // check_commit names it
                };
                if based_below {
                    continue;
                }
            }
            kept.push(e);
        }
        Ok(kept)
    }

    /// The newest version known durable: claimed by a MARK, a commit's
    /// horizon or a SEALED commit (FORMAT.md "Claims"), after bringing the
    /// view up to date. Versions above it may still be only in the page cache.
    pub fn durable_version(&self) -> Result<u64> {
        self.refresh()?;
        Ok(self.lock().horizon.version)
    }

    /// Holds the bytes at and after the log's current boundary `B` against
    /// reclamation (a shared lock on the byte of the log's control epoch, as
    /// a reader's transaction holds it) until the result is dropped. A step
    /// that starts meanwhile may still move `B`, but punches nothing past
    /// the `B` returned here (`reclaim.rs`: it punches up to the boundary of
    /// an epoch no reader holds below).
    pub fn hold_shippable(&self) -> Result<Shippable> {
        loop {
            self.refresh()?;
            let s = self.retention_state();
            if s.epoch == 0 {
                return Ok(Shippable {
                    fd: None,
                    epoch: 0,
                    from: format::FIRST_RECORD,
                    oldest: None,
                    control: 0,
                    low: format::FIRST_RECORD,
                });
            }
            let fd = File::open(self.path()).map_err(|e| Error::io(self.path(), "open", None, e))?;
            let locked = lock::try_lock(fd.as_fd(), lock::EPOCH_BASE + s.epoch, lock::Mode::Shared)
                .map_err(|e| Error::io(self.path(), "lock", None, e))?;
            let c = self.lock().control.clone();
            let (control, from) = (c.offset, s.boundary);
            let mut held = Shippable { fd: Some(fd), epoch: s.epoch, from, oldest: s.oldest_kept, control, low: from };
            self.refresh()?;
            // The epoch did not move between reading it and locking it: no
            // step could punch past its boundary since, nor a frame its
            // state reads in place.
            if locked && self.retention_state().epoch == s.epoch && c.epoch() == s.epoch {
                match self.in_place_low(&c) {
                    Ok(low) => {
                        held.low = low;
                        return Ok(held);
                    }
                    // A step by another process since: look again.
                    Err(Error::Reclaimed { .. }) => continue,
                    Err(e) => return Err(e),
                }
            }
        }
    }

    /// The lowest offset a copy of the log that starts at `held.from` must
    /// also hold: [`Shippable::low`] (what the oldest kept version reads in
    /// place below `B`), or lower where a held commit after it wrote a page
    /// into a recycled slot below `B` that the state reads in place
    /// (`slots.rs` invariant 7). Walks the held commits' entries, so it is
    /// asked once per new generation, not per pass. When the control state
    /// moved since `held` was taken, or the held commits do not chain,
    /// 512: the copy then holds every byte below `B` (holes as zeros), a
    /// superset, while the epoch lock keeps what it reads there.
    pub fn head_low(&self, held: &Shippable) -> Result<u64> {
        if held.epoch == 0 {
            return Ok(held.low);
        }
        let c = self.lock().control.clone();
        if c.epoch() != held.epoch {
            return Ok(format::FIRST_RECORD);
        }
        Ok(match self.held_commits(&c)? {
            Some(commits) => held.low.min(self.held_in_place_low(&commits, &c)?),
            None => format::FIRST_RECORD,
        })
    }

    /// Where a copy of the log that starts at `offset` (a transaction start
    /// at or after the boundary, as [`Shippable::from`]) continues from: the
    /// commit the record at `offset` follows, as a boundary ending at
    /// `offset` (its record lies below, freed). None: no well-formed record
    /// there.
    pub fn continues_at(&self, offset: u64) -> Result<Option<Boundary>> {
        let Some(h) = self.header()? else { return Ok(None) };
        let len = self.file_len()?;
        let Some(rec) = self.read_record(h.salt, offset, len)? else { return Ok(None) };
        let p = rec.prev_link();
        Ok(Some(Boundary { version: p.version, commit_offset: p.offset, crc: p.crc, end: offset, timestamp_us: 0 }))
    }

    /// The commit whose record is at `offset`, if a valid COMMIT record is
    /// there (checked: header and trailer crcs). Version 0 is not a record:
    /// `offset` 0 gives [`Boundary::START`]. Below the boundary `B` the bytes
    /// are freed: a record may still be there (a replica keeps what it
    /// shipped; a step has not punched it yet), or a hole. A shipper reads
    /// the primary only at and after what [`Log::hold_shippable`] holds.
    pub fn boundary_at(&self, offset: u64) -> Result<Option<Boundary>> {
        if offset == 0 {
            return Ok(Some(Boundary::START));
        }
        let Some(h) = self.header()? else { return Ok(None) };
        let len = self.file_len()?;
        Ok(self.read_record(h.salt, offset, len)?.filter(|r| r.is_commit()).map(|r| Boundary::of(&r)))
    }

    /// Walks from `after` (a boundary of this log: [`Boundary::START`], or
    /// one [`Log::boundary_at`] returned) to version `upto`, checking every
    /// record and every frame written by each transaction, and returns the
    /// commits passed. It stops after the first commit that ends at least
    /// `max_bytes` past `after.end`, and at `upto` (which should be at most
    /// [`Log::durable_version`] for a shipper). A record that does not check
    /// out before `upto` is reached ends the walk as damage.
    pub fn checked_commits(&self, after: &Boundary, upto: u64, max_bytes: u64) -> Result<Checked> {
        let mut out = Checked { commits: Vec::new(), damage: None, freed: None };
        if upto <= after.version {
            return Ok(out);
        }
        let retention = self.retention_state();
        let boundary = retention.boundary;
        // Versions below the oldest kept one are reclaimed (FORMAT.md,
        // "Which versions a format-4 log holds"): their records still chain
        // from `B` on, but what they hold is not the log's any more — a
        // frame of theirs that died may have been punched, or recycled by a
        // later commit that wrote another page there (a RECYCLED commit).
        // Their frames are not checked (invariant of the module: what is
        // freed is not damage); the bytes still ship as they are.
        let oldest_kept = retention.oldest_kept.unwrap_or(0);
        let Some(header) = self.header()? else {
            return Err(self.corrupt(0, "a log header", "none"));
        };
        let salt = header.salt;
        let len = self.file_len()?;
        let mut prev = after.link();
        let mut pos = after.end;
        let mut txn_start = pos;
        let mut marked = false;
        // The page size of the commit before: a delta keeps it (0: unknown,
        // the commit lies below the boundary and was punched).
        let mut prev_ps = match after.commit_offset {
            0 => 0,
            o => self.read_record(salt, o, len)?.map_or(0, |r| r.h.page_size),
        };
        while prev.version < upto {
            let Some(rec) = self.read_record(salt, pos, len)? else {
                if pos < boundary {
                    out.freed = Some(boundary);
                    break;
                }
                out.damage = Some(self.corrupt(
                    pos,
                    format!("a well-formed record following version {} (version {upto} is durable)", prev.version),
                    "none (header, length or trailer does not check out)",
                ));
                break;
            };
            let follows = if rec.h.kind == format::KIND_MARK {
                !marked && pos == txn_start && prev.offset != 0 && rec.prev_link() == prev
            } else {
                let version_ok = if prev.offset == 0 {
                    rec.h.version >= 1
                } else {
                    Some(rec.h.version) == prev.version.checked_add(1)
                };
                version_ok && rec.h.prev_commit == prev.offset && rec.h.prev_crc == prev.crc
            };
            if !follows && pos < boundary {
                out.freed = Some(boundary);
                break;
            }
            if !follows {
                out.damage = Some(self.corrupt(
                    pos,
                    format!("a record following version {} at {} (crc {:#010x})", prev.version, prev.offset, prev.crc),
                    format!("a record of version {} following {}", rec.h.version, rec.h.prev_commit),
                ));
                break;
            }
            if rec.h.kind == format::KIND_MARK {
                marked = true;
                pos = rec.end();
                txn_start = pos;
                continue;
            }
            if !rec.is_commit() {
                pos = rec.end();
                continue;
            }
            if prev.offset == 0 && !rec.is_map() {
                out.damage = Some(self.corrupt(rec.offset, "a full page map (the first commit of a log)", "a delta"));
                break;
            }
            if !rec.is_map() && prev.offset != 0 && prev_ps != 0 && rec.h.page_size != prev_ps {
                out.damage = Some(self.corrupt(
                    rec.offset + format::RH_PAGE_SIZE as u64,
                    format!("page size {prev_ps} (a delta keeps its predecessor's)"),
                    rec.h.page_size.to_string(),
                ));
                break;
            }
            if rec.info.db_pages as u64 > format::max_db_pages(len) {
                out.damage = Some(self.corrupt(
                    rec.offset,
                    format!("at most {} database pages", format::max_db_pages(len)),
                    rec.info.db_pages.to_string(),
                ));
                break;
            }
            let mut entries = self.read_entries(&rec)?;
            let mut problem = None;
            let reclaimed = rec.h.version < oldest_kept;
            if boundary > format::FIRST_RECORD && !reclaimed {
                if rec.is_checkpoint() && entries.is_empty() {
                    // Its own frames, from its tree (as check_commit finds them).
                    match self.tree_entries(&rec, txn_start)? {
                        Ok(all) => {
                            entries = all.into_iter().filter(|e| patch::position(e.offset) >= txn_start).collect()
                        }
                        Err(d) => problem = Some((d.offset, d.expected, d.found)),
                    }
                }
                entries = self.based_at_or_after(&rec, entries, txn_start, boundary)?;
            }
            if problem.is_none()
                && !reclaimed
                && !(rec.is_checkpoint() && entries.is_empty() && boundary > format::FIRST_RECORD)
            {
                problem = self.check_commit(&rec, &entries, txn_start)?;
            }
            if let Some((offset, expected, found)) = problem {
                // What lies below the boundary is freed, not damage (a
                // reclaimed checkpoint's tree node, say: its version is
                // gone, its bytes still ship for the live items among them).
                if offset >= boundary {
                    out.damage = Some(self.corrupt(offset, expected, found));
                    break;
                }
            }
            let b = Boundary::of(&rec);
            out.commits.push(b);
            prev = rec.link();
            prev_ps = rec.h.page_size;
            pos = rec.end();
            txn_start = pos;
            marked = false;
            if b.end - after.end >= max_bytes {
                break;
            }
        }
        Ok(out)
    }
}
