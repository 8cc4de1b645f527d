//! What pagelog says of a log, in the words of the independent reader
//! (`tests/spec_reader/spec_reader.py`), and the pieces of the reader's JSON
//! the comparisons need: the tests that hold the two readers against each
//! other (`spec_reader*.rs`) share them here, so that each compares the same
//! way.

use std::path::Path;

use pagelog::{Log, OpenOptions};

/// What `Log::version(n)` reads for every version 1..=latest of the log at
/// `path`, in spec_reader.py's `--pages` words: the crc32 of the database
/// image (hex), `reclaimed`, `none` (not in the file) or `error`; `refused`
/// when the log does not open.
pub fn pagelog_pages(path: &Path) -> String {
    let Ok(log) = Log::open(path, OpenOptions { read_only: true, ..Default::default() }) else {
        return "refused".into();
    };
    let latest = log.refresh().map_or(0, |v| v.number);
    let words: Vec<String> = (1..=latest)
        .map(|n| {
            let what = match log.version(n) {
                Ok(v) => {
                    let mut buf = vec![0u8; v.size_bytes() as usize];
                    match v.read(0, &mut buf) {
                        Ok(_) => format!("{:08x}", crc32fast::hash(&buf)),
                        Err(_) => "error".into(),
                    }
                }
                Err(pagelog::Error::Reclaimed { .. }) => "reclaimed".into(),
                Err(pagelog::Error::NoSuchVersion { .. }) => "none".into(),
                Err(_) => "error".into(),
            };
            format!("{n}:{what}")
        })
        .collect();
    words.join(" ")
}

/// What `pagelog log` lists of the log at `path` (its readable versions and
/// whether it met damage), as `[1, 2, ...] damage true|false`, the words
/// [`reader_listing`] makes of the reader's JSON.
pub fn pagelog_listing(path: &Path) -> String {
    match pagelog::Readable::open(path).and_then(|r| r.listing()) {
        Ok(l) => {
            format!("{:?} damage {}", l.versions.iter().map(|v| v.version).collect::<Vec<_>>(), !l.damage.is_empty())
        }
        Err(e) => format!("[] damage true ({e})"),
    }
}

/// The reader's listing (its JSON's `readable` and `damage_met`) in
/// [`pagelog_listing`]'s words.
pub fn reader_listing(json: &str) -> String {
    format!("{:?} damage {}", json_list(json, "readable"), json_word(json, "damage_met"))
}

/// The numbers of the JSON list `"key": [1, 2, ...]` in the reader's output.
pub fn json_list(json: &str, key: &str) -> Vec<u64> {
    let at = json.find(&format!("\"{key}\": [")).unwrap_or_else(|| panic!("no {key} in {json}"));
    let rest = &json[at + key.len() + 5..];
    let list = &rest[..rest.find(']').expect("a closed list")];
    list.split(',').filter(|x| !x.trim().is_empty()).map(|x| x.trim().parse().expect("a version")).collect()
}

/// The word after `"key": ` in the reader's output (`true`, `false`).
pub fn json_word(json: &str, key: &str) -> String {
    let at = json.find(&format!("\"{key}\": ")).unwrap_or_else(|| panic!("no {key} in {json}"));
    json[at + key.len() + 4..].chars().take_while(|c| c.is_ascii_alphanumeric()).collect()
}
