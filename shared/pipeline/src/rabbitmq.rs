//! The RabbitMQ transport, the only module that knows lapin: topology (quorum queues, a dead-letter exchange and queue per work queue), publishing with confirms, and the one consume loop every stage runs in.
//!
//! The loop: one message taken at a time (`basic.get`, the priority twin first); each is handled by `stage::handle_one` off the async
//! threads; its outputs are published and confirmed **before** the input is acknowledged; a dead-lettered
//! input is rejected without requeue (the queue's dead-letter exchange routes it to `<queue>.dead`). A lost
//! connection is re-established with backoff. On shutdown the consumer is cancelled, the message in hand
//! is finished and acknowledged, then the loop returns. Quorum queues also count redeliveries: a message
//! that kills its consumer again and again is dead-lettered by the broker after `delivery_limit`.
//!
//! Priorities: quorum queues (RabbitMQ 3.10, Debian bookworm's) ignore message priorities, so each work queue has a
//! priority twin, `<queue>.priority`, with the same dead-letter exchange. A message with a priority goes there; every
//! consumer takes from it first. A `priority-ci` pull request thus waits only for the messages consumers are working
//! on, and a busy consumer holds no message but the one it works on.

use crate::messages::Queue;
use crate::stage::{handle_one, Disposition, Outgoing, RetryPolicy, Stage};
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, BasicRejectOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::Confirmation;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Broker failures (all transient from the loop's point of view: reconnect and carry on).
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("amqp: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("the broker refused a message for {0}")]
    Nacked(String),
    #[error("no queue to route a message for {0} to")]
    Unroutable(String),
}

/// What the loop needs to know about the broker.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub url: String,
    /// `broker.prefix`.
    pub prefix: String,
    /// Redeliveries after which the broker dead-letters a message (quorum queues).
    pub delivery_limit: u32,
}

impl BrokerConfig {
    pub fn new(url: &str, prefix: &str) -> BrokerConfig {
        BrokerConfig { url: url.to_owned(), prefix: prefix.to_owned(), delivery_limit: 5 }
    }
}

/// Connect once.
pub async fn connect(cfg: &BrokerConfig) -> Result<Connection, BrokerError> {
    Ok(Connection::connect(&cfg.url, ConnectionProperties::default()).await?)
}

/// Declare every exchange and queue (idempotent): for each work queue a fanout dead-letter exchange,
/// its durable quorum dead-letter queue, and the durable quorum work queue pointing at the exchange.
pub async fn declare_topology(channel: &Channel, cfg: &BrokerConfig) -> Result<(), BrokerError> {
    for queue in Queue::ALL {
        let dlx = queue.dead_letter_exchange(&cfg.prefix);
        let dlq = queue.dead_letter_name(&cfg.prefix);
        channel
            .exchange_declare(
                dlx.as_str().into(),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions { durable: true, ..Default::default() },
                FieldTable::default(),
            )
            .await?;
        let mut quorum = FieldTable::default();
        quorum.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
        channel.queue_declare(dlq.as_str().into(), QueueDeclareOptions { durable: true, ..Default::default() }, quorum.clone()).await?;
        channel.queue_bind(dlq.as_str().into(), dlx.as_str().into(), "".into(), QueueBindOptions::default(), FieldTable::default()).await?;
        let mut args = quorum;
        args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(dlx.as_str().into()));
        args.insert("x-delivery-limit".into(), AMQPValue::LongInt(cfg.delivery_limit as i32));
        for name in [queue.name(&cfg.prefix), queue.priority_name(&cfg.prefix)] {
            channel.queue_declare(name.as_str().into(), QueueDeclareOptions { durable: true, ..Default::default() }, args.clone()).await?;
        }
    }
    Ok(())
}

/// The header holding when a message was published (Unix seconds), for the time it waited in its queue.
const SENT_AT: &str = "x-prci-sent-at";

/// When a delivery was published, from its header.
fn sent_at(properties: &BasicProperties) -> Option<f64> {
    match properties.headers().as_ref()?.inner().get(SENT_AT)? {
        AMQPValue::Double(t) => Some(*t),
        _ => None,
    }
}

/// Every 10 s, the depth of `queue`'s work, priority and dead-letter queues into `prci_queue_depth`, until aborted. A
/// queue that cannot be looked at (deleted by hand: the broker closes the channel) leaves the gauges without a value, not
/// a stale one, until the consumer's next session.
async fn sample_depths(connection: &Connection, cfg: &BrokerConfig, queue: Queue) -> Result<tokio::task::JoinHandle<()>, BrokerError> {
    let channel = connection.create_channel().await?;
    let names =
        [(queue.name(&cfg.prefix), "work"), (queue.priority_name(&cfg.prefix), "priority"), (queue.dead_letter_name(&cfg.prefix), "dead")];
    Ok(tokio::spawn(async move {
        let gauge = &crate::metrics::get().queue_depth;
        loop {
            for (name, kind) in &names {
                let passive = QueueDeclareOptions { passive: true, ..Default::default() };
                match channel.queue_declare(name.as_str().into(), passive, FieldTable::default()).await {
                    Ok(q) => gauge.with_label_values(&[queue.short(), kind]).set(i64::from(q.message_count())),
                    Err(_) => {
                        // The broker closed the channel: no value rather than a stale one, until the next session.
                        for (_, kind) in &names {
                            let _ = gauge.remove_label_values(&[queue.short(), kind]);
                        }
                        return;
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
    }))
}

/// A confirm-mode channel for publishing.
#[derive(Clone)]
pub struct Publisher {
    channel: Channel,
    prefix: String,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl Publisher {
    pub async fn new(connection: &Connection, prefix: &str) -> Result<Publisher, BrokerError> {
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        Ok(Publisher { channel, prefix: prefix.to_owned() })
    }

    /// Publish persistently and wait for the broker's confirm; an unroutable or refused message is an error.
    pub async fn publish(&self, out: &Outgoing) -> Result<(), BrokerError> {
        let name = if out.priority > 0 { out.queue.priority_name(&self.prefix) } else { out.queue.name(&self.prefix) };
        let mut headers = FieldTable::default();
        headers.insert(SENT_AT.into(), AMQPValue::Double(crate::events::now()));
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_priority(out.priority)
            .with_content_type("application/json".into())
            .with_headers(headers);
        let confirm = self
            .channel
            .basic_publish("".into(), name.as_str().into(), BasicPublishOptions { mandatory: true, ..Default::default() }, &out.body, props)
            .await?
            .await?;
        match confirm {
            Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
            Confirmation::Ack(Some(_)) => Err(BrokerError::Unroutable(name)),
            Confirmation::Nack(_) => Err(BrokerError::Nacked(name)),
        }
    }
}

/// Consume the stage's input until `shutdown` turns true, reconnecting as needed.
pub async fn run_consumer(cfg: BrokerConfig, stage: Arc<dyn Stage>, policy: RetryPolicy, mut shutdown: watch::Receiver<bool>) {
    let mut backoff = Duration::from_millis(500);
    loop {
        if *shutdown.borrow() {
            return;
        }
        match consume_session(&cfg, stage.clone(), policy, &mut shutdown).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(stage = stage.name(), error = %e, retry_in_secs = backoff.as_secs_f64(), "broker session ended; reconnecting");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// One connection's worth of consuming. Returns Ok on shutdown, Err when the connection broke.
async fn consume_session(
    cfg: &BrokerConfig,
    stage: Arc<dyn Stage>,
    policy: RetryPolicy,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), BrokerError> {
    let connection = connect(cfg).await?;
    let channel = connection.create_channel().await?;
    declare_topology(&channel, cfg).await?;
    let publisher = Publisher::new(&connection, &cfg.prefix).await?;
    tracing::info!(stage = stage.name(), queue = %stage.input().name(&cfg.prefix), "consuming");
    let _up = crate::metrics::ConsumerUp::new(stage.name());
    let depths = sample_depths(&connection, cfg, stage.input()).await?;
    let result = take_messages(stage, policy, shutdown, &channel, &publisher).await;
    depths.abort();
    if result.is_ok() {
        let _ = connection.close(200, "shutdown".into()).await;
    }
    result
}

/// Pause between two looks at empty queues, doubling while they stay empty (each look is a command of the quorum
/// queue's Raft log), from the first to the last.
const IDLE_POLL: (Duration, Duration) = (Duration::from_millis(100), Duration::from_millis(500));

/// The take loop of one session: one message at a time, the priority queue's first, each handled, its outputs
/// confirmed, then acknowledged. Messages are taken (`basic.get`) rather than pushed: a consumer holds only the message
/// it works on, so nothing waits behind a long scan while another host is idle, priority work included.
async fn take_messages(
    stage: Arc<dyn Stage>,
    policy: RetryPolicy,
    shutdown: &mut watch::Receiver<bool>,
    channel: &Channel,
    publisher: &Publisher,
) -> Result<(), BrokerError> {
    let queues = [stage.input().priority_name(&publisher.prefix), stage.input().name(&publisher.prefix)];
    let mut idle = IDLE_POLL.0;
    loop {
        if *shutdown.borrow() {
            tracing::info!(stage = stage.name(), "shutting down: no more work taken");
            return Ok(());
        }
        let mut taken = None;
        for queue in &queues {
            if let Some(message) = channel.basic_get(queue.as_str().into(), BasicGetOptions::default()).await? {
                taken = Some(message.delivery);
                break;
            }
        }
        let Some(delivery) = taken else {
            tokio::select! {
                _ = tokio::time::sleep(idle) => {}
                _ = shutdown.changed() => {}
            }
            idle = (idle * 2).min(IDLE_POLL.1);
            continue;
        };
        idle = IDLE_POLL.0;
        let st = stage.clone();
        let body = delivery.data.clone();
        // A redelivered message waited while a consumer worked on it: not queue time.
        let sent = if delivery.redelivered { None } else { sent_at(&delivery.properties) };
        // The message in hand is finished even when shutdown arrives meanwhile.
        let disposition = tokio::task::spawn_blocking(move || handle_one(st.as_ref(), &body, &policy, sent, std::thread::sleep))
            .await
            .unwrap_or_else(|_| Disposition::DeadLetter("the handler task failed".into()));
        match disposition {
            Disposition::Ack(outs) => {
                for out in &outs {
                    // A failed publish leaves the input unacknowledged: the broker redelivers it.
                    publisher.publish(out).await?;
                }
                delivery.ack(BasicAckOptions::default()).await?;
            }
            Disposition::Dropped => {
                delivery.ack(BasicAckOptions::default()).await?;
            }
            Disposition::DeadLetter(reason) => {
                tracing::error!(stage = stage.name(), %reason, "dead-lettered");
                crate::notify::dead_letter(stage.name(), stage.input(), &delivery.data, &reason);
                if let Some(out) = crate::stage::failure_verdict(stage.name(), stage.input(), &delivery.data, &reason) {
                    // Before the reject: a failure to publish leaves the input to be redelivered, not lost.
                    publisher.publish(&out).await?;
                }
                delivery.reject(BasicRejectOptions { requeue: false }).await?;
            }
        }
    }
}

/// Publish one message on a fresh connection (the poller's and tests' helper).
pub async fn publish_once(cfg: &BrokerConfig, out: &Outgoing) -> Result<(), BrokerError> {
    let connection = connect(cfg).await?;
    let channel = connection.create_channel().await?;
    declare_topology(&channel, cfg).await?;
    let publisher = Publisher::new(&connection, &cfg.prefix).await?;
    let result = publisher.publish(out).await;
    let _ = connection.close(200, "done".into()).await;
    result
}

/// The fanout exchange cancels travel on: every process running regen or checker binds a queue of its own to it.
pub fn cancel_exchange(prefix: &str) -> String {
    format!("{prefix}.cancel")
}

async fn declare_cancel_exchange(channel: &Channel, cfg: &BrokerConfig) -> Result<(), BrokerError> {
    let exchange = cancel_exchange(&cfg.prefix);
    let options = ExchangeDeclareOptions { durable: true, ..Default::default() };
    channel.exchange_declare(exchange.as_str().into(), ExchangeKind::Fanout, options, FieldTable::default()).await?;
    Ok(())
}

/// Tell every host that pull request `cancel.pr` is now at `cancel.head` (confirmed by the broker; a cancel nobody
/// listens to is not an error: no host is working on that pull request).
pub async fn publish_cancel(cfg: &BrokerConfig, cancel: &crate::cancel::Cancel) -> Result<(), BrokerError> {
    let connection = connect(cfg).await?;
    let channel = connection.create_channel().await?;
    declare_cancel_exchange(&channel, cfg).await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    let body = serde_json::to_vec(cancel).unwrap_or_default();
    let exchange = cancel_exchange(&cfg.prefix);
    let props = BasicProperties::default().with_content_type("application/json".into());
    let confirm = channel.basic_publish(exchange.as_str().into(), "".into(), BasicPublishOptions::default(), &body, props).await?.await?;
    let _ = connection.close(200, "done".into()).await;
    match confirm {
        Confirmation::Nack(_) => Err(BrokerError::Nacked(exchange)),
        _ => Ok(()),
    }
}

/// Listen for cancels until `shutdown`, raising the flags of this process's stale jobs (`cancel::apply`); a queue of
/// its own (exclusive, gone with the connection) bound to the cancel exchange. Reconnects as the consumers do.
pub async fn run_cancel_listener(cfg: BrokerConfig, mut shutdown: watch::Receiver<bool>) {
    let mut backoff = Duration::from_millis(500);
    loop {
        if *shutdown.borrow() {
            return;
        }
        match listen_for_cancels(&cfg, &mut shutdown).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, retry_in_secs = backoff.as_secs_f64(), "cancel listener lost the broker; reconnecting");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

async fn listen_for_cancels(cfg: &BrokerConfig, shutdown: &mut watch::Receiver<bool>) -> Result<(), BrokerError> {
    let connection = connect(cfg).await?;
    let channel = connection.create_channel().await?;
    declare_cancel_exchange(&channel, cfg).await?;
    let options = QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() };
    let queue = channel.queue_declare("".into(), options, FieldTable::default()).await?;
    let exchange = cancel_exchange(&cfg.prefix);
    channel
        .queue_bind(queue.name().as_str().into(), exchange.as_str().into(), "".into(), QueueBindOptions::default(), FieldTable::default())
        .await?;
    let consume = BasicConsumeOptions { no_ack: true, ..Default::default() };
    let mut consumer = channel.basic_consume(queue.name().as_str().into(), "prci-cancel".into(), consume, FieldTable::default()).await?;
    loop {
        let delivery = tokio::select! {
            d = consumer.next() => d,
            _ = shutdown.changed() => {
                let _ = connection.close(200, "shutdown".into()).await;
                return Ok(());
            }
        };
        match delivery {
            Some(Ok(d)) => match serde_json::from_slice::<crate::cancel::Cancel>(&d.data) {
                Ok(cancel) => {
                    crate::cancel::apply(&cancel);
                }
                Err(e) => tracing::warn!(error = %e, "undecodable cancel message ignored"),
            },
            Some(Err(e)) => return Err(e.into()),
            None => return Err(BrokerError::Nacked("the cancel consumer was cancelled by the broker".into())),
        }
    }
}

/// Take every message now waiting in queue `name` (acknowledging them): for operators inspecting a
/// dead-letter queue, and for tests.
pub async fn take_all(cfg: &BrokerConfig, name: &str) -> Result<Vec<Vec<u8>>, BrokerError> {
    let connection = connect(cfg).await?;
    let channel = connection.create_channel().await?;
    let mut out = Vec::new();
    while let Some(msg) = channel.basic_get(name.into(), lapin::options::BasicGetOptions::default()).await? {
        out.push(msg.delivery.data.clone());
        msg.delivery.ack(BasicAckOptions::default()).await?;
    }
    let _ = connection.close(200, "done".into()).await;
    Ok(out)
}

/// The fanout exchange events travel on (`crate::events`).
pub fn events_exchange(prefix: &str) -> String {
    format!("{prefix}.events")
}

async fn declare_events_exchange(channel: &Channel, cfg: &BrokerConfig) -> Result<(), BrokerError> {
    let exchange = events_exchange(&cfg.prefix);
    let options = ExchangeDeclareOptions { durable: true, ..Default::default() };
    channel.exchange_declare(exchange.as_str().into(), ExchangeKind::Fanout, options, FieldTable::default()).await?;
    Ok(())
}

/// Publish this process's events (best effort: no confirms; while the broker is away they are dropped).
pub(crate) async fn run_event_publisher(cfg: BrokerConfig, mut events: tokio::sync::mpsc::Receiver<crate::events::Event>) {
    loop {
        let session = async {
            let connection = connect(&cfg).await?;
            let channel = connection.create_channel().await?;
            declare_events_exchange(&channel, &cfg).await?;
            let exchange = events_exchange(&cfg.prefix);
            while let Some(event) = events.recv().await {
                let body = serde_json::to_vec(&event).unwrap_or_default();
                let props = BasicProperties::default().with_content_type("application/json".into());
                channel.basic_publish(exchange.as_str().into(), "".into(), BasicPublishOptions::default(), &body, props).await?;
            }
            Ok::<(), BrokerError>(())
        };
        match session.await {
            Ok(()) => return,
            Err(e) => {
                tracing::debug!(error = %e, "event publisher lost the broker; reconnecting");
                tokio::time::sleep(crate::events::RECONNECT).await;
                while events.try_recv().is_ok() {}
            }
        }
    }
}

/// Hand every event of every host to `on_event` until shutdown (an exclusive queue bound to the events exchange).
pub(crate) async fn run_event_listener(
    cfg: BrokerConfig,
    mut shutdown: watch::Receiver<bool>,
    mut on_event: impl FnMut(crate::events::Event) + Send + 'static,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        let session = async {
            let connection = connect(&cfg).await?;
            let channel = connection.create_channel().await?;
            declare_events_exchange(&channel, &cfg).await?;
            let options = QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() };
            let queue = channel.queue_declare("".into(), options, FieldTable::default()).await?;
            let exchange = events_exchange(&cfg.prefix);
            let bind = QueueBindOptions::default();
            channel.queue_bind(queue.name().as_str().into(), exchange.as_str().into(), "".into(), bind, FieldTable::default()).await?;
            let consume = BasicConsumeOptions { no_ack: true, ..Default::default() };
            let mut consumer =
                channel.basic_consume(queue.name().as_str().into(), "prci-events".into(), consume, FieldTable::default()).await?;
            loop {
                tokio::select! {
                    d = consumer.next() => match d {
                        Some(Ok(d)) => match serde_json::from_slice(&d.data) {
                            Ok(event) => on_event(event),
                            Err(e) => tracing::debug!(error = %e, "undecodable event ignored"),
                        },
                        Some(Err(e)) => return Err(e.into()),
                        None => return Err(BrokerError::Nacked("the events consumer was cancelled".into())),
                    },
                    _ = shutdown.changed() => {
                        let _ = connection.close(200, "shutdown".into()).await;
                        return Ok(());
                    }
                }
            }
        };
        match session.await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "event listener lost the broker; reconnecting");
                tokio::select! {
                    _ = tokio::time::sleep(crate::events::RECONNECT) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }
}
