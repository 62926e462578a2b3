//! `tern`: parse the configuration (flags and ETCD_* variables), start the log, run the server.
//!
//! Errors before the log starts (flags, and the fatal one `run` returns) are one plain
//! `tern: …` line, as a command-line tool prints them; everything else is in the log's format.

/// mimalloc instead of glibc's malloc. A write allocates a few dozen small objects, some freed
/// on another shard's thread (events, published versions of the store); under 64 clients' PUTs
/// glibc's malloc and free took about a tenth of tern's CPU. Built without transparent huge
/// pages (`no_thp`: huge pages doubled the resident size of a loaded member) and told to return
/// freed pages after 10 ms (below).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_t` (`c_src/mimalloc/v3/include/mimalloc.h`
/// of libmimalloc-sys 0.1.49, pinned in Cargo.toml; check the index when moving the pin).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed pages go back to the system after 10 ms (mimalloc v2's default) instead of v3's 1 s
/// (10 s for whole arenas), which kept superseded versions of the store resident: RSS after
/// 500,000 PUTs 118 MiB instead of 159 with glibc and up to 296 with v3's defaults.
fn tune_allocator() {
    // SAFETY: an option setter with no memory arguments, called before any other thread exists
    // (mimalloc's option setters are not thread-safe).
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 10) };
}

fn main() {
    tune_allocator();
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
