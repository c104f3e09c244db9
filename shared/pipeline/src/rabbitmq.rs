//! The RabbitMQ transport, the only module that knows lapin: topology (quorum queues, a dead-letter exchange and queue per work queue), publishing with confirms, and the one consume loop every stage runs in.
//!
//! The loop: prefetch set before consuming; each delivery is handled by `stage::process` off the async
//! threads; its outputs are published and confirmed **before** the input is acknowledged; a dead-lettered
//! input is rejected without requeue (the queue's dead-letter exchange routes it to `<queue>.dead`). A lost
//! connection is re-established with backoff. On shutdown the consumer is cancelled, the message in hand
//! is finished and acknowledged, then the loop returns. Quorum queues also count redeliveries: a message
//! that kills its consumer again and again is dead-lettered by the broker after `delivery_limit`.
//!
//! Priorities: quorum queues (RabbitMQ 3.10, Debian bookworm's) ignore message priorities, so each work queue has a
//! priority twin, `<queue>.priority`, with the same dead-letter exchange. A message with a priority goes there; every
//! consumer consumes both queues and, whenever both have a message for it, takes the priority one first. A `priority-ci`
//! pull request thus waits at most for the message each consumer already holds, not for the whole queue.

use crate::messages::Queue;
use crate::stage::{process, Disposition, Outgoing, RetryPolicy, Stage};
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, BasicRejectOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
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
    /// Unacknowledged messages one consumer holds at a time.
    pub prefetch: u16,
    /// Redeliveries after which the broker dead-letters a message (quorum queues).
    pub delivery_limit: u32,
}

impl BrokerConfig {
    pub fn new(url: &str, prefix: &str) -> BrokerConfig {
        BrokerConfig { url: url.to_owned(), prefix: prefix.to_owned(), prefetch: 1, delivery_limit: 5 }
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
        let props =
            BasicProperties::default().with_delivery_mode(2).with_priority(out.priority).with_content_type("application/json".into());
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
    channel.basic_qos(cfg.prefetch, BasicQosOptions::default()).await?;
    let queue = stage.input().name(&cfg.prefix);
    let priority_queue = stage.input().priority_name(&cfg.prefix);
    let tag: ShortString = format!("prci-{}-{}", stage.name(), std::process::id()).into();
    let priority_tag: ShortString = format!("prci-{}-{}-priority", stage.name(), std::process::id()).into();
    let options = BasicConsumeOptions::default;
    let mut priority =
        channel.basic_consume(priority_queue.as_str().into(), priority_tag.clone(), options(), FieldTable::default()).await?;
    let mut consumer = channel.basic_consume(queue.as_str().into(), tag.clone(), options(), FieldTable::default()).await?;
    tracing::info!(stage = stage.name(), queue = %queue, "consuming");
    loop {
        let delivery = tokio::select! {
            // Priority work first whenever both queues have a message for this consumer.
            biased;
            d = priority.next() => d,
            d = consumer.next() => d,
            _ = shutdown.changed() => {
                tracing::info!(stage = stage.name(), "shutting down: no more work taken");
                let _ = channel.basic_cancel(tag.clone(), BasicCancelOptions::default()).await;
                let _ = channel.basic_cancel(priority_tag.clone(), BasicCancelOptions::default()).await;
                let _ = connection.close(200, "shutdown".into()).await;
                return Ok(());
            }
        };
        let delivery = match delivery {
            Some(Ok(d)) => d,
            Some(Err(e)) => return Err(e.into()),
            None => return Err(BrokerError::Nacked(format!("consumer of {queue} was cancelled by the broker"))),
        };
        let st = stage.clone();
        let body = delivery.data.clone();
        // The message in hand is finished even when shutdown arrives meanwhile.
        let disposition = tokio::task::spawn_blocking(move || process(st.as_ref(), &body, &policy, std::thread::sleep))
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
