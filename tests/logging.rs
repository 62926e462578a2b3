//! tern's log as an operator reads it: etcd 2.x's line format (time, level letter, package),
//! the start-up lines (name, directories, URLs, recovery), and the levels `--debug` and
//! `--log-package-levels` choose, per package as etcd names them.

mod common;

use std::time::Duration;

use common::cluster::Cluster;

const LONG: Duration = Duration::from_secs(30);

/// The log of a one-member tern started with `flags`, after a client connected and wrote,
/// then a restart (so recovery is logged too).
fn log_of(flags: &[&str]) -> String {
    let mut c = Cluster::plan(1, flags);
    let ic = c.initial_cluster(&[0]);
    c.spawn(0, &ic, "new", &[]);
    c.wait_serving(0, LONG);
    assert_eq!(c.client(0).put("/v2/keys/l", &[("value", "1")]).status, 201);
    c.kill(0);
    c.restart(0);
    c.client(0).get("/v2/keys/l");
    c.kill(0);
    c.nodes[0].log()
}

/// `YYYY-MM-DD HH:MM:SS.micros L | package: message`; the level letter and the package.
fn parse_line(line: &str) -> Option<(char, &str)> {
    let b = line.as_bytes();
    let stamp_ok = line.len() > 30
        && b[..26].iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b' ',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            _ => c.is_ascii_digit(),
        });
    if !stamp_ok || &line[26..27] != " " || &line[28..31] != " | " {
        return None;
    }
    let level = line[27..28].chars().next()?;
    let (package, _) = line[31..].split_once(": ")?;
    ("EWIDT".contains(level) && package.chars().all(|c| c.is_ascii_lowercase() || c == '/'))
        .then_some((level, package))
}

#[test]
fn lines_are_etcds_and_start_up_says_what_an_operator_needs() {
    let log = log_of(&[]);
    for line in log.lines() {
        assert!(
            parse_line(line).is_some(),
            "not an etcd-style line: {line:?}\n{log}"
        );
    }
    for wanted in [
        "I | etcdserver: name = m1",
        "I | etcdserver: data dir = ",
        "I | etcdserver: wal dir = ",
        "I | etcdserver: listening for client requests on http://",
        "I | etcdserver: initial cluster = m1=http://",
        "I | etcdserver: 2 shard(s) on ",
        "I | etcdserver: recovered the snapshot at 0 and the WAL to commit ",
        " became leader at term ",
        "I | etcdserver: member ",
    ] {
        assert!(log.contains(wanted), "{wanted:?} not in:\n{log}");
    }
    // INFO is the default: nothing at DEBUG.
    assert!(
        !log.lines()
            .any(|l| parse_line(l).is_some_and(|(lvl, _)| lvl == 'D')),
        "{log}"
    );
}

#[test]
fn debug_and_package_levels_choose_what_is_logged() {
    let debug = log_of(&["--debug"]);
    assert!(
        debug.contains(" D | etcdserver: accepted a connection on "),
        "--debug logs DEBUG lines:\n{debug}"
    );

    // raft quiet, the server's package at DEBUG: its lines stay, raft's elections go.
    let quiet = log_of(&["--log-package-levels", "raft=WARNING,etcdserver=DEBUG"]);
    assert!(!quiet.contains(" became leader at term "), "{quiet}");
    assert!(
        quiet.contains(" D | etcdserver: accepted a connection on "),
        "{quiet}"
    );
    assert!(quiet.contains("I | etcdserver: name = m1"), "{quiet}");

    // A list that does not parse: etcd's warning, naming the flag, and the default levels.
    let bad = log_of(&["--log-package-levels", "raft=LOUD"]);
    assert!(
        bad.contains("W | etcdmain: couldn't parse --log-package-levels: \"LOUD\""),
        "{bad}"
    );
    assert!(bad.contains(" became leader at term "), "{bad}");
}
