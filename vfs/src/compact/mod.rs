//! Compaction: [`compact`] rewrites a log keeping only its newest versions
//! (`K..=latest`), and [`upgrade`] rewrites one in another format keeping
//! every version. How the new log is written: `write`.
//!
//! Crash safety: the new log is written to `DB.compact-tmp` in the same
//! directory, synced, opened and verified, then renamed over `DB`, and the
//! directory is synced. Until the rename the old file is untouched; the rename
//! is atomic; so a crash leaves either the old log or the new one (plus,
//! perhaps, a stale `DB.compact-tmp`, which the next compaction replaces).
//! The file-system calls go through [`CompactFs`], so that
//! `vfs/tests/compact_power_loss.rs` can cut the power after each write and
//! sync of the new file, the rename and the directory sync.
//!
//! Formats: the new log is written in this build's format
//! ([`format::FORMAT_VERSION`]), or in the one [`upgrade`] asks for; a
//! format-4 log stays in format 4 and keeps its retention policy.
//! A format-4 log whose retention already freed part of it is refused:
//! retention frees space in place (`pagelog compact` does that online).
//!
//! Compaction holds the log's OPEN lock exclusively (no connection may have
//! it open: connections hold OPEN shared; see `lock.rs`) and the WRITER lock,
//! through the rename.

mod write;

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::format;
use crate::history::CommitSummary;
use crate::lock;
use crate::log::{Log, OpenOptions};
use crate::storage::LogFile;
use write::write_compacted;

/// Which versions [`compact`] keeps; it always keeps at least the latest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// The K newest versions (K >= 1).
    Last(u64),
    /// Versions from the first one committed at or after this time
    /// (microseconds since the Unix epoch) to the latest.
    Since(u64),
    /// Every version, rewritten all the same (`pagelog upgrade`: the new
    /// file is in this build's format).
    All,
}

/// What [`compact`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactStats {
    /// False when there was nothing to remove (the file is unchanged).
    pub rewritten: bool,
    pub oldest_before: u64,
    pub first_kept: u64,
    pub latest: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub frames_copied: u64,
}

/// The first version [`compact`] would keep, given the log's history.
pub fn first_kept(history: &[CommitSummary], keep: Keep) -> Option<u64> {
    let oldest = history.first()?.version;
    let latest = history.last()?.version;
    Some(match keep {
        Keep::Last(k) => latest.saturating_sub(k.max(1) - 1).max(oldest),
        Keep::All => oldest,
        Keep::Since(t) => history.iter().find(|c| c.timestamp_us >= t).map_or(latest, |c| c.version),
    })
}

/// The path compaction writes before renaming: `DB.compact-tmp`.
pub fn compact_tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".compact-tmp");
    PathBuf::from(s)
}

/// Removes a file when dropped, unless disarmed.
struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The file-system effects of compaction, behind a narrow interface so that a
/// test can substitute a model of a disk that loses power
/// (`vfs/tests/compact_power_loss.rs`). [`compact`] uses [`StdCompactFs`].
///
/// Compaction reads the old log through the memory map and re-opens the new
/// file by path to verify it, so an implementation must keep the real files
/// in step: its temporary file writes through to the file at `tmp`, and
/// `rename` renames the real file.
#[doc(hidden)]
pub trait CompactFs {
    /// Creates `tmp`, which must not exist, with the permissions and (where
    /// allowed) the owner in `md`, the metadata of the log being compacted.
    /// Compaction only calls `write_at` and `sync` on it.
    fn create(&self, tmp: &Path, md: &std::fs::Metadata) -> Result<Arc<dyn LogFile>>;
    /// Renames `from` over `to`, atomically replacing it.
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()>;
    /// Syncs the directory `dir`, making a rename in it durable.
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()>;
    /// The new file is written front to back; pieces smaller than this are
    /// collected into one write of at most this many bytes, larger ones are
    /// written as they are.
    fn write_chunk(&self) -> usize {
        1 << 20
    }
}

/// The real file system: what [`compact`] uses.
#[doc(hidden)]
pub struct StdCompactFs;

/// The temporary file: its `sync` is `fsync` (data and metadata, as for a
/// file about to be renamed into place), not counted in `sync_count()`.
struct TmpFile(File);

impl LogFile for TmpFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(&self.0, buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(&self.0, buf, offset)
    }
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.0.set_len(len)
    }
    fn sync(&self) -> std::io::Result<()> {
        self.0.sync_all()
    }
}

impl CompactFs for StdCompactFs {
    fn create(&self, tmp: &Path, md: &std::fs::Metadata) -> Result<Arc<dyn LogFile>> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(tmp)
            .map_err(|e| Error::io(tmp, "create", None, e))?;
        // The same permissions and, where allowed, the same owner as the old file.
        file.set_permissions(md.permissions()).map_err(|e| Error::io(tmp, "chmod", None, e))?;
        {
            use std::os::unix::fs::MetadataExt;
            let _ = std::os::unix::fs::fchown(&file, Some(md.uid()), Some(md.gid()));
        }
        Ok(Arc::new(TmpFile(file)))
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        std::fs::rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        File::open(dir).and_then(|d| d.sync_all())
    }
}

/// Rewrites the log at `path` keeping only the versions `keep` selects (see
/// the module documentation). Refuses (Busy) while any connection has the
/// log open. `progress(bytes written, estimated total)`.
pub fn compact(path: &Path, keep: Keep, progress: &mut dyn FnMut(u64, u64)) -> Result<CompactStats> {
    compact_with_fs(path, keep, progress, &StdCompactFs)
}

/// [`compact`], with its file-system effects going through `fs` (for tests).
#[doc(hidden)]
pub fn compact_with_fs(
    path: &Path,
    keep: Keep,
    progress: &mut dyn FnMut(u64, u64),
    fs: &dyn CompactFs,
) -> Result<CompactStats> {
    compact_to(path, keep, None, progress, fs)
}

/// Rewrites the log at `path` keeping every version, in format `format`
/// (3, or 4: docs/format-4.md), for `pagelog upgrade`. Refuses (Busy) while
/// any connection has the log open.
pub fn upgrade(path: &Path, format: u32, progress: &mut dyn FnMut(u64, u64)) -> Result<CompactStats> {
    if !(format::FORMAT_VERSION..=format::FORMAT_V4).contains(&format) {
        return Err(Error::Unsupported(format!(
            "{}: cannot write format {format} (this build writes formats {} and {})",
            path.display(),
            format::FORMAT_VERSION,
            format::FORMAT_V4
        )));
    }
    compact_to(path, Keep::All, Some(format), progress, &StdCompactFs)
}

fn compact_to(
    path: &Path,
    keep: Keep,
    format: Option<u32>,
    progress: &mut dyn FnMut(u64, u64),
    fs: &dyn CompactFs,
) -> Result<CompactStats> {
    let log = Log::open(path, OpenOptions::default())?;
    let source = log.format();
    let target = format.unwrap_or(if source >= format::FORMAT_V4 { format::FORMAT_V4 } else { format::FORMAT_VERSION });
    if source > target {
        return Err(Error::Unsupported(format!(
            "{}: the log is in format {source}; it cannot be rewritten in the older format {target}",
            path.display()
        )));
    }
    if log.retention_state().boundary > format::FIRST_RECORD {
        return Err(Error::Unsupported(format!(
            "{}: a retention policy already freed the oldest part of this log (format 4): it is compacted in \
             place, online, by its retention policy (`pagelog retain`, or `pagelog compact`, which sets one)",
            path.display()
        )));
    }
    let fd = log.file().as_fd();
    match lock::try_lock(fd, lock::OPEN, lock::Mode::Exclusive) {
        Ok(true) => {}
        Ok(false) => {
            return Err(Error::Busy {
                path: path.to_path_buf(),
                reason: "the database is open (a connection in this or another process has it open); \
                         close every connection and retry"
                    .into(),
            })
        }
        Err(e) => return Err(Error::io(path, "lock", None, e)),
    }
    let result = compact_locked(&log, path, keep, target, progress, fs);
    let _ = lock::unlock(log.file().as_fd(), lock::OPEN);
    result
}

fn compact_locked(
    log: &Log,
    path: &Path,
    keep: Keep,
    target: u32,
    progress: &mut dyn FnMut(u64, u64),
    fs: &dyn CompactFs,
) -> Result<CompactStats> {
    let _writer = log.lock_writer(Duration::ZERO)?;
    if !log.is_current_file()? {
        return Err(Error::Busy {
            path: path.to_path_buf(),
            reason: "the log was replaced while compaction started (another compaction?); retry".into(),
        });
    }
    let latest = log.refresh()?;
    let history = log.history()?;
    let bytes_before = log.file_len()?;
    let oldest = history.first().map_or(0, |c| c.version);
    let mut stats = CompactStats {
        rewritten: false,
        oldest_before: oldest,
        first_kept: oldest,
        latest: latest.number,
        bytes_before,
        bytes_after: bytes_before,
        frames_copied: 0,
    };
    let Some(first) = first_kept(&history, keep) else { return Ok(stats) };
    stats.first_kept = first;
    if first <= oldest && keep != Keep::All {
        return Ok(stats);
    }

    let tmp = compact_tmp_path(path);
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&tmp, "remove stale", None, e)),
    }
    let mut cleanup = RemoveOnDrop(Some(tmp.clone()));
    let md = log.file().metadata().map_err(|e| Error::io(path, "stat", None, e))?;
    let file = fs.create(&tmp, &md)?;

    let copied = write_compacted(log, &*file, &tmp, fs.write_chunk(), first, &latest, target, progress)?;
    file.sync().map_err(|e| Error::io(&tmp, "sync", None, e))?;
    drop(file);

    // Check the new log before it replaces the old one.
    {
        let new = Log::open(&tmp, OpenOptions { read_only: true, ..Default::default() })?;
        let nl = new.latest();
        let bad = |what: String| {
            Err(Error::Corrupt {
                path: tmp.clone(),
                offset: 0,
                expected: format!("a compacted copy of {}", path.display()),
                found: format!("{what}; the original was left unchanged"),
            })
        };
        if nl.number != latest.number || nl.checksum != latest.checksum || nl.db_pages() != latest.db_pages() {
            return bad(format!("latest version {} (checksum {:#x})", nl.number, nl.checksum));
        }
        if new.oldest_version()? != first {
            return bad(format!("oldest version {}", new.oldest_version()?));
        }
        let rep = new.verify();
        if rep.damaged() || rep.tail.is_some() {
            let why = rep
                .damage()
                .map(|p| p.to_string())
                .or(rep.recovery_error.clone())
                .or(rep.error.as_ref().map(|e| e.to_string()))
                .unwrap_or_else(|| "bytes past its last commit".into());
            return bad(format!("a log that does not verify ({why})"));
        }
    }

    fs.rename(&tmp, path).map_err(|e| Error::io(path, "rename compacted log over", None, e))?;
    cleanup.0 = None;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs.sync_dir(&dir).map_err(|e| Error::io(&dir, "sync directory", None, e))?;
    stats.rewritten = true;
    stats.frames_copied = copied;
    stats.bytes_after = std::fs::metadata(path).map_err(|e| Error::io(path, "stat", None, e))?.len();
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(version: u64, ts: u64) -> CommitSummary {
        CommitSummary {
            version,
            timestamp_us: ts,
            pages_written: 1,
            db_pages: 1,
            page_size: 4096,
            bytes: 0,
            offset: 0,
            full_map: false,
            checksum: 0,
        }
    }

    #[test]
    fn first_kept_keeps_at_least_the_latest_and_never_before_the_oldest() {
        let h: Vec<_> = (3..=10).map(|v| summary(v, v * 100)).collect();
        assert_eq!(first_kept(&h, Keep::Last(1)), Some(10));
        assert_eq!(first_kept(&h, Keep::Last(3)), Some(8));
        assert_eq!(first_kept(&h, Keep::Last(100)), Some(3));
        assert_eq!(first_kept(&h, Keep::Since(0)), Some(3));
        assert_eq!(first_kept(&h, Keep::Since(550)), Some(6));
        assert_eq!(first_kept(&h, Keep::Since(5000)), Some(10));
        assert_eq!(first_kept(&[], Keep::Last(1)), None);
    }
}
