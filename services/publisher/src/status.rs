//! The status page for people (`<reports.dir>/status.html`, and `status.json`), next to the report index: what is
//! queued (pull request, since when, position), what is running (stage, host, since when), and the last verdicts with
//! their latency. Fed by the pipeline's events (`pipeline::events`) from every host; the publisher's process keeps it
//! and exports the age of the oldest revision emitted and not yet published. A revision emitted while this process was
//! down shows up once a stage takes it.
//!
//! On a forge with statuses it also keeps each waiting revision's pending status telling where it is (the stage, the
//! position in that stage's queue, a link to this page), refreshed at most every `github.pending_refresh_secs`, and only
//! while the revision is before the publisher: a final status is never overwritten (the forge is asked first, and this
//! process's publisher does not set a final status while a refresh is in the air).

use crate::html::{escape, page_start};
use pipeline::events::{Event, Kind};
use serde::Serialize;
use std::collections::HashMap;
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// Where and how often pending statuses are refreshed: set once by the publisher stage built on a forge with statuses
/// ([`refresh_pending_on`]), taken up by [`spawn`].
#[derive(Debug, Clone)]
pub struct PendingRefresh {
    pub forge: Arc<dyn forge::Forge>,
    /// `github.pending_refresh_secs`.
    pub every: Duration,
    /// The status page's public URL (the pending status links to it).
    pub status_url: String,
}

static PENDING: OnceLock<PendingRefresh> = OnceLock::new();

/// Refresh this process's pending statuses through `refresh` (the first call wins).
pub fn refresh_pending_on(refresh: PendingRefresh) {
    let _ = PENDING.set(refresh);
}

/// Held while a pending status is refreshed and while the publisher sets a final one, so that in this process a
/// refresh never lands after the final status it read as still pending.
pub fn forge_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// A stage as a contributor reads it.
fn stage_words(stage: &str) -> &str {
    match stage {
        "regen" => "merge and metadata regeneration",
        "checker" => "pkgcheck scan",
        "differ" => "comparison",
        other => other,
    }
}

/// Verdicts kept on the page.
const RECENT: usize = 50;
/// Seconds after its last event a revision is forgotten (longer than any regen plus scan: a full regen of Gentoo is an
/// hour, a full scan another).
const FORGET_AFTER: f64 = 6.0 * 3600.0;

/// One revision in the pipeline.
#[derive(Debug, Clone, Serialize)]
pub struct InFlight {
    pub pr: u64,
    pub head: String,
    pub priority: bool,
    pub emitted_at: f64,
    /// The stage working on it, its host and since when; `None`: waiting in a queue.
    pub running: Option<(String, String, f64)>,
    /// The stage it waits for, and since when.
    pub waiting: (String, f64),
    /// When the last event about it came.
    pub seen: f64,
}

/// A verdict published.
#[derive(Debug, Clone, Serialize)]
pub struct Done {
    pub pr: u64,
    pub head: String,
    pub verdict: String,
    pub latency_secs: f64,
    pub at: f64,
}

/// What the page shows.
#[derive(Debug, Default, Serialize)]
pub struct Status {
    /// `<pr>/<head>` → the revision (a string key: JSON objects have string keys).
    pub in_flight: BTreeMap<String, InFlight>,
    pub recent: VecDeque<Done>,
    #[serde(skip)]
    changed: bool,
}

/// The stage after `stage`.
fn next_stage(stage: &str) -> &'static str {
    match stage {
        "poller" => "regen",
        "regen" => "checker",
        "checker" => "differ",
        _ => "publisher",
    }
}

impl Status {
    /// Take one event into account.
    pub fn apply(&mut self, e: &Event) {
        self.changed = true;
        let key = format!("{}/{}", e.pr, e.head);
        let entry = || InFlight {
            pr: e.pr,
            head: e.head.clone(),
            priority: e.priority,
            emitted_at: e.emitted_at,
            running: None,
            waiting: ("regen".into(), e.at),
            seen: e.at,
        };
        match e.kind {
            Kind::Emitted => {
                // A newer head supersedes what is in flight for the pull request (it is cancelled everywhere).
                let prefix = format!("{}/", e.pr);
                self.in_flight.retain(|k, f| !k.starts_with(&prefix) || f.head == e.head);
                self.in_flight.entry(key).or_insert_with(entry);
            }
            Kind::Started => {
                let f = self.in_flight.entry(key).or_insert_with(entry);
                f.running = Some((e.stage.clone(), e.host.clone(), e.at));
                f.seen = e.at;
            }
            Kind::Finished => {
                let ends = e.stage == "publisher" || matches!(e.outcome.as_deref(), Some("dropped_stale" | "dead_lettered"));
                if ends {
                    self.in_flight.remove(&key);
                } else if let Some(f) = self.in_flight.get_mut(&key) {
                    f.running = None;
                    f.waiting = (next_stage(&e.stage).into(), e.at);
                    f.seen = e.at;
                }
                if let (Some(verdict), "publisher") = (&e.verdict, e.stage.as_str()) {
                    let latency_secs = (e.at - e.emitted_at).max(0.0);
                    self.recent.push_front(Done { pr: e.pr, head: e.head.clone(), verdict: verdict.clone(), latency_secs, at: e.at });
                    self.recent.truncate(RECENT);
                }
            }
        }
    }

    /// Waiting revisions by the stage they wait for, each queue in the order it serves them (priority first, then the
    /// longest waiting), with their position in it.
    pub fn queued(&self) -> Vec<(usize, &InFlight)> {
        let mut waiting: Vec<&InFlight> = self.in_flight.values().filter(|f| f.running.is_none()).collect();
        let order = |stage: &str| ["regen", "checker", "differ", "publisher"].iter().position(|s| *s == stage).unwrap_or(4);
        waiting.sort_by(|a, b| {
            (order(&a.waiting.0).cmp(&order(&b.waiting.0))).then(b.priority.cmp(&a.priority)).then(a.waiting.1.total_cmp(&b.waiting.1))
        });
        let mut out = Vec::with_capacity(waiting.len());
        for (i, f) in waiting.iter().enumerate() {
            let position = if i > 0 && waiting[i - 1].waiting.0 == f.waiting.0 { out.last().map_or(1, |(p, _)| p + 1) } else { 1 };
            out.push((position, *f));
        }
        out
    }

    /// The pending status each revision before the publisher should show: `(pr, head, description)`, the stage it is at
    /// and, waiting, its position in that stage's queue. A revision waiting for or at the publisher gets none: its final
    /// status is on its way.
    pub fn pending_descriptions(&self) -> Vec<(u64, String, String)> {
        let queued = self.queued();
        let mut sizes: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, f) in &queued {
            *sizes.entry(f.waiting.0.as_str()).or_default() += 1;
        }
        let mut out = Vec::new();
        for (position, f) in &queued {
            let stage = f.waiting.0.as_str();
            if stage != "publisher" {
                let of = sizes.get(stage).copied().unwrap_or(*position);
                out.push((f.pr, f.head.clone(), format!("queued for the {}: position {position} of {of}", stage_words(stage))));
            }
        }
        for f in self.in_flight.values() {
            if let Some((stage, ..)) = &f.running {
                if stage != "publisher" {
                    out.push((f.pr, f.head.clone(), format!("{} running", capitalized(stage_words(stage)))));
                }
            }
        }
        out
    }

    /// Forget revisions nothing was heard of for `secs` (their end was missed: a watcher reconnecting, a message the
    /// broker dead-lettered by itself), so the oldest-unpublished age does not grow for ever.
    pub fn expire(&mut self, now: f64, secs: f64) {
        let before = self.in_flight.len();
        self.in_flight.retain(|_, f| now - f.seen < secs);
        if self.in_flight.len() != before {
            self.changed = true;
        }
    }

    /// Seconds since the oldest revision still in flight was emitted (0 when none is).
    pub fn oldest_age(&self, now: f64) -> f64 {
        self.in_flight.values().map(|f| now - f.emitted_at).fold(0.0, f64::max)
    }

    /// The page.
    pub fn render(&self, now: f64) -> String {
        let ago = |t: f64| format!("{:.0} s ago", (now - t).max(0.0));
        let pr = |f: &InFlight| format!("#{} <code>{}</code>", f.pr, escape(&f.head[..f.head.len().min(10)]));
        let mut out = String::new();
        page_start(&mut out, "prci: status");
        out.push_str("<p class=\"muted\"><a href=\"index.html\">all reports</a></p>\n<h1>What prci is doing</h1>\n");
        let running: Vec<&InFlight> = self.in_flight.values().filter(|f| f.running.is_some()).collect();
        let _ =
            writeln!(out, "<h2>Running ({})</h2>\n<table>\n<tr><th>PR</th><th>stage</th><th>host</th><th>since</th></tr>", running.len());
        for f in running {
            if let Some((stage, host, since)) = &f.running {
                let _ =
                    writeln!(out, "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", pr(f), escape(stage), escape(host), ago(*since));
            }
        }
        let queued = self.queued();
        let _ = writeln!(
            out,
            "</table>\n<h2>Queued ({})</h2>\n<table>\n<tr><th>position</th><th>PR</th><th>waiting for</th><th>since</th><th>detected</th></tr>",
            queued.len()
        );
        for (position, f) in queued {
            let mark = if f.priority { " (priority-ci)" } else { "" };
            let _ = writeln!(
                out,
                "<tr><td>{position}</td><td>{}{mark}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                pr(f),
                escape(&f.waiting.0),
                ago(f.waiting.1),
                ago(f.emitted_at)
            );
        }
        let _ = writeln!(
            out,
            "</table>\n<h2>Last verdicts</h2>\n<table>\n<tr><th>PR</th><th>verdict</th><th>latency</th><th>published</th></tr>"
        );
        for d in &self.recent {
            let href = escape(&format!("{}/{}.html", d.pr, d.head));
            let _ = writeln!(
                out,
                "<tr><td><a href=\"{href}\">#{} <code>{}</code></a></td><td>{}</td><td>{:.1} s</td><td>{}</td></tr>",
                d.pr,
                escape(&d.head[..d.head.len().min(10)]),
                escape(&d.verdict),
                d.latency_secs,
                ago(d.at)
            );
        }
        out.push_str("</table>\n</body>\n</html>\n");
        out
    }
}

/// Keep the status of the pipeline behind `transport` in `reports_dir` until shutdown: events in, the page rewritten
/// at most every two seconds when something changed, the oldest-unpublished gauge kept current.
pub fn spawn(reports_dir: PathBuf, transport: pipeline::runtime::Transport, shutdown: tokio::sync::watch::Receiver<bool>) {
    let status = Arc::new(Mutex::new(Status::default()));
    let feed = status.clone();
    tokio::spawn(pipeline::events::watch(transport, shutdown.clone(), move |event| {
        feed.lock().unwrap_or_else(|p| p.into_inner()).apply(&event);
    }));
    if let Some(refresh) = PENDING.get() {
        spawn_pending(status.clone(), refresh.clone(), shutdown.clone());
    }
    let mut shutdown = shutdown;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = shutdown.changed() => return,
            }
            let now = pipeline::events::now();
            let page = {
                let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
                s.expire(now, FORGET_AFTER);
                pipeline::metrics::get().oldest_unpublished.set(s.oldest_age(now));
                if !std::mem::take(&mut s.changed) && reports_dir.join("status.html").exists() {
                    continue;
                }
                (s.render(now), serde_json::to_vec_pretty(&*s).unwrap_or_default())
            };
            if let Err(e) = write_pages(&reports_dir, &page.0, &page.1) {
                tracing::warn!(error = %e, "cannot write the status page");
            }
        }
    });
}

/// Every `refresh.every`, the pending status of each revision whose place changed, through the forge (which sends
/// nothing when the status there is not pending or already says it).
fn spawn_pending(status: Arc<Mutex<Status>>, refresh: PendingRefresh, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    tokio::spawn(async move {
        // `<pr>/<head>` → the description last sent (or found there).
        let mut sent: HashMap<String, String> = HashMap::new();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(refresh.every) => {}
                _ = shutdown.changed() => return,
            }
            let wanted = status.lock().unwrap_or_else(|p| p.into_inner()).pending_descriptions();
            let keys: std::collections::HashSet<String> = wanted.iter().map(|(pr, head, _)| format!("{pr}/{head}")).collect();
            sent.retain(|k, _| keys.contains(k));
            let todo: Vec<(u64, String, String)> =
                wanted.into_iter().filter(|(pr, head, d)| sent.get(&format!("{pr}/{head}")) != Some(d)).collect();
            if todo.is_empty() {
                continue;
            }
            let r = refresh.clone();
            let done = tokio::task::spawn_blocking(move || {
                let mut done = Vec::new();
                for (pr, head, description) in todo {
                    let wanted = forge::Status { state: forge::State::Pending, description, target_url: Some(r.status_url.clone()) };
                    let _guard = forge_lock();
                    match r.forge.refresh_pending(&head, &wanted) {
                        Ok(sent) => {
                            tracing::debug!(pr, head = %head, sent, description = %wanted.description, "pending status refreshed");
                            done.push((format!("{pr}/{head}"), wanted.description));
                        }
                        Err(e) => tracing::warn!(pr, error = %e, "cannot refresh the pending status; next time"),
                    }
                }
                done
            })
            .await
            .unwrap_or_default();
            sent.extend(done);
        }
    });
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

fn write_pages(dir: &Path, html: &str, json: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    crate::reports::atomic_write(&dir.join("status.json"), json)?;
    crate::reports::atomic_write(&dir.join("status.html"), html.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: Kind, stage: &str, pr: u64, at: f64) -> Event {
        Event {
            kind,
            stage: stage.into(),
            host: "host-a".into(),
            repository: "gentoo".into(),
            pr,
            head: format!("{pr:040}"),
            priority: pr == 9,
            emitted_at: 100.0 + pr as f64,
            at,
            outcome: Some("ok".into()),
            verdict: None,
        }
    }

    #[test]
    fn pending_statuses_say_the_stage_and_the_queue_position_until_the_publisher() {
        let mut s = Status::default();
        for pr in [1, 2, 3, 9] {
            s.apply(&event(Kind::Emitted, "poller", pr, 100.0 + pr as f64));
        }
        s.apply(&event(Kind::Started, "regen", 1, 120.0));
        let mut d = s.pending_descriptions();
        d.sort();
        let said: Vec<(u64, &str)> = d.iter().map(|(pr, _, text)| (*pr, text.as_str())).collect();
        assert_eq!(
            said,
            [
                (1, "Merge and metadata regeneration running"),
                (2, "queued for the merge and metadata regeneration: position 2 of 3"),
                (3, "queued for the merge and metadata regeneration: position 3 of 3"),
                (9, "queued for the merge and metadata regeneration: position 1 of 3"),
            ],
            "priority-ci first"
        );
        assert!(d.iter().all(|(pr, head, _)| *head == format!("{pr:040}")));
        s.apply(&event(Kind::Finished, "regen", 1, 130.0));
        s.apply(&event(Kind::Started, "checker", 9, 131.0));
        let text_of = |s: &Status, pr: u64| s.pending_descriptions().into_iter().find(|d| d.0 == pr).map(|d| d.2);
        assert_eq!(text_of(&s, 1).as_deref(), Some("queued for the pkgcheck scan: position 1 of 1"));
        assert_eq!(text_of(&s, 9).as_deref(), Some("Pkgcheck scan running"));
        assert_eq!(text_of(&s, 2).as_deref(), Some("queued for the merge and metadata regeneration: position 1 of 2"));
        // Waiting for the publisher, or at it: the final status is on its way, no pending one may overtake it.
        s.apply(&event(Kind::Finished, "checker", 9, 140.0));
        s.apply(&event(Kind::Finished, "differ", 9, 141.0));
        assert_eq!(text_of(&s, 9), None);
        s.apply(&event(Kind::Started, "publisher", 9, 142.0));
        assert_eq!(text_of(&s, 9), None);
        assert!(s.pending_descriptions().iter().all(|(_, _, t)| t.chars().count() <= 140), "GitHub keeps 140 characters");
    }

    #[test]
    fn the_page_shows_queued_running_and_published_revisions() {
        let mut s = Status::default();
        for pr in [1, 2, 9] {
            s.apply(&event(Kind::Emitted, "poller", pr, 100.0 + pr as f64));
        }
        s.apply(&event(Kind::Started, "regen", 1, 120.0));
        // priority-ci first, then the longest waiting.
        let queued: Vec<(usize, u64)> = s.queued().iter().map(|(i, f)| (*i, f.pr)).collect();
        assert_eq!(queued, [(1, 9), (2, 2)]);
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"1/") && json.contains("\"running\""), "{json}");
        assert_eq!(s.oldest_age(200.0), 99.0);
        let page = s.render(200.0);
        assert!(page.contains("<td>regen</td><td>host-a</td><td>80 s ago</td>"), "{page}");
        s.apply(&event(Kind::Finished, "regen", 1, 130.0));
        assert_eq!(s.in_flight[&format!("1/{:040}", 1)].waiting.0, "checker");
        let queued: Vec<(usize, u64)> = s.queued().iter().map(|(i, f)| (*i, f.pr)).collect();
        assert_eq!(queued, [(1, 9), (2, 2), (1, 1)], "positions count within each stage's queue");
        let mut published = event(Kind::Finished, "publisher", 1, 141.0);
        published.verdict = Some("fail".into());
        s.apply(&published);
        let mut dropped = event(Kind::Finished, "regen", 2, 150.0);
        dropped.outcome = Some("dropped_stale".into());
        s.apply(&dropped);
        assert_eq!(s.in_flight.len(), 1, "only 9 is left");
        assert_eq!((s.recent[0].pr, s.recent[0].latency_secs), (1, 40.0));
        assert!(s.render(200.0).contains(">fail</td><td>40.0 s</td>"));
        s.apply(&event(Kind::Finished, "publisher", 9, 160.0));
        assert_eq!(s.oldest_age(200.0), 0.0);
        // A revision whose end was missed is forgotten; a newer head replaces an older one.
        s.apply(&event(Kind::Emitted, "poller", 4, 300.0));
        s.expire(300.0 + FORGET_AFTER, FORGET_AFTER);
        assert!(s.in_flight.is_empty());
        s.apply(&event(Kind::Emitted, "poller", 5, 400.0));
        let mut newer = event(Kind::Emitted, "poller", 5, 410.0);
        newer.head = "f".repeat(40);
        s.apply(&newer);
        assert_eq!(s.in_flight.len(), 1);
    }
}
