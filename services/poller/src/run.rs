//! The poller's loop: poll the remote every `source.poll_interval_secs`, publish each new revision with a confirm, until shutdown (or once).

use crate::{poll_once, GitSource, PollError};
use pipeline::cancel::Cancel;
use pipeline::messages::{self, Queue};
use pipeline::runtime::Transport;
use pipeline::stage::Outgoing;
use pipeline::Settings;
use std::time::Duration;
use tokio::sync::watch;

/// Where the poller keeps what it emitted.
pub fn state_path(settings: &Settings) -> std::path::PathBuf {
    settings.work.dir.join("poller").join(format!("{}.json", settings.repository.name))
}

/// Poll until shutdown; with `once`, poll a single time. A permanent error (corrupt state, missing base branch) ends the loop.
pub async fn run(settings: Settings, transport: Transport, mut shutdown: watch::Receiver<bool>, once: bool) -> Result<(), PollError> {
    git_transport(&settings);
    let source = GitSource::from_settings(&settings.repository);
    let path = state_path(&settings);
    loop {
        let (src, p, t, s) = (source.clone(), path.clone(), transport.clone(), settings.clone());
        let handle = tokio::runtime::Handle::current();
        let result = tokio::task::spawn_blocking(move || {
            poll_once(&src, &p, s.source.recheck_on_base_move, &s.repository.name, |rev| {
                handle.block_on(t.publish(Outgoing {
                    queue: Queue::Revisions,
                    body: messages::encode(rev),
                    priority: rev.broker_priority(),
                }))?;
                // Whatever a host is still doing for another head of this pull request is stale: stop it now.
                let cancel = Cancel { repository: rev.repository.clone(), pr: rev.pr, head: rev.head.clone() };
                if let Err(e) = handle.block_on(t.cancel(&cancel)) {
                    tracing::warn!(pr = rev.pr, error = %e, "could not send the cancel of older work; it is dropped when it ends");
                }
                Ok::<(), String>(())
            })
        })
        .await
        .unwrap_or_else(|e| Err(PollError::Emit(format!("poll task failed: {e}"))));
        match result {
            Ok(emitted) if !emitted.is_empty() => tracing::info!(count = emitted.len(), "revisions emitted"),
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
            _ = shutdown.changed() => return Ok(()),
        }
    }
}

/// The `[git]` transport for this process's listings.
fn git_transport(settings: &Settings) {
    let g = &settings.git;
    let files = (g.ssh_key_file.clone(), g.ssh_known_hosts_file.clone(), g.ca_file.clone(), g.https_token_file.clone());
    let t = trees::transport::Transport::new(files.0, files.1, files.2, files.3, g.connect_timeout_secs, g.low_speed_timeout_secs);
    trees::transport::configure(&t);
}
