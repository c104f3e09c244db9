//! Harness shared by the end-to-end tests: run the real `prci` binary with its own work dir and read its report.

#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `target/<profile>/prci`, built by the test command before the tests run.
pub fn prci_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("prci");
    assert!(bin.is_file(), "{} is missing: run `cargo build --workspace --bins` first (README's test command does)", bin.display());
    bin
}

/// One isolated prci: its own work dir, extra environment.
pub struct Prci {
    pub work: tempfile::TempDir,
    pub env: Vec<(String, String)>,
}

impl Prci {
    pub fn new() -> Prci {
        Prci { work: tempfile::Builder::new().prefix("prci-work-").tempdir().expect("work dir"), env: vec![] }
    }

    pub fn with_env(mut self, key: &str, value: &str) -> Prci {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run prci")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(prci_bin());
        cmd.args(args).env("PRCI__WORK__DIR", self.work.path()).env_remove("PRCI_LOG");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// `prci check --json`; returns the exit code and the report.
    pub fn check(&self, repo: &Path, base: &str, head: &str, extra: &[&str]) -> (i32, Value) {
        let (code, report, _) = self.check_logged(repo, base, head, extra);
        (code, report)
    }

    /// `prci check --json` with `PRCI_LOG=info`; returns the exit code, the report and the log (stderr).
    pub fn check_logged(&self, repo: &Path, base: &str, head: &str, extra: &[&str]) -> (i32, Value, String) {
        let repo = repo.display().to_string();
        let mut args = vec!["check", "--json", "--repo", &repo, "--base", base, "--head", head];
        args.extend_from_slice(extra);
        let mut cmd = self.command(&args);
        if !self.env.iter().any(|(k, _)| k == "PRCI_LOG") {
            cmd.env("PRCI_LOG", "info");
        }
        let out = cmd.output().expect("run prci");
        let code = out.status.code().unwrap_or(-1);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!("prci check printed no report ({e}); exit {code}\nstdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr))
        });
        (code, report, String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `Class@location` of every finding in one list of a report, sorted.
pub fn summary(report: &Value, list: &str) -> Vec<String> {
    let mut out: Vec<String> = report[list]
        .as_array()
        .unwrap_or_else(|| panic!("report has no {list}: {report}"))
        .iter()
        .map(|f| {
            let s = |k: &str| f.get(k).and_then(Value::as_str);
            let loc = match (s("category"), s("package"), s("version"), s("eclass")) {
                (Some(c), Some(p), Some(v), _) => format!("{c}/{p}-{v}"),
                (Some(c), Some(p), None, _) => format!("{c}/{p}"),
                (Some(c), None, _, _) => c.to_owned(),
                (_, _, _, Some(e)) => format!("eclass/{e}"),
                _ => "repository".to_owned(),
            };
            format!("{}@{loc}", s("__class__").unwrap_or("?"))
        })
        .collect();
    out.sort();
    out
}

/// Whether any process's command line mentions `needle` (for "nothing left behind").
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return found };
    for e in entries.flatten() {
        if let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(needle) {
                found.push(format!("{}: {text}", e.file_name().to_string_lossy()));
            }
        }
    }
    found
}

/// A hook on 127.0.0.1 that answers 200 to every POST and hands over each request's JSON body.
pub fn notification_hook() -> (String, std::sync::mpsc::Receiver<Value>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port on 127.0.0.1");
    let url = format!("http://{}/prci-hook", listener.local_addr().expect("a bound listener's address"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let _ = reader.get_mut().write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = tx.send(serde_json::from_slice(&body).unwrap_or(Value::Null));
        }
    });
    (url, rx)
}

/// A child process killed (and reaped) when dropped: a stage, a server, whatever a test started.
pub struct Killed(pub std::process::Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Delete what a test declared on the machine's RabbitMQ under `prefix`: every work, priority and dead-letter queue,
/// the dead-letter exchanges, the cancel and events exchanges. An unreachable broker leaves them (nothing to fail on).
pub fn delete_queues(prefix: &str) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
    rt.block_on(async {
        let cfg = pipeline::rabbitmq::BrokerConfig::new("amqp://guest:guest@127.0.0.1:5672/%2f", prefix);
        let Ok(conn) = pipeline::rabbitmq::connect(&cfg).await else { return };
        let Ok(ch) = conn.create_channel().await else { return };
        for q in pipeline::messages::Queue::ALL {
            for name in [q.name(prefix), q.priority_name(prefix), q.dead_letter_name(prefix)] {
                let _ = ch.queue_delete(name.as_str().into(), Default::default()).await;
            }
            let _ = ch.exchange_delete(q.dead_letter_exchange(prefix).as_str().into(), Default::default()).await;
        }
        for exchange in [pipeline::rabbitmq::cancel_exchange(prefix), pipeline::rabbitmq::events_exchange(prefix)] {
            let _ = ch.exchange_delete(exchange.as_str().into(), Default::default()).await;
        }
    });
}
