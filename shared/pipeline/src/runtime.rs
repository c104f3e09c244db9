//! Running stages on a transport: the in-process bus or RabbitMQ, chosen by `broker.url`, with SIGTERM/SIGINT turned into a graceful shutdown.

use crate::memory::{self, MemoryBus};
use crate::rabbitmq::{self, BrokerConfig};
use crate::stage::{Outgoing, RetryPolicy, Stage};
use std::sync::Arc;
use tokio::sync::watch;

/// Where messages travel.
#[derive(Clone, Debug)]
pub enum Transport {
    Memory(Arc<MemoryBus>),
    Rabbit(BrokerConfig),
}

impl Transport {
    /// The transport `broker.url` asks for.
    pub fn from_settings(settings: &crate::Settings) -> Transport {
        match &settings.broker.url {
            Some(url) => Transport::Rabbit(BrokerConfig::new(url, &settings.broker.prefix)),
            None => Transport::Memory(MemoryBus::new()),
        }
    }

    /// Cancel the work on every other head of `cancel.pr`, on every host: in this process at once, through the
    /// broker's cancel exchange to every process running regen or checker.
    pub async fn cancel(&self, cancel: &crate::cancel::Cancel) -> Result<(), String> {
        match self {
            Transport::Memory(_) => {
                crate::cancel::apply(cancel);
                Ok(())
            }
            Transport::Rabbit(cfg) => rabbitmq::publish_cancel(cfg, cancel).await.map_err(|e| e.to_string()),
        }
    }

    /// Publish one message, confirmed.
    pub async fn publish(&self, out: Outgoing) -> Result<(), String> {
        match self {
            Transport::Memory(bus) => {
                bus.publish(out);
                Ok(())
            }
            Transport::Rabbit(cfg) => rabbitmq::publish_once(cfg, &out).await.map_err(|e| e.to_string()),
        }
    }
}

/// Run one consumer per stage until shutdown (and, on RabbitMQ, this process's cancel listener).
pub async fn run_stages(transport: Transport, stages: Vec<Arc<dyn Stage>>, policy: RetryPolicy, shutdown: watch::Receiver<bool>) {
    let mut tasks = Vec::new();
    crate::events::configure(&transport);
    for stage in &stages {
        crate::metrics::get().expect_stage(stage.name());
    }
    if let Transport::Rabbit(cfg) = &transport {
        if !stages.is_empty() {
            tasks.push(tokio::spawn(rabbitmq::run_cancel_listener(cfg.clone(), shutdown.clone())));
        }
    }
    for stage in stages {
        let rx = shutdown.clone();
        tasks.push(match &transport {
            Transport::Memory(b) => tokio::spawn(memory::run_consumer(b.clone(), stage, policy, rx)),
            Transport::Rabbit(cfg) => tokio::spawn(rabbitmq::run_consumer(cfg.clone(), stage, policy, rx)),
        });
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// A shutdown flag that SIGTERM or SIGINT raises: stop taking work, finish what is in hand, exit.
pub fn shutdown_on_signals() -> (watch::Sender<bool>, watch::Receiver<bool>) {
    let (tx, rx) = watch::channel(false);
    let signal_tx = tx.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            tracing::error!("cannot install signal handlers");
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: draining"),
            _ = int.recv() => tracing::info!("SIGINT: draining"),
        }
        let _ = signal_tx.send(true);
    });
    (tx, rx)
}

/// The start of every service binary: `<name> [--config FILE]` parsed, configuration loaded and checked
/// (exit 64 naming the key), a runtime built. Err carries the exit code, the reason already printed.
pub fn service_start(name: &str) -> Result<(crate::Settings, tokio::runtime::Runtime), std::process::ExitCode> {
    crate::telemetry::init("info");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match args.as_slice() {
        [] => None,
        [flag, file] if flag == "--config" => Some(std::path::PathBuf::from(file)),
        _ => {
            eprintln!("usage: {name} [--config FILE]");
            return Err(std::process::ExitCode::from(2));
        }
    };
    let settings = crate::Settings::load(config.as_deref()).map_err(|e| {
        eprintln!("{name}: {e}");
        std::process::ExitCode::from(64)
    })?;
    crate::notify::configure(&settings);
    install_metrics();
    let runtime = tokio::runtime::Runtime::new().map_err(|e| {
        eprintln!("{name}: cannot start the runtime: {e}");
        std::process::ExitCode::from(2)
    })?;
    Ok((settings, runtime))
}

/// The whole `main` of a one-stage service binary: started by `service_start`, the stage built, consumed until SIGTERM.
/// `build` fails with the message and the exit code (64: the stage cannot start as configured; 2: anything else).
pub fn service_main(name: &str, build: impl FnOnce(&crate::Settings) -> Result<Arc<dyn Stage>, (String, u8)>) -> std::process::ExitCode {
    let (settings, runtime) = match service_start(name) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let stage = match build(&settings) {
        Ok(s) => s,
        Err((e, code)) => {
            eprintln!("{name}: {e}");
            return std::process::ExitCode::from(code);
        }
    };
    runtime.block_on(async move {
        let (_tx, rx) = shutdown_on_signals();
        if let Err(e) = crate::http::serve_configured(&settings).await {
            eprintln!("{name}: {e}");
            return std::process::ExitCode::from(64);
        }
        run_stages(Transport::from_settings(&settings), vec![stage], RetryPolicy::default(), rx).await;
        std::process::ExitCode::SUCCESS
    })
}

/// This process's metrics registry, made here and installed once (`crate::metrics`).
pub fn install_metrics() -> &'static crate::metrics::Metrics {
    match crate::metrics::Metrics::new(prometheus::Registry::new()) {
        Ok(m) => crate::metrics::install(m),
        Err(e) => {
            tracing::error!(error = %e, "cannot make the metrics registry; metrics are not served");
            crate::metrics::get()
        }
    }
}
