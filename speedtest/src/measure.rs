//! What we measure besides time: bytes written (from `/proc/self/io`), the
//! files a database consists of and their sizes, and which filesystem holds
//! them.
//!
//! `/proc/self/io` counts for the whole process, and the kernel adds a child's
//! counters to its parent's when the parent reaps it, so deltas taken around
//! a test include an `sqlite3` shell child the harness waited for.
//! * `write_bytes`: bytes of page cache this process dirtied, counted a
//!   whole folio at a time when a clean folio becomes dirty. Since Linux
//!   gave ext4 large folios (6.x), a 100-byte write into a clean 1 MiB folio
//!   counts 1 MiB here although writeback sends one 4 KiB block: an upper
//!   bound, not device traffic (see [`device_written_bytes`]).
//! * `wchar`: bytes handed to write()/pwrite() and friends, whatever their
//!   fate (includes a shell child's stdout).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A snapshot of `/proc/self/io`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoCounters {
    pub wchar: u64,
    pub write_bytes: u64,
    pub cancelled_write_bytes: u64,
}

impl IoCounters {
    /// Reads `/proc/self/io`; `None` where it does not exist or is not readable.
    pub fn read() -> Option<IoCounters> {
        let text = fs::read_to_string("/proc/self/io").ok()?;
        parse_proc_io(&text)
    }

    /// `self - earlier`, saturating.
    pub fn since(&self, earlier: &IoCounters) -> IoCounters {
        IoCounters {
            wchar: self.wchar.saturating_sub(earlier.wchar),
            write_bytes: self.write_bytes.saturating_sub(earlier.write_bytes),
            cancelled_write_bytes: self.cancelled_write_bytes.saturating_sub(earlier.cancelled_write_bytes),
        }
    }
}

/// Parses the `key: value` lines of `/proc/<pid>/io`.
pub fn parse_proc_io(text: &str) -> Option<IoCounters> {
    let mut c = IoCounters::default();
    let mut seen = 0;
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let Ok(v) = v.trim().parse::<u64>() else {
            continue;
        };
        match k.trim() {
            "wchar" => c.wchar = v,
            "write_bytes" => c.write_bytes = v,
            "cancelled_write_bytes" => c.cancelled_write_bytes = v,
            _ => continue,
        }
        seen += 1;
    }
    (seen == 3).then_some(c)
}

/// Bytes the block device under `fs` reports written since boot
/// (`/sys/class/block/NAME/stat`, field 7: 512-byte sectors). It counts every
/// process's writes to that device, so a delta is only this program's on an
/// otherwise quiet machine. `None` where the device is not a `/dev/NAME`
/// with a stat file (device-mapper names, tmpfs, …).
pub fn device_written_bytes(fs: &Filesystem) -> Option<u64> {
    let name = fs.device.strip_prefix("/dev/")?;
    if name.is_empty() || name.contains('/') {
        return None;
    }
    let text = fs::read_to_string(format!("/sys/class/block/{name}/stat")).ok()?;
    parse_block_stat(&text)
}

/// Bytes written from the text of a block device's `stat` file.
pub fn parse_block_stat(text: &str) -> Option<u64> {
    text.split_whitespace().nth(6)?.parse::<u64>().ok()?.checked_mul(512)
}

/// One file of a database: the main file or a sidecar (`-wal`, `-journal`, …).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSize {
    /// `""` for the main file, else the suffix (`"-wal"`).
    pub suffix: String,
    /// Apparent length in bytes.
    pub len: u64,
    /// Bytes allocated on disk (`st_blocks * 512`).
    pub allocated: u64,
}

/// The files of one database at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sizes {
    pub files: Vec<FileSize>,
}

impl Sizes {
    /// Bytes of data on disk: every file but the `-shm` index, which SQLite
    /// rebuilds and which holds no data (the main file plus `-wal`, `-journal`).
    pub fn total(&self) -> u64 {
        self.files.iter().filter(|f| f.suffix != "-shm").map(|f| f.len).sum()
    }
}

/// The main file and the sidecars `<name>-*` of the database at `path`.
pub fn db_files(path: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("database path {} has no UTF-8 file name", path.display()))?;
    let prefix = format!("{name}-");
    let mut out = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| format!("list directory {}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("list directory {}: {e}", dir.display()))?;
        let fname = entry.file_name();
        let Some(fname) = fname.to_str() else {
            continue;
        };
        if fname == name {
            out.push((String::new(), entry.path()));
        } else if let Some(suffix) = fname.strip_prefix(&prefix) {
            out.push((format!("-{suffix}"), entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Sizes of the database at `path` and its sidecars.
pub fn db_sizes(path: &Path) -> Result<Sizes, String> {
    use std::os::unix::fs::MetadataExt;
    let mut files = Vec::new();
    for (suffix, p) in db_files(path)? {
        match fs::metadata(&p) {
            Ok(m) => files.push(FileSize { suffix, len: m.len(), allocated: m.blocks() * 512 }),
            // Deleted between listing and stat (a journal): not there.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("stat {}: {e}", p.display())),
        }
    }
    Ok(Sizes { files })
}

/// Deletes the database at `path` and its sidecars, so a run starts fresh.
pub fn remove_db_files(path: &Path) -> Result<(), String> {
    for (_, p) in db_files(path)? {
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("remove {}: {e}", p.display())),
        }
    }
    Ok(())
}

/// The filesystem a path lives on, from `/proc/self/mounts`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filesystem {
    pub fstype: String,
    pub device: String,
    pub mount_point: String,
}

impl Filesystem {
    /// Memory-backed filesystems, where fsync costs nothing.
    pub fn is_memory(&self) -> bool {
        matches!(self.fstype.as_str(), "tmpfs" | "ramfs" | "devtmpfs")
    }
}

/// The mount with the longest mount point that is a prefix of `path`
/// (which should be canonical).
pub fn filesystem_of(path: &Path) -> Option<Filesystem> {
    let text = fs::read_to_string("/proc/self/mounts").ok()?;
    filesystem_in_mounts(&text, path)
}

pub fn filesystem_in_mounts(mounts: &str, path: &Path) -> Option<Filesystem> {
    let mut best: Option<Filesystem> = None;
    for line in mounts.lines() {
        let mut f = line.split_whitespace();
        let (Some(dev), Some(mp), Some(ty)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let mp = unescape_mount(mp);
        if !path.starts_with(&mp) {
            continue;
        }
        // Later lines over the same mount point shadow earlier ones.
        if best.as_ref().is_none_or(|b| mp.len() >= b.mount_point.len()) {
            best = Some(Filesystem { fstype: ty.to_string(), device: unescape_mount(dev), mount_point: mp });
        }
    }
    best
}

/// `/proc/mounts` writes space, tab, newline and backslash as `\ooo`.
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') as u32 * 64 + (b[i + 2] - b'0') as u32 * 8 + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `exec sync`, as speedtest.tcl did before every test: flush other tests'
/// dirty pages so they are not written back during the next timing.
pub fn sync_filesystems() -> Result<(), String> {
    let st = Command::new("sync").status().map_err(|e| format!("run `sync`: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("`sync` failed: {st}"))
    }
}

/// The CPU model, for the report header.
pub fn cpu_model() -> Option<String> {
    let text = fs::read_to_string("/proc/cpuinfo").ok()?;
    let model = text
        .lines()
        .find_map(|l| l.strip_prefix("model name"))?
        .trim_start_matches([' ', '\t', ':'])
        .trim()
        .to_string();
    let n = text.lines().filter(|l| l.starts_with("processor")).count();
    Some(format!("{n} * {model}"))
}

/// The 1, 5 and 15 minute load averages from /proc/loadavg (empty if missing):
/// other work on the machine shows here.
pub fn load_average() -> String {
    let avg = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    avg.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_io_is_parsed() {
        let t = "rchar: 1\nwchar: 2\nsyscr: 3\nsyscw: 4\nread_bytes: 5\nwrite_bytes: 4096\ncancelled_write_bytes: 7\n";
        assert_eq!(parse_proc_io(t), Some(IoCounters { wchar: 2, write_bytes: 4096, cancelled_write_bytes: 7 }));
        assert_eq!(parse_proc_io("rchar: 1\n"), None);
    }

    #[test]
    fn the_longest_mount_point_wins() {
        let m = "/dev/vda / ext4 rw 0 0\ntmpfs /tmp tmpfs rw 0 0\n/dev/vdb /tmp/a\\040b xfs rw 0 0\n";
        let fs = filesystem_in_mounts(m, Path::new("/tmp/x")).unwrap();
        assert_eq!(fs.fstype, "tmpfs");
        assert!(fs.is_memory());
        let fs = filesystem_in_mounts(m, Path::new("/tmp/a b/c")).unwrap();
        assert_eq!((fs.fstype.as_str(), fs.mount_point.as_str()), ("xfs", "/tmp/a b"));
        let fs = filesystem_in_mounts(m, Path::new("/tmpx")).unwrap();
        assert_eq!(fs.fstype, "ext4");
    }

    #[test]
    fn sizes_leave_out_shm() {
        let s = Sizes {
            files: vec![
                FileSize { suffix: "".into(), len: 10, allocated: 4096 },
                FileSize { suffix: "-shm".into(), len: 32768, allocated: 32768 },
                FileSize { suffix: "-wal".into(), len: 5, allocated: 4096 },
            ],
        };
        assert_eq!(s.total(), 15);
    }

    #[test]
    fn block_stat_field_seven_is_sectors_written() {
        let t = "  4660  1530  356806  2013  10000  20000  123456  30000  0  4000  32013  0 0 0 0 0 0\n";
        assert_eq!(parse_block_stat(t), Some(123456 * 512));
        assert_eq!(parse_block_stat("1 2 3"), None);
        assert_eq!(parse_block_stat("1 2 3 4 5 6 x"), None);
        let fs = Filesystem { fstype: "tmpfs".into(), device: "tmpfs".into(), mount_point: "/tmp".into() };
        assert_eq!(device_written_bytes(&fs), None);
    }
}
