//! Warm tool processes: one sandboxed Python process per side of a job that imports pkgcheck and pkgcore once and forks for each tool run, so a job pays Python's start-up once per side instead of once per run.
//!
//! `Sandbox::run` hands a run of `pkgcheck`, `pmaint` or a prci Python script (`python3 x.py`) to the
//! warm process of its job's side (the same sandbox a cold run gets: tree, masters, writable directories,
//! limits, cgroup; the server script is `warm_tools.py`). A server serves one side of one job at most: its
//! view names the side's scratch directory, and a server whose directories are gone (the job ended) is
//! killed with everything in its namespace the next time the pool is used. Its sandbox binds writable
//! every directory one of the side's runs writes (the md5-cache when it was started for a regen, the
//! kept pkgcheck cache); each run gets a child namespace of its own where the ones it may not write are
//! read-only (`ToolCommand::shared_writable`, and the md5-cache for anything but a regen), and where
//! nested namespaces are not allowed such a run goes cold. After each run the server kills every other
//! process in its namespace, so nothing a run leaves behind sees the next. Each run gets its own files
//! for fds 0/1/2, its own `HOME`, `TMPDIR` and working directory. A run past its timeout or a limit kills
//! the whole sandbox, server included (the next run starts a new one), exactly as a cold run is killed.
//! Anything unexpected (no Python next to the tool, a server that does not come up or dies) falls back
//! to a cold run.

use crate::cgroup::RunCgroup;
use crate::{LimitHit, Sandbox, ToolCommand, ToolOutput};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

const SERVER_SCRIPT: &str = include_str!("python/warm_tools.py");

/// What a child that could not get its own view writes first on stderr (`NO_VIEW` in warm_tools.py), exiting 125.
const NO_VIEW: &str = "prci-warm: no view of its own:";

/// How long a new server may take to import the tools.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether warm processes are used: on, unless `PRCI_WARM_TOOLS=0`.
pub fn enabled() -> bool {
    std::env::var("PRCI_WARM_TOOLS").map_or(true, |v| v != "0")
}

/// The tool a command runs, as the server names it. pkgcheck and pmaint only when the program is
/// the environment's own console script for them (a configured wrapper is run as it is, cold).
fn tool_of(cmd: &ToolCommand) -> Option<(&'static str, Vec<String>)> {
    let name = cmd.program.file_name()?.to_str()?;
    let console_script = |module: &str| {
        let head = std::fs::read(&cmd.program).ok().map(|b| String::from_utf8_lossy(&b[..b.len().min(1024)]).into_owned());
        cmd.program.parent() == Some(cmd.bin_dir.as_path())
            && head.is_some_and(|h| h.contains(&format!("from {module}.scripts.__init__ import main")))
    };
    match name {
        "pkgcheck" if console_script("pkgcheck") => Some(("pkgcheck", cmd.args.clone())),
        "pmaint" if console_script("pkgcore") => Some(("pmaint", cmd.args.clone())),
        "python3" | "python" if cmd.args.first().is_some_and(|a| a.ends_with(".py")) => Some(("python", cmd.args.clone())),
        _ => None,
    }
}

/// One server per side of a job: tree (bind source, as of its inode) and mount point, tool environment, masters,
/// and every writable directory of the side (a run's own and its shared ones).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    bind: Option<(PathBuf, PathBuf, u64)>,
    bin_dir: PathBuf,
    read_only: Vec<PathBuf>,
    writable: Vec<PathBuf>,
    scratch: PathBuf,
}

impl Key {
    /// Whether the job this server was started for is over (its directories are gone) or its tree was replaced.
    fn stale(&self) -> bool {
        let replaced = self.bind.as_ref().is_some_and(|(src, _, ino)| std::fs::metadata(src).map_or(true, |m| m.ino() != *ino));
        replaced || !self.scratch.is_dir() || self.writable.iter().any(|w| !w.is_dir())
    }
}

struct Server {
    child: Child,
    requests: ChildStdin,
    answers: Receiver<String>,
    cgroup: Option<RunCgroup>,
    /// The md5-cache's path inside the sandbox, when the server was started writable there (for a regen).
    md5_cache: Option<PathBuf>,
    /// Every directory its sandbox binds writable at its own path.
    writable: Vec<PathBuf>,
    /// Whether a run can be given a view of its own (until a child says nested user namespaces are refused here).
    nested: bool,
}

/// A run's own view inside its server's sandbox (its child's namespace).
struct View {
    /// What the server's sandbox can write and this run may not: remounted read-only.
    read_only: Vec<PathBuf>,
    /// Directories inside those it may write all the same (a targeted regen's md5-cache categories).
    keep_writable: Vec<PathBuf>,
}

impl Server {
    /// The view `cmd` gets in this server's sandbox.
    fn view_for(&self, cmd: &ToolCommand) -> View {
        let categories = cmd.md5_cache_categories.as_ref().filter(|_| cmd.write_md5_cache);
        let md5 = self.md5_cache.clone().filter(|_| !cmd.write_md5_cache || categories.is_some());
        let keep: Vec<PathBuf> = match (&md5, categories) {
            (Some(md5), Some(cats)) => cats.iter().map(|c| md5.join(c)).collect(),
            _ => vec![],
        };
        let others = self.writable.iter().filter(|w| !cmd.writable.contains(w) && **w != cmd.scratch).cloned();
        View { read_only: md5.into_iter().chain(others).collect(), keep_writable: keep }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = crate::kill_namespace(&mut self.child);
        if let Some(cg) = &self.cgroup {
            cg.kill_all();
        }
    }
}

/// One server's place in the pool: held while a run uses it (or while it starts).
type Slot = Arc<Mutex<Option<Server>>>;
type Pool = Mutex<HashMap<Key, Slot>>;

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The pool slot of the server `cmd` would run in, its interpreter and the command that starts it (`cmd` with every
/// writable directory of its side); None when it runs cold.
fn slot_of(sandbox: &Sandbox, cmd: &ToolCommand) -> Option<(Slot, PathBuf, ToolCommand)> {
    if !enabled() || !sandbox.can_bind() {
        return None;
    }
    let python = cmd.bin_dir.join("python3");
    if !python.is_file() {
        return None;
    }
    let bind = match &cmd.bind {
        Some((src, dst)) => Some((src.clone(), dst.clone(), std::fs::metadata(src).ok()?.ino())),
        None => None,
    };
    let mut writable: Vec<PathBuf> = cmd.writable.iter().chain(&cmd.shared_writable).cloned().collect();
    writable.sort();
    writable.dedup();
    let key = Key { bind, bin_dir: cmd.bin_dir.clone(), read_only: cmd.read_only.clone(), writable, scratch: cmd.scratch.clone() };
    let view = ToolCommand { writable: key.writable.clone(), shared_writable: vec![], md5_cache_categories: None, ..cmd.clone() };
    retire_stale();
    let mut pool = pool().lock().ok()?;
    Some((pool.entry(key).or_default().clone(), python, view))
}

/// Kill the servers of jobs that are over (their scratch directories are gone) or whose tree was replaced, with
/// everything in their namespaces. Their slots are taken out of the pool first, so a run still holding one
/// finishes before its server goes.
pub fn retire_stale() {
    let stale: Vec<Slot> = match pool().lock() {
        Ok(mut pool) => {
            let keys: Vec<Key> = pool.keys().filter(|k| k.stale()).cloned().collect();
            keys.iter().filter_map(|k| pool.remove(k)).collect()
        }
        Err(_) => return,
    };
    for slot in stale {
        if let Ok(mut server) = slot.lock() {
            *server = None;
        }
    }
}

/// Kill every server of this process with everything in its namespace, and wait for them: a command that is about to
/// exit leaves nothing behind (the parent-death signal would, but a moment after the exit).
pub fn shutdown() {
    let all: Vec<Slot> = match pool().lock() {
        Ok(mut pool) => pool.drain().map(|(_, slot)| slot).collect(),
        Err(_) => return,
    };
    for slot in all {
        if let Ok(mut server) = slot.lock() {
            *server = None;
        }
    }
}

/// Make sure the server for `slot` is up with the view `cmd` needs (the lock is held by the caller): one started
/// with a read-only md5-cache is replaced for a regen.
fn ensure_started(sandbox: &Sandbox, server: &mut Option<Server>, cmd: &ToolCommand, python: &Path) -> bool {
    if cmd.write_md5_cache && server.as_ref().is_some_and(|s| s.md5_cache.is_none()) {
        *server = None;
    }
    if server.is_none() {
        match spawn(sandbox, cmd, python) {
            Ok(s) => *server = Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "no warm tool process; running tools cold");
                return false;
            }
        }
    }
    true
}

/// Start the warm process the tools of `cmd` (its tree and tool directory) will use, in the background,
/// so its imports overlap other work (a checkout). Later runs wait for it.
pub fn prestart(sandbox: &Sandbox, cmd: &ToolCommand) {
    let Some((slot, python, view)) = slot_of(sandbox, cmd) else { return };
    let (cmd, sandbox) = (view, *sandbox);
    let (started_tx, started_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Ok(mut server) = slot.lock() else { return };
        let _ = started_tx.send(());
        ensure_started(&sandbox, &mut server, &cmd, &python);
    });
    // Return once the slot is held, so a run that follows waits for this server instead of starting its own.
    let _ = started_rx.recv_timeout(Duration::from_secs(5));
}

/// Run `cmd` in a warm process; None when it cannot be (the caller runs it cold).
pub fn run(sandbox: &Sandbox, cmd: &ToolCommand) -> Option<std::io::Result<ToolOutput>> {
    let (tool, args) = tool_of(cmd)?;
    let (slot, python, view) = slot_of(sandbox, cmd)?;
    let mut server = slot.lock().ok()?;
    if !ensure_started(sandbox, &mut server, &view, &python) {
        return None;
    }
    let s = server.as_mut()?;
    let checked = cmd.with_category_dirs().ok()?;
    let cmd = checked.as_ref();
    let view = s.view_for(cmd);
    if !view.read_only.is_empty() && !s.nested {
        return None; // no view of its own can be made for it here: a sandbox of its own
    }
    let start = Instant::now();
    let outcome = request(sandbox, s, cmd, tool, &args, &view);
    tracing::debug!(tool, read_only = ?view.read_only, elapsed = ?start.elapsed(), "warm run");
    match outcome {
        Request::Done(out) if out.code == Some(125) && out.stderr.starts_with(NO_VIEW.as_bytes()) => {
            tracing::warn!(reason = %out.last_stderr_line(), "no nested namespace for a warm run's own view here; such runs go cold");
            s.nested = false;
            None
        }
        Request::Done(out) => Some(Ok(out)),
        Request::Stopped(out) => {
            *server = None; // killed, and with it everything the run started
            Some(Ok(out))
        }
        Request::Broken(why) => {
            tracing::warn!(reason = %why, "warm tool process failed; running this tool cold");
            *server = None;
            None
        }
    }
}

enum Request {
    Done(ToolOutput),
    /// Timed out, reached a limit, or left processes the server could not kill: the server is gone.
    Stopped(ToolOutput),
    Broken(String),
}

static RUN_ID: AtomicU64 = AtomicU64::new(0);

/// The files a warm run's stdin, stdout and stderr go through, in its scratch directory.
struct RunFiles {
    stdin: PathBuf,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl RunFiles {
    /// New regular files for one run (never through a link a run left in their place), stdin holding `cmd`'s input.
    fn make(cmd: &ToolCommand) -> Result<RunFiles, String> {
        std::fs::create_dir_all(&cmd.scratch).map_err(|e| format!("scratch dir: {e}"))?;
        let n = RUN_ID.fetch_add(1, Ordering::Relaxed);
        let file = |ext: &str| cmd.scratch.join(format!("prci-run-{}-{n}.{ext}", std::process::id()));
        let files = RunFiles { stdin: file("in"), stdout: file("out"), stderr: file("err") };
        let made = fresh_file(&files.stdout).and_then(|_| fresh_file(&files.stderr)).and_then(|_| match &cmd.stdin {
            Some(data) => fresh_file(&files.stdin)?.write_all(data),
            None => Ok(()),
        });
        made.map_err(|e| format!("run files: {e}"))?;
        Ok(files)
    }

    /// At most `cap` bytes of one of the files, only if it is still a regular file.
    fn read(p: &Path, cap: u64) -> Vec<u8> {
        let mut buf = Vec::new();
        let opened = std::fs::File::options().read(true).custom_flags(libc::O_NOFOLLOW).open(p);
        if let Ok(f) = opened.and_then(|f| if f.metadata()?.is_file() { Ok(f) } else { Err(std::io::Error::other("not a file")) }) {
            let _ = f.take(cap).read_to_end(&mut buf);
        }
        buf
    }

    /// The limit an output file has gone past while the run goes on.
    fn over_limit(&self, limits: &crate::limits::Limits) -> Option<LimitHit> {
        let size = |p: &Path| std::fs::symlink_metadata(p).map_or(0, |m| m.len());
        if size(&self.stdout) > limits.stdout_bytes {
            Some(LimitHit::Stdout(limits.stdout_bytes))
        } else if size(&self.stderr) > limits.stderr_bytes {
            Some(LimitHit::Stderr(limits.stderr_bytes))
        } else {
            None
        }
    }

    fn remove(&self) {
        for p in [&self.stdin, &self.stdout, &self.stderr] {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The request line the server's loop reads for one run of `tool` in `view`.
fn request_line(cmd: &ToolCommand, tool: &str, args: &[String], view: &View, files: &RunFiles) -> Value {
    let mut env: serde_json::Map<String, Value> = serde_json::Map::new();
    env.insert("HOME".into(), json!(cmd.scratch));
    env.insert("TMPDIR".into(), json!(cmd.scratch));
    for (k, v) in &cmd.env {
        env.insert(k.clone(), json!(v));
    }
    json!({
        "tool": tool,
        "args": args,
        "stdin": cmd.stdin.as_ref().map(|_| files.stdin.clone()),
        "stdout": files.stdout,
        "stderr": files.stderr,
        "cwd": cmd.scratch,
        "env": env,
        "read_only": view.read_only,
        "keep_writable": view.keep_writable,
    })
}

/// Wait for the server's answer until `deadline`, watching the run's output sizes, its cgroup's events and its md5-cache
/// meanwhile: the answer, or why there is none (a timeout, with the limit the run reached if that stopped the wait).
fn await_answer(
    s: &Server,
    cmd: &ToolCommand,
    limits: &crate::limits::Limits,
    files: &RunFiles,
    deadline: Instant,
) -> (Result<String, RecvTimeoutError>, Option<LimitHit>) {
    let mut md5 = crate::Md5Watch::of(cmd, limits.md5_cache_bytes);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match s.answers.recv_timeout(left.min(Duration::from_millis(100))) {
            Err(RecvTimeoutError::Timeout) if cmd.cancelled() => return (Err(RecvTimeoutError::Timeout), None),
            Err(RecvTimeoutError::Timeout) if !left.is_zero() => {
                let hit = files.over_limit(limits).or_else(|| s.cgroup.as_ref().and_then(RunCgroup::hit));
                let hit = hit.or_else(|| md5.as_mut().and_then(crate::Md5Watch::poll));
                if hit.is_some() {
                    return (Err(RecvTimeoutError::Timeout), hit);
                }
            }
            other => return (other, None),
        }
    }
}

fn request(sandbox: &Sandbox, s: &mut Server, cmd: &ToolCommand, tool: &str, args: &[String], view: &View) -> Request {
    let files = match RunFiles::make(cmd) {
        Ok(files) => files,
        Err(e) => return Request::Broken(e),
    };
    let req = request_line(cmd, tool, args, view, &files);
    let start = Instant::now();
    if let Err(e) = writeln!(s.requests, "{req}").and_then(|_| s.requests.flush()) {
        return Request::Broken(format!("write request: {e}"));
    }
    let limits = &sandbox.limits;
    let (answer, limit) = await_answer(s, cmd, limits, &files, start + cmd.timeout);
    let finish = |code: Option<i32>, timed_out: bool, limit: Option<LimitHit>| {
        let stdout = RunFiles::read(&files.stdout, limits.stdout_bytes);
        let stderr = RunFiles::read(&files.stderr, limits.stderr_bytes);
        let cancelled = code.is_none() && cmd.cancelled();
        let timed_out = timed_out && !cancelled;
        files.remove();
        ToolOutput { code, stdout, stderr, timed_out, limit, cancelled, elapsed: start.elapsed() }
    };
    match answer {
        Ok(line) => match serde_json::from_str::<Value>(&line) {
            Ok(v) => {
                let code = v.get("code").and_then(Value::as_i64).and_then(|c| i32::try_from(c).ok());
                let signal = v.get("signal").and_then(Value::as_i64).and_then(|c| i32::try_from(c).ok());
                let limit = signal.and_then(|sig| limits.hit_by_signal(sig)).or_else(|| s.cgroup.as_ref().and_then(RunCgroup::hit));
                let out = finish(code, false, limit);
                if limit.is_some() || v.get("clean") == Some(&Value::Bool(false)) {
                    // Its cgroup's counters now hold this run's hit, or something survived the sweep: a new server.
                    Request::Stopped(out)
                } else {
                    Request::Done(out)
                }
            }
            Err(e) => Request::Broken(format!("bad answer {line:?}: {e}")),
        },
        Err(RecvTimeoutError::Timeout) => {
            if !cmd.cancelled() {
                crate::log_stopped(cmd, limit);
            }
            let _ = crate::kill_namespace(&mut s.child);
            if let Some(cg) = &s.cgroup {
                cg.kill_all();
            }
            Request::Stopped(finish(None, limit.is_none(), limit))
        }
        Err(RecvTimeoutError::Disconnected) => {
            files.remove();
            Request::Broken("the warm process exited".into())
        }
    }
}

fn spawn(sandbox: &Sandbox, cmd: &ToolCommand, python: &Path) -> std::io::Result<Server> {
    let cgroup = sandbox.run_cgroup();
    let mut c = sandbox.command(cmd, python, cgroup.as_ref())?;
    let md5_cache = cmd.bind.as_ref().filter(|_| cmd.write_md5_cache).map(|(_, dst)| crate::md5_cache_of(dst));
    let writable = cmd.writable.clone();
    // Isolated (`-I`): neither the working directory (the side's scratch, which runs write) nor any PYTHON* variable
    // decides what the server imports, even before its first line runs.
    c.arg("-I").arg("-c").arg(SERVER_SCRIPT);
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = spawn_from_long_lived_thread(c)?;
    let requests = child.stdin.take().ok_or_else(|| std::io::Error::other("no stdin"))?;
    let stdout = child.stdout.take().ok_or_else(|| std::io::Error::other("no stdout"))?;
    let stderr = child.stderr.take().ok_or_else(|| std::io::Error::other("no stderr"))?;
    let (tx, answers) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The server itself writes nothing to stderr unless it breaks: keep (the start of) it for the log.
    let (etx, erx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.take(64 * 1024).read_to_string(&mut text);
        let _ = etx.send(text);
    });
    let mut server = Server { child, requests, answers, cgroup, md5_cache, writable, nested: true };
    let start = Instant::now();
    match server.answers.recv_timeout(READY_TIMEOUT) {
        Ok(line) if line.contains("\"ready\"") => {
            tracing::debug!(scratch = %cmd.scratch.display(), elapsed = ?start.elapsed(), "warm tool process ready");
            Ok(server)
        }
        other => {
            let _ = crate::kill_namespace(&mut server.child);
            let stderr = erx.recv_timeout(Duration::from_secs(1)).unwrap_or_default();
            Err(std::io::Error::other(format!(
                "warm tool process did not start ({other:?}): {}",
                stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("")
            )))
        }
    }
}

/// A new, empty regular file at `path`, whatever was there before (a run may have left a link or a directory).
fn fresh_file(path: &Path) -> std::io::Result<std::fs::File> {
    match path.symlink_metadata() {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path)?,
        Ok(_) => std::fs::remove_file(path)?,
        Err(_) => {}
    }
    std::fs::File::options().write(true).create_new(true).custom_flags(libc::O_NOFOLLOW).mode(0o600).open(path)
}

type SpawnRequest = (Command, Sender<std::io::Result<Child>>);

/// Spawn from a thread that lives as long as the process: the sandbox's parent-death signal follows
/// the spawning *thread*, and a warm process must outlive the scan thread that first needed it.
fn spawn_from_long_lived_thread(c: Command) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<Option<Mutex<Sender<SpawnRequest>>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("prci-warm-spawner".into())
            .spawn(move || {
                for (mut c, reply) in rx {
                    let _ = reply.send(c.spawn());
                }
            })
            .ok()
            .map(|_| Mutex::new(tx))
    });
    let spawner = spawner.as_ref().ok_or_else(|| std::io::Error::other("no spawner thread"))?;
    let (reply, answer) = mpsc::channel();
    spawner
        .lock()
        .map_err(|_| std::io::Error::other("spawner poisoned"))?
        .send((c, reply))
        .map_err(|_| std::io::Error::other("spawner gone"))?;
    answer.recv().map_err(|_| std::io::Error::other("spawner gone"))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::ToolPaths;
    use crate::tools::{Tools, INSTALL_HINT};

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("prci-warm-test-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn command(tools: &Tools, program: PathBuf, args: &[&str], dir: &Path, timeout: Duration) -> ToolCommand {
        ToolCommand {
            program,
            args: args.iter().map(|a| a.to_string()).collect(),
            bin_dir: tools.bin_dir.clone(),
            scratch: dir.to_path_buf(),
            timeout,
            env: vec![("PRCI_TEST_VAR".into(), "set".into())],
            ..ToolCommand::default()
        }
    }

    fn processes_mentioning(needle: &str) -> usize {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .filter(|c| String::from_utf8_lossy(c).contains(needle))
            .count()
    }

    #[test]
    fn warm_runs_answer_like_cold_ones_and_a_hang_is_killed_with_what_it_started() {
        let sandbox = crate::tests::sandbox_with(crate::Limits::default());
        let tools = Tools::locate(&ToolPaths::default()).unwrap_or_else(|e| panic!("{e}: {INSTALL_HINT}"));
        let dir = scratch("runs");

        // The tool's own entry point: the same answer as a process of its own.
        let version = command(&tools, tools.pkgcheck.clone(), &["--version"], &dir, Duration::from_secs(60));
        let warm = run(&sandbox, &version).expect("pkgcheck runs warm").unwrap();
        let cold = sandbox.run_cold(&version).unwrap();
        assert_eq!((warm.code, &warm.stdout), (Some(0), &cold.stdout), "{}", warm.stderr_text());

        // A script: its stdin, environment, working directory and exit code are its own.
        let script = dir.join("echo.py");
        std::fs::write(&script, "import os, sys\nprint(sys.stdin.read().upper(), os.environ['PRCI_TEST_VAR'], os.getcwd() == os.environ['HOME'])\nsys.exit(3)\n").unwrap();
        let mut echo = command(&tools, tools.bin_dir.join("python3"), &[script.to_str().unwrap()], &dir, Duration::from_secs(60));
        echo.stdin = Some(b"abc".to_vec());
        let out = run(&sandbox, &echo).expect("scripts run warm").unwrap();
        assert_eq!((out.code, String::from_utf8_lossy(&out.stdout).trim()), (Some(3), "ABC set True"), "{}", out.stderr_text());

        // A hang: killed at its timeout, with the process it started; the next run gets a new server.
        let marker = format!("{}.{}", 86_000 + std::process::id() % 1000, 7);
        let hang = dir.join("hang.py");
        std::fs::write(&hang, format!("import subprocess, time\nsubprocess.Popen(['sleep', '{marker}'])\ntime.sleep(3600)\n")).unwrap();
        let hang_cmd = command(&tools, tools.bin_dir.join("python3"), &[hang.to_str().unwrap()], &dir, Duration::from_secs(2));
        let out = run(&sandbox, &hang_cmd).expect("runs warm").unwrap();
        assert!(out.timed_out && out.code.is_none(), "{out:?}");
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(processes_mentioning(&format!("sleep\0{marker}")), 0, "the hung run's child was left running");
        let again = run(&sandbox, &echo).expect("a new server").unwrap();
        assert_eq!(again.code, Some(3));

        // A configured wrapper around pkgcheck is not replaced by the real one.
        let wrapper = dir.join("pkgcheck");
        std::fs::write(&wrapper, "#!/bin/sh\necho wrapped\n").unwrap();
        std::os::unix::fs::PermissionsExt::set_mode(&mut std::fs::metadata(&wrapper).unwrap().permissions(), 0o755);
        let mut wrapped = command(&tools, wrapper, &["--version"], &dir, Duration::from_secs(60));
        wrapped.bin_dir = dir.clone();
        assert!(tool_of(&wrapped).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn nothing_a_warm_run_leaves_reaches_the_next_and_a_finished_jobs_server_goes() {
        let sandbox = crate::tests::sandbox_with(crate::Limits::default());
        let tools = Tools::locate(&ToolPaths::default()).unwrap_or_else(|e| panic!("{e}: {INSTALL_HINT}"));
        let dir = scratch("leave");
        let marker = format!("{}.{}", 87_000 + std::process::id() % 1000, 3);
        let script = dir.join("leave.py");
        std::fs::write(
            &script,
            format!("import subprocess\nsubprocess.Popen(['sleep', '{marker}'], start_new_session=True)\nprint('left')\n"),
        )
        .unwrap();
        let leave = command(&tools, tools.bin_dir.join("python3"), &[script.to_str().unwrap()], &dir, Duration::from_secs(60));
        let out = run(&sandbox, &leave).expect("runs warm").unwrap();
        assert_eq!((out.code, String::from_utf8_lossy(&out.stdout).trim()), (Some(0), "left"), "{}", out.stderr_text());
        assert_eq!(processes_mentioning(&format!("sleep\0{marker}")), 0, "a detached process outlived its warm run");
        let servers = || pool().lock().unwrap().keys().filter(|k| k.scratch == dir).count();
        assert_eq!(servers(), 1, "the job's server stays for its next run");
        std::fs::remove_dir_all(&dir).unwrap();
        retire_stale();
        assert_eq!(servers(), 0, "the server of a finished job is retired");
    }

    #[test]
    fn one_server_serves_a_jobs_side_and_each_run_writes_only_what_it_may() {
        let sandbox = crate::tests::sandbox_with(crate::Limits::default());
        let tools = Tools::locate(&ToolPaths::default()).unwrap_or_else(|e| panic!("{e}: {INSTALL_HINT}"));
        let dir = scratch("side");
        let (tree, mount, side, kept) = (dir.join("tree"), dir.join("mount"), dir.join("side"), dir.join("kept"));
        for cat in ["cat-a", "cat-b"] {
            std::fs::create_dir_all(tree.join("metadata/md5-cache").join(cat)).unwrap();
        }
        std::fs::create_dir_all(&kept).unwrap();
        std::fs::create_dir_all(side.join("home")).unwrap();
        let script = side.join("home").join("try.py");
        std::fs::write(
            &script,
            r#"import ctypes, errno, json, os, sys
mount, kept, side = sys.argv[1:4]
md5 = os.path.join(mount, "metadata", "md5-cache")
res = {"server": os.getppid()}
places = (("md5", md5), ("cat_a", os.path.join(md5, "cat-a")), ("cat_b", os.path.join(md5, "cat-b")), ("kept", kept), ("side", side))
for name, path in places:
    try:
        with open(os.path.join(path, "w"), "w") as f:
            f.write(name)
        res[name] = "ok"
    except OSError as e:
        res[name] = errno.errorcode[e.errno]
libc = ctypes.CDLL(None, use_errno=True)
res["remount"] = libc.mount(None, md5.encode(), None, ctypes.c_ulong(32 | 4096), None) == 0
res["umount"] = libc.umount2(md5.encode(), 2) == 0
print(json.dumps(res))
"#,
        )
        .unwrap();
        let args = [script.to_str().unwrap(), mount.to_str().unwrap(), kept.to_str().unwrap(), side.to_str().unwrap()];
        let run_as = |write_md5_cache: bool, writes_kept: bool, categories: Option<&[&str]>| {
            let mut c = command(&tools, tools.bin_dir.join("python3"), &args, &side.join("home"), Duration::from_secs(60));
            c.bind = Some((tree.clone(), mount.clone()));
            c.write_md5_cache = write_md5_cache;
            c.md5_cache_categories = categories.map(|cats| cats.iter().map(|c| c.to_string()).collect());
            (c.writable, c.shared_writable) =
                if writes_kept { (vec![side.clone(), kept.clone()], vec![]) } else { (vec![side.clone()], vec![kept.clone()]) };
            let out = run(&sandbox, &c).expect("runs warm").unwrap();
            assert_eq!(out.code, Some(0), "{}", out.stderr_text());
            serde_json::from_slice::<Value>(&out.stdout).unwrap()
        };
        let regen = run_as(true, false, None);
        let targeted = run_as(true, false, Some(&["cat-a"]));
        let (update, scan) = (run_as(false, true, None), run_as(false, false, None));
        let seen = |v: &Value| ["md5", "cat_a", "cat_b", "kept", "side"].map(|k| v[k].as_str().unwrap_or_default().to_owned());
        assert_eq!(seen(&regen), ["ok", "ok", "ok", "EROFS", "ok"], "a regen writes the md5-cache, not the kept cache: {regen}");
        assert_eq!(seen(&targeted), ["EROFS", "ok", "EROFS", "EROFS", "ok"], "a targeted regen writes its categories only: {targeted}");
        assert_eq!(seen(&update), ["EROFS", "EROFS", "EROFS", "ok", "ok"], "the cache update writes the kept cache only: {update}");
        assert_eq!(seen(&scan), ["EROFS", "EROFS", "EROFS", "EROFS", "ok"], "a scan writes neither: {scan}");
        for v in [&regen, &targeted, &update, &scan] {
            assert_eq!((&v["remount"], &v["umount"]), (&Value::Bool(false), &Value::Bool(false)), "a run changed its mounts: {v}");
        }
        let servers: std::collections::BTreeSet<String> =
            [&regen, &targeted, &update, &scan].iter().map(|v| v["server"].to_string()).collect();
        assert_eq!(servers.len(), 1, "one server for the side: {servers:?}");
        assert_eq!(std::fs::read_to_string(tree.join("metadata/md5-cache/w")).unwrap(), "md5");
        assert_eq!(std::fs::read_to_string(kept.join("w")).unwrap(), "kept");
        std::fs::remove_dir_all(&dir).unwrap();
        retire_stale();
    }

    #[test]
    fn modules_a_run_leaves_in_its_directory_are_never_imported_by_a_server() {
        let sandbox = crate::tests::sandbox_with(crate::Limits::default());
        let tools = Tools::locate(&ToolPaths::default()).unwrap_or_else(|e| panic!("{e}: {INSTALL_HINT}"));
        let dir = scratch("imports");
        let planted = dir.join("planted");
        for module in ["ctypes", "json", "select", "signal"] {
            std::fs::write(dir.join(format!("{module}.py")), format!("open({:?}, 'w').write('ran')\n", planted.display().to_string()))
                .unwrap();
        }
        let version = command(&tools, tools.pkgcheck.clone(), &["--version"], &dir, Duration::from_secs(60));
        let out = run(&sandbox, &version).expect("runs warm").unwrap();
        assert_eq!(out.code, Some(0), "{}", out.stderr_text());
        assert!(!planted.exists(), "the server imported a module from the directory runs write");
        std::fs::remove_dir_all(&dir).unwrap();
        retire_stale();
    }

    #[test]
    fn a_cancelled_run_is_killed_at_once_with_what_it_started_warm_or_cold() {
        let sandbox = crate::tests::sandbox_with(crate::Limits::default());
        let tools = Tools::locate(&ToolPaths::default()).unwrap_or_else(|e| panic!("{e}: {INSTALL_HINT}"));
        let dir = scratch("cancel");
        for (n, warm) in [(1, true), (2, false)] {
            let marker = format!("{}.{n}", 88_000 + std::process::id() % 1000);
            let script = dir.join(format!("hang{n}.py"));
            std::fs::write(&script, format!("import subprocess, time\nsubprocess.Popen(['sleep', '{marker}'])\ntime.sleep(3600)\n"))
                .unwrap();
            let mut cmd = command(&tools, tools.bin_dir.join("python3"), &[script.to_str().unwrap()], &dir, Duration::from_secs(120));
            let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
            cmd.cancel = Some(flag.clone());
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs(2));
                flag.store(true, Ordering::SeqCst);
            });
            let out = if warm { run(&sandbox, &cmd).expect("runs warm").unwrap() } else { sandbox.run_cold(&cmd).unwrap() };
            // Stopped by the flag, long before its timeout.
            assert!(out.cancelled && !out.timed_out && out.code.is_none(), "warm {warm}: {out:?}");
            std::thread::sleep(Duration::from_millis(300));
            assert_eq!(processes_mentioning(&format!("sleep\0{marker}")), 0, "warm {warm}: the cancelled run's child was left running");
            // A run of a cancelled job starts nothing.
            let out = sandbox.run(&cmd).unwrap();
            assert!(out.cancelled && out.elapsed.is_zero(), "{out:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
        retire_stale();
    }
}
