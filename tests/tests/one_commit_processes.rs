//! Issue 9's reproducer, through the stock sqlite3 shell: every commit made
//! by a process of its own (open, one INSERT, exit). A bit flipped later in
//! a frame of a middle version must not roll the database back to the
//! version before it: the log still opens at its latest version, and reading
//! the damaged page is an error naming the file.

use pagelog::{Log, OpenOptions};
use pagelog_e2e::{extension_stem, run_shell, TempDir};

fn shell(dir: &std::path::Path, sql: &str) -> (String, String) {
    let script = format!(".load {}\n.open file:c.db?vfs=pagelog\n{sql}\n", extension_stem());
    let out = run_shell(dir, &script);
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_flipped_frame_in_a_middle_version_is_an_error_not_a_silent_rollback() {
    let d = TempDir::new("one-commit");
    shell(&d.0, "CREATE TABLE t(x);");
    for _ in 0..20 {
        let (_, err) = shell(&d.0, "INSERT INTO t VALUES(randomblob(20000));");
        assert!(err.is_empty(), "{err}");
    }
    let path = d.path("c.db");
    // A page that version 11 wrote (not in version 10) and the latest still
    // reads (an overflow page of row 10): flip one of its bytes.
    let at = {
        let log = Log::open(&path, OpenOptions { read_only: true, ..Default::default() }).unwrap();
        assert_eq!(log.latest().number, 21);
        let (v10, v11, v21) = (log.version(10).unwrap(), log.version(11).unwrap(), log.latest());
        let p = (2..=v11.db_pages())
            .find(|&p| v11.map.get(p) != v10.map.get(p) && v21.map.get(p) == v11.map.get(p))
            .unwrap();
        v11.map.get(p).unwrap().offset + 100
    };
    let mut img = std::fs::read(&path).unwrap();
    img[at as usize] ^= 0x5a;
    std::fs::write(&path, &img).unwrap();

    let (out, err) = shell(&d.0, "SELECT count(*) FROM t; PRAGMA pagelog_version; SELECT sum(length(hex(x))) FROM t;");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"20"), "every row is still there: {out}{err}");
    assert_eq!(lines.get(1), Some(&"21"), "the latest version still opens: {out}{err}");
    assert!(err.contains("malformed"), "reading the damaged page is an error:\nstdout:\n{out}\nstderr:\n{err}");
    let rep = pagelog::verify::verify_file(&path, &mut |_, _| {});
    assert!(rep.damaged(), "verify reports the damage");
    assert_eq!(rep.damage().map(|p| p.offset), Some(at - 100), "at the frame's offset: {:?}", rep.damage());
}
