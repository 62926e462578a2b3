//! `tern`: parse the configuration (flags and ETCD_* variables), start the log, run the server.
//!
//! Errors before the log starts (flags, and the fatal one `run` returns) are one plain
//! `tern: …` line, as a command-line tool prints them; everything else is in the log's format.

fn main() {
    tern::process::install_panic_hook();
    let config = match tern::config::parse() {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let levels = tern::logging::Levels::new(config.debug, config.log_package_levels.as_deref());
    let bad_levels = levels.as_ref().err().cloned();
    tern::logging::init(levels.unwrap_or_else(|_| {
        tern::logging::Levels::new(config.debug, None).expect("no package levels parse")
    }));
    if let Some(e) = bad_levels {
        // etcd warns and goes on with the default levels.
        tracing::warn!("couldn't parse --log-package-levels: {e}; continuing with default levels");
    }
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    if let Err(e) = tern::server::run(config) {
        eprintln!("tern: {e}");
        std::process::exit(1);
    }
}
