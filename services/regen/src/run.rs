//! Running the regen tools on one tree in the sandbox: `pmaint regen`, prci's targeted regen of named packages, the choice between them (`incremental`), and starting a tree's warm tool processes early.

use crate::incremental::{self, RegenKind, Stamp};
use crate::RegenError;
use sandbox::{Sandbox, ToolCommand, Tools, TreeEnv};
use std::path::Path;
use std::time::{Duration, Instant};

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

/// Regenerate the md5-cache of `packages` (`cat/pkg`) of one tree exactly as `pmaint regen` does for the whole tree:
/// stale and missing entries of every version, no entry for versions that are gone or failed to source. Exit 1
/// (some ebuilds failed to source) is a QA matter, as for [`regen`]; anything else is an error.
pub fn regen_targeted(
    sandbox: &Sandbox,
    tools: &Tools,
    env: &TreeEnv,
    packages: &[String],
    jobs: u32,
    timeout: Duration,
) -> Result<f64, RegenError> {
    std::fs::create_dir_all(&env.scratch)?;
    let script = env.scratch.join("prci-targeted-regen.py");
    std::fs::write(&script, sandbox::TARGETED_REGEN_SCRIPT)?;
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

/// Start the warm tool processes (`sandbox::warm`) of existing checkouts now, so their imports overlap the checkout.
pub fn prestart_tools(sandbox: &Sandbox, tools: &Tools, work_dir: &Path, trees: &[&Path], scratch: &Path) {
    if !sandbox.can_bind() {
        return;
    }
    for tree in trees.iter().filter(|t| t.is_dir()) {
        let visible = sandbox::env::visible_path(sandbox, work_dir, tree);
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
        sandbox::warm::prestart(sandbox, &cmd);
    }
}
