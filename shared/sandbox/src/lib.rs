//! The one runner for untrusted-input tools (pmaint, pkgcheck, prci's Python scripts, warm tool processes): bubblewrap, limits, and nothing left behind.
//!
//! Ebuilds are bash that strangers wrote; the tools source them. So every tool run gets (see `bwrap.rs`):
//! - a user namespace where it is an ordinary user (uid 1000) with no capabilities and `no_new_privs`, and its own
//!   PID, mount, network (no network), IPC and UTS namespaces;
//! - a filesystem of its own: `/usr`, the tools' environment, the master repositories and the tree (at one fixed
//!   path, so base and merge are scanned from the same path), all read-only; writable only the tree's
//!   `metadata/md5-cache` when the run regenerates it, the run's own scratch directories, and private
//!   size-limited `/tmp` and `/var/tmp`; its own `/proc`; no other part of the host;
//! - an environment built from nothing (no token, password or broker URL can leak in);
//! - limits (`limits.rs`): memory and processes for the run as a whole through a cgroup of its own where the host
//!   gives one (`cgroup.rs`), rlimits always (CPU time, file size, no core dumps; address space and processes
//!   per process without a cgroup), and caps on what is read of its output and written to the md5-cache. A run
//!   that reaches one is stopped and says which ([`ToolOutput::limit`]);
//! - a wall-clock limit, after which the whole namespace is killed; when the run's first process ends, everything
//!   else in its namespace ends with it.
//!
//! Where bubblewrap cannot run, [`Sandbox::new`] refuses (the stage does not start) unless the operator set
//! `sandbox.enabled = false`: then tools run unsandboxed in a process group, and every start and report says so.

pub mod bwrap;
pub mod cgroup;
pub mod env;
pub mod limits;
pub mod pkgcore;
pub mod tools;
pub mod warm;

pub use env::{tree_env, EnvError, TreeEnv};
pub use limits::{LimitHit, Limits};
pub use tools::{MissingTool, ToolPaths, Tools};

/// prci's targeted regen (`python/targeted_regen.py`: `pmaint regen` for named packages only), run by the tools'
/// Python inside the sandbox.
pub const TARGETED_REGEN_SCRIPT: &str = include_str!("python/targeted_regen.py");

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// How tools are isolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// bubblewrap, at this path.
    Bubblewrap(&'static Path),
    /// No sandbox, by the operator's explicit choice (`sandbox.enabled = false`): a process group of its own.
    Unsandboxed,
}

/// What the operator configured (`[sandbox]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    pub enabled: bool,
    pub limits: Limits,
    /// Give each run a cgroup where the host allows it.
    pub cgroups: bool,
    /// bubblewrap's path; None: `bwrap` on `PATH`, else `/usr/bin/bwrap`.
    pub bwrap: Option<PathBuf>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig { enabled: true, limits: Limits::default(), cgroups: true, bwrap: None }
    }
}

/// Why a stage that runs tools cannot start (exit 64: the host or the configuration must change).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("sandbox.enabled: the tool sandbox cannot be set up on this host: {0}. Install bubblewrap (`apt-get install bubblewrap`; `bash .ci/install-tools` does it) and allow unprivileged user namespaces (sysctl user.max_user_namespaces > 0; in a container, `--security-opt seccomp=unconfined --security-opt apparmor=unconfined`; README: threat model), or set sandbox.enabled = false to run untrusted pull requests unsandboxed")]
    Unavailable(String),
    #[error(transparent)]
    MissingTool(#[from] MissingTool),
}

impl SetupError {
    /// Whether the host or the configuration must change (the sandbox cannot be made as configured), rather than
    /// the tools be installed.
    pub fn is_configuration(&self) -> bool {
        matches!(self, SetupError::Unavailable(_))
    }

    /// The exit code of a service that cannot start for it: 64 for configuration, 2 otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.is_configuration() {
            64
        } else {
            2
        }
    }

    /// The configuration key that decides it.
    pub fn key(&self) -> String {
        match self {
            SetupError::Unavailable(_) => "sandbox.enabled".into(),
            SetupError::MissingTool(t) => format!("tools.{}", t.tool),
        }
    }
}

/// Find bubblewrap (`configured`, or on `PATH`) and prove it can make the sandbox here (once per process).
fn probe_bwrap(configured: Option<&Path>, limits: &Limits) -> Result<&'static Path, String> {
    static PROBE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            let path = match configured {
                Some(p) if p.is_file() => p.to_path_buf(),
                Some(p) => return Err(format!("{} (sandbox.bwrap) does not exist", p.display())),
                None => std::env::var_os("PATH")
                    .and_then(|p| std::env::split_paths(&p).map(|d| d.join("bwrap")).find(|b| b.is_file()))
                    .or_else(|| Some(PathBuf::from("/usr/bin/bwrap")).filter(|p| p.is_file()))
                    .ok_or_else(|| "bwrap (bubblewrap) is not installed".to_string())?,
            };
            let out = Command::new(&path)
                .args(bwrap::probe_args(limits))
                .env_clear()
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
            if out.status.success() {
                Ok(path)
            } else {
                Err(format!("{} refused: {}", path.display(), String::from_utf8_lossy(&out.stderr).trim()))
            }
        })
        .as_ref()
        .map(PathBuf::as_path)
        .map_err(Clone::clone)
}

/// One tool invocation.
#[derive(Debug, Clone, Default)]
pub struct ToolCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Directory of the tools, put first on `PATH`; its Python environment is visible read-only.
    pub bin_dir: PathBuf,
    /// `HOME`, `TMPDIR` and working directory of the tool: a directory owned by this job, writable.
    pub scratch: PathBuf,
    /// The tree (`.0`) seen read-only at `.1` inside the sandbox; unsandboxed, the tools see it at its real path.
    pub bind: Option<(PathBuf, PathBuf)>,
    /// The tree's `metadata/md5-cache` is writable (regen only).
    pub write_md5_cache: bool,
    /// With `write_md5_cache`: only these categories' directories of the md5-cache are writable (a targeted regen
    /// writes its packages' entries only); None: all of it.
    pub md5_cache_categories: Option<Vec<String>>,
    /// Further directories visible read-only at their own path (the master repositories).
    pub read_only: Vec<PathBuf>,
    /// Further directories visible writable at their own path (the side's scratch, pkgcheck's cache).
    pub writable: Vec<PathBuf>,
    /// Directories other runs of the same job and side write but this one may not (the kept pkgcheck cache while
    /// a scan runs): a warm process serving the whole side binds them writable and gives this run a read-only view
    /// of them (`warm`); a cold run does not see them at all.
    pub shared_writable: Vec<PathBuf>,
    pub timeout: Duration,
    pub stdin: Option<Vec<u8>>,
    /// Extra environment, on top of the scrubbed base.
    pub env: Vec<(String, String)>,
    /// Raised when the job this run belongs to is superseded: the run is killed as on a timeout, at once.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl ToolCommand {
    /// Whether the job this run belongs to was cancelled.
    pub fn cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(|c| c.load(Ordering::SeqCst))
    }

    /// This command ready to be bound: the md5-cache categories it may write made real directories of the tree and
    /// only those kept (`md5_category_dirs`); itself when it writes none of them.
    pub(crate) fn with_category_dirs(&self) -> std::io::Result<std::borrow::Cow<'_, ToolCommand>> {
        match (&self.bind, &self.md5_cache_categories) {
            (Some((tree, _)), Some(cats)) if self.write_md5_cache => {
                let cats = md5_category_dirs(tree, cats)?;
                Ok(std::borrow::Cow::Owned(ToolCommand { md5_cache_categories: Some(cats), ..self.clone() }))
            }
            _ => Ok(std::borrow::Cow::Borrowed(self)),
        }
    }
}

/// A tree's md5-cache directory.
pub fn md5_cache_of(tree: &Path) -> PathBuf {
    tree.join("metadata").join("md5-cache")
}

/// The md5-cache category directories a run may write (`ToolCommand::md5_cache_categories`), each made a real
/// directory of the tree first (a symbolic link or file left there by earlier code is removed: a bind mount would
/// follow it). Names that are not one path component are left out: nothing can be written for them.
fn md5_category_dirs(tree: &Path, categories: &[String]) -> std::io::Result<Vec<String>> {
    let cache = md5_cache_of(tree);
    let mut kept = Vec::new();
    for cat in categories.iter().filter(|c| is_category_name(c)) {
        let dir = cache.join(cat);
        match dir.symlink_metadata() {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                std::fs::remove_file(&dir)?;
                std::fs::create_dir(&dir)?;
            }
            Err(_) => std::fs::create_dir(&dir)?,
        }
        kept.push(cat.clone());
    }
    Ok(kept)
}

/// Whether `name` is one path component (what a category directory can be named).
fn is_category_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

/// What a tool run produced.
#[derive(Debug, Clone)]
pub struct ToolOutput {
    /// Exit code; `None` when killed by a signal (the timeout included).
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub timed_out: bool,
    /// The limit the run reached (it was stopped there), if any.
    pub limit: Option<LimitHit>,
    /// Killed because its job was cancelled (`ToolCommand::cancel`): its output means nothing.
    pub cancelled: bool,
    pub elapsed: Duration,
}

impl ToolOutput {
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    /// Last non-empty line of stderr, for one-line reasons.
    pub fn last_stderr_line(&self) -> String {
        self.stderr_text().lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_owned()
    }
}

/// The md5-cache directories a run may write, measured while it runs, so that a run filling them is stopped there and
/// then rather than found out when it ends (a PR's ebuild can write into the md5-cache as fast as the disk takes it).
pub(crate) struct Md5Watch {
    dirs: Vec<PathBuf>,
    cap: u64,
    next: Instant,
}

impl Md5Watch {
    /// Least time between two looks; each look also waits 20 times what the last one cost, so the walk of a
    /// Gentoo-size md5-cache takes at most a twentieth of the run's time.
    const MIN_INTERVAL: Duration = Duration::from_millis(500);

    /// The watch of `cmd`'s writable md5-cache, when it has one.
    pub(crate) fn of(cmd: &ToolCommand, cap: u64) -> Option<Md5Watch> {
        let (tree, _) = cmd.bind.as_ref().filter(|_| cmd.write_md5_cache)?;
        // Only what the run could write can have grown.
        let dirs = match &cmd.md5_cache_categories {
            None => vec![md5_cache_of(tree)],
            Some(cats) => cats.iter().filter(|c| is_category_name(c)).map(|c| md5_cache_of(tree).join(c)).collect(),
        };
        Some(Md5Watch { dirs, cap, next: Instant::now() + Self::MIN_INTERVAL })
    }

    /// The limit hit when the directories hold more than the cap now.
    pub(crate) fn measure(&self) -> Option<LimitHit> {
        let bytes: u64 = self.dirs.iter().map(|d| limits::tree_bytes(d, self.cap)).sum();
        (bytes > self.cap).then_some(LimitHit::Md5CacheSize(self.cap))
    }

    /// `measure`, when it is time for another look.
    pub(crate) fn poll(&mut self) -> Option<LimitHit> {
        let start = Instant::now();
        if start < self.next {
            return None;
        }
        let hit = self.measure();
        self.next = Instant::now() + (start.elapsed() * 20).max(Self::MIN_INTERVAL);
        hit
    }
}

/// How a cold run's wait ended: its status, and whether it was stopped at its deadline, at a limit, or cancelled.
struct Watched {
    status: std::process::ExitStatus,
    timed_out: bool,
    limit: Option<LimitHit>,
    cancelled: bool,
}

/// Runs tools under the chosen isolation and limits.
#[derive(Debug, Clone, Copy)]
pub struct Sandbox {
    pub isolation: Isolation,
    pub limits: Limits,
    cgroups: Option<&'static cgroup::Hierarchy>,
}

impl Sandbox {
    /// The sandbox `config` asks for, or why it cannot be had. Disabled explicitly, it says so at ERROR.
    pub fn new(config: &SandboxConfig) -> Result<Sandbox, SetupError> {
        let cgroups = if config.cgroups { cgroup::hierarchy() } else { None };
        if !config.enabled {
            tracing::error!("sandbox.enabled = false: pull requests' code runs UNSANDBOXED, with this service's user, files and network");
            return Ok(Sandbox { isolation: Isolation::Unsandboxed, limits: config.limits, cgroups });
        }
        let bwrap = probe_bwrap(config.bwrap.as_deref(), &config.limits).map_err(SetupError::Unavailable)?;
        Ok(Sandbox { isolation: Isolation::Bubblewrap(bwrap), limits: config.limits, cgroups })
    }

    /// Whether the tools run sandboxed (they then see the tree at one fixed mount point).
    pub fn can_bind(&self) -> bool {
        matches!(self.isolation, Isolation::Bubblewrap(_))
    }

    /// Whether tools run without the sandbox (shown in every report).
    pub fn unsandboxed(&self) -> bool {
        self.isolation == Isolation::Unsandboxed
    }

    /// A cgroup for one run, when the host gives them.
    pub(crate) fn run_cgroup(&self) -> Option<cgroup::RunCgroup> {
        let h = self.cgroups?;
        match cgroup::RunCgroup::create(h, &self.limits) {
            Ok(cg) => Some(cg),
            Err(e) => {
                tracing::warn!(error = %e, "could not make a cgroup for a tool run; it is bounded by rlimits only");
                None
            }
        }
    }

    /// Run `cmd` to completion or until its timeout or a limit, then make sure nothing it started is left.
    /// pkgcheck, pmaint and prci's Python scripts run in the tree's warm tool process when there is
    /// one (`crate::warm`), else (and on any trouble with it) in a process of their own.
    pub fn run(&self, cmd: &ToolCommand) -> std::io::Result<ToolOutput> {
        if cmd.cancelled() {
            // Its job is over: nothing is started.
            let (stdout, stderr) = (Vec::new(), Vec::new());
            return Ok(ToolOutput { code: None, stdout, stderr, timed_out: false, limit: None, cancelled: true, elapsed: Duration::ZERO });
        }
        let mut out = match crate::warm::run(self, cmd) {
            Some(out) => out?,
            None => self.run_cold(cmd)?,
        };
        self.check_md5_cache(cmd, &mut out);
        Ok(out)
    }

    /// A run that may write the md5-cache left no more there than the limit allows (the watch during the run stops
    /// one that fills it; this catches what was written since its last look).
    fn check_md5_cache(&self, cmd: &ToolCommand, out: &mut ToolOutput) {
        if out.limit.is_none() {
            out.limit = Md5Watch::of(cmd, self.limits.md5_cache_bytes).and_then(|w| w.measure());
        }
    }

    /// The command that starts `program` for `cmd` in this sandbox, with its environment, limits and cgroup.
    pub(crate) fn command(&self, cmd: &ToolCommand, program: &Path, cg: Option<&cgroup::RunCgroup>) -> std::io::Result<Command> {
        std::fs::create_dir_all(&cmd.scratch)?;
        let mut c = match self.isolation {
            Isolation::Bubblewrap(bwrap) => {
                for w in &cmd.writable {
                    std::fs::create_dir_all(w)?;
                }
                let checked = cmd.with_category_dirs()?;
                let cmd = checked.as_ref();
                if let Some((_, dst)) = &cmd.bind {
                    std::fs::create_dir_all(dst)?;
                }
                let mut c = Command::new(bwrap);
                c.args(bwrap::args(cmd, &self.limits)).arg("--").arg(program);
                c
            }
            Isolation::Unsandboxed => {
                let mut c = Command::new(program);
                std::os::unix::process::CommandExt::process_group(&mut c, 0);
                c
            }
        };
        scrubbed_env(&mut c, &cmd.bin_dir, &cmd.scratch);
        for (k, v) in &cmd.env {
            c.env(k, v);
        }
        c.current_dir(&cmd.scratch);
        self.in_child(&mut c, cg.map(cgroup::RunCgroup::procs_files).unwrap_or_default());
        Ok(c)
    }

    /// Run `cmd` in a process of its own.
    pub fn run_cold(&self, cmd: &ToolCommand) -> std::io::Result<ToolOutput> {
        let cg = self.run_cgroup();
        let mut command = self.command(cmd, &cmd.program, cg.as_ref())?;
        command.args(&cmd.args);
        command.stdin(if cmd.stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        command.stdout(Stdio::piped()).stderr(Stdio::piped());

        let start = Instant::now();
        let mut child = command.spawn()?;
        let pid = child.id();
        let stdin_thread = match (child.stdin.take(), cmd.stdin.clone()) {
            (Some(mut pipe), Some(data)) => Some(std::thread::spawn(move || {
                let _ = pipe.write_all(&data);
            })),
            _ => None,
        };
        let stdout_over = Arc::new(AtomicBool::new(false));
        let stderr_over = Arc::new(AtomicBool::new(false));
        let stdout_thread = child.stdout.take().map(|p| capped_reader(p, self.limits.stdout_bytes, stdout_over.clone()));
        let stderr_thread = child.stderr.take().map(|p| capped_reader(p, self.limits.stderr_bytes, stderr_over.clone()));

        let deadline = start + cmd.timeout;
        let output_over = || {
            if stdout_over.load(Ordering::Relaxed) {
                Some(LimitHit::Stdout(self.limits.stdout_bytes))
            } else if stderr_over.load(Ordering::Relaxed) {
                Some(LimitHit::Stderr(self.limits.stderr_bytes))
            } else {
                None
            }
        };
        let Watched { status, timed_out, mut limit, cancelled } = self.watch(&mut child, cmd, cg.as_ref(), &output_over, deadline)?;
        if self.isolation == Isolation::Unsandboxed {
            kill_group(pid); // anything the tool left in its group goes with it
        }
        if let Some(cg) = &cg {
            limit = limit.or_else(|| cg.hit());
            cg.kill_all();
        }
        if let Some(t) = stdin_thread {
            let _ = t.join();
        }
        let stdout = join_reader(stdout_thread);
        let stderr = join_reader(stderr_thread);
        // A tool that died of its closed pipe ended before the loop saw the flag.
        limit = limit.or_else(output_over);
        let (code, limit) = self.exit_meaning(status, &stdout, &stderr, limit)?;
        Ok(ToolOutput { code, stdout, stderr, timed_out, limit, cancelled, elapsed: start.elapsed() })
    }

    /// Poll a cold run until it exits, or stop it (with everything in its namespace) at its deadline, at a limit its
    /// output or cgroup reached, or when its job is cancelled.
    fn watch(
        &self,
        child: &mut std::process::Child,
        cmd: &ToolCommand,
        cg: Option<&cgroup::RunCgroup>,
        output_over: &dyn Fn() -> Option<LimitHit>,
        deadline: Instant,
    ) -> std::io::Result<Watched> {
        let mut polls = 0u32;
        let mut md5 = Md5Watch::of(cmd, self.limits.md5_cache_bytes);
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(Watched { status, timed_out: false, limit: None, cancelled: false });
            }
            polls += 1;
            let mut limit = output_over();
            if limit.is_none() && polls.is_multiple_of(5) {
                limit = cg.and_then(cgroup::RunCgroup::hit);
            }
            if limit.is_none() {
                limit = md5.as_mut().and_then(Md5Watch::poll);
            }
            let cancelled = cmd.cancelled();
            if limit.is_some() || cancelled || Instant::now() >= deadline {
                if !cancelled {
                    log_stopped(cmd, limit);
                }
                if self.isolation == Isolation::Unsandboxed {
                    kill_group(child.id());
                }
                let status = kill_namespace(child)?;
                return Ok(Watched { status, timed_out: limit.is_none() && !cancelled, limit, cancelled });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A cold run's exit code (None when it died of a signal, bubblewrap's 128 + N included) and the limit its signal
    /// means; a bubblewrap that could not set the sandbox up is an error.
    fn exit_meaning(
        &self,
        status: std::process::ExitStatus,
        stdout: &[u8],
        stderr: &[u8],
        mut limit: Option<LimitHit>,
    ) -> std::io::Result<(Option<i32>, Option<LimitHit>)> {
        let signal = std::os::unix::process::ExitStatusExt::signal(&status);
        let mut code = signal.map_or(status.code(), |_| None);
        if let (Isolation::Bubblewrap(_), Some(c)) = (self.isolation, code) {
            if c == 1 && stdout.is_empty() && String::from_utf8_lossy(stderr).starts_with("bwrap: ") {
                return Err(std::io::Error::other(format!("the sandbox could not be set up: {}", String::from_utf8_lossy(stderr).trim())));
            }
            // bubblewrap exits 128 + N when the tool died of signal N.
            if (129..=128 + 64).contains(&c) {
                limit = limit.or_else(|| self.limits.hit_by_signal(c - 128));
                code = None;
            }
        }
        if let Some(sig) = signal {
            limit = limit.or_else(|| self.limits.hit_by_signal(sig));
        }
        Ok((code, limit))
    }

    /// In the child, before the program starts: die with the service, the run's rlimits, its cgroup.
    #[allow(unsafe_code)]
    fn in_child(&self, c: &mut Command, cgroup_procs: Vec<std::ffi::CString>) {
        let rlimits = self.limits.rlimits(cgroup_procs.is_empty());
        // SAFETY: prctl, setrlimit, open and write are async-signal-safe; `rlimits` and `cgroup_procs` were built before fork.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(c, move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                for (resource, value) in &rlimits {
                    let l = libc::rlimit { rlim_cur: *value, rlim_max: *value };
                    if libc::setrlimit(*resource, &l) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                cgroup::join_from_child(&cgroup_procs)
            });
        }
    }
}

/// Say why a run is being stopped: the limit it reached, or its timeout.
pub(crate) fn log_stopped(cmd: &ToolCommand, limit: Option<LimitHit>) {
    match limit {
        Some(hit) => {
            tracing::warn!(program = %cmd.program.display(), %hit, "tool reached a sandbox limit; killing it and everything it started")
        }
        None => tracing::warn!(
            program = %cmd.program.display(),
            timeout_secs = cmd.timeout.as_secs(),
            "tool timed out; killing it and everything it started"
        ),
    }
}

/// Read a pipe up to `cap` bytes; past it, flag `over` and stop (the run is then killed).
fn capped_reader(mut pipe: impl Read + Send + 'static, cap: u64, over: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = (&mut pipe).take(cap).read_to_end(&mut buf);
        let mut one = [0u8; 1];
        if matches!(pipe.read(&mut one), Ok(1)) {
            over.store(true, Ordering::Relaxed);
        }
        buf
    })
}

/// The environment every tool gets, built from nothing: `PATH` with the tools first, `HOME` and `TMPDIR` in scratch, a UTF-8 locale.
pub(crate) fn scrubbed_env(command: &mut Command, bin_dir: &Path, scratch: &Path) {
    command.env_clear();
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", bin_dir.display());
    command
        .env("PATH", path)
        .env("HOME", scratch)
        .env("TMPDIR", scratch)
        .env("LANG", "C.UTF-8")
        .env("LC_ALL", "C.UTF-8")
        .env("PYTHONDONTWRITEBYTECODE", "1");
}

/// SIGKILL `bwrap` (and with it, through `--die-with-parent`, the namespace's first process), then wait until that
/// first process is dead: the kernel lets it finish dying only once every process of its PID namespace is gone,
/// so nothing the tool started outlives this call.
pub(crate) fn kill_namespace(child: &mut std::process::Child) -> std::io::Result<std::process::ExitStatus> {
    let pid = child.id();
    let inner: Vec<u32> = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    let _ = child.kill();
    let status = child.wait()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    for p in inner {
        while Instant::now() < deadline {
            let state = std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| s.rsplit_once(") ").and_then(|(_, r)| r.chars().next()));
            match state {
                None | Some('Z') | Some('X') => break,
                Some(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }
    Ok(status)
}

fn join_reader(t: Option<std::thread::JoinHandle<Vec<u8>>>) -> Vec<u8> {
    t.and_then(|t| t.join().ok()).unwrap_or_default()
}

/// SIGKILL a whole process group (the fallback isolation).
#[allow(unsafe_code)]
fn kill_group(pgid: u32) {
    if let Ok(pgid) = i32::try_from(pgid) {
        // SAFETY: kill(2) with a negative pid signals a process group; no memory is touched.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// The fixed path inside the sandbox where the tree under test is mounted.
pub fn scan_mount_point(work_dir: &Path) -> PathBuf {
    work_dir.join("scan-root")
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sandbox_with(limits: Limits) -> Sandbox {
        Sandbox::new(&SandboxConfig { limits, ..SandboxConfig::default() }).unwrap_or_else(|e| panic!("{e}"))
    }

    fn scratch(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("prci-sandbox-test-{}-{name}", std::process::id()))
    }

    fn cmd(name: &str, script: &str, timeout: Duration) -> ToolCommand {
        ToolCommand {
            program: PathBuf::from("/bin/sh"),
            args: vec!["-c".into(), script.into()],
            bin_dir: PathBuf::from("/usr/bin"),
            scratch: scratch(name),
            timeout,
            ..ToolCommand::default()
        }
    }

    fn stdout(out: &ToolOutput) -> String {
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn running(marker: &str) -> bool {
        let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
        String::from_utf8_lossy(&ps.stdout).contains(marker)
    }

    #[test]
    fn environment_is_scrubbed() {
        std::env::set_var("PRCI_TEST_SECRET_TOKEN", "hunter2");
        let out = sandbox_with(Limits::default()).run(&cmd("env", "env", Duration::from_secs(30))).unwrap();
        let env = stdout(&out);
        assert!(!env.contains("hunter2"), "{env}");
        assert!(env.contains("LANG=C.UTF-8"));
        assert_eq!(out.code, Some(0));
    }

    #[test]
    fn tools_are_an_unprivileged_user_without_network_host_files_or_host_processes() {
        let script = "id -u; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; ls /; ls /proc | grep -c '^[0-9]'; \
            tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; \
            mount -o remount,rw /usr 2>&1 && echo REMOUNTED; echo x > /usr/prci-test 2>&1 || echo RO; \
            (exec 3<>/dev/tcp/127.0.0.1/22) 2>/dev/null && echo CONNECTED; true";
        let mut c = cmd("identity", "", Duration::from_secs(30));
        c.program = PathBuf::from("/bin/bash");
        c.args = vec!["-c".into(), script.into()];
        let out = sandbox_with(Limits::default()).run_cold(&c).unwrap();
        let text = stdout(&out);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], bwrap::SANDBOX_UID.to_string(), "{text}");
        assert!(text.contains("CapEff:\t0000000000000000") && text.contains("NoNewPrivs:\t1"), "{text}");
        for host_only in ["root", "home", "work", "etc/shadow", "var/lib"] {
            assert!(!lines.contains(&host_only), "{host_only} is visible: {text}");
        }
        assert!(lines.contains(&"lo"), "{text}");
        assert!(!text.contains("eth") && !text.contains("REMOUNTED") && !text.contains("CONNECTED"), "{text}");
        assert!(text.contains("RO"), "{text}");
    }

    #[test]
    fn tools_and_their_children_get_the_rlimits() {
        let limits = Limits { file_bytes: 1 << 20, cpu: Duration::from_secs(77), ..Limits::default() };
        for enabled in [true, false] {
            let sandbox = Sandbox::new(&SandboxConfig { enabled, limits, ..SandboxConfig::default() }).unwrap();
            // A grandchild, as ebuild code run by pkgcore would be.
            let out = sandbox.run_cold(&cmd("rlimits", "sh -c 'cat /proc/self/limits'", Duration::from_secs(30))).unwrap();
            let limits_text = stdout(&out);
            let row = |name: &str| -> Vec<String> {
                let line = limits_text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name}: {limits_text}"));
                line[name.len()..].split_whitespace().map(str::to_owned).collect()
            };
            assert_eq!(row("Max file size")[..2], ["1048576", "1048576"], "{limits_text}");
            assert_eq!(row("Max core file size")[..2], ["0", "0"], "{limits_text}");
            assert_eq!(row("Max cpu time")[..2], ["77", "77"], "{limits_text}");
        }
        // A write past the limit stops there (the writer gets SIGXFSZ); a tool that dies of it says so.
        let out = sandbox_with(limits)
            .run_cold(&cmd("fsize", "head -c 2000000 /dev/zero > big; stat -c %s big", Duration::from_secs(60)))
            .unwrap();
        assert_eq!(stdout(&out).trim(), "1048576");
        let out = sandbox_with(limits).run_cold(&cmd("fsize2", "exec head -c 2000000 /dev/zero > big2", Duration::from_secs(60))).unwrap();
        assert_eq!(out.limit, Some(LimitHit::FileSize(1 << 20)), "{out:?}");
    }

    #[test]
    fn a_hang_is_killed_with_its_children() {
        let marker = format!("prci-sandbox-sleeper-{}", std::process::id());
        // A child that escapes into its own process group, like pkgcore's ebuild daemons.
        let script = format!("setsid sh -c 'exec -a {marker} sleep 300' & sleep 300");
        let out = sandbox_with(Limits::default()).run(&cmd("hang", &script, Duration::from_millis(500))).unwrap();
        assert!(out.timed_out && out.limit.is_none());
        assert_eq!(out.code, None);
        assert!(!running(&marker), "a child survived the kill");
    }

    #[test]
    fn nothing_a_run_detached_outlives_it() {
        let marker = format!("prci-sandbox-detached-{}", std::process::id());
        let script = format!("setsid sh -c 'exec -a {marker} sleep 300' </dev/null >/dev/null 2>&1 & echo started");
        let out = sandbox_with(Limits::default()).run_cold(&cmd("detached", &script, Duration::from_secs(30))).unwrap();
        assert_eq!((out.code, stdout(&out).trim()), (Some(0), "started"));
        assert!(!running(&marker), "a detached process outlived its run");
    }

    #[test]
    fn endless_output_is_stopped_at_its_limit() {
        let limits = Limits { stdout_bytes: 1 << 20, stderr_bytes: 1 << 16, ..Limits::default() };
        let out = sandbox_with(limits).run_cold(&cmd("yes", "yes", Duration::from_secs(120))).unwrap();
        assert_eq!(out.limit, Some(LimitHit::Stdout(1 << 20)));
        assert_eq!(out.stdout.len(), 1 << 20);
        let out = sandbox_with(limits).run_cold(&cmd("yes2", "yes >&2", Duration::from_secs(120))).unwrap();
        assert_eq!(out.limit, Some(LimitHit::Stderr(1 << 16)));
        assert!(!out.timed_out);
    }

    #[test]
    fn a_run_is_bounded_in_processes_and_memory_as_a_whole() {
        let root = current_uid() == 0;
        assert!(!root || cgroup::hierarchy().is_some(), "running as root, yet no cgroup for tool runs");
        let limits = Limits { processes: 64, memory_bytes: 64 << 20, ..Limits::default() };
        let bomb = "f() { f | f & }; f; sleep 100";
        let out = sandbox_with(limits).run_cold(&cmd("bomb", bomb, Duration::from_secs(120))).unwrap();
        assert!(!out.timed_out, "{out:?}");
        if cgroup::hierarchy().is_some() {
            assert_eq!(out.limit, Some(LimitHit::Processes(64)));
            let out = sandbox_with(limits)
                .run_cold(&cmd("memory", "head -c 400000000 /dev/zero | tail -c 300000000 | wc -c", Duration::from_secs(120)))
                .unwrap();
            assert_eq!(out.limit, Some(LimitHit::Memory(64 << 20)), "{}", out.stderr_text());
        }
    }

    fn current_uid() -> u32 {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Uid:").and_then(|r| r.split_whitespace().next()?.parse().ok())))
            .unwrap_or(u32::MAX)
    }

    #[test]
    fn the_tree_is_read_only_and_its_md5_cache_writable_only_for_regen() {
        let sandbox = sandbox_with(Limits::default());
        let base = scratch("ro");
        let (tree, mount) = (base.join("tree"), base.join("mount"));
        std::fs::create_dir_all(tree.join("metadata/md5-cache")).unwrap();
        std::fs::write(tree.join("file"), "original\n").unwrap();
        let script = "echo changed > \"$0/file\"; echo entry > \"$0/metadata/md5-cache/x\"; cat \"$0/file\"; ls \"$1\" 2>&1 | head -1";
        for regen in [false, true] {
            let mut c = cmd("ro-run", "", Duration::from_secs(30));
            c.args = vec!["-c".into(), script.into(), mount.display().to_string(), tree.display().to_string()];
            c.bind = Some((tree.clone(), mount.clone()));
            c.write_md5_cache = regen;
            let out = sandbox.run(&c).unwrap();
            assert!(stdout(&out).starts_with("original\n"), "{}", out.stderr_text());
            assert!(stdout(&out).contains("No such file"), "the tree's real path is visible: {}", stdout(&out));
            assert!(out.stderr_text().contains("Read-only file system"), "{}", out.stderr_text());
            assert_eq!(std::fs::read_to_string(tree.join("file")).unwrap(), "original\n");
            assert_eq!(tree.join("metadata/md5-cache/x").exists(), regen);
        }
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_targeted_regen_writes_only_its_categories_of_the_md5_cache() {
        let sandbox = sandbox_with(Limits::default());
        let base = scratch("cats");
        let (tree, mount) = (base.join("tree"), base.join("mount"));
        std::fs::create_dir_all(tree.join("metadata/md5-cache/cat-b")).unwrap();
        // A link left where a category directory goes is replaced by a directory, never followed.
        std::os::unix::fs::symlink(&base, tree.join("metadata/md5-cache/cat-a")).unwrap();
        let mut c = cmd("cats-run", "", Duration::from_secs(30));
        let script = "for d in cat-a cat-b .; do echo x > \"$0/metadata/md5-cache/$d/w\" && echo \"$d ok\"; done; true";
        c.args = vec!["-c".into(), script.into(), mount.display().to_string()];
        c.bind = Some((tree.clone(), mount.clone()));
        c.write_md5_cache = true;
        c.md5_cache_categories = Some(vec!["cat-a".into(), "../escape".into()]);
        let out = sandbox.run_cold(&c).unwrap();
        assert_eq!(stdout(&out), "cat-a ok\n", "{}", out.stderr_text());
        assert!(tree.join("metadata/md5-cache/cat-a").symlink_metadata().unwrap().is_dir());
        assert!(tree.join("metadata/md5-cache/cat-a/w").is_file() && !base.join("w").exists());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_regen_that_leaves_too_much_in_the_md5_cache_says_so() {
        let limits = Limits { md5_cache_bytes: 1 << 20, ..Limits::default() };
        let base = scratch("md5");
        let (tree, mount) = (base.join("tree"), base.join("mount"));
        std::fs::create_dir_all(tree.join("metadata/md5-cache")).unwrap();
        for (bytes, hit) in [(100_000, None), (2_000_000, Some(LimitHit::Md5CacheSize(1 << 20)))] {
            let mut c = cmd("md5-run", "", Duration::from_secs(30));
            c.args = vec!["-c".into(), format!("head -c {bytes} /dev/zero > \"$0/metadata/md5-cache/x\""), mount.display().to_string()];
            c.bind = Some((tree.clone(), mount.clone()));
            c.write_md5_cache = true;
            let out = sandbox_with(limits).run(&c).unwrap();
            assert_eq!(out.limit, hit, "{}", out.stderr_text());
        }
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_run_filling_the_md5_cache_is_stopped_while_it_runs() {
        let limits = Limits { md5_cache_bytes: 1 << 20, ..Limits::default() };
        let base = scratch("md5-fill");
        let (tree, mount) = (base.join("tree"), base.join("mount"));
        std::fs::create_dir_all(tree.join("metadata/md5-cache/cat-a")).unwrap();
        // Files of 256 KiB, each below any per-file limit, written on and on: only the total can stop it.
        let fill =
            "i=0; while :; do head -c 262144 /dev/zero > \"$0/metadata/md5-cache/cat-a/f$i\" || exit 4; i=$((i+1)); sleep 0.05; done";
        for categories in [None, Some(vec!["cat-a".to_string()])] {
            // A timeout far beyond the few seconds the cap takes to fill, so that only the watch stops the run.
            let mut c = cmd("md5-fill-run", "", Duration::from_secs(120));
            c.args = vec!["-c".into(), fill.into(), mount.display().to_string()];
            c.bind = Some((tree.clone(), mount.clone()));
            c.write_md5_cache = true;
            c.md5_cache_categories = categories;
            let out = sandbox_with(limits).run(&c).unwrap();
            assert_eq!(out.limit, Some(LimitHit::Md5CacheSize(1 << 20)), "{}", out.stderr_text());
            assert!(!out.timed_out, "{out:?}");
            let written = limits::tree_bytes(&tree.join("metadata/md5-cache"), u64::MAX);
            // Stopped within a few looks of the cap, not at the timeout.
            assert!(written < 64 << 20, "{written} bytes written before the run was stopped");
            std::fs::remove_dir_all(tree.join("metadata/md5-cache/cat-a")).unwrap();
            std::fs::create_dir_all(tree.join("metadata/md5-cache/cat-a")).unwrap();
        }
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn stdin_reaches_the_tool() {
        let mut c = cmd("stdin", "cat", Duration::from_secs(30));
        c.stdin = Some(b"app-misc/foo\n".to_vec());
        let out = sandbox_with(Limits::default()).run(&c).unwrap();
        assert_eq!(out.stdout, b"app-misc/foo\n");
    }

    #[test]
    fn unsandboxed_only_when_asked_and_then_in_a_process_group_of_its_own() {
        let sandbox = Sandbox::new(&SandboxConfig { enabled: false, ..SandboxConfig::default() }).unwrap();
        assert!(sandbox.unsandboxed() && !sandbox.can_bind());
        let out = sandbox.run(&cmd("unsandboxed", "ps -o pgid= -p $$; ps -o pid= -p $$", Duration::from_secs(30))).unwrap();
        let ids: Vec<String> = stdout(&out).split_whitespace().map(str::to_owned).collect();
        assert_eq!(ids.len(), 2, "{ids:?}");
        assert_eq!(ids[0], ids[1], "the tool leads its own process group");
    }
}
