//! The Python package (`python/pagelog`, its module beside the debug
//! `libpagelog.so` as a wheel lays them out, run by Debian's python3 under
//! `timeout`) on a format-4 log with a control state:
//! `pagelog.connect(path, version=0)` opens the empty database (it spun
//! forever: version 0's control state never matched the latest's epoch),
//! and `pagelog.versions()` lists each checkpoint with the pages it wrote
//! (it listed 0 for every one).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pagelog::retention::Policy;
use pagelog::{Log, OpenOptions};
use pagelog_e2e::{extension, format4_from_sqlite, open, python3, TempDir};

const SCRIPT: &str = r#"
import sys
import pagelog
path = sys.argv[1]
v0 = pagelog.connect(path, version=0)
print(v0.execute("SELECT count(*) FROM sqlite_master").fetchone()[0])
db = pagelog.connect(path)
cks = [v for v in pagelog.versions(db) if v.full_map]
print(len(cks), min(v.pages_written for v in cks))
"#;

#[test]
fn python_opens_version_0_of_a_format_4_log_and_counts_what_checkpoints_wrote() {
    let d = TempDir::new("py-v0-f4");
    // The package as installed: the module with the extension beside it.
    let pkg = d.path("site/pagelog");
    std::fs::create_dir_all(&pkg).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../python/pagelog/__init__.py");
    std::fs::copy(src, pkg.join("__init__.py")).unwrap();
    std::fs::copy(extension(), pkg.join("libpagelog.so")).unwrap();

    let p = d.path("app.db");
    format4_from_sqlite(&p, "CREATE TABLE t(k INTEGER PRIMARY KEY, v)");
    let c = open(&p);
    for i in 0..300 {
        c.execute("INSERT INTO t(v) VALUES (?1)", [i]).unwrap();
    }
    drop(c);
    // A CONTROL record of a later epoch, as an upgrade or a policy writes.
    let log = Log::open(&p, OpenOptions::default()).unwrap();
    log.set_retention(Policy::parse("1000 versions").unwrap(), Duration::from_secs(10)).unwrap();
    drop(log);

    let out = Command::new("timeout")
        .arg("30")
        .arg(python3())
        .arg("-c")
        .arg(SCRIPT)
        .arg(&p)
        .env("PYTHONPATH", d.path("site"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    let so = String::from_utf8_lossy(&out.stdout);
    let se = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(124), "python did not finish within 30 s\nstdout {so}\nstderr {se}");
    assert!(out.status.success(), "stdout {so}\nstderr {se}");
    let lines: Vec<&str> = so.lines().collect();
    assert_eq!(lines[0], "0", "version 0 is the empty database");
    let f: Vec<u64> = lines[1].split_whitespace().map(|x| x.parse().unwrap()).collect();
    assert!(f[0] >= 2, "the first commit's checkpoint and one after 256 commits: {}", lines[1]);
    assert!(f[1] >= 1, "every checkpoint wrote a page: {}", lines[1]);
}
