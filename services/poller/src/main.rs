//! The `poller` service (`poller [--config FILE]`): polls the repository's pull-request refs and publishes new revisions; `prci run --stage poller` is the same.

fn main() -> std::process::ExitCode {
    shared::telemetry::init("info");
    let config = match std::env::args().skip(1).collect::<Vec<_>>().as_slice() {
        [] => None,
        [flag, file] if flag == "--config" => Some(std::path::PathBuf::from(file)),
        _ => {
            eprintln!("usage: poller [--config FILE]");
            return std::process::ExitCode::from(2);
        }
    };
    let settings = match shared::Settings::load(config.as_deref()) {
        Ok(s) if s.repository.url.is_empty() => {
            eprintln!("poller: bad configuration: repository.url: required");
            return std::process::ExitCode::from(64);
        }
        Ok(s) => s,
        Err(e) => {
            eprintln!("poller: {e}");
            return std::process::ExitCode::from(64);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("poller: cannot start the runtime: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async move {
        let (_tx, rx) = shared::runtime::shutdown_on_signals();
        let transport = shared::runtime::Transport::from_settings(&settings);
        poller::run::run(settings, transport, rx, false).await
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("poller: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
