//! Observing a running pipeline for real: the five stages as processes on RabbitMQ, each serving `/metrics`, scraped by
//! a real Prometheus (Debian's, on this host) with prci's alert rules loaded. Every dashboard query returns data (the
//! GitHub-fed ones are checked against the fake in `github.rs`), a dead letter and a stopped stage make their alerts
//! fire, health and the status page tell what runs.

#![allow(clippy::unwrap_used)] // a test harness: a panic is the failure message

mod common;

use common::{prci_bin, Killed};
use fixtures::{Ebuild, Repo};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BROKER: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const STAGES: [&str; 5] = ["poller", "regen", "checker", "differ", "publisher"];

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Debian's Prometheus (`.ci/test` installs the `prometheus` package), or `$PRCI_TEST_PROMETHEUS`.
fn prometheus_bin() -> PathBuf {
    let bin = std::env::var_os("PRCI_TEST_PROMETHEUS").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/bin/prometheus"));
    assert!(bin.is_file(), "{} is missing: install Debian's prometheus package (.ci/test does)", bin.display());
    bin
}

/// A repository with three pull requests: a clean package, a broken keyword, a fix.
fn repository() -> Repo {
    let r = Repo::standalone("demo");
    r.add_package("app-misc", "hello", "1.0", &Ebuild::default());
    r.add_package("dev-libs", "libdemo", "1.0", &Ebuild { license: "NoSuchLicense".into(), ..Ebuild::default() });
    r.commit("base");
    let pulls = [
        ("clean", "app-misc", "other", Ebuild::default()),
        ("broken", "app-misc", "hello", Ebuild { keywords: "~amd64 ~nosucharch".into(), ..Ebuild::default() }),
        ("fixing", "dev-libs", "libdemo", Ebuild::default()),
    ];
    for (n, (name, cat, pkg, ebuild)) in pulls.into_iter().enumerate() {
        r.switch("master");
        r.branch(name);
        r.switch(name);
        r.add_package(cat, pkg, "1.0", &ebuild);
        let sha = r.commit(name);
        r.set_ref(&format!("refs/pull/{}/head", n + 1), &sha);
    }
    r.switch("master");
    r
}

/// GET `url`: status and body.
fn get(url: &str) -> (u16, String) {
    match ureq::get(url).timeout(Duration::from_secs(10)).call() {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

fn wait_until(secs: u64, what: &str, mut probe: impl FnMut() -> bool) {
    let start = Instant::now();
    while !probe() {
        assert!(start.elapsed() < Duration::from_secs(secs), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// One PromQL query against Prometheus: its result list.
fn query(prometheus: &str, expr: &str) -> Vec<Value> {
    let answer: Value = ureq::get(&format!("{prometheus}/api/v1/query"))
        .query("query", expr)
        .timeout(Duration::from_secs(20))
        .call()
        .unwrap_or_else(|e| panic!("query {expr}: {e}"))
        .into_json()
        .unwrap();
    assert_eq!(answer["status"], "success", "{expr}: {answer}");
    answer["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// The alerts Prometheus has pending or firing, by name and stage.
fn alerts(prometheus: &str) -> Vec<(String, String)> {
    let answer: Value = ureq::get(&format!("{prometheus}/api/v1/alerts")).call().unwrap().into_json().unwrap();
    answer["data"]["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| (a["labels"]["alertname"].as_str().unwrap_or("").to_string(), a["labels"]["stage"].as_str().unwrap_or("").to_string()))
        .collect()
}

/// Prometheus scraping `targets` every second, with prci's alert rules (their `for:` cut to nothing, so a condition
/// fires at once; the expressions are the shipped ones).
fn start_prometheus(dir: &Path, targets: &[String]) -> (Killed, String) {
    let rules = std::fs::read_to_string(project().join("compose/prometheus/alerts.yml")).unwrap();
    let rules: String = rules.lines().map(|l| if l.trim_start().starts_with("for:") { "" } else { l }).collect::<Vec<_>>().join("\n");
    std::fs::write(dir.join("alerts.yml"), rules).unwrap();
    let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: ['{}']\n\
         scrape_configs:\n  - job_name: prci\n    static_configs:\n      - targets: [{}]\n",
        dir.join("alerts.yml").display(),
        targets.join(", ")
    );
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new(prometheus_bin())
        .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    wait_until(60, "Prometheus to be ready", || get(&format!("{url}/-/ready")).0 == 200);
    (Killed(child), url)
}

/// Every dashboard query, as `(file, panel, expression)` with the template variables filled in.
fn dashboard_queries() -> Vec<(String, String, String)> {
    let script = project().join("prci-tests/fixtures/check_dashboards.py");
    let out = Command::new("python3").arg(&script).arg(project().join("dashboards")).arg("--list-queries").output().unwrap();
    assert!(out.status.success(), "check_dashboards.py: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.splitn(4, '\t').collect();
            (f.len() == 4).then(|| (f[0].to_string(), f[1].to_string(), f[3].to_string()))
        })
        .collect()
}

/// The test's queues and exchanges on the shared broker, deleted however the test ends.
struct Queues(String);
impl Drop for Queues {
    fn drop(&mut self) {
        common::delete_queues(&self.0);
    }
}

/// The five stages, each a process with its own `/metrics` address, on the broker under `prefix`.
fn start_stages(dir: &Path, repo: &Path, prefix: &str) -> (Vec<(&'static str, Killed)>, Vec<String>) {
    let config = dir.join("prci.toml");
    let text = format!(
        "[repository]\nname = \"demo\"\nurl = \"{}\"\n[source]\npoll_interval_secs = 1\n[broker]\nurl = \"{BROKER}\"\nprefix = \"{prefix}\"\n\
         [work]\ndir = \"{}\"\n[reports]\ndir = \"{}\"\n",
        repo.display(),
        dir.join("work").display(),
        dir.join("reports").display()
    );
    std::fs::write(&config, text).unwrap();
    let mut processes = Vec::new();
    let mut addresses = Vec::new();
    for stage in STAGES {
        let address = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.join(format!("{stage}.log"))).unwrap();
        let child = Command::new(prci_bin())
            .args(["--config", config.to_str().unwrap(), "run", "--stage", stage])
            .env("PRCI__HTTP__LISTEN", &address)
            .env("PRCI_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        processes.push((stage, Killed(child)));
        addresses.push(address);
    }
    (processes, addresses)
}

/// The first value of a one-series query, as a number.
fn value(prometheus: &str, expr: &str) -> Option<f64> {
    query(prometheus, expr).first().and_then(|r| r["value"][1].as_str()).and_then(|v| v.parse().ok())
}

/// Every dashboard panel has data (the GitHub budget only on a GitHub forge: github.rs).
fn every_dashboard_query_has_data(prometheus: &str) {
    let queries = dashboard_queries();
    assert!(queries.len() >= 20, "{} queries", queries.len());
    let empty = || -> Vec<String> {
        queries
            .iter()
            .filter(|(_, _, expr)| !expr.contains("prci_github_"))
            .filter(|(_, _, expr)| query(prometheus, expr).is_empty())
            .map(|(file, panel, expr)| format!("{file}: {panel}: {expr}"))
            .collect()
    };
    // A scrape of a busy stage can miss its 1 s deadline on a loaded machine: asked again for up to a minute.
    let start = Instant::now();
    let mut missing = empty();
    while !missing.is_empty() && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_secs(2));
        missing = empty();
    }
    assert!(missing.is_empty(), "dashboard queries without data:\n{}", missing.join("\n"));
}

/// The status page, once every verdict is in: three verdicts, nothing in flight, and the gauge back at 0.
fn the_status_page_has_every_verdict(reports: &Path, prometheus: &str) {
    wait_until(60, "the status page to list three verdicts and nothing in flight", || {
        let Ok(text) = std::fs::read(reports.join("status.json")) else { return false };
        let Ok(status) = serde_json::from_slice::<Value>(&text) else { return false };
        let mut prs: Vec<u64> = status["recent"].as_array().into_iter().flatten().filter_map(|d| d["pr"].as_u64()).collect();
        prs.sort_unstable();
        prs == [1, 2, 3] && status["in_flight"].as_object().is_some_and(|m| m.is_empty())
    });
    let page = std::fs::read_to_string(reports.join("status.html")).unwrap();
    let verdicts = &page[page.find("Last verdicts").unwrap()..];
    assert!(verdicts.contains("href=\"1/") && verdicts.contains("href=\"3/"), "{page}");
    wait_until(30, "the oldest unpublished age back at 0", || {
        value(prometheus, "max(prci_oldest_unpublished_revision_age_seconds)") == Some(0.0)
    });
}

#[test]
fn prometheus_sees_every_stage_and_every_dashboard_query_returns_data() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repository();
    let queues = Queues(format!("prci-observe-{}", std::process::id()));
    let (mut processes, addresses) = start_stages(dir.path(), repo.path(), &queues.0);
    // Prometheus from the start: it sees every stage from its first message.
    let (_prometheus, prometheus) = start_prometheus(dir.path(), &addresses);
    for address in &addresses {
        wait_until(60, &format!("{address} to be ready"), || get(&format!("http://{address}/health/ready")).0 == 200);
        assert_eq!(get(&format!("http://{address}/health/live")).0, 200);
    }
    let reports = dir.path().join("reports");
    wait_until(300, "a report of each pull request", || (1..=3).all(|pr| reports.join(pr.to_string()).is_dir()));
    // Non-zero throughput and latency for each of the five stages.
    for stage in ["regen", "checker", "differ", "publisher"] {
        let done = format!("sum(prci_messages_completed_total{{stage=\"{stage}\",outcome=\"ok\"}})");
        wait_until(30, &format!("{stage}'s throughput in Prometheus"), || value(&prometheus, &done).is_some_and(|v| v >= 3.0));
        let timed = format!("sum(prci_message_processing_seconds_sum{{stage=\"{stage}\"}})");
        assert!(value(&prometheus, &timed).is_some_and(|v| v > 0.0), "{stage}: no processing time");
    }
    assert!(value(&prometheus, "sum(prci_revisions_emitted_total)").is_some_and(|v| v >= 3.0), "the poller emitted nothing");
    assert!(value(&prometheus, "sum(prci_end_to_end_latency_seconds_count)").is_some_and(|v| v >= 3.0), "no end-to-end latency");
    every_dashboard_query_has_data(&prometheus);
    the_status_page_has_every_verdict(&reports, &prometheus);

    // A message no stage can read: the dead-letter alert fires.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let cfg = pipeline::rabbitmq::BrokerConfig::new(BROKER, &queues.0);
    let garbage = pipeline::stage::Outgoing { queue: pipeline::messages::Queue::Revisions, body: b"garbage".to_vec(), priority: 0 };
    rt.block_on(pipeline::rabbitmq::publish_once(&cfg, &garbage)).unwrap();
    wait_until(60, "the dead-letter alert", || alerts(&prometheus).iter().any(|(name, _)| name == "PrciDeadLetter"));

    // A stage stopped on purpose: its alert fires, naming it, and no other.
    let at = processes.iter().position(|(s, _)| *s == "differ").unwrap();
    drop(processes.remove(at));
    let no_consumer = |stage: &str| alerts(&prometheus).contains(&("PrciStageWithoutConsumers".into(), stage.into()));
    wait_until(60, "the no-consumer alert for the differ", || no_consumer("differ"));
    for stage in ["regen", "checker", "publisher"] {
        assert!(!no_consumer(stage), "{stage}: {:?}", alerts(&prometheus));
    }
}

#[test]
fn the_alert_rules_pass_their_promtool_tests_and_the_dashboards_their_structural_check() {
    let rules = project().join("compose/prometheus");
    let promtool = prometheus_bin().with_file_name("promtool");
    for args in [vec!["check", "rules", "alerts.yml"], vec!["test", "rules", "alerts_test.yml"], vec!["check", "config", "prometheus.yml"]]
    {
        let out = Command::new(&promtool).args(&args).current_dir(&rules).output().unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let dashboards = project().join("dashboards");
    let out = Command::new("python3").arg(project().join("prci-tests/fixtures/check_dashboards.py")).arg(&dashboards).output().unwrap();
    assert!(out.status.success(), "check_dashboards.py: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // The JSON files are what generate.py makes.
    let out = Command::new("python3").arg(dashboards.join("generate.py")).arg("--check").output().unwrap();
    assert!(
        out.status.success(),
        "dashboards/generate.py --check: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_variable_the_compose_files_set_is_a_real_key_and_their_config_file_loads() {
    let compose = project().join("compose");
    let example = std::fs::read_to_string(compose.join("prci.example.toml")).unwrap();
    let mut checked = 0;
    for file in ["compose.yaml", "worker.yaml", "github.yaml", "test/forge.yaml", "test/slow-checker.yaml"] {
        let text = std::fs::read_to_string(compose.join(file)).unwrap();
        for (at, _) in text.match_indices("PRCI__") {
            let name: String = text[at..].chars().take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_').collect();
            let parts: Vec<&str> = name.trim_start_matches("PRCI__").splitn(2, "__").collect();
            let [section, key] = parts[..] else { continue };
            if section == "SECTION" || key.is_empty() {
                continue; // the comment explaining the convention, or a prefix named in prose
            }
            let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
            let body = example.split(&format!("[{section}]\n")).nth(1).unwrap_or_else(|| panic!("{file}: {name}: no [{section}]"));
            let body = body.split("\n[").next().unwrap_or("");
            let documented = body.lines().any(|l| l.trim_start_matches("# ").starts_with(&format!("{key} =")));
            assert!(documented, "{file}: {name} sets {section}.{key}, which prci.example.toml does not document");
            checked += 1;
        }
    }
    assert!(checked >= 10, "{checked} variables");
    // The configuration file every stage's container mounts loads as it is.
    let out = Command::new(prci_bin()).args(["--config", compose.join("prci.toml").to_str().unwrap(), "check", "--help"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let settings = pipeline::Settings::load(Some(&compose.join("prci.toml"))).unwrap();
    assert_eq!(settings.repository.name, "gentoo");
}
