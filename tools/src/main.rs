//! `pagelog`: the command-line tool for pagelog logs. One subcommand per
//! file; each talks to the log through the `pagelog` crate directly (not
//! through SQLite), opening it read-only where it only reads.
//!
//! Exit codes: 0 success; 1 failure, or damage found (`verify`); 2 usage.
//! Errors go to stderr as "pagelog: <what was being done>: <why>".

use clap::{Parser, Subcommand};

mod cli;
mod compact;
mod diff;
mod export;
mod follow;
mod import;
mod info;
mod log;
mod remote;
mod replicate;
mod restore;
mod retain;
mod revert;
mod time;
mod upgrade;
mod verify;

/// Inspect, diff, verify, revert, export, import, compact, upgrade, retain and replicate pagelog databases.
///
/// A pagelog database is one append-only log file holding every committed
/// version of an SQLite database. Version 0 is the empty database every log
/// starts from; each committed transaction adds the next version (1, 2, 3
/// ...), and any version, 0 included, can be read, diffed, exported and
/// reverted to. TIME arguments are ISO-8601 UTC (2026-11-22T10:00:00Z) or
/// unix seconds.
#[derive(Parser)]
#[command(name = "pagelog", version, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Log(log::Args),
    Info(info::Args),
    Revert(revert::Args),
    Export(export::Args),
    Import(import::Args),
    Verify(verify::Args),
    Compact(compact::Args),
    Upgrade(upgrade::Args),
    Diff(diff::Args),
    Replicate(replicate::Args),
    Restore(restore::Args),
    Retain(retain::Args),
    Follow(follow::Args),
}

fn main() {
    cli::quiet_on_closed_pipe();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Log(a) => log::run(a),
        Command::Info(a) => info::run(a),
        Command::Revert(a) => revert::run(a),
        Command::Export(a) => export::run(a),
        Command::Import(a) => import::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Compact(a) => compact::run(a),
        Command::Upgrade(a) => upgrade::run(a),
        Command::Diff(a) => diff::run(a),
        Command::Replicate(a) => replicate::run(a),
        Command::Restore(a) => restore::run(a),
        Command::Retain(a) => retain::run(a),
        Command::Follow(a) => follow::run(a),
    };
    let code = match result {
        Ok(code) => code,
        Err(f) => {
            cli::diag!("pagelog: {}", f.msg);
            f.code
        }
    };
    std::process::exit(code);
}
