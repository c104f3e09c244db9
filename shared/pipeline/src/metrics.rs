//! Prometheus metrics of one prci process: the families every stage shares (labelled by `stage`), the few one stage
//! adds, readiness, and the text `/metrics` serves. The registry is made by the process and passed in
//! ([`Metrics::new`]), never the prometheus crate's global default; [`install`] makes it the one this process records
//! into (code deep in a stage reaches it through [`get`]). Labels are bounded: stage, outcome, queue, step, limit, tool
//! and version names, never a SHA, a pull-request number, a URL or an error text.

use prometheus::{
    Counter, Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// Buckets for work measured in seconds to hours: a one-package pull request takes seconds, a full scan an hour.
const DURATION_BUCKETS: [f64; 16] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 900.0, 1800.0, 3600.0];

/// Buckets for detect → published: a one-package pull request takes a few seconds to a minute, so its p50 and p95 need
/// buckets a few seconds apart there (histogram_quantile interpolates within one); a full scan still lands below 2 h.
const END_TO_END_BUCKETS: [f64; 24] = [
    1.0, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0, 12.5, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1800.0,
    3600.0, 7200.0,
];

/// How a stage's attempt at a message ended: `Retried` once per transient failure tried again, the others once per
/// message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Handled; its outputs published.
    Ok,
    /// A transient failure; the message is tried again.
    Retried,
    DeadLettered,
    /// Superseded, closed or cancelled: nothing published.
    DroppedStale,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Retried => "retried",
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
    /// CPU seconds of this process, and of the tool processes it started (read from /proc when rendered).
    pub cpu_self: Counter,
    pub cpu_tools: Counter,
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
                "Attempts of a stage at a message, by outcome (retried: once per transient failure; the others once per message).",
                &["stage", "outcome"],
            )?,
            processing: histogram("prci_message_processing_seconds", "Time a stage spent on one message.", &["stage"])?,
            queue_wait: histogram("prci_message_queue_wait_seconds", "Time a message waited in its queue.", &["stage"])?,
            in_progress: gauge("prci_messages_in_progress", "Messages a stage is working on now.", &["stage"])?,
            consumer_up: gauge("prci_consumer_up", "1 while this process consumes the stage's queue.", &["stage"])?,
            queue_depth: gauge("prci_queue_depth", "Messages waiting in a queue, as the broker counts them.", &["queue", "kind"])?,
            end_to_end: Histogram::with_opts(
                HistogramOpts::new("prci_end_to_end_latency_seconds", "From a revision detected to its verdict published.")
                    .buckets(END_TO_END_BUCKETS.to_vec()),
            )?,
            verdicts: counter("prci_verdicts_total", "Verdicts published, by verdict.", &["verdict"])?,
            revisions_emitted: IntCounter::new("prci_revisions_emitted_total", "Revisions the poller emitted.")?,
            oldest_unpublished: Gauge::new(
                "prci_oldest_unpublished_revision_age_seconds",
                "Age of the oldest revision emitted by this poller and not yet published (0: none).",
            )?,
            tool_runs: histogram(
                "prci_tool_run_seconds",
                "Time of one step of a job (git fetch, merge, regen, scan, ...), by the tool that does it.",
                &["tool", "step"],
            )?,
            base_cache: counter("prci_base_cache_lookups_total", "Base-result cache lookups, by result (hit, miss).", &["result"])?,
            sandbox_limits: counter("prci_sandbox_limit_hits_total", "Tool runs stopped at a sandbox limit, by limit.", &["limit"])?,
            github_remaining: IntGauge::new("prci_github_rate_limit_remaining", "GitHub API requests left until the reset.")?,
            github_limit: IntGauge::new("prci_github_rate_limit_limit", "GitHub API requests allowed per window.")?,
            build_info: gauge("prci_build_info", "1, labelled with the prci version of this process.", &["version"])?,
            tool_info: gauge("prci_qa_tool_info", "1, labelled with a QA tool and its version on this host.", &["tool", "version"])?,
            cpu_self: Counter::new("prci_process_cpu_seconds_total", "CPU time (user and system) of this prci process.")?,
            cpu_tools: Counter::new(
                "prci_tool_cpu_seconds_total",
                "CPU time of the processes this prci process started (git, pmaint, pkgcheck, sandbox), running and ended.",
            )?,
            expected: Mutex::new((Vec::new(), None)),
            registry,
        };
        for c in [&m.received, &m.completed, &m.verdicts, &m.base_cache, &m.sandbox_limits] {
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
        m.registry.register(Box::new(m.cpu_self.clone()))?;
        m.registry.register(Box::new(m.cpu_tools.clone()))?;
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
        self.read_cpu();
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "cannot encode the metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// Bring the CPU counters up to what /proc says now (a counter never goes down: time of a tool process that ended
    /// without being waited for, which no one can read any more, is not taken back).
    fn read_cpu(&self) {
        if let Some(cpu) = process_cpu(std::process::id()) {
            self.cpu_self.inc_by((cpu.own - self.cpu_self.get()).max(0.0));
            self.cpu_tools.inc_by((cpu.children - self.cpu_tools.get()).max(0.0));
        }
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
        for outcome in [Outcome::Ok, Outcome::Retried, Outcome::DeadLettered, Outcome::DroppedStale] {
            self.completed.with_label_values(&[stage, outcome.as_str()]);
        }
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

/// The steps of a job (`PreparedTrees::timings`, `Scanned::timings`) and the tool each runs, for
/// `prci_tool_run_seconds`: git (through libgit2) fetches, merges and checks out, pmaint regenerates the metadata cache,
/// prci plans the scan and looks its tool cache up, pkgcheck scans and confirms.
const STEP_TOOLS: [(&str, &str); 8] = [
    ("fetch", "git"),
    ("merge", "git"),
    ("checkout", "git"),
    ("regen", "pmaint"),
    ("plan", "prci"),
    ("tool_cache", "prci"),
    ("scan", "pkgcheck"),
    ("confirm", "pkgcheck"),
];

/// The steps of a job into `prci_tool_run_seconds`; names outside the known steps are left out (the labels stay
/// bounded).
pub fn observe_steps(timings: &[(String, f64)]) {
    for (step, secs) in timings {
        if let Some((step, tool)) = STEP_TOOLS.iter().find(|(s, _)| s == step) {
            get().tool_runs.with_label_values(&[tool, step]).observe(*secs);
        }
    }
}

/// CPU seconds of a process and of its descendants.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Cpu {
    own: f64,
    /// Every live descendant's own time and the time of the descendants that ended and were waited for (the kernel's
    /// cutime and cstime of each live process in the tree): each ended process counts once, in its parent.
    children: f64,
}

/// [`Cpu`] of `pid` from /proc (None off Linux or when /proc cannot be read).
fn process_cpu(pid: u32) -> Option<Cpu> {
    // /proc counts in USER_HZ, which Linux fixes at 100 on every architecture it exports it on (sysconf(_SC_CLK_TCK)).
    let ticks = 100.0;
    // pid → (parent, own ticks, waited-for children's ticks)
    let mut procs: HashMap<u32, (u32, u64, u64)> = HashMap::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(p) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if let Some(stat) = std::fs::read_to_string(entry.path().join("stat")).ok().and_then(|t| parse_stat(&t)) {
            procs.insert(p, stat);
        }
    }
    let &(_, own, reaped) = procs.get(&pid)?;
    let mut children_of: HashMap<u32, Vec<u32>> = HashMap::new();
    for (&p, &(parent, ..)) in &procs {
        children_of.entry(parent).or_default().push(p);
    }
    let mut total = reaped;
    let mut stack = children_of.get(&pid).cloned().unwrap_or_default();
    while let Some(p) = stack.pop() {
        if let Some(&(_, own, reaped)) = procs.get(&p) {
            total += own + reaped;
        }
        stack.extend(children_of.get(&p).into_iter().flatten().copied());
    }
    Some(Cpu { own: own as f64 / ticks, children: total as f64 / ticks })
}

/// (parent pid, utime + stime, cutime + cstime) from the text of /proc/PID/stat; the command name in parentheses may
/// hold spaces and parentheses itself, so the fields are counted from its last `)`.
fn parse_stat(text: &str) -> Option<(u32, u64, u64)> {
    let fields: Vec<&str> = text.get(text.rfind(')')? + 1..)?.split_whitespace().collect();
    let n = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let parent = fields.get(1)?.parse().ok()?;
    Some((parent, n(11)? + n(12)?, n(13)? + n(14)?))
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
        m.tool_runs.with_label_values(&["pkgcheck", "scan"]).observe(3.0);
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
    fn the_cpu_of_a_process_and_its_children_is_read_from_proc() {
        let stat = "4242 (a (odd) name) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 50 30 20 20 0 1 0 1 0 0";
        assert_eq!(parse_stat(stat), Some((17, 300, 50)));
        assert_eq!(parse_stat("garbage"), None);

        let m = Metrics::new(Registry::new()).unwrap();
        // A child that burns CPU and is waited for: its time moves into this process's children's time.
        let before = process_cpu(std::process::id()).expect("/proc is readable");
        let status = std::process::Command::new("sh").args(["-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"]).status().unwrap();
        assert!(status.success());
        let after = process_cpu(std::process::id()).unwrap();
        assert!(after.children > before.children, "{before:?} → {after:?}");
        let text = m.render();
        assert!(m.cpu_tools.get() >= after.children - 1e-9, "{text}");
        assert!(text.contains("prci_process_cpu_seconds_total "), "{text}");
        assert!(text.contains("prci_tool_cpu_seconds_total "), "{text}");
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
