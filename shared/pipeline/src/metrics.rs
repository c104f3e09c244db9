//! Prometheus metrics of one prci process: the families every stage shares (labelled by `stage`), the few one stage
//! adds, readiness, and the text `/metrics` serves. The registry is made by the process and passed in
//! ([`Metrics::new`]), never the prometheus crate's global default; [`install`] makes it the one this process records
//! into (code deep in a stage reaches it through [`get`]). Labels are bounded: stage, outcome, queue, step, limit, tool
//! and version names, never a SHA, a pull-request number, a URL or an error text.

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::{Mutex, OnceLock};

/// Buckets for work measured in seconds to hours: a one-package pull request takes seconds, a full scan an hour.
const DURATION_BUCKETS: [f64; 16] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 900.0, 1800.0, 3600.0];

/// How a message a stage took ended (each message once; retries are counted apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Handled; its outputs published.
    Ok,
    DeadLettered,
    /// Superseded, closed or cancelled: nothing published.
    DroppedStale,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::DeadLettered => "dead_lettered",
            Outcome::DroppedStale => "dropped_stale",
        }
    }
}

/// Every family prci exports.
pub struct Metrics {
    registry: Registry,
    pub received: IntCounterVec,
    pub completed: IntCounterVec,
    pub retries: IntCounterVec,
    pub processing: HistogramVec,
    pub queue_wait: HistogramVec,
    pub in_progress: IntGaugeVec,
    pub consumer_up: IntGaugeVec,
    pub queue_depth: IntGaugeVec,
    pub end_to_end: Histogram,
    pub verdicts: IntCounterVec,
    pub revisions_emitted: IntCounter,
    pub oldest_unpublished: Gauge,
    pub tool_runs: HistogramVec,
    pub base_cache: IntCounterVec,
    pub sandbox_limits: IntCounterVec,
    pub github_remaining: IntGauge,
    pub github_limit: IntGauge,
    pub build_info: IntGaugeVec,
    pub tool_info: IntGaugeVec,
    /// Stages this process consumes for, and whether its poller has polled successfully (`None`: no poller).
    expected: Mutex<(Vec<&'static str>, Option<bool>)>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn histogram(name: &str, help: &str, labels: &[&str]) -> prometheus::Result<HistogramVec> {
    HistogramVec::new(HistogramOpts::new(name, help).buckets(DURATION_BUCKETS.to_vec()), labels)
}

impl Metrics {
    /// Every family, registered in `registry`.
    pub fn new(registry: Registry) -> prometheus::Result<Metrics> {
        let counter = |name: &str, help: &str, labels: &[&str]| IntCounterVec::new(Opts::new(name, help), labels);
        let gauge = |name: &str, help: &str, labels: &[&str]| IntGaugeVec::new(Opts::new(name, help), labels);
        let m = Metrics {
            received: counter("prci_messages_received_total", "Messages a stage took from its queue.", &["stage"])?,
            completed: counter(
                "prci_messages_completed_total",
                "Messages a stage finished, by outcome (once each).",
                &["stage", "outcome"],
            )?,
            retries: counter("prci_message_retries_total", "Transient failures a stage tried again.", &["stage"])?,
            processing: histogram("prci_message_processing_seconds", "Time a stage spent on one message.", &["stage"])?,
            queue_wait: histogram("prci_message_queue_wait_seconds", "Time a message waited in its queue.", &["stage"])?,
            in_progress: gauge("prci_messages_in_progress", "Messages a stage is working on now.", &["stage"])?,
            consumer_up: gauge("prci_consumer_up", "1 while this process consumes the stage's queue.", &["stage"])?,
            queue_depth: gauge("prci_queue_depth", "Messages waiting in a queue, as the broker counts them.", &["queue", "kind"])?,
            end_to_end: Histogram::with_opts(
                HistogramOpts::new("prci_end_to_end_latency_seconds", "From a revision detected to its verdict published.")
                    .buckets(DURATION_BUCKETS.to_vec()),
            )?,
            verdicts: counter("prci_verdicts_total", "Verdicts published, by verdict.", &["verdict"])?,
            revisions_emitted: IntCounter::new("prci_revisions_emitted_total", "Revisions the poller emitted.")?,
            oldest_unpublished: Gauge::new(
                "prci_oldest_unpublished_revision_age_seconds",
                "Age of the oldest revision emitted by this poller and not yet published (0: none).",
            )?,
            tool_runs: histogram("prci_tool_run_seconds", "Time of one step of a job (git fetch, merge, regen, scan, ...).", &["step"])?,
            base_cache: counter("prci_base_cache_lookups_total", "Base-result cache lookups, by result (hit, miss).", &["result"])?,
            sandbox_limits: counter("prci_sandbox_limit_hits_total", "Tool runs stopped at a sandbox limit, by limit.", &["limit"])?,
            github_remaining: IntGauge::new("prci_github_rate_limit_remaining", "GitHub API requests left until the reset.")?,
            github_limit: IntGauge::new("prci_github_rate_limit_limit", "GitHub API requests allowed per window.")?,
            build_info: gauge("prci_build_info", "1, labelled with the prci version of this process.", &["version"])?,
            tool_info: gauge("prci_qa_tool_info", "1, labelled with a QA tool and its version on this host.", &["tool", "version"])?,
            expected: Mutex::new((Vec::new(), None)),
            registry,
        };
        for c in [&m.received, &m.completed, &m.retries, &m.verdicts, &m.base_cache, &m.sandbox_limits] {
            m.registry.register(Box::new(c.clone()))?;
        }
        for h in [&m.processing, &m.queue_wait, &m.tool_runs] {
            m.registry.register(Box::new(h.clone()))?;
        }
        for g in [&m.in_progress, &m.consumer_up, &m.queue_depth, &m.build_info, &m.tool_info] {
            m.registry.register(Box::new(g.clone()))?;
        }
        m.registry.register(Box::new(m.end_to_end.clone()))?;
        m.registry.register(Box::new(m.revisions_emitted.clone()))?;
        m.registry.register(Box::new(m.oldest_unpublished.clone()))?;
        m.registry.register(Box::new(m.github_remaining.clone()))?;
        m.registry.register(Box::new(m.github_limit.clone()))?;
        m.build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        // Bounded label sets start at zero, so a rate over them is 0 rather than nothing.
        for limit in ["memory", "processes", "cpu", "file_size", "md5_cache", "stdout", "stderr"] {
            m.sandbox_limits.with_label_values(&[limit]);
        }
        for result in ["hit", "miss"] {
            m.base_cache.with_label_values(&[result]);
        }
        for verdict in ["pass", "fail", "error"] {
            m.verdicts.with_label_values(&[verdict]);
        }
        Ok(m)
    }

    /// The text exposition of every family.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "cannot encode the metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// A finished message.
    pub fn complete(&self, stage: &str, outcome: Outcome) {
        self.completed.with_label_values(&[stage, outcome.as_str()]).inc();
    }

    /// This process consumes `stage`'s queue (readiness waits for its consumer).
    pub fn expect_stage(&self, stage: &'static str) {
        let mut e = self.expected.lock().unwrap_or_else(|p| p.into_inner());
        if !e.0.contains(&stage) {
            e.0.push(stage);
        }
        // Every stage starts at 0, so that dashboards and alerts see a stage without a consumer.
        self.consumer_up.with_label_values(&[stage]).set(0);
        for outcome in [Outcome::Ok, Outcome::DeadLettered, Outcome::DroppedStale] {
            self.completed.with_label_values(&[stage, outcome.as_str()]);
        }
        self.retries.with_label_values(&[stage]);
        self.received.with_label_values(&[stage]);
        self.in_progress.with_label_values(&[stage]);
    }

    /// This process runs the poller; `ok` once a poll succeeded.
    pub fn poller_polled(&self, ok: bool) {
        let mut e = self.expected.lock().unwrap_or_else(|p| p.into_inner());
        e.1 = Some(e.1.unwrap_or(false) || ok);
    }

    /// Ready: every stage this process runs is consuming, and its poller (if any) has polled once.
    pub fn ready(&self) -> bool {
        let e = self.expected.lock().unwrap_or_else(|p| p.into_inner());
        let consuming = e.0.iter().all(|stage| self.consumer_up.with_label_values(&[stage]).get() > 0);
        consuming && e.1 != Some(false) && (!e.0.is_empty() || e.1.is_some())
    }

    /// The QA tools of this host, by name and version.
    pub fn set_tools(&self, tools: &[(String, String)]) {
        for (tool, version) in tools {
            self.tool_info.with_label_values(&[tool, version]).set(1);
        }
    }
}

/// `prci_consumer_up{stage}` is 1 while this guard lives (a consumer taking the stage's queue), 0 after.
#[derive(Debug)]
pub struct ConsumerUp(&'static str);

impl ConsumerUp {
    pub fn new(stage: &'static str) -> ConsumerUp {
        get().consumer_up.with_label_values(&[stage]).set(1);
        ConsumerUp(stage)
    }
}

impl Drop for ConsumerUp {
    fn drop(&mut self) {
        get().consumer_up.with_label_values(&[self.0]).set(0);
    }
}

/// The steps of a job (`PreparedTrees::timings`, `Scanned::timings`) into `prci_tool_run_seconds`; names outside the
/// known steps are left out (the label stays bounded).
pub fn observe_steps(timings: &[(String, f64)]) {
    const STEPS: [&str; 8] = ["fetch", "merge", "checkout", "regen", "plan", "tool_cache", "scan", "confirm"];
    for (step, secs) in timings {
        if STEPS.contains(&step.as_str()) {
            get().tool_runs.with_label_values(&[step]).observe(*secs);
        }
    }
}

static INSTALLED: OnceLock<Metrics> = OnceLock::new();

/// Make `metrics` the ones this process records into (the first call wins).
pub fn install(metrics: Metrics) -> &'static Metrics {
    let _ = INSTALLED.set(metrics);
    get()
}

/// This process's metrics; before [`install`], a registry of its own that nothing serves.
pub fn get() -> &'static Metrics {
    INSTALLED.get_or_init(|| Metrics::new(Registry::new()).expect("metric families are valid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every family a running pipeline fills, with a sample in each.
    fn filled() -> Metrics {
        let m = Metrics::new(Registry::new()).unwrap();
        m.expect_stage("regen");
        m.received.with_label_values(&["regen"]).inc();
        m.complete("regen", Outcome::Ok);
        m.processing.with_label_values(&["regen"]).observe(1.5);
        m.queue_wait.with_label_values(&["regen"]).observe(0.2);
        m.queue_depth.with_label_values(&["revisions", "work"]).set(3);
        m.end_to_end.observe(12.0);
        m.verdicts.with_label_values(&["pass"]).inc();
        m.revisions_emitted.inc();
        m.tool_runs.with_label_values(&["scan"]).observe(3.0);
        m.base_cache.with_label_values(&["hit"]).inc();
        m.sandbox_limits.with_label_values(&["memory"]).inc();
        m.set_tools(&[("pkgcheck".into(), "0.10.37".into())]);
        m
    }

    #[test]
    fn families_follow_prometheus_naming_rules_and_bounded_labels() {
        let m = filled();
        let families = m.registry().gather();
        assert!(families.len() >= 18, "{} families", families.len());
        let allowed_labels = ["stage", "outcome", "queue", "kind", "verdict", "step", "result", "limit", "version", "tool"];
        for f in &families {
            let name = f.name();
            assert!(name.starts_with("prci_"), "{name}: no prci_ prefix");
            assert!(!f.help().is_empty(), "{name}: no help");
            match f.get_field_type() {
                prometheus::proto::MetricType::COUNTER => assert!(name.ends_with("_total"), "{name}: a counter ends in _total"),
                prometheus::proto::MetricType::HISTOGRAM => {
                    assert!(name.ends_with("_seconds") || name.ends_with("_bytes"), "{name}: a histogram has a unit")
                }
                _ => assert!(!name.ends_with("_total"), "{name}: only counters end in _total"),
            }
            for metric in f.get_metric() {
                for label in metric.get_label() {
                    assert!(allowed_labels.contains(&label.name()), "{name}: label {} is not a bounded one", label.name());
                    let value = label.value();
                    let sha_like = value.len() >= 12 && value.chars().all(|c| c.is_ascii_hexdigit());
                    assert!(!sha_like && !value.contains("://") && value.len() < 64, "{name}: label value {value:?}");
                }
            }
        }
        let text = m.render();
        assert!(text.contains("prci_messages_completed_total{outcome=\"ok\",stage=\"regen\"} 1"), "{text}");
        assert!(text.contains("prci_build_info{version=\""), "{text}");
    }

    #[test]
    fn ready_once_every_stage_consumes_and_the_poller_polled() {
        let m = Metrics::new(Registry::new()).unwrap();
        assert!(!m.ready(), "nothing runs yet");
        m.expect_stage("checker");
        assert!(!m.ready());
        m.consumer_up.with_label_values(&["checker"]).set(1);
        assert!(m.ready());
        m.poller_polled(false);
        assert!(!m.ready(), "the poller has not polled successfully yet");
        m.poller_polled(true);
        m.poller_polled(false);
        assert!(m.ready(), "one successful poll is enough");
    }
}
