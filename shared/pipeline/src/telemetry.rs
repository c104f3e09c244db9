//! Logging set-up: tracing to stderr, filtered by `PRCI_LOG` (default `warn` for commands, `info` for services).

use tracing_subscriber::EnvFilter;

/// Install the global subscriber once; later calls are no-ops.
pub fn init(default_level: &str) {
    let filter = EnvFilter::try_from_env("PRCI_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    // Colours only for a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).with_ansi(ansi).try_init();
}
