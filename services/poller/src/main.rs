//! The `poller` service (`poller [--config FILE]`): polls the repository's pull-request refs and publishes new revisions; `prci run --stage poller` is the same.

fn main() -> std::process::ExitCode {
    let (settings, runtime) = match pipeline::runtime::service_start("poller") {
        Ok(s) => s,
        Err(code) => return code,
    };
    if settings.repository.url.is_empty() {
        eprintln!("poller: bad configuration: repository.url: required");
        return std::process::ExitCode::from(64);
    }
    let result = runtime.block_on(async move {
        let (_tx, rx) = pipeline::runtime::shutdown_on_signals();
        let transport = pipeline::runtime::Transport::from_settings(&settings);
        poller::run::run(settings, transport, rx, false).await
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("poller: {e}");
            let code = if matches!(e, poller::PollError::Config { .. }) { 64 } else { 2 };
            std::process::ExitCode::from(code)
        }
    }
}
