//! The regen stage's logic: mirror the repository, merge the head onto the current base tip, check both trees out at stable paths, regenerate their md5-caches incrementally (nothing, the changed packages, or `pmaint regen`).
//!
//! Layout under `work.dir`:
//! ```text
//! repos/<name>-<hash of url>/mirror.git     bare mirror; local sources are borrowed through alternates
//! repos/<name>-<hash of url>/trees/base     checkout of the base tip (its md5-cache survives between jobs)
//! repos/<name>-<hash of url>/trees/merge    checkout of the merge (idem)
//! repos/<name>-<hash of url>/masters/<name> checkouts of master repositories
//! repos/<name>-<hash of url>/lock           held for the whole job: one job per repository per host at a time
//! scan-root/                                empty; the sandbox mounts the tree under test here
//! <checkout>/.git/prci-regen.json           the tree, tools and masters the checkout's md5-cache is valid for (`incremental`)
//! <checkout>/.git/prci-checkout-incomplete  present while a checkout is under way
//! ```

use git2::{Oid, Repository};
use std::os::unix::ffi::OsStrExt as _;

pub mod incremental;
pub mod stage;
pub mod trees;
use incremental::{RegenKind, Stamp};
use shared::config::{MasterSettings, Settings};
use shared::pkgcore::{self, RepoView};
use shared::sandbox::{Sandbox, ToolCommand};
use shared::tools::Tools;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Why preparing the trees failed. `Input` errors are the caller's (bad path, unknown revision); the rest is infrastructure.
#[derive(Debug, thiserror::Error)]
pub enum RegenError {
    #[error("{0}")]
    Input(String),
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Tool(String),
    /// A tool ran past its limit on this revision's trees (an ebuild that never terminates): retrying would hang again.
    #[error("{0}")]
    Timeout(String),
}

/// Where one repository's mirror and trees live on this host.
#[derive(Debug, Clone)]
pub struct RepoWorkspace {
    pub root: PathBuf,
    pub work_dir: PathBuf,
}

impl RepoWorkspace {
    pub fn new(work_dir: &Path, name: &str, url: &str) -> RepoWorkspace {
        let hash = shared_hash(url);
        RepoWorkspace { root: work_dir.join("repos").join(format!("{name}-{}", &hash[..12])), work_dir: work_dir.to_path_buf() }
    }
    pub fn mirror(&self) -> PathBuf {
        self.root.join("mirror.git")
    }
    pub fn tree(&self, side: Side) -> PathBuf {
        self.root.join("trees").join(side.name())
    }
    pub fn master(&self, name: &str) -> PathBuf {
        self.root.join("masters").join(name)
    }
    /// Take this host's lock on the repository for the duration of a job.
    pub fn lock(&self) -> Result<File, RegenError> {
        std::fs::create_dir_all(&self.root)?;
        let file = File::options().create(true).truncate(false).write(true).open(self.root.join("lock"))?;
        file.lock()?;
        Ok(file)
    }
}

/// Hex SHA-256 of a string.
fn shared_hash(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// The two sides of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Base,
    Merge,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Base => "base",
            Side::Merge => "merge",
        }
    }
}

/// The result of preparing a job.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub base: Oid,
    pub head: Oid,
    /// The commit to scan: the merge, or the head on a fast-forward.
    pub tested: Oid,
    /// Paths (repository-relative) that differ between the base tip and the merge.
    pub changed: Vec<String>,
    /// Paths that conflict; when not empty nothing was checked out.
    pub conflicts: Vec<String>,
    pub base_tree: PathBuf,
    pub merge_tree: PathBuf,
    /// Master repositories, checked out, in `masters =` order.
    pub masters: Vec<RepoView>,
    /// Seconds spent per step (`fetch`, `merge`, `checkout`, `regen`).
    pub timings: Vec<(String, f64)>,
    /// What regen did per checkout (`master <name>`, `base`, `merge`), in that order; empty on a conflict.
    pub regen: Vec<(String, RegenKind)>,
}

/// Open the repository at `path` (not bare-only) and resolve `rev` to a commit.
pub fn resolve(path: &Path, rev: &str) -> Result<Oid, RegenError> {
    let repo = Repository::open(path).map_err(|_| RegenError::Input(format!("{} is not a git repository", path.display())))?;
    let obj = repo.revparse_single(rev).map_err(|_| RegenError::Input(format!("unknown revision {rev:?} in {}", path.display())))?;
    let commit = obj.peel_to_commit().map_err(|_| RegenError::Input(format!("revision {rev:?} is not a commit")))?;
    Ok(commit.id())
}

/// Open (or create) the bare mirror for `url`. A local path is borrowed through git alternates; a remote is fetched.
pub fn open_mirror(ws: &RepoWorkspace, url: &str) -> Result<Repository, RegenError> {
    let path = ws.mirror();
    let repo = match Repository::open_bare(&path) {
        Ok(r) => r,
        Err(_) => {
            std::fs::create_dir_all(&path)?;
            Repository::init_bare(&path)?
        }
    };
    if let Some(objects) = local_objects_dir(url) {
        add_alternate(&path, &objects)?;
    }
    Ok(repo)
}

/// `objects/` of a local repository path (bare or not), if `url` is one.
fn local_objects_dir(url: &str) -> Option<PathBuf> {
    let p = Path::new(url.strip_prefix("file://").unwrap_or(url));
    if !p.is_absolute() && !p.exists() {
        return None;
    }
    let repo = Repository::open(p).ok()?;
    Some(repo.path().join("objects"))
}

/// Make the objects of `objects` visible to the repository at `git_dir` (idempotent).
fn add_alternate(git_dir: &Path, objects: &Path) -> std::io::Result<()> {
    let info = git_dir.join("objects").join("info");
    std::fs::create_dir_all(&info)?;
    let file = info.join("alternates");
    let line = objects.canonicalize().unwrap_or_else(|_| objects.to_path_buf()).display().to_string();
    let existing = std::fs::read_to_string(&file).unwrap_or_default();
    if !existing.lines().any(|l| l == line) {
        std::fs::write(&file, format!("{existing}{line}\n"))?;
    }
    Ok(())
}

/// Fetch `refspecs` from a remote `url` into the mirror (no-op for local sources, which are borrowed).
pub fn fetch(mirror: &Repository, url: &str, refspecs: &[&str]) -> Result<(), RegenError> {
    if local_objects_dir(url).is_some() {
        return Ok(());
    }
    let mut remote = mirror.remote_anonymous(url)?;
    let mut opts = git2::FetchOptions::new();
    opts.download_tags(git2::AutotagOption::None);
    remote.fetch(refspecs, Some(&mut opts), None)?;
    Ok(())
}

/// Merge `head` onto `base` in the mirror: the tested commit, or the conflicting paths.
pub fn merge(mirror: &Repository, base: Oid, head: Oid) -> Result<Result<Oid, Vec<String>>, RegenError> {
    if base == head || mirror.graph_descendant_of(base, head)? {
        return Ok(Ok(base)); // nothing of the head is missing from the base
    }
    if mirror.graph_descendant_of(head, base)? {
        return Ok(Ok(head)); // fast-forward
    }
    let base_c = mirror.find_commit(base)?;
    let head_c = mirror.find_commit(head)?;
    let mut index = mirror.merge_commits(&base_c, &head_c, None)?;
    if index.has_conflicts() {
        let mut paths: Vec<String> = index
            .conflicts()?
            .flatten()
            .filter_map(|c| c.our.or(c.their).or(c.ancestor))
            .map(|e| String::from_utf8_lossy(&e.path).into_owned())
            .collect();
        paths.sort();
        paths.dedup();
        return Ok(Err(paths));
    }
    let tree = mirror.find_tree(index.write_tree_to(mirror)?)?;
    // A deterministic merge commit: the same base and head give the same SHA on every host.
    let when = head_c.committer().when();
    let sig = git2::Signature::new("prci", "prci@localhost", &when)?;
    let msg = format!("Merge {head} into {base}\n");
    Ok(Ok(mirror.commit(None, &sig, &sig, &msg, &tree, &[&base_c, &head_c])?))
}

/// Paths that differ between two commits' trees.
pub fn changed_paths(mirror: &Repository, a: Oid, b: Oid) -> Result<Vec<String>, RegenError> {
    let ta = mirror.find_commit(a)?.tree()?;
    let tb = mirror.find_commit(b)?.tree()?;
    Ok(diff_paths(mirror, &ta, &tb)?)
}

/// Paths that differ between two trees (both sides of each change), sorted.
pub(crate) fn diff_paths(repo: &Repository, ta: &git2::Tree, tb: &git2::Tree) -> Result<Vec<String>, git2::Error> {
    let diff = repo.diff_tree_to_tree(Some(ta), Some(tb), None)?;
    let mut paths = Vec::new();
    for delta in diff.deltas() {
        for file in [delta.old_file(), delta.new_file()] {
            if let Some(p) = file.path() {
                paths.push(p.to_string_lossy().into_owned());
            }
        }
    }
    paths.sort();
    paths.dedup();
    Ok(paths)
}

/// Present in a checkout's git dir while a checkout is under way: a HEAD at the wanted commit alone does not prove
/// that the files match it (a later checkout may have been interrupted half-way).
const CHECKOUT_MARKER: &str = "prci-checkout-incomplete";

/// Check `commit` out at `dir` (a repository borrowing the mirror's objects), keeping untracked files such as the md5-cache.
pub fn checkout(mirror: &Repository, dir: &Path, commit: Oid) -> Result<(), RegenError> {
    ensure_checkout(mirror, dir, commit).map(|_| ())
}

/// How a checkout may move its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckoutMode {
    /// libgit2's forced checkout: every file is checked against the index (it also undoes changes made in the checkout).
    Verify,
    /// Write only the paths that differ between the commit checked out and the wanted one. For checkouts the tools
    /// only see read-only (`Sandbox::can_bind`: the sandbox mounts the tree read-only, its md5-cache writable), so
    /// that nothing but prci writes their tracked files. Falls back to `Verify` when the checkout is not complete.
    ChangedOnly,
}

/// [`checkout`], skipped when the checkout at `dir` is already complete at `commit` (HEAD detached there, no checkout
/// under way). Returns whether files were checked out. A checkout removes the regen stamp before it starts.
pub fn ensure_checkout(mirror: &Repository, dir: &Path, commit: Oid) -> Result<bool, RegenError> {
    ensure_checkout_mode(mirror, dir, commit, CheckoutMode::Verify)
}

/// [`ensure_checkout`] with a choice of [`CheckoutMode`].
pub fn ensure_checkout_mode(mirror: &Repository, dir: &Path, commit: Oid, mode: CheckoutMode) -> Result<bool, RegenError> {
    let repo = match Repository::open(dir) {
        Ok(r) => r,
        Err(_) => {
            std::fs::create_dir_all(dir)?;
            Repository::init(dir)?
        }
    };
    add_alternate(repo.path(), &mirror.path().join("objects"))?;
    // Reopen so the alternates are read.
    let repo = Repository::open(dir)?;
    let marker = repo.path().join(CHECKOUT_MARKER);
    let complete = !marker.exists() && repo.head_detached().unwrap_or(false);
    let current = if complete { repo.head().ok().and_then(|h| h.target()) } else { None };
    if current == Some(commit) {
        return Ok(false);
    }
    incremental::remove_stamp_in(repo.path())?;
    std::fs::write(&marker, format!("{commit}\n"))?;
    match (mode, current) {
        (CheckoutMode::ChangedOnly, Some(old)) if repo.find_commit(old).is_ok() => write_changes(&repo, old, commit)?,
        _ => {
            let obj = repo.find_object(commit, None)?;
            let mut co = git2::build::CheckoutBuilder::new();
            co.force();
            repo.checkout_tree(&obj, Some(&mut co))?;
        }
    }
    repo.set_head_detached(commit)?;
    std::fs::remove_file(&marker)?;
    Ok(true)
}

/// Move a complete checkout of `old` to `new` by writing only the paths that differ, keeping its index in step.
fn write_changes(repo: &Repository, old: Oid, new: Oid) -> Result<(), RegenError> {
    use git2::{Delta, FileMode};
    let workdir = repo.workdir().ok_or_else(|| RegenError::Input(format!("{} has no work tree", repo.path().display())))?.to_path_buf();
    let (old_tree, new_tree) = (repo.find_commit(old)?.tree()?, repo.find_commit(new)?.tree()?);
    let diff = repo.diff_tree_to_tree(Some(&old_tree), Some(&new_tree), None)?;
    let mut index = repo.index()?;
    for delta in diff.deltas() {
        let Some(rel) = delta.new_file().path().or_else(|| delta.old_file().path()).map(Path::to_path_buf) else { continue };
        let path = workdir.join(&rel);
        if std::fs::symlink_metadata(&path).is_ok() {
            std::fs::remove_file(&path)?;
        }
        if delta.status() == Delta::Deleted {
            index.remove_path(&rel)?;
            // Directories left empty go, as libgit2's checkout removes them.
            let mut dir = path.parent();
            while let Some(d) = dir.filter(|d| *d != workdir) {
                if std::fs::remove_dir(d).is_err() {
                    break;
                }
                dir = d.parent();
            }
            continue;
        }
        let file = delta.new_file();
        let mode = FileMode::from(file.mode());
        if !matches!(mode, FileMode::Blob | FileMode::BlobExecutable | FileMode::Link) {
            continue; // submodules: not in ebuild repositories
        }
        let blob = repo.find_blob(file.id())?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if mode == FileMode::Link {
            std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(blob.content()), &path)?;
        } else {
            std::fs::write(&path, blob.content())?;
            let perms = if mode == FileMode::BlobExecutable { 0o755 } else { 0o644 };
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(perms))?;
        }
        index.add_path(&rel)?;
    }
    index.write()?;
    Ok(())
}

/// How the tools see a tree: the sandbox mount point when binds work, else its real path.
pub fn visible_path(sandbox: &Sandbox, work_dir: &Path, tree: &Path) -> PathBuf {
    if sandbox.can_bind() {
        shared::sandbox::scan_mount_point(work_dir)
    } else {
        tree.to_path_buf()
    }
}

/// Everything a tool run on one tree needs.
#[derive(Debug, Clone)]
pub struct TreeEnv {
    pub tree: PathBuf,
    pub visible: PathBuf,
    pub config_dir: PathBuf,
    pub scratch: PathBuf,
    pub bind: Option<(PathBuf, PathBuf)>,
    /// pkgcheck's `--cache-dir` (its profile and eclass caches): the job's own, unless the checker gives the
    /// side a trusted one.
    pub pkgcheck_cache: PathBuf,
}

/// Prepare the pkgcore config and scratch dir for running tools on `tree`.
pub fn tree_env(sandbox: &Sandbox, work_dir: &Path, tree: &Path, masters: &[RepoView], scratch: &Path) -> Result<TreeEnv, RegenError> {
    let visible = visible_path(sandbox, work_dir, tree);
    if sandbox.can_bind() {
        std::fs::create_dir_all(&visible)?;
        // The sandbox mounts the tree read-only and this directory writable: it must exist.
        std::fs::create_dir_all(tree.join("metadata").join("md5-cache"))?;
    }
    let name = pkgcore::repo_name(tree)
        .ok_or_else(|| RegenError::Input(format!("{} is not an ebuild repository: profiles/repo_name is missing", tree.display())))?;
    let main = RepoView { name, path: visible.clone() };
    let mut trees: Vec<&Path> = vec![tree];
    trees.extend(masters.iter().map(|m| m.path.as_path()));
    let profile = pkgcore::first_profile(&trees).map(|(i, p)| {
        let root = if i == 0 { visible.clone() } else { masters[i - 1].path.clone() };
        root.join("profiles").join(p)
    });
    let config_dir = scratch.join("pkgcore");
    pkgcore::write_config(&config_dir, &main, masters, profile.as_deref())?;
    let bind = sandbox.can_bind().then(|| (tree.to_path_buf(), visible.clone()));
    let pkgcheck_cache = scratch.join("pkgcheck-cache");
    Ok(TreeEnv { tree: tree.to_path_buf(), visible, config_dir, scratch: scratch.to_path_buf(), bind, pkgcheck_cache })
}

/// Run `pmaint regen` on one tree. Exit 1 (some ebuilds failed to source) is a QA matter pkgcheck reports again; anything else is an error.
pub fn regen(sandbox: &Sandbox, tools: &Tools, env: &TreeEnv, jobs: u32, timeout: Duration) -> Result<f64, RegenError> {
    let cmd = ToolCommand {
        program: tools.pmaint.clone(),
        args: vec![
            "--config".into(),
            env.config_dir.display().to_string(),
            "regen".into(),
            "-t".into(),
            jobs.to_string(),
            env.visible.display().to_string(),
        ],
        bin_dir: tools.bin_dir.clone(),
        scratch: env.scratch.join("home"),
        bind: env.bind.clone(),
        timeout,
        stdin: None,
        env: vec![],
    };
    run_regen_tool(sandbox, &cmd, "pmaint regen")
}

/// Run one regen tool and judge its exit. Exit 1 (some ebuilds failed to source) is a QA matter pkgcheck reports
/// again; a timeout or anything else is an error. Returns the seconds it took.
fn run_regen_tool(sandbox: &Sandbox, cmd: &ToolCommand, what: &str) -> Result<f64, RegenError> {
    let start = Instant::now();
    let out = sandbox.run(cmd)?;
    if out.timed_out {
        return Err(RegenError::Timeout(format!("{what} timed out after {} s and was killed", cmd.timeout.as_secs())));
    }
    match out.code {
        Some(0) | Some(1) => Ok(start.elapsed().as_secs_f64()),
        code => Err(RegenError::Tool(format!(
            "{what} failed (exit {}): {}",
            code.map_or("signal".to_string(), |c| c.to_string()),
            out.last_stderr_line()
        ))),
    }
}

/// The targeted regen script (see its docstring), written into the job's scratch dir at run time.
const TARGETED_SCRIPT: &str = include_str!("targeted_regen.py");

/// Regenerate the md5-cache of `packages` (`cat/pkg`) of one tree exactly as `pmaint regen` does for the whole tree:
/// stale and missing entries of every version, no entry for versions that are gone or failed to source. Exit 1
/// (some ebuilds failed to source) is a QA matter, as for [`regen`]; anything else is an error.
pub fn regen_targeted(sandbox: &Sandbox, tools: &Tools, env: &TreeEnv, packages: &[String], jobs: u32, timeout: Duration) -> Result<f64, RegenError> {
    std::fs::create_dir_all(&env.scratch)?;
    let script = env.scratch.join("prci-targeted-regen.py");
    std::fs::write(&script, TARGETED_SCRIPT)?;
    let mut stdin = packages.join("\n");
    stdin.push('\n');
    let cmd = ToolCommand {
        program: tools.bin_dir.join("python3"),
        args: vec![
            script.display().to_string(),
            "--config".into(),
            env.config_dir.display().to_string(),
            "--repo".into(),
            env.visible.display().to_string(),
            "--threads".into(),
            jobs.to_string(),
        ],
        bin_dir: tools.bin_dir.clone(),
        scratch: env.scratch.join("home"),
        bind: env.bind.clone(),
        timeout,
        stdin: Some(stdin.into_bytes()),
        env: vec![],
    };
    run_regen_tool(sandbox, &cmd, "targeted regen")
}

/// Carry out `kind` (from [`incremental::plan`]) on one tree and stamp it `wanted` once its cache is valid.
/// A targeted regen that fails for another reason than a timeout is retried as a full regen, which has the last word.
/// Returns what was done.
pub fn regen_incremental(
    sandbox: &Sandbox,
    tools: &Tools,
    env: &TreeEnv,
    kind: RegenKind,
    wanted: &Stamp,
    jobs: u32,
    timeout: Duration,
) -> Result<RegenKind, RegenError> {
    if kind == RegenKind::Unchanged {
        if incremental::read_stamp(&env.tree).as_ref() != Some(wanted) {
            incremental::write_stamp(&env.tree, wanted)?; // same tree under another commit
        }
        return Ok(kind);
    }
    incremental::remove_stamp(&env.tree)?;
    let done = match kind {
        RegenKind::Targeted(packages) => match regen_targeted(sandbox, tools, env, &packages, jobs, timeout) {
            Ok(_) => RegenKind::Targeted(packages),
            Err(RegenError::Timeout(reason)) => return Err(RegenError::Timeout(reason)),
            Err(e) => {
                tracing::warn!(tree = %env.tree.display(), error = %e, "targeted regen failed; regenerating the whole tree");
                regen(sandbox, tools, env, jobs, timeout)?;
                RegenKind::Full
            }
        },
        _ => {
            regen(sandbox, tools, env, jobs, timeout)?;
            RegenKind::Full
        }
    };
    incremental::write_stamp(&env.tree, wanted)?;
    Ok(done)
}

/// Inputs of one job.
#[derive(Debug, Clone)]
pub struct Job<'a> {
    pub url: &'a str,
    pub base: Oid,
    pub head: Oid,
    pub masters: &'a [MasterSettings],
}

/// Mirror, merge, check out and regenerate both trees (and the masters). The caller holds `ws.lock()`.
pub fn prepare(settings: &Settings, sandbox: &Sandbox, tools: &Tools, ws: &RepoWorkspace, job: &Job, scratch: &Path) -> Result<Prepared, RegenError> {
    let mut timings = Vec::new();
    let t = Instant::now();
    let mirror = open_mirror(ws, job.url)?;
    for oid in [job.base, job.head] {
        if mirror.find_commit(oid).is_err() {
            return Err(RegenError::Input(format!("commit {oid} is not in {}", job.url)));
        }
    }
    let masters = prepare_masters(ws, job.masters)?;
    timings.push(("fetch".to_string(), t.elapsed().as_secs_f64()));

    let t = Instant::now();
    let merged = merge(&mirror, job.base, job.head)?;
    timings.push(("merge".to_string(), t.elapsed().as_secs_f64()));
    let (base_tree, merge_tree) = (ws.tree(Side::Base), ws.tree(Side::Merge));
    let tested = match merged {
        Ok(oid) => oid,
        Err(conflicts) => {
            return Ok(Prepared {
                base: job.base,
                head: job.head,
                tested: Oid::zero(),
                changed: vec![],
                conflicts,
                base_tree,
                merge_tree,
                masters,
                timings,
                regen: vec![],
            })
        }
    };
    let changed = changed_paths(&mirror, job.base, tested)?;

    // What each checkout's md5-cache was valid for, read before a checkout removes the stamp.
    let old_base = incremental::read_stamp(&base_tree);
    let old_merge = incremental::read_stamp(&merge_tree);
    let t = Instant::now();
    // The merge side's tools are needed first (its regen): start them now, to overlap the checkouts; the base
    // side's (usually no regen, then the scan) after them.
    prestart_tools(sandbox, tools, &ws.work_dir, &[&merge_tree], scratch);
    // The tools see the checkouts read-only when they can be bind-mounted: then only changed paths need writing.
    let mode = if sandbox.can_bind() { CheckoutMode::ChangedOnly } else { CheckoutMode::Verify };
    ensure_checkout_mode(&mirror, &base_tree, job.base, mode)?;
    ensure_checkout_mode(&mirror, &merge_tree, tested, mode)?;
    timings.push(("checkout".to_string(), t.elapsed().as_secs_f64()));
    prestart_tools(sandbox, tools, &ws.work_dir, &[&base_tree], scratch);

    let t = Instant::now();
    let jobs = settings.checker.effective_jobs();
    let timeout = Duration::from_secs(settings.checker.regen_timeout_secs);
    let mut done = Vec::new();
    let mut master_commits = Vec::new();
    for (i, m) in masters.iter().enumerate() {
        let repo = Repository::open(&m.path)?;
        let head = repo.head()?.target().ok_or_else(|| RegenError::Input(format!("master {} has no HEAD commit", m.name)))?;
        let wanted = Stamp::new(&repo, head, tools, &master_commits)?;
        // A master changes rarely: unchanged or a full regen.
        let kind = if incremental::read_stamp(&m.path).as_ref().is_some_and(|s| s.tree == wanted.tree && s.same_environment(&wanted)) {
            RegenKind::Unchanged
        } else {
            RegenKind::Full
        };
        let env = tree_env_real(&m.path, &masters[..i], &scratch.join(format!("master-{}", m.name)))?;
        let kind = regen_incremental(sandbox, tools, &env, kind, &wanted, jobs, timeout)?;
        tracing::info!("regen master {}: {}", m.name, kind.describe());
        done.push((format!("master {}", m.name), kind));
        master_commits.push((m.name.clone(), head.to_string()));
    }
    let mut trees: Vec<&Path> = vec![&merge_tree];
    trees.extend(masters.iter().map(|m| m.path.as_path()));
    let categories_merge = incremental::categories(&trees);
    trees[0] = &base_tree;
    let categories_base = incremental::categories(&trees);
    let want_base = Stamp::new(&mirror, job.base, tools, &master_commits)?;
    let want_merge = Stamp::new(&mirror, tested, tools, &master_commits)?;
    let plan_base = incremental::plan(&mirror, old_base.as_ref(), &want_base, &categories_base);
    let plan_merge = incremental::plan(&mirror, old_merge.as_ref(), &want_merge, &categories_merge);
    // Both sides at once.
    let (rb, rm) = std::thread::scope(|s| {
        let b = s.spawn(|| -> Result<RegenKind, RegenError> {
            let env = tree_env(sandbox, &ws.work_dir, &base_tree, &masters, &scratch.join("regen-base"))?;
            regen_incremental(sandbox, tools, &env, plan_base, &want_base, jobs, timeout)
        });
        let m = s.spawn(|| -> Result<RegenKind, RegenError> {
            let env = tree_env(sandbox, &ws.work_dir, &merge_tree, &masters, &scratch.join("regen-merge"))?;
            regen_incremental(sandbox, tools, &env, plan_merge, &want_merge, jobs, timeout)
        });
        (join(b), join(m))
    });
    for (side, result) in [(Side::Base, rb), (Side::Merge, rm)] {
        let kind = result?;
        tracing::info!("regen {}: {}", side.name(), kind.describe());
        done.push((side.name().to_string(), kind));
    }
    timings.push(("regen".to_string(), t.elapsed().as_secs_f64()));
    Ok(Prepared { base: job.base, head: job.head, tested, changed, conflicts: vec![], base_tree, merge_tree, masters, timings, regen: done })
}

/// Start the warm tool processes (`shared::warm`) of existing checkouts now, so their imports overlap the checkout.
fn prestart_tools(sandbox: &Sandbox, tools: &Tools, work_dir: &Path, trees: &[&Path], scratch: &Path) {
    if !sandbox.can_bind() {
        return;
    }
    for tree in trees.iter().filter(|t| t.is_dir()) {
        let visible = visible_path(sandbox, work_dir, tree);
        if std::fs::create_dir_all(&visible).is_err() {
            continue;
        }
        let cmd = ToolCommand {
            program: tools.pkgcheck.clone(),
            args: vec![],
            bin_dir: tools.bin_dir.clone(),
            scratch: scratch.join("warm"),
            bind: Some((tree.to_path_buf(), visible)),
            timeout: Duration::from_secs(60),
            stdin: None,
            env: vec![],
        };
        shared::warm::prestart(sandbox, &cmd);
    }
}

fn join<T>(h: std::thread::ScopedJoinHandle<'_, Result<T, RegenError>>) -> Result<T, RegenError> {
    h.join().unwrap_or_else(|_| Err(RegenError::Tool("a regen thread panicked".into())))
}

/// A master repository is regenerated at its own path (no bind: it is the same for both sides).
fn tree_env_real(tree: &Path, masters: &[RepoView], scratch: &Path) -> Result<TreeEnv, RegenError> {
    let name = pkgcore::repo_name(tree).ok_or_else(|| RegenError::Input(format!("master {} has no profiles/repo_name", tree.display())))?;
    let main = RepoView { name, path: tree.to_path_buf() };
    let mut trees: Vec<&Path> = vec![tree];
    trees.extend(masters.iter().map(|m| m.path.as_path()));
    let profile = pkgcore::first_profile(&trees).map(|(i, p)| trees[i].join("profiles").join(p));
    let config_dir = scratch.join("pkgcore");
    pkgcore::write_config(&config_dir, &main, masters, profile.as_deref())?;
    let pkgcheck_cache = scratch.join("pkgcheck-cache");
    Ok(TreeEnv { tree: tree.to_path_buf(), visible: tree.to_path_buf(), config_dir, scratch: scratch.to_path_buf(), bind: None, pkgcheck_cache })
}

/// Mirror and check out each master at the tip of its branch.
pub fn prepare_masters(ws: &RepoWorkspace, masters: &[MasterSettings]) -> Result<Vec<RepoView>, RegenError> {
    let mut out = Vec::new();
    for m in masters {
        let mws = RepoWorkspace::new(&ws.work_dir, &m.name, &m.url);
        let mirror = open_mirror(&mws, &m.url)?;
        let tip = match local_objects_dir(&m.url) {
            Some(_) => resolve(Path::new(&m.url), m.branch.as_deref().unwrap_or("HEAD"))?,
            None => {
                let branch = m.branch.clone().unwrap_or_else(|| "HEAD".into());
                let spec = if branch == "HEAD" { "+HEAD:refs/prci/master".to_string() } else { format!("+refs/heads/{branch}:refs/prci/master") };
                fetch(&mirror, &m.url, &[&spec])?;
                mirror.refname_to_id("refs/prci/master")?
            }
        };
        let dir = ws.master(&m.name);
        checkout(&mirror, &dir, tip)?;
        out.push(RepoView { name: m.name.clone(), path: dir });
    }
    Ok(out)
}

/// The current head of pull request `pr` on `url` (`refs/pull/<pr>/head`), without fetching anything; None when it is gone.
pub fn current_pull_head(url: &str, pr: u64) -> Result<Option<String>, RegenError> {
    let mut remote = git2::Remote::create_detached(url)?;
    remote.connect(git2::Direction::Fetch)?;
    let wanted = format!("refs/pull/{pr}/head");
    let head = remote.list()?.iter().find(|h| h.name() == wanted).map(|h| h.oid().to_string());
    Ok(head)
}
