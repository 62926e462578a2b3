//! `ternctl`: the etcdctl (v2 mode) compatible command-line client of tern.
//!
//! A thin main: everything, from argument parsing to exit codes, lives in `tern::ctl`.

fn main() {
    std::process::exit(tern::ctl::run(std::env::args_os().collect()));
}
