//! Measuring processes: this program as the reaper of orphaned tools, CPU time of reaped children,
//! peak RSS sampling of a running process, wall-clock seconds, and the machine (load, memory).

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Make this process the reaper of its orphaned descendants (prci's warm tool processes outlive prci by
/// a moment, and are then reparented here instead of to init), so their CPU time is counted too.
#[allow(unsafe_code)]
pub(crate) fn become_subreaper() {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) only sets a flag on this process.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
    }
}

/// Reap every exited orphan (see [`become_subreaper`]); `cutime`/`cstime` then include them.
fn reap_orphans() {
    reap(libc::WNOHANG);
}

/// Wait for every orphan to exit and reap it: called when this program has no child of its own running.
pub(crate) fn reap_all_orphans() {
    reap(0);
}

#[allow(unsafe_code)]
fn reap(flags: i32) {
    loop {
        let mut status = 0;
        // SAFETY: waitpid on any child. Only called between measurements, when every child this program
        // started itself has been waited for through its `Child` handle.
        let pid = unsafe { libc::waitpid(-1, &mut status, flags) };
        if pid <= 0 {
            break;
        }
    }
}

/// CPU seconds (user + system) of this process's reaped children so far, from /proc/self/stat
/// (`cutime` + `cstime`): the difference around a measurement is the CPU its process tree used,
/// which other work on the machine disturbs much less than wall-clock time.
pub(crate) fn children_cpu() -> f64 {
    reap_orphans();
    static TICK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let tick = *TICK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    });
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): state is field 3, cutime 16, cstime 17.
    let rest: Vec<&str> = stat.rsplit_once(')').map_or(vec![], |(_, r)| r.split_whitespace().collect());
    let field = |n: usize| rest.get(n - 3).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (field(16) + field(17)) / tick
}

/// How many cores this machine has (1 when unknown).
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The load average (1, 5, 15 minutes): other work on the machine skews every number.
pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(|_| "?".into(), |l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

pub(crate) fn mem_total() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find_map(|l| l.strip_prefix("MemTotal:")).map(|v| v.trim().to_string()))
        .and_then(|v| v.trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or_else(|| "?".into(), |kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0))
}

pub(crate) fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

fn vm_hwm(status: &str) -> Option<u64> {
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Samples the peak resident set (VmHWM) of a running process from /proc every 5 ms, until stopped.
pub(crate) struct RssSampler {
    peak: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl RssSampler {
    pub(crate) fn start(pid: u32) -> RssSampler {
        let peak = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let thread = {
            let (peak, done) = (peak.clone(), done.clone());
            std::thread::spawn(move || {
                let status = format!("/proc/{pid}/status");
                while !done.load(Ordering::Relaxed) {
                    if let Some(kib) = std::fs::read_to_string(&status).ok().and_then(|s| vm_hwm(&s)) {
                        peak.fetch_max(kib, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        RssSampler { peak, done, thread }
    }

    /// Stop sampling; the peak seen, in KiB (0 if unknown).
    pub(crate) fn stop(self) -> u64 {
        self.done.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        self.peak.load(Ordering::Relaxed)
    }
}
