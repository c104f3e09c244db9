//! `prci dead-letters list|replay`: the messages the pipeline gave up on (`<prefix>.<queue>.dead`), shown in place or moved back to their work queue.

use pipeline::messages::Queue;
use pipeline::rabbitmq::{self, BrokerConfig, DeadLetter};
use pipeline::Settings;
use serde_json::{json, Value};

/// Why a dead-letters command could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum DeadLettersError {
    /// Configuration it cannot work with: exit 64.
    #[error("bad configuration: {key}: {reason}")]
    Config { key: String, reason: String },
    #[error("{0}")]
    Broker(#[from] rabbitmq::BrokerError),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}

/// The work queues by the short names `--queue` takes (`revisions`, `prepared`, `scanned`, `verdicts`).
pub fn queues(only: Option<&str>) -> Vec<Queue> {
    Queue::ALL
        .into_iter()
        .filter(|q| match only {
            Some(name) => q.short() == name,
            None => true,
        })
        .collect()
}

fn broker(settings: &Settings) -> Result<BrokerConfig, DeadLettersError> {
    match &settings.broker.url {
        Some(url) => Ok(BrokerConfig::new(url, &settings.broker.prefix)),
        None => Err(DeadLettersError::Config {
            key: "broker.url".into(),
            reason: "dead letters live on RabbitMQ: set broker.url (the in-process queues keep none)".into(),
        }),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, DeadLettersError> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(DeadLettersError::Runtime)
}

/// Every dead letter of `queues`, left where it is.
pub fn list(settings: &Settings, queues: &[Queue]) -> Result<Vec<DeadLetter>, DeadLettersError> {
    let cfg = broker(settings)?;
    runtime()?.block_on(async {
        let mut all = Vec::new();
        for queue in queues {
            all.extend(rabbitmq::peek_dead_letters(&cfg, *queue).await?);
        }
        Ok(all)
    })
}

/// Move up to `max` dead letters (all without it) of `queues` back where they died; a body that is not JSON stays.
pub fn replay(settings: &Settings, queues: &[Queue], max: Option<usize>) -> Result<rabbitmq::Replayed, DeadLettersError> {
    let cfg = broker(settings)?;
    runtime()?.block_on(async {
        let mut all = rabbitmq::Replayed::default();
        for queue in queues {
            let left = max.map(|m| m.saturating_sub(all.moved.len()));
            if left == Some(0) {
                break;
            }
            let done = rabbitmq::replay_dead_letters(&cfg, *queue, left, |letter| {
                serde_json::from_slice::<Value>(&letter.body)
                    .map(|_| ())
                    .map_err(|e| format!("its body is not valid JSON ({e}), so no stage could read it; it stays"))
            })
            .await?;
            all.moved.extend(done.moved);
            all.kept.extend(done.kept);
        }
        Ok(all)
    })
}

/// Whole seconds since Unix `then`.
fn age_secs(then: f64, now: f64) -> u64 {
    (now - then).max(0.0) as u64
}

/// `90` → `1m30s`.
pub fn human_age(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s if s < 86400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}

/// What a dead-letter reason means, in words.
pub fn explain(reason: Option<&str>) -> String {
    match reason {
        Some("rejected") => "rejected: a stage gave up on it (its error went to the notification hook and the log)".into(),
        Some("delivery_limit") => "delivery limit: the broker gave up after repeated redeliveries".into(),
        Some("expired") => "expired: its time to live ran out".into(),
        Some("maxlen") => "maxlen: the queue was full".into(),
        Some(other) => other.to_owned(),
        None => "unknown (no x-death header)".into(),
    }
}

/// One dead letter as a JSON object: queue, where it died, reason, pull request and head when the body names them, age.
pub fn document(letter: &DeadLetter, prefix: &str, now: f64) -> Value {
    let body = serde_json::from_slice::<Value>(&letter.body).ok();
    let revision = body.as_ref().and_then(pipeline::notify::find_revision);
    let field = |k: &str| revision.and_then(|r| r.get(k)).cloned().unwrap_or(Value::Null);
    let died = letter.died_at.map(|t| t as f64).or(letter.sent_at);
    json!({
        "queue": letter.queue.short(),
        "dead_letter_queue": letter.queue.dead_letter_name(prefix),
        "from": letter.from,
        "reason": letter.reason,
        "reason_text": explain(letter.reason.as_deref()),
        "deaths": letter.deaths,
        "repository": field("repository"),
        "pr": field("pr"),
        "head": field("head"),
        "age_secs": died.map(|t| age_secs(t, now)),
        "json": body.is_some(),
        "bytes": letter.body.len(),
    })
}

/// The text listing: one line per dead letter.
pub fn render(letters: &[DeadLetter], prefix: &str, now: f64) -> String {
    let mut out = String::new();
    for letter in letters {
        let doc = document(letter, prefix, now);
        let pr = doc["pr"].as_u64().map(|n| format!("#{n}")).unwrap_or_else(|| "-".into());
        let head = doc["head"].as_str().map(|h| h.chars().take(12).collect()).unwrap_or_else(|| "-".to_owned());
        let age = doc["age_secs"].as_u64().map(human_age).unwrap_or_else(|| "?".into());
        let body = if doc["json"] == Value::Bool(true) { String::new() } else { format!(" (body not JSON, {} bytes)", letter.body.len()) };
        out.push_str(&format!(
            "{:<10} {:>7} {:>7} {:<12} {}{body}\n",
            letter.queue.short(),
            age,
            pr,
            head,
            explain(letter.reason.as_deref())
        ));
    }
    out.push_str(&format!("{} dead letter{}\n", letters.len(), if letters.len() == 1 { "" } else { "s" }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(body: &[u8], reason: &str) -> DeadLetter {
        DeadLetter {
            queue: Queue::Prepared,
            body: body.to_vec(),
            reason: Some(reason.into()),
            from: Some("prci.prepared".into()),
            died_at: Some(1000),
            sent_at: Some(900.0),
            deaths: 1,
            priority: 0,
        }
    }

    #[test]
    fn a_dead_letter_names_its_pull_request_reason_and_age() {
        let body = br#"{"revision": {"repository": "gentoo", "pr": 12, "head": "abcdef0123456789", "base": "x"}}"#;
        let doc = document(&letter(body, "delivery_limit"), "prci", 1090.0);
        assert_eq!((doc["pr"].clone(), doc["head"].clone()), (json!(12), json!("abcdef0123456789")));
        assert_eq!((doc["queue"].clone(), doc["dead_letter_queue"].clone()), (json!("prepared"), json!("prci.prepared.dead")));
        assert_eq!((doc["age_secs"].clone(), doc["reason"].clone()), (json!(90), json!("delivery_limit")));
        let text = render(&[letter(body, "rejected"), letter(b"{not json", "rejected")], "prci", 1090.0);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("#12") && lines[0].contains("abcdef012345") && lines[0].contains("1m30s"), "{text}");
        assert!(lines[1].contains("body not JSON, 9 bytes") && lines[1].contains(" - "), "{text}");
        assert_eq!(lines[2], "2 dead letters");
    }

    #[test]
    fn queues_by_short_name() {
        assert_eq!(queues(Some("scanned")), [Queue::Scanned]);
        assert_eq!(queues(None).len(), 4);
        assert_eq!(human_age(3 * 3600 + 120), "3h02m");
    }
}
