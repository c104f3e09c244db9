//! prci's comment on a pull request (Markdown), headed `## Pull request CI report`: the verdict, the new issues grouped
//! by package with a link to each package's section of the HTML report, then the fixed ones the same way, then the count
//! of pre-existing issues with a link to their list in the report.

use crate::html::{group_fragment, FIXED_PREFIX, NEW_PREFIX, UNCHANGED_ID};
use findings::{CheckReport, Finding, Verdict};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The comment's heading (its first line after the forge's hidden marker).
pub const HEADING: &str = "## Pull request CI report";
/// Findings listed per section; the rest are in the report.
const LISTED: usize = 30;
/// GitHub refuses comments over 65,536 characters.
const MAX_CHARS: usize = 60_000;

/// The comment for `report`, whose HTML page is at `report_url`. The forge puts its marker above it.
pub fn render(report: &CheckReport, report_url: &str) -> String {
    let mut out = format!("{HEADING}\n\n");
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
        section(&mut out, "New issues", report_url, NEW_PREFIX, &report.new);
        section(&mut out, "Fixed issues", report_url, FIXED_PREFIX, &report.fixed);
        let _ = writeln!(
            out,
            "**Pre-existing issues**: {} in what was scanned, unchanged by this pull request ([list]({report_url}#{UNCHANGED_ID})).\n",
            report.unchanged.len()
        );
    }
    let _ = writeln!(out, "[Full report]({report_url})");
    if out.chars().count() > MAX_CHARS {
        out = out.chars().take(MAX_CHARS).collect();
        out.push_str("\n\n… (cut; see the full report)\n");
    }
    out
}

/// One section: its count, then its findings grouped by package (or eclass, category, repository), each group's name a
/// link to its heading on the report page; at most [`LISTED`] findings in all.
fn section(out: &mut String, title: &str, report_url: &str, anchor_prefix: &str, findings: &[Finding]) {
    let _ = writeln!(out, "### {title} ({})\n", findings.len());
    if findings.is_empty() {
        out.push_str("None.\n\n");
        return;
    }
    let mut groups: BTreeMap<String, Vec<&Finding>> = BTreeMap::new();
    for f in findings {
        groups.entry(crate::group_of(f)).or_default().push(f);
    }
    let mut listed = 0;
    for (group, list) in &groups {
        if listed >= LISTED {
            break;
        }
        // The fragment is percent-encoded: nothing in it can end the link.
        let _ = writeln!(out, "**[{}]({report_url}#{})** ({})", escape(group), group_fragment(anchor_prefix, group), list.len());
        for f in list.iter().take(LISTED - listed) {
            let level = f.get("level").and_then(|v| v.as_str()).unwrap_or("?");
            // A backtick from an ebuild would end the code span: none is left in it.
            let version = f.get("version").and_then(|v| v.as_str()).map(|v| format!(" `{}`", v.replace('`', "'"))).unwrap_or_default();
            let _ = writeln!(out, "- {}{version} {}: {}", escape(level), escape(findings::class_of(f)), escape(&crate::describe(f)));
            listed += 1;
        }
        out.push('\n');
    }
    if findings.len() > listed {
        let _ = writeln!(out, "… and {} more in the [report]({report_url}#{}).\n", findings.len() - listed, title_id(anchor_prefix));
    }
}

/// The id of a section's heading on the report page.
fn title_id(anchor_prefix: &str) -> &'static str {
    if anchor_prefix == FIXED_PREFIX {
        "fixed"
    } else {
        "new"
    }
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

    fn finding(line: &str) -> Finding {
        findings::parse_line(line, "").unwrap()
    }

    fn failing() -> CheckReport {
        let mut r = CheckReport::error("gentoo", &"b".repeat(40), &"a".repeat(40), "");
        r.verdict = Verdict::Fail;
        r.reason = "2 new issue(s) at a failing level: 2 error".into();
        r.new = vec![
            finding(
                r#"{"__class__": "MissingLicense", "category": "app-misc", "package": "foo", "version": "1.0", "licenses": ["@team <b>x</b> https://x"]}"#,
            ),
            finding(r#"{"__class__": "UnknownLicense", "category": "dev-libs", "package": "baz", "version": "2", "licenses": ["Nope"]}"#),
            finding(r#"{"__class__": "MissingLicense", "category": "app-misc", "package": "foo", "version": "1.1", "licenses": []}"#),
        ];
        r.fixed =
            vec![finding(r#"{"__class__": "DeprecatedEapi", "category": "dev-libs", "package": "bar", "version": "2", "eapi": "6"}"#)];
        r.unchanged = vec![
            finding(r#"{"__class__": "RedundantVersion", "category": "sys-apps", "package": "old", "version": "1"}"#),
            finding(r#"{"__class__": "RedundantVersion", "category": "sys-apps", "package": "old", "version": "2"}"#),
        ];
        r
    }

    const URL: &str = "https://ci.example.org/5/aaaa.html";

    #[test]
    fn the_comment_is_headed_and_lists_new_then_fixed_then_counts_the_rest() {
        let text = render(&failing(), URL);
        assert!(text.starts_with("## Pull request CI report\n"), "{text}");
        assert!(text.contains("❌ **prci: fail**: 2 new issue(s)"), "{text}");
        let new_at = text.find("### New issues (3)").expect("new");
        let fixed_at = text.find("### Fixed issues (1)").expect("fixed");
        let old_at = text.find("**Pre-existing issues**: 2 in what was scanned").expect("pre-existing");
        let full_at = text.find(&format!("[Full report]({URL})")).expect("full report");
        assert!(new_at < fixed_at && fixed_at < old_at && old_at < full_at, "{text}");
        assert!(text.contains(&format!("([list]({URL}#unchanged))")), "{text}");
        // Grouped by package, in order, each group linked to its section of the report.
        let foo = text.find(&format!("**[app-misc/foo]({URL}#app-misc/foo)** (2)\n- error `1.0` MissingLicense")).expect("foo");
        let baz = text.find(&format!("**[dev-libs/baz]({URL}#dev-libs/baz)** (1)\n- error `2` UnknownLicense")).expect("baz");
        assert!(new_at < foo && foo < baz && baz < fixed_at, "{text}");
        assert!(
            text.contains("- error `1.1` MissingLicense: licenses:\u{200b} \n"),
            "the second finding of foo is under the same heading: {text}"
        );
        assert_eq!(text.matches("**[app-misc/foo]").count(), 1, "one heading per package: {text}");
        // A fixed group links to the fixed anchor, not to the new one.
        assert!(text.contains(&format!("**[dev-libs/bar]({URL}#fixed-dev-libs/bar)** (1)\n- warning `2` DeprecatedEapi")), "{text}");
        assert!(!text.contains("sys-apps/old"), "pre-existing issues are counted, not listed: {text}");
    }

    #[test]
    fn every_link_is_an_anchor_the_report_page_has() {
        let report = failing();
        let text = render(&report, URL);
        let rev = pipeline::messages::Revision {
            repository: "gentoo".into(),
            pr: 5,
            head: "a".repeat(40),
            base_branch: "master".into(),
            base: "b".repeat(40),
            priority: false,
            emitted_at: 0.0,
        };
        let page = crate::html::render_report(&rev, &report);
        let fragments: Vec<&str> = text.split(&format!("]({URL}#")).skip(1).map(|rest| &rest[..rest.find(')').unwrap()]).collect();
        assert_eq!(fragments.len(), 4, "three groups and the pre-existing list: {text}");
        for fragment in fragments {
            assert!(page.contains(&format!("id=\"{fragment}\"")), "#{fragment} is not on the report page");
        }
    }

    #[test]
    fn text_from_ebuilds_stays_inert() {
        let text = render(&failing(), URL);
        assert!(!text.contains("https://x"), "a URL from an ebuild stays unlinked: {text}");
        assert!(text.contains("@\u{200b}team \\<b\\>x\\</b\\>"), "a mention or HTML from an ebuild stays inert: {text}");
        let mut r = failing();
        r.new = vec![finding(r#"{"__class__": "BadName", "category": "app-misc", "package": "x](https://evil)", "version": "1`2"}"#)];
        let text = render(&r, URL);
        assert!(!text.contains("](https://evil"), "{text}");
        assert!(text.contains("#app-misc/x%5D%28https:"), "the fragment is percent-encoded: {text}");
        assert!(text.contains("`1'2`"), "{text}");
    }

    #[test]
    fn long_sections_are_cut_with_a_link_to_the_rest() {
        let mut r = failing();
        r.new = (0..45)
            .map(|i| {
                finding(&format!(r#"{{"__class__": "MissingLicense", "category": "app-misc", "package": "p{i:02}", "version": "1"}}"#))
            })
            .collect();
        let text = render(&r, URL);
        assert_eq!(text.matches("MissingLicense").count(), LISTED, "{text}");
        assert!(text.contains(&format!("… and 15 more in the [report]({URL}#new).")), "{text}");
        assert!(!text.contains("app-misc/p30"), "{text}");
    }

    #[test]
    fn an_error_lists_nothing_and_keeps_its_reason_off_the_pull_request() {
        let mut r = failing();
        r.verdict = Verdict::Error;
        r.reason = "checker on host-7: /var/lib/prci/x: no space left".into();
        let text = render(&r, URL);
        assert!(text.starts_with("## Pull request CI report\n\n⚠️ **prci: error** (the CI failed, not your pull request)\n"), "{text}");
        assert!(!text.contains("host-7") && !text.contains("### New issues"), "{text}");
        assert!(text.contains(&format!("[Full report]({URL})")));
    }

    #[test]
    fn a_clean_pass_says_none() {
        let mut r = failing();
        r.verdict = Verdict::Pass;
        r.reason = "no new issue at a failing level".into();
        (r.new, r.fixed) = (vec![], vec![]);
        let text = render(&r, URL);
        assert!(text.contains("### New issues (0)\n\nNone.\n\n### Fixed issues (0)\n\nNone.\n"), "{text}");
    }
}
