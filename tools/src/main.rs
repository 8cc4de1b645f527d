//! The `pagelog` command-line tool (see issue "History"): not written yet.
fn main() {
    eprintln!("pagelog: no subcommands are implemented yet");
    std::process::exit(2);
}
