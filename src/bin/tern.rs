//! `tern`: parse the configuration (flags and ETCD_* variables) and run the server.

fn main() {
    tern::process::install_panic_hook();
    let config = match tern::config::parse() {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    for warning in &config.warnings {
        eprintln!("tern: {warning}");
    }
    if let Err(e) = tern::server::run(config) {
        eprintln!("tern: {e}");
        std::process::exit(1);
    }
}
