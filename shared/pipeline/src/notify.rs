//! Infrastructure failures reach people: a message a stage dead-letters is POSTed as a small JSON document to `[notify] url` (an IRC, Matrix or mail bridge), from a thread of its own so a slow hook never holds a stage.

use crate::messages::Queue;
use serde_json::{json, Value};
use std::sync::RwLock;
use std::time::Duration;

#[derive(Debug, Clone)]
struct Hook {
    url: String,
    timeout: Duration,
    link: String,
}

static HOOK: RwLock<Option<Hook>> = RwLock::new(None);

/// Set this process's hook from the configuration (none without `notify.url`).
pub fn configure(settings: &crate::Settings) {
    let hook = settings.notify.url.as_ref().map(|url| Hook {
        url: url.clone(),
        timeout: Duration::from_secs(settings.notify.timeout_secs),
        link: settings.reports.base_url.clone(),
    });
    *HOOK.write().unwrap_or_else(|p| p.into_inner()) = hook;
}

/// The document for a message `stage` dead-lettered from `queue` with `error`.
pub fn dead_letter_document(stage: &str, queue: Queue, body: &[u8], error: &str, link: &str) -> Value {
    let revision = serde_json::from_slice::<Value>(body).ok().and_then(|v| find_revision(&v).cloned());
    let field = |k: &str| revision.as_ref().and_then(|r| r.get(k)).cloned().unwrap_or(Value::Null);
    json!({
        "event": "dead_letter",
        "stage": stage,
        "queue": queue.short(),
        "error": error,
        "repository": field("repository"),
        "pr": field("pr"),
        "head": field("head"),
        "link": link,
    })
}

/// The revision a message is about: the first object holding `pr` and `head` (a `Revision`, or one inside a
/// `PreparedTrees`, `Scanned` or verdict message).
pub fn find_revision(v: &Value) -> Option<&Value> {
    let obj = v.as_object()?;
    if obj.get("pr").is_some_and(Value::is_u64) && obj.get("head").is_some_and(Value::is_string) {
        return Some(v);
    }
    obj.values().find_map(find_revision)
}

/// Tell the configured hook (if any) that `stage` dead-lettered a message; returns at once.
pub fn dead_letter(stage: &str, queue: Queue, body: &[u8], error: &str) {
    let Some(hook) = HOOK.read().unwrap_or_else(|p| p.into_inner()).clone() else { return };
    let doc = dead_letter_document(stage, queue, body, error, &hook.link);
    std::thread::spawn(move || {
        let mut agent = ureq::AgentBuilder::new().timeout(hook.timeout);
        match native_tls::TlsConnector::new() {
            Ok(tls) => agent = agent.tls_connector(std::sync::Arc::new(tls)),
            Err(e) => tracing::warn!(error = %e, "no TLS for the notification hook; only an http:// hook can be reached"),
        }
        let agent = agent.build();
        if let Err(e) = agent.post(&hook.url).send_json(&doc) {
            // The URL may carry a secret (a bridge's token): named by its host only.
            let host = hook.url.split("://").nth(1).and_then(|r| r.split(['/', '?']).next()).unwrap_or("?").to_owned();
            let host = host.rsplit('@').next().unwrap_or("?").to_owned();
            tracing::error!(%host, error = %short(&e), "the notification hook did not take the dead-letter notice");
        }
    });
}

fn short(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Status(code, _) => format!("HTTP {code}"),
        ureq::Error::Transport(t) => t.kind().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_names_the_revision_wherever_the_message_holds_it() {
        let prepared = br#"{"revision": {"repository": "gentoo", "pr": 12, "head": "abc", "base_branch": "master"}, "base": "def"}"#;
        let doc = dead_letter_document("checker", Queue::Prepared, prepared, "pkgcheck: boom", "https://ci.example.org/");
        assert_eq!(doc["pr"], 12);
        assert_eq!(doc["head"], "abc");
        assert_eq!(doc["repository"], "gentoo");
        assert_eq!(doc["stage"], "checker");
        assert_eq!(doc["error"], "pkgcheck: boom");
        let garbage = dead_letter_document("regen", Queue::Revisions, b"not json", "undecodable", "l");
        assert_eq!((garbage["pr"].clone(), garbage["event"].clone()), (Value::Null, json!("dead_letter")));
    }
}
