//! Errors of the log layer. Messages name the file (escaped, see
//! [`crate::name`]), the offset and what was expected; `sqlite::errors` maps
//! them to SQLite result codes in one place.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::name::EscapedName;

#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system call failed.
    Io { path: PathBuf, op: &'static str, offset: Option<u64>, source: io::Error },
    /// The file exists and is not empty, but is not a pagelog log. It was not modified.
    NotALog { path: PathBuf, reason: String },
    /// Committed history failed a check: the log is damaged at `offset`.
    Corrupt { path: PathBuf, offset: u64, expected: String, found: String },
    /// Another connection holds the write lock, or this one's snapshot is stale.
    Busy { path: PathBuf, reason: String },
    /// A write was attempted where none is allowed (e.g. a historical version).
    ReadOnly { path: PathBuf, reason: String },
    /// A version number that does not exist in this log.
    NoSuchVersion { path: PathBuf, version: u64, latest: u64 },
    /// A version the retention policy no longer keeps (format 4).
    Reclaimed { path: PathBuf, version: u64, oldest: u64, latest: u64 },
    /// A request pagelog does not support, with the reason.
    Unsupported(String),
    /// Version `version` cannot be read (`source` says where and why), so
    /// it was not made the latest: a revert to it was refused and wrote
    /// nothing.
    Unreadable { version: u64, source: Box<Error> },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: &std::path::Path, op: &'static str, offset: Option<u64>, source: io::Error) -> Error {
        Error::Io { path: path.to_path_buf(), op, offset, source }
    }

    /// True when the error is an `ENOSPC`/`EDQUOT` (maps to SQLITE_FULL).
    pub fn is_disk_full(&self) -> bool {
        match self {
            Error::Io { source, .. } => matches!(source.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT)),
            _ => false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, op, offset: Some(o), source } => {
                write!(f, "{op} {} at offset {o}: {source}", path.escaped())
            }
            Error::Io { path, op, offset: None, source } => write!(f, "{op} {}: {source}", path.escaped()),
            Error::NotALog { path, reason } => {
                write!(f, "{} is not a pagelog log ({reason}); it was left unchanged", path.escaped())
            }
            Error::Corrupt { path, offset, expected, found } => write!(
                f,
                "pagelog log {} is corrupt at offset {offset}: expected {expected}, found {found}",
                path.escaped()
            ),
            Error::Busy { path, reason } => write!(f, "{}: {reason}", path.escaped()),
            Error::ReadOnly { path, reason } => write!(f, "{}: {reason}", path.escaped()),
            Error::NoSuchVersion { path, version, latest } => {
                write!(f, "{}: version {version} does not exist (the log holds versions 0 to {latest})", path.escaped())
            }
            Error::Reclaimed { path, version, oldest, latest } => write!(
                f,
                "{}: version {version} is no longer kept: the retention policy keeps versions {oldest} to {latest} \
                 (and version 0, the empty database)",
                path.escaped()
            ),
            Error::Unsupported(s) => f.write_str(s),
            Error::Unreadable { version, source } => {
                write!(
                    f,
                    "{source}; version {version} cannot be read, so it was not made the latest: nothing was written"
                )
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Unreadable { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}
