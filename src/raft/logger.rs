//! Routes raft-rs's slog records to stderr: warnings and errors always, everything with `--debug`.

use slog::{o, Drain, Level, Logger, OwnedKVList, Record};

struct StderrDrain {
    min: Level,
}

impl Drain for StderrDrain {
    type Ok = ();
    type Err = std::convert::Infallible;
    fn log(&self, record: &Record<'_>, _values: &OwnedKVList) -> Result<(), Self::Err> {
        if record.level().is_at_least(self.min) {
            eprintln!(
                "tern: raft: {} {}",
                record.level().as_short_str(),
                record.msg()
            );
        }
        Ok(())
    }
}

pub fn build(debug: bool) -> Logger {
    let min = if debug { Level::Debug } else { Level::Warning };
    Logger::root(StderrDrain { min }.fuse(), o!())
}
