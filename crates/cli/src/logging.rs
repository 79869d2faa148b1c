//! Logs, set up in one place for every command that logs: on stderr, human text (coloured on a
//! terminal) or JSON lines when asked. `RUST_LOG` filters; without it each command has its
//! default filter.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Logs at `info` unless `RUST_LOG` says otherwise (`plannt serve`).
pub fn init(json: bool) {
    init_with(json, "info");
}

/// Logs filtered by `RUST_LOG`, or by `default` when it is not set.
pub fn init_with(json: bool, default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // A closed standard error loses the logs, and nothing else: the subscriber would report
    // its failed write with `eprintln!`, which panics on a closed standard error.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
}
