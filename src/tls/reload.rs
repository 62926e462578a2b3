//! A value built from files and rebuilt when they change: how certificates and keys are
//! re-read without a restart. Callers ask for the current value per connection; the files'
//! stamps (modification time, size, inode) are checked at most once per [`CHECK_INTERVAL`],
//! and a rebuild that fails keeps the previous value (logged, rate-limited). Knows nothing
//! about TLS.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::ratelog::RateLimited;

/// How often the files' stamps are looked at.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamps(paths: &[PathBuf]) -> Vec<Option<Stamp>> {
    use std::os::unix::fs::MetadataExt;
    paths
        .iter()
        .map(|p| {
            std::fs::metadata(p).ok().map(|m| Stamp {
                modified: m.modified().ok(),
                len: m.len(),
                inode: m.ino(),
            })
        })
        .collect()
}

type Build<T> = Box<dyn Fn() -> Result<T, String> + Send + Sync>;

struct State<T> {
    value: Arc<T>,
    stamps: Vec<Option<Stamp>>,
    checked: Instant,
}

/// See the module documentation.
pub struct Reloading<T> {
    /// What this value is, for the log (`client TLS certificate`).
    what: String,
    paths: Vec<PathBuf>,
    build: Build<T>,
    state: Mutex<State<T>>,
    failed: RateLimited,
}

impl<T> Reloading<T> {
    /// Builds the first value (its error is the caller's to report) and remembers `paths`.
    pub fn new(
        what: impl Into<String>,
        paths: Vec<PathBuf>,
        build: impl Fn() -> Result<T, String> + Send + Sync + 'static,
    ) -> Result<Reloading<T>, String> {
        let before = stamps(&paths);
        let value = Arc::new(build()?);
        Ok(Reloading {
            what: what.into(),
            paths,
            build: Box::new(build),
            state: Mutex::new(State {
                value,
                stamps: before,
                checked: Instant::now(),
            }),
            failed: RateLimited::new(crate::ratelog::DEFAULT_INTERVAL),
        })
    }

    /// The current value, rebuilt first when a file changed since the last look.
    pub fn get(&self) -> Arc<T> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.checked.elapsed() < CHECK_INTERVAL {
            return state.value.clone();
        }
        state.checked = Instant::now();
        let now = stamps(&self.paths);
        if now == state.stamps {
            return state.value.clone();
        }
        match (self.build)() {
            Ok(value) => {
                state.value = Arc::new(value);
                state.stamps = now;
                tracing::info!(
                    "reloaded the {} from {}",
                    self.what,
                    self.paths
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            Err(e) => {
                // Keep the stamps as they were, so a file still being written is retried.
                crate::ratelog!(
                    self.failed,
                    "cannot reload the {}: {e}; still using the previous one",
                    self.what
                );
            }
        }
        state.value.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebuilds_when_a_file_changes_and_keeps_the_old_value_on_failure() {
        let dir = std::env::temp_dir().join(format!("tern-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("value");
        std::fs::write(&file, "1").unwrap();
        let read = file.clone();
        let r = Reloading::new("test value", vec![file.clone()], move || {
            let text = std::fs::read_to_string(&read).map_err(|e| e.to_string())?;
            text.trim().parse::<u32>().map_err(|e| e.to_string())
        })
        .unwrap();
        assert_eq!(*r.get(), 1);
        std::fs::write(&file, "22").unwrap();
        // Not looked at again within the interval.
        assert_eq!(*r.get(), 1);
        std::thread::sleep(CHECK_INTERVAL + Duration::from_millis(50));
        assert_eq!(*r.get(), 22);
        std::fs::write(&file, "not a number").unwrap();
        std::thread::sleep(CHECK_INTERVAL + Duration::from_millis(50));
        assert_eq!(*r.get(), 22, "a failed rebuild keeps the previous value");
        std::fs::write(&file, "333").unwrap();
        std::thread::sleep(CHECK_INTERVAL + Duration::from_millis(50));
        assert_eq!(*r.get(), 333);
        let _ = std::fs::remove_dir_all(dir);
    }
}
