//! GitHub webhook deliveries: the signature check (`X-Hub-Signature-256`, HMAC-SHA256 compared in constant time)
//! and what a delivery asks of prci, read from its JSON payload.

use hmac::{Hmac, Mac};
use serde_json::Value;

/// Whether `signature` (the `X-Hub-Signature-256` header, `sha256=<hex>`) is the HMAC-SHA256 of `body` under `secret`.
/// A missing, malformed or wrong signature is `false`; the comparison takes the same time wherever they differ.
pub fn verify(secret: &[u8], body: &[u8], signature: Option<&str>) -> bool {
    let Some(hex_digest) = signature.and_then(|s| s.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_digest) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// What a delivery asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// GitHub checking the hook.
    Ping,
    /// Something about pull request `number` changed that may change what to check: look at it again.
    Pull { number: u64, action: String },
    /// A new comment on pull request `number` (prci looks for `/prci recheck`).
    Comment { number: u64, comment_id: u64, user: String, body: String },
    /// Nothing for prci (another event or action, another repository); the reason is logged.
    Ignored(String),
}

/// `pull_request` actions that change what prci checks (`edited` only when the base branch changed).
const PULL_ACTIONS: [&str; 8] =
    ["opened", "synchronize", "reopened", "closed", "labeled", "unlabeled", "ready_for_review", "converted_to_draft"];

/// Read a delivery of event `event` (the `X-GitHub-Event` header) for repository `repository` (`owner/name`).
/// A payload that is not JSON or lacks what its event implies is an error (answered 400).
pub fn parse(event: &str, body: &[u8], repository: &str) -> Result<Event, String> {
    let payload: Value = serde_json::from_slice(body).map_err(|e| format!("the payload is not JSON: {e}"))?;
    if event == "ping" {
        return Ok(Event::Ping);
    }
    let full_name = payload.pointer("/repository/full_name").and_then(Value::as_str).unwrap_or("");
    if !full_name.eq_ignore_ascii_case(repository) {
        return Ok(Event::Ignored(format!("a {event} event about another repository ({full_name:?})")));
    }
    let action = payload.get("action").and_then(Value::as_str).unwrap_or("").to_string();
    let missing = |what: &str| format!("a {event} payload without {what}");
    match event {
        "pull_request" => {
            let number = payload.pointer("/pull_request/number").and_then(Value::as_u64).ok_or_else(|| missing("pull_request.number"))?;
            let base_changed = payload.pointer("/changes/base").is_some();
            if PULL_ACTIONS.contains(&action.as_str()) || (action == "edited" && base_changed) {
                Ok(Event::Pull { number, action })
            } else {
                Ok(Event::Ignored(format!("pull_request action {action:?}")))
            }
        }
        "issue_comment" => {
            if action != "created" {
                return Ok(Event::Ignored(format!("issue_comment action {action:?}")));
            }
            if payload.pointer("/issue/pull_request").is_none() {
                return Ok(Event::Ignored("a comment on an issue, not a pull request".into()));
            }
            let number = payload.pointer("/issue/number").and_then(Value::as_u64).ok_or_else(|| missing("issue.number"))?;
            let comment_id = payload.pointer("/comment/id").and_then(Value::as_u64).ok_or_else(|| missing("comment.id"))?;
            let user = payload.pointer("/comment/user/login").and_then(Value::as_str).ok_or_else(|| missing("comment.user.login"))?;
            let body = payload.pointer("/comment/body").and_then(Value::as_str).unwrap_or("");
            Ok(Event::Comment { number, comment_id, user: user.to_string(), body: body.to_string() })
        }
        other => Ok(Event::Ignored(format!("event {other:?}"))),
    }
}

/// Whether a comment asks for a re-run: a line that is `/prci recheck`.
pub fn asks_recheck(body: &str) -> bool {
    body.lines().any(|line| line.trim() == "/prci recheck")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &[u8], body: &[u8]) -> String {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn only_the_right_signature_passes() {
        let body = br#"{"zen":"Keep it logically awesome."}"#;
        let good = sign(b"s3cret", body);
        assert!(verify(b"s3cret", body, Some(&good)));
        assert!(!verify(b"other", body, Some(&good)));
        assert!(!verify(b"s3cret", b"{}", Some(&good)));
        assert!(!verify(b"s3cret", body, None));
        assert!(!verify(b"s3cret", body, Some(good.trim_start_matches("sha256="))));
        assert!(!verify(b"s3cret", body, Some("sha256=zz")));
        assert!(!verify(b"s3cret", body, Some(&good[..good.len() - 2])));
    }

    #[test]
    fn deliveries_are_read_for_what_they_ask() {
        let pr = |action: &str, extra: &str| {
            format!(r#"{{"action":"{action}","pull_request":{{"number":9}},"repository":{{"full_name":"Gentoo/gentoo"}}{extra}}}"#)
        };
        assert_eq!(
            parse("pull_request", pr("synchronize", "").as_bytes(), "gentoo/gentoo"),
            Ok(Event::Pull { number: 9, action: "synchronize".into() })
        );
        assert!(matches!(parse("pull_request", pr("edited", "").as_bytes(), "gentoo/gentoo"), Ok(Event::Ignored(_))));
        let rebased = pr("edited", r#","changes":{"base":{"ref":{"from":"dev"}}}"#);
        assert!(matches!(parse("pull_request", rebased.as_bytes(), "gentoo/gentoo"), Ok(Event::Pull { .. })));
        assert!(matches!(parse("pull_request", pr("opened", "").as_bytes(), "other/repo"), Ok(Event::Ignored(_))));
        assert!(matches!(parse("push", pr("x", "").as_bytes(), "gentoo/gentoo"), Ok(Event::Ignored(_))));
        assert_eq!(parse("ping", b"{}", "gentoo/gentoo"), Ok(Event::Ping));
        assert!(parse("pull_request", b"not json", "gentoo/gentoo").is_err());
        assert!(parse("pull_request", br#"{"action":"opened","repository":{"full_name":"gentoo/gentoo"}}"#, "gentoo/gentoo").is_err());
        assert!(asks_recheck("thanks!\n /prci recheck \n") && !asks_recheck("please /prci recheck this"));
    }
}
