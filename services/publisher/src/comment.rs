//! prci's comment on a pull request (Markdown): the verdict, what the pull request introduces and fixes (the first
//! ones, by package), and a link to the full report.

use findings::{CheckReport, Finding, Verdict};
use std::fmt::Write;

/// Findings listed per section; the rest are in the report.
const LISTED: usize = 30;
/// GitHub refuses comments over 65,536 characters.
const MAX_CHARS: usize = 60_000;

/// The comment for `report`, starting with the marker the forge finds it again by.
pub fn render(report: &CheckReport, report_url: &str) -> String {
    let mut out = String::from("## prci\n\n");
    let verdict = match report.verdict {
        Verdict::Pass => "✅ **prci: pass**",
        Verdict::Fail => "❌ **prci: fail**",
        Verdict::Error => "⚠️ **prci: error** (the CI failed, not your pull request)",
    };
    // An error's reason is the infrastructure's (hosts, paths): the report page has it, the pull request does not.
    let reason = if report.verdict == Verdict::Error { String::new() } else { format!(": {}", escape(&report.reason)) };
    let _ = writeln!(out, "{verdict}{reason}\n");
    if !report.head.is_empty() {
        let _ = writeln!(out, "Head `{}` checked against base `{}`.\n", short(&report.head), short(&report.base));
    }
    if !report.conflicts.is_empty() {
        let _ = writeln!(out, "**Merge conflicts** ({}): rebase the pull request onto the current base.\n", report.conflicts.len());
    }
    if report.verdict != Verdict::Error {
        list(&mut out, "New issues", &report.new);
        list(&mut out, "Fixed issues", &report.fixed);
    }
    let _ = writeln!(out, "[Full report]({report_url})");
    if out.chars().count() > MAX_CHARS {
        out = out.chars().take(MAX_CHARS).collect();
        out.push_str("\n\n… (cut; see the full report)\n");
    }
    out
}

fn list(out: &mut String, title: &str, findings: &[Finding]) {
    let _ = writeln!(out, "**{title}** ({})", findings.len());
    for f in findings.iter().take(LISTED) {
        let level = f.get("level").and_then(|v| v.as_str()).unwrap_or("?");
        let version = f.get("version").and_then(|v| v.as_str()).map(|v| format!("-{v}")).unwrap_or_default();
        // A backtick from an ebuild would end the code span: none is left in it.
        let package = format!("{}{version}", crate::group_of(f)).replace('`', "'");
        let _ = writeln!(out, "- {} `{package}` {}: {}", escape(level), escape(findings::class_of(f)), escape(&crate::describe(f)));
    }
    if findings.len() > LISTED {
        let _ = writeln!(out, "- … and {} more", findings.len() - LISTED);
    }
    out.push('\n');
}

/// Text from a pull request's ebuilds, made inert in Markdown (no mentions, links, HTML or formatting).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().take(500) {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '|' | '~' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '@' => out.push_str("@\u{200b}"),
            // No bare URL turns into a link.
            ':' => out.push_str(":\u{200b}"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(10)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_comment_names_what_is_new_and_links_the_report() {
        let mut r = CheckReport::error("gentoo", &"b".repeat(40), &"a".repeat(40), "");
        r.verdict = Verdict::Fail;
        r.reason = "1 new issue(s) at a failing level: 1 error".into();
        r.new = vec![findings::parse_line(
            r#"{"__class__": "MissingLicense", "category": "app-misc", "package": "foo", "version": "1.0", "licenses": ["@team <b>x</b> https://x"]}"#,
            "",
        )
        .unwrap()];
        let text = render(&r, "https://ci.example.org/5/aaaa.html");
        assert!(text.starts_with("## prci\n"), "{text}");
        assert!(text.contains("❌ **prci: fail**"), "{text}");
        assert!(text.contains("`app-misc/foo-1.0` MissingLicense"), "{text}");
        assert!(!text.contains("https://x"), "a URL from an ebuild stays unlinked: {text}");
        assert!(text.contains("@\u{200b}team \\<b\\>x\\</b\\>"), "a mention or HTML from an ebuild stays inert: {text}");
        assert!(text.contains("[Full report](https://ci.example.org/5/aaaa.html)"));
        assert!(text.contains("**Fixed issues** (0)"));
    }
}
