//! The publisher stage's logic: the report pages, the forge's status and comment, and the plain-text report a contributor reads from `prci check` (new issues first, by package; then fixed; then a count of unchanged ones).

pub mod comment;
pub mod html;
pub mod reports;
pub mod status;

use findings::Finding;
use findings::{CheckReport, Verdict};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Render a report for a terminal.
pub fn render_text(r: &CheckReport) -> String {
    let mut out = String::new();
    let verdict = match r.verdict {
        Verdict::Pass => "PASS",
        Verdict::Fail => "FAIL",
        Verdict::Error => "ERROR",
    };
    let _ = writeln!(out, "prci: {verdict}: {}", r.reason);
    if r.verdict == Verdict::Error {
        let _ = writeln!(out, "This is a failure of the CI itself, not of the pull request.");
    }
    if !r.base.is_empty() {
        let tested = if r.tested.is_empty() {
            "nothing".to_string()
        } else if r.tested == r.head {
            format!("{} (fast-forward)", short(&r.tested))
        } else if r.tested == r.base {
            format!("{} (head already in base)", short(&r.tested))
        } else {
            format!("{} (head merged onto base)", short(&r.tested))
        };
        let _ = writeln!(out, "base {} · head {} · tested {tested}", short(&r.base), short(&r.head));
    }
    if !r.tools.is_empty() {
        let tools: Vec<String> = r.tools.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(out, "tools: {}", tools.join(", "));
    }
    if !r.conflicts.is_empty() {
        let _ = writeln!(out, "\nMerge conflicts ({}): rebase the pull request onto the current base", r.conflicts.len());
        for p in &r.conflicts {
            let _ = writeln!(out, "  {p}");
        }
    }
    if r.verdict != Verdict::Error && r.conflicts.is_empty() {
        let scope = if r.scan.full {
            "the whole repository".to_string()
        } else if r.scan.targets.is_empty() {
            "repository-level checks only".to_string()
        } else {
            format!("{} target(s) plus repository-level checks", r.scan.targets.len())
        };
        let _ = writeln!(out, "scanned: {scope}");
        section(&mut out, "New issues", &r.new);
        section(&mut out, "Fixed issues", &r.fixed);
        let _ = writeln!(out, "\nUnchanged: {} pre-existing issue(s) in what was scanned", r.unchanged.len());
    }
    out
}

/// One titled list, grouped by package (or eclass, category, repository).
fn section(out: &mut String, title: &str, findings: &[Finding]) {
    let _ = writeln!(out, "\n{title} ({}):", findings.len());
    if findings.is_empty() {
        let _ = writeln!(out, "  none");
        return;
    }
    let mut groups: BTreeMap<String, Vec<&Finding>> = BTreeMap::new();
    for f in findings {
        groups.entry(group_of(f)).or_default().push(f);
    }
    for (group, list) in groups {
        let _ = writeln!(out, "  {group}");
        for f in list {
            let level = f.get("level").and_then(Value::as_str).unwrap_or("?");
            let version = f.get("version").and_then(Value::as_str).map(|v| format!(" [{v}]")).unwrap_or_default();
            let _ = writeln!(out, "    {level:<8} {}{version}: {}", findings::class_of(f), describe(f));
        }
    }
}

/// Package (`cat/pkg`), `eclass/X`, category or "repository".
pub fn group_of(f: &Finding) -> String {
    findings::package_of(f).unwrap_or_else(|| findings::location_of(f))
}

/// The finding's own attributes, as `key: value` pairs.
pub fn describe(f: &Finding) -> String {
    let parts: Vec<String> = f
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "__class__" | "level" | "category" | "package" | "version" | "eclass"))
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}: {s}"),
            Value::Array(a) => format!(
                "{k}: {}",
                a.iter().map(|x| x.as_str().map(str::to_owned).unwrap_or_else(|| x.to_string())).collect::<Vec<_>>().join(", ")
            ),
            other => format!("{k}: {other}"),
        })
        .collect();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join("; ")
    }
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(10)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_issues_come_first_grouped_by_package() {
        let mut r = CheckReport::error("t", &"a".repeat(40), &"b".repeat(40), "");
        r.verdict = Verdict::Fail;
        r.reason = "1 new issue(s) at a failing level: 1 error".into();
        r.tested = "c".repeat(40);
        r.new = vec![findings::parse_line(
            r#"{"__class__": "MissingLicense", "category": "app-misc", "package": "foo", "version": "1.0", "licenses": ["Nope"]}"#,
            "",
        )
        .unwrap()];
        r.fixed = vec![findings::parse_line(
            r#"{"__class__": "DeprecatedEapi", "category": "dev-libs", "package": "bar", "version": "2", "eapi": "6"}"#,
            "",
        )
        .unwrap()];
        let text = render_text(&r);
        let new_at = text.find("New issues (1)").unwrap();
        let fixed_at = text.find("Fixed issues (1)").unwrap();
        assert!(new_at < fixed_at);
        assert!(text.contains("  app-misc/foo\n    error    MissingLicense [1.0]: licenses: Nope"), "{text}");
        assert!(text.contains("Unchanged: 0"));
    }
}

pub mod stage;
