//! The broker loop against the machine's real RabbitMQ: outputs confirmed before the ack, a malformed message dead-lettered while the stage keeps working, shutdown on request, `priority-ci` work overtaking a queue.

#![allow(clippy::unwrap_used)] // a test harness: a panic is the failure message

use pipeline::messages::{self, Queue, Revision};
use pipeline::rabbitmq::{self, BrokerConfig};
use pipeline::stage::{Handled, Outgoing, RetryPolicy, Stage, StageError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Decodes a revision and forwards its key to `prepared`.
struct Forward;
impl Stage for Forward {
    fn name(&self) -> &'static str {
        "forward"
    }
    fn input(&self) -> Queue {
        Queue::Revisions
    }
    fn handle(&self, body: &[u8]) -> Result<Handled, StageError> {
        let rev: Revision = messages::decode(body).map_err(|e| StageError::Permanent(e.to_string()))?;
        Ok(Handled { publish: vec![Outgoing { queue: Queue::Prepared, body: rev.key().into_bytes(), priority: 0 }], dropped_stale: false })
    }
}

/// Records the pull requests it handles, in order, taking a while over each.
struct Record(Arc<Mutex<Vec<u64>>>);
impl Stage for Record {
    fn name(&self) -> &'static str {
        "record"
    }
    fn input(&self) -> Queue {
        Queue::Revisions
    }
    fn handle(&self, body: &[u8]) -> Result<Handled, StageError> {
        let rev: Revision = messages::decode(body).map_err(|e| StageError::Permanent(e.to_string()))?;
        self.0.lock().unwrap().push(rev.pr);
        std::thread::sleep(Duration::from_millis(150));
        Ok(Handled::default())
    }
}

fn revision(pr: u64) -> Revision {
    Revision {
        repository: "test".into(),
        pr,
        head: "a".repeat(40),
        base_branch: "master".into(),
        base: "b".repeat(40),
        priority: false,
        emitted_at: 0.0,
    }
}

fn config() -> BrokerConfig {
    let prefix = format!(
        "prci-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    );
    BrokerConfig::new("amqp://guest:guest@127.0.0.1:5672/%2f", &prefix)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_message_is_dead_lettered_and_the_stage_keeps_working() {
    let cfg = config();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let consumer = tokio::spawn(rabbitmq::run_consumer(cfg.clone(), Arc::new(Forward), RetryPolicy::default(), rx));
    for body in [messages::encode(&revision(1)), b"{not json".to_vec(), messages::encode(&revision(2))] {
        rabbitmq::publish_once(&cfg, &Outgoing { queue: Queue::Revisions, body, priority: 0 }).await.expect("publish");
    }
    let mut forwarded = Vec::new();
    for _ in 0..100 {
        forwarded.extend(rabbitmq::take_all(&cfg, &Queue::Prepared.name(&cfg.prefix)).await.expect("get"));
        if forwarded.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let forwarded: Vec<String> = forwarded.into_iter().map(|b| String::from_utf8(b).unwrap()).collect();
    assert_eq!(forwarded, [revision(1).key(), revision(2).key()]);
    let dead = rabbitmq::take_all(&cfg, &Queue::Revisions.dead_letter_name(&cfg.prefix)).await.expect("get dead");
    assert_eq!(dead, [b"{not json".to_vec()]);
    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), consumer).await.expect("the consumer stops on shutdown").unwrap();
    cleanup(&cfg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_priority_message_overtakes_ten_queued_ones() {
    let cfg = config();
    let seen = Arc::new(Mutex::new(Vec::new()));
    for pr in 1..=10 {
        let out = Outgoing { queue: Queue::Revisions, body: messages::encode(&revision(pr)), priority: 0 };
        rabbitmq::publish_once(&cfg, &out).await.expect("publish");
    }
    let (tx, rx) = tokio::sync::watch::channel(false);
    let consumer = tokio::spawn(rabbitmq::run_consumer(cfg.clone(), Arc::new(Record(seen.clone())), RetryPolicy::default(), rx));
    // Once the consumer is busy with the first, ten wait behind it; then a priority-ci revision comes.
    for _ in 0..200 {
        if !seen.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(*seen.lock().unwrap(), [1], "the consumer started on the first message");
    let urgent = Revision { priority: true, ..revision(99) };
    let out = Outgoing { queue: Queue::Revisions, body: messages::encode(&urgent), priority: urgent.broker_priority() };
    rabbitmq::publish_once(&cfg, &out).await.expect("publish");
    for _ in 0..300 {
        if seen.lock().unwrap().len() == 11 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let order = seen.lock().unwrap().clone();
    assert_eq!(order.len(), 11, "every message handled: {order:?}");
    let at = order.iter().position(|pr| *pr == 99).unwrap();
    // It waits at most for the message in hand and the one the consumer already holds, never for the queue.
    assert!(at <= 2, "priority-ci went {at}th: {order:?}");
    let mut rest: Vec<u64> = order.iter().copied().filter(|pr| *pr != 99).collect();
    rest.sort_unstable();
    assert_eq!(rest, (1..=10).collect::<Vec<_>>());
    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), consumer).await.expect("the consumer stops on shutdown").unwrap();
    cleanup(&cfg).await;
}

/// Delete the test's queues and exchanges.
async fn cleanup(cfg: &BrokerConfig) {
    let conn = rabbitmq::connect(cfg).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    for q in Queue::ALL {
        let _ = ch.queue_delete(q.name(&cfg.prefix).as_str().into(), Default::default()).await;
        let _ = ch.queue_delete(q.priority_name(&cfg.prefix).as_str().into(), Default::default()).await;
        let _ = ch.queue_delete(q.dead_letter_name(&cfg.prefix).as_str().into(), Default::default()).await;
        let _ = ch.exchange_delete(q.dead_letter_exchange(&cfg.prefix).as_str().into(), Default::default()).await;
    }
}
