//! Routes raft-rs's slog records into the server's log (`crate::logging`) under the `raft`
//! package, at their own level: elections and leader changes at INFO, as etcd shows them;
//! raft-rs's DEBUG and TRACE records with `--debug` or `--log-package-levels raft=DEBUG`.
//! A record is formatted only when its level is logged.

use slog::{o, Drain, Level, Logger, OwnedKVList, Record, KV};

struct TracingDrain {
    /// This member's ID in hex, which starts every line (as etcd's raft lines do).
    member: String,
}

/// A record's key-value pairs as ` key=value…`.
#[derive(Default)]
struct Pairs(String);

impl slog::Serializer for Pairs {
    fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments<'_>) -> slog::Result {
        use std::fmt::Write;
        if matches!(key, "id" | "raft_id") {
            return Ok(());
        }
        let _ = write!(self.0, " {key}={val}");
        Ok(())
    }
}

impl Drain for TracingDrain {
    type Ok = ();
    type Err = std::convert::Infallible;
    fn log(&self, record: &Record<'_>, _values: &OwnedKVList) -> Result<(), Self::Err> {
        let pairs = || {
            let mut p = Pairs::default();
            let _ = record.kv().serialize(record, &mut p);
            p.0
        };
        match record.level() {
            Level::Critical | Level::Error => {
                tracing::error!(target: "raft", "{} {}{}", self.member, record.msg(), pairs())
            }
            Level::Warning => {
                tracing::warn!(target: "raft", "{} {}{}", self.member, record.msg(), pairs())
            }
            Level::Info => {
                tracing::info!(target: "raft", "{} {}{}", self.member, record.msg(), pairs())
            }
            Level::Debug => {
                tracing::debug!(target: "raft", "{} {}{}", self.member, record.msg(), pairs())
            }
            Level::Trace => {
                tracing::trace!(target: "raft", "{} {}{}", self.member, record.msg(), pairs())
            }
        }
        Ok(())
    }
}

pub fn build(member_id: u64) -> Logger {
    let member = crate::cluster::id_hex(member_id);
    Logger::root(TracingDrain { member }.fuse(), o!())
}
