//! A log's history as a whole: the list of its versions ([`Log::history`])
//! and the facts `pagelog log` and `info` show (the header, the oldest
//! version, what a retention policy keeps), plus the link rule every walk of
//! the records shares ([`Prev`]: the commit a record must follow).
//!
//! Nothing here writes to a log. Checking every byte of committed history
//! is in [`crate::verify`]; compaction, which rewrites a log keeping only
//! its newest versions, in [`crate::compact`].

use crate::error::{Error, Result};
use crate::format::{self, Entry, Header};
use crate::log::{Log, Rec};

/// One version as `pagelog log` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitSummary {
    pub version: u64,
    /// Commit time, microseconds since the Unix epoch.
    pub timestamp_us: u64,
    /// Frames this transaction wrote: map entries pointing at or after the
    /// end of the previous commit (a revert writes only page 1). A format-4
    /// checkpoint has no entry table: its slots that name its own frames.
    pub pages_written: u32,
    pub db_pages: u32,
    pub page_size: u32,
    /// Bytes of the transaction's records: its SPILL records, a checkpoint's
    /// INDEX and CONTROL records, and its COMMIT.
    pub bytes: u64,
    /// Offset of the COMMIT record.
    pub offset: u64,
    pub full_map: bool,
    /// The whole-database checksum stored in the commit.
    pub checksum: u64,
}

impl CommitSummary {
    /// The summary of commit `rec`, whose transaction started at
    /// `txn_start`, with its map entries `entries`.
    pub(crate) fn of(rec: &Rec, txn_start: u64, entries: &[Entry]) -> CommitSummary {
        let written = entries.iter().filter(|e| e.offset != 0 && e.offset >= txn_start).count();
        CommitSummary {
            version: rec.h.version,
            timestamp_us: rec.info.timestamp_us,
            pages_written: written as u32,
            db_pages: rec.info.db_pages,
            page_size: rec.h.page_size,
            bytes: rec.end() - txn_start,
            offset: rec.offset,
            full_map: rec.is_map(),
            checksum: rec.info.checksum,
        }
    }
}

/// Where a record must link to: the commit before it.
#[derive(Clone, Copy)]
pub(crate) struct Prev {
    pub(crate) version: u64,
    pub(crate) offset: u64,
    pub(crate) crc: u32,
}

impl Prev {
    pub(crate) const NONE: Prev = Prev { version: 0, offset: 0, crc: 0 };

    pub(crate) fn of(rec: &Rec) -> Prev {
        Prev { version: rec.h.version, offset: rec.offset, crc: rec.crc }
    }

    /// Does `rec` follow this commit? The first record of a file may carry
    /// any version >= 1 (a compacted log starts at its oldest kept version).
    pub(crate) fn follows(&self, rec: &Rec) -> bool {
        if rec.h.kind == format::KIND_MARK {
            // A MARK names the commit it follows, and nothing but a commit.
            return self.offset != 0
                && rec.h.version == self.version
                && rec.h.prev_commit == self.offset
                && rec.h.prev_crc == self.crc;
        }
        let version_ok =
            if self.offset == 0 { rec.h.version >= 1 } else { Some(rec.h.version) == self.version.checked_add(1) };
        version_ok && rec.h.prev_commit == self.offset && rec.h.prev_crc == self.crc
    }

    pub(crate) fn describe(&self) -> String {
        if self.offset == 0 {
            "the first record of the log (version >= 1, prev commit 0, prev crc 0)".into()
        } else {
            format!(
                "a record of version {} following commit {} at {} (prev crc {:#010x})",
                self.version.saturating_add(1),
                self.version,
                self.offset,
                self.crc
            )
        }
    }
}

pub(crate) fn describe_link(rec: &Rec) -> String {
    format!(
        "a {} of version {} following the commit at {} (prev crc {:#010x})",
        match rec.h.kind {
            format::KIND_COMMIT => "commit",
            format::KIND_MARK => "mark",
            _ => "spill record",
        },
        rec.h.version,
        rec.h.prev_commit,
        rec.h.prev_crc
    )
}

/// Format 4: what a log's retention policy keeps (docs/format-4.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionState {
    pub policy: crate::retention::Policy,
    /// The boundary `B`: bytes in `[512, B)` are freed (512: none).
    pub boundary: u64,
    /// The oldest kept version `Vo`, once a step reclaimed versions.
    pub oldest_kept: Option<u64>,
    /// The control state's epoch (0: the log has no CONTROL record).
    pub epoch: u64,
}

impl Log {
    /// The retention state as this process last read it (after `refresh`).
    pub fn retention_state(&self) -> RetentionState {
        let st = self.lock();
        let c = &st.control;
        RetentionState {
            policy: c.policy(),
            boundary: c.boundary(),
            oldest_kept: c.redirects().then_some(c.info.oldest_version),
            epoch: c.epoch(),
        }
    }

    /// The file header, if the file has one (`None`: an empty log).
    pub fn header(&self) -> Result<Option<Header>> {
        let len = self.file_len()?;
        self.read_header(len)
    }

    fn salt(&self) -> Result<u64> {
        match self.header()? {
            Some(h) => Ok(h.salt),
            None => Err(self.corrupt(0, "a log header", "none")),
        }
    }

    /// The oldest version the log holds: 1, or where a compacted log starts;
    /// 0 for an empty log.
    pub fn oldest_version(&self) -> Result<u64> {
        let latest = self.refresh()?;
        if latest.number == 0 {
            return Ok(0);
        }
        if let Some(v) = self.oldest_kept() {
            return Ok(v); // format 4: a retention policy freed the versions before it
        }
        let salt = self.salt()?;
        match self.read_record(salt, format::FIRST_RECORD, latest.end)? {
            Some(r) if r.h.version >= 1 && r.h.version <= latest.number => Ok(r.h.version),
            _ => Err(self.corrupt(format::FIRST_RECORD, "the first record of the log", "no valid record")),
        }
    }

    /// Every version in the file, oldest first, by a forward walk over the
    /// records from offset 512 to the latest version's end. Version 0 is not
    /// listed.
    pub fn history(&self) -> Result<Vec<CommitSummary>> {
        let latest = self.refresh()?;
        if latest.number == 0 {
            return Ok(Vec::new());
        }
        let salt = self.salt()?;
        let end = latest.end;
        let mut out = Vec::new();
        // Format 4: below the boundary the log is freed; the walk starts at
        // the record there, which follows a commit no longer in the file, and
        // lists the versions the retention policy keeps.
        let (boundary, oldest) = {
            let st = self.lock();
            (st.control.boundary(), if st.control.redirects() { st.control.info.oldest_version } else { 0 })
        };
        let mut pos = boundary;
        let mut txn_start = pos;
        let mut prev = Prev::NONE;
        if boundary > format::FIRST_RECORD {
            if let Some(r) = self.read_record(salt, pos, end)? {
                let l = r.prev_link();
                prev = Prev { version: l.version, offset: l.offset, crc: l.crc };
            }
        }
        while pos < end {
            let rec = match self.read_record(salt, pos, end)? {
                Some(r) => r,
                None => return Err(self.corrupt(pos, prev.describe(), "no well-formed record")),
            };
            if !prev.follows(&rec) {
                return Err(self.corrupt(pos, prev.describe(), describe_link(&rec)));
            }
            if rec.is_commit() && rec.h.version < oldest {
                prev = Prev::of(&rec);
                txn_start = rec.end();
            } else if rec.is_commit() {
                let entries = self.read_entries(&rec)?;
                let entries = self.written_entries(&rec, txn_start, entries)?.map_err(|d| {
                    let expected = format!("{} (the index tree of version {})", d.expected, rec.h.version);
                    self.corrupt(d.offset, expected, d.found)
                })?;
                out.push(CommitSummary::of(&rec, txn_start, &entries));
                prev = Prev::of(&rec);
                txn_start = rec.end();
            } else if rec.h.kind == format::KIND_MARK || rec.is_control() && rec.h.flags & format::FLAG_CLAIM != 0 {
                // Between transactions: a MARK, or a CONTROL record with
                // CLAIM (a reclamation step, a policy). One without CLAIM
                // is a checkpoint's own, right before its COMMIT (FORMAT.md,
                // "Where CONTROL records lie"): its bytes are the
                // checkpoint's, as its INDEX record's are.
                txn_start = rec.end();
            }
            pos = rec.end();
        }
        if prev.version != latest.number || prev.offset != latest.commit_offset {
            return Err(self.corrupt(
                pos,
                format!("the commit of version {} at {}", latest.number, latest.commit_offset),
                format!("version {} at {}", prev.version, prev.offset),
            ));
        }
        Ok(out)
    }

    /// The map entries of commit `rec` (its transaction started at
    /// `txn_start`) that [`CommitSummary::of`] counts: its entry table
    /// (`entries`, as read); for a checkpoint written without one (its tree
    /// is its whole map), the slots of the tree nodes its own transaction
    /// wrote. Only those can name its frames (nodes are copy-on-write: an
    /// older node names nothing written after it), and they are the
    /// subtrees in which its tree differs from the previous version's, so
    /// the cost is what the checkpoint wrote, not the tree.
    /// Ok(Err(damage)): one of those nodes is damaged.
    pub(crate) fn written_entries(
        &self,
        rec: &Rec,
        txn_start: u64,
        entries: Vec<Entry>,
    ) -> Result<std::result::Result<Vec<Entry>, crate::tree::Damage>> {
        if !rec.is_checkpoint() || !entries.is_empty() {
            return Ok(Ok(entries));
        }
        self.tree_entries(rec, txn_start)
    }

    /// True while `self.path()` still names the file this log has open (it
    /// no longer does once a compaction renamed a new log over it).
    pub fn is_current_file(&self) -> Result<bool> {
        let stat = |e| Error::io(self.path(), "stat", None, e);
        Ok(crate::stat::identity(self.path()).map_err(stat)? == crate::stat::identity_of(self.file()).map_err(stat)?)
    }
}
