// For compare.py: prints what pagelog's `Log::open` (read-only) gives for
// each file, a line a file: `opens N` (the latest version, from `refresh`)
// or `refused: ERROR`. With `--pages` first, an `opens N` line goes on with
// every version's image as `Log::version` reads it, ` V:CRC` (crc32 of the
// database image, hex), ` V:reclaimed`, ` V:none` (no such version in the
// file) or ` V:error` (damage met). Not part of any crate: compare.py
// compiles it with
//   rustc --edition 2021 open_latest.rs --extern pagelog=target/debug/libpagelog.rlib -L target/debug/deps
use pagelog::{Error, Log, OpenOptions};

fn crc32(mut crc: u32, data: &[u8]) -> u32 {
    crc = !crc;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn image(log: &Log, n: u64) -> String {
    match log.version(n) {
        Ok(v) => {
            let mut buf = vec![0u8; v.size_bytes() as usize];
            match v.read(0, &mut buf) {
                Ok(_) => format!("{:08x}", crc32(0, &buf)),
                Err(_) => "error".into(),
            }
        }
        Err(Error::Reclaimed { .. }) => "reclaimed".into(),
        Err(Error::NoSuchVersion { .. }) => "none".into(),
        Err(_) => "error".into(),
    }
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let pages = args.first().is_some_and(|a| a == "--pages");
    if pages {
        args.remove(0);
    }
    for p in args {
        match Log::open(std::path::Path::new(&p), OpenOptions { read_only: true, ..Default::default() }) {
            Ok(log) => match log.refresh() {
                Ok(v) if pages => {
                    let all: Vec<String> = (1..=v.number).map(|n| format!("{n}:{}", image(&log, n))).collect();
                    println!("opens {} {}", v.number, all.join(" "));
                }
                Ok(v) => println!("opens {}", v.number),
                Err(e) => println!("refresh-failed: {e}"),
            },
            Err(e) => println!("refused: {e}"),
        }
    }
}
