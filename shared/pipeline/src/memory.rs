//! The in-process transport: the broker's semantics (priority, acknowledge after publishing, retry then dead-letter) on in-memory queues, for the single-process mode and tests.

use crate::messages::Queue;
use crate::stage::{handle_one, Disposition, Outgoing, RetryPolicy, Stage};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::{watch, Notify};

/// A dead-lettered message, kept for the operator (and tests) to inspect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub queue: Queue,
    pub body: Vec<u8>,
    pub reason: String,
}

#[derive(Default)]
struct State {
    /// Per queue: (priority, body, when published).
    queues: BTreeMap<Queue, VecDeque<(u8, Vec<u8>, f64)>>,
    in_flight: usize,
    dead: Vec<DeadLetter>,
}

/// In-memory queues shared by the stages of one process.
#[derive(Default)]
pub struct MemoryBus {
    state: Mutex<State>,
    /// Woken on every publish and every finished message.
    changed: Notify,
}

impl std::fmt::Debug for MemoryBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBus").finish_non_exhaustive()
    }
}

impl MemoryBus {
    pub fn new() -> Arc<MemoryBus> {
        Arc::new(MemoryBus::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means a thread panicked while holding it; the queues are still consistent
        // (every mutation is a single push or pop).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Enqueue a message; higher priority first, first-in first-out within a priority.
    pub fn publish(&self, out: Outgoing) {
        enqueue(&mut self.lock(), out);
        self.changed.notify_waiters();
    }

    /// Messages waiting in a queue.
    pub fn depth(&self, queue: Queue) -> usize {
        self.lock().queues.get(&queue).map_or(0, VecDeque::len)
    }

    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.lock().dead.clone()
    }

    /// Whether every queue is empty and no message is being handled.
    pub fn is_idle(&self) -> bool {
        let s = self.lock();
        s.in_flight == 0 && s.queues.values().all(VecDeque::is_empty)
    }

    /// Wait until the bus is idle.
    pub async fn wait_idle(&self) {
        loop {
            // Registered before the check, so a change between the check and the wait is not missed.
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_idle() {
                return;
            }
            notified.await;
        }
    }

    fn take(&self, queue: Queue) -> Option<(Vec<u8>, f64)> {
        let mut s = self.lock();
        let (_, body, sent) = s.queues.get_mut(&queue)?.pop_front()?;
        s.in_flight += 1;
        set_depth(&s, queue);
        Some((body, sent))
    }

    fn finish(&self, queue: Queue, body: Vec<u8>, disposition: Disposition) {
        let mut s = self.lock();
        match disposition {
            Disposition::Ack(outs) => {
                for out in outs {
                    enqueue(&mut s, out);
                }
            }
            Disposition::Dropped => {}
            Disposition::DeadLetter(reason) => s.dead.push(DeadLetter { queue, body, reason }),
        }
        s.in_flight -= 1;
        drop(s);
        self.changed.notify_waiters();
    }
}

/// Insert behind every message of the same or higher priority.
fn enqueue(s: &mut State, out: Outgoing) {
    let q = s.queues.entry(out.queue).or_default();
    let pos = q.iter().position(|(p, _, _)| *p < out.priority).unwrap_or(q.len());
    q.insert(pos, (out.priority, out.body, crate::events::now()));
    set_depth(s, out.queue);
}

/// `prci_queue_depth` of an in-process queue (its priority messages are in the same queue, counted as work).
fn set_depth(s: &State, queue: Queue) {
    let depth = s.queues.get(&queue).map_or(0, VecDeque::len);
    crate::metrics::get().queue_depth.with_label_values(&[queue.short(), "work"]).set(depth as i64);
}

/// Consume `stage.input()` until `shutdown` turns true; the message in hand is finished first.
pub async fn run_consumer(bus: Arc<MemoryBus>, stage: Arc<dyn Stage>, policy: RetryPolicy, mut shutdown: watch::Receiver<bool>) {
    let queue = stage.input();
    let _up = crate::metrics::ConsumerUp::new(stage.name());
    loop {
        if *shutdown.borrow() {
            return;
        }
        let notified = bus.changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let Some((body, sent)) = bus.take(queue) else {
            tokio::select! {
                _ = notified => {}
                _ = shutdown.changed() => {}
            }
            continue;
        };
        let (st, b) = (stage.clone(), body.clone());
        let disposition = tokio::task::spawn_blocking(move || handle_one(st.as_ref(), &b, &policy, Some(sent), std::thread::sleep))
            .await
            .unwrap_or_else(|_| Disposition::DeadLetter("the handler task failed".into()));
        if let Disposition::DeadLetter(reason) = &disposition {
            tracing::error!(stage = stage.name(), %reason, "dead-lettered");
            crate::notify::dead_letter(stage.name(), queue, &body, reason);
            if let Some(out) = crate::stage::failure_verdict(stage.name(), queue, &body, reason) {
                bus.publish(out);
            }
        }
        bus.finish(queue, body, disposition);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::{Handled, StageError};
    use std::time::Duration;

    /// Forwards revisions to `prepared`, upper-casing them; "bad" is permanent.
    struct Upper;
    impl Stage for Upper {
        fn name(&self) -> &'static str {
            "upper"
        }
        fn input(&self) -> Queue {
            Queue::Revisions
        }
        fn handle(&self, body: &[u8]) -> Result<Handled, StageError> {
            if body == b"bad" {
                return Err(StageError::Permanent("bad input".into()));
            }
            Ok(Handled {
                publish: vec![Outgoing { queue: Queue::Prepared, body: body.to_ascii_uppercase(), priority: 0 }],
                dropped_stale: false,
            })
        }
    }

    #[tokio::test]
    async fn messages_flow_and_bad_ones_are_dead_lettered() {
        let bus = MemoryBus::new();
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(run_consumer(bus.clone(), Arc::new(Upper), RetryPolicy::default(), rx));
        for body in [b"one".to_vec(), b"bad".to_vec(), b"two".to_vec()] {
            bus.publish(Outgoing { queue: Queue::Revisions, body, priority: 0 });
        }
        // Nothing consumes `prepared` here, so the bus never goes idle: wait for the outputs instead.
        for _ in 0..200 {
            if bus.depth(Queue::Prepared) == 2 && bus.dead_letters().len() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(bus.depth(Queue::Prepared), 2);
        assert_eq!(bus.depth(Queue::Revisions), 0);
        let dead = bus.dead_letters();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].body, b"bad");
        tx.send(true).unwrap();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn wait_idle_returns_once_everything_is_consumed() {
        let bus = MemoryBus::new();
        bus.publish(Outgoing { queue: Queue::Prepared, body: b"x".to_vec(), priority: 0 });
        assert!(!bus.is_idle());
        let b = bus.clone();
        let waiter = tokio::spawn(async move { b.wait_idle().await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        assert_eq!(bus.take(Queue::Prepared).unwrap().0, b"x");
        bus.finish(Queue::Prepared, b"x".to_vec(), Disposition::Ack(vec![]));
        tokio::time::timeout(Duration::from_secs(5), waiter).await.unwrap().unwrap();
    }

    #[test]
    fn higher_priority_goes_first() {
        let bus = MemoryBus::new();
        bus.publish(Outgoing { queue: Queue::Revisions, body: b"a".to_vec(), priority: 0 });
        bus.publish(Outgoing { queue: Queue::Revisions, body: b"b".to_vec(), priority: 5 });
        bus.publish(Outgoing { queue: Queue::Revisions, body: b"c".to_vec(), priority: 0 });
        assert_eq!(bus.take(Queue::Revisions).unwrap().0, b"b");
        assert_eq!(bus.take(Queue::Revisions).unwrap().0, b"a");
        assert_eq!(bus.take(Queue::Revisions).unwrap().0, b"c");
    }
}
