//! Dead letters on the machine's real RabbitMQ: a message that kills its consumer on every delivery is dead-lettered by prci on the last delivery the broker permits (announced, an error verdict), and `prci dead-letters list|replay` shows dead letters in place and moves them back.

#![allow(clippy::unwrap_used)] // a test harness: a panic is the failure message

mod common;

use pipeline::messages::{self, Queue, Revision, VerdictMessage};
use pipeline::rabbitmq::{self, BrokerConfig};
use pipeline::stage::{Handled, Outgoing, RetryPolicy, Stage, StageError};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The notification hook is process-wide: the tests that dead-letter take turns.
static HOOK_USERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The exit code of a consumer process that "dies" on a message.
const DIED: i32 = 3;

/// Set in the child processes: the broker prefix their consumer works under.
const CHILD_PREFIX: &str = "PRCI_TEST_DYING_CONSUMER_PREFIX";

/// A stage whose process dies on every message (in a child process), or that counts the messages it is given.
struct Dies {
    calls: AtomicU32,
    in_child: bool,
}
impl Stage for Dies {
    fn name(&self) -> &'static str {
        "dies"
    }
    fn input(&self) -> Queue {
        Queue::Revisions
    }
    fn handle(&self, _body: &[u8]) -> Result<Handled, StageError> {
        if self.in_child {
            // No ack, no close: the process is gone, as when a tool brings the consumer down.
            std::process::exit(DIED);
        }
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(Handled::default())
    }
}

/// Refuses every message for good.
struct Refuses;
impl Stage for Refuses {
    fn name(&self) -> &'static str {
        "refuses"
    }
    fn input(&self) -> Queue {
        Queue::Revisions
    }
    fn handle(&self, _body: &[u8]) -> Result<Handled, StageError> {
        Err(StageError::Permanent("refused on purpose".into()))
    }
}

fn revision(pr: u64) -> Revision {
    Revision {
        repository: "test".into(),
        pr,
        head: format!("{:0<40}", format!("c0ffee{pr}")),
        base_branch: "master".into(),
        base: "b".repeat(40),
        priority: false,
        emitted_at: 0.0,
    }
}

const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn config(what: &str) -> BrokerConfig {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    BrokerConfig::new(URL, &format!("prci-test-{what}-{}-{nanos}", std::process::id()))
}

/// Deletes the test's queues when dropped, failed or not.
struct Cleanup(String);
impl Drop for Cleanup {
    fn drop(&mut self) {
        // A runtime of its own, off the test's async thread.
        let prefix = self.0.clone();
        let _ = std::thread::spawn(move || common::delete_queues(&prefix)).join();
    }
}

async fn depth(cfg: &BrokerConfig, name: &str) -> u32 {
    rabbitmq::message_count(cfg, name).await.unwrap()
}

async fn wait_for_depth(cfg: &BrokerConfig, name: &str, want: u32) {
    let start = Instant::now();
    while depth(cfg, name).await != want {
        assert!(start.elapsed() < Duration::from_secs(30), "{name} never held {want} (holds {})", depth(cfg, name).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn hook_settings(url: &str) -> pipeline::Settings {
    let mut settings = pipeline::Settings::default();
    settings.notify.url = Some(url.to_owned());
    settings
}

/// Not a test of its own: the consumer process `a_message_that_kills_its_consumer_…` starts again and again. Its stage
/// exits the process on the message it is given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a child process of another test"]
async fn child_consumer_that_dies_on_every_message() {
    let Ok(prefix) = std::env::var(CHILD_PREFIX) else { return };
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let stage = Arc::new(Dies { calls: AtomicU32::new(0), in_child: true });
    rabbitmq::run_consumer(BrokerConfig::new(URL, &prefix), stage, RetryPolicy::default(), rx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_kills_its_consumer_is_dead_lettered_by_prci_and_announced() {
    let _turn = HOOK_USERS.lock().await;
    let cfg = config("dies");
    let _cleanup = Cleanup(cfg.prefix.clone());
    let poison = messages::encode(&revision(42));
    rabbitmq::publish_once(&cfg, &Outgoing { queue: Queue::Revisions, body: poison.clone(), priority: 0 }).await.unwrap();

    // One consumer process after another takes the message and dies on it: the broker redelivers it each time.
    for death in 1..=cfg.delivery_limit {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_consumer_that_dies_on_every_message", "--ignored", "--test-threads=1", "--quiet"])
            .env(CHILD_PREFIX, &cfg.prefix)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("consumer process {death} did not die on the message: did prci give up on it too early?");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(status.code(), Some(DIED), "consumer process {death}");
    }
    // The broker would give it once more; it has not dead-lettered it by itself.
    assert_eq!(depth(&cfg, &Queue::Revisions.dead_letter_name(&cfg.prefix)).await, 0);
    assert_eq!(depth(&cfg, &Queue::Revisions.name(&cfg.prefix)).await, 1);

    // A consumer (this process) takes that last delivery: it does not run the stage on it, it gives up, loudly.
    let (url, calls) = common::notification_hook();
    pipeline::notify::configure(&hook_settings(&url));
    let completed = || pipeline::metrics::get().completed.with_label_values(&["dies", "dead_lettered"]).get();
    let before = completed();
    let stage = Arc::new(Dies { calls: AtomicU32::new(0), in_child: false });
    let (tx, rx) = tokio::sync::watch::channel(false);
    let consumer = tokio::spawn(rabbitmq::run_consumer(cfg.clone(), stage.clone(), RetryPolicy::default(), rx));
    let call = calls.recv_timeout(Duration::from_secs(30)).expect("the notification hook is called");
    wait_for_depth(&cfg, &Queue::Revisions.dead_letter_name(&cfg.prefix), 1).await;
    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), consumer).await.expect("the consumer stops on shutdown").unwrap();
    pipeline::notify::configure(&pipeline::Settings::default());

    assert_eq!(stage.calls.load(Ordering::SeqCst), 0, "the stage did not run on the message again");
    assert_eq!(
        (call["event"].as_str(), call["stage"].as_str(), call["queue"].as_str()),
        (Some("dead_letter"), Some("dies"), Some("revisions"))
    );
    assert_eq!((call["pr"].as_u64(), call["head"].as_str()), (Some(42), Some(revision(42).head.as_str())));
    let error = call["error"].as_str().unwrap();
    assert!(error.contains(&format!("redelivered {} times", cfg.delivery_limit)) && error.contains("consumer died"), "{error}");
    assert!(calls.recv_timeout(Duration::from_secs(1)).is_err(), "exactly one notification");
    assert_eq!(completed() - before, 1, "counted as dead_lettered");

    // It is in `<queue>.dead`, dead-lettered by prci (a reject), not by the broker's delivery limit.
    let dead = rabbitmq::peek_dead_letters(&cfg, Queue::Revisions).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].body.clone(), dead[0].reason.as_deref()), (poison, Some("rejected")));
    // And its pull request gets an error verdict.
    let verdicts = rabbitmq::take_all(&cfg, &Queue::Verdicts.name(&cfg.prefix)).await.unwrap();
    assert_eq!(verdicts.len(), 1);
    let verdict: VerdictMessage = messages::decode(&verdicts[0]).unwrap();
    assert_eq!((verdict.revision.pr, verdict.report.verdict), (42, findings::Verdict::Error));
    assert!(verdict.report.reason.contains("not your pull request") && verdict.report.reason.contains("redelivered"));
}

fn prci(cfg_file: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["--config", cfg_file.to_str().unwrap(), "dead-letters"];
    all.extend_from_slice(args);
    let out = common::Prci::new().run(&all);
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_in_place_and_replayed_to_the_queue_they_died_in() {
    let _turn = HOOK_USERS.lock().await;
    let cfg = config("replay");
    let _cleanup = Cleanup(cfg.prefix.clone());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prci.toml");
    std::fs::write(&file, format!("[broker]\nurl = \"{URL}\"\nprefix = \"{}\"\n", cfg.prefix)).unwrap();
    let (work, priority, dead) =
        (Queue::Revisions.name(&cfg.prefix), Queue::Revisions.priority_name(&cfg.prefix), Queue::Revisions.dead_letter_name(&cfg.prefix));

    // Two revisions a stage refuses for good, one of them priority-ci: both dead-lettered.
    let (tx, rx) = tokio::sync::watch::channel(false);
    let consumer = tokio::spawn(rabbitmq::run_consumer(cfg.clone(), Arc::new(Refuses), RetryPolicy::default(), rx));
    let urgent = Revision { priority: true, ..revision(2) };
    let bodies = [messages::encode(&revision(1)), messages::encode(&urgent)];
    for (body, prio) in bodies.iter().zip([0, urgent.broker_priority()]) {
        rabbitmq::publish_once(&cfg, &Outgoing { queue: Queue::Revisions, body: body.clone(), priority: prio }).await.unwrap();
    }
    wait_for_depth(&cfg, &dead, 2).await;
    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), consumer).await.expect("the consumer stops").unwrap();

    // `list` shows both, twice (nothing consumed), and leaves them.
    for _ in 0..2 {
        let (code, out, err) = prci(&file, &["list"]);
        assert_eq!(code, 0, "{err}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        // The consumer took the priority-ci one first: no order is promised, both are there.
        for (pr, head) in [("#1", &revision(1).head[..12]), ("#2", &urgent.head[..12])] {
            let line = lines.iter().find(|l| l.contains(pr)).unwrap_or_else(|| panic!("{pr} not listed: {out}"));
            assert!(line.starts_with("revisions") && line.contains(head) && line.contains("rejected"), "{out}");
        }
        assert_eq!(lines[2], "2 dead letters");
        assert_eq!(depth(&cfg, &dead).await, 2, "list leaves them in place");
    }
    let (code, out, _) = prci(&file, &["list", "--json", "--queue", "revisions"]);
    assert_eq!(code, 0);
    let docs: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut docs = docs.as_array().unwrap().clone();
    docs.sort_by_key(|d| d["pr"].as_u64());
    assert_eq!(docs.iter().map(|d| d["pr"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2]);
    assert_eq!((docs[0]["reason"].as_str(), docs[0]["from"].as_str()), (Some("rejected"), Some(work.as_str())));
    assert_eq!((docs[1]["from"].as_str(), docs[1]["head"].as_str()), (Some(priority.as_str()), Some(urgent.head.as_str())));
    assert!(docs.iter().all(|d| d["age_secs"].as_u64().is_some_and(|a| a < 120)), "{out}");
    let (code, out, _) = prci(&file, &["list", "--queue", "prepared"]);
    assert_eq!((code, out.as_str()), (0, "0 dead letters\n"));

    // `replay` wants to be told how many; then moves both back where they died.
    let (code, _, err) = prci(&file, &["replay"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(depth(&cfg, &dead).await, 2);
    let (code, out, err) = prci(&file, &["replay", "--count", "1"]);
    assert_eq!((code, out.trim()), (0, "moved 1 dead letter back to their work queues"), "{err}");
    assert_eq!((depth(&cfg, &dead).await, depth(&cfg, &work).await + depth(&cfg, &priority).await), (1, 1));
    let (code, out, err) = prci(&file, &["replay", "--all"]);
    assert_eq!((code, out.trim()), (0, "moved 1 dead letter back to their work queues"), "{err}");
    assert_eq!((depth(&cfg, &dead).await, depth(&cfg, &work).await, depth(&cfg, &priority).await), (0, 1, 1));
    assert_eq!(rabbitmq::take_all(&cfg, &work).await.unwrap(), [bodies[0].clone()]);
    assert_eq!(rabbitmq::take_all(&cfg, &priority).await.unwrap(), [bodies[1].clone()]);

    // A body no stage can read stays where it is, said so.
    let (tx, rx) = tokio::sync::watch::channel(false);
    let consumer = tokio::spawn(rabbitmq::run_consumer(cfg.clone(), Arc::new(Refuses), RetryPolicy::default(), rx));
    rabbitmq::publish_once(&cfg, &Outgoing { queue: Queue::Revisions, body: b"{not json".to_vec(), priority: 0 }).await.unwrap();
    wait_for_depth(&cfg, &dead, 1).await;
    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), consumer).await.expect("the consumer stops").unwrap();
    let (code, out, _) = prci(&file, &["list"]);
    assert!(code == 0 && out.contains("body not JSON, 9 bytes"), "{out}");
    let (code, out, err) = prci(&file, &["replay", "--all"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("moved 0 dead letters") && out.contains("left 1 in place"), "{out}");
    assert!(err.contains(&dead) && err.contains("not valid JSON"), "{err}");
    assert_eq!((depth(&cfg, &dead).await, depth(&cfg, &work).await), (1, 0));
}

#[test]
fn dead_letters_need_a_broker() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prci.toml");
    std::fs::write(&file, "[broker]\nprefix = \"prci\"\n").unwrap();
    for args in [&["list"][..], &["replay", "--all"]] {
        let (code, _, err) = prci(&file, args);
        assert_eq!(code, 64, "{err}");
        assert!(err.contains("broker.url"), "{err}");
    }
    // A prefix with no queues on the broker is said so, not listed as empty.
    std::fs::write(&file, format!("[broker]\nurl = \"{URL}\"\nprefix = \"prci-test-nothing-{}\"\n", std::process::id())).unwrap();
    let (code, _, err) = prci(&file, &["list"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("has no queue") && err.contains("broker.prefix"), "{err}");
}
