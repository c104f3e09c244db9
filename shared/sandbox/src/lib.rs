//! The one runner for untrusted-input tools (pmaint, pkgcheck): scrubbed environment, no network, whole-tree kill at a timeout.
//!
//! Ebuilds are bash that strangers wrote; the tools source them. So every tool run gets:
//! - an environment built from nothing (no tokens or credentials can leak in from the service's own);
//! - its own PID namespace (killing its first process kills everything it started, including the
//!   ebuild-daemon children that put themselves in their own process groups), its own network
//!   namespace (no network), and its own mount namespace, where the tree under test can be
//!   bind-mounted at one fixed path so that base and merge are scanned from the same path, read-only
//!   except its `metadata/md5-cache` (what regen writes), so no ebuild can change the tree it is in;
//! - a wall-clock limit, after which the whole namespace is killed.
//!
//! Where the kernel refuses namespaces (an unprivileged container), the runner falls back to a
//! process group of its own and says so in the log: the tree is then scanned at its real path and
//! network isolation is not available.

pub mod env;
pub mod pkgcore;
pub mod tools;
pub mod warm;

pub use env::{tree_env, EnvError, TreeEnv};
pub use tools::{MissingTool, ToolPaths, Tools};

/// prci's targeted regen (`python/targeted_regen.py`: `pmaint regen` for named packages only), run by the tools'
/// Python inside the sandbox.
pub const TARGETED_REGEN_SCRIPT: &str = include_str!("python/targeted_regen.py");

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How tools are isolated on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// PID + mount + network namespaces via `unshare`.
    Namespaces,
    /// A process group of its own, killed as a whole.
    ProcessGroup,
}

/// Probe once whether `unshare` with PID, mount and network namespaces works here.
pub fn detect_isolation(wanted: bool) -> Isolation {
    static PROBE: OnceLock<Isolation> = OnceLock::new();
    if !wanted {
        return Isolation::ProcessGroup;
    }
    *PROBE.get_or_init(|| {
        let ok = Command::new("unshare")
            .args(UNSHARE_ARGS)
            .args(["/bin/sh", "-c", "mount --bind /tmp /tmp"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            Isolation::Namespaces
        } else {
            tracing::warn!("unshare refused: tools run in a process group, with the network reachable");
            Isolation::ProcessGroup
        }
    })
}

/// Inside the new mount namespace: mount the tree (`$1`) at the scan path (`$2`) read-only, except its md5-cache
/// (which regen writes), then run the tool. The tools cannot change the tree's tracked files.
pub(crate) const BIND_SCRIPT: &str = "mount --bind -- \"$1\" \"$2\" || exit 125; \
    if [ -d \"$1/metadata/md5-cache\" ]; then mount --bind -- \"$1/metadata/md5-cache\" \"$2/metadata/md5-cache\" || exit 125; fi; \
    mount -o remount,bind,ro -- \"$2\" || exit 125; shift 2; exec \"$@\"";

pub(crate) const UNSHARE_ARGS: &[&str] =
    &["--fork", "--pid", "--kill-child", "--mount-proc", "--mount", "--net", "--propagation", "private"];

/// One tool invocation.
#[derive(Debug, Clone)]
pub struct ToolCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Directory of the tools, put first on `PATH`.
    pub bin_dir: PathBuf,
    /// `HOME` and `TMPDIR` of the tool: a scratch directory owned by this job.
    pub scratch: PathBuf,
    /// Bind-mount `.0` at `.1` inside the sandbox (namespaces only).
    pub bind: Option<(PathBuf, PathBuf)>,
    pub timeout: Duration,
    pub stdin: Option<Vec<u8>>,
    /// Extra environment, on top of the scrubbed base.
    pub env: Vec<(String, String)>,
}

/// What a tool run produced.
#[derive(Debug, Clone)]
pub struct ToolOutput {
    /// Exit code; `None` when killed by a signal (the timeout included).
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub timed_out: bool,
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

/// Runs tools under the chosen isolation.
#[derive(Debug, Clone, Copy)]
pub struct Sandbox {
    pub isolation: Isolation,
}

impl Sandbox {
    pub fn new(wanted: bool) -> Sandbox {
        Sandbox { isolation: detect_isolation(wanted) }
    }

    /// Whether a bind mount (same scan path for both sides) is available.
    pub fn can_bind(&self) -> bool {
        self.isolation == Isolation::Namespaces
    }

    /// Run `cmd` to completion or until its timeout, then make sure nothing it started is left.
    /// pkgcheck, pmaint and prci's Python scripts run in the tree's warm tool process when there is
    /// one (`crate::warm`), else (and on any trouble with it) in a process of their own.
    pub fn run(&self, cmd: &ToolCommand) -> std::io::Result<ToolOutput> {
        if let Some(out) = crate::warm::run(self, cmd) {
            return out;
        }
        self.run_cold(cmd)
    }

    /// Run `cmd` in a process of its own.
    pub fn run_cold(&self, cmd: &ToolCommand) -> std::io::Result<ToolOutput> {
        std::fs::create_dir_all(&cmd.scratch)?;
        let mut command = match self.isolation {
            Isolation::Namespaces => {
                let mut c = in_namespaces(cmd.bind.as_ref());
                c.arg(&cmd.program);
                die_with_parent(&mut c);
                c
            }
            Isolation::ProcessGroup => {
                let mut c = Command::new(&cmd.program);
                std::os::unix::process::CommandExt::process_group(&mut c, 0);
                die_with_parent(&mut c);
                c
            }
        };
        command.args(&cmd.args);
        scrubbed_env(&mut command, &cmd.bin_dir, &cmd.scratch);
        for (k, v) in &cmd.env {
            command.env(k, v);
        }
        command.current_dir(&cmd.scratch);
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
        let stdout_thread = child.stdout.take().map(|mut p| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = p.read_to_end(&mut buf);
                buf
            })
        });
        let stderr_thread = child.stderr.take().map(|mut p| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = p.read_to_end(&mut buf);
                buf
            })
        });

        let deadline = start + cmd.timeout;
        let mut timed_out = false;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                timed_out = true;
                tracing::warn!(program = %cmd.program.display(), timeout_secs = cmd.timeout.as_secs(), "tool timed out; killing it and everything it started");
                if self.isolation == Isolation::ProcessGroup {
                    kill_group(pid);
                }
                break kill_namespace(&mut child)?;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if self.isolation == Isolation::ProcessGroup {
            // Anything the tool left in its group goes with it.
            kill_group(pid);
        }
        if let Some(t) = stdin_thread {
            let _ = t.join();
        }
        let stdout = join_reader(stdout_thread);
        let stderr = join_reader(stderr_thread);
        let code = std::os::unix::process::ExitStatusExt::signal(&status).map_or(status.code(), |_| None);
        Ok(ToolOutput { code, stdout, stderr, timed_out, elapsed: start.elapsed() })
    }
}

/// `unshare` with prci's namespaces, mounting `bind` (tree, scan path) as [`BIND_SCRIPT`] does; the program and
/// its arguments come next.
pub(crate) fn in_namespaces(bind: Option<&(PathBuf, PathBuf)>) -> Command {
    let mut c = Command::new("unshare");
    c.args(UNSHARE_ARGS);
    if let Some((src, dst)) = bind {
        c.args(["/bin/sh", "-c", BIND_SCRIPT, "prci-sandbox"]);
        c.arg(src).arg(dst);
    }
    c
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

/// SIGKILL `unshare` (and with it, through `--kill-child`, the namespace's first process), then wait until that
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

/// The largest file a tool (or the ebuild code it runs) may write: past it the writer gets SIGXFSZ. Far above any
/// md5-cache entry or pkgcheck cache, far below what would fill a host's disk (`head -c 20G /dev/zero > …`).
pub const MAX_WRITTEN_FILE_BYTES: u64 = 1 << 30;

/// In the child, before the tool starts: die with the service (SIGKILL when the thread that started it exits), no
/// core dumps, and no file larger than [`MAX_WRITTEN_FILE_BYTES`]; every process the tool starts inherits the limits.
#[allow(unsafe_code)]
pub(crate) fn die_with_parent(c: &mut Command) {
    // SAFETY: prctl(PR_SET_PDEATHSIG) and setrlimit are async-signal-safe and touch no memory of the parent.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(c, || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            let size = libc::rlimit { rlim_cur: MAX_WRITTEN_FILE_BYTES, rlim_max: MAX_WRITTEN_FILE_BYTES };
            let none = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &size) != 0 || libc::setrlimit(libc::RLIMIT_CORE, &none) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
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

    fn cmd(script: &str, timeout: Duration) -> ToolCommand {
        let scratch = std::env::temp_dir().join(format!("prci-sandbox-test-{}-{}", std::process::id(), script.len()));
        ToolCommand {
            program: PathBuf::from("/bin/sh"),
            args: vec!["-c".into(), script.into()],
            bin_dir: PathBuf::from("/usr/bin"),
            scratch,
            bind: None,
            timeout,
            stdin: None,
            env: vec![],
        }
    }

    #[test]
    fn environment_is_scrubbed() {
        std::env::set_var("PRCI_TEST_SECRET_TOKEN", "hunter2");
        let out = Sandbox::new(true).run(&cmd("env", Duration::from_secs(30))).unwrap();
        let env = String::from_utf8_lossy(&out.stdout);
        assert!(!env.contains("hunter2"), "{env}");
        assert!(env.contains("LANG=C.UTF-8"));
        assert_eq!(out.code, Some(0));
    }

    #[test]
    fn tools_and_their_children_write_no_file_over_the_limit_and_dump_no_core() {
        for wanted in [true, false] {
            // A grandchild, as ebuild code run by pkgcore would be.
            let out = Sandbox::new(wanted).run_cold(&cmd("sh -c 'cat /proc/self/limits'", Duration::from_secs(30))).unwrap();
            let limits = String::from_utf8_lossy(&out.stdout);
            let row = |name: &str| -> Vec<String> {
                let line = limits.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name}: {limits}"));
                line[name.len()..].split_whitespace().map(str::to_owned).collect()
            };
            assert_eq!(row("Max file size")[..2], [MAX_WRITTEN_FILE_BYTES.to_string(), MAX_WRITTEN_FILE_BYTES.to_string()], "{limits}");
            assert_eq!(row("Max core file size")[..2], ["0", "0"], "{limits}");
        }
        // A write past the limit stops there (the writer gets SIGXFSZ), whatever it asked for.
        let script = format!("head -c {} /dev/zero > big; stat -c %s big; rm -f big", MAX_WRITTEN_FILE_BYTES + 4096);
        let out = Sandbox::new(true).run_cold(&cmd(&script, Duration::from_secs(60))).unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), MAX_WRITTEN_FILE_BYTES.to_string());
    }

    #[test]
    fn a_hang_is_killed_with_its_children() {
        let marker = format!("prci-sandbox-sleeper-{}", std::process::id());
        // A child that escapes into its own process group, like pkgcore's ebuild daemons.
        let script = format!("setsid sh -c 'exec -a {marker} sleep 300' & sleep 300");
        let out = Sandbox::new(true).run(&cmd(&script, Duration::from_millis(500))).unwrap();
        assert!(out.timed_out);
        assert_eq!(out.code, None);
        std::thread::sleep(Duration::from_millis(300));
        let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
        let ps = String::from_utf8_lossy(&ps.stdout);
        if Sandbox::new(true).isolation == Isolation::Namespaces {
            assert!(!ps.contains(&marker), "a child survived the kill:\n{ps}");
        }
    }

    #[test]
    fn the_tree_is_read_only_for_the_tools_except_its_md5_cache() {
        let sandbox = Sandbox::new(true);
        assert!(sandbox.can_bind(), "this test needs unshare with namespaces (run as root)");
        let base = std::env::temp_dir().join(format!("prci-sandbox-ro-{}", std::process::id()));
        let (tree, mount) = (base.join("tree"), base.join("mount"));
        std::fs::create_dir_all(tree.join("metadata/md5-cache")).unwrap();
        std::fs::create_dir_all(&mount).unwrap();
        std::fs::write(tree.join("file"), "original\n").unwrap();
        let mut c = cmd("/bin/sh", Duration::from_secs(30));
        c.args = vec![
            "-c".into(),
            "echo changed > \"$0/file\"; echo entry > \"$0/metadata/md5-cache/x\"; cat \"$0/file\"".into(),
            mount.display().to_string(),
        ];
        c.bind = Some((tree.clone(), mount.clone()));
        let out = sandbox.run(&c).unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "original\n", "{}", out.stderr_text());
        assert!(out.stderr_text().contains("Read-only file system"), "{}", out.stderr_text());
        assert_eq!(std::fs::read_to_string(tree.join("file")).unwrap(), "original\n");
        assert_eq!(std::fs::read_to_string(tree.join("metadata/md5-cache/x")).unwrap(), "entry\n");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn stdin_reaches_the_tool() {
        let mut c = cmd("cat", Duration::from_secs(30));
        c.stdin = Some(b"app-misc/foo\n".to_vec());
        let out = Sandbox::new(true).run(&c).unwrap();
        assert_eq!(out.stdout, b"app-misc/foo\n");
    }
}
