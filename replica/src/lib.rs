//! pagelog-replica: a pagelog log, replicated to S3-compatible object
//! storage as immutable objects cut at commit boundaries; restored from
//! them; followed by a read-only local copy.
//!
//! The object layout is specified in `replica/LAYOUT.md`. One concept per
//! file:
//! * [`store`]: the bucket (blocking HTTP, SigV4-presigned requests, retries);
//! * [`layout`]: object names, and the catalog a listing becomes;
//! * [`ship`]: the replicator — checked, durable commits of a local log
//!   uploaded as segments, resuming where the bucket ends;
//! * [`fetch`]: restore and follow — segments downloaded into a log file,
//!   every byte checked.
//!
//! This crate is not linked into `libpagelog.so`: the extension has no
//! network code and no async runtime.
#![forbid(unsafe_code)]

pub mod fetch;
pub mod layout;
pub mod ship;
pub mod store;

pub use layout::{Catalog, Generation, Segment};
pub use store::{Location, Store};

/// Why a replica operation failed. Messages name the object, the file and
/// the offset concerned.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Bad arguments or environment (no credentials, a bad address).
    Usage(String),
    /// The store refused a request or could not be reached.
    Store(String),
    /// A local file could not be read or written.
    Local(String),
    /// The local log: damaged, unreadable.
    Log(pagelog::Error),
    /// What the bucket holds does not fit what is asked (another
    /// replicator, a different log, damaged or foreign objects).
    Refused(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Usage(s) | Error::Store(s) | Error::Local(s) | Error::Refused(s) => f.write_str(s),
            Error::Log(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<pagelog::Error> for Error {
    fn from(e: pagelog::Error) -> Error {
        Error::Log(e)
    }
}

/// Lists `store`'s prefix into a catalog.
pub fn catalog(store: &Store) -> Result<Catalog, Error> {
    let dir = store.loc.dir();
    let objects = store.list(&dir, None)?;
    Ok(Catalog::from_objects(&dir, &objects))
}

/// Microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}
