//! The whole pipeline end to end: single-process mode on in-process queues, and the five stages as separate processes on the machine's RabbitMQ.

#![allow(clippy::unwrap_used)] // a test harness: a panic is the failure message

mod common;

use common::{prci_bin, Killed};
use fixtures::{Ebuild, Repo};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A repository with four pull requests: clean (1), broken (2), fixing (3), conflicting (4).
fn repo_with_pulls() -> Repo {
    let r = Repo::standalone("demo");
    r.add_package("app-misc", "hello", "1.0", &Ebuild::default());
    r.add_package("dev-libs", "libdemo", "1.0", &Ebuild { license: "NoSuchLicense".into(), ..Ebuild::default() });
    r.commit("base");
    type Changes<'a> = Vec<(&'a str, &'a str, Ebuild)>;
    let pulls: [(&str, Changes); 4] = [
        ("clean", vec![("app-misc", "other", Ebuild::default())]),
        ("broken", vec![("app-misc", "hello", Ebuild { keywords: "~amd64 ~nosucharch".into(), ..Ebuild::default() })]),
        ("fixing", vec![("dev-libs", "libdemo", Ebuild::default())]),
        (
            "conflicting",
            vec![("app-misc", "hello", Ebuild { description: "A description master changes too".into(), ..Ebuild::default() })],
        ),
    ];
    for (n, (name, changes)) in pulls.into_iter().enumerate() {
        r.switch("master");
        r.branch(name);
        r.switch(name);
        for (cat, pkg, e) in &changes {
            r.add_package(cat, pkg, "1.0", e);
        }
        let sha = r.commit(name);
        r.set_ref(&format!("refs/pull/{}/head", n + 1), &sha);
    }
    r.switch("master");
    r.add_package("app-misc", "hello", "1.0", &Ebuild { description: "Master's own description".into(), ..Ebuild::default() });
    r.commit("master moves on");
    r
}

fn write_config(dir: &Path, repo: &Path) -> PathBuf {
    let path = dir.join("prci.toml");
    let text = format!(
        "[repository]\nname = \"demo\"\nurl = \"{}\"\n\n[source]\npoll_interval_secs = 1\n\n[work]\ndir = \"{}\"\n\n[reports]\ndir = \"{}\"\n",
        repo.display(),
        dir.join("work").display(),
        dir.join("reports").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The report of pull request `pr` (there is exactly one per head).
fn report(reports: &Path, pr: u64) -> Option<Value> {
    let dir = reports.join(pr.to_string());
    let entry = std::fs::read_dir(dir).ok()?.flatten().find(|e| {
        let n = e.file_name().to_string_lossy().into_owned();
        n.ends_with(".json") && !n.ends_with(".rev.json")
    })?;
    serde_json::from_slice(&std::fs::read(entry.path()).ok()?).ok()
}

fn classes(report: &Value, list: &str) -> Vec<String> {
    report[list].as_array().unwrap().iter().map(|f| f["__class__"].as_str().unwrap().to_owned()).collect()
}

fn check_reports(reports: &Path) {
    let r1 = report(reports, 1).expect("report of PR 1");
    assert_eq!(r1["verdict"], "pass", "{r1}");
    let r2 = report(reports, 2).expect("report of PR 2");
    assert_eq!(r2["verdict"], "fail", "{r2}");
    assert_eq!(classes(&r2, "new"), ["UnknownKeywords"]);
    let r3 = report(reports, 3).expect("report of PR 3");
    assert_eq!(r3["verdict"], "pass", "{r3}");
    assert_eq!(classes(&r3, "fixed"), ["UnknownLicense"]);
    let r4 = report(reports, 4).expect("report of PR 4");
    assert_eq!(r4["verdict"], "fail", "{r4}");
    assert_eq!(r4["conflicts"], serde_json::json!(["app-misc/hello/hello-1.0.ebuild"]));
    // The page has an anchor per package with new issues, and the index links every report.
    let head2 = r2["head"].as_str().unwrap();
    let page = std::fs::read_to_string(reports.join("2").join(format!("{head2}.html"))).unwrap();
    assert!(page.contains("id=\"app-misc/hello\""), "no anchor in the page");
    let index = std::fs::read_to_string(reports.join("index.html")).unwrap();
    assert!(index.contains(&format!("2/{head2}.html")), "index does not link PR 2");
}

#[test]
fn configured_pkgcheck_arguments_keep_every_verdict_in_the_pipeline() {
    // Checks that run by default anyway, named through the configuration: pkgcheck then also runs them in
    // the repository pass, which must neither hide the new issue of PR 2 nor the fix of PR 3.
    let r = repo_with_pulls();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), r.path());
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[checker]\npkgcheck_args = [\"--checks=+KeywordsCheck,+LicenseCheck\", \"--keywords=-DoubleEmptyLine\"]\n");
    std::fs::write(&config, text).unwrap();
    let out = Command::new(prci_bin()).args(["--config", &config.display().to_string(), "run", "--until-idle"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    check_reports(&dir.path().join("reports"));
}

#[test]
fn single_process_mode_processes_every_pull_request() {
    let r = repo_with_pulls();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), r.path());
    let out = Command::new(prci_bin()).args(["--config", &config.display().to_string(), "run", "--until-idle"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("index.html"));
    check_reports(&dir.path().join("reports"));
    // A second run finds nothing new to do and writes nothing again.
    let before = std::fs::metadata(dir.path().join("reports/index.html")).unwrap().modified().unwrap();
    let out = Command::new(prci_bin()).args(["--config", &config.display().to_string(), "run", "--until-idle"]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(std::fs::metadata(dir.path().join("reports/index.html")).unwrap().modified().unwrap(), before);
}

fn sigterm(child: &Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

#[test]
fn five_stages_as_separate_processes_on_rabbitmq() {
    let r = repo_with_pulls();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), r.path());
    let prefix = format!("prci-e2e-{}", std::process::id());
    let spawn = |stage: &str| {
        Killed(
            Command::new(prci_bin())
                .args(["--config", &config.display().to_string(), "run", "--stage", stage])
                .env("PRCI__BROKER__URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
                .env("PRCI__BROKER__PREFIX", &prefix)
                .env("PRCI_LOG", "warn")
                .spawn()
                .unwrap(),
        )
    };
    let stages: Vec<Killed> = ["publisher", "differ", "checker", "regen", "poller"].into_iter().map(spawn).collect();
    // A malformed message on the differ's queue: dead-lettered, and the differ keeps working.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let cfg = pipeline::rabbitmq::BrokerConfig::new("amqp://guest:guest@127.0.0.1:5672/%2f", &prefix);
    let garbage = pipeline::stage::Outgoing {
        queue: pipeline::messages::Queue::Scanned,
        body: b"{\"schema\": 1, \"body\": 42}".to_vec(),
        priority: 0,
    };
    rt.block_on(pipeline::rabbitmq::publish_once(&cfg, &garbage)).expect("publish a malformed message");
    let reports = dir.path().join("reports");
    let start = Instant::now();
    while (1..=4).any(|pr| report(&reports, pr).is_none()) {
        assert!(start.elapsed() < Duration::from_secs(240), "the pipeline did not finish");
        std::thread::sleep(Duration::from_millis(500));
    }
    check_reports(&reports);
    let dead = rt.block_on(pipeline::rabbitmq::take_all(&cfg, &pipeline::messages::Queue::Scanned.dead_letter_name(&prefix))).unwrap();
    assert_eq!(dead, vec![garbage.body.clone()], "the malformed message is in the dead-letter queue");
    for s in &stages {
        sigterm(&s.0);
    }
    for mut s in stages {
        let status = wait_timeout(&mut s.0, Duration::from_secs(30)).expect("stage did not exit on SIGTERM");
        assert!(status.success(), "a stage exited with {status}");
    }
    common::delete_queues(&prefix);
}

fn wait_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

#[test]
fn a_second_host_reuses_the_base_results_of_the_first() {
    let r = Repo::standalone("demo");
    r.add_package("app-misc", "hello", "1.0", &Ebuild::default());
    r.commit("base");
    r.branch("one");
    r.switch("one");
    r.add_package("app-misc", "hello", "1.0", &Ebuild { keywords: "~amd64 ~nosucharch".into(), ..Ebuild::default() });
    let one = r.commit("one");
    r.set_ref("refs/pull/1/head", &one);
    r.switch("master");
    let dir = tempfile::tempdir().unwrap();
    let trees = dir.path().join("shared-trees.git");
    let run_host = |host: &str| {
        let host_dir = dir.path().join(host);
        std::fs::create_dir_all(&host_dir).unwrap();
        let config = write_config(&host_dir, r.path());
        let out = Command::new(prci_bin())
            .args(["--config", &config.display().to_string(), "run", "--until-idle"])
            .env("PRCI__TREES__URL", trees.display().to_string())
            .env("PRCI_LOG", "info")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let first = run_host("host-a");
    assert!(!first.contains("base results from the shared cache"), "{first}");
    // A second pull request on the same base, touching the same package, checked on another host.
    r.branch("two");
    r.switch("two");
    r.add_package("app-misc", "hello", "1.0", &Ebuild { license: "NoSuchLicense".into(), ..Ebuild::default() });
    let two = r.commit("two");
    r.set_ref("refs/pull/2/head", &two);
    r.switch("master");
    let second = run_host("host-b");
    assert!(second.contains("base results from the shared cache"), "{second}");
    let line = second.lines().rfind(|l| l.contains("base results cache")).unwrap_or_else(|| panic!("{second}"));
    assert!(line.contains("misses=0"), "the second host scanned the base: {line}");
    let r2 = report(&dir.path().join("host-b/reports"), 2).expect("report of PR 2");
    assert_eq!(classes(&r2, "new"), ["UnknownLicense"]);
}

/// A pkgcheck named `slow-pkgcheck-<name>` that takes `delay` seconds longer than the real one on each scan (the
/// sandbox shows it nothing it could write to announce itself: a scan in progress is seen in the process list).
fn slow_pkgcheck(dir: &Path, name: &str, delay: u32) -> PathBuf {
    let real = fixtures::pkgcheck_path();
    let shim = dir.join(format!("slow-pkgcheck-{name}"));
    let text = format!("#!/bin/sh\ncase \"$*\" in *scan*) sleep {delay};; esac\nexec '{real}' \"$@\"\n", real = real.display());
    std::fs::write(&shim, text).unwrap();
    std::fs::set_permissions(&shim, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    shim
}

#[test]
fn two_checkers_share_the_work_and_a_killed_one_loses_nothing() {
    let r = repo_with_pulls();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), r.path());
    let prefix = format!("prci-kill-{}", std::process::id());
    let spawn = |stage: &str, pkgcheck: Option<&Path>| {
        let mut c = Command::new(prci_bin());
        c.args(["--config", &config.display().to_string(), "run", "--stage", stage])
            .env("PRCI__BROKER__URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
            .env("PRCI__BROKER__PREFIX", &prefix)
            .env("PRCI_LOG", "warn");
        if let Some(p) = pkgcheck {
            c.env("PRCI__TOOLS__PKGCHECK", p);
        }
        Killed(c.spawn().unwrap())
    };
    let mut checker_a = spawn("checker", Some(&slow_pkgcheck(dir.path(), "scanning-a", 4)));
    let checker_b = spawn("checker", Some(&slow_pkgcheck(dir.path(), "scanning-b", 1)));
    let others: Vec<Killed> = ["publisher", "differ", "regen", "poller"].into_iter().map(|s| spawn(s, None)).collect();
    let start = Instant::now();
    while common::processes_mentioning("slow-pkgcheck-scanning-a").is_empty() {
        assert!(start.elapsed() < Duration::from_secs(120), "checker A never started a scan");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Checker A is in the middle of a job: kill it without warning.
    checker_a.0.kill().unwrap();
    checker_a.0.wait().unwrap();
    let reports = dir.path().join("reports");
    while (1..=4).any(|pr| report(&reports, pr).is_none()) {
        assert!(start.elapsed() < Duration::from_secs(300), "a job was lost");
        std::thread::sleep(Duration::from_millis(500));
    }
    // Checker A was killed in its first scan: every report is checker B's.
    check_reports(&reports);
    for pr in 1..=4 {
        let jsons = std::fs::read_dir(reports.join(pr.to_string())).unwrap().flatten().filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.ends_with(".json") && !n.ends_with(".rev.json")
        });
        assert_eq!(jsons.count(), 1, "PR {pr} has more than one report");
    }
    // Nothing checker A started is still running.
    std::thread::sleep(Duration::from_millis(500));
    let left = common::processes_mentioning("slow-pkgcheck-scanning-a");
    assert!(left.is_empty(), "left behind by the killed checker: {left:?}");
    drop(checker_b);
    drop(others);
    common::delete_queues(&prefix);
}

#[test]
fn a_superseded_revision_is_dropped_and_never_published_over_a_newer_one() {
    use pipeline::messages::{self, Revision, VerdictMessage};
    use pipeline::stage::Stage;
    let r = repo_with_pulls();
    let dir = tempfile::tempdir().unwrap();
    let mut settings = pipeline::Settings::default();
    settings.repository.name = "demo".into();
    settings.repository.url = r.path().display().to_string();
    settings.work.dir = dir.path().join("work");
    settings.reports.dir = dir.path().join("reports");
    let old_head = r.rev_parse("refs/pull/2/head");
    let rev = |head: &str, at: f64| Revision {
        repository: "demo".into(),
        pr: 2,
        head: head.into(),
        base_branch: "master".into(),
        base: r.rev_parse("master"),
        priority: false,
        emitted_at: at,
    };
    // The pull request gets a newer head.
    r.switch("broken");
    r.add_package("app-misc", "hello", "1.0", &Ebuild::default());
    let new_head = r.commit("broken: fixed after review");
    r.set_ref("refs/pull/2/head", &new_head);
    r.switch("master");

    let regen = regen::stage::RegenStage::from_settings(&settings).unwrap();
    let handled = regen.handle(&messages::encode(&rev(&old_head, 1.0))).unwrap();
    assert!(handled.publish.is_empty(), "regen prepared a superseded revision");
    let handled = regen.handle(&messages::encode(&rev(&new_head, 2.0))).unwrap();
    assert_eq!(handled.publish.len(), 1, "regen dropped the current revision");

    // The checker drops it too, should it arrive there.
    let checker = checker::stage::CheckerStage::from_settings(&settings).unwrap();
    let stale = pipeline::messages::PreparedTrees {
        revision: rev(&old_head, 1.0),
        base: r.rev_parse("master"),
        base_tree: "c".repeat(40),
        merge_tree: "d".repeat(40),
        tested: "e".repeat(40),
        changed: vec!["app-misc/hello/hello-1.0.ebuild".into()],
        conflicts: vec![],
        masters: vec![],
        timings: vec![],
        error: None,
    };
    assert!(checker.handle(&messages::encode(&stale)).unwrap().publish.is_empty(), "the checker scanned a superseded revision");

    // The publisher never writes the older revision's report once the newer one is written.
    let publisher = publisher::stage::PublisherStage::new(
        publisher::reports::ReportStore::new(settings.reports.dir.clone()),
        &settings.reports.base_url,
    );
    let report = |head: &str| findings::CheckReport::error("demo", &"b".repeat(40), head, "test");
    publisher.handle(&messages::encode(&VerdictMessage { revision: rev(&new_head, 2.0), report: report(&new_head) })).unwrap();
    publisher.handle(&messages::encode(&VerdictMessage { revision: rev(&old_head, 1.0), report: report(&old_head) })).unwrap();
    assert!(settings.reports.dir.join("2").join(format!("{new_head}.json")).exists());
    assert!(!settings.reports.dir.join("2").join(format!("{old_head}.json")).exists(), "a superseded revision was published");
}

/// A pkgcheck whose scans of a tree holding `app-misc/hello/files/slow` first sleep for an hour (`sleep <marker>` in
/// the process list), then run the real one.
fn pkgcheck_slow_on_marked_tree(dir: &Path, marker: &str) -> PathBuf {
    let real = fixtures::pkgcheck_path();
    let python = real.parent().unwrap().join("python3");
    let shim = dir.join("slow-when-marked-pkgcheck");
    let text = format!(
        r##"#!{python}
import os, subprocess, sys
REAL = {real:?}
args = sys.argv[1:]
if "scan" in args and "-r" in args and os.path.exists(os.path.join(args[args.index("-r") + 1], "app-misc/hello/files/slow")):
    subprocess.run(["/usr/bin/sleep", "{marker}"])
os.execv(REAL, [REAL] + args)
"##,
        python = python.display(),
        real = real.display().to_string(),
    );
    std::fs::write(&shim, text).unwrap();
    std::fs::set_permissions(&shim, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    shim
}

#[test]
fn a_newer_head_stops_the_scan_of_the_older_one_in_another_process_and_nothing_is_published_for_it() {
    let r = Repo::standalone("demo");
    // Head A of pull request 1 makes every scan of its merge tree hang for an hour.
    r.branch("a");
    r.switch("a");
    r.add_package("app-misc", "hello", "1.0", &Ebuild::default());
    r.write("app-misc/hello/files/slow", "the test's pkgcheck sleeps on trees holding this file\n");
    let head_a = r.commit("app-misc/hello: new package (slow to scan)");
    r.set_ref("refs/pull/1/head", &head_a);
    r.switch("master");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), r.path());
    let prefix = format!("prci-cancel-{}", std::process::id());
    let marker = format!("{}.{}", 3600, std::process::id());
    let shim = pkgcheck_slow_on_marked_tree(dir.path(), &marker);
    let spawn = |stage: &str| {
        let mut c = Command::new(prci_bin());
        c.args(["--config", &config.display().to_string(), "run", "--stage", stage])
            .env("PRCI__BROKER__URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
            .env("PRCI__BROKER__PREFIX", &prefix)
            .env("PRCI__TOOLS__PKGCHECK", &shim)
            .env("PRCI_LOG", "warn");
        Killed(c.spawn().unwrap())
    };
    let stages: Vec<Killed> = ["checker", "publisher", "differ", "regen", "poller"].into_iter().map(spawn).collect();
    let start = Instant::now();
    while common::processes_mentioning(&marker).is_empty() {
        assert!(start.elapsed() < Duration::from_secs(180), "the scan of head A never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Mid-scan, the pull request gets head B (without the file): the poller sees it within a second.
    r.branch("b");
    r.switch("b");
    r.add_package("app-misc", "hello", "1.0", &Ebuild { description: "Head B".into(), ..Ebuild::default() });
    let head_b = r.commit("app-misc/hello: new package");
    r.set_ref("refs/pull/1/head", &head_b);
    r.switch("master");
    let pushed = Instant::now();
    // The checker process is told by the broker and kills the scan: gone long before its hour.
    while !common::processes_mentioning(&marker).is_empty() {
        assert!(pushed.elapsed() < Duration::from_secs(90), "the scan of the superseded head is still running");
        std::thread::sleep(Duration::from_millis(100));
    }
    let reports = dir.path().join("reports").join("1");
    let report_of = |head: &str| reports.join(format!("{head}.json"));
    while !report_of(&head_b).is_file() {
        assert!(pushed.elapsed() < Duration::from_secs(240), "no report for head B");
        std::thread::sleep(Duration::from_millis(200));
    }
    let report: Value = serde_json::from_slice(&std::fs::read(report_of(&head_b)).unwrap()).unwrap();
    assert_eq!(report["head"], head_b.as_str(), "{report}");
    assert!(!report_of(&head_a).exists(), "a report was published for the superseded head");
    drop(stages);
    common::delete_queues(&prefix);
}

#[test]
fn a_dead_lettered_message_reaches_the_notification_hook_once_and_stays_in_the_dead_letter_queue() {
    let r = Repo::standalone("demo");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), r.path());
    let prefix = format!("prci-notify-{}", std::process::id());
    let (hook, notices) = common::notification_hook();
    let regen = Killed(
        Command::new(prci_bin())
            .args(["--config", &config.display().to_string(), "run", "--stage", "regen"])
            .env("PRCI__BROKER__URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
            .env("PRCI__BROKER__PREFIX", &prefix)
            .env("PRCI__NOTIFY__URL", &hook)
            .env("PRCI_LOG", "warn")
            .spawn()
            .unwrap(),
    );
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let cfg = pipeline::rabbitmq::BrokerConfig::new("amqp://guest:guest@127.0.0.1:5672/%2f", &prefix);
    let garbage =
        pipeline::stage::Outgoing { queue: pipeline::messages::Queue::Revisions, body: b"{\"not\": \"a revision\"}".to_vec(), priority: 0 };
    rt.block_on(pipeline::rabbitmq::publish_once(&cfg, &garbage)).unwrap();
    let notice = notices.recv_timeout(Duration::from_secs(120)).expect("no notice reached the hook");
    assert_eq!(notice["event"], "dead_letter", "{notice}");
    assert_eq!((notice["stage"].as_str(), notice["queue"].as_str()), (Some("regen"), Some("revisions")), "{notice}");
    assert!(notice["error"].as_str().is_some_and(|e| !e.is_empty()), "{notice}");
    assert_eq!(notice["link"], "http://localhost:8080/", "{notice}");
    // The message itself is kept for the operator, and told about once.
    let dead = pipeline::messages::Queue::Revisions.dead_letter_name(&prefix);
    let mut kept = Vec::new();
    let start = Instant::now();
    while kept.is_empty() && start.elapsed() < Duration::from_secs(30) {
        kept = rt.block_on(pipeline::rabbitmq::take_all(&cfg, &dead)).unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(kept, vec![garbage.body.clone()]);
    assert!(notices.recv_timeout(Duration::from_secs(2)).is_err(), "a second notice for one message");
    drop(regen);
    common::delete_queues(&prefix);
}
