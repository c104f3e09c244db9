//! What happens to each revision, told to whoever watches: the poller emitted it, a stage on some host started or
//! finished it. Events are best effort (a fanout exchange `<prefix>.events` on RabbitMQ, a broadcast channel in one
//! process): they feed the status page and the age of the oldest revision not yet published, never a decision. A
//! watcher that was down misses what happened meanwhile and catches up as revisions finish.

use crate::messages::Revision;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The poller published the revision.
    Emitted,
    /// A stage took it.
    Started,
    /// A stage is done with it (`outcome`: ok, dropped_stale, dead_lettered; the publisher's `verdict`).
    Finished,
}

/// One event about one revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub kind: Kind,
    /// `poller` or the stage's name.
    pub stage: String,
    /// The host name of the process.
    pub host: String,
    pub repository: String,
    pub pr: u64,
    pub head: String,
    pub priority: bool,
    /// When the poller emitted the revision (Unix seconds).
    pub emitted_at: f64,
    /// When this happened (Unix seconds).
    pub at: f64,
    #[serde(default)]
    pub outcome: Option<String>,
    #[serde(default)]
    pub verdict: Option<String>,
}

/// Unix seconds now.
pub fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// This host's name (`/etc/hostname`, then `$HOSTNAME`), for "running on".
pub fn host() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "unknown".into())
    })
}

impl Event {
    /// An event about `revision` now.
    pub fn about(kind: Kind, stage: &str, revision: &Revision) -> Event {
        Event {
            kind,
            stage: stage.to_string(),
            host: host().to_string(),
            repository: revision.repository.clone(),
            pr: revision.pr,
            head: revision.head.clone(),
            priority: revision.priority,
            emitted_at: revision.emitted_at,
            at: now(),
            outcome: None,
            verdict: None,
        }
    }
}

/// Where this process's events go.
enum Sink {
    Memory(broadcast::Sender<Event>),
    Rabbit(mpsc::Sender<Event>),
}

static SINK: OnceLock<Sink> = OnceLock::new();

fn memory_channel() -> &'static broadcast::Sender<Event> {
    static CHANNEL: OnceLock<broadcast::Sender<Event>> = OnceLock::new();
    CHANNEL.get_or_init(|| broadcast::channel(4096).0)
}

/// Send this process's events over `transport` (the first call wins; call it inside the runtime).
pub fn configure(transport: &crate::runtime::Transport) {
    SINK.get_or_init(|| match transport {
        crate::runtime::Transport::Memory(_) => Sink::Memory(memory_channel().clone()),
        crate::runtime::Transport::Rabbit(cfg) => {
            let (tx, rx) = mpsc::channel(4096);
            tokio::spawn(crate::rabbitmq::run_event_publisher(cfg.clone(), rx));
            Sink::Rabbit(tx)
        }
    });
}

/// Tell the watchers; never blocks, never fails (an event that cannot be sent now is dropped).
pub fn emit(event: Event) {
    match SINK.get() {
        Some(Sink::Memory(tx)) => {
            let _ = tx.send(event);
        }
        Some(Sink::Rabbit(tx)) => {
            let _ = tx.try_send(event);
        }
        None => {}
    }
}

/// Hand every event to `on_event` until `shutdown` (events of every host on RabbitMQ, of this process otherwise).
pub async fn watch(transport: crate::runtime::Transport, shutdown: watch::Receiver<bool>, on_event: impl FnMut(Event) + Send + 'static) {
    match transport {
        crate::runtime::Transport::Memory(_) => watch_memory(shutdown, on_event).await,
        crate::runtime::Transport::Rabbit(cfg) => crate::rabbitmq::run_event_listener(cfg, shutdown, on_event).await,
    }
}

async fn watch_memory(mut shutdown: watch::Receiver<bool>, mut on_event: impl FnMut(Event)) {
    let mut rx = memory_channel().subscribe();
    loop {
        tokio::select! {
            e = rx.recv() => match e {
                Ok(event) => on_event(event),
                Err(broadcast::error::RecvError::Lagged(n)) => tracing::warn!(missed = n, "status watcher fell behind"),
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = shutdown.changed() => return,
        }
    }
}

/// Pause between reconnections of the event publisher and listener.
pub(crate) const RECONNECT: Duration = Duration::from_secs(2);
