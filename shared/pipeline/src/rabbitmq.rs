//! The RabbitMQ transport, the only module that knows lapin: topology (quorum queues, a dead-letter exchange and queue per work queue), publishing with confirms, and the one consume loop every stage runs in.
//!
//! The loop: one message taken at a time (`basic.get`, the priority twin first); each is handled by `stage::handle_one` off the async
//! threads; its outputs are published and confirmed **before** the input is acknowledged; a dead-lettered
//! input is rejected without requeue (the queue's dead-letter exchange routes it to `<queue>.dead`). A lost
//! connection is re-established with backoff. On shutdown the consumer is cancelled, the message in hand
//! is finished and acknowledged, then the loop returns. Quorum queues also count redeliveries: a message
//! that kills its consumer again and again would be dead-lettered by the broker after `delivery_limit`, silently; so the
//! loop dead-letters it itself on the last delivery the broker permits (`is_last_delivery`), through the same path as a
//! stage's dead letter: the notification hook, the `error` verdict, a reject without requeue.
//!
//! Dead letters can be looked at in place (`peek_dead_letters`) and moved back to their work queue
//! (`replay_dead_letters`), for `prci dead-letters`.
//!
//! Priorities: quorum queues (RabbitMQ 3.10, Debian bookworm's) ignore message priorities, so each work queue has a
//! priority twin, `<queue>.priority`, with the same dead-letter exchange. A message with a priority goes there; every
//! consumer takes from it first. A `priority-ci` pull request thus waits only for the messages consumers are working
//! on, and a busy consumer holds no message but the one it works on.

use crate::messages::Queue;
use crate::stage::{handle_one, Disposition, Outgoing, RetryPolicy, Stage};
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions, BasicRejectOptions, ConfirmSelectOptions,
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
    #[error("the broker has no queue {0} (is broker.prefix right?)")]
    NoQueue(String),
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

/// The header quorum queues put on every delivery: how many times the message was delivered and returned before.
const DELIVERY_COUNT: &str = "x-delivery-count";

/// A delivery's `x-delivery-count` (RabbitMQ 3.10's quorum queues set it on every delivery: 0 on the first, the broker
/// overwrites any value a client set).
fn delivery_count(properties: &BasicProperties) -> Option<u64> {
    match properties.headers().as_ref()?.inner().get(DELIVERY_COUNT)? {
        AMQPValue::LongLongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongUInt(n) => Some(u64::from(*n)),
        AMQPValue::ShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::ShortUInt(n) => Some(u64::from(*n)),
        _ => None,
    }
}

/// Whether a delivery with `x-delivery-count` = `count` is the last one a queue with `x-delivery-limit` = `limit` gives:
/// RabbitMQ 3.10 dead-letters a returned message once its count *exceeds* the limit, so with limit 5 the deliveries carry
/// 0, 1, …, 5 and the one carrying 5 is the last (`dead_letters.rs` in prci-tests measures it on the real broker).
pub fn is_last_delivery(count: u64, limit: u32) -> bool {
    count >= u64::from(limit)
}

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
        self.publish_to(&name, &out.body, out.priority).await
    }

    /// Publish `body` to the queue called `name` (fresh headers), confirmed as `publish` does.
    async fn publish_to(&self, name: &str, body: &[u8], priority: u8) -> Result<(), BrokerError> {
        let name = name.to_owned();
        let mut headers = FieldTable::default();
        headers.insert(SENT_AT.into(), AMQPValue::Double(crate::events::now()));
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_priority(priority)
            .with_content_type("application/json".into())
            .with_headers(headers);
        let confirm = self
            .channel
            .basic_publish("".into(), name.as_str().into(), BasicPublishOptions { mandatory: true, ..Default::default() }, body, props)
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
    let result = take_messages(stage, policy, cfg.delivery_limit, shutdown, &channel, &publisher).await;
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
    delivery_limit: u32,
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
        if let Some(count) = delivery_count(&delivery.properties).filter(|c| is_last_delivery(*c, delivery_limit)) {
            // The broker would dead-letter it after this delivery, telling nobody: a consumer died on it each time, so
            // the stage does not run on it again, and it is given up on loudly.
            let reason = format!("redelivered {count} times (a consumer died on it each time)");
            count_broker_dead_letter(stage.name(), &delivery.data);
            give_up(stage.as_ref(), &delivery, &reason, publisher).await?;
            continue;
        }
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
            Disposition::DeadLetter(reason) => give_up(stage.as_ref(), &delivery, &reason, publisher).await?,
        }
    }
}

/// Dead-letter `delivery`: announced (the notification hook), an `error` verdict for its pull request when it names
/// one, then rejected without requeue (the queue's dead-letter exchange routes it to `<queue>.dead`).
async fn give_up(stage: &dyn Stage, delivery: &lapin::message::Delivery, reason: &str, publisher: &Publisher) -> Result<(), BrokerError> {
    tracing::error!(stage = stage.name(), %reason, "dead-lettered");
    crate::notify::dead_letter(stage.name(), stage.input(), &delivery.data, reason);
    if let Some(out) = crate::stage::failure_verdict(stage.name(), stage.input(), &delivery.data, reason) {
        // Before the reject: a failure to publish leaves the input to be redelivered, not lost.
        publisher.publish(&out).await?;
    }
    delivery.reject(BasicRejectOptions { requeue: false }).await?;
    Ok(())
}

/// The metrics and events `stage::handle_one` records for a message it handles, for one the loop dead-letters
/// without handling it (its last permitted delivery): received, completed as `dead_lettered`, finished.
fn count_broker_dead_letter(stage: &str, body: &[u8]) {
    use crate::metrics::Outcome;
    let m = crate::metrics::get();
    m.received.with_label_values(&[stage]).inc();
    m.complete(stage, Outcome::DeadLettered);
    if let Some(r) = crate::stage::revision_of(body) {
        let mut event = crate::events::Event::about(crate::events::Kind::Finished, stage, &r);
        event.outcome = Some(Outcome::DeadLettered.as_str().to_string());
        crate::events::emit(event);
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

/// How many messages wait (ready, not in anyone's hands) in queue `name`; `BrokerError::NoQueue` when it does not exist.
pub async fn message_count(cfg: &BrokerConfig, name: &str) -> Result<u32, BrokerError> {
    let connection = connect(cfg).await?;
    let channel = connection.create_channel().await?;
    let passive = QueueDeclareOptions { passive: true, ..Default::default() };
    let count = match channel.queue_declare(name.into(), passive, FieldTable::default()).await {
        Ok(q) => q.message_count(),
        Err(_) => return Err(BrokerError::NoQueue(name.to_owned())),
    };
    let _ = connection.close(200, "done".into()).await;
    Ok(count)
}

/// A message in a dead-letter queue, as the broker's headers describe it.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The work queue it belongs to.
    pub queue: Queue,
    pub body: Vec<u8>,
    /// `x-first-death-reason`: `rejected` (prci gave up on it: the reason went to the notification hook, the log and
    /// the error verdict; a reject carries no text) or `delivery_limit` (the broker gave up on it), `expired`, …
    pub reason: Option<String>,
    /// `x-first-death-queue`: the queue it was dead-lettered from (the work queue or its priority twin).
    pub from: Option<String>,
    /// When it was last dead-lettered (Unix seconds, the newest `x-death` entry's `time`).
    pub died_at: Option<u64>,
    /// When prci published it (Unix seconds, `x-prci-sent-at`).
    pub sent_at: Option<f64>,
    /// How many times it has been dead-lettered (the sum of the `x-death` counts).
    pub deaths: u64,
    /// The message's priority (a `priority-ci` revision's messages have one).
    pub priority: u8,
}

fn text(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

fn number(value: &AMQPValue) -> Option<u64> {
    match value {
        AMQPValue::LongLongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongUInt(n) => Some(u64::from(*n)),
        AMQPValue::Timestamp(t) => Some(*t),
        _ => None,
    }
}

impl DeadLetter {
    fn of(queue: Queue, delivery: &lapin::message::Delivery) -> DeadLetter {
        let headers = delivery.properties.headers().as_ref().map(|h| h.inner().clone()).unwrap_or_default();
        let deaths: Vec<&FieldTable> = match headers.get("x-death") {
            Some(AMQPValue::FieldArray(entries)) => {
                entries.as_slice().iter().filter_map(|e| if let AMQPValue::FieldTable(t) = e { Some(t) } else { None }).collect()
            }
            _ => vec![],
        };
        let died_at = deaths.iter().filter_map(|t| t.inner().get("time").and_then(number)).max();
        DeadLetter {
            queue,
            body: delivery.data.clone(),
            reason: headers.get("x-first-death-reason").and_then(text),
            from: headers.get("x-first-death-queue").and_then(text),
            died_at,
            sent_at: sent_at(&delivery.properties),
            deaths: deaths.iter().filter_map(|t| t.inner().get("count").and_then(number)).sum(),
            priority: delivery.properties.priority().unwrap_or(0),
        }
    }
}

/// A channel on a dead-letter queue that exists (a mistyped prefix is an error, not an empty list nor a new queue).
async fn dead_letter_channel(connection: &Connection, cfg: &BrokerConfig, queue: Queue) -> Result<Channel, BrokerError> {
    let name = queue.dead_letter_name(&cfg.prefix);
    let channel = connection.create_channel().await?;
    let passive = QueueDeclareOptions { passive: true, ..Default::default() };
    if channel.queue_declare(name.as_str().into(), passive, FieldTable::default()).await.is_err() {
        return Err(BrokerError::NoQueue(name));
    }
    Ok(channel)
}

/// Every message now in `queue`'s dead-letter queue, left in place: all are taken unacknowledged on one channel (so
/// none is read twice), then handed back with a requeue.
pub async fn peek_dead_letters(cfg: &BrokerConfig, queue: Queue) -> Result<Vec<DeadLetter>, BrokerError> {
    let connection = connect(cfg).await?;
    let channel = dead_letter_channel(&connection, cfg, queue).await?;
    let name = queue.dead_letter_name(&cfg.prefix);
    let mut held = Vec::new();
    while let Some(message) = channel.basic_get(name.as_str().into(), BasicGetOptions::default()).await? {
        held.push(message.delivery);
    }
    let letters = held.iter().map(|d| DeadLetter::of(queue, d)).collect();
    for delivery in &held {
        delivery.nack(BasicNackOptions { requeue: true, ..Default::default() }).await?;
    }
    // Closing waits for the broker's answer, so every requeue above is done when this returns.
    let _ = connection.close(200, "done".into()).await;
    Ok(letters)
}

/// What `replay_dead_letters` did.
#[derive(Debug, Default)]
pub struct Replayed {
    /// Moved back, each with the queue it went to.
    pub moved: Vec<(DeadLetter, String)>,
    /// Left in the dead-letter queue, each with why.
    pub kept: Vec<(DeadLetter, String)>,
}

/// Move up to `max` (all without it) of `queue`'s dead letters back to the queue they died in (the work queue, or its
/// priority twin), each one the `accept` check lets through: published with a confirm, *then* acknowledged, so none is
/// lost (a failure in between can only leave a copy in both). The others are left in place, each read once.
pub async fn replay_dead_letters(
    cfg: &BrokerConfig,
    queue: Queue,
    max: Option<usize>,
    accept: impl Fn(&DeadLetter) -> Result<(), String>,
) -> Result<Replayed, BrokerError> {
    let connection = connect(cfg).await?;
    let channel = dead_letter_channel(&connection, cfg, queue).await?;
    let publisher = Publisher::new(&connection, &cfg.prefix).await?;
    let name = queue.dead_letter_name(&cfg.prefix);
    let (work, priority) = (queue.name(&cfg.prefix), queue.priority_name(&cfg.prefix));
    let mut out = Replayed::default();
    let mut refused = Vec::new();
    while Some(out.moved.len()) != max {
        let Some(message) = channel.basic_get(name.as_str().into(), BasicGetOptions::default()).await? else { break };
        let letter = DeadLetter::of(queue, &message.delivery);
        if let Err(why) = accept(&letter) {
            out.kept.push((letter, why));
            refused.push(message.delivery);
            continue;
        }
        let target = if letter.from.as_deref() == Some(priority.as_str()) { priority.clone() } else { work.clone() };
        publisher.publish_to(&target, &letter.body, letter.priority).await?;
        message.delivery.ack(BasicAckOptions::default()).await?;
        out.moved.push((letter, target));
    }
    for delivery in &refused {
        delivery.nack(BasicNackOptions { requeue: true, ..Default::default() }).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delivery_carrying_the_limit_is_the_last_one() {
        let with = |v: AMQPValue| {
            let mut h = FieldTable::default();
            h.insert(DELIVERY_COUNT.into(), v);
            BasicProperties::default().with_headers(h)
        };
        assert_eq!(delivery_count(&with(AMQPValue::LongLongInt(5))), Some(5));
        assert_eq!(delivery_count(&with(AMQPValue::LongInt(-1))), None);
        assert_eq!(delivery_count(&BasicProperties::default()), None);
        // Limit 5: deliveries carry 0..=5; the one carrying 5 is the last before the broker dead-letters it.
        assert!((0..5).all(|c| !is_last_delivery(c, 5)));
        assert!(is_last_delivery(5, 5) && is_last_delivery(6, 5));
    }
}
