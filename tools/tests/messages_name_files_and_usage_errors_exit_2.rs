//! What the tool says: messages name the files involved (never a
//! placeholder such as `OUT`), arguments the tool cannot use exit 2 as clap's
//! own usage errors do, counts agree with their nouns, and --help says what
//! version 0 is.

mod common;
use common::*;

#[test]
fn export_names_the_file_it_refuses_to_overwrite() {
    let d = TempDir::new("msg-export");
    let db = d.path("app.db");
    drop(make_log(&db, 3));
    let out = d.path("kept.db");
    std::fs::write(&out, b"precious").unwrap();
    let r = pagelog(["export".as_ref(), db.as_os_str(), out.as_os_str()]).expect_code(1);
    assert!(r.stderr.contains("kept.db already exists (use --force to replace it)"), "{}", r.stderr);
    assert!(!r.stderr.contains("OUT"), "{}", r.stderr);
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");

    let r = pagelog(["export".as_ref(), db.as_os_str(), db.as_os_str(), "--force".as_ref()]).expect_code(1);
    assert!(r.stderr.contains("app.db is the log itself"), "{}", r.stderr);
    assert!(!r.stderr.contains("OUT"), "{}", r.stderr);

    let r = pagelog(["export".as_ref(), db.as_os_str(), d.path("new.db").as_os_str()]).ok();
    assert!(r.stderr.contains("new.db (") && r.stderr.contains(" pages of 4096 bytes"), "{}", r.stderr);
}

#[test]
fn version_arguments_diff_cannot_use_are_usage_errors_with_status_2() {
    let d = TempDir::new("msg-diff");
    let db = d.path("app.db");
    drop(make_log(&db, 3));
    for args in [vec!["a", "b"], vec!["2.."], vec!["..2"], vec!["1", "x"], vec!["1..2..3"]] {
        let mut all = vec!["diff".to_string(), db.to_str().unwrap().to_string()];
        all.extend(args.iter().map(|s| s.to_string()));
        let r = pagelog(&all).expect_code(2);
        assert!(r.stderr.starts_with("pagelog: diff: "), "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains("give VERSIONS as A, A B or A..B"), "{args:?}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{args:?}: {}", r.stdout);
    }
    // Three versions is clap's own usage error, also 2.
    pagelog(["diff", db.to_str().unwrap(), "1", "2", "3"]).expect_code(2);
    // A version that does not exist is not a usage error: the log decides.
    let r = pagelog(["diff", db.to_str().unwrap(), "1", "9"]).expect_code(1);
    assert!(r.stderr.contains("version 9 does not exist"), "{}", r.stderr);
}

#[test]
fn diff_statistics_use_the_singular_for_one_page() {
    let d = TempDir::new("msg-plural");
    let db = d.path("app.db");
    drop(make_log(&db, 4));
    for (a, b) in [("0", "1"), ("1", "2"), ("3", "4"), ("4", "4"), ("0", "4")] {
        let r = pagelog(["diff", db.to_str().unwrap(), a, b]).ok();
        let line = r.stderr.lines().last().unwrap_or_default().to_string();
        let words: Vec<&str> = line.split([' ', ',']).filter(|w| !w.is_empty()).collect();
        // "N page(s) read, M page(s) changed, T ms"
        assert_eq!(words.len(), 8, "{line}");
        for (n, noun) in [(words[0], words[1]), (words[3], words[4])] {
            let want = if n == "1" { "page" } else { "pages" };
            assert_eq!(noun, want, "{line}");
        }
        assert_eq!((words[2], words[5]), ("read", "changed"), "{line}");
    }
}

#[test]
fn help_says_that_version_0_is_the_empty_database() {
    let r = pagelog(["--help"]).ok();
    assert!(r.stdout.contains("Version 0 is the empty database"), "{}", r.stdout);
    assert!(!r.stdout.contains("numbered 1, 2, 3"), "{}", r.stdout);
    let d = TempDir::new("msg-v0");
    let db = d.path("app.db");
    drop(make_log(&db, 2));
    // What --help says holds: version 0 can be diffed, exported and reverted to.
    pagelog(["diff", db.to_str().unwrap(), "0", "2"]).ok();
    pagelog(["export".as_ref(), db.as_os_str(), d.path("v0.db").as_os_str(), "--version".as_ref(), "0".as_ref()]).ok();
    assert_eq!(pagelog(["revert", db.to_str().unwrap(), "--to", "0"]).ok().stdout.trim(), "3");
}

/// A failure on a file other than the log (compaction's temporary file
/// beside it) names that file, not only the log: "compact app.db: remove
/// stale: Is a directory" left the user to guess which file was meant.
#[test]
fn compact_and_upgrade_name_the_temporary_file_they_cannot_replace() {
    let d = TempDir::new("msg-tmp");
    let db = d.path("app.db");
    drop(make_log(&db, 3));
    // Something compaction cannot remove where it writes its new log
    // (a directory: also as root, unlike a read-only directory).
    let tmp = d.path("app.db.compact-tmp");
    std::fs::create_dir(&tmp).unwrap();
    std::fs::write(tmp.join("keep"), b"x").unwrap();
    for args in [vec!["compact", "--keep-last", "1"], vec!["upgrade", "--format", "4"]] {
        let mut all: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
        all.push(db.as_os_str());
        let r = pagelog(&all).expect_code(1);
        assert!(r.stderr.contains("app.db.compact-tmp"), "{args:?}: {}", r.stderr);
        assert!(r.stderr.starts_with(&format!("pagelog: {} {}", args[0], db.display())), "{args:?}: {}", r.stderr);
    }
    assert_eq!(versions(&db).len(), 3);
}

/// `pagelog -h` (and `pagelog` with no arguments) opened with a summary
/// naming 8 of the 14 subcommands (the crate's description, written before
/// upgrade, replicate, restore, follow and retain); `--help` with another.
/// Both now open with the same line, which names what the tool does.
#[test]
fn short_and_long_help_open_with_the_same_summary() {
    let short = pagelog(["-h"]).ok().stdout;
    let long = pagelog(["--help"]).ok().stdout;
    let bare = pagelog::<[&str; 0], &str>([]).expect_code(2).stderr;
    // (clap drops the summary's full stop in the short help.)
    let first = |s: &str| s.lines().next().unwrap_or_default().trim_end_matches('.').to_string();
    assert_eq!(first(&short), first(&long), "-h:\n{short}\n--help:\n{long}");
    assert_eq!(first(&bare), first(&long), "no arguments:\n{bare}");
    for what in ["diff", "retain", "replicate", "upgrade"] {
        assert!(first(&long).contains(what), "{what}: {}", first(&long));
    }
}

/// A refusal the log layer words itself ("app.db: a size budget of 1 KiB is
/// below the live database …") named the log twice after the command's own
/// context: "retain app.db: app.db: a size budget …".
#[test]
fn a_refusal_names_the_log_once() {
    let d = TempDir::new("msg-once");
    let db = d.path("app.db");
    drop(make_log(&db, 3));
    let name = db.to_str().unwrap();
    let r = pagelog(["retain", name, "2 versions"]).expect_code(1);
    assert_eq!(r.stderr.matches(name).count(), 2, "{}", r.stderr); // the context, and the command to run
    pagelog(["upgrade", name, "--format", "4"]).ok();
    let r = pagelog(["retain", name, "1 KiB"]).expect_code(1);
    assert!(r.stderr.contains("is below the live database"), "{}", r.stderr);
    assert_eq!(r.stderr.matches(name).count(), 1, "{}", r.stderr);
}
