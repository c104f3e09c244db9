//! Running the real pkgcore/pkgcheck tools on fixture repositories: tool
//! paths, a throw-away pkgcore config directory, `pmaint regen` and a full
//! `pkgcheck scan` (the "slow truth" integration tests compare against).

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// Environment variable overriding the pkgcheck binary.
pub const PKGCHECK_ENV: &str = "PRCI_TEST_PKGCHECK";
/// Environment variable overriding the pmaint binary.
pub const PMAINT_ENV: &str = "PRCI_TEST_PMAINT";

fn default_tool(name: &str) -> PathBuf {
    // tests/ is one level below the workspace root.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf();
    root.join(".tools/venv/bin").join(name)
}

/// pkgcheck binary: `$PRCI_TEST_PKGCHECK`, else `<workspace>/.tools/venv/bin/pkgcheck`.
pub fn pkgcheck_path() -> PathBuf {
    std::env::var_os(PKGCHECK_ENV).map(PathBuf::from).unwrap_or_else(|| default_tool("pkgcheck"))
}

/// pmaint binary: `$PRCI_TEST_PMAINT`, else `<workspace>/.tools/venv/bin/pmaint`.
pub fn pmaint_path() -> PathBuf {
    std::env::var_os(PMAINT_ENV).map(PathBuf::from).unwrap_or_else(|| default_tool("pmaint"))
}

/// Whether both tool binaries exist (for tests that want to skip without them).
pub fn tools_available() -> bool {
    pkgcheck_path().is_file() && pmaint_path().is_file()
}

fn jobs() -> String {
    std::thread::available_parallelism().map(|n| n.get().min(4)).unwrap_or(2).to_string()
}

/// Name of the repository at `path` (its profiles/repo_name).
pub fn repo_name(path: &Path) -> String {
    let f = path.join("profiles/repo_name");
    std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("read {}: {e}", f.display())).trim().to_string()
}

/// First profile listed in `<repo>/profiles/profiles.desc`, as an absolute path.
fn first_profile(repo: &Path) -> PathBuf {
    let desc = std::fs::read_to_string(repo.join("profiles/profiles.desc")).unwrap_or_default();
    let rel = desc
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .find_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_else(|| crate::repo::PROFILE.to_string());
    repo.join("profiles").join(rel)
}

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|e| panic!("canonicalize {}: {e}", p.display()))
}

/// A temporary pkgcore configuration directory: `repos.conf` listing the
/// masters (in order) then the repository, `main-repo` = the first master (or
/// the repository itself), and `make.profile` → the first profile of the main
/// repository's profiles.desc.
#[derive(Debug)]
pub struct PkgcoreConfig {
    dir: TempDir,
}

impl PkgcoreConfig {
    pub fn new(repo_path: &Path, masters: &[&Path]) -> PkgcoreConfig {
        let dir = tempfile::Builder::new().prefix("prci-pkgcore-").tempdir().expect("create pkgcore config dir");
        let repo = absolute(repo_path);
        let masters: Vec<PathBuf> = masters.iter().map(|m| absolute(m)).collect();
        let main = masters.first().cloned().unwrap_or_else(|| repo.clone());
        let mut conf = format!("[DEFAULT]\nmain-repo = {}\n", repo_name(&main));
        for p in masters.iter().chain(std::iter::once(&repo)) {
            conf.push_str(&format!("\n[{}]\nlocation = {}\n", repo_name(p), p.display()));
        }
        std::fs::write(dir.path().join("repos.conf"), conf).expect("write repos.conf");
        let profile = first_profile(&main);
        std::os::unix::fs::symlink(&profile, dir.path().join("make.profile")).expect("symlink make.profile");
        PkgcoreConfig { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Output of one tool run, panicking with stdout/stderr when it failed.
fn run(mut cmd: Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e} (set {PKGCHECK_ENV}/{PMAINT_ENV}?)"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{cmd:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    stdout
}

/// `pmaint regen` of the md5-cache of the repository at `repo_path` (whose
/// masters, if any, are `masters`, in order).
pub fn regen(repo_path: &Path, masters: &[&Path]) {
    let config = PkgcoreConfig::new(repo_path, masters);
    let mut cmd = Command::new(pmaint_path());
    cmd.arg("--config").arg(config.path()).args(["regen", "-t", &jobs()]).arg(absolute(repo_path));
    run(cmd);
}

/// Full-tree `pkgcheck scan` of the repository at `repo_path` with the
/// JsonStream reporter; one JSON object (with `__class__`) per finding.
/// Does not regenerate the cache: call [`regen`] first for speed.
pub fn scan_full(repo_path: &Path, masters: &[&Path]) -> Vec<serde_json::Value> {
    scan_full_with(repo_path, masters, &[])
}

/// [`scan_full`] with extra pkgcheck arguments (e.g. `["-c", "PkgDirCheck"]`).
pub fn scan_full_with(repo_path: &Path, masters: &[&Path], extra: &[&str]) -> Vec<serde_json::Value> {
    let config = PkgcoreConfig::new(repo_path, masters);
    let cache = tempfile::Builder::new().prefix("prci-pkgcheck-cache-").tempdir().expect("create pkgcheck cache dir");
    let mut cmd = Command::new(pkgcheck_path());
    cmd.arg("--config")
        .arg(config.path())
        .args(["scan", "--config", "no", "--cache-dir"])
        .arg(cache.path())
        .args(["--cache=-git", "-j", &jobs(), "-R", "JsonStream"])
        .args(extra)
        .arg("-r")
        .arg(absolute(repo_path));
    parse_json_stream(&run(cmd))
}

/// Parse JsonStream output (one JSON object per non-empty line).
pub fn parse_json_stream(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JsonStream line {l:?}: {e}")))
        .collect()
}

/// The `__class__` of every finding, in order.
pub fn finding_classes(findings: &[serde_json::Value]) -> Vec<String> {
    findings.iter().map(|f| f["__class__"].as_str().unwrap_or("?").to_string()).collect()
}
