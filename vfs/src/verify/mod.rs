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
//!
//! # Layout
//! - `report`: what verification says (the report, its items, problems);
//! - `walk`: the record walk, steps 1 to 4, one commit at a time;
//! - `records`: checks of single records and their links (shared with
//!   [`crate::salvage`]);
//! - `frames`: the crcs of stored frames and of the pages patches make;
//! - `map`: the page map the walk rebuilds, and the check of one commit
//!   against it;
//! - `reclaimed` and `redirect`: format 4, a log whose oldest part a
//!   retention policy freed; `free_list`: its free list over no held item;
//! - `verdict`: damage or tail, and whether the walk and recovery agree.

mod frames;
mod free_list;
mod map;
mod reclaimed;
mod records;
mod redirect;
mod report;
mod verdict;
mod walk;

use std::path::Path;

use crate::format;
use crate::log::{Log, OpenOptions};

pub use report::{Item, Problem, Tail, VerifyReport};

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
                || self.refresh_latest().ok().map(|v| v.number) != rep.recovered_version;
            if !problem || !changed || attempt == 3 {
                return rep;
            }
        }
    }

    fn verify_once(&self, progress: &mut dyn FnMut(u64, u64)) -> VerifyReport {
        let mut rep = VerifyReport::default();
        // Recovery first, then the file's length: everything recovery
        // reached lies below it, whatever writers append meanwhile.
        match self.refresh_latest() {
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
        // Format 4: no free-list range over what a held version reaches.
        if rep.recovery_error.is_none() && rep.error.is_none() {
            match self.free_list_overlap(header.salt, len) {
                Ok(Some(p)) => {
                    rep.items.push(Item { version: None, offset: p.offset, txn_start: p.offset, problem: Some(p) })
                }
                Ok(None) => {}
                Err(e) => rep.error = Some(e),
            }
        }
        progress(len, len);
        rep
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
