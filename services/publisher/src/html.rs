//! The HTML pages the publisher writes: one self-contained report page per pull-request revision (anchored by package, so a comment can link `report.html#cat/pkg`) and the index of recent reports. Every string that comes from a report is escaped: findings quote untrusted ebuilds.

use crate::{describe, group_of};
use findings::Finding;
use findings::{CheckReport, Verdict};
use pipeline::messages::Revision;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write;

/// One line of the index: a report written for one pull-request revision.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexEntry {
    pub pr: u64,
    /// Full SHA of the head; the report page is `<pr>/<head>.html`.
    pub head: String,
    pub verdict: Verdict,
    pub reason: String,
    /// Unix seconds when the report was written.
    pub written_at: f64,
}

/// Shared by both pages; the verdict colours are the commit-status colours contributors know.
const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:70em;padding:0 1em;color:#1f2328;line-height:1.45}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.92em}
h1{font-size:1.5em;margin-bottom:.3em}
h2{font-size:1.25em;border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:1.6em}
h3{font-size:1.05em;margin:1.2em 0 .3em}
h3 a.self{color:inherit;text-decoration:none}
h3 a.self:hover{text-decoration:underline}
.verdict{padding:.8em 1.1em;border-radius:6px;color:#fff;margin:1em 0}
.verdict strong{font-size:1.3em;letter-spacing:.05em;margin-right:.6em}
.pass{background:#1a7f37}.fail{background:#cf222e}.error{background:#6e7781}
.badge{display:inline-block;padding:0 .5em;border-radius:1em;color:#fff;font-size:.85em;font-weight:600}
table{border-collapse:collapse;margin:.4em 0}
td,th{border:1px solid #d0d7de;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f6f8fa}
ul.findings{list-style:none;padding-left:0;margin:.2em 0}
ul.findings li{padding:.2em 0 .2em .6em;border-left:3px solid #d0d7de;margin:.2em 0}
.lvl{display:inline-block;min-width:5.5em;font-weight:600}
.lvl-error{color:#cf222e}.lvl-warning{color:#9a6700}.lvl-style{color:#8250df}.lvl-info{color:#0969da}.lvl-other{color:#57606a}
li.lvl-error{border-left-color:#cf222e}li.lvl-warning{border-left-color:#d4a72c}li.lvl-style{border-left-color:#8250df}li.lvl-info{border-left-color:#0969da}
.cls{font-weight:600}.ver{color:#57606a}.desc{overflow-wrap:anywhere}
.muted{color:#57606a}
details{margin:1em 0}summary{cursor:pointer;font-weight:600}
nav.toc{font-size:.92em}nav.toc a{margin-right:.8em}
";

/// Escape text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The anchor prefixes of the report page's package groups: new issues (`#cat/pkg`), fixed ones (`#fixed-cat/pkg`) and
/// unchanged ones (`#unchanged-cat/pkg`, inside `#unchanged`).
pub const NEW_PREFIX: &str = "";
pub const FIXED_PREFIX: &str = "fixed-";
pub const UNCHANGED_PREFIX: &str = "unchanged-";
/// The id of the report page's collapsed list of unchanged (pre-existing) issues.
pub const UNCHANGED_ID: &str = "unchanged";

/// The URL fragment (without `#`) of a group's heading on the report page: `group_fragment(FIXED_PREFIX, "dev-libs/bar")`
/// is `fixed-dev-libs/bar`.
pub fn group_fragment(prefix: &str, group: &str) -> String {
    url_part(&format!("{prefix}{group}"))
}

/// A URL fragment (or path segment) for `s`: kept readable (`#app-misc/foo`), percent-encoding only what a URL cannot carry.
fn url_part(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/+:@!$,;=".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::Error => "error",
    }
}

/// A CSS class for a finding level; never the level text itself (it is untrusted).
fn level_class(level: &str) -> &'static str {
    match level {
        "error" => "lvl-error",
        "warning" => "lvl-warning",
        "style" => "lvl-style",
        "info" => "lvl-info",
        _ => "lvl-other",
    }
}

fn short(sha: &str) -> &str {
    sha.get(..10).unwrap_or(sha)
}

pub(crate) fn page_start(out: &mut String, title: &str) {
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <title>{}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n",
        escape(title)
    );
}

/// The report page of one pull-request revision.
pub fn render_report(rev: &Revision, report: &CheckReport) -> String {
    let mut out = String::new();
    let verdict = verdict_word(report.verdict);
    let repository = if report.repository.is_empty() { &rev.repository } else { &report.repository };
    page_start(&mut out, &format!("{repository} PR #{}: {verdict}", rev.pr));
    let _ = writeln!(out, "<p class=\"muted\"><a href=\"../index.html\">all reports</a></p>");
    let _ = writeln!(out, "<h1>{} pull request #{} <span class=\"badge {verdict}\">{verdict}</span></h1>", escape(repository), rev.pr);

    // The verdict first: it is what the contributor came for.
    let _ = write!(out, "<div class=\"verdict {verdict}\"><strong>{}</strong>", verdict.to_uppercase());
    if report.verdict == Verdict::Error {
        out.push_str("CI failed, not your PR. ");
    }
    let _ = writeln!(out, "{}</div>", escape(&report.reason));

    revision_table(&mut out, rev, report);

    if !report.conflicts.is_empty() {
        let _ = writeln!(
            out,
            "<h2 id=\"conflicts\">Merge conflicts ({})</h2>\n<p>The pull request does not merge onto the current tip of <code>{}</code>: rebase it.</p>\n<ul>",
            report.conflicts.len(),
            escape(&rev.base_branch)
        );
        for p in &report.conflicts {
            let _ = writeln!(out, "<li><code>{}</code></li>", escape(p));
        }
        out.push_str("</ul>\n");
    }

    // A check that did not happen (an error, a conflict) has no findings to list; saying "New issues (0)" would read as a clean pass.
    let checked = report.verdict != Verdict::Error && report.conflicts.is_empty();
    if checked || !report.new.is_empty() || !report.fixed.is_empty() || !report.unchanged.is_empty() {
        scope(&mut out, report);
        section(&mut out, "new", "New issues", NEW_PREFIX, &report.new);
        section(&mut out, "fixed", "Fixed issues", FIXED_PREFIX, &report.fixed);
        let _ = writeln!(
            out,
            "<details id=\"{UNCHANGED_ID}\">\n<summary>Unchanged issues ({}): pre-existing in what was scanned</summary>",
            report.unchanged.len()
        );
        groups(&mut out, UNCHANGED_PREFIX, &report.unchanged);
        out.push_str("</details>\n");
    }

    tools_and_timings(&mut out, report);
    out.push_str("</body>\n</html>\n");
    out
}

fn revision_table(out: &mut String, rev: &Revision, report: &CheckReport) {
    let head = if report.head.is_empty() { &rev.head } else { &report.head };
    let base = if report.base.is_empty() { &rev.base } else { &report.base };
    let tested_note = if report.tested.is_empty() {
        "nothing was tested"
    } else if report.tested == *head {
        "fast-forward: the head itself"
    } else if report.tested == *base {
        "the head is already in the base"
    } else {
        "the head merged onto the base tip"
    };
    out.push_str("<table class=\"revision\">\n");
    let _ = writeln!(out, "<tr><th>base</th><td><code>{}</code> ({})</td></tr>", escape(base), escape(&rev.base_branch));
    let _ = writeln!(out, "<tr><th>head</th><td><code>{}</code></td></tr>", escape(head));
    let _ = writeln!(
        out,
        "<tr><th>tested</th><td><code>{}</code> <span class=\"muted\">({tested_note})</span></td></tr>",
        escape(&report.tested)
    );
    out.push_str("</table>\n");
}

fn scope(out: &mut String, report: &CheckReport) {
    if report.scan.full {
        out.push_str("<p>Scanned: the whole repository, on both sides.</p>\n");
    } else if report.scan.targets.is_empty() {
        out.push_str("<p>Scanned: repository- and category-level checks only.</p>\n");
    } else {
        let _ = writeln!(
            out,
            "<details><summary>Scanned: {} target(s) plus repository- and category-level checks</summary>\n<ul>",
            report.scan.targets.len()
        );
        for t in &report.scan.targets {
            let _ = writeln!(out, "<li><code>{}</code></li>", escape(t));
        }
        out.push_str("</ul>\n</details>\n");
    }
}

/// A titled list of findings grouped by package, with a table of contents of its groups.
fn section(out: &mut String, id: &str, title: &str, anchor_prefix: &str, findings: &[Finding]) {
    let _ = writeln!(out, "<h2 id=\"{id}\">{title} ({})</h2>", findings.len());
    if findings.is_empty() {
        out.push_str("<p class=\"muted\">None.</p>\n");
        return;
    }
    groups(out, anchor_prefix, findings);
}

fn groups(out: &mut String, anchor_prefix: &str, findings: &[Finding]) {
    let mut groups: BTreeMap<String, Vec<&Finding>> = BTreeMap::new();
    for f in findings {
        groups.entry(group_of(f)).or_default().push(f);
    }
    if groups.len() > 1 {
        out.push_str("<nav class=\"toc\">");
        for (group, list) in &groups {
            let _ = write!(out, "<a href=\"#{}\">{}</a>({}) ", escape(&group_fragment(anchor_prefix, group)), escape(group), list.len());
        }
        out.push_str("</nav>\n");
    }
    for (group, list) in groups {
        let anchor = escape(&format!("{anchor_prefix}{group}"));
        let _ = writeln!(
            out,
            "<h3 id=\"{anchor}\"><a class=\"self\" href=\"#{}\">{}</a> <span class=\"muted\">({})</span></h3>\n<ul class=\"findings\">",
            escape(&group_fragment(anchor_prefix, &group)),
            escape(&group),
            list.len()
        );
        for f in list {
            finding_item(out, f);
        }
        out.push_str("</ul>\n");
    }
}

fn finding_item(out: &mut String, f: &Finding) {
    let level = f.get("level").and_then(Value::as_str).unwrap_or("?");
    let class = level_class(level);
    let version =
        f.get("version").and_then(Value::as_str).map(|v| format!(" <span class=\"ver\">{}</span>", escape(v))).unwrap_or_default();
    let _ = writeln!(
        out,
        "<li class=\"{class}\"><span class=\"lvl {class}\">{}</span> <span class=\"cls\">{}</span>{version}: <span class=\"desc\">{}</span></li>",
        escape(level),
        escape(findings::class_of(f)),
        escape(&describe(f))
    );
}

fn tools_and_timings(out: &mut String, report: &CheckReport) {
    if !report.tools.is_empty() {
        out.push_str("<h2 id=\"tools\">Tools</h2>\n<table>\n");
        for (k, v) in &report.tools {
            let _ = writeln!(out, "<tr><th>{}</th><td><code>{}</code></td></tr>", escape(k), escape(v));
        }
        out.push_str("</table>\n");
    }
    if !report.timings.is_empty() {
        out.push_str("<h2 id=\"timings\">Timings</h2>\n<table>\n");
        for (k, v) in &report.timings {
            let _ = writeln!(out, "<tr><th>{}</th><td>{v:.1} s</td></tr>", escape(k));
        }
        out.push_str("</table>\n");
    }
}

/// The index of recent reports, newest first, each linking to `<pr>/<head>.html`.
pub fn render_index(entries: &[IndexEntry]) -> String {
    let mut sorted: Vec<&IndexEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| b.written_at.total_cmp(&a.written_at).then(b.pr.cmp(&a.pr)).then(a.head.cmp(&b.head)));
    let mut out = String::new();
    page_start(&mut out, "prci: recent pull-request reports");
    out.push_str("<h1>Recent pull-request reports</h1>\n<p><a href=\"status.html\">what is queued and running now</a></p>\n");
    if sorted.is_empty() {
        out.push_str("<p class=\"muted\">No reports yet.</p>\n</body>\n</html>\n");
        return out;
    }
    out.push_str("<table>\n<tr><th>PR</th><th>verdict</th><th>head</th><th>reason</th><th>written (UTC)</th></tr>\n");
    for e in sorted {
        let verdict = verdict_word(e.verdict);
        let href = escape(&format!("{}/{}.html", e.pr, url_part(&e.head)));
        let _ = writeln!(
            out,
            "<tr><td><a href=\"{href}\">#{}</a></td><td><span class=\"badge {verdict}\">{verdict}</span></td><td><a class=\"mono\" href=\"{href}\">{}</a></td><td>{}</td><td>{}</td></tr>",
            e.pr,
            escape(short(&e.head)),
            escape(&e.reason),
            utc(e.written_at)
        );
    }
    out.push_str("</table>\n</body>\n</html>\n");
    out
}

/// `YYYY-MM-DD HH:MM` for unix seconds (proleptic Gregorian, Howard Hinnant's days-to-civil).
fn utc(secs: f64) -> String {
    if !secs.is_finite() {
        return "?".into();
    }
    let secs = secs.floor() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}", rem / 3600, rem % 3600 / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev() -> Revision {
        Revision {
            repository: "gentoo".into(),
            pr: 42,
            head: "a".repeat(40),
            base_branch: "master".into(),
            base: "b".repeat(40),
            priority: false,
            emitted_at: 1.0,
        }
    }

    fn f(line: &str) -> Finding {
        findings::parse_line(line, "").expect("finding")
    }

    fn report() -> CheckReport {
        let mut r = CheckReport::error("gentoo", &"b".repeat(40), &"a".repeat(40), "");
        r.verdict = Verdict::Fail;
        r.reason = "2 new issue(s) at a failing level".into();
        r.tested = "c".repeat(40);
        r.tools.insert("pkgcheck".into(), "0.10.37".into());
        r.timings.insert("scan".into(), 12.34);
        r.new = vec![
            f(r#"{"__class__": "MissingLicense", "category": "app-misc", "package": "foo", "version": "1.0", "licenses": ["Nope"]}"#),
            f(r#"{"__class__": "EclassDocMissingFunc", "eclass": "foo-utils", "functions": ["bar"]}"#),
        ];
        r.fixed = vec![f(r#"{"__class__": "DeprecatedEapi", "category": "dev-libs", "package": "bar", "version": "2", "eapi": "6"}"#)];
        r.unchanged = vec![
            f(r#"{"__class__": "DeprecatedEapi", "category": "dev-libs", "package": "baz", "version": "1", "eapi": "5"}"#),
            f(r#"{"__class__": "DeprecatedEapi", "category": "dev-libs", "package": "baz", "version": "2", "eapi": "5"}"#),
            f(r#"{"__class__": "DeprecatedEapi", "category": "dev-libs", "package": "qux", "version": "3", "eapi": "6"}"#),
        ];
        r
    }

    #[test]
    fn groups_are_anchored_by_their_exact_name() {
        let page = render_report(&rev(), &report());
        assert!(page.contains("id=\"app-misc/foo\""), "{page}");
        assert!(page.contains("id=\"eclass/foo-utils\""), "{page}");
        assert!(page.contains("id=\"fixed-dev-libs/bar\""), "{page}");
        assert!(!page.contains("id=\"dev-libs/bar\""), "a fixed group must not take the new group's anchor");
        assert!(page.contains("href=\"#app-misc/foo\""));
        // New before fixed before unchanged.
        let new_at = page.find("id=\"app-misc/foo\"").expect("new");
        let fixed_at = page.find("id=\"fixed-dev-libs/bar\"").expect("fixed");
        let unchanged_at = page.find("<details id=\"unchanged\">").expect("unchanged");
        assert!(new_at < fixed_at && fixed_at < unchanged_at);
        assert!(page.contains("MissingLicense"));
        assert!(page.contains("<span class=\"ver\">1.0</span>"));
        assert!(page.contains("licenses: Nope"));
        assert!(page.contains("<title>gentoo PR #42: fail</title>"));
        assert!(page.contains("0.10.37") && page.contains("12.3 s"));
    }

    #[test]
    fn untrusted_text_is_escaped() {
        let mut r = report();
        r.new = vec![f(
            r#"{"__class__": "BadDescription", "category": "app-misc", "package": "foo", "version": "1<b>", "msg": "<script>alert(1)</script>", "desc": "\"onmouseover='x' &"}"#,
        )];
        r.reason = "<img src=x onerror=alert(2)>".into();
        r.conflicts = vec!["app-misc/<i>/x".into()];
        let page = render_report(&rev(), &r);
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{page}");
        assert!(!page.contains("<img"));
        assert!(!page.contains("<b>") && !page.contains("<i>"));
        assert!(page.contains("&quot;onmouseover=&#39;x&#39; &amp;"));
    }

    #[test]
    fn unchanged_issues_are_collapsed_with_their_count() {
        let page = render_report(&rev(), &report());
        let at = page.find("<details id=\"unchanged\">").expect("details");
        let rest = &page[at..];
        assert!(rest.starts_with("<details id=\"unchanged\">\n<summary>Unchanged issues (3)"), "{rest}");
        let end = rest.find("</details>").expect("closed");
        assert!(rest[..end].contains("id=\"unchanged-dev-libs/baz\""));
        assert!(!page.contains("<details id=\"unchanged\" open"));
    }

    #[test]
    fn an_error_says_it_is_not_the_pull_request() {
        let r = CheckReport::error("gentoo", &"b".repeat(40), &"a".repeat(40), "pmaint regen timed out");
        let page = render_report(&rev(), &r);
        assert!(page.contains("class=\"verdict error\""));
        assert!(page.contains("CI failed, not your PR"));
        assert!(page.contains("pmaint regen timed out"));
        assert!(!page.contains("New issues"));
    }

    #[test]
    fn conflicts_are_listed() {
        let mut r = report();
        r.new.clear();
        r.fixed.clear();
        r.unchanged.clear();
        r.conflicts = vec!["app-misc/foo/foo-1.ebuild".into()];
        let page = render_report(&rev(), &r);
        assert!(page.contains("Merge conflicts (1)"));
        assert!(page.contains("<code>app-misc/foo/foo-1.ebuild</code>"));
        assert!(!page.contains("New issues"), "a conflict is not a clean scan");
    }

    #[test]
    fn index_is_newest_first_and_links_each_page() {
        let e = |pr, c: char, at| IndexEntry {
            pr,
            head: c.to_string().repeat(40),
            verdict: Verdict::Pass,
            reason: "ok".into(),
            written_at: at,
        };
        let page = render_index(&[e(1, 'a', 100.0), e(7, 'b', 300.0), e(3, 'c', 200.0)]);
        let pos = |s: &str| page.find(s).unwrap_or_else(|| panic!("{s} missing: {page}"));
        let (a, b, c) = (
            pos(&format!("href=\"1/{}.html\"", "a".repeat(40))),
            pos(&format!("href=\"7/{}.html\"", "b".repeat(40))),
            pos(&format!("href=\"3/{}.html\"", "c".repeat(40))),
        );
        assert!(b < c && c < a, "{page}");
        assert!(render_index(&[]).contains("No reports yet"));
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0.0), "1970-01-01 00:00");
        assert_eq!(utc(951_782_400.0), "2000-02-29 00:00");
        assert_eq!(utc(1_700_000_000.5), "2023-11-14 22:13");
    }
}
