//! The SQLite-level benchmark: a point `SELECT v FROM t WHERE id = ?` by
//! rowid, through rusqlite's bundled SQLite, with pagelog (registered by
//! `pagelog::register()`) against the default `unix` VFS in its default
//! rollback-journal mode (`journal_mode=DELETE`) and in WAL mode. The
//! difference is the VFS read path: per-transaction locking and snapshot
//! (`xLock`/`xUnlock`, the change-counter read) and `xRead` of the pages
//! SQLite's page cache does not hold.
//!
//! * `point_select/cold/<vfs>`: 100,000 rows of 200 random bytes (≈ 25 MiB)
//!   with SQLite's default page cache (2 MiB): most SELECTs read a leaf page
//!   through the VFS (from the OS page cache: the file is hot);
//! * `point_select/hot/<vfs>`: the same with a cache that holds the whole
//!   database (`cache_size=-65536`, warmed): only the per-statement cost;
//! * `point_select/mmap/<vfs>`: the default cache with `PRAGMA mmap_size`
//!   covering the database (256 MiB), warmed by one pass over every page:
//!   SQLite reads pages through xFetch pointers instead of xRead copies
//!   (rollback-journal mode only: in WAL mode the `unix` VFS maps too, but
//!   that is not what is compared here).
//!
//! Under `cargo test` (no `--bench`) every benchmark runs once on 1,000 rows.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rusqlite::{Connection, OpenFlags};

fn quick() -> bool {
    !std::env::args().any(|a| a == "--bench")
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let p = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Vfs {
    Pagelog,
    UnixDelete,
    UnixWal,
}

impl Vfs {
    fn name(self) -> &'static str {
        match self {
            Vfs::Pagelog => "pagelog",
            Vfs::UnixDelete => "unix-delete",
            Vfs::UnixWal => "unix-wal",
        }
    }

    fn open(self, path: &Path) -> Connection {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        match self {
            Vfs::Pagelog => Connection::open_with_flags_and_vfs(path, flags, pagelog::VFS_NAME).unwrap(),
            _ => Connection::open_with_flags(path, flags).unwrap(),
        }
    }
}

struct Fixture {
    _dir: TempDir,
    conn: Connection,
}

fn fixture(vfs: Vfs, rows: i64) -> Fixture {
    let dir = TempDir::new(&format!("select-{}", vfs.name()));
    let path = dir.0.join("t.db");
    {
        let c = vfs.open(&path);
        if vfs == Vfs::UnixWal {
            c.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0)).unwrap();
        }
        c.execute_batch("PRAGMA synchronous=OFF; CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)").unwrap();
        c.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1) \
             INSERT INTO t SELECT i, randomblob(200) FROM n",
            [rows],
        )
        .unwrap();
    }
    // Reopen: the benchmark's connection starts with an empty page cache.
    Fixture { conn: vfs.open(&path), _dir: dir }
}

fn bench_point_select(c: &mut Criterion) {
    pagelog::register().unwrap();
    let rows: i64 = if quick() { 1_000 } else { 100_000 };
    let mut g = c.benchmark_group("point_select");
    for cache in ["cold", "hot", "mmap"] {
        for vfs in [Vfs::Pagelog, Vfs::UnixDelete, Vfs::UnixWal] {
            if cache == "mmap" && vfs == Vfs::UnixWal {
                continue;
            }
            let mut fx: Option<Fixture> = None;
            g.bench_function(BenchmarkId::new(cache, vfs.name()), |b| {
                let f = fx.get_or_insert_with(|| {
                    let f = fixture(vfs, rows);
                    if cache != "cold" {
                        if cache == "hot" {
                            f.conn.execute_batch("PRAGMA cache_size=-65536").unwrap();
                        } else {
                            // No row back through pagelog: it leaves SQLITE_FCNTL_MMAP_SIZE
                            // unanswered, but SQLite's pager uses xFetch all the same.
                            f.conn.execute_batch("PRAGMA mmap_size=268435456").unwrap();
                        }
                        let n: i64 =
                            f.conn.query_row("SELECT count(*) FROM t WHERE v > x''", [], |r| r.get(0)).unwrap();
                        assert_eq!(n, rows);
                    }
                    f
                });
                let mut stmt = f.conn.prepare("SELECT v FROM t WHERE id = ?1").unwrap();
                let mut state = 0x2545_F491_4F6C_DD1Du64;
                b.iter(|| {
                    // xorshift64: a random rowid in 1..=rows.
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let id = (state % rows as u64) as i64 + 1;
                    let len = stmt.query_row([id], |r| Ok(r.get_ref(0)?.as_blob()?.len())).unwrap();
                    black_box(len)
                });
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = bench_point_select
}
criterion_main!(benches);
