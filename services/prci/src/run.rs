//! `prci run`: the pipeline's stages in one process (in-process queues without `broker.url`, RabbitMQ with it), or one stage with `--stage`.

use pipeline::runtime::{self, Transport};
use pipeline::stage::{RetryPolicy, Stage};
use pipeline::Settings;
use std::sync::Arc;

/// The stages, in pipeline order, as operators name them.
pub const STAGES: [&str; 5] = ["poller", "regen", "checker", "differ", "publisher"];

/// Why the pipeline could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Configuration the pipeline cannot start with: exit 64.
    #[error("bad configuration: {key}: {reason}")]
    Config { key: String, reason: String },
    #[error("{0}")]
    Failed(String),
}

fn config(key: &str, reason: impl Into<String>) -> RunError {
    RunError::Config { key: key.into(), reason: reason.into() }
}

/// A stage that cannot start: a sandbox that cannot be made as configured is a configuration error (exit 64).
fn start_error(e: sandbox::SetupError) -> RunError {
    if e.is_configuration() {
        config(&e.key(), e.to_string())
    } else {
        RunError::Failed(e.to_string())
    }
}

/// A forge that cannot be used as configured is a configuration error (exit 64).
fn forge_error(e: forge::ForgeError) -> RunError {
    match e {
        forge::ForgeError::Config { key, reason } => config(&key, reason),
        other => RunError::Failed(other.to_string()),
    }
}

fn poll_error(e: poller::PollError) -> RunError {
    match e {
        poller::PollError::Config { key, reason } => config(&key, reason),
        other => RunError::Failed(other.to_string()),
    }
}

/// Build the consuming stages among `wanted`.
pub fn build_stages(settings: &Settings, wanted: &[&str]) -> Result<Vec<Arc<dyn Stage>>, RunError> {
    let mut stages: Vec<Arc<dyn Stage>> = Vec::new();
    for name in wanted {
        match *name {
            "regen" => stages.push(Arc::new(regen::stage::RegenStage::from_settings(settings).map_err(start_error)?)),
            "checker" => stages.push(Arc::new(checker::stage::CheckerStage::from_settings(settings).map_err(start_error)?)),
            "differ" => stages.push(Arc::new(differ::stage::DifferStage::from_settings(settings))),
            "publisher" => stages.push(Arc::new(publisher::stage::PublisherStage::from_settings(settings).map_err(forge_error)?)),
            _ => {}
        }
    }
    Ok(stages)
}

/// Run the pipeline (or one stage) until SIGTERM; with `until_idle` (single-process mode only), poll once,
/// process everything that came in, and return.
pub async fn run(settings: Settings, stage: Option<&str>, until_idle: bool) -> Result<(), RunError> {
    pipeline::notify::configure(&settings);
    let wanted: Vec<&str> = match stage {
        Some(s) if STAGES.contains(&s) => vec![s],
        Some(s) => return Err(RunError::Failed(format!("unknown stage {s:?}; expected one of {}", STAGES.join(", ")))),
        None => STAGES.to_vec(),
    };
    if (wanted.contains(&"poller") || wanted.contains(&"regen")) && settings.repository.url.is_empty() {
        return Err(config("repository.url", "required: the git remote (or local path) whose refs/pull/<N>/head are checked"));
    }
    let transport = Transport::from_settings(&settings);
    if until_idle && !matches!(transport, Transport::Memory(_)) {
        return Err(RunError::Failed("--until-idle needs the in-process queues (no broker.url)".into()));
    }
    std::fs::create_dir_all(&settings.work.dir).map_err(|e| config("work.dir", format!("{}: {e}", settings.work.dir.display())))?;
    let stages = build_stages(&settings, &wanted)?;
    let (tx, rx) = runtime::shutdown_on_signals();
    // One listener serves every stage of this process; the poller's also takes the webhook.
    if !wanted.contains(&"poller") {
        pipeline::http::serve_configured(&settings).await.map_err(|e| config(&e.key, e.reason))?;
    }
    if wanted.contains(&"publisher") {
        publisher::status::spawn(settings.reports.dir.clone(), transport.clone(), rx.clone());
    }
    let consumers = tokio::spawn(runtime::run_stages(transport.clone(), stages, RetryPolicy::default(), rx.clone()));
    let poller = if wanted.contains(&"poller") {
        Some(tokio::spawn(poller::run::run(settings.clone(), transport.clone(), rx.clone(), until_idle)))
    } else {
        None
    };
    if until_idle {
        let Transport::Memory(bus) = &transport else { unreachable!("checked above") };
        if let Some(p) = poller {
            p.await.map_err(|e| RunError::Failed(e.to_string()))?.map_err(poll_error)?;
        }
        bus.wait_idle().await;
        let _ = tx.send(true);
        let _ = consumers.await;
        sandbox::warm::shutdown();
        let dead = bus.dead_letters();
        if !dead.is_empty() {
            return Err(RunError::Failed(format!("{} message(s) dead-lettered; first: {}", dead.len(), dead[0].reason)));
        }
        return Ok(());
    }
    if let Some(p) = poller {
        if let Ok(Err(e)) = p.await {
            let _ = tx.send(true);
            let _ = consumers.await;
            return Err(poll_error(e));
        }
    }
    let _ = consumers.await;
    sandbox::warm::shutdown();
    Ok(())
}
