//! GitHub's REST API through octocrab (its client, authentication and GitHub App installation tokens, refreshed
//! before they expire), with what a CI bot needs around it: conditional requests (an unchanged pull-request list
//! costs no rate limit), waiting out primary and secondary rate limits instead of failing, and never sending a status
//! that is already there (GitHub keeps every status sent, up to 1,000 per commit; the poller and the publisher, on any
//! host, set statuses on the same commits, so GitHub's combined status is the truth looked at, not a local memory).

use crate::{Budget, Forge, ForgeError, Permission, Pull, State, Status, COMMENT_MARKER};
use http::{HeaderMap, Method, StatusCode};
use octocrab::Octocrab;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest single wait for a rate limit to reset.
const MAX_WAIT: Duration = Duration::from_secs(3600);
/// The longest one call waits for rate limits in all; past it the call fails as transient (the stage's retry policy
/// tries it again later, and a broker holding the message does not give up on its consumer meanwhile).
const MAX_TOTAL_WAIT: Duration = Duration::from_secs(900);
/// Pages of 100 pull requests read at most (10,000 open pull requests).
const MAX_PAGES: usize = 100;
/// GitHub keeps this many characters of a status description.
const DESCRIPTION_MAX: usize = 140;

/// The runtime every GitHub call runs on (octocrab is async; the stages call the forge from blocking threads). Never
/// dropped: a runtime dropped inside another runtime's context panics.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("prci-github")
            .enable_all()
            .build()
            .expect("a tokio runtime for the GitHub client")
    })
}

/// A conditional GET's last 200 answer: its ETag, body and `Link` header (a 304 carries no `Link`).
type Cached = (String, Vec<u8>, Option<String>);

/// One answer: status, the headers prci reads, the body.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self, method: &Method, path: &str) -> Result<Value, ForgeError> {
        serde_json::from_slice(&self.body).map_err(|e| ForgeError::Decode {
            method: method.to_string(),
            path: path.to_string(),
            reason: format!("not JSON: {e}"),
        })
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A repository on GitHub (or GitHub Enterprise, or a fake with the same API).
pub struct Github {
    client: Octocrab,
    api_url: String,
    owner: String,
    repo: String,
    context: String,
    /// URL → (ETag, body, Link header) of the last 200 answer to a conditional GET.
    etags: Mutex<HashMap<String, Cached>>,
    /// The key of the signature in prci's comment marker (a hash of the credential file's content).
    marker_key: Vec<u8>,
    budget: Mutex<Option<Budget>>,
    /// Unix seconds of the last budget log line.
    budget_logged: Mutex<u64>,
}

impl std::fmt::Debug for Github {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the client: it holds the credentials.
        f.debug_struct("Github").field("api_url", &self.api_url).field("repository", &format!("{}/{}", self.owner, self.repo)).finish()
    }
}

fn config_error(key: &str, reason: impl Into<String>) -> ForgeError {
    ForgeError::Config { key: key.into(), reason: reason.into() }
}

/// A secret read from a file, trimmed; the error names the key, never the content.
fn read_secret(key: &str, path: &std::path::Path) -> Result<String, ForgeError> {
    let text = std::fs::read_to_string(path).map_err(|e| config_error(key, format!("cannot read {}: {e}", path.display())))?;
    let text = text.trim().to_string();
    if text.is_empty() {
        return Err(config_error(key, format!("{} is empty", path.display())));
    }
    Ok(text)
}

/// The key comment markers are signed with: a hash of the credential (stable across restarts and hosts, never the
/// credential itself).
fn marker_key_of(secret: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(format!("prci comment marker\n{secret}").as_bytes()).to_vec()
}

impl Github {
    /// From `[github]`: a token file, or a GitHub App (id, private key file, installation id).
    pub fn from_settings(s: &pipeline::config::GithubSettings) -> Result<Github, ForgeError> {
        let (owner, repo) = s.repository.split_once('/').ok_or_else(|| config_error("github.repository", "must be owner/name"))?;
        let _guard = runtime().enter();
        let builder = Octocrab::builder()
            .base_uri(s.api_url.as_str())
            .map_err(|e| config_error("github.api_url", format!("not a URL: {e}")))?
            .add_header(http::header::USER_AGENT, "prci".into())
            .set_connect_timeout(Some(Duration::from_secs(30)))
            .set_read_timeout(Some(Duration::from_secs(60)));
        let marker_key;
        let client = match (&s.token_file, s.app_id, &s.app_key_file, s.installation_id) {
            (Some(file), ..) => {
                let token = read_secret("github.token_file", file)?;
                marker_key = marker_key_of(&token);
                builder.personal_token(token).build()
            }
            (None, Some(app_id), Some(key_file), Some(installation)) => {
                let pem = read_secret("github.app_key_file", key_file)?;
                marker_key = marker_key_of(&pem);
                let app = builder
                    .app_from_rsa_pem(app_id.into(), pem.as_bytes())
                    .map_err(|_| config_error("github.app_key_file", "not an RSA private key in PEM format"))?
                    .build()
                    .map_err(|e| config_error("github.app_id", e.to_string()))?;
                app.installation(installation.into())
            }
            _ => return Err(config_error("github.token_file", "set token_file, or app_id + app_key_file + installation_id")),
        }
        .map_err(|e| config_error("github.api_url", format!("cannot make a client: {e}")))?;
        Ok(Github {
            client,
            api_url: s.api_url.clone(),
            owner: owner.to_string(),
            repo: repo.to_string(),
            context: s.status_context.clone(),
            etags: Mutex::new(HashMap::new()),
            marker_key,
            budget: Mutex::new(None),
            budget_logged: Mutex::new(0),
        })
    }

    fn repo_path(&self, rest: &str) -> String {
        format!("/repos/{}/{}{rest}", self.owner, self.repo)
    }

    /// The first line of prci's comment on pull request `number`: [`COMMENT_MARKER`] and a signature only a holder of
    /// prci's credential can make, so a comment someone else starts with the marker is never taken for prci's.
    fn marker(&self, number: u64) -> String {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.marker_key).expect("HMAC takes any key length");
        mac.update(format!("{}/{}#{number}", self.owner, self.repo).as_bytes());
        let signature = hex::encode(mac.finalize().into_bytes());
        format!("{} {} -->", COMMENT_MARKER.trim_end_matches(" -->"), &signature[..32])
    }
}

/// Seconds since the epoch.
fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// How long a rate-limited answer says to wait: `retry-after` (secondary limits), else until `x-ratelimit-reset` when
/// the budget is spent; `None` when the answer is not a rate limit.
fn rate_limit_wait(answer: &Answer) -> Option<Duration> {
    if !matches!(answer.status.as_u16(), 403 | 429) {
        return None;
    }
    if let Some(secs) = answer.header("retry-after").and_then(|v| v.trim().parse::<u64>().ok()) {
        return Some(Duration::from_secs(secs.max(1)).min(MAX_WAIT));
    }
    let spent = answer.header("x-ratelimit-remaining").map(str::trim) == Some("0");
    let said = String::from_utf8_lossy(&answer.body).to_ascii_lowercase().contains("rate limit");
    if !spent && !said {
        return None; // a plain 403: no permission
    }
    let reset = answer.header("x-ratelimit-reset").and_then(|v| v.trim().parse::<u64>().ok());
    // A secondary limit without retry-after: GitHub asks for at least a minute.
    let secs = match reset {
        Some(reset) if spent => reset.saturating_sub(now()) + 1,
        _ => 60,
    };
    Some(Duration::from_secs(secs.max(1)).min(MAX_WAIT))
}

/// The `rel="next"` target of a `Link` header, as a path and query on the API (the client adds the base URL).
fn next_page(link: Option<&str>, api_url: &str) -> Option<String> {
    let next = link?.split(',').find(|part| part.contains("rel=\"next\""))?;
    let url = next.split(';').next()?.trim().trim_start_matches('<').trim_end_matches('>');
    let base = api_url.trim_end_matches('/');
    let rest = url.strip_prefix(base).or_else(|| url.split_once("://").and_then(|(_, r)| r.find('/').map(|i| &r[i..])))?;
    Some(rest.to_string())
}

/// `text` as a URL query value (RFC 3986 unreserved characters kept, everything else percent-encoded).
fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn pull_from(v: &Value) -> Option<Pull> {
    Some(Pull {
        number: v.get("number")?.as_u64()?,
        head: v.pointer("/head/sha")?.as_str()?.to_string(),
        base_branch: v.pointer("/base/ref")?.as_str()?.to_string(),
        labels: v
            .get("labels")
            .and_then(Value::as_array)
            .map(|ls| ls.iter().filter_map(|l| l.get("name").and_then(Value::as_str)).map(String::from).collect())
            .unwrap_or_default(),
        draft: v.get("draft").and_then(Value::as_bool).unwrap_or(false),
        open: v.get("state").and_then(Value::as_str) == Some("open"),
    })
}

impl Github {
    /// One API call, waiting out rate limits (primary: until the reset; secondary: `retry-after`) as often as it takes:
    /// a job is never failed for the budget. `etag` makes a GET conditional.
    fn call(&self, method: Method, path: &str, body: Option<&Value>, etag: Option<&str>) -> Result<Answer, ForgeError> {
        let mut waited = Duration::ZERO;
        loop {
            let answer = self.send(method.clone(), path, body, etag)?;
            self.note_budget(&answer);
            match rate_limit_wait(&answer) {
                Some(wait) if waited + wait > MAX_TOTAL_WAIT => {
                    return Err(ForgeError::Transport {
                        method: method.to_string(),
                        path: path.to_string(),
                        reason: format!("rate limited for {} s more; given up for now after {} s", wait.as_secs(), waited.as_secs()),
                    });
                }
                Some(wait) => {
                    waited += wait;
                    tracing::warn!(%method, path, status = answer.status.as_u16(), wait_secs = wait.as_secs(), "GitHub rate limit: waiting");
                    std::thread::sleep(wait);
                }
                None => return Ok(answer),
            }
        }
    }

    fn send(&self, method: Method, path: &str, body: Option<&Value>, etag: Option<&str>) -> Result<Answer, ForgeError> {
        let transport = |reason: String| ForgeError::Transport { method: method.to_string(), path: path.to_string(), reason };
        let client = &self.client;
        runtime().block_on(async {
            let response = match method.clone() {
                Method::GET => {
                    let mut headers = HeaderMap::new();
                    if let Some(tag) = etag.and_then(|t| http::HeaderValue::from_str(t).ok()) {
                        headers.insert(http::header::IF_NONE_MATCH, tag);
                    }
                    client._get_with_headers(path, Some(headers)).await
                }
                Method::POST => client._post(path, body).await,
                Method::PATCH => client._patch(path, body).await,
                Method::DELETE => client._delete(path, body).await,
                other => return Err(transport(format!("method {other} is not used"))),
            }
            .map_err(|e| transport(e.to_string()))?;
            let (parts, content) = response.into_parts();
            use http_body_util::BodyExt;
            let bytes = content.collect().await.map_err(|e| transport(format!("reading the answer: {e}")))?.to_bytes();
            Ok(Answer { status: parts.status, headers: parts.headers, body: bytes.to_vec() })
        })
    }

    /// Record the budget an answer reports, and log it now and then (every answer while it is low).
    fn note_budget(&self, answer: &Answer) {
        let num = |name: &str| answer.header(name).and_then(|v| v.trim().parse::<u64>().ok());
        let (Some(limit), Some(remaining), Some(reset)) =
            (num("x-ratelimit-limit"), num("x-ratelimit-remaining"), num("x-ratelimit-reset"))
        else {
            return;
        };
        let budget = Budget { limit, remaining, reset };
        let metrics = pipeline::metrics::get();
        metrics.github_remaining.set(i64::try_from(remaining).unwrap_or(i64::MAX));
        metrics.github_limit.set(i64::try_from(limit).unwrap_or(i64::MAX));
        *self.budget.lock().unwrap_or_else(|p| p.into_inner()) = Some(budget);
        let mut logged = self.budget_logged.lock().unwrap_or_else(|p| p.into_inner());
        let low = remaining.saturating_mul(10) < limit;
        if low || now() >= *logged + 60 {
            *logged = now();
            if low {
                tracing::warn!(remaining, limit, reset_in_secs = reset.saturating_sub(now()), "GitHub API budget low");
            } else {
                tracing::info!(remaining, limit, reset_in_secs = reset.saturating_sub(now()), "GitHub API budget");
            }
        }
    }

    /// An error for an answer that is not a success.
    fn failed(method: &Method, path: &str, answer: &Answer) -> ForgeError {
        let message = serde_json::from_slice::<Value>(&answer.body)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(String::from))
            .unwrap_or_else(|| String::from_utf8_lossy(&answer.body).chars().take(200).collect());
        ForgeError::Http { method: method.to_string(), path: path.to_string(), status: answer.status.as_u16(), message }
    }

    /// A conditional GET: an unchanged resource (304) is served from the last answer and costs no budget.
    fn get_cached(&self, path: &str) -> Result<(Value, Option<String>), ForgeError> {
        let cached = self.etags.lock().unwrap_or_else(|p| p.into_inner()).get(path).cloned();
        let answer = self.call(Method::GET, path, None, cached.as_ref().map(|(tag, _, _)| tag.as_str()))?;
        let link = answer.header("link").map(String::from);
        if answer.status == StatusCode::NOT_MODIFIED {
            if let Some((_, body, link)) = cached {
                let value = serde_json::from_slice(&body).map_err(|e| ForgeError::Decode {
                    method: "GET".into(),
                    path: path.into(),
                    reason: format!("cached answer: {e}"),
                })?;
                return Ok((value, link));
            }
        }
        if !answer.status.is_success() {
            return Err(Self::failed(&Method::GET, path, &answer));
        }
        if let Some(tag) = answer.header("etag") {
            let entry = (tag.to_string(), answer.body.clone(), link.clone());
            self.etags.lock().unwrap_or_else(|p| p.into_inner()).insert(path.to_string(), entry);
        }
        Ok((answer.json(&Method::GET, path)?, link))
    }

    /// Send a write; anything but a 2xx is an error.
    fn write(&self, method: Method, path: &str, body: &Value) -> Result<Value, ForgeError> {
        let answer = self.call(method.clone(), path, Some(body), None)?;
        if !answer.status.is_success() {
            return Err(Self::failed(&method, path, &answer));
        }
        Ok(if answer.body.is_empty() { Value::Null } else { answer.json(&method, path)? })
    }

    /// prci's status on `sha` as GitHub has it now (the combined status holds the latest of each context).
    fn current_status(&self, sha: &str) -> Result<Option<Status>, ForgeError> {
        let path = self.repo_path(&format!("/commits/{sha}/status?per_page=100"));
        let answer = self.call(Method::GET, &path, None, None)?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !answer.status.is_success() {
            return Err(Self::failed(&Method::GET, &path, &answer));
        }
        let combined = answer.json(&Method::GET, &path)?;
        let ours = combined
            .get("statuses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|s| s.get("context").and_then(Value::as_str) == Some(self.context.as_str()));
        Ok(ours.and_then(|s| {
            let state = match s.get("state").and_then(Value::as_str)? {
                "pending" => State::Pending,
                "success" => State::Success,
                "failure" => State::Failure,
                "error" => State::Error,
                _ => return None,
            };
            let text = |k: &str| s.get(k).and_then(Value::as_str).map(String::from);
            Some(Status { state, description: text("description").unwrap_or_default(), target_url: text("target_url") })
        }))
    }

    /// Send prci's status on `sha` as it is.
    fn post_status(&self, sha: &str, status: &Status) -> Result<(), ForgeError> {
        let mut body = json!({"state": status.state.as_str(), "description": status.description, "context": self.context});
        if let Some(url) = &status.target_url {
            body["target_url"] = json!(url);
        }
        self.write(Method::POST, &self.repo_path(&format!("/statuses/{sha}")), &body)?;
        Ok(())
    }

    /// prci's comment on a pull request, its id and body: the first comment starting with its signed marker.
    fn find_comment(&self, number: u64) -> Result<Option<(u64, String)>, ForgeError> {
        let marker = self.marker(number);
        let mut path = Some(self.repo_path(&format!("/issues/{number}/comments?per_page=100")));
        for _ in 0..MAX_PAGES {
            let Some(p) = path.take() else { break };
            let answer = self.call(Method::GET, &p, None, None)?;
            if !answer.status.is_success() {
                return Err(Self::failed(&Method::GET, &p, &answer));
            }
            let page = answer.json(&Method::GET, &p)?;
            let found = page
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c.get("body").and_then(Value::as_str).is_some_and(|b| b.lines().next() == Some(marker.as_str())));
            if let Some(comment) = found {
                let id = comment.get("id").and_then(Value::as_u64).ok_or_else(|| ForgeError::Decode {
                    method: "GET".into(),
                    path: p.clone(),
                    reason: "a comment without an id".into(),
                })?;
                let body = comment.get("body").and_then(Value::as_str).unwrap_or_default().to_string();
                return Ok(Some((id, body)));
            }
            path = next_page(answer.header("link"), &self.api_url);
        }
        Ok(None)
    }
}

impl Forge for Github {
    fn kind(&self) -> &'static str {
        "github"
    }

    fn open_pulls(&self, base_branch: &str) -> Result<Vec<Pull>, ForgeError> {
        let mut pulls = Vec::new();
        let mut path = Some(self.repo_path(&format!("/pulls?state=open&base={}&per_page=100", query_escape(base_branch))));
        for _ in 0..MAX_PAGES {
            let Some(p) = path.take() else { break };
            let (page, link) = self.get_cached(&p)?;
            let items =
                page.as_array().ok_or_else(|| ForgeError::Decode { method: "GET".into(), path: p.clone(), reason: "not a list".into() })?;
            pulls.extend(items.iter().filter_map(pull_from).filter(|pr| pr.base_branch == base_branch));
            path = next_page(link.as_deref(), &self.api_url);
        }
        pulls.sort_by_key(|p| p.number);
        pulls.dedup_by_key(|p| p.number);
        Ok(pulls)
    }

    fn pull(&self, number: u64) -> Result<Option<Pull>, ForgeError> {
        let path = self.repo_path(&format!("/pulls/{number}"));
        let answer = self.call(Method::GET, &path, None, None)?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !answer.status.is_success() {
            return Err(Self::failed(&Method::GET, &path, &answer));
        }
        let value = answer.json(&Method::GET, &path)?;
        pull_from(&value).map(Some).ok_or_else(|| ForgeError::Decode {
            method: "GET".into(),
            path,
            reason: "no number, head.sha or base.ref".into(),
        })
    }

    fn status(&self, sha: &str) -> Result<Option<Status>, ForgeError> {
        self.current_status(sha)
    }

    fn set_status(&self, sha: &str, status: &Status) -> Result<bool, ForgeError> {
        let wanted = kept(status);
        if self.current_status(sha)?.as_ref() == Some(&wanted) {
            return Ok(false);
        }
        self.post_status(sha, &wanted)?;
        Ok(true)
    }

    fn refresh_pending(&self, sha: &str, status: &Status) -> Result<bool, ForgeError> {
        let wanted = kept(status);
        match self.current_status(sha)? {
            Some(current) if current.state == State::Pending && current != wanted => {
                self.post_status(sha, &wanted)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn upsert_comment(&self, number: u64, body: &str) -> Result<bool, ForgeError> {
        let text = format!("{}\n{body}", self.marker(number));
        match self.find_comment(number)? {
            // A redelivered verdict, or another publisher instance that got there first: nothing to change.
            Some((_, found)) if same_text(&found, &text) => return Ok(false),
            Some((id, _)) => self.write(Method::PATCH, &self.repo_path(&format!("/issues/comments/{id}")), &json!({"body": text}))?,
            None => self.write(Method::POST, &self.repo_path(&format!("/issues/{number}/comments")), &json!({"body": text}))?,
        };
        Ok(true)
    }

    fn permission(&self, user: &str) -> Result<Permission, ForgeError> {
        if user.is_empty() || !user.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '[' || c == ']') {
            return Ok(Permission::None);
        }
        let path = self.repo_path(&format!("/collaborators/{user}/permission"));
        let answer = self.call(Method::GET, &path, None, None)?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(Permission::None);
        }
        if !answer.status.is_success() {
            return Err(Self::failed(&Method::GET, &path, &answer));
        }
        let value = answer.json(&Method::GET, &path)?;
        Ok(Permission::parse(value.get("permission").and_then(Value::as_str).unwrap_or("none")))
    }

    fn acknowledge(&self, comment_id: u64) -> Result<(), ForgeError> {
        self.write(Method::POST, &self.repo_path(&format!("/issues/comments/{comment_id}/reactions")), &json!({"content": "rocket"}))?;
        Ok(())
    }

    fn budget(&self) -> Option<Budget> {
        *self.budget.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A status as GitHub keeps it (its description cut to what GitHub stores), so it compares equal to what GitHub shows.
fn kept(status: &Status) -> Status {
    Status { description: status.description.chars().take(DESCRIPTION_MAX).collect(), ..status.clone() }
}

/// Whether a comment GitHub holds says what prci would write: the same text up to line endings (a comment edited in the
/// web interface comes back with CRLF) and trailing white space.
fn same_text(found: &str, wanted: &str) -> bool {
    found.replace("\r\n", "\n").trim_end() == wanted.replace("\r\n", "\n").trim_end()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, headers: &[(&'static str, &str)], body: &str) -> Answer {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, http::HeaderValue::from_str(v).unwrap());
        }
        Answer { status: StatusCode::from_u16(status).unwrap(), headers: map, body: body.as_bytes().to_vec() }
    }

    #[test]
    fn rate_limits_are_told_apart_from_refusals() {
        assert_eq!(rate_limit_wait(&answer(403, &[("retry-after", "7")], "{}")), Some(Duration::from_secs(7)));
        let reset = (now() + 30).to_string();
        let spent = answer(403, &[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", &reset)], "{}");
        let wait = rate_limit_wait(&spent).unwrap();
        assert!(wait >= Duration::from_secs(29) && wait <= Duration::from_secs(31), "{wait:?}");
        assert_eq!(
            rate_limit_wait(&answer(429, &[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1")], "")),
            Some(Duration::from_secs(1))
        );
        let secondary = answer(403, &[("x-ratelimit-remaining", "4000")], r#"{"message":"You have exceeded a secondary rate limit"}"#);
        assert_eq!(rate_limit_wait(&secondary), Some(Duration::from_secs(60)));
        assert_eq!(rate_limit_wait(&answer(403, &[("x-ratelimit-remaining", "4000")], r#"{"message":"Resource not accessible"}"#)), None);
        assert_eq!(rate_limit_wait(&answer(200, &[("retry-after", "7")], "")), None);
        assert_eq!(rate_limit_wait(&answer(403, &[("retry-after", "999999")], "")), Some(MAX_WAIT));
    }

    #[test]
    fn the_next_page_is_a_path_on_the_api() {
        let link = r#"<http://127.0.0.1:9/repos/o/r/pulls?page=2&per_page=100>; rel="next", <http://127.0.0.1:9/repos/o/r/pulls?page=5>; rel="last""#;
        assert_eq!(next_page(Some(link), "http://127.0.0.1:9").as_deref(), Some("/repos/o/r/pulls?page=2&per_page=100"));
        let ghe = r#"<https://ghe.example/api/v3/repos/o/r/pulls?page=3>; rel="next""#;
        assert_eq!(next_page(Some(ghe), "https://ghe.example/api/v3/").as_deref(), Some("/repos/o/r/pulls?page=3"));
        assert_eq!(next_page(Some(r#"<http://x/a?page=1>; rel="prev""#), "http://x"), None);
        assert_eq!(next_page(None, "http://x"), None);
    }

    #[test]
    fn a_comment_is_the_same_up_to_line_endings_and_trailing_space() {
        assert!(same_text("<!-- m -->\r\n## x\r\n\r\nbody\r\n", "<!-- m -->\n## x\n\nbody\n"));
        assert!(same_text("a\nb", "a\nb\n"));
        assert!(!same_text("a\nb", "a\nc"));
        assert!(!same_text("a\n b", "a\nb"), "leading white space on a line is Markdown");
    }

    #[test]
    fn branch_names_are_escaped_in_queries() {
        assert_eq!(query_escape("release/1.0+x&y#z"), "release%2F1.0%2Bx%26y%23z");
        assert_eq!(query_escape("master"), "master");
    }

    #[test]
    fn a_pull_request_is_read_from_the_api_shape() {
        let v = json!({"number": 5, "state": "open", "draft": true, "head": {"sha": "a"}, "base": {"ref": "master"},
                       "labels": [{"name": "noci"}, {"name": "priority-ci"}]});
        let pull = pull_from(&v).unwrap();
        assert!(pull.open && pull.draft && pull.has_label("NOCI") && pull.has_label("priority-ci"));
        assert_eq!((pull.number, pull.head.as_str(), pull.base_branch.as_str()), (5, "a", "master"));
        assert!(pull_from(&json!({"number": 5})).is_none());
    }
}
