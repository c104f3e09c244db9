//! `POST /webhook`: GitHub deliveries checked (HMAC signature: 401 and nothing done when wrong or missing), read,
//! recorded and answered before any work is done on them. The poller's loop does the work: any relevant delivery wakes
//! it for a poll at once (the periodic poll catches what a lost delivery missed); a `/prci recheck` comment is spooled
//! to disk first, so an accepted re-run is never lost. A delivery seen before (same `X-GitHub-Delivery`) does nothing.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use forge::webhook::{self, Event};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::Notify;

/// GitHub sends payloads of up to 25 MB.
const BODY_LIMIT: usize = 25 * 1024 * 1024;
/// How long a delivery id is remembered (GitHub's redelivery window is three days).
const SEEN_FOR: Duration = Duration::from_secs(7 * 24 * 3600);

/// A re-run asked for in a comment, waiting for the permission check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recheck {
    pub pr: u64,
    pub comment_id: u64,
    pub user: String,
}

/// Deliveries on disk: `seen/<delivery>` markers and `rechecks/<delivery>.json`.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

/// What became of a delivery.
#[derive(Debug, PartialEq, Eq)]
pub enum Accepted {
    New,
    Duplicate,
}

impl Spool {
    pub fn new(dir: PathBuf) -> Spool {
        Spool { dir }
    }

    /// Record delivery `id` (and its re-run, if it asks for one); `Duplicate` when the id was seen before.
    pub fn accept(&self, id: &str, recheck: Option<&Recheck>) -> std::io::Result<Accepted> {
        let seen = self.dir.join("seen");
        fs::create_dir_all(&seen)?;
        let marker = seen.join(id);
        if marker.exists() {
            return Ok(Accepted::Duplicate);
        }
        if let Some(recheck) = recheck {
            let dir = self.dir.join("rechecks");
            fs::create_dir_all(&dir)?;
            let tmp = dir.join(format!(".{id}.tmp"));
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&serde_json::to_vec(recheck).unwrap_or_default())?;
            f.sync_all()?;
            fs::rename(&tmp, dir.join(format!("{id}.json")))?;
        }
        match fs::OpenOptions::new().write(true).create_new(true).open(&marker) {
            Ok(_) => Ok(Accepted::New),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(Accepted::Duplicate),
            Err(e) => Err(e),
        }
    }

    /// The re-runs waiting, oldest first, with the file to remove once done; forgets delivery ids older than a week.
    pub fn rechecks(&self) -> Vec<(PathBuf, Recheck)> {
        self.forget_old();
        let Ok(entries) = fs::read_dir(self.dir.join("rechecks")) else { return vec![] };
        let mut found: Vec<(SystemTime, PathBuf, Recheck)> = entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json") && !e.file_name().to_string_lossy().starts_with('.'))
            .filter_map(|e| {
                let modified = e.metadata().and_then(|m| m.modified()).ok()?;
                match fs::read(e.path()).ok().and_then(|b| serde_json::from_slice(&b).ok()) {
                    Some(r) => Some((modified, e.path(), r)),
                    None => {
                        tracing::warn!(file = %e.path().display(), "unreadable spooled re-run removed");
                        let _ = fs::remove_file(e.path());
                        None
                    }
                }
            })
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        found.into_iter().map(|(_, p, r)| (p, r)).collect()
    }

    fn forget_old(&self) {
        let Ok(entries) = fs::read_dir(self.dir.join("seen")) else { return };
        for e in entries.flatten() {
            let old = e.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok()).is_some_and(|age| age > SEEN_FOR);
            if old {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

/// What the endpoint needs.
pub struct Hook {
    pub secret: Vec<u8>,
    /// `owner/name`: deliveries about other repositories are ignored.
    pub repository: String,
    pub spool: Spool,
    /// Woken for every delivery that may need a poll.
    pub wake: Arc<Notify>,
}

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("Hook").field("repository", &self.repository).field("spool", &self.spool).finish_non_exhaustive()
    }
}

/// Deliveries handled at once; more wait (bodies are read before the signature can be checked).
const CONCURRENT: usize = 8;

/// The routes: `POST /webhook`.
pub fn router(hook: Arc<Hook>) -> axum::Router {
    axum::Router::new()
        .route("/webhook", post(deliver))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(CONCURRENT))
        .with_state(hook)
}

/// A delivery id: GitHub's are GUIDs; anything that could name another file is refused.
fn delivery_id(headers: &HeaderMap) -> Option<&str> {
    let id = headers.get("x-github-delivery")?.to_str().ok()?;
    let ok = !id.is_empty() && id.len() <= 100 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then_some(id)
}

async fn deliver(State(hook): State<Arc<Hook>>, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    let signature = headers.get("x-hub-signature-256").and_then(|v| v.to_str().ok());
    if !webhook::verify(&hook.secret, &body, signature) {
        tracing::warn!("webhook delivery refused: signature missing or wrong");
        return (StatusCode::UNAUTHORIZED, "signature missing or wrong\n".into());
    }
    let Some(id) = delivery_id(&headers) else {
        return (StatusCode::BAD_REQUEST, "no usable X-GitHub-Delivery header\n".into());
    };
    let event = headers.get("x-github-event").and_then(|v| v.to_str().ok()).unwrap_or("");
    let parsed = match webhook::parse(event, &body, &hook.repository) {
        Ok(p) => p,
        Err(reason) => {
            tracing::warn!(delivery = id, event, %reason, "webhook delivery refused");
            return (StatusCode::BAD_REQUEST, format!("{reason}\n"));
        }
    };
    let recheck = match &parsed {
        Event::Comment { number, comment_id, user, body } if webhook::asks_recheck(body) => {
            Some(Recheck { pr: *number, comment_id: *comment_id, user: user.clone() })
        }
        _ => None,
    };
    let wakes = matches!(parsed, Event::Pull { .. }) || recheck.is_some();
    match hook.spool.accept(id, recheck.as_ref()) {
        Ok(Accepted::Duplicate) => {
            tracing::info!(delivery = id, event, "webhook delivery seen before: nothing done");
            (StatusCode::OK, "duplicate delivery\n".into())
        }
        Ok(Accepted::New) => {
            let pr = match &parsed {
                Event::Pull { number, .. } | Event::Comment { number, .. } => Some(*number),
                _ => None,
            };
            tracing::info!(delivery = id, event, ?pr, recheck = recheck.is_some(), "webhook delivery accepted");
            if wakes {
                hook.wake.notify_one();
            }
            (StatusCode::ACCEPTED, "accepted\n".into())
        }
        Err(e) => {
            tracing::error!(delivery = id, error = %e, "cannot record a webhook delivery");
            (StatusCode::SERVICE_UNAVAILABLE, "cannot record the delivery\n".into())
        }
    }
}

/// Where a repository's deliveries are spooled.
pub fn spool_dir(work: &Path, repository: &str) -> PathBuf {
    work.join("poller").join(format!("{repository}.webhooks"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_delivery_is_accepted_once_and_its_recheck_kept_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path().join("spool"));
        let r = Recheck { pr: 4, comment_id: 99, user: "dev".into() };
        assert_eq!(spool.accept("abc-1", Some(&r)).unwrap(), Accepted::New);
        assert_eq!(spool.accept("abc-1", Some(&r)).unwrap(), Accepted::Duplicate);
        assert_eq!(spool.accept("abc-2", None).unwrap(), Accepted::New);
        let waiting = spool.rechecks();
        assert_eq!(waiting.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>(), vec![r]);
        fs::remove_file(&waiting[0].0).unwrap();
        assert!(spool.rechecks().is_empty());
        assert_eq!(spool.accept("abc-1", None).unwrap(), Accepted::Duplicate, "still remembered after it was done");
    }

    #[test]
    fn delivery_ids_that_could_name_a_file_are_refused() {
        let mut h = HeaderMap::new();
        for bad in ["../x", "", "a/b", "a b"] {
            h.insert("x-github-delivery", bad.parse().unwrap());
            assert_eq!(delivery_id(&h), None, "{bad:?}");
        }
        h.insert("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958".parse().unwrap());
        assert!(delivery_id(&h).is_some());
    }
}
