//! The `publisher` service: one publisher consumer (`publisher [--config FILE]`) and the status page; `prci run --stage publisher` is the same.

use pipeline::runtime::{run_stages, service_start, shutdown_on_signals, Transport};
use pipeline::stage::RetryPolicy;
use std::process::ExitCode;

fn main() -> ExitCode {
    let (settings, runtime) = match service_start("publisher") {
        Ok(s) => s,
        Err(code) => return code,
    };
    let stage = match publisher::stage::PublisherStage::from_settings(&settings) {
        Ok(s) => std::sync::Arc::new(s),
        Err(e) => {
            eprintln!("publisher: {e}");
            return ExitCode::from(64);
        }
    };
    runtime.block_on(async move {
        let (_tx, rx) = shutdown_on_signals();
        if let Err(e) = pipeline::http::serve_configured(&settings).await {
            eprintln!("publisher: {e}");
            return ExitCode::from(64);
        }
        let transport = Transport::from_settings(&settings);
        publisher::status::spawn(settings.reports.dir.clone(), transport.clone(), rx.clone());
        run_stages(transport, vec![stage], RetryPolicy::default(), rx).await;
        ExitCode::SUCCESS
    })
}
