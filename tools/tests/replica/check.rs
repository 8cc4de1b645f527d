//! Checks the replica tests share: a restore equal byte for byte to the
//! source, `restore --version N --plain` equal to `pagelog export
//! --version N`, what `pagelog info s3://…` reports.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

pub fn ok(o: Output) -> Output {
    assert!(
        o.status.success(),
        "exit {:?}:\n{}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

pub fn fails(o: Output) -> String {
    let text = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "expected exit 1:\n{text}");
    text
}

/// `pagelog info URL --json`, parsed (None: the command failed).
pub fn info(cmd: &dyn Fn() -> Command, url: &str) -> Option<serde_json::Value> {
    let o = cmd().args(["info", url, "--json"]).output().unwrap();
    o.status.success().then(|| serde_json::from_slice(&o.stdout).unwrap())
}

/// The newest replicated version; asserts that every generation is
/// complete and holds no overlapping segments (what a replicator that
/// ships idempotently leaves).
pub fn replicated_clean(cmd: &dyn Fn() -> Command, url: &str) -> u64 {
    let v = info(cmd, url).expect("info s3://");
    for g in v["generations"].as_array().unwrap() {
        assert_eq!(g["complete"], true, "a generation with a gap: {v}");
        assert_eq!(g["overlapping_segments"], 0, "overlapping segments: {v}");
    }
    v["latest_version"].as_u64().unwrap()
}

/// The version of a local log, by `pagelog info`.
pub fn local_latest(db: &Path) -> u64 {
    let o = ok(Command::new(env!("CARGO_BIN_EXE_pagelog")).arg("info").arg(db).arg("--json").output().unwrap());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["latest_version"].as_u64().unwrap()
}

/// Restores the latest version into `dir/restored.db`: byte for byte a
/// prefix of the source, at version `want`. Then `restore --version N
/// --plain` for each N of `versions` equals `pagelog export --version N`.
pub fn restore_checks(cmd: &dyn Fn() -> Command, url: &str, db: &Path, dir: &Path, want: u64, versions: &[u64]) {
    let out = dir.join("restored.db");
    ok(cmd().arg("restore").arg(url).arg(&out).arg("--force").output().unwrap());
    let got = std::fs::read(&out).unwrap();
    let src = std::fs::read(db).unwrap();
    assert!(src.len() >= got.len() && got == src[..got.len()], "the restore differs from the source's prefix");
    assert_eq!(local_latest(&out), want);
    for &n in versions {
        let plain = dir.join(format!("v{n}.db"));
        let exported = dir.join(format!("v{n}.export"));
        ok(cmd()
            .arg("restore")
            .arg(url)
            .arg(&plain)
            .args(["--force", "--plain", "--version", &n.to_string()])
            .output()
            .unwrap());
        ok(Command::new(env!("CARGO_BIN_EXE_pagelog"))
            .arg("export")
            .arg(db)
            .arg(&exported)
            .args(["--force", "--version", &n.to_string()])
            .output()
            .unwrap());
        assert!(std::fs::read(&plain).unwrap() == std::fs::read(&exported).unwrap(), "version {n} differs");
    }
}
