//! Every fenced code block of README.md and docs/*.md is checked, so that
//! none can rot. The block's language says how (docs/README.md, "Writing
//! here"):
//!
//! * `sh`: run with `bash -e -o pipefail` in one scratch directory per page,
//!   in page order, where `target/release/` holds the extension and the
//!   `pagelog` tool this test run built (symlinks), so that commands written
//!   for a release build run unchanged;
//! * `output`: the exact stdout of the `sh` or `python` block before it;
//! * `python`: run with Debian's `/usr/bin/python3` in the same directory,
//!   except the examples of the Python package (`import sqlite3, pagelog`),
//!   which `tests/tests/python_package.rs` runs in a venv with the package;
//! * `rust`: must be on a page `tests/src/lib.rs` includes as doc-tests;
//! * `toml`: every `name = { version = "V"` line must match the workspace's
//!   `Cargo.toml`;
//! * `sh skip`: a command that builds or tests the whole workspace; the
//!   README's test command must be what `.ci/run` runs;
//! * `text`: a synopsis or example, not run.
//!
//! Any other language (or none) is refused. The Garage recipe of
//! docs/replication.md needs `garage` (what scripts/test provides); its two
//! fixed ports are replaced by free ones. Nothing a page starts may be
//! left running after its blocks (the page's own stop command must work);
//! leftovers are killed, also when a block fails.

#[path = "replica/garage.rs"]
mod garage;

use std::path::{Path, PathBuf};
use std::process::Command;

use pagelog_e2e::{extension, python3, TempDir};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// How the Python package's examples begin; tests/tests/python_package.rs
/// runs those in a venv where the package is installed.
const PACKAGE_EXAMPLE: &str = "import sqlite3, pagelog";

struct Block {
    lang: String,
    line: usize,
    text: String,
}

/// The fenced blocks of a Markdown page (a fence may be indented, as in a
/// list item; the indentation is removed from its lines).
fn blocks(page: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut lines = page.lines().enumerate();
    while let Some((i, l)) = lines.next() {
        let t = l.trim_start();
        let Some(info) = t.strip_prefix("```") else { continue };
        let indent = l.len() - t.len();
        let mut text = String::new();
        for (_, l) in lines.by_ref() {
            if l.trim_start().starts_with("```") {
                break;
            }
            text.push_str(l.get(indent..).unwrap_or(l.trim_start()));
            text.push('\n');
        }
        out.push(Block { lang: info.trim().to_string(), line: i + 1, text });
    }
    out
}

/// The live processes (not zombies) whose working directory is `dir`: what
/// a page's `sh` blocks left running in the background.
fn processes_in(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|c| c == dir))
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            !stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .collect()
}

/// Kills whatever a page's `sh` blocks left running (a Garage server whose
/// page failed before its stop block), also when the test panics.
struct KillLeftovers(PathBuf);

impl Drop for KillLeftovers {
    fn drop(&mut self) {
        for pid in processes_in(&self.0) {
            let _ = Command::new("kill").arg(&pid).status();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Runs the blocks of one page; returns what failed, each naming its line.
fn check_page(rel: &str) -> Vec<String> {
    let path = root().join(rel);
    let page = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let dir = TempDir::new("docs");
    let release = dir.path("target/release");
    std::fs::create_dir_all(&release).unwrap();
    std::os::unix::fs::symlink(extension(), release.join("libpagelog.so")).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_pagelog"), release.join("pagelog")).unwrap();
    let _leftovers = KillLeftovers(dir.0.clone());
    let doctests = std::fs::read_to_string(root().join("tests/src/lib.rs")).unwrap();
    let workspace = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let mut failures = Vec::new();
    let mut last_stdout: Option<String> = None;
    for b in blocks(&page) {
        let at = format!("{rel}:{}", b.line);
        let run = |cmd: &mut Command| {
            let out = cmd.current_dir(&dir.0).output().unwrap_or_else(|e| panic!("{at}: {cmd:?}: {e}"));
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            let err = (!out.status.success()).then(|| {
                format!(
                    "{at}: the `{}` block failed ({}):\n{}\n--- stdout:\n{stdout}--- stderr:\n{}",
                    b.lang,
                    out.status,
                    b.text,
                    String::from_utf8_lossy(&out.stderr)
                )
            });
            (stdout, err)
        };
        match b.lang.as_str() {
            "sh" => {
                let mut script = b.text.clone();
                if script.contains("garage ") {
                    let (rpc, s3) = (free_port(), free_port());
                    script = script.replace("127.0.0.1:3901", &format!("127.0.0.1:{rpc}"));
                    script = script.replace("127.0.0.1:3900", &format!("127.0.0.1:{s3}"));
                }
                let mut cmd = Command::new("bash");
                cmd.args(["-e", "-o", "pipefail", "-c", &script]);
                if script.contains("garage ") {
                    let bin = garage::garage_bin();
                    let path = std::env::var_os("PATH").unwrap_or_default();
                    let mut dirs = vec![bin.parent().unwrap().to_path_buf()];
                    dirs.extend(std::env::split_paths(&path));
                    cmd.env("PATH", std::env::join_paths(dirs).unwrap());
                }
                let (stdout, err) = run(&mut cmd);
                failures.extend(err);
                last_stdout = Some(stdout);
            }
            "python" if b.text.contains(PACKAGE_EXAMPLE) => {
                let runner = std::fs::read_to_string(root().join("tests/tests/python_package.rs")).unwrap();
                if !runner.contains(&format!("block.contains(\"{PACKAGE_EXAMPLE}\")")) {
                    failures.push(format!("{at}: tests/tests/python_package.rs no longer runs the package's examples"));
                }
                last_stdout = None;
            }
            "python" => {
                let (stdout, err) = run(Command::new(python3()).args(["-c", &b.text]));
                failures.extend(err);
                last_stdout = Some(stdout);
            }
            "output" => match last_stdout.take() {
                Some(s) if s == b.text => {}
                Some(s) => failures.push(format!("{at}: the block before printed\n{s}not\n{}", b.text)),
                None => failures.push(format!("{at}: an `output` block must follow a `sh` or `python` block")),
            },
            "rust" => {
                let include = format!("include_str!(\"../../{rel}\")");
                if !doctests.contains(&include) {
                    failures
                        .push(format!("{at}: a rust block on a page tests/src/lib.rs does not include ({include})"));
                }
            }
            "toml" => {
                for l in b.text.lines() {
                    let Some((name, rest)) = l.split_once(" = { version = ") else { continue };
                    let version = rest.split('"').nth(1).unwrap_or("");
                    let want = format!("{name} = {{ version = \"{version}\"");
                    if !workspace.contains(&want) {
                        failures.push(format!("{at}: `{l}` does not match the workspace's Cargo.toml"));
                    }
                }
            }
            "sh skip" => {
                if b.text.contains("scripts/test") {
                    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
                    if !ci.lines().any(|l| l.trim() == "exec scripts/test") {
                        failures.push(format!("{at}: .ci/run does not run scripts/test, the README's test command"));
                    }
                }
            }
            "text" => {}
            other => failures.push(format!(
                "{at}: a code block in `{other}`; use sh, output, python, rust, toml, text or `sh skip` \
                 (docs/README.md, \"Writing here\")"
            )),
        }
    }
    // A page that starts a server in the background also says how to stop
    // it, and that must work: nothing may be left running.
    let t0 = std::time::Instant::now();
    let mut left = processes_in(&dir.0);
    while !left.is_empty() && t0.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(100));
        left = processes_in(&dir.0);
    }
    if !left.is_empty() {
        failures.push(format!("{rel}: its blocks left processes running: {left:?}"));
    }
    failures
}

fn pages() -> Vec<String> {
    let mut pages = vec!["README.md".to_string()];
    let mut docs: Vec<String> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

fn assert_clean(failures: Vec<String>) {
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_block_of_the_readme_and_docs_runs_as_written() {
    let failures = pages().iter().filter(|p| p.as_str() != "docs/replication.md").flat_map(|p| check_page(p)).collect();
    assert_clean(failures);
}

#[test]
fn the_garage_recipe_of_the_replication_page_runs_as_written() {
    assert_clean(check_page("docs/replication.md"));
}

#[test]
fn the_readme_names_the_test_command_ci_runs() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(blocks(&readme).iter().any(|b| b.lang == "sh skip" && b.text.contains("scripts/test")));
}
