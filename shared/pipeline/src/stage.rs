//! What a stage is to the transports: a function from one input message to messages to publish, or a classified error; and the retry policy every transport applies the same way.

use crate::messages::Queue;
use std::time::Duration;

/// One message a stage wants published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub queue: Queue,
    pub body: Vec<u8>,
    /// 0..=9; `priority-ci` pull requests go first.
    pub priority: u8,
}

/// A handled message: what to publish before the input is acknowledged (possibly nothing: a dropped, superseded revision).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Handled {
    pub publish: Vec<Outgoing>,
    /// Nothing done because the revision is stale (superseded, closed, cancelled): counted as `dropped_stale`.
    pub dropped_stale: bool,
}

impl Handled {
    /// Dropped: the revision is no longer the one to check.
    pub fn stale() -> Handled {
        Handled { publish: vec![], dropped_stale: true }
    }
}

/// Why a message could not be handled.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StageError {
    /// Worth another try (git, tools, broker, forge hiccups): retried with backoff, then dead-lettered.
    #[error("transient: {0}")]
    Transient(String),
    /// Retrying cannot help (undecodable message, impossible input): dead-lettered at once.
    #[error("permanent: {0}")]
    Permanent(String),
}

/// A stage as the transports see it. Handlers block (git2, tools): transports run them off the async threads.
pub trait Stage: Send + Sync + 'static {
    /// The operator-visible name (`regen`, `checker`, …): metrics label, log field.
    fn name(&self) -> &'static str;
    /// The queue it consumes.
    fn input(&self) -> Queue;
    /// Handle one message. Must be idempotent: the same input may come again after a crash.
    fn handle(&self, body: &[u8]) -> Result<Handled, StageError>;
}

/// Retries of transient failures.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { attempts: 4, first_delay: Duration::from_secs(2), max_delay: Duration::from_secs(60) }
    }
}

impl RetryPolicy {
    /// Delay before attempt `n` (1-based, n ≥ 2): doubling from `first_delay`, capped.
    pub fn delay(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.saturating_sub(2));
        self.first_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// What a transport does with an input message after the stage has run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Publish these (confirmed), then acknowledge the input.
    Ack(Vec<Outgoing>),
    /// Acknowledge the input, publish nothing: the revision is stale.
    Dropped,
    /// Dead-letter the input, with the reason (for the log and the operator).
    DeadLetter(String),
}

/// Run a stage on one message with the retry policy: the single place where transient vs permanent is decided.
/// `sleep` is injected so transports (and tests) choose how to wait.
pub fn process(stage: &dyn Stage, body: &[u8], policy: &RetryPolicy, mut sleep: impl FnMut(Duration)) -> Disposition {
    let mut attempt = 1;
    loop {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| stage.handle(body))) {
            Ok(Ok(handled)) if handled.dropped_stale => return Disposition::Dropped,
            Ok(Ok(handled)) => return Disposition::Ack(handled.publish),
            Ok(Err(StageError::Permanent(reason))) => {
                tracing::error!(stage = stage.name(), error = %reason, "permanent failure; dead-lettering");
                return Disposition::DeadLetter(reason);
            }
            Ok(Err(StageError::Transient(reason))) if attempt >= policy.attempts => {
                tracing::error!(stage = stage.name(), attempt, error = %reason, "transient failure, out of retries; dead-lettering");
                return Disposition::DeadLetter(format!("after {attempt} attempts: {reason}"));
            }
            Ok(Err(StageError::Transient(reason))) => {
                crate::metrics::get().complete(stage.name(), crate::metrics::Outcome::Retried);
                attempt += 1;
                let delay = policy.delay(attempt);
                tracing::warn!(stage = stage.name(), attempt, delay_secs = delay.as_secs_f64(), error = %reason, "transient failure; retrying");
                sleep(delay);
            }
            Err(_) => {
                tracing::error!(stage = stage.name(), "handler panicked; dead-lettering");
                return Disposition::DeadLetter("the handler panicked".into());
            }
        }
    }
}

/// The revision a message is about, wherever it holds one.
pub fn revision_of(body: &[u8]) -> Option<crate::messages::Revision> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    serde_json::from_value(crate::notify::find_revision(&value)?.clone()).ok()
}

/// One message through [`process`], measured (`crate::metrics`) and told (`crate::events`): what every transport
/// calls. `sent_at`: when the producer published it (Unix seconds), for the time it waited.
pub fn handle_one(stage: &dyn Stage, body: &[u8], policy: &RetryPolicy, sent_at: Option<f64>, sleep: impl FnMut(Duration)) -> Disposition {
    use crate::events::{self, Event, Kind};
    use crate::metrics::Outcome;
    let (m, name) = (crate::metrics::get(), stage.name());
    m.received.with_label_values(&[name]).inc();
    if let Some(sent) = sent_at {
        m.queue_wait.with_label_values(&[name]).observe((events::now() - sent).max(0.0));
    }
    let revision = revision_of(body);
    if let Some(r) = &revision {
        events::emit(Event::about(Kind::Started, name, r));
    }
    let in_progress = m.in_progress.with_label_values(&[name]);
    in_progress.inc();
    let start = std::time::Instant::now();
    let disposition = process(stage, body, policy, sleep);
    in_progress.dec();
    m.processing.with_label_values(&[name]).observe(start.elapsed().as_secs_f64());
    let outcome = match &disposition {
        Disposition::Ack(_) => Outcome::Ok,
        Disposition::Dropped => Outcome::DroppedStale,
        Disposition::DeadLetter(_) => Outcome::DeadLettered,
    };
    m.complete(name, outcome);
    if let Some(r) = &revision {
        let mut event = Event::about(Kind::Finished, name, r);
        event.outcome = Some(outcome.as_str().to_string());
        events::emit(event);
    }
    disposition
}

/// What a dead-lettered message about a pull request becomes, besides the dead-letter queue: an `error` verdict for its
/// revision on the verdicts queue, so the publisher writes an error report and sets an `error` status ("the CI failed,
/// not your pull request"). `None` when the message names no revision (undecodable) or when the publisher itself gave up
/// (its failures reach people through the notification hook and the dead-letter queue).
pub fn failure_verdict(stage: &str, input: Queue, body: &[u8], reason: &str) -> Option<Outgoing> {
    if input == Queue::Verdicts {
        return None;
    }
    let revision = revision_of(body)?;
    let reason = format!("the CI failed, not your pull request ({stage}: {reason})");
    let report = findings::CheckReport::error(&revision.repository, &revision.base, &revision.head, reason);
    let priority = revision.broker_priority();
    let body = crate::messages::encode(&crate::messages::VerdictMessage { revision, report });
    Some(Outgoing { queue: Queue::Verdicts, body, priority })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn a_dead_letter_about_a_revision_becomes_an_error_verdict() {
        let rev = crate::messages::Revision {
            repository: "gentoo".into(),
            pr: 7,
            head: "a".repeat(40),
            base_branch: "master".into(),
            base: "b".repeat(40),
            priority: true,
            emitted_at: 1.0,
        };
        let out = failure_verdict("regen", Queue::Revisions, &crate::messages::encode(&rev), "git: timed out").unwrap();
        assert_eq!((out.queue, out.priority), (Queue::Verdicts, rev.broker_priority()));
        let verdict: crate::messages::VerdictMessage = crate::messages::decode(&out.body).unwrap();
        assert_eq!(verdict.revision, rev);
        assert_eq!(verdict.report.verdict, findings::Verdict::Error);
        assert!(verdict.report.reason.contains("not your pull request") && verdict.report.reason.contains("git: timed out"));
        assert!(failure_verdict("regen", Queue::Revisions, b"garbage", "undecodable").is_none());
        assert!(failure_verdict("publisher", Queue::Verdicts, &out.body, "disk full").is_none());
    }

    struct Flaky {
        failures: u32,
        calls: AtomicU32,
        permanent: bool,
    }

    impl Stage for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }
        fn input(&self) -> Queue {
            Queue::Revisions
        }
        fn handle(&self, body: &[u8]) -> Result<Handled, StageError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if body == b"panic" {
                panic!("boom");
            }
            if self.permanent {
                return Err(StageError::Permanent("bad".into()));
            }
            if n < self.failures {
                return Err(StageError::Transient(format!("hiccup {n}")));
            }
            Ok(Handled { publish: vec![Outgoing { queue: Queue::Prepared, body: body.to_vec(), priority: 0 }], dropped_stale: false })
        }
    }

    fn flaky(failures: u32, permanent: bool) -> Flaky {
        Flaky { failures, calls: AtomicU32::new(0), permanent }
    }

    #[test]
    fn transient_failures_are_retried_with_growing_delays() {
        let s = flaky(2, false);
        let mut slept = vec![];
        let d = process(&s, b"x", &RetryPolicy::default(), |d| slept.push(d.as_secs()));
        assert!(matches!(d, Disposition::Ack(ref out) if out.len() == 1));
        assert_eq!(slept, [2, 4]);
    }

    #[test]
    fn out_of_retries_is_dead_lettered() {
        let s = flaky(10, false);
        let d = process(&s, b"x", &RetryPolicy::default(), |_| {});
        assert!(matches!(d, Disposition::DeadLetter(ref r) if r.contains("after 4 attempts")));
        assert_eq!(s.calls.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn permanent_failures_and_panics_are_dead_lettered_at_once() {
        let s = flaky(0, true);
        assert!(matches!(process(&s, b"x", &RetryPolicy::default(), |_| {}), Disposition::DeadLetter(_)));
        assert_eq!(s.calls.load(Ordering::SeqCst), 1);
        let s = flaky(0, false);
        assert!(matches!(process(&s, b"panic", &RetryPolicy::default(), |_| {}), Disposition::DeadLetter(_)));
    }

    #[test]
    fn delays_are_capped() {
        let p = RetryPolicy { attempts: 20, first_delay: Duration::from_secs(1), max_delay: Duration::from_secs(10) };
        assert_eq!(p.delay(2).as_secs(), 1);
        assert_eq!(p.delay(5).as_secs(), 8);
        assert_eq!(p.delay(15).as_secs(), 10);
    }
}
