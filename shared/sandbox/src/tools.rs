//! Finding the pinned QA tools (pkgcheck, pmaint) and their versions.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The command that installs the pinned tools into the project's environment.
pub const INSTALL_HINT: &str = "bash .ci/install-tools";

/// The project-local environment `.ci/install-tools` creates.
pub fn default_venv() -> PathBuf {
    if let Some(dir) = std::env::var_os("PRCI_TOOLS_VENV") {
        return PathBuf::from(dir);
    }
    // shared/sandbox is two levels under the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..").join(".tools").join("venv")
}

/// A missing or broken tool.
#[derive(Debug, thiserror::Error)]
#[error("{tool} not found at {path}: install the pinned QA tools with `{hint}` or set tools.{tool}")]
pub struct MissingTool {
    pub tool: &'static str,
    pub path: String,
    pub hint: &'static str,
}

/// Where the tools are, as configured (`tools.pkgcheck`, `tools.pmaint`); None: the project's environment.
#[derive(Debug, Clone, Default)]
pub struct ToolPaths {
    pub pkgcheck: Option<PathBuf>,
    pub pmaint: Option<PathBuf>,
}

/// Resolved tool paths and the versions they report.
#[derive(Debug, Clone)]
pub struct Tools {
    pub pkgcheck: PathBuf,
    pub pmaint: PathBuf,
    /// Directory holding the tools; first on the sandbox's `PATH`.
    pub bin_dir: PathBuf,
    pub pkgcheck_version: String,
    pub pkgcore_version: String,
    /// Where pkgcheck's own Python sources live (to name the check in a crash).
    pub pkgcheck_source: Option<PathBuf>,
}

impl Tools {
    /// Find both tools (configured path or the project environment) and their versions: from the
    /// environment's package metadata when the tool lives in a virtual environment (no Python start-up),
    /// else by asking `--version`.
    pub fn locate(paths: &ToolPaths) -> Result<Tools, MissingTool> {
        let venv_bin = default_venv().join("bin");
        let pkgcheck = paths.pkgcheck.clone().unwrap_or_else(|| venv_bin.join("pkgcheck"));
        let pmaint = paths.pmaint.clone().unwrap_or_else(|| venv_bin.join("pmaint"));
        let pkgcheck_version = installed_version(&pkgcheck, "pkgcheck").map_or_else(|| version_of(&pkgcheck, "pkgcheck"), Ok)?;
        let pkgcore_version = installed_version(&pmaint, "pkgcore").map_or_else(|| version_of(&pmaint, "pmaint"), Ok)?;
        let bin_dir = pmaint.parent().map(Path::to_path_buf).unwrap_or_else(|| venv_bin.clone());
        let pkgcheck_source = python_module_dir(&bin_dir, "pkgcheck");
        Ok(Tools { pkgcheck, pmaint, bin_dir, pkgcheck_version, pkgcore_version, pkgcheck_source })
    }
}

/// Run `<tool> --version`, expecting "<name> X.Y.Z" (pmaint prints "pkgcore X.Y.Z").
fn version_of(path: &Path, tool: &'static str) -> Result<String, MissingTool> {
    let missing = || MissingTool { tool, path: path.display().to_string(), hint: INSTALL_HINT };
    let out = Command::new(path).arg("--version").env_clear().env("PATH", "/usr/bin:/bin").output().map_err(|_| missing())?;
    if !out.status.success() {
        return Err(missing());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().nth(1).map(str::to_owned).ok_or_else(missing)
}

/// The version of distribution `dist` installed in the virtual environment an executable `tool` belongs to
/// (`<venv>/lib/python3.X/site-packages/<dist>-<version>.dist-info`), when there is exactly one.
fn installed_version(tool: &Path, dist: &str) -> Option<String> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(tool).ok()?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return None;
    }
    let lib = tool.parent()?.parent()?.join("lib");
    let prefix = format!("{dist}-");
    let mut found = Vec::new();
    for python in std::fs::read_dir(lib).ok()?.flatten() {
        let Ok(entries) = std::fs::read_dir(python.path().join("site-packages")) else { continue };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(version) = name.strip_prefix(&prefix).and_then(|r| r.strip_suffix(".dist-info")) {
                found.push(version.to_owned());
            }
        }
    }
    (found.len() == 1).then(|| found.remove(0))
}

/// `<venv>/lib/python3.X/site-packages/<module>` next to a venv's bin dir, if it exists.
fn python_module_dir(bin_dir: &Path, module: &str) -> Option<PathBuf> {
    let lib = bin_dir.parent()?.join("lib");
    std::fs::read_dir(lib).ok()?.flatten().map(|e| e.path().join("site-packages").join(module)).find(|p| p.is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_come_from_the_environment_metadata_and_agree_with_the_tools() {
        let bin = default_venv().join("bin");
        let (pkgcheck, pmaint) = (bin.join("pkgcheck"), bin.join("pmaint"));
        if !pkgcheck.is_file() {
            panic!("the pinned tools are not installed: run `{INSTALL_HINT}`");
        }
        assert_eq!(installed_version(&pkgcheck, "pkgcheck"), version_of(&pkgcheck, "pkgcheck").ok());
        assert_eq!(installed_version(&pmaint, "pkgcore"), version_of(&pmaint, "pmaint").ok());
        assert_eq!(installed_version(Path::new("/nonexistent/bin/pkgcheck"), "pkgcheck"), None);
    }
}
