//! What verification says: [`VerifyReport`], the items it lists and the
//! [`Problem`]s it found.
//!
//! Pure data, built by the walk and read by `pagelog verify`, `info` and
//! the replica's fetch. Invariants the walk keeps:
//! - `items` are in file order; an item with a problem is damage (inside
//!   committed history); an unfinished transaction past the durable version
//!   is never an item but the [`Tail`], a warning;
//! - every [`Problem`] names an offset in the file, and when it concerns a
//!   version, that version's item holds it.

use crate::error::Error;

/// A check that failed: where, and what was expected and found there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub offset: u64,
    pub expected: String,
    pub found: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at offset {}: expected {}, found {}", self.offset, self.expected, self.found)
    }
}

/// One checked item: a version (its commit record), or a record that is
/// not a valid part of committed history (`version` None).
#[derive(Debug, Clone)]
pub struct Item {
    pub version: Option<u64>,
    /// The COMMIT record (or the bad record).
    pub offset: u64,
    /// Where the version's transaction starts (its first SPILL record).
    pub txn_start: u64,
    pub problem: Option<Problem>,
}

/// Bytes past the last version that recovery keeps: an unfinished
/// transaction, pre-allocated zeros or debris. Not damage.
#[derive(Debug, Clone)]
pub struct Tail {
    pub offset: u64,
    pub bytes: u64,
    /// Well-formed commits in the tail that `open` does not keep (their
    /// transaction was never made durable).
    pub lost_versions: Vec<u64>,
    /// Why the walk did not take the tail as history.
    pub reason: Problem,
    /// The tail is all zero bytes (pre-allocated space).
    pub zeros: bool,
}

/// What [`Log::verify`](crate::log::Log::verify) found.
#[derive(Debug, Default)]
pub struct VerifyReport {
    pub file_len: u64,
    /// Versions in file order, each ok or invalid, then any bad record that
    /// ended the walk inside committed history.
    pub items: Vec<Item>,
    /// Page images whose crc was computed (every frame stored in a checked record).
    pub frames_checked: u64,
    /// Bytes walked from the start of the file.
    pub bytes_checked: u64,
    /// End of the last walked commit.
    pub end: u64,
    /// The last version with no problem before the first invalid one.
    pub last_good_version: u64,
    /// The latest version `open` recovers, if recovery succeeds.
    pub recovered_version: Option<u64>,
    /// Why recovery fails (damage).
    pub recovery_error: Option<String>,
    /// Versions up to this one were durable: problems there are damage.
    pub durable_version: u64,
    pub tail: Option<Tail>,
    /// The file could not be read as a log at all (not a log, I/O error).
    pub error: Option<Error>,
    /// Format 4: bytes below the boundary, freed by the retention policy
    /// (`[512, B)`): not read, not damage.
    pub freed_bytes: u64,
    /// Format 4, when a retention policy reclaimed versions: the oldest kept.
    pub oldest_kept: Option<u64>,
    /// Commits walked after the boundary that belong to reclaimed versions
    /// (below the oldest kept): checked as records, not listed.
    pub reclaimed_versions: u64,
}

impl VerifyReport {
    /// The first damage inside committed history, if any.
    pub fn damage(&self) -> Option<&Problem> {
        self.items.iter().find_map(|i| i.problem.as_ref())
    }

    /// True when committed history is damaged, recovery fails, or the file
    /// could not be read as a log.
    pub fn damaged(&self) -> bool {
        self.error.is_some() || self.recovery_error.is_some() || self.damage().is_some()
    }

    pub fn ok_count(&self) -> usize {
        self.items.iter().filter(|i| i.problem.is_none()).count()
    }

    pub fn invalid_count(&self) -> usize {
        self.items.iter().filter(|i| i.problem.is_some()).count() + usize::from(self.recovery_error.is_some())
    }

    pub fn versions_checked(&self) -> usize {
        self.items.iter().filter(|i| i.version.is_some()).count()
    }
}
