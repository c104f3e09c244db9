//! Running pkgcheck directly, as the baseline and the floor do: one tree ([`Side`]), the part of a scan
//! ([`Pass`]), and one hermetic timed `pkgcheck scan`.

use super::process::secs;
use super::progress;
use anyhow::{bail, Context as _, Result};
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// One tree and its pkgcore config directory.
pub(crate) struct Side<'a> {
    pub(crate) tree: &'a Path,
    pub(crate) config: &'a Path,
    /// Configured pkgcheck arguments, appended to every scan (as prci appends `checker.pkgcheck_args`).
    pub(crate) extra: &'a [String],
    /// When set, a pkgcheck run that fails (a crash in a check) is counted here instead of being an
    /// error; its time still counts.
    pub(crate) failures: Option<&'a AtomicU64>,
    /// pkgcheck's `--cache-dir`, kept between runs (a warm profiles cache); `None`: a fresh one per run.
    pub(crate) cache_dir: Option<&'a Path>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pass<'a> {
    /// Every check on the whole repository.
    Full,
    /// Repo-, category- and profile-scope checks (`--scopes=repo,cat,profiles`, no targets), as prci runs them.
    RepoCat,
    /// Some of those checks (`-c`).
    RepoChecks(&'a [String]),
    /// These targets, read from stdin.
    Targets(&'a [String]),
}

/// One hermetic `pkgcheck scan` (pkgcheck.md's invocation; the same clean environment prci's sandbox
/// gives, minus the namespaces), with a fresh cache dir unless the side keeps one. Returns seconds
/// and the number of results.
pub(crate) fn pkgcheck_run(pkgcheck: &Path, side: &Side, jobs: usize, pass: Pass) -> Result<(f64, usize)> {
    let scratch = tempfile::Builder::new().prefix("prci-bench-scan-").tempdir()?;
    let bin_dir = pkgcheck.parent().context("pkgcheck has no parent dir")?;
    let mut cmd = Command::new(pkgcheck);
    cmd.arg("--config")
        .arg(side.config)
        .args(["scan", "--config", "no"])
        .arg(format!("--cache-dir={}", side.cache_dir.map_or_else(|| scratch.path().join("pkgcheck-cache"), Path::to_path_buf).display()))
        .args(["--cache=-git", "-j", &jobs.to_string(), "-R", "JsonStream", "-r"])
        .arg(side.tree);
    let mut stdin = None;
    match pass {
        Pass::Full => {}
        Pass::RepoCat => {
            cmd.arg("--scopes=repo,cat,profiles");
        }
        Pass::RepoChecks(checks) => {
            cmd.arg("--scopes=repo,cat,profiles").arg("-c").arg(checks.join(","));
        }
        Pass::Targets(targets) => {
            cmd.arg("-");
            let list: String = targets
                .iter()
                .map(|t| if t.starts_with("eclass/") { format!("{}\n", side.tree.join(t).display()) } else { format!("{t}\n") })
                .collect();
            stdin = Some(list);
        }
    }
    cmd.args(side.extra);
    cmd.env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()))
        .env("HOME", scratch.path())
        .env("TMPDIR", scratch.path())
        .env("LANG", "C.UTF-8")
        .env("LC_ALL", "C.UTF-8")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let t = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("start {}", pkgcheck.display()))?;
    if let Some(list) = stdin {
        let mut pipe = child.stdin.take().context("pkgcheck stdin")?;
        pipe.write_all(list.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let elapsed = secs(t);
    if let (false, Some(failures)) = (out.status.success(), side.failures) {
        failures.fetch_add(1, Ordering::Relaxed);
        let stderr = String::from_utf8_lossy(&out.stderr);
        progress(&format!(
            "pkgcheck failed ({}) in a floor scan; its time counts, its results are partial: {}",
            out.status,
            stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("")
        ));
    } else if !out.status.success() {
        bail!("{cmd:?} failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    let results = String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.trim().is_empty()).count();
    Ok((elapsed, results))
}
