//! Typed configuration: one TOML file plus `PRCI__SECTION__KEY` environment overrides, validated once at start-up.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// A configuration problem, naming the key and the reason; binaries exit 64 on it.
#[derive(Debug, thiserror::Error)]
#[error("bad configuration: {key}: {reason}")]
pub struct ConfigError {
    /// Dotted key (`checker.fail_levels`), or `<file>` when the file itself is unreadable.
    pub key: String,
    /// Why the value was refused.
    pub reason: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { key: key.into(), reason: reason.into() }
    }
}

/// Every setting prci knows. Each section has defaults that work on one host.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub repository: RepositorySettings,
    pub source: SourceSettings,
    pub broker: BrokerSettings,
    pub work: WorkSettings,
    pub reports: ReportSettings,
    pub checker: CheckerSettings,
    pub tools: ToolSettings,
    pub trees: TreesSettings,
    pub sandbox: SandboxSettings,
    pub git: GitSettings,
    pub notify: NotifySettings,
    pub github: GithubSettings,
    pub http: HttpSettings,
}

/// The GitHub forge (`source.kind = "github"`): where its API is, how prci authenticates, what it publishes. Only the
/// poller and the publisher read these credentials.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct GithubSettings {
    /// REST API root: `https://api.github.com`, a GitHub Enterprise `https://host/api/v3`, or a test fake.
    pub api_url: String,
    /// `owner/name` of the repository whose pull requests are checked.
    pub repository: String,
    /// A token (personal or fine-grained) in a file; or the three App keys below.
    pub token_file: Option<PathBuf>,
    /// GitHub App id, with `app_key_file` (its RSA private key, PEM) and `installation_id`.
    pub app_id: Option<u64>,
    pub app_key_file: Option<PathBuf>,
    pub installation_id: Option<u64>,
    /// The context of prci's commit status (default `gentoo-ci`).
    pub status_context: String,
    /// The secret webhook deliveries are signed with (`X-Hub-Signature-256`); unset: `POST /webhook` answers 404.
    pub webhook_secret_file: Option<PathBuf>,
    /// Check draft pull requests too.
    pub drafts: bool,
    /// A pending status (the stage a revision is at, its position in that stage's queue) is refreshed at most this
    /// often, in seconds.
    pub pending_refresh_secs: u64,
}

impl Default for GithubSettings {
    fn default() -> Self {
        Self {
            api_url: "https://api.github.com".into(),
            repository: String::new(),
            token_file: None,
            app_id: None,
            app_key_file: None,
            installation_id: None,
            status_context: "gentoo-ci".into(),
            webhook_secret_file: None,
            drafts: false,
            pending_refresh_secs: 30,
        }
    }
}

/// This process's HTTP listener (the GitHub webhook on the poller; later metrics and health on every service).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// `host:port`; port 0 picks a free port (logged). Unset: no listener.
    pub listen: Option<String>,
}

/// Telling a human when the infrastructure failed: a message dead-lettered by a stage is POSTed as a small JSON
/// document to `url` (an IRC, Matrix or mail bridge).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct NotifySettings {
    /// `http://` or `https://`; none: nobody is notified (the failure is still logged at ERROR).
    pub url: Option<String>,
    /// Seconds one notification may take.
    pub timeout_secs: u64,
}

impl Default for NotifySettings {
    fn default() -> Self {
        Self { url: None, timeout_secs: 10 }
    }
}

/// How git reaches remotes (the repository, its masters, the trees remote): credentials from files, and the time a
/// network operation may take.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct GitSettings {
    /// The private key for `ssh://` and `user@host:path` remotes.
    pub ssh_key_file: Option<PathBuf>,
    /// The known hosts (OpenSSH format) an ssh remote's host key must be in.
    pub ssh_known_hosts_file: Option<PathBuf>,
    /// A CA bundle (PEM) trusted for https remotes besides the system's.
    pub ca_file: Option<PathBuf>,
    /// A token sent to https remotes that ask for credentials (user `x-access-token`).
    pub https_token_file: Option<PathBuf>,
    /// Seconds to wait for a connection.
    pub connect_timeout_secs: u64,
    /// Seconds a connection may stay silent (no byte sent or received) before the operation fails.
    pub low_speed_timeout_secs: u64,
}

impl Default for GitSettings {
    fn default() -> Self {
        Self {
            ssh_key_file: None,
            ssh_known_hosts_file: None,
            ca_file: None,
            https_token_file: None,
            connect_timeout_secs: 30,
            low_speed_timeout_secs: 120,
        }
    }
}

/// How prci reaches a git URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GitScheme {
    /// A path, or `file://`.
    Local,
    /// `git://`.
    Git,
    /// `http://` or `https://`.
    Http,
    /// `ssh://`, or `user@host:path`.
    Ssh,
}

/// The scheme of a git URL, or why prci cannot use it.
pub fn git_scheme(url: &str) -> Result<GitScheme, String> {
    if let Some((scheme, _)) = url.split_once("://") {
        return match scheme {
            "file" => Ok(GitScheme::Local),
            "git" => Ok(GitScheme::Git),
            "http" | "https" => Ok(GitScheme::Http),
            "ssh" | "git+ssh" | "ssh+git" => Ok(GitScheme::Ssh),
            other => Err(format!("{other}:// is not a scheme prci can fetch from (file, git, http, https, ssh)")),
        };
    }
    // scp-like `user@host:path` (a colon before any slash), as git itself reads it.
    match url.split_once(':') {
        Some((host, _)) if !host.is_empty() && !host.contains('/') && url.starts_with(|c: char| c != '/' && c != '.') => Ok(GitScheme::Ssh),
        _ => Ok(GitScheme::Local),
    }
}

/// The sandbox every pmaint and pkgcheck run gets (bubblewrap), and its limits per run.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxSettings {
    /// `false` runs pull requests' code unsandboxed (logged at ERROR on every start, shown in every report).
    pub enabled: bool,
    /// Give each run a cgroup (memory and processes of the run as a whole) where the host allows it.
    pub cgroups: bool,
    /// bubblewrap's path; default: `bwrap` on `PATH`.
    pub bwrap: Option<PathBuf>,
    /// Memory of one run, every process in it.
    pub memory_mb: u64,
    /// Processes and threads of one run.
    pub processes: u64,
    /// CPU time of any one process of a run.
    pub cpu_secs: u64,
    /// The largest file a run may write.
    pub file_mb: u64,
    /// Everything a regen leaves in the tree's md5-cache.
    pub md5_cache_mb: u64,
    /// What is read of a run's stdout (pkgcheck's findings); past it the run is stopped.
    pub stdout_mb: u64,
    /// What is read of a run's stderr; past it the run is stopped.
    pub stderr_mb: u64,
    /// The run's private `/tmp` and `/var/tmp` (in memory).
    pub tmp_mb: u64,
}

impl Default for SandboxSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            cgroups: true,
            bwrap: None,
            memory_mb: 8192,
            processes: 2048,
            cpu_secs: 4 * 3600,
            file_mb: 1024,
            md5_cache_mb: 1024,
            stdout_mb: 512,
            stderr_mb: 16,
            tmp_mb: 512,
        }
    }
}

/// Where prepared trees (and shared base results) travel between hosts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TreesSettings {
    /// A git remote every host can push to and fetch from; defaults to a bare repository `<work.dir>/trees.git` (one host).
    pub url: Option<String>,
}

impl Settings {
    /// `trees.url`, or the one-host default.
    pub fn trees_url(&self) -> String {
        self.trees.url.clone().unwrap_or_else(|| self.work.dir.join("trees.git").display().to_string())
    }
}

/// The repository under test.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RepositorySettings {
    /// Shown in reports and statuses.
    pub name: String,
    /// Any git URL or local path; pull-request heads are `refs/pull/<N>/head`.
    pub url: String,
    /// The branch pull requests are merged onto.
    pub base_branch: String,
    /// Master repositories (for an overlay): each is mirrored and checked out at the tip of its branch.
    pub masters: Vec<MasterSettings>,
}

impl Default for RepositorySettings {
    fn default() -> Self {
        Self { name: "gentoo".into(), url: String::new(), base_branch: "master".into(), masters: vec![] }
    }
}

/// One master repository of the repository under test.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MasterSettings {
    /// Its `profiles/repo_name`, as named by `masters =` in the overlay's `metadata/layout.conf`.
    pub name: String,
    /// Git URL or local path.
    pub url: String,
    /// Branch to use; the remote's HEAD when absent.
    #[serde(default)]
    pub branch: Option<String>,
}

/// Where pull requests come from (used by the poller).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceSettings {
    /// `git`: poll `refs/pull/*/head` of `repository.url`; `github`: the GitHub API.
    pub kind: String,
    /// Seconds between two polls.
    pub poll_interval_secs: u64,
    /// Check open pull requests again when the base branch moves (Gentoo's master moves every few minutes: off by default).
    pub recheck_on_base_move: bool,
}

impl Default for SourceSettings {
    fn default() -> Self {
        Self { kind: "git".into(), poll_interval_secs: 60, recheck_on_base_move: false }
    }
}

/// The message broker; absent URL means in-process queues.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerSettings {
    /// `amqp://…` URL; omit for in-process queues.
    pub url: Option<String>,
    /// Every exchange and queue name starts with it.
    pub prefix: String,
}

impl Default for BrokerSettings {
    fn default() -> Self {
        Self { url: None, prefix: "prci".into() }
    }
}

/// This host's working storage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkSettings {
    /// Mirrors, worktrees, caches; created when missing.
    pub dir: PathBuf,
}

impl Default for WorkSettings {
    fn default() -> Self {
        Self { dir: PathBuf::from("/var/lib/prci") }
    }
}

/// Where reports go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportSettings {
    /// `<dir>/<pr>/<head sha>.json` and `.html`, plus `index.html`.
    pub dir: PathBuf,
    /// Public URL of `dir`, for links in statuses and comments.
    pub base_url: String,
}

impl Default for ReportSettings {
    fn default() -> Self {
        Self { dir: PathBuf::from("/var/lib/prci/reports"), base_url: "http://localhost:8080/".into() }
    }
}

/// How scans are run and judged.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckerSettings {
    /// Appended to every scan, both sides.
    pub pkgcheck_args: Vec<String>,
    /// A new finding at one of these levels fails the pull request.
    pub fail_levels: Vec<String>,
    /// `-j` for pkgcheck and pmaint (each side).
    pub jobs: u32,
    /// Wall-clock limit of one pkgcheck run; a target group past it is narrowed down like a crash.
    pub scan_timeout_secs: u64,
    /// Wall-clock limit of one `pmaint regen`; past it the job is an infrastructure error.
    pub regen_timeout_secs: u64,
    /// Extra scans of both sides that confirm a candidate new/fixed finding.
    pub confirm_rescans: u32,
    /// Extra scans for candidates whose keyword is known to flap (see `flaky_keywords`).
    pub flaky_rescans: u32,
    /// Keywords pkgcheck reports non-deterministically; added to the built-in list.
    pub flaky_keywords: Vec<String>,
    /// The old switch of the sandbox, now `sandbox.enabled`: refused with a message naming it.
    #[doc(hidden)]
    pub sandbox: Option<serde::de::IgnoredAny>,
}

impl Default for CheckerSettings {
    fn default() -> Self {
        Self {
            pkgcheck_args: vec![],
            fail_levels: vec!["error".into(), "warning".into()],
            jobs: 0,
            scan_timeout_secs: 1800,
            regen_timeout_secs: 3600,
            confirm_rescans: 1,
            flaky_rescans: 6,
            flaky_keywords: vec![],
            sandbox: None,
        }
    }
}

impl CheckerSettings {
    /// `jobs`, with 0 meaning "half the cores, at least one" (base and merge scan at once).
    pub fn effective_jobs(&self) -> u32 {
        if self.jobs > 0 {
            return self.jobs;
        }
        let cores = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1);
        (cores / 2).max(1)
    }
}

/// Where the QA tools are.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ToolSettings {
    /// Path of `pkgcheck`; defaults to the project's environment (`.ci/install-tools`).
    pub pkgcheck: Option<PathBuf>,
    /// Path of `pmaint`; defaults to the project's environment.
    pub pmaint: Option<PathBuf>,
}

pub const LEVELS: [&str; 4] = ["error", "warning", "style", "info"];

impl Settings {
    /// Load `file` (if any) then `PRCI__SECTION__KEY` variables, then validate.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(file) = file {
            if !file.is_file() {
                return Err(ConfigError::new("<file>", format!("{} is not a readable file", file.display())));
            }
            builder = builder.add_source(config::File::from(file).format(config::FileFormat::Toml));
        }
        builder = builder.add_source(
            config::Environment::with_prefix("PRCI")
                .prefix_separator("__")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("checker.pkgcheck_args")
                .with_list_parse_key("checker.fail_levels")
                .with_list_parse_key("checker.flaky_keywords")
                .try_parsing(true),
        );
        let raw = builder.build().map_err(|e| config_error(&e))?;
        let settings: Settings = raw.try_deserialize().map_err(|e| config_error(&e))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks that serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.checker.sandbox.is_some() {
            return Err(ConfigError::new(
                "checker.sandbox",
                "this key is gone: the sandbox is configured under [sandbox] (sandbox.enabled, true by default; false runs pull requests unsandboxed)",
            ));
        }
        let s = &self.sandbox;
        for (key, value) in [
            ("memory_mb", s.memory_mb),
            ("processes", s.processes),
            ("cpu_secs", s.cpu_secs),
            ("file_mb", s.file_mb),
            ("md5_cache_mb", s.md5_cache_mb),
            ("stdout_mb", s.stdout_mb),
            ("stderr_mb", s.stderr_mb),
            ("tmp_mb", s.tmp_mb),
        ] {
            if value == 0 {
                return Err(ConfigError::new(format!("sandbox.{key}"), "must be greater than 0"));
            }
        }
        for level in &self.checker.fail_levels {
            if !LEVELS.contains(&level.as_str()) {
                return Err(ConfigError::new(
                    "checker.fail_levels",
                    format!("unknown level {level:?}; expected one of {}", LEVELS.join(", ")),
                ));
            }
        }
        if !["git", "github"].contains(&self.source.kind.as_str()) {
            return Err(ConfigError::new("source.kind", format!("unknown kind {:?}; expected git or github", self.source.kind)));
        }
        if self.repository.name.is_empty() || self.repository.name.contains('/') {
            return Err(ConfigError::new("repository.name", "must be a non-empty name without '/'"));
        }
        if self.checker.scan_timeout_secs == 0 {
            return Err(ConfigError::new("checker.scan_timeout_secs", "must be at least 1"));
        }
        if self.checker.regen_timeout_secs == 0 {
            return Err(ConfigError::new("checker.regen_timeout_secs", "must be at least 1"));
        }
        self.validate_git()?;
        self.validate_github()?;
        if let Some(listen) = &self.http.listen {
            if listen.parse::<std::net::SocketAddr>().is_err() {
                return Err(ConfigError::new("http.listen", format!("{listen:?} is not an address:port (e.g. 0.0.0.0:8080)")));
            }
        }
        if let Some(url) = &self.notify.url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::new("notify.url", "must be an http:// or https:// URL"));
            }
        }
        if self.notify.timeout_secs == 0 {
            return Err(ConfigError::new("notify.timeout_secs", "must be at least 1"));
        }
        for arg in &self.checker.pkgcheck_args {
            for owned in ["-r", "--repo", "-R", "--reporter", "--config", "--cache-dir", "--cache"] {
                if arg == owned || arg.starts_with(&format!("{owned}=")) {
                    return Err(ConfigError::new("checker.pkgcheck_args", format!("{owned} is set by prci itself")));
                }
            }
        }
        Ok(())
    }
}

impl Settings {
    /// Every git URL prci reaches, with the key that names it.
    pub fn git_urls(&self) -> Vec<(String, String)> {
        let mut urls = vec![("repository.url".to_string(), self.repository.url.clone())];
        for (i, m) in self.repository.masters.iter().enumerate() {
            urls.push((format!("repository.masters[{i}].url"), m.url.clone()));
        }
        if let Some(url) = &self.trees.url {
            urls.push(("trees.url".to_string(), url.clone()));
        }
        urls
    }

    /// The `[git]` files exist, and every URL has a scheme prci can use with the credentials configured.
    fn validate_git(&self) -> Result<(), ConfigError> {
        let g = &self.git;
        for (key, file) in [
            ("git.ssh_key_file", &g.ssh_key_file),
            ("git.ssh_known_hosts_file", &g.ssh_known_hosts_file),
            ("git.ca_file", &g.ca_file),
            ("git.https_token_file", &g.https_token_file),
        ] {
            if let Some(file) = file {
                if std::fs::File::open(file).is_err() || !file.is_file() {
                    return Err(ConfigError::new(key, format!("{} is not a readable file", file.display())));
                }
            }
        }
        if let Some(hosts) = &g.ssh_known_hosts_file {
            let text = std::fs::read_to_string(hosts).unwrap_or_default();
            if !text.lines().any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')) {
                return Err(ConfigError::new("git.ssh_known_hosts_file", format!("{} holds no host key", hosts.display())));
            }
        }
        for (key, secs) in [("git.connect_timeout_secs", g.connect_timeout_secs), ("git.low_speed_timeout_secs", g.low_speed_timeout_secs)]
        {
            if secs == 0 || secs > i32::MAX as u64 / 1000 {
                return Err(ConfigError::new(key, "must be between 1 and 2147483"));
            }
        }
        for (key, url) in self.git_urls().into_iter().filter(|(_, u)| !u.is_empty()) {
            match git_scheme(&url).map_err(|reason| ConfigError::new(&key, reason))? {
                GitScheme::Ssh if g.ssh_key_file.is_none() => {
                    return Err(ConfigError::new("git.ssh_key_file", format!("{key} is an ssh remote: set the private key file to use")));
                }
                GitScheme::Ssh if g.ssh_known_hosts_file.is_none() => {
                    return Err(ConfigError::new(
                        "git.ssh_known_hosts_file",
                        format!("{key} is an ssh remote: set a known hosts file holding its host key"),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl Settings {
    /// With `source.kind = "github"`: a repository, an API URL, one way to authenticate. The secret files themselves are
    /// read (and refused, exit 64 naming the key) only by the poller and the publisher: no other process opens them.
    fn validate_github(&self) -> Result<(), ConfigError> {
        let g = &self.github;
        if g.pending_refresh_secs == 0 {
            return Err(ConfigError::new("github.pending_refresh_secs", "must be at least 1"));
        }
        if self.source.kind != "github" {
            return Ok(());
        }
        let parts: Vec<&str> = g.repository.split('/').collect();
        if parts.len() != 2 || parts.iter().any(|p| p.is_empty() || p.contains(char::is_whitespace)) {
            return Err(ConfigError::new("github.repository", "must be owner/name (source.kind is github)"));
        }
        if !(g.api_url.starts_with("http://") || g.api_url.starts_with("https://")) {
            return Err(ConfigError::new("github.api_url", "must be an http:// or https:// URL"));
        }
        if g.status_context.trim().is_empty() {
            return Err(ConfigError::new("github.status_context", "must not be empty"));
        }
        let app = (g.app_id.is_some(), g.app_key_file.is_some(), g.installation_id.is_some());
        match (g.token_file.is_some(), app) {
            (true, (false, false, false)) | (false, (true, true, true)) => Ok(()),
            (true, _) => {
                Err(ConfigError::new("github.token_file", "set either token_file or app_id + app_key_file + installation_id, not both"))
            }
            (false, (false, false, false)) => Err(ConfigError::new(
                "github.token_file",
                "source.kind is github: set token_file, or app_id + app_key_file + installation_id",
            )),
            (false, (id, key, _)) => {
                let missing = if !id {
                    "github.app_id"
                } else if !key {
                    "github.app_key_file"
                } else {
                    "github.installation_id"
                };
                Err(ConfigError::new(missing, "a GitHub App needs app_id, app_key_file and installation_id"))
            }
        }
    }
}

/// Turn the config crate's error into key + reason.
fn config_error(e: &config::ConfigError) -> ConfigError {
    let text = e.to_string();
    // The config crate writes "... for key `section.key`" or "... in `file`"; keep the key when it names one.
    if let Some(start) = text.find("key `") {
        let rest = &text[start + 5..];
        if let Some(end) = rest.find('`') {
            return ConfigError::new(&rest[..end], text[..start].trim_end_matches([' ', ',']).trim_end_matches(" for"));
        }
    }
    if let Some(field) = text.strip_prefix("unknown field `") {
        if let Some(end) = field.find('`') {
            return ConfigError::new(&field[..end], "unknown key");
        }
    }
    ConfigError::new("<file>", text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile_dir::Dir, PathBuf) {
        let dir = tempfile_dir::Dir::new();
        let path = dir.0.join("prci.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    /// A tiny temp dir so the shared crate needs no dev-dependency.
    mod tempfile_dir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let p = std::env::temp_dir().join(format!("prci-config-test-{}-{n}", std::process::id()));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn defaults_load_without_a_file() {
        let s = Settings::load(None).unwrap();
        assert_eq!(s.checker.fail_levels, vec!["error", "warning"]);
        assert_eq!(s.broker.prefix, "prci");
    }

    #[test]
    fn design_example_loads() {
        let (_d, p) = write(
            r#"
[repository]
name = "gentoo"
url = "https://github.com/gentoo/gentoo.git"
base_branch = "master"
[source]
kind = "git"
poll_interval_secs = 60
[broker]
url = "amqp://guest:guest@127.0.0.1:5672/%2f"
prefix = "prci"
[work]
dir = "/var/lib/prci"
[reports]
dir = "/var/lib/prci/reports"
base_url = "http://localhost:8080/"
[checker]
pkgcheck_args = []
fail_levels = ["error", "warning"]
"#,
        );
        let s = Settings::load(Some(&p)).unwrap();
        assert_eq!(s.broker.url.as_deref(), Some("amqp://guest:guest@127.0.0.1:5672/%2f"));
    }

    #[test]
    fn the_example_config_loads_and_documents_every_section() {
        let text = include_str!("../../../compose/prci.example.toml");
        let (_d, p) = write(text);
        let s = Settings::load(Some(&p)).unwrap();
        assert!(s.broker.url.is_none(), "the example runs on in-process queues");
        assert_eq!(s.checker.flaky_rescans, 6);
        for section in [
            "[repository]",
            "[source]",
            "[broker]",
            "[work]",
            "[trees]",
            "[reports]",
            "[checker]",
            "[tools]",
            "[sandbox]",
            "[git]",
            "[notify]",
            "[github]",
            "[http]",
        ] {
            assert!(text.contains(section), "{section} is not documented");
        }
        for key in [
            "recheck_on_base_move",
            "scan_timeout_secs",
            "regen_timeout_secs",
            "confirm_rescans",
            "flaky_keywords",
            "enabled",
            "memory_mb",
            "processes",
            "masters",
        ] {
            assert!(text.contains(key), "{key} is not documented");
        }
    }

    #[test]
    fn the_old_sandbox_switch_is_refused_naming_the_new_one() {
        let (_d, p) = write("[checker]\nsandbox = false\n");
        let e = Settings::load(Some(&p)).unwrap_err();
        assert_eq!(e.key, "checker.sandbox");
        assert!(e.reason.contains("sandbox.enabled"), "{e}");
        let (_d, p) = write("[sandbox]\nenabled = false\nmemory_mb = 2048\n");
        let s = Settings::load(Some(&p)).unwrap();
        assert!(!s.sandbox.enabled);
        assert_eq!((s.sandbox.memory_mb, s.sandbox.processes), (2048, SandboxSettings::default().processes));
        let (_d, p) = write("[sandbox]\nprocesses = 0\n");
        assert_eq!(Settings::load(Some(&p)).unwrap_err().key, "sandbox.processes");
    }

    #[test]
    fn a_github_source_needs_a_repository_and_one_way_to_authenticate() {
        let dir = tempfile_dir::Dir::new();
        let (token, key, empty) = (dir.0.join("token"), dir.0.join("app.pem"), dir.0.join("empty"));
        std::fs::write(&token, "ghp_x\n").unwrap();
        std::fs::write(&key, "-----BEGIN RSA PRIVATE KEY-----\n").unwrap();
        std::fs::write(&empty, "\n").unwrap();
        let with = |github: GithubSettings| {
            let mut s = Settings::default();
            s.source.kind = "github".into();
            s.github = github;
            s.validate().err().map(|e| e.key)
        };
        let repo = GithubSettings { repository: "gentoo/gentoo".into(), ..GithubSettings::default() };
        assert_eq!(with(GithubSettings::default()).as_deref(), Some("github.repository"));
        assert_eq!(with(repo.clone()).as_deref(), Some("github.token_file"));
        assert_eq!(with(GithubSettings { token_file: Some(token.clone()), ..repo.clone() }), None);
        let app = GithubSettings { app_id: Some(1), app_key_file: Some(key), installation_id: Some(2), ..repo.clone() };
        assert_eq!(with(app.clone()), None);
        assert_eq!(with(GithubSettings { installation_id: None, ..app.clone() }).as_deref(), Some("github.installation_id"));
        assert_eq!(with(GithubSettings { token_file: Some(token.clone()), ..app }).as_deref(), Some("github.token_file"));
        let ftp = GithubSettings { api_url: "ftp://x".into(), token_file: Some(token.clone()), ..repo.clone() };
        assert_eq!(with(ftp).as_deref(), Some("github.api_url"));
        let never = GithubSettings { pending_refresh_secs: 0, token_file: Some(token.clone()), ..repo.clone() };
        assert_eq!(with(never).as_deref(), Some("github.pending_refresh_secs"));
        // The defaults the issue names: the status context branch protection rules know, a pending refresh that does
        // not spend the API budget.
        assert_eq!((repo.status_context.as_str(), repo.pending_refresh_secs), ("gentoo-ci", 30));
        // Secret files are not opened here: processes other than the poller and the publisher never read them.
        let unreadable = GithubSettings { token_file: Some(empty.join("not-a-file")), ..repo };
        assert_eq!(with(unreadable), None);
        let mut s = Settings::default();
        s.http.listen = Some("localhost".into());
        assert_eq!(s.validate().unwrap_err().key, "http.listen");
    }

    #[test]
    fn unknown_key_is_named() {
        let (_d, p) = write("[checker]\nfail_level = [\"error\"]\n");
        let e = Settings::load(Some(&p)).unwrap_err();
        assert!(e.to_string().contains("fail_level"), "{e}");
    }

    #[test]
    fn bad_level_is_refused_with_its_key() {
        let (_d, p) = write("[checker]\nfail_levels = [\"fatal\"]\n");
        let e = Settings::load(Some(&p)).unwrap_err();
        assert_eq!(e.key, "checker.fail_levels");
    }

    #[test]
    fn wrong_type_is_refused() {
        let (_d, p) = write("[checker]\nscan_timeout_secs = \"soon\"\n");
        let e = Settings::load(Some(&p)).unwrap_err();
        assert!(e.to_string().contains("scan_timeout_secs"), "{e}");
    }

    #[test]
    fn prci_owned_pkgcheck_args_are_refused() {
        let (_d, p) = write("[checker]\npkgcheck_args = [\"--reporter=FancyReporter\"]\n");
        let e = Settings::load(Some(&p)).unwrap_err();
        assert_eq!(e.key, "checker.pkgcheck_args");
    }

    #[test]
    fn git_remotes_need_the_credentials_their_scheme_uses() {
        let dir = tempfile_dir::Dir::new();
        let (key, hosts, empty) = (dir.0.join("id"), dir.0.join("known_hosts"), dir.0.join("empty"));
        std::fs::write(&key, "k").unwrap();
        std::fs::write(&hosts, "[127.0.0.1]:2222 ssh-ed25519 AAAA\n").unwrap();
        std::fs::write(&empty, "# nothing\n").unwrap();
        let with = |url: &str, git: GitSettings| {
            let mut s = Settings::default();
            s.repository.url = url.into();
            s.git = git;
            s.validate().err().map(|e| (e.key, e.reason))
        };
        let ssh = "ssh://git@127.0.0.1:2222/srv/gentoo.git";
        assert_eq!(with(ssh, GitSettings::default()).unwrap().0, "git.ssh_key_file");
        assert_eq!(with("git@github.com:gentoo/gentoo.git", GitSettings::default()).unwrap().0, "git.ssh_key_file");
        let keyed = GitSettings { ssh_key_file: Some(key.clone()), ..GitSettings::default() };
        assert_eq!(with(ssh, keyed.clone()).unwrap().0, "git.ssh_known_hosts_file");
        let both = GitSettings { ssh_known_hosts_file: Some(hosts.clone()), ..keyed.clone() };
        assert_eq!(with(ssh, both.clone()), None);
        let no_keys = GitSettings { ssh_known_hosts_file: Some(empty), ..keyed };
        assert!(with(ssh, no_keys).unwrap().1.contains("holds no host key"));
        let missing = GitSettings { ca_file: Some(dir.0.join("absent.pem")), ..GitSettings::default() };
        assert_eq!(with("https://github.com/gentoo/gentoo.git", missing).unwrap().0, "git.ca_file");
        assert_eq!(with("ftp://example.org/g.git", GitSettings::default()).unwrap().0, "repository.url");
        for url in ["https://github.com/gentoo/gentoo.git", "git://127.0.0.1/g.git", "/srv/gentoo", "../gentoo", "file:///srv/g"] {
            assert_eq!(with(url, GitSettings::default()), None, "{url}");
        }
        let zero = GitSettings { low_speed_timeout_secs: 0, ..GitSettings::default() };
        assert_eq!(with("/srv/gentoo", zero).unwrap().0, "git.low_speed_timeout_secs");
    }
}
