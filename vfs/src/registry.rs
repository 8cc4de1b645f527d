//! One [`Log`] per log file per process, shared by all its connections,
//! found by the file's (device, inode); and the test hook that routes a
//! log's I/O through a simulated disk.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::log::{Log, OpenOptions};
use crate::storage::LogFile;

/// Test hooks: reads and writes of the log at a path go through the
/// `LogFile` registered for it.
type IoHooks = Mutex<Vec<(PathBuf, Arc<dyn LogFile>)>>;
static IO_HOOKS: IoHooks = Mutex::new(Vec::new());

/// For tests that simulate power loss through SQLite: from now on, the log
/// the VFS opens at `path` does its I/O through `io` (None: through the real
/// file again). Each path has its own hook, so simulations can run in
/// parallel threads. Not for production use.
#[doc(hidden)]
pub fn set_io_hook(path: &Path, io: Option<Arc<dyn LogFile>>) {
    let mut hooks = IO_HOOKS.lock().unwrap_or_else(|p| p.into_inner());
    hooks.retain(|(p, _)| p != path);
    if let Some(io) = io {
        hooks.push((path.to_path_buf(), io));
    }
}

fn io_hook(path: &Path) -> Option<Arc<dyn LogFile>> {
    let hooks = IO_HOOKS.lock().unwrap_or_else(|p| p.into_inner());
    hooks.iter().find(|(p, _)| p == path).map(|(_, io)| io.clone())
}

/// Process-wide registry: one `Log` per file (by device and inode), shared
/// by all connections of the process.
pub(crate) fn shared_log(path: &Path, opts: OpenOptions) -> Result<Arc<Log>> {
    use std::sync::{OnceLock, Weak};
    type Registry = Mutex<HashMap<(u64, u64), Weak<Log>>>;
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    let reg = REGISTRY.get_or_init(Default::default);
    let mut reg = reg.lock().unwrap_or_else(|p| p.into_inner());
    reg.retain(|_, w| w.strong_count() > 0);
    // Device and inode only, not std's metadata (see stat.rs).
    if let Ok(id) = crate::stat::identity(path) {
        if let Some(log) = reg.get(&id).and_then(|w| w.upgrade()) {
            if log.read_only && !opts.read_only {
                // fall through: open a writable instance of its own
            } else {
                return Ok(log);
            }
        }
    }
    let io = io_hook(path);
    let log = Arc::new(match io {
        Some(io) => Log::open_with_io(path, opts, io)?,
        None => Log::open(path, opts)?,
    });
    let id = crate::stat::identity_of(&log.file).map_err(|e| Error::io(path, "stat", None, e))?;
    reg.insert(id, Arc::downgrade(&log));
    Ok(log)
}
