//! The one runner for untrusted-input tools (pmaint, pkgcheck): scrubbed environment, no network, whole-tree kill at a timeout.
//!
//! Ebuilds are bash that strangers wrote; the tools source them. So every tool run gets:
//! - an environment built from nothing (no tokens or credentials can leak in from the service's own);
//! - its own PID namespace (killing its first process kills everything it started, including the
//!   ebuild-daemon children that put themselves in their own process groups), its own network
//!   namespace (no network), and its own mount namespace, where the tree under test can be
//!   bind-mounted at one fixed path so that base and merge are scanned from the same path;
//! - a wall-clock limit, after which the whole namespace is killed.
//!
//! Where the kernel refuses namespaces (an unprivileged container), the runner falls back to a
//! process group of its own and says so in the log: the tree is then scanned at its real path and
//! network isolation is not available.

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

const UNSHARE_ARGS: &[&str] = &["--fork", "--pid", "--kill-child", "--mount-proc", "--mount", "--net", "--propagation", "private"];

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
    pub fn run(&self, cmd: &ToolCommand) -> std::io::Result<ToolOutput> {
        std::fs::create_dir_all(&cmd.scratch)?;
        let mut command = match self.isolation {
            Isolation::Namespaces => {
                let mut c = Command::new("unshare");
                c.args(UNSHARE_ARGS);
                match &cmd.bind {
                    Some((src, dst)) => {
                        c.args(["/bin/sh", "-c", "mount --bind -- \"$1\" \"$2\" || exit 125; shift 2; exec \"$@\"", "prci-sandbox"]);
                        c.arg(src).arg(dst);
                    }
                    None => {}
                }
                c.arg(&cmd.program);
                die_with_parent(&mut c);
                c
            }
            Isolation::ProcessGroup => {
                let mut c = Command::new(&cmd.program);
                std::os::unix::process::CommandExt::process_group(&mut c, 0);
                c
            }
        };
        command.args(&cmd.args);
        command.env_clear();
        let path = format!("{}:/usr/local/bin:/usr/bin:/bin", cmd.bin_dir.display());
        command
            .env("PATH", path)
            .env("HOME", &cmd.scratch)
            .env("TMPDIR", &cmd.scratch)
            .env("LANG", "C.UTF-8")
            .env("LC_ALL", "C.UTF-8")
            .env("PYTHONDONTWRITEBYTECODE", "1");
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
                let _ = child.kill();
                break child.wait()?;
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

fn join_reader(t: Option<std::thread::JoinHandle<Vec<u8>>>) -> Vec<u8> {
    t.and_then(|t| t.join().ok()).unwrap_or_default()
}

/// Have the kernel kill `unshare` (and with it, through `--kill-child`, the whole namespace) when the
/// thread that started it dies: a service killed with SIGKILL must not leave its scans running.
#[allow(unsafe_code)]
fn die_with_parent(c: &mut Command) {
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no memory of the parent.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(c, || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
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
    fn stdin_reaches_the_tool() {
        let mut c = cmd("cat", Duration::from_secs(30));
        c.stdin = Some(b"app-misc/foo\n".to_vec());
        let out = Sandbox::new(true).run(&c).unwrap();
        assert_eq!(out.stdout, b"app-misc/foo\n");
    }
}
