//! Two hosts for real: a checker in its own network namespace, reaching the broker and the git remotes only over a veth link, does the scanning for a pipeline whose other stages run on this host.

#![allow(clippy::unwrap_used)] // a test harness: a panic is the failure message

mod common;

use common::{prci_bin, Killed};
use fixtures::{Ebuild, Repo};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A network namespace with a veth link to this host; removed on drop.
struct Host {
    name: String,
    here: Ipv4Addr,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

impl Host {
    fn new() -> Host {
        let n = std::process::id() % 200 + 20;
        let name = format!("prci-h{}", std::process::id());
        let (a, b) = (format!("vpa{n}"), format!("vpb{n}"));
        let here = Ipv4Addr::new(10, 213, n as u8, 1);
        let there = format!("10.213.{n}.2/30");
        ip(&["netns", "add", &name]);
        let host = Host { name: name.clone(), here };
        ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
        ip(&["link", "set", &b, "netns", &name]);
        ip(&["addr", "add", &format!("{here}/30"), "dev", &a]);
        ip(&["link", "set", &a, "up"]);
        ip(&["netns", "exec", &name, "ip", "addr", "add", &there, "dev", &b]);
        ip(&["netns", "exec", &name, "ip", "link", "set", &b, "up"]);
        ip(&["netns", "exec", &name, "ip", "link", "set", "lo", "up"]);
        host
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the veth pair, and with it the pair.
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// The port the second host reaches the broker on.
const BROKER_FORWARD_PORT: u16 = 5673;

/// Forward `listen` to RabbitMQ on loopback (`guest` may only log in from there). The forwarder has a port of its
/// own: a broker listening on every address (RabbitMQ's default) already holds 5672 on the host's side of the link.
fn forward_broker(listen: (Ipv4Addr, u16)) {
    let listener = TcpListener::bind(listen).expect("bind the broker forwarder");
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let Ok(upstream) = TcpStream::connect("127.0.0.1:5672") else { continue };
            let (mut a, mut b) = (conn.try_clone().unwrap(), upstream.try_clone().unwrap());
            let (mut c, mut d) = (conn, upstream);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut a, &mut b);
                let _ = b.shutdown(std::net::Shutdown::Both);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut d, &mut c);
                let _ = c.shutdown(std::net::Shutdown::Both);
            });
        }
    });
}

#[test]
fn a_checker_on_a_second_host_does_the_scanning() {
    let host = Host::new();
    forward_broker((host.here, BROKER_FORWARD_PORT));
    let r = Repo::standalone("demo");
    r.add_package("app-misc", "hello", "1.0", &Ebuild::default());
    r.commit("base");
    r.branch("broken");
    r.switch("broken");
    r.add_package("app-misc", "hello", "1.0", &Ebuild { keywords: "~amd64 ~nosucharch".into(), ..Ebuild::default() });
    let head = r.commit("broken");
    r.set_ref("refs/pull/1/head", &head);
    r.switch("master");

    let dir = tempfile::tempdir().unwrap();
    let trees = dir.path().join("trees.git");
    git2::Repository::init_bare(&trees).unwrap();
    // The git remotes, served over the link only.
    // git-daemon itself, not the `git daemon` wrapper, whose child would outlive the kill.
    let exec_path = Command::new("git").arg("--exec-path").output().expect("git --exec-path");
    let git_daemon = Path::new(String::from_utf8_lossy(&exec_path.stdout).trim()).join("git-daemon");
    let _daemon = Killed(
        Command::new(git_daemon)
            .args([
                "--reuseaddr",
                "--export-all",
                "--enable=receive-pack",
                "--base-path=/",
                &format!("--listen={}", host.here),
                "--port=9418",
                "/",
            ])
            .spawn()
            .expect("git daemon"),
    );
    let config = dir.path().join("prci.toml");
    std::fs::write(
        &config,
        format!(
            "[repository]\nname = \"demo\"\nurl = \"{}\"\n[source]\npoll_interval_secs = 1\n[work]\ndir = \"{}\"\n[reports]\ndir = \"{}\"\n[trees]\nurl = \"{}\"\n",
            r.path().display(),
            dir.path().join("work-here").display(),
            dir.path().join("reports").display(),
            trees.display()
        ),
    )
    .unwrap();
    let prefix = format!("prci-hosts-{}", std::process::id());
    let here = |stage: &str| {
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
    // The second host: only the link's addresses, its own work dir.
    let git_url = |p: &Path| format!("git://{}{}", host.here, p.display());
    let there = Killed(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &host.name,
                &prci_bin().display().to_string(),
                "--config",
                &config.display().to_string(),
                "run",
                "--stage",
                "checker",
            ])
            .env("PRCI__BROKER__URL", format!("amqp://guest:guest@{}:{BROKER_FORWARD_PORT}/%2f", host.here))
            .env("PRCI__BROKER__PREFIX", &prefix)
            .env("PRCI__REPOSITORY__URL", git_url(r.path()))
            .env("PRCI__TREES__URL", git_url(&trees))
            .env("PRCI__WORK__DIR", dir.path().join("work-there"))
            .env("PRCI_LOG", "warn")
            .spawn()
            .unwrap(),
    );
    let _stages: Vec<Killed> = ["publisher", "differ", "regen", "poller"].into_iter().map(here).collect();
    let report = dir.path().join("reports").join("1").join(format!("{head}.json"));
    let start = Instant::now();
    while !report.exists() {
        assert!(start.elapsed() < Duration::from_secs(180), "no report: the second host did not do the scanning");
        std::thread::sleep(Duration::from_millis(500));
    }
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(doc["verdict"], "fail", "{doc}");
    assert_eq!(doc["new"][0]["__class__"], "UnknownKeywords");
    // The scanning happened there: its work dir holds the checked-out trees, this host's has none.
    assert!(dir.path().join("work-there").join("repos").exists());
    assert!(std::fs::read_dir(dir.path().join("work-here/repos")).unwrap().flatten().all(|e| !e.path().join("checker").exists()));
    drop(there);
}
