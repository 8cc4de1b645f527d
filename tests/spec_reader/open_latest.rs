// For compare.py: prints what pagelog's `Log::open` (read-only) gives for
// each file, a line a file: `opens N` (the latest version, from `refresh`)
// or `refused: ERROR`. Not part of any crate: compare.py compiles it with
//   rustc --edition 2021 open_latest.rs --extern pagelog=target/debug/libpagelog.rlib -L target/debug/deps
use pagelog::{Log, OpenOptions};

fn main() {
    for p in std::env::args().skip(1) {
        match Log::open(std::path::Path::new(&p), OpenOptions { read_only: true, ..Default::default() }) {
            Ok(log) => match log.refresh() {
                Ok(v) => println!("opens {}", v.number),
                Err(e) => println!("refresh-failed: {e}"),
            },
            Err(e) => println!("refused: {e}"),
        }
    }
}
