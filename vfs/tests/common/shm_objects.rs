//! The logs' shared objects (`src/shm.rs`) in a directory of the test
//! binary's own, so that tests read their words and leave nothing in
//! /dev/shm.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The binary's object directory, made empty and named in
/// `PAGELOG_SHM_DIR` on the first call (tests run as threads of one
/// process, so every test of the binary shares it).
pub fn shm_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("pagelog-shmdir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::env::set_var("PAGELOG_SHM_DIR", &d);
        d
    })
    .clone()
}

/// The objects of the log at `p` (by its device and inode), sorted.
pub fn objects(p: &Path) -> Vec<PathBuf> {
    let m = std::fs::metadata(p).unwrap();
    let prefix = format!("pagelog-{:x}-{:x}-", m.dev(), m.ino());
    let mut v: Vec<PathBuf> = std::fs::read_dir(shm_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|q| q.file_name().unwrap().to_string_lossy().starts_with(&prefix))
        .collect();
    v.sort();
    v
}

/// The `N` bytes at `at` of the one object of the log at `p` (open now).
pub fn bytes_at<const N: usize>(p: &Path, at: usize) -> [u8; N] {
    let objs = objects(p);
    assert_eq!(objs.len(), 1, "the log's object: {objs:?}");
    let bytes = std::fs::read(&objs[0]).unwrap();
    bytes[at..at + N].try_into().unwrap()
}
