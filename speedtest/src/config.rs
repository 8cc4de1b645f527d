//! The configurations compared side by side: which VFS, which journal mode,
//! which `synchronous` level, and the SQL that sets them up.

use std::fmt;

/// One column of the result table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Config {
    /// pagelog VFS, `PRAGMA synchronous=FULL`.
    PagelogFull,
    /// pagelog VFS, `PRAGMA synchronous=NORMAL`.
    PagelogNormal,
    /// Stock SQLite defaults: rollback journal (`journal_mode=DELETE`), `synchronous=FULL`.
    DeleteFull,
    /// Stock SQLite, `journal_mode=WAL`, `synchronous=FULL`.
    WalFull,
    /// Stock SQLite, `journal_mode=WAL`, `synchronous=NORMAL`.
    WalNormal,
}

/// The name of a `PRAGMA synchronous` value as SQLite reports it (0..=3).
pub fn synchronous_name(level: i64) -> String {
    match level {
        0 => "OFF".into(),
        1 => "NORMAL".into(),
        2 => "FULL".into(),
        3 => "EXTRA".into(),
        n => format!("unknown ({n})"),
    }
}

/// The name the pagelog crate registers its VFS under.
pub const PAGELOG_VFS: &str = "pagelog";

impl Config {
    pub const ALL: [Config; 5] =
        [Config::PagelogFull, Config::PagelogNormal, Config::DeleteFull, Config::WalFull, Config::WalNormal];

    pub fn name(self) -> &'static str {
        match self {
            Config::PagelogFull => "pagelog-full",
            Config::PagelogNormal => "pagelog-normal",
            Config::DeleteFull => "delete-full",
            Config::WalFull => "wal-full",
            Config::WalNormal => "wal-normal",
        }
    }

    pub fn is_pagelog(self) -> bool {
        matches!(self, Config::PagelogFull | Config::PagelogNormal)
    }

    /// The journal mode we set, lower case as `PRAGMA journal_mode` reports
    /// it; `None` for pagelog, whose VFS decides.
    pub fn journal_mode(self) -> Option<&'static str> {
        match self {
            Config::PagelogFull | Config::PagelogNormal => None,
            Config::DeleteFull => Some("delete"),
            Config::WalFull | Config::WalNormal => Some("wal"),
        }
    }

    /// The `synchronous` level: its name and the number `PRAGMA synchronous` reports.
    pub fn synchronous(self) -> (&'static str, i64) {
        match self {
            Config::PagelogFull | Config::DeleteFull | Config::WalFull => ("FULL", 2),
            Config::PagelogNormal | Config::WalNormal => ("NORMAL", 1),
        }
    }

    /// What the configuration is, in words, for the verdict lines:
    /// "pagelog", "stock SQLite in WAL mode", ...
    pub fn label(self) -> &'static str {
        match self {
            Config::PagelogFull | Config::PagelogNormal => "pagelog",
            Config::DeleteFull => "stock SQLite with a rollback journal (DELETE)",
            Config::WalFull | Config::WalNormal => "stock SQLite in WAL mode",
        }
    }

    /// Whether `self` and `other` promise the same durability (the same
    /// `synchronous` level), so that comparing their times is fair.
    pub fn like_for_like(self, other: Config) -> bool {
        self.synchronous().1 == other.synchronous().1
    }

    /// Run once after creating the database: journal mode (persistent in the
    /// file for WAL) then `synchronous`.
    pub fn setup_sql(self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(j) = self.journal_mode() {
            v.push(format!("PRAGMA journal_mode={};", j.to_uppercase()));
        }
        v.push(self.per_connection_sql());
        v
    }

    /// Run on every new connection: `synchronous` is not stored in the file.
    pub fn per_connection_sql(self) -> String {
        format!("PRAGMA synchronous={};", self.synchronous().0)
    }

    /// The database file name inside `--dir`.
    pub fn db_file_name(self) -> String {
        format!("speedtest-{}.db", self.name())
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad` honours width and alignment (`{:<14}`).
        f.pad(self.name())
    }
}
