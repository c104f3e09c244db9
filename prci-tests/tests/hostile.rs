//! Hostile pull requests with the real tools: ebuilds whose global scope attacks the host, and trees whose files point
//! out of themselves. Each is contained: nothing outside changes, no secret is read, no connection opens, nothing is
//! left running, the verdict names what happened, and the next pull request's results equal a fresh run's.

#![allow(clippy::unwrap_used)] // a test harness: a panic is the failure message

mod common;

use common::{prci_bin, processes_mentioning, summary, Prci};
use fixtures::{Ebuild, Repo};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const SECRET: &str = "prci-hostile-secret-7f3a";

fn base_repo() -> Repo {
    let r = Repo::standalone("test");
    r.add_package("app-misc", "foo", "1.0", &Ebuild::default());
    r.add_package("dev-libs", "lib", "1.0", &Ebuild::default());
    r.commit("Add packages");
    r
}

/// A pull request branch `name` off master adding `cat/pkg-1.0` whose global scope runs `body`.
fn pull(r: &Repo, name: &str, packages: &[(&str, &str)]) {
    r.switch("master");
    r.branch(name);
    r.switch(name);
    for (pkg, body) in packages {
        r.add_package("app-misc", pkg, "1.0", &Ebuild { body: format!("{body}\n"), ..Ebuild::default() });
    }
    r.commit(name);
    r.switch("master");
}

/// Every regular file under `dir` whose content contains `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(meta) = e.path().symlink_metadata() else { continue };
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.is_file()
                && meta.len() < 64 << 20
                && std::fs::read(e.path()).is_ok_and(|b| String::from_utf8_lossy(&b).contains(needle))
            {
                found.push(e.path());
            }
        }
    }
    found
}

/// Every path under `dir` whose file name is `name`.
fn files_named(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_name() == name {
                found.push(e.path());
            }
            if e.path().symlink_metadata().is_ok_and(|m| m.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    found
}

fn without_timings(mut report: Value) -> Value {
    let o = report.as_object_mut().unwrap();
    o.remove("timings");
    report
}

#[test]
fn a_hostile_pull_request_changes_nothing_outside_reads_no_secret_and_opens_no_connection() {
    let r = base_repo();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let prci = Prci::new().with_env("PRCI_TEST_SECRET", SECRET);
    let work = prci.work.path().to_path_buf();
    let outside = tempfile::tempdir().unwrap();
    let id = std::process::id();
    let venv = fixtures::pkgcheck_path().parent().unwrap().parent().unwrap().to_path_buf();
    let targets: Vec<PathBuf> = vec![
        work.join(format!("pwned-{id}")),
        work.join("repos").join(format!("pwned-{id}")),
        outside.path().join("pwned"),
        venv.join(format!("pwned-{id}")),
        PathBuf::from(format!("/tmp/prci-pwned-{id}")),
        PathBuf::from(format!("/var/tmp/prci-pwned-{id}")),
        PathBuf::from(format!("/etc/prci-pwned-{id}")),
    ];
    let writes: String = targets.iter().map(|t| format!("echo pwned > {} 2>/dev/null; ", t.display())).collect();
    let marker = format!("{}.{}", 88_000 + id % 1000, 9);
    pull(
        &r,
        "hostile",
        &[
            // (a) writes outside its tree, and into the tree through every path it could know.
            ("writer", &format!("{writes} for d in {work}/*/ {work}/*/*/ {work}/*/*/*/; do echo pwned > \"$d/pwned-{id}\" 2>/dev/null; done; true", work = work.display())),
            // (b) remounts. (pkgcore bans commands looked up on PATH in global scope; absolute paths run.)
            ("remount", "/usr/bin/mount -o remount,rw / 2>/dev/null; /usr/bin/mount -o remount,rw /usr 2>/dev/null; true"),
            // (c) reads the host's and the service's environment into its metadata (published with the md5-cache).
            ("reader", "HOMEPAGE=\"https://example.com/$(/usr/bin/cat /proc/1/environ /proc/$PPID/environ /proc/*/environ 2>/dev/null | /usr/bin/tr -c 'a-z0-9-' _ | /usr/bin/head -c 4000)\""),
            // (d) connects to the broker's and another local port.
            ("connect", &format!("(exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null; (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null && echo CONNECTED-5672 >&2; true")),
            // (h) leaves a detached process behind.
            ("detach", &format!("/usr/bin/setsid /usr/bin/sleep {marker} </dev/null >/dev/null 2>&1 &")),
        ],
    );
    let (code, report, log) = prci.check_logged(r.path(), "master", "hostile", &[]);
    assert_ne!(report["verdict"], "error", "{report}\n{log}");
    assert!(code == 0 || code == 1, "{report}");
    for t in &targets {
        assert!(!t.exists(), "{} was written", t.display());
    }
    let written = files_named(&work, &format!("pwned-{id}"));
    assert!(written.is_empty(), "the work dir was written: {written:?}");
    assert!(files_containing(&work, SECRET).is_empty(), "the service's environment was read: {:?}", files_containing(&work, SECRET));
    assert!(!report.to_string().contains(SECRET));
    assert!(matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock), "a connection was opened");
    assert!(!log.contains("CONNECTED-5672"), "{log}");
    assert!(processes_mentioning(&marker).is_empty(), "left running: {:?}", processes_mentioning(&marker));

    // The next pull request on this host gets the results a fresh host gives.
    pull(&r, "benign", &[("benign", "")]);
    let (_, after) = prci.check(r.path(), "master", "benign", &[]);
    let (_, fresh) = Prci::new().check(r.path(), "master", "benign", &[]);
    assert_eq!(without_timings(after), without_timings(fresh));
}

#[test]
fn a_gigabyte_written_into_the_md5_cache_stops_at_the_file_limit_and_nothing_of_it_stays() {
    let r = base_repo();
    let prci = Prci::new().with_env("PRCI__SANDBOX__FILE_MB", "64");
    // Into its own md5-cache, at the path where the regen's sandbox shows it the tree.
    let cache = prci.work.path().join("scan-root/metadata/md5-cache");
    let body = format!("DESCRIPTION=\"$( /usr/bin/head -c 1000000000 /dev/zero 2>&1 > {}/big | /usr/bin/tail -c 60 )\"", cache.display());
    pull(&r, "bigcache", &[("bigcache", &body)]);
    let (_, report, log) = prci.check_logged(r.path(), "master", "bigcache", &[]);
    assert_ne!(report["verdict"], "error", "{report}\n{log}");
    // The writer was stopped at the limit (EFBIG: Python, and so pkgcore's ebuild processes, ignore SIGXFSZ), and
    // what it wrote is not an md5-cache entry: pmaint's regen removes it, or the md5-cache limit would refuse the tree.
    let merge_cache =
        files_named(prci.work.path(), "md5-cache").into_iter().find(|p| p.to_string_lossy().contains("/trees/merge/")).unwrap();
    let entry = std::fs::read_to_string(merge_cache.join("app-misc/bigcache-1.0")).unwrap();
    assert!(entry.contains("File too large"), "{entry}");
    assert!(files_named(prci.work.path(), "big").is_empty(), "the write stayed");
}

#[test]
fn an_md5_cache_entry_forged_for_another_package_does_not_outlive_its_job() {
    let r = base_repo();
    let prci = Prci::new();
    pull(&r, "first", &[("first", "")]);
    let (_, first) = prci.check(r.path(), "master", "first", &[]);
    assert_ne!(first["verdict"], "error", "{first}");
    // The next job regenerates only its own package: its global scope rewrites the entry of app-misc/foo, which
    // the merge checkout keeps for later jobs.
    let entry = prci.work.path().join("scan-root/metadata/md5-cache/app-misc/foo-1.0");
    pull(&r, "forger", &[("forger", &format!("/usr/bin/sed -i 's/^LICENSE=.*/LICENSE=Forged/' {}", entry.display()))]);
    let (_, report, log) = prci.check_logged(r.path(), "master", "forger", &[]);
    assert_ne!(report["verdict"], "error", "{report}\n{log}");
    let caches = files_named(prci.work.path(), "md5-cache");
    let cache =
        |side: &str| caches.iter().find(|p| p.to_string_lossy().contains(&format!("/trees/{side}/"))).unwrap().join("app-misc/foo-1.0");
    let merge = std::fs::read_to_string(cache("merge")).unwrap();
    assert!(!merge.contains("Forged"), "the forged entry stayed: {merge}");
    assert_eq!(merge, std::fs::read_to_string(cache("base")).unwrap());
    assert!(log.contains("put back to the base's"), "the forgery never happened: this test would prove nothing\n{log}");
}

#[test]
fn resource_attacks_stop_at_their_limits_and_the_verdict_names_them() {
    let r = base_repo();
    let id = std::process::id();
    pull(&r, "bomb", &[("bomb", &format!("f() {{ /usr/bin/sleep 2{id}.5 | f & f; }}; f"))]);
    pull(&r, "flood", &[("flood", "/usr/bin/yes prci-flood >&2")]);
    let prci = || {
        Prci::new()
            .with_env("PRCI__SANDBOX__PROCESSES", "200")
            .with_env("PRCI__SANDBOX__STDERR_MB", "1")
            .with_env("PRCI__SANDBOX__MEMORY_MB", "1024")
            .with_env("PRCI__CHECKER__REGEN_TIMEOUT_SECS", "120")
            .with_env("PRCI__CHECKER__SCAN_TIMEOUT_SECS", "120")
    };
    // Endless output is held in memory by pkgcore (it reads what an ebuild prints): it reaches the memory limit
    // there, or the output limit where the tool passes it through.
    for (pr, named) in [("bomb", "process limit reached"), ("flood", "limit reached (")] {
        let prci = prci();
        let started = std::time::Instant::now();
        let (_, report, log) = prci.check_logged(r.path(), "master", pr, &[]);
        let text = report.to_string();
        assert!(text.contains(named), "{pr}: the verdict does not name the {named}: {report}\n{log}");
        assert!(started.elapsed().as_secs() < 600, "{pr}: not stopped by its limit");
        assert!(processes_mentioning(&format!("sleep 2{id}.5")).is_empty(), "{pr}: left running");
        // Contained like a crash: the culprit's finding, the rest of the verdict stands.
        assert_ne!(report["verdict"], "error", "{pr}: {report}");
        assert!(summary(&report, "new").iter().any(|f| f.starts_with(&format!("PrciToolCrash@app-misc/{pr}"))), "{pr}: {report}");
    }
}

/// Peak resident memory of a finished child, from wait4(2).
#[allow(unsafe_code)]
fn run_measured(cmd: &mut Command) -> (std::process::Output, u64) {
    let child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let pid = child.id() as i32;
    let out = std::thread::spawn(move || {
        let mut child = child;
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        use std::io::Read;
        child.stdout.take().unwrap().read_to_end(&mut stdout).unwrap();
        child.stderr.take().unwrap().read_to_end(&mut stderr).unwrap();
        std::mem::forget(child); // reaped below, with its usage
        (stdout, stderr)
    })
    .join()
    .unwrap();
    let mut status = 0;
    // SAFETY: a zeroed rusage is valid; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid);
    let status = std::os::unix::process::ExitStatusExt::from_raw(status);
    (std::process::Output { status, stdout: out.0, stderr: out.1 }, u64::try_from(usage.ru_maxrss).unwrap() * 1024)
}

#[test]
fn trees_whose_files_point_outside_get_an_error_naming_the_path_in_bounded_memory() {
    let cases: [(&str, &str, &str); 4] = [
        ("metadata-xml", "app-misc/foo/metadata.xml", "/dev/zero"),
        ("repo-name", "profiles/repo_name", "/dev/zero"),
        ("cache-entry", "metadata/md5-cache/app-misc/foo-1.0", "/proc/self/environ"),
        ("cache-dir", "metadata/md5-cache", "/etc"),
    ];
    for (name, path, target) in cases {
        let r = base_repo();
        r.branch(name);
        r.switch(name);
        let full = r.join(path);
        if full.is_dir() {
            std::fs::remove_dir_all(&full).unwrap();
        } else if full.exists() {
            std::fs::remove_file(&full).unwrap();
        }
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, &full).unwrap();
        // The fixtures ignore metadata/md5-cache: a pull request can still commit it.
        let git = r.git();
        let mut index = git.index().unwrap();
        index.add_path(Path::new(path)).unwrap();
        index.write().unwrap();
        r.add_package("app-misc", "foo", "1.0", &Ebuild { description: format!("Changed by {name}"), ..Ebuild::default() });
        r.commit(name);
        r.switch("master");
        let prci = Prci::new().with_env("PRCI_TEST_SECRET", SECRET);
        let repo = r.path().display().to_string();
        let mut cmd = Command::new(prci_bin());
        cmd.args(["check", "--json", "--repo", &repo, "--base", "master", "--head", name])
            .env("PRCI__WORK__DIR", prci.work.path())
            .env("PRCI_TEST_SECRET", SECRET);
        let (out, peak) = run_measured(&mut cmd);
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{name}: no report ({e}): {}", String::from_utf8_lossy(&out.stderr)));
        assert_eq!(report["verdict"], "error", "{name}: {report}");
        let reason = report["reason"].as_str().unwrap_or_default();
        assert!(reason.contains(path), "{name}: the reason does not name {path}: {reason}");
        assert!(peak < 512 << 20, "{name}: peak RSS {} MiB", peak >> 20);
        assert!(files_containing(prci.work.path(), SECRET).is_empty(), "{name}: the environment was copied");
    }
}
