//! The server's log: etcd 2.x's line format, levels and packages, on `tracing`.
//!
//! A line reads `2026-12-03 17:44:26.123456 I | etcdserver: message`: local time to the
//! microsecond, the level's letter (`E`rror, `W`arning, `I`nfo, `D`ebug, `T`race), and the
//! package, as etcd 2.3's capnslog prints them. Call sites log with tracing's macros under their
//! module path; this unit maps module paths to etcd's package names ([`package_of`]), so
//! `--log-package-levels etcdserver=DEBUG,raft=WARNING` means for tern what it means for etcd.
//! The level is INFO by default and DEBUG everywhere with `--debug`; the filter depends on a
//! call site's metadata only, so tracing caches it per call site and a disabled `debug!` on a
//! hot path costs a load and a branch. Lines go to stderr, written whole and unbuffered (a
//! line logged just before `exit` is not lost).
//!
//! Owns the subscriber and the format; knows nothing about what is logged.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// Module path prefixes and the etcd package they log as; the first match wins. `raft` is the
/// target raft-rs's own records are logged under.
const PACKAGES: &[(&str, &str)] = &[
    ("tern::raft::membership", "membership"),
    ("tern::cluster", "membership"),
    ("tern::raft", "raft"),
    ("raft", "raft"),
    ("tern::transport", "rafthttp"),
    ("tern::proxy::director", "proxy/httpproxy"),
    ("tern::proxy::forward", "proxy/httpproxy"),
    ("tern::wal", "wal"),
    ("tern::snap", "snap"),
    ("tern::store", "store"),
    ("tern::api::auth", "auth"),
    ("tern::auth", "auth"),
    ("tern::api", "etcdhttp"),
    ("tern::http", "etcdhttp"),
    ("tern::tls", "transport"),
    ("tern::shard", "etcdserver"),
    ("tern::server", "etcdserver"),
    ("tern::listener", "etcdserver"),
    ("tern::metrics", "etcdserver"),
];

/// The etcd package a log target (a module path) belongs to; `etcdmain` for the rest
/// (start-up, configuration, signals).
pub fn package_of(target: &str) -> &'static str {
    PACKAGES
        .iter()
        .find(|(prefix, _)| {
            target
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
        })
        .map_or("etcdmain", |(_, package)| package)
}

/// Which levels are logged: one default, and per package where `--log-package-levels` says.
#[derive(Debug, Clone, PartialEq)]
pub struct Levels {
    default: Level,
    packages: Vec<(String, Level)>,
}

impl Levels {
    /// INFO (DEBUG with `--debug`), then the `--log-package-levels` list
    /// (`package=LEVEL,…` with capnslog's level names). A malformed list is an error that names
    /// the part it could not read.
    pub fn new(debug: bool, package_levels: Option<&str>) -> Result<Levels, String> {
        let mut levels = Levels {
            default: if debug { Level::DEBUG } else { Level::INFO },
            packages: Vec::new(),
        };
        for part in package_levels
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (package, level) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not package=LEVEL"))?;
            let level = parse_level(level.trim())
                .ok_or_else(|| format!("{level:?} in {part:?} is not a log level"))?;
            levels.packages.push((package.trim().to_string(), level));
        }
        Ok(levels)
    }

    /// Whether a record of `level` from `target` is logged.
    pub fn enabled(&self, target: &str, level: &Level) -> bool {
        let package = package_of(target);
        let max = self
            .packages
            .iter()
            .rev()
            .find(|(p, _)| p == package || p == "*")
            .map_or(self.default, |(_, l)| *l);
        *level <= max
    }
}

/// capnslog's level names (and their letters); NOTICE logs as INFO, CRITICAL as ERROR.
fn parse_level(s: &str) -> Option<Level> {
    Some(match s.to_ascii_uppercase().as_str() {
        "CRITICAL" | "C" | "ERROR" | "E" => Level::ERROR,
        "WARNING" | "WARN" | "W" => Level::WARN,
        "NOTICE" | "N" | "INFO" | "I" => Level::INFO,
        "DEBUG" | "D" => Level::DEBUG,
        "TRACE" | "T" => Level::TRACE,
        _ => return None,
    })
}

/// Installs the process-wide logger. Call once, before the server starts; a second call
/// leaves the first in place.
pub fn init(levels: Levels) {
    let layer = tracing_subscriber::fmt::layer()
        .event_format(EtcdFormat)
        .with_writer(std::io::stderr)
        .with_filter(tracing_subscriber::filter::filter_fn(move |meta| {
            levels.enabled(meta.target(), meta.level())
        }));
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer));
}

/// etcd 2.x's line: `YYYY-MM-DD HH:MM:SS.micros L | package: message key=value…`.
struct EtcdFormat;

impl<S, N> FormatEvent<S, N> for EtcdFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        write!(
            writer,
            "{} {} | {}: ",
            LocalTime::now(),
            letter(meta.level()),
            package_of(meta.target())
        )?;
        ctx.format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

fn letter(level: &Level) -> char {
    match *level {
        Level::ERROR => 'E',
        Level::WARN => 'W',
        Level::INFO => 'I',
        Level::DEBUG => 'D',
        Level::TRACE => 'T',
    }
}

/// The wall clock in the local time zone, as capnslog prints it.
struct LocalTime {
    tm: libc::tm,
    micros: u32,
}

impl LocalTime {
    fn now() -> LocalTime {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let secs = now.as_secs() as libc::time_t;
        // SAFETY: an all-zero `tm` is a valid value; localtime_r fills it from `secs`.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        // SAFETY: both pointers are valid for the call; localtime_r is thread-safe.
        unsafe { libc::localtime_r(&secs, &mut tm) };
        LocalTime {
            tm,
            micros: now.subsec_micros(),
        }
    }
}

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.tm;
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
            t.tm_year + 1900,
            t.tm_mon + 1,
            t.tm_mday,
            t.tm_hour,
            t.tm_min,
            t.tm_sec,
            self.micros
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_paths_log_as_etcds_packages() {
        assert_eq!(package_of("tern::raft::membership"), "membership");
        assert_eq!(package_of("tern::raft::snapshots"), "raft");
        assert_eq!(package_of("tern::raft"), "raft");
        assert_eq!(package_of("raft"), "raft");
        assert_eq!(package_of("tern::transport::peer_api"), "rafthttp");
        assert_eq!(package_of("tern::server"), "etcdserver");
        assert_eq!(package_of("tern::shutdown"), "etcdmain");
        // A prefix matches whole path segments only.
        assert_eq!(package_of("tern::raftish"), "etcdmain");
        assert_eq!(package_of("tern::snapper"), "etcdmain");
    }

    #[test]
    fn package_levels_override_the_default_like_etcds_flag() {
        let l = Levels::new(false, None).unwrap();
        assert!(l.enabled("tern::server", &Level::INFO));
        assert!(!l.enabled("tern::server", &Level::DEBUG));
        let l = Levels::new(true, None).unwrap();
        assert!(l.enabled("tern::raft", &Level::DEBUG));
        assert!(!l.enabled("tern::raft", &Level::TRACE));
        let l = Levels::new(false, Some("etcdserver=DEBUG, raft=warning,rafthttp=E")).unwrap();
        assert!(l.enabled("tern::shard", &Level::DEBUG));
        assert!(!l.enabled("tern::raft", &Level::INFO));
        assert!(l.enabled("tern::raft", &Level::WARN));
        assert!(!l.enabled("tern::transport", &Level::WARN));
        assert!(l.enabled("tern::transport", &Level::ERROR));
        assert!(l.enabled("tern::wal", &Level::INFO));
        assert!(!l.enabled("tern::wal", &Level::DEBUG));
        let l = Levels::new(false, Some("*=TRACE")).unwrap();
        assert!(l.enabled("tern::wal", &Level::TRACE));
    }

    #[test]
    fn a_malformed_level_list_names_its_bad_part() {
        let e = Levels::new(false, Some("etcdserver=LOUD")).unwrap_err();
        assert!(e.contains("LOUD"), "{e}");
        let e = Levels::new(false, Some("raft")).unwrap_err();
        assert!(e.contains("\"raft\""), "{e}");
    }

    #[test]
    fn the_clock_prints_like_capnslog() {
        let s = LocalTime::now().to_string();
        assert_eq!(s.len(), "2026-12-03 17:44:26.123456".len(), "{s}");
        let b = s.as_bytes();
        assert_eq!(
            (b[4], b[7], b[10], b[13], b[16], b[19]),
            (b'-', b'-', b' ', b':', b':', b'.')
        );
    }
}
