//! git's network transports end to end, through prci's own `trees` functions: an https remote behind a private CA that wants a token, an ssh remote that wants a key and a known host key, and remotes that accept a connection and never answer, stopped by the silence timeout instead of hanging a stage.

mod common;

use common::prci_bin;
use fixtures::remotes::{HttpsRemote, SilentRemote, SshRemote};
use fixtures::{Ebuild, Repo};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;
use trees::transport::{self, Transport};

/// The transport settings are process-wide (as libgit2's are): one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn transport(connect_secs: u64, silence_secs: u64) -> Transport {
    Transport {
        connect_timeout: Duration::from_secs(connect_secs),
        low_speed_timeout: Duration::from_secs(silence_secs),
        ..Transport::default()
    }
}

/// A bare repository `<root>/repo.git` holding a fixture repository's `master`; its commit.
fn served_repository(root: &Path) -> (PathBuf, git2::Oid) {
    let src = Repo::standalone_at(&root.join("src"), "gentoo");
    let bare = root.join("served").join("repo.git");
    git2::Repository::init_bare(&bare).expect("bare repository");
    trees::push_ref(&src.git(), bare.to_str().expect("utf-8 path"), "refs/heads/master").expect("local push");
    (bare, git2::Oid::from_str(&src.head()).expect("head"))
}

/// What a remote at `url` serves and accepts, through the configured transport: its refs listed, its `master`
/// fetched into a new repository, and a ref pushed back.
fn fetch_and_push(url: &str, work: &Path, bare: &Path, head: git2::Oid) {
    let refs = trees::list_refs(url).unwrap_or_else(|e| panic!("list {url}: {e}"));
    assert!(refs.contains(&("refs/heads/master".to_string(), head)), "{refs:?}");
    let local = git2::Repository::init_bare(work).expect("local repository");
    trees::fetch_refspecs(&local, url, &["+refs/heads/master:refs/heads/master".to_string()])
        .unwrap_or_else(|e| panic!("fetch {url}: {e}"));
    assert_eq!(local.refname_to_id("refs/heads/master").expect("fetched"), head);
    local.reference("refs/prci/pushed", head, true, "test").expect("local ref");
    trees::push_ref(&local, url, "refs/prci/pushed").unwrap_or_else(|e| panic!("push {url}: {e}"));
    let served = git2::Repository::open_bare(bare).expect("served repository");
    assert_eq!(served.refname_to_id("refs/prci/pushed").expect("pushed ref on the remote"), head);
}

#[test]
fn https_needs_the_configured_ca_and_token_and_then_fetches_and_pushes() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().expect("temp dir");
    let (bare, head) = served_repository(dir.path());
    let token = "prci-test-token-5be1";
    let remote = HttpsRemote::start(&dir.path().join("served"), &dir.path().join("https"), Some(token));
    let url = remote.url("repo.git");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{token}\n")).expect("token file");

    // The server's certificate is signed by a CA the system does not know: refused, and not retried.
    let retries = transport::retries();
    transport::configure(&Transport { https_token_file: Some(token_file.clone()), ..transport(5, 10) });
    let e = trees::list_refs(&url).expect_err("a certificate no configured CA signed");
    assert!(e.message().contains("certificate"), "{e}");
    assert_eq!(transport::retries(), retries, "a certificate error is not transient");

    // With the CA: listed, fetched, pushed (the token sent when the server asks).
    transport::configure(&Transport {
        ca_file: Some(remote.ca_file.clone()),
        https_token_file: Some(token_file.clone()),
        ..transport(5, 10)
    });
    fetch_and_push(&url, &dir.path().join("local"), &bare, head);

    // A wrong token: an authentication error at once, without the token in it.
    std::fs::write(&token_file, "not-the-token\n").expect("token file");
    let e = trees::list_refs(&url).expect_err("a token the server refuses");
    assert!(!e.message().contains(token) && !e.message().contains("not-the-token"), "{e}");
    assert_eq!(transport::retries(), retries, "an authentication error is not transient");
}

#[test]
fn ssh_needs_the_key_and_a_known_host_key_and_then_fetches_and_pushes() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().expect("temp dir");
    let (bare, head) = served_repository(dir.path());
    let remote = SshRemote::start(&dir.path().join("ssh"));
    let url = remote.url(&bare);

    let with_hosts = |hosts: &Path| Transport {
        ssh_key_file: Some(remote.key_file.clone()),
        ssh_known_hosts_file: Some(hosts.to_path_buf()),
        ..transport(5, 10)
    };
    transport::configure(&with_hosts(&remote.known_hosts_file));
    fetch_and_push(&url, &dir.path().join("local"), &bare, head);

    // The same host under another key (as after a man in the middle): refused.
    let other = dir.path().join("other_known_hosts");
    let line = std::fs::read_to_string(&remote.known_hosts_file).expect("known hosts");
    let (host, _) = line.split_once(' ').expect("a known hosts line");
    let other_key = "AAAAC3NzaC1lZDI1NTE5AAAAIHBhZGRpbmctcGFkZGluZy1wYWRkaW5nLXBhZGRpbmc=";
    std::fs::write(&other, format!("{host} ssh-ed25519 {other_key}\n")).expect("known hosts");
    transport::configure(&with_hosts(&other));
    let e = trees::list_refs(&url).expect_err("a host key not in the known hosts file");
    assert_eq!(e.code(), git2::ErrorCode::Certificate, "{e}");
}

#[test]
fn a_remote_that_never_answers_fails_at_the_silence_timeout_after_retries() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().expect("temp dir");
    let (key, hosts) = (dir.path().join("id"), dir.path().join("known_hosts"));
    std::fs::write(&key, "unused: no ssh handshake ever starts\n").expect("key file");
    std::fs::write(&hosts, "[127.0.0.1]:1 ssh-ed25519 AAAA\n").expect("known hosts");
    transport::configure(&Transport { ssh_key_file: Some(key), ssh_known_hosts_file: Some(hosts), ..transport(2, 2) });
    let silent = SilentRemote::start();
    for scheme in ["https", "ssh"] {
        let url = silent.url(scheme);
        let retries = transport::retries();
        let (tx, rx) = std::sync::mpsc::channel();
        let listing = url.clone();
        std::thread::spawn(move || {
            let _ = tx.send(trees::list_refs(&listing).map(|_| ()).map_err(|e| e.to_string()));
        });
        // Without a timeout this waits forever; with it, three attempts of 2 s and two pauses (1 s, 4 s).
        let result = rx.recv_timeout(Duration::from_secs(120)).unwrap_or_else(|_| panic!("{url}: still waiting after 120 s"));
        assert!(result.is_err(), "{url}: {result:?}");
        assert_eq!(transport::retries() - retries, 2, "{url}: a silent remote is a transient failure, tried three times");
    }
}

#[test]
fn the_pipeline_takes_its_pull_requests_over_https_with_the_configured_ca_and_token() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().expect("temp dir");
    // A repository whose pull request 1 adds a package with a licence that does not exist.
    let src = Repo::standalone_at(&dir.path().join("src"), "gentoo");
    let base = src.head();
    src.add_package("app-misc", "hello", "1.0", &Ebuild { license: "No-Such-Licence".into(), ..Ebuild::default() });
    let pr = src.commit("app-misc/hello: new package");
    src.set_ref("refs/pull/1/head", &pr);
    src.set_ref("refs/heads/master", &base);
    let bare = dir.path().join("served").join("repo.git");
    git2::Repository::init_bare(&bare).expect("bare repository");
    for refname in ["refs/heads/master", "refs/pull/1/head"] {
        trees::push_ref(&src.git(), bare.to_str().expect("utf-8 path"), refname).expect("local push");
    }
    let token = "prci-pipeline-token-9d2c";
    let remote = HttpsRemote::start(&dir.path().join("served"), &dir.path().join("https"), Some(token));
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, token).expect("token file");
    let reports = dir.path().join("reports");
    let config = dir.path().join("prci.toml");
    let write = |url: &str, git: &str| {
        let text = format!(
            "[repository]\nname = \"demo\"\nurl = \"{url}\"\n[work]\ndir = \"{}\"\n[reports]\ndir = \"{}\"\n[git]\n{git}\n",
            dir.path().join("work").display(),
            reports.display()
        );
        std::fs::write(&config, text).expect("config");
    };
    let run =
        || Command::new(prci_bin()).args(["--config", config.to_str().expect("utf-8"), "run", "--until-idle"]).output().expect("run prci");

    // An ssh URL with no key configured: refused at start-up, naming the key.
    write("ssh://git@127.0.0.1:1/repo.git", "");
    let out = run();
    assert_eq!(out.status.code(), Some(64), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("git.ssh_key_file"), "{}", String::from_utf8_lossy(&out.stderr));

    // Over https with the CA and the token: the pull request is listed, fetched, checked and reported.
    let git = format!("ca_file = \"{}\"\nhttps_token_file = \"{}\"", remote.ca_file.display(), token_file.display());
    write(&remote.url("repo.git"), &git);
    let out = run();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(!stdout.contains(token) && !stderr.contains(token), "the token leaked into the output");
    let report_dir = reports.join("1");
    let report = std::fs::read_dir(&report_dir)
        .unwrap_or_else(|e| panic!("no report of pull request 1 ({e}): {stderr}"))
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(&format!("{pr}.json")))
        .map(|e| serde_json::from_slice::<serde_json::Value>(&std::fs::read(e.path()).expect("report")).expect("json"))
        .unwrap_or_else(|| panic!("no report for {pr}: {stderr}"));
    assert_eq!(report["verdict"], "fail", "{report}");
    assert!(report.to_string().contains("UnknownLicense"), "{report}");

    // Without the CA the same run fails (a one-shot run whose poll failed is a failed run), instead of passing idle.
    write(&remote.url("repo.git"), &format!("https_token_file = \"{}\"", token_file.display()));
    let out = run();
    assert!(!out.status.success(), "a remote whose certificate cannot be verified was polled without error");
}
