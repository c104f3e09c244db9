//! GitHub end to end: the stages as separate processes on RabbitMQ, pull requests from a fake GitHub held to GitHub's
//! OpenAPI description, git over https with a throwaway CA, webhooks signed like GitHub's; the exact statuses, comments
//! and reactions prci leaves, `noci`, `priority-ci`, `/prci recheck`, redeliveries, forged signatures, rate limits and
//! a dead-lettered message.

#![allow(clippy::unwrap_used)] // a test harness: a panic is the failure message

mod common;

use common::{prci_bin, Killed};
use fixtures::fake_github::{self, FakeGithub};
use fixtures::remotes::HttpsRemote;
use fixtures::{Ebuild, Repo};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BROKER: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const TOKEN: &str = "ghp_prciTestToken7f3a9c";
const SECRET: &str = "webhook-secret-5e1b";
const REPORTS_URL: &str = "https://ci.example.org/prci/";

/// The world of one test: the served repository, the fake, the configuration.
struct World {
    dir: tempfile::TempDir,
    src: Repo,
    bare: PathBuf,
    github: FakeGithub,
    _remote: HttpsRemote,
    config: PathBuf,
    prefix: String,
    webhook: String,
    heads: std::collections::BTreeMap<u64, String>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits up to `secs` for `probe` to give something; panics with `what` (and the fake's calls) otherwise.
fn wait_for<T>(world: &World, secs: u64, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(found) = probe() {
            return found;
        }
        if start.elapsed() > Duration::from_secs(secs) {
            let logs: String = ["poller", "regen", "checker", "differ", "publisher"]
                .iter()
                .map(|s| {
                    format!("--- {s}\n{}\n", tail(&std::fs::read_to_string(world.dir.path().join(format!("{s}.log"))).unwrap_or_default()))
                })
                .collect();
            panic!("timed out waiting for {what}\nstate: {}\n{logs}", world.github.state());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn tail(text: &str) -> &str {
    let start = text.len().saturating_sub(4000);
    let start = (start..text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
    &text[start..]
}

impl World {
    /// Pull requests 1 (a clean package), 2 (an unknown licence), 3 (`noci`), 4 (`priority-ci`), 5 (clean).
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let src = Repo::standalone_at(&dir.path().join("src"), "demo");
        src.branch("base");
        let mut heads = std::collections::BTreeMap::new();
        for (pr, pkg, licence) in
            [(1, "good", "GPL-2"), (2, "bad", "No-Such-Licence"), (3, "skip", "GPL-2"), (4, "urgent", "GPL-2"), (5, "later", "GPL-2")]
        {
            src.switch("base");
            src.branch(&format!("pr{pr}"));
            src.switch(&format!("pr{pr}"));
            src.add_package("app-misc", pkg, "1.0", &Ebuild { license: licence.into(), ..Ebuild::default() });
            heads.insert(pr, src.commit(&format!("app-misc/{pkg}: new package")));
        }
        let bare = dir.path().join("served").join("demo.git");
        git2::Repository::init_bare(&bare).unwrap();
        src.set_ref("refs/heads/master", &src.rev_parse("base"));
        let world_bare = bare.to_str().unwrap().to_string();
        trees::push_ref(&src.git(), &world_bare, "refs/heads/master").unwrap();
        for (pr, head) in &heads {
            src.set_ref(&format!("refs/pull/{pr}/head"), head);
            trees::push_ref(&src.git(), &world_bare, &format!("refs/pull/{pr}/head")).unwrap();
        }
        let remote = HttpsRemote::start(&dir.path().join("served"), &dir.path().join("https"), None);
        let github = FakeGithub::start(&dir.path().join("github"), "gentoo", "demo", TOKEN);
        for (pr, head) in &heads {
            let labels: Vec<&str> = match pr {
                3 => vec!["noci"],
                4 => vec!["priority-ci"],
                _ => vec![],
            };
            github.upsert_pull(&json!({"number": pr, "head_sha": head, "base_ref": "master", "labels": labels}));
        }
        let token_file = dir.path().join("token");
        let secret_file = dir.path().join("secret");
        std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
        std::fs::write(&secret_file, SECRET).unwrap();
        let prefix = format!("prci-github-{}", std::process::id());
        let config = dir.path().join("prci.toml");
        let text = format!(
            "[repository]\nname = \"demo\"\nurl = \"{url}\"\n[source]\nkind = \"github\"\npoll_interval_secs = 3\n\
             [github]\napi_url = \"{api}\"\nrepository = \"gentoo/demo\"\ntoken_file = \"{token}\"\nwebhook_secret_file = \"{secret}\"\npending_refresh_secs = 1\n\
             [broker]\nurl = \"{BROKER}\"\nprefix = \"{prefix}\"\n[work]\ndir = \"{work}\"\n[reports]\ndir = \"{reports}\"\nbase_url = \"{REPORTS_URL}\"\n\
             [git]\nca_file = \"{ca}\"\n",
            url = remote.url("demo.git"),
            api = github.url,
            token = token_file.display(),
            secret = secret_file.display(),
            work = dir.path().join("work").display(),
            reports = dir.path().join("reports").display(),
            ca = remote.ca_file.display(),
        );
        std::fs::write(&config, text).unwrap();
        let webhook = format!("http://127.0.0.1:{}/webhook", free_port());
        World { dir, src, bare, github, _remote: remote, config, prefix, webhook, heads }
    }

    /// `prci run --stage <stage>` with its log in `<dir>/<stage>.log`.
    fn start(&self, stage: &str, env: &[(&str, &str)]) -> Killed {
        let log = std::fs::File::create(self.dir.path().join(format!("{stage}.log"))).unwrap();
        let mut command = Command::new(prci_bin());
        command
            .args(["--config", self.config.to_str().unwrap(), "run", "--stage", stage])
            .env("PRCI_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, v) in env {
            command.env(k, v);
        }
        Killed(command.spawn().unwrap())
    }

    fn log(&self, stage: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{stage}.log"))).unwrap_or_default()
    }

    /// prci's statuses on `sha`, newest first.
    fn statuses(&self, sha: &str) -> Vec<Value> {
        self.github.state()["statuses"][sha].as_array().cloned().unwrap_or_default()
    }

    /// The newest status on `sha` once it is in `state`.
    fn wait_status(&self, sha: &str, state: &str) -> Value {
        wait_for(self, 240, &format!("status {state} on {sha}"), || self.statuses(sha).first().filter(|s| s["state"] == state).cloned())
    }

    fn comments(&self, pr: u64) -> Vec<Value> {
        self.github.state()["comments"][pr.to_string()].as_array().cloned().unwrap_or_default()
    }

    /// The bot's comments on `pr`.
    fn prci_comments(&self, pr: u64) -> Vec<Value> {
        self.comments(pr).into_iter().filter(|c| c["user"]["login"] == "prci-bot").collect()
    }

    fn reactions(&self, comment: u64) -> Vec<Value> {
        self.github.state()["reactions"][comment.to_string()].as_array().cloned().unwrap_or_default()
    }

    /// A delivery of `event` signed with `secret` (none: no signature header); the HTTP status of the answer.
    fn deliver(&self, event: &str, delivery: &str, payload: &Value, secret: Option<&str>) -> u16 {
        let body = serde_json::to_vec(payload).unwrap();
        let mut request = ureq::post(&self.webhook)
            .set("X-GitHub-Event", event)
            .set("X-GitHub-Delivery", delivery)
            .set("Content-Type", "application/json");
        if let Some(secret) = secret {
            request = request.set("X-Hub-Signature-256", &fake_github::sign(secret.as_bytes(), &body));
        }
        match request.send_bytes(&body) {
            Ok(answer) => answer.status(),
            Err(ureq::Error::Status(code, _)) => code,
            Err(e) => panic!("webhook delivery failed: {e}"),
        }
    }

    /// A real `pull_request` payload made about pull request `pr` of this repository.
    fn pull_payload(&self, name: &str, pr: u64) -> Value {
        let mut p = fake_github::webhook_payload(name);
        p["number"] = json!(pr);
        p["pull_request"]["number"] = json!(pr);
        p["pull_request"]["head"]["sha"] = json!(self.heads[&pr]);
        p["repository"]["full_name"] = json!("gentoo/demo");
        p
    }

    /// A real `issue_comment` payload made a comment `id` by `user` on pull request `pr`.
    fn comment_payload(&self, pr: u64, id: u64, user: &str, body: &str) -> Value {
        let mut p = fake_github::webhook_payload("issue_comment.created");
        p["issue"]["number"] = json!(pr);
        p["issue"]["pull_request"] = json!({"url": format!("https://api.github.com/repos/gentoo/demo/pulls/{pr}")});
        p["comment"]["id"] = json!(id);
        p["comment"]["user"]["login"] = json!(user);
        p["comment"]["body"] = json!(body);
        p["repository"]["full_name"] = json!("gentoo/demo");
        p
    }

    /// The calls that changed prci's comment on `pr`.
    fn comment_edits(&self, pr: u64) -> usize {
        let ids: Vec<u64> = self.prci_comments(pr).iter().filter_map(|c| c["id"].as_u64()).collect();
        self.github
            .calls()
            .iter()
            .filter(|c| {
                c["method"] == "PATCH" && ids.iter().any(|id| c["path"].as_str().is_some_and(|p| p.ends_with(&format!("/comments/{id}"))))
            })
            .count()
    }

    /// The states of the statuses sent on `sha` since the calls were last reset, in order.
    fn status_posts(&self, sha: &str) -> Vec<String> {
        self.github
            .calls()
            .iter()
            .filter(|c| c["operation"] == "repos/create-commit-status" && c["path"].as_str().is_some_and(|p| p.ends_with(sha)))
            .filter(|c| c["status"].as_u64().is_some_and(|s| (200..300).contains(&s)))
            .map(|c| c["body"]["state"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Waits for a re-run of `sha` to end: pending, then a final `state`.
    fn wait_rerun(&self, sha: &str, state: &str) {
        wait_for(self, 240, &format!("the re-run of {sha}"), || {
            let posts = self.status_posts(sha);
            (posts.first().map(String::as_str) == Some("pending") && posts.last().map(String::as_str) == Some(state)).then_some(())
        });
    }

    fn report_url(&self, pr: u64) -> String {
        format!("{REPORTS_URL}{pr}/{}.html", self.heads[&pr])
    }
}

/// Publish a prepared-trees message whose trees do not exist: the checker can never scan it.
fn publish_unscannable(world: &World, pr: u64) {
    let revision = pipeline::messages::Revision {
        repository: "demo".into(),
        pr,
        head: world.heads[&pr].clone(),
        base_branch: "master".into(),
        base: world.src.rev_parse("base"),
        priority: false,
        emitted_at: pipeline::events::now(),
    };
    let prepared = pipeline::messages::PreparedTrees {
        revision,
        base: world.src.rev_parse("base"),
        base_tree: "1".repeat(40),
        merge_tree: "2".repeat(40),
        tested: "3".repeat(40),
        changed: vec!["app-misc/good/good-1.0.ebuild".into()],
        conflicts: vec![],
        masters: vec![],
        timings: vec![],
        error: None,
    };
    let out =
        pipeline::stage::Outgoing { queue: pipeline::messages::Queue::Prepared, body: pipeline::messages::encode(&prepared), priority: 0 };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(pipeline::rabbitmq::publish_once(&pipeline::rabbitmq::BrokerConfig::new(BROKER, &world.prefix), &out)).unwrap();
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default()
}

#[test]
fn pull_requests_on_github_get_one_status_and_one_edited_comment_each() {
    let mut world = World::new();
    let (hook, notices) = common::notification_hook();
    let listen = world.webhook.trim_start_matches("http://").trim_end_matches("/webhook").to_string();
    let poller = world.start("poller", &[("PRCI__HTTP__LISTEN", &listen), ("PRCI__NOTIFY__URL", &hook)]);
    let forged_id = poller_alone(&world);
    let notify = [("PRCI__NOTIFY__URL", hook.as_str())];
    let stages: Vec<Killed> = ["regen", "checker", "differ", "publisher"].iter().map(|s| world.start(s, &notify)).collect();
    first_verdicts(&world);
    a_redelivered_verdict(&world);
    a_new_push(&mut world);
    rechecks(&world, forged_id);
    rate_limited(&world);
    dead_lettered(&world, &notices);
    finally(&world, stages, poller);
}

/// The poller alone: every pull request to check is pending, priority-ci first; noci gets nothing; deliveries with a
/// forged or no signature do nothing; pull request 5 labelled noci while pending is skipped. Returns the id of a
/// comment whose forged re-run must never happen.
fn poller_alone(world: &World) -> u64 {
    for pr in [1, 2, 4, 5] {
        world.wait_status(&world.heads[&pr].clone(), "pending");
    }
    assert!(world.statuses(&world.heads[&3]).is_empty(), "a noci pull request got a status");
    // A stranger's comment that looks like prci's is never taken for it.
    world.github.add_comment(1, "mallory", &format!("{}\nfake verdict", forge::COMMENT_MARKER));
    let first_status =
        world.github.calls().into_iter().find(|c| c["method"] == "POST" && c["operation"] == "repos/create-commit-status").unwrap();
    assert!(first_status["path"].as_str().unwrap().ends_with(&world.heads[&4]), "priority-ci was not emitted first: {first_status}");

    let forged_id = world.github.add_comment(1, "writer", "/prci recheck");
    world.github.set_permission("writer", "write");
    world.github.set_permission("reader", "read");
    let forged = world.comment_payload(1, forged_id, "writer", "/prci recheck");
    assert_eq!(world.deliver("issue_comment", "d-forged", &forged, Some("not-the-secret")), 401);
    assert_eq!(world.deliver("issue_comment", "d-unsigned", &forged, None), 401);
    world.github.upsert_pull(&json!({"number": 5, "labels": ["noci"]}));
    let mut labeled = world.pull_payload("pull_request.labeled", 5);
    labeled["label"]["name"] = json!("noci");
    assert_eq!(world.deliver("pull_request", "d-label-5", &labeled, Some(SECRET)), 202);
    let skipped = world.wait_status(&world.heads[&5].clone(), "success");
    assert_eq!(skipped["description"], "checks skipped (noci)", "{skipped}");
    assert_eq!(world.deliver("ping", "d-ping", &fake_github::webhook_payload("ping"), Some(SECRET)), 202);

    forged_id
}

/// The rest of the pipeline, each stage its own process: the final statuses and one comment each.
fn first_verdicts(world: &World) {
    let (h1, h2, h4) = (world.heads[&1].clone(), world.heads[&2].clone(), world.heads[&4].clone());
    let pass = world.wait_status(&h1, "success");
    assert_eq!(pass["target_url"], world.report_url(1), "{pass}");
    let fail = world.wait_status(&h2, "failure");
    assert_eq!(fail["target_url"], world.report_url(2), "{fail}");
    world.wait_status(&h4, "success");
    for pr in [1, 2, 4] {
        // The comment follows the status.
        wait_for(world, 60, &format!("prci's comment on {pr}"), || (!world.prci_comments(pr).is_empty()).then_some(()));
    }
    std::thread::sleep(Duration::from_secs(2));
    for pr in [1, 2, 4] {
        let comments = world.prci_comments(pr);
        assert_eq!(comments.len(), 1, "pull request {pr}: {comments:?}");
    }
    assert!(world.prci_comments(2)[0]["body"].as_str().unwrap().contains("UnknownLicense"), "{:?}", world.prci_comments(2));
    let body = world.prci_comments(2)[0]["body"].as_str().unwrap().to_string();
    assert_eq!(body.lines().nth(1), Some("## Pull request CI report"), "{body}");
    assert!(body.contains(&format!("**[app-misc/bad]({}#app-misc/bad)** (1)", world.report_url(2))), "{body}");
    // While they waited, the publisher refreshed their pending statuses with the stage (and the queue position), linked
    // to the status page; the final status came after, and stayed.
    let status_page = format!("{REPORTS_URL}status.html");
    let refreshed: Vec<Value> = [1, 2, 4]
        .iter()
        .flat_map(|pr| world.statuses(&world.heads[pr]))
        .filter(|s| s["state"] == "pending" && s["target_url"] == status_page.as_str())
        .collect();
    assert!(!refreshed.is_empty(), "no pending status was refreshed: {}", world.github.state());
    for s in &refreshed {
        let d = s["description"].as_str().unwrap();
        assert!(d.starts_with("queued for the ") || d.ends_with(" running"), "{s}");
    }
    wait_for(world, 120, "the noci revision to be dropped by the publisher", || {
        world.log("publisher").contains(&format!("demo#5@{}", world.heads[&5])).then_some(())
    });
    assert_eq!(world.statuses(&world.heads[&5]).len(), 2, "pending, then skipped; nothing published for noci");
    assert!(world.prci_comments(5).is_empty() && world.prci_comments(3).is_empty());
}

/// The verdict on 2 delivered twice more (a broker redelivery, a second publisher instance): the publisher reads what
/// GitHub shows for the head and the comment, finds it already so, and writes nothing.
fn a_redelivered_verdict(world: &World) {
    let (pr, head) = (2, world.heads[&2].clone());
    let dir = world.dir.path().join("reports").join(pr.to_string());
    let report: findings::CheckReport = serde_json::from_slice(&std::fs::read(dir.join(format!("{head}.json"))).unwrap()).unwrap();
    let revision: pipeline::messages::Revision =
        serde_json::from_slice(&std::fs::read(dir.join(format!("{head}.rev.json"))).unwrap()).unwrap();
    let key = revision.key();
    let message = pipeline::messages::VerdictMessage { revision, report };
    let before = world.log("publisher").lines().filter(|l| l.contains(&key) && l.contains("nothing sent")).count();
    world.github.reset_calls();
    let out =
        pipeline::stage::Outgoing { queue: pipeline::messages::Queue::Verdicts, body: pipeline::messages::encode(&message), priority: 0 };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let broker = pipeline::rabbitmq::BrokerConfig::new(BROKER, &world.prefix);
    for _ in 0..2 {
        rt.block_on(pipeline::rabbitmq::publish_once(&broker, &out)).unwrap();
    }
    wait_for(world, 60, "the redelivered verdicts to be handled", || {
        let handled = world.log("publisher").lines().filter(|l| l.contains(&key) && l.contains("nothing sent")).count();
        (handled >= before + 2).then_some(())
    });
    let calls = world.github.calls();
    let writes: Vec<&Value> = calls.iter().filter(|c| c["method"] != "GET").collect();
    assert!(writes.is_empty(), "a redelivered verdict wrote to GitHub: {writes:?}");
    // It did look: the head's status and the pull request's comments were read for each delivery.
    let read = |operation: &str| calls.iter().filter(|c| c["operation"] == operation).count();
    assert!(read("repos/get-combined-status-for-ref") >= 2, "{calls:?}");
    assert!(read("issues/list-comments") >= 2, "{calls:?}");
    assert_eq!(world.prci_comments(pr).len(), 1);
    assert_eq!(world.statuses(&head)[0]["state"], "failure");
}

/// A new push on 2 fixes it: pending, then success on the new head; the one comment is edited, not added to.
fn a_new_push(world: &mut World) {
    world.github.reset_calls();
    world.src.switch("pr2");
    world.src.add_package("app-misc", "bad", "1.0", &Ebuild { license: "GPL-2".into(), ..Ebuild::default() });
    let fixed = world.src.commit("app-misc/bad: a licence that exists");
    world.src.set_ref("refs/pull/2/head", &fixed);
    trees::push_ref(&world.src.git(), world.bare.to_str().unwrap(), "refs/pull/2/head").unwrap();
    world.github.upsert_pull(&json!({"number": 2, "head_sha": fixed}));
    world.heads.insert(2, fixed.clone());
    let sync = world.pull_payload("pull_request.synchronize", 2);
    assert_eq!(world.deliver("pull_request", "d-sync-2", &sync, Some(SECRET)), 202);
    assert_eq!(world.deliver("pull_request", "d-sync-2", &sync, Some(SECRET)), 200, "a redelivery is not accepted twice");
    let now_passing = world.wait_status(&fixed, "success");
    assert_eq!(now_passing["target_url"], world.report_url(2));
    assert_eq!(world.prci_comments(2).len(), 1);
    wait_for(world, 60, "the comment on 2 edited", || (world.comment_edits(2) == 1).then_some(()));
    assert!(world.prci_comments(2)[0]["body"].as_str().unwrap().contains("prci: pass"), "{:?}", world.prci_comments(2));
}

/// /prci recheck: from a reader nothing; from a writer a reaction and a re-run (pending, then the final status again),
/// once; the comment, which would say the same, is left alone.
fn rechecks(world: &World, forged_id: u64) {
    let h1 = world.heads[&1].clone();
    world.github.reset_calls();
    let from_reader = world.github.add_comment(1, "reader", "/prci recheck");
    assert_eq!(
        world.deliver("issue_comment", "d-reader", &world.comment_payload(1, from_reader, "reader", "/prci recheck"), Some(SECRET)),
        202
    );
    let from_writer = world.github.add_comment(1, "writer", "please\n/prci recheck\n");
    let recheck = world.comment_payload(1, from_writer, "writer", "please\n/prci recheck\n");
    assert_eq!(world.deliver("issue_comment", "d-writer", &recheck, Some(SECRET)), 202);
    assert_eq!(world.deliver("issue_comment", "d-writer", &recheck, Some(SECRET)), 200);
    world.wait_rerun(&h1, "success");
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(world.reactions(from_writer).len(), 1, "one acknowledgement of the writer's re-run");
    assert!(world.reactions(from_reader).is_empty() && world.reactions(forged_id).is_empty(), "a reader or a forged delivery got a re-run");
    let posts = world.status_posts(&h1);
    assert_eq!(posts.iter().filter(|s| *s == "success").count(), 1, "one re-run, not two: {posts:?}");
    assert_eq!(world.comment_edits(1), 0, "the re-run's comment says what the comment says: not edited");
    world.wait_status(&h1, "success");
}

/// Rate limited for a while: everything still happens, once.
fn rate_limited(world: &World) {
    let h4 = world.heads[&4].clone();
    world.github.reset_calls();
    world.github.throttle(&json!({"status": 403, "count": 4, "reset_in": 2}));
    let again = world.github.add_comment(4, "writer", "/prci recheck");
    assert_eq!(
        world.deliver("issue_comment", "d-writer-4", &world.comment_payload(4, again, "writer", "/prci recheck"), Some(SECRET)),
        202
    );
    world.wait_rerun(&h4, "success");
    world.wait_status(&h4, "success");
    assert_eq!(world.comment_edits(4), 0, "the comment already said it");
    let throttled = world.github.calls().iter().filter(|c| c["throttled"] == true).count();
    assert_eq!(throttled, 4, "the fake's rate limit was not met");
    assert_eq!(world.reactions(again).len(), 1);
    for pr in [1, 2, 4] {
        assert_eq!(world.prci_comments(pr).len(), 1, "pull request {pr} got a second comment");
    }
}

/// A message no stage can handle: an error status on its pull request and one notice to the hook.
fn dead_lettered(world: &World, notices: &std::sync::mpsc::Receiver<Value>) {
    let h1 = world.heads[&1].clone();
    publish_unscannable(world, 1);
    let error = world.wait_status(&h1, "error");
    assert_eq!(error["description"], "the CI failed, not your pull request", "{error}");
    let notice = notices.recv_timeout(Duration::from_secs(60)).expect("the notification hook heard nothing");
    assert_eq!((notice["stage"].as_str(), notice["pr"].as_u64()), (Some("checker"), Some(1)), "{notice}");
    assert!(notices.recv_timeout(Duration::from_secs(3)).is_err(), "the hook was called twice");
}

/// What must hold over the whole run: conditional requests, no violation of the description, no secret anywhere.
fn finally(world: &World, stages: Vec<Killed>, poller: Killed) {
    // The poller's metrics carry the GitHub budget the dashboards show (the only panels a git forge leaves empty).
    let metrics = ureq::get(&world.webhook.replace("/webhook", "/metrics")).call().unwrap().into_string().unwrap();
    let budget = metrics.lines().find(|l| l.starts_with("prci_github_rate_limit_remaining ")).unwrap_or_else(|| panic!("{metrics}"));
    assert!(!budget.ends_with(" 0"), "{budget}");
    assert!(metrics.contains("prci_github_rate_limit_limit 5000"), "{metrics}");
    let fake = world.comments(1).into_iter().find(|c| c["user"]["login"] == "mallory").unwrap();
    assert!(fake["body"].as_str().unwrap().ends_with("fake verdict"), "a stranger's comment was edited: {fake}");
    // The periodic polls cost nothing while the list does not change: conditional requests answered 304.
    let unchanged = world.github.calls().iter().filter(|c| c["operation"] == "pulls/list" && c["status"] == 304).count();
    assert!(unchanged > 0, "no conditional request of the pull-request list was answered 304");
    // Every request prci sent, and every answer the fake gave, is what GitHub's description allows.
    assert_eq!(world.github.violations(), Vec::<String>::new());
    drop(stages);
    drop(poller);
    for stage in ["poller", "regen", "checker", "differ", "publisher"] {
        let log = world.log(stage);
        assert!(!log.contains(TOKEN) && !log.contains(SECRET), "a secret is in the {stage} log");
    }
    for report in files_under(&world.dir.path().join("reports")).iter().flat_map(|d| files_under(d)) {
        let text = std::fs::read_to_string(&report).unwrap_or_default();
        assert!(!text.contains(TOKEN) && !text.contains(SECRET), "a secret is in {}", report.display());
    }
    common::delete_queues(&world.prefix);
}

#[test]
fn a_github_app_gets_installation_tokens_and_renews_them_before_they_expire() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("app.pem");
    let out = Command::new("openssl").args(["genrsa", "-traditional", "-out"]).arg(&key).arg("2048").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Tokens live 35 s; octocrab renews one that has less than 30 s left.
    let github = FakeGithub::start_app(&dir.path().join("github"), "gentoo", "demo", 4242, 77, 35);
    let head = "a".repeat(40);
    github.upsert_pull(&json!({"number": 1, "head_sha": head, "base_ref": "master", "labels": ["priority-ci"]}));
    let settings = pipeline::config::GithubSettings {
        api_url: github.url.clone(),
        repository: "gentoo/demo".into(),
        app_id: Some(4242),
        app_key_file: Some(key.clone()),
        installation_id: Some(77),
        ..Default::default()
    };
    let forge = forge::github::Github::from_settings(&settings).unwrap();
    use forge::Forge;
    let pulls = forge.open_pulls("master").unwrap();
    assert_eq!((pulls.len(), pulls[0].has_label("priority-ci")), (1, true), "{pulls:?}");
    let pending = forge::Status { state: forge::State::Pending, description: "queued".into(), target_url: None };
    assert!(forge.set_status(&head, &pending).unwrap(), "the first pending status is sent");
    assert!(!forge.set_status(&head, &pending).unwrap(), "the same status is not sent again");
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(forge.pull(1).unwrap().map(|p| p.head), Some(head.clone()));
    let calls = github.calls();
    let minted = calls.iter().filter(|c| c["operation"] == "apps/create-installation-access-token").count();
    assert_eq!(minted, 2, "one token at first, one more when it was about to expire: {calls:?}");
    assert!(calls.iter().all(|c| c["status"] != 401), "a request went out with an expired token: {calls:?}");
    assert_eq!(github.violations(), Vec::<String>::new());
    // Nothing of the key reaches Debug output or errors.
    let pem = std::fs::read_to_string(&key).unwrap();
    let secret_line = pem.lines().nth(1).unwrap();
    assert!(!format!("{forge:?}").contains(secret_line));
    let bad = pipeline::config::GithubSettings { app_key_file: Some(dir.path().join("app.pem.missing")), ..settings };
    let e = forge::github::Github::from_settings(&bad).unwrap_err().to_string();
    assert!(e.contains("github.app_key_file") && !e.contains(secret_line), "{e}");
}
