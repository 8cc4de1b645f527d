//! speedtest: SQLite's classic `tool/speedtest.tcl`, reproduced in Rust to
//! compare the pagelog VFS with stock SQLite journal modes side by side.
//!
//! * [`rng`], [`words`]: the Tcl random stream and number names, exact;
//! * [`workload`]: the SQL of each test, generated up front, and the row
//!   counts the script implies;
//! * [`config`]: the configurations (VFS, journal mode, synchronous);
//! * [`runner`]: one timed run of one configuration, in-process or through
//!   the `sqlite3` shell;
//! * [`measure`]: bytes written, file sizes, filesystem;
//! * [`probe`]: fsync counting under strace;
//! * [`proc_cost`]: a child process's CPU time and peak RSS (`wait4`);
//! * [`worker`]: reader/writer worker processes and their protocol;
//! * [`latency`]: mergeable latency histograms;
//! * [`stats`]: median and range over runs;
//! * [`verdict`]: the like-for-like comparisons that lead the report;
//! * [`report`]: the tables and the JSON;
//! * [`chart`]: the per-test times as an SVG chart.
//!
//! The binary (`main.rs`) is only the command line.

pub mod chart;
pub mod config;
pub mod latency;
pub mod measure;
pub mod probe;
pub mod proc_cost;
pub mod report;
pub mod rng;
pub mod runner;
pub mod stats;
pub mod verdict;
pub mod words;
pub mod worker;
pub mod workload;
