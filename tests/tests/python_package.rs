//! The Python package (`python/`): `pip install ./python` into a fresh
//! virtualenv of Debian's /usr/bin/python3, offline (`--no-index`: the
//! in-tree build backend needs no download), then
//! `tests/python/check_package.py` with that venv's python. The wheel takes
//! the debug `libpagelog.so` that cargo built for these tests
//! (`PAGELOG_LIBRARY`), so no release build is made here.
//!
//! The same venv runs every ```python example of README.md, docs/*.md and
//! python/README.md that imports the package.
//!
//! Where a Python without extension loading is on the machine (pyenv's
//! builds usually are), the package is installed into a venv of it too and
//! must refuse to load with its explanation.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pagelog_e2e::{extension, python3, TempDir};

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A fresh venv of `python` in `dir` with ./python installed; its python.
fn venv_with_package(python: &Path, dir: &Path) -> PathBuf {
    let venv = Command::new(python).args(["-m", "venv"]).arg(dir).output().unwrap();
    assert!(
        venv.status.success(),
        "{} -m venv failed: on Debian this needs the package python3-venv (apt-get install python3-venv)\n{}{}",
        python.display(),
        String::from_utf8_lossy(&venv.stdout),
        String::from_utf8_lossy(&venv.stderr)
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    run(Command::new(dir.join("bin/pip"))
        .args(["install", "--no-index", "--no-cache-dir", "--disable-pip-version-check", "--quiet"])
        .arg(root.join("python"))
        .env("PAGELOG_LIBRARY", extension())
        // No __pycache__ beside the build backend in the source tree.
        .env("PYTHONDONTWRITEBYTECODE", "1"));
    dir.join("bin/python")
}

#[test]
fn pip_installs_the_package_into_a_fresh_venv_and_its_helpers_work() {
    let d = TempDir::new("python-package");
    let py = venv_with_package(&python3(), &d.path("venv"));
    let work = d.path("work");
    std::fs::create_dir(&work).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/check_package.py");
    // cwd = work: `import pagelog` must find the installed copy, not python/.
    let out = run(Command::new(&py).arg(script).arg(&work).current_dir(&work));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    // The examples in README.md, docs/ and python/README.md, in the same venv.
    run_documented_examples(&py, &d);
}

/// A pyenv Python whose sqlite3 cannot load extensions, if there is one.
fn python_without_loading() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    let mut versions: Vec<PathBuf> = std::fs::read_dir(Path::new(&home).join(".pyenv/versions"))
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join("bin/python3")))
        .filter(|p| p.exists())
        .collect();
    versions.sort();
    versions.into_iter().rev().find(|p| {
        let check = "import sqlite3, sys, venv; \
                     sys.exit(0 if sys.version_info >= (3, 8) \
                     and not hasattr(sqlite3.Connection, 'enable_load_extension') else 1)";
        Command::new(p).args(["-c", check]).output().is_ok_and(|o| o.status.success())
    })
}

#[test]
fn a_python_without_extension_loading_gets_an_explanation() {
    let Some(python) = python_without_loading() else {
        eprintln!("skipped: no pyenv Python without extension loading on this machine");
        return;
    };
    let d = TempDir::new("python-noload");
    let py = venv_with_package(&python, &d.path("venv"));
    let script = "import pagelog\n\
                  try:\n    pagelog.connect('x.db')\n\
                  except pagelog.ExtensionLoadingUnavailable as e:\n    print(e)\n";
    let out = run(Command::new(py).args(["-c", script]).current_dir(d.path("")));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("cannot load SQLite extensions"), "{}: {text}", python.display());
    assert!(text.contains("/usr/bin/python3") && text.contains("--enable-loadable-sqlite-extensions"), "{text}");
    assert!(!d.path("x.db").exists(), "nothing may be created when loading fails");
}

/// The ```python blocks that use the package in README.md, docs/*.md and
/// python/README.md, so that none can rot.
fn documented_python_blocks() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut files = vec![root.join("README.md"), root.join("python/README.md")];
    if let Ok(dir) = std::fs::read_dir(root.join("docs")) {
        let mut docs: Vec<PathBuf> =
            dir.filter_map(|e| Some(e.ok()?.path())).filter(|p| p.extension().is_some_and(|x| x == "md")).collect();
        docs.sort();
        files.extend(docs);
    }
    let mut blocks = Vec::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else { continue };
        let mut lines = text.lines();
        while let Some(l) = lines.next() {
            if l.trim() == "```python" {
                let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
                let block = block.join("\n") + "\n";
                if block.contains("import sqlite3, pagelog") {
                    blocks.push((f.clone(), block));
                }
            }
        }
    }
    blocks
}

/// Runs each documented example with `py`, each in a directory of its own under `d`.
fn run_documented_examples(py: &Path, d: &TempDir) {
    let blocks = documented_python_blocks();
    assert!(blocks.len() >= 2, "expected the README's and python/README.md's examples, found {}", blocks.len());
    for (i, (file, block)) in blocks.iter().enumerate() {
        let work = d.path(&format!("example-{i}"));
        std::fs::create_dir(&work).unwrap();
        let out = Command::new(py).arg("-c").arg(block).current_dir(&work).output().unwrap();
        assert!(
            out.status.success(),
            "the Python example in {} failed:\n{block}\n{}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
