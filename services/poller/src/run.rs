//! The poller's loop: poll every `source.poll_interval_secs`, or at once when a webhook delivery wakes it; publish each
//! new revision with a confirm, cancel what it supersedes, set the pending status; until shutdown (or once).

use crate::webhook::{self, Hook, Spool};
use crate::{poll, PollError, Polled, Source, SKIP_LABEL};
use forge::{Forge, State, Status};
use pipeline::cancel::Cancel;
use pipeline::messages::{self, Queue, Revision};
use pipeline::runtime::Transport;
use pipeline::stage::Outgoing;
use pipeline::Settings;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// Where the poller keeps what it emitted.
pub fn state_path(settings: &Settings) -> std::path::PathBuf {
    settings.work.dir.join("poller").join(format!("{}.json", settings.repository.name))
}

/// What one pass needs; cloned into the blocking task.
#[derive(Clone)]
struct Pass {
    settings: Settings,
    source: Source,
    forge: Arc<dyn Forge>,
    spool: Spool,
    transport: Transport,
}

/// Poll until shutdown; with `once`, poll a single time. A permanent error (corrupt state, missing base branch, the forge
/// refusing prci's credentials) ends the loop.
pub async fn run(settings: Settings, transport: Transport, mut shutdown: watch::Receiver<bool>, once: bool) -> Result<(), PollError> {
    git_transport(&settings);
    pipeline::events::configure(&transport);
    let metrics = pipeline::metrics::get();
    metrics.poller_polled(false);
    let forge = forge::from_settings(&settings).map_err(PollError::forge)?;
    let wake = Arc::new(Notify::new());
    let spool = Spool::new(webhook::spool_dir(&settings.work.dir, &settings.repository.name));
    if let Some(listen) = &settings.http.listen {
        let routes = webhook_routes(&settings, spool.clone(), wake.clone())?;
        pipeline::http::serve(listen, routes).await.map_err(|reason| PollError::Config { key: "http.listen".into(), reason })?;
    }
    let source = Source::from_settings(&settings, forge.clone());
    let pass = Pass { settings: settings.clone(), source, forge, spool, transport };
    loop {
        let p = pass.clone();
        let handle = tokio::runtime::Handle::current();
        let result = tokio::task::spawn_blocking(move || one_pass(&p, &handle))
            .await
            .unwrap_or_else(|e| Err(PollError::Emit(format!("poll task failed: {e}"))));
        metrics.poller_polled(result.is_ok());
        match result {
            Ok(polled) if !polled.emitted.is_empty() => tracing::info!(count = polled.emitted.len(), "revisions emitted"),
            Ok(_) => {}
            // A single pass (`--until-idle`) has no next time: its failure is the run's.
            Err(e) if e.is_transient() && !once => tracing::warn!(error = %e, "poll failed; trying again next time"),
            Err(e) => return Err(e),
        }
        if once {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(settings.source.poll_interval_secs.max(1))) => {}
            _ = wake.notified() => tracing::debug!("woken by a webhook delivery"),
            _ = shutdown.changed() => return Ok(()),
        }
    }
}

/// `POST /webhook` when the source is GitHub and a secret is configured; no route otherwise (404).
fn webhook_routes(settings: &Settings, spool: Spool, wake: Arc<Notify>) -> Result<axum::Router, PollError> {
    let (Some(file), "github") = (&settings.github.webhook_secret_file, settings.source.kind.as_str()) else {
        return Ok(axum::Router::new());
    };
    let secret = std::fs::read_to_string(file)
        .map(|s| s.trim().as_bytes().to_vec())
        .map_err(|e| PollError::Config { key: "github.webhook_secret_file".into(), reason: e.to_string() })?;
    let hook = Hook { secret, repository: settings.github.repository.clone(), spool, wake };
    Ok(webhook::router(Arc::new(hook)))
}

/// A re-run a user who may push asked for, waiting for the poll that emits it.
struct Allowed {
    file: std::path::PathBuf,
    recheck: crate::webhook::Recheck,
}

/// The re-runs asked for by users who may push; a re-run from anyone else is dropped with a log line, and so is one
/// whose permission check failed for good. One whose check failed for now waits for the next pass.
fn rechecks(pass: &Pass) -> (BTreeSet<u64>, Vec<Allowed>) {
    let (mut forced, mut allowed) = (BTreeSet::new(), Vec::new());
    for (file, recheck) in pass.spool.rechecks() {
        match pass.forge.permission(&recheck.user) {
            Ok(p) if p.can_write() => {
                forced.insert(recheck.pr);
                allowed.push(Allowed { file, recheck });
            }
            Ok(p) => {
                tracing::info!(pr = recheck.pr, user = %recheck.user, permission = ?p, "re-run ignored: the user may not push");
                let _ = std::fs::remove_file(&file);
            }
            Err(e) if e.is_transient() => tracing::warn!(pr = recheck.pr, error = %e, "cannot check who asked for a re-run; later"),
            Err(e) => {
                tracing::warn!(pr = recheck.pr, error = %e, "re-run dropped: its permission check failed");
                let _ = std::fs::remove_file(&file);
            }
        }
    }
    (forced, allowed)
}

/// Re-runs, one poll, then what the poll implies for the forge and the hosts.
fn one_pass(pass: &Pass, handle: &tokio::runtime::Handle) -> Result<Polled, PollError> {
    let s = &pass.settings;
    let (forced, allowed) = rechecks(pass);
    let mut polled =
        poll(&pass.source, &state_path(s), s.source.recheck_on_base_move, &forced, &s.repository.name, |rev| emit(pass, handle, rev))?;
    for a in allowed {
        let pr = a.recheck.pr;
        if polled.emitted.iter().any(|r| r.pr == pr) {
            tracing::info!(pr, user = %a.recheck.user, "re-run asked for and started");
            if let Err(e) = pass.forge.acknowledge(a.recheck.comment_id) {
                tracing::warn!(pr, error = %e, "cannot acknowledge a re-run");
            }
        } else if polled.error.is_some() {
            continue; // Not emitted yet: kept for the next pass.
        } else {
            tracing::info!(pr, "re-run asked for a pull request that is not checked (closed, noci, draft): nothing to do");
        }
        let _ = std::fs::remove_file(&a.file);
    }
    for pr in &polled.dropped {
        // Closed, labelled noci or turned into a draft: whatever a host still does for it is stale.
        cancel(pass, handle, *pr, "");
        if let Some((head, "label noci")) = polled.skipped.get(pr) {
            skip_pending(pass, *pr, head);
        }
    }
    match polled.error.take() {
        Some(e) => Err(e),
        None => Ok(polled),
    }
}

/// A pending status of a pull request labelled noci becomes success "checks skipped" (a final status stays).
fn skip_pending(pass: &Pass, pr: u64, head: &str) {
    let pending = matches!(pass.forge.status(head), Ok(Some(Status { state: State::Pending, .. })));
    let status = Status { state: State::Success, description: format!("checks skipped ({SKIP_LABEL})"), target_url: None };
    if pending {
        if let Err(e) = pass.forge.set_status(head, &status) {
            tracing::warn!(pr, error = %e, "cannot set the skipped status");
        }
    }
}

/// Mark the head pending (first: a fast pipeline's final status must not be overwritten), publish the revision
/// (confirmed), cancel older work on it.
fn emit(pass: &Pass, handle: &tokio::runtime::Handle, rev: &Revision) -> Result<(), String> {
    let status = Status { state: State::Pending, description: "queued for checking".into(), target_url: None };
    if let Err(e) = pass.forge.set_status(&rev.head, &status) {
        tracing::warn!(pr = rev.pr, error = %e, "cannot set the pending status");
    }
    let out = Outgoing { queue: Queue::Revisions, body: messages::encode(rev), priority: rev.broker_priority() };
    handle.block_on(pass.transport.publish(out))?;
    pipeline::metrics::get().revisions_emitted.inc();
    pipeline::events::emit(pipeline::events::Event::about(pipeline::events::Kind::Emitted, "poller", rev));
    cancel(pass, handle, rev.pr, &rev.head);
    Ok(())
}

/// Whatever a host is still doing for another head of `pr` (any head, with `head` empty) is stale: stop it now.
fn cancel(pass: &Pass, handle: &tokio::runtime::Handle, pr: u64, head: &str) {
    let cancel = Cancel { repository: pass.settings.repository.name.clone(), pr, head: head.to_string() };
    if let Err(e) = handle.block_on(pass.transport.cancel(&cancel)) {
        tracing::warn!(pr, error = %e, "could not send the cancel of older work; it is dropped when it ends");
    }
}

/// The `[git]` transport for this process's listings.
fn git_transport(settings: &Settings) {
    let g = &settings.git;
    let files = (g.ssh_key_file.clone(), g.ssh_known_hosts_file.clone(), g.ca_file.clone(), g.https_token_file.clone());
    let t = trees::transport::Transport::new(files.0, files.1, files.2, files.3, g.connect_timeout_secs, g.low_speed_timeout_secs);
    trees::transport::configure(&t);
}
