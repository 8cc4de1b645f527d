//! pagelog: a SQLite VFS that stores every page copy-on-write in one
//! append-only log file, with a page map per commit.
//!
//! Three rooms, kept apart:
//! * the log — [`format`] (bytes on disk), [`log`] (open, recover, read,
//!   commit, revert), [`txn`] (a write transaction's buffer), [`pagemap`],
//!   [`storage`], [`stat`], [`lock`], [`history`] (listing, verify), [`compact`],
//!   format 4's checkpoints ([`tree`]: nodes; [`checkpoint`], [`commit4`]:
//!   writing them; [`index`], [`overlay`]: reading a version from its
//!   checkpoint's tree), [`mapping`] (checked reads of the file): no SQLite
//!   types; [`name`]: file names are bytes;
//! * the SQLite glue — [`sqlite`]: VFS callbacks, locks, pragmas, the
//!   extension entry points;
//! * [`boundary`]: the commit boundaries a copy of the log may be cut at,
//!   each commit checked (what `pagelog replicate` ships; the network code
//!   lives in the `pagelog-replica` crate, never in this library);
//! * [`diff`]: two versions compared row by row from their b-tree pages
//!   (reads the log through [`Version`] only; no SQLite types);
//! * the tools (`tools/`) and the benchmark (`speedtest/`), separate crates.
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod boundary;
pub mod changed;
pub mod checkpoint;
pub mod commit;
pub mod commit4;
pub mod compact;
pub mod control;
pub mod diff;
pub mod epochs;
pub mod error;
pub mod format;
mod frame_tags;
pub mod freelist;
pub mod group;
pub mod history;
pub mod index;
mod leaves;
pub mod lock;
pub mod log;
pub mod mapping;
pub mod name;
pub mod overlay;
pub mod pagemap;
pub mod patch;
pub mod reclaim;
pub mod record;
pub mod recovery;
pub mod registry;
pub mod retention;
pub mod retire;
pub mod retire_step;
mod revert_target;
pub mod salvage;
pub mod shm;
mod slots;
pub mod sqlite;
pub mod stat;
pub mod storage;
mod tail;
pub mod tree;
pub mod txn;
pub mod verify;
pub mod version;

pub use boundary::{Boundary, Checked, Shippable};
pub use error::{Error, Result};
pub use log::{Durability, Log, OpenOptions, Remembered, Version};
pub use name::{path_from_bytes, EscapedName};
pub use salvage::{Listing, Read, Readable};
pub use sqlite::{register, register_default, VFS_NAME};
pub use storage::sync_count;
