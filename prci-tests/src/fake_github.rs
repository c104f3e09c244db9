//! A stateful fake of GitHub's REST API on loopback ([`FakeGithub`], served by `fixtures/fake_github.py`), held to
//! GitHub's own OpenAPI description in `../shared/github/rest-api.subset.json`: every request prci sends and every
//! answer the fake gives is checked against it, and what does not fit is recorded as a violation
//! ([`FakeGithub::violations`]), so a test can assert there are none. Also real webhook deliveries from
//! `../shared/github/webhooks` ([`webhook_payload`]) and their `X-Hub-Signature-256` ([`sign`]).
//!
//! Needs `python3` (standard library only). The fake serves one repository `owner/repo`; tests drive its state
//! (pull requests, comments by other users, permissions, rate limits) through its control API under `/_fake/`,
//! which needs no authentication and is neither validated nor recorded. The behaviour (pagination, ETags, rate
//! limit headers, App authentication, what counts as a violation) is described in the script's docstring.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// Timeout of one request to the control API.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

/// The fake GitHub API serving one repository on `127.0.0.1`; killed on drop.
#[derive(Debug)]
pub struct FakeGithub {
    /// `http://127.0.0.1:PORT`: the API's base URL (what `https://api.github.com` is to the real one).
    pub url: String,
    /// The repository's owner.
    pub owner: String,
    /// The repository's name.
    pub repo: String,
    /// The token the API accepts (`Authorization: token X` or `Bearer X`); empty for [`FakeGithub::start_app`],
    /// which accepts installation tokens only.
    pub token: String,
    child: Child,
    log: PathBuf,
}

impl FakeGithub {
    /// Serves `owner/repo`, accepting `token`, with its port file and log (`fake_github.port`,
    /// `fake_github.log`) in `dir`, which must not be shared with another fake. Panics with the log when it does
    /// not come up within 20 seconds.
    pub fn start(dir: &Path, owner: &str, repo: &str, token: &str) -> FakeGithub {
        spawn(dir, owner, repo, token, vec!["--token".to_string(), token.to_string()])
    }

    /// Serves `owner/repo` as seen by the GitHub App `app_id` installed as `installation_id`: the API takes only
    /// installation tokens, made by `POST /app/installations/{installation_id}/access_tokens` with an RS256 JWT
    /// whose `iss` is `app_id` (its signature is not checked), and valid for `token_ttl_secs` seconds. Requests
    /// with an installation token act as `prci-bot[bot]`.
    pub fn start_app(dir: &Path, owner: &str, repo: &str, app_id: u64, installation_id: u64, token_ttl_secs: u64) -> FakeGithub {
        let args = vec![
            "--app-id".to_string(),
            app_id.to_string(),
            "--installation-id".to_string(),
            installation_id.to_string(),
            "--token-ttl-secs".to_string(),
            token_ttl_secs.to_string(),
        ];
        spawn(dir, owner, repo, "", args)
    }

    /// Creates or updates a pull request (`POST /_fake/pulls`): `{"number", "head_sha", "head_ref"?, "base_ref"?,
    /// "base_sha"?, "labels"? [names], "draft"?, "user"?, "state"?, "title"?, "body"?, "head_owner"?, "files"?}`;
    /// fields left out keep their value (or get defaults on creation, which needs `head_sha`). Returns the stored
    /// pull request.
    pub fn upsert_pull(&self, pull: &Value) -> Value {
        self.control("POST", "pulls", Some(pull))
    }

    /// Closes pull request `number` (state `closed`, `closed_at` set).
    pub fn close_pull(&self, number: u64) {
        self.control("POST", &format!("pulls/{number}/close"), None);
    }

    /// Adds a comment by `user` (someone else than the bot) to issue or pull request `issue`; its id.
    pub fn add_comment(&self, issue: u64, user: &str, body: &str) -> u64 {
        let answer = self.control("POST", "comments", Some(&json!({"issue": issue, "user": user, "body": body})));
        answer["id"].as_u64().unwrap_or_else(|| panic!("POST /_fake/comments answered no id: {answer}"))
    }

    /// Sets what `GET /repos/{o}/{r}/collaborators/{user}/permission` answers for `user`: `admin`, `maintain`,
    /// `write`, `triage`, `read` or `none`.
    pub fn set_permission(&self, user: &str, permission: &str) {
        self.control("POST", "permissions", Some(&json!({"user": user, "permission": permission})));
    }

    /// Rate-limits the next API requests (`POST /_fake/throttle`): `{"status": 403|429, "count": N,
    /// "reset_in"?: secs, "retry_after"?: secs, "secondary"?: bool}`.
    pub fn throttle(&self, spec: &Value) {
        self.control("POST", "throttle", Some(spec));
    }

    /// Every API request so far (since [`FakeGithub::reset_calls`]) in arrival order: `{"method", "path",
    /// "query", "body", "status", "operation", "throttled", "conditional", "validated", "auth", "time"}`.
    pub fn calls(&self) -> Vec<Value> {
        match self.control("GET", "calls", None) {
            Value::Array(calls) => calls,
            other => panic!("GET /_fake/calls answered no list: {other}"),
        }
    }

    /// Every departure from GitHub's description so far, by prci (requests) or by the fake (answers).
    pub fn violations(&self) -> Vec<String> {
        match self.control("GET", "violations", None) {
            Value::Array(violations) => violations.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)).collect(),
            other => panic!("GET /_fake/violations answered no list: {other}"),
        }
    }

    /// The fake's state: `{"pulls": {number: ...}, "statuses": {sha: [newest first]}, "comments": {issue: [oldest
    /// first]}, "reactions": {comment_id: [...]}, "permissions": {...}, "check_runs": {id: ...}}`.
    pub fn state(&self) -> Value {
        self.control("GET", "state", None)
    }

    /// Forgets the recorded calls (not the state, not the violations).
    pub fn reset_calls(&self) {
        self.control("POST", "reset", None);
    }

    /// What the fake has logged so far (one line per request, violations, errors).
    pub fn log(&self) -> String {
        log_of(&self.log)
    }

    /// One request to the control API; its JSON answer, or a panic with the fake's log.
    fn control(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let url = format!("{}/_fake/{path}", self.url);
        let request = ureq::request(method, &url).timeout(CONTROL_TIMEOUT);
        let result = match body {
            Some(body) => request.send_json(body.clone()),
            None => request.call(),
        };
        match result {
            Ok(response) => {
                response.into_json::<Value>().unwrap_or_else(|e| panic!("{method} {url}: unreadable answer: {e}\n{}", self.log()))
            }
            Err(ureq::Error::Status(status, response)) => {
                let text = response.into_string().unwrap_or_default();
                panic!("{method} {url}: {status} {text}\nfake_github.py log:\n{}", self.log())
            }
            Err(e) => panic!("{method} {url}: {e}\nfake_github.py log:\n{}", self.log()),
        }
    }
}

impl Drop for FakeGithub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `fixtures/fake_github.py` for `owner/repo` with `args` and waits for its port file.
fn spawn(dir: &Path, owner: &str, repo: &str, token: &str, args: Vec<String>) -> FakeGithub {
    fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    let dir = fs::canonicalize(dir).unwrap_or_else(|e| panic!("cannot resolve {}: {e}", dir.display()));
    let port_file = dir.join("fake_github.port");
    let log = dir.join("fake_github.log");
    let _ = fs::remove_file(&port_file);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/fake_github.py");
    let spec = github_dir().join("rest-api.subset.json");
    assert!(spec.is_file(), "GitHub's OpenAPI description is missing: {}", spec.display());
    let log_file = fs::File::create(&log).unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
    let mut child = Command::new("python3")
        .arg(&script)
        .arg("--spec")
        .arg(&spec)
        .args(["--owner", owner, "--repo", repo, "--port-file"])
        .arg(&port_file)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", script.display()));
    let port = crate::remotes::wait_for_port(&mut child, &port_file, "fake_github.py", &log);
    FakeGithub {
        url: format!("http://127.0.0.1:{port}"),
        owner: owner.to_string(),
        repo: repo.to_string(),
        token: token.to_string(),
        child,
        log,
    }
}

/// What the fake wrote to its log file, for a panic message.
fn log_of(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| format!("(no log at {}: {e})", path.display()))
}

/// `github/` in the `shared` directory beside the project (`/work/shared/github` for the clone in `/work/main`,
/// `<tmp>/shared/github` for a CI clone in `<tmp>/c`): GitHub's OpenAPI description and webhook payloads.
pub fn github_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/github");
    fs::canonicalize(&dir).unwrap_or(dir)
}

/// A real webhook delivery's payload from `github/webhooks` beside the project, parsed; `name` is the event and
/// action, like `pull_request.opened`, `pull_request.synchronize`, `pull_request.labeled`,
/// `issue_comment.created` or `ping`.
pub fn webhook_payload(name: &str) -> Value {
    let path = github_dir().join("webhooks").join(format!("{name}.payload.json"));
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read webhook payload {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("webhook payload {} is not JSON: {e}", path.display()))
}

/// The `X-Hub-Signature-256` header GitHub sends with a delivery of `body` for a webhook with `secret`:
/// `sha256=` and the HMAC-SHA256 in lower-case hex.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC-SHA256 takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}
