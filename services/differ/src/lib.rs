//! The differ stage: both sides' findings in, the report out. Its logic: classify every finding as new, fixed or unchanged, issue by issue, and decide the verdict.
//!
//! Rules:
//! - Two findings are the same issue when their identities are equal (`findings::identity`:
//!   class, location and describing attributes; no line numbers, ages, or attributes known to flap;
//!   checkout paths normalised). Identities are compared as multisets: a second copy of an issue is new.
//! - An identity the checker found unstable (its count moved between scans of one tree) is never
//!   new nor fixed: its merged copies are unchanged.
//! - The version-bump rule: a new version-scope finding on `cat/pkg-B` and a fixed one on `cat/pkg-A`
//!   with the same identity apart from the version are one issue carried by the bump: the merged copy
//!   is unchanged and the base copy is not reported as fixed. Pairs are made one to one, in version order.
//!   A copy-bump that keeps `cat/pkg-A` (and its issue) and adds `cat/pkg-B` with the same issue does
//!   add one: the new version's copy is new.
//! - Aggregated keywords (one finding listing several independent items for one location, such as
//!   `UnusedLicenses` or `UnknownLicenses`; marked in the keyword table) are compared item by item: each
//!   is split into one finding per item first, so a pull request adding one unused licence adds that
//!   licence's `UnusedLicenses`, and a list that only shrinks reports the removed items fixed, nothing new.
//! - Verdict: `fail` when any new finding has a level in `fail_levels`, else `pass`.

use findings::Finding;
use findings::Verdict;
use std::collections::{BTreeMap, BTreeSet};

/// The three lists of the report.
#[derive(Debug, Clone, Default)]
pub struct Classified {
    pub new: Vec<Finding>,
    pub fixed: Vec<Finding>,
    pub unchanged: Vec<Finding>,
}

/// Classify base and merged findings.
pub fn classify(base: &[Finding], merge: &[Finding], unstable: &BTreeSet<String>) -> Classified {
    // Aggregated findings are compared item by item; an item of an unstable finding is unstable.
    let mut unstable = unstable.clone();
    for f in base.iter().chain(merge) {
        if findings::items_of(findings::class_of(f)).is_some() && unstable.contains(&findings::identity(f)) {
            unstable.extend(findings::split_items(std::slice::from_ref(f)).iter().map(findings::identity));
        }
    }
    let (base, merge) = (findings::split_items(base), findings::split_items(merge));
    let unstable = &unstable;
    let mut by_id_base: BTreeMap<String, Vec<&Finding>> = BTreeMap::new();
    let mut by_id_merge: BTreeMap<String, Vec<&Finding>> = BTreeMap::new();
    for f in &base {
        by_id_base.entry(findings::identity(f)).or_default().push(f);
    }
    for f in &merge {
        by_id_merge.entry(findings::identity(f)).or_default().push(f);
    }
    let mut out = Classified::default();
    let mut new_candidates: Vec<&Finding> = Vec::new();
    let mut fixed_candidates: Vec<&Finding> = Vec::new();
    let ids: BTreeSet<&String> = by_id_base.keys().chain(by_id_merge.keys()).collect();
    for id in ids {
        let b = by_id_base.get(id).map_or(&[][..], Vec::as_slice);
        let m = by_id_merge.get(id).map_or(&[][..], Vec::as_slice);
        if unstable.contains(id) {
            out.unchanged.extend(m.iter().map(|f| (*f).clone()));
            continue;
        }
        let common = b.len().min(m.len());
        out.unchanged.extend(m[..common].iter().map(|f| (*f).clone()));
        new_candidates.extend(&m[common..]);
        fixed_candidates.extend(&b[common..]);
    }
    // The version-bump rule.
    let mut fixed_by_carry: BTreeMap<String, Vec<&Finding>> = BTreeMap::new();
    for f in &fixed_candidates {
        if f.contains_key("version") {
            fixed_by_carry.entry(findings::carry_key(f)).or_default().push(f);
        }
    }
    let mut carried_base: BTreeSet<*const Finding> = BTreeSet::new();
    for f in new_candidates {
        let partner = if f.contains_key("version") {
            fixed_by_carry.get_mut(&findings::carry_key(f)).and_then(|list| if list.is_empty() { None } else { Some(list.remove(0)) })
        } else {
            None
        };
        match partner {
            Some(old) => {
                carried_base.insert(old as *const Finding);
                out.unchanged.push(f.clone());
            }
            None => out.new.push(f.clone()),
        }
    }
    out.fixed = fixed_candidates.into_iter().filter(|f| !carried_base.contains(&(*f as *const Finding))).cloned().collect();
    findings::sort_findings(&mut out.new);
    findings::sort_findings(&mut out.fixed);
    findings::sort_findings(&mut out.unchanged);
    out
}

/// The verdict and its one-line reason.
pub fn verdict(c: &Classified, fail_levels: &[String]) -> (Verdict, String) {
    let failing: Vec<&Finding> = c.new.iter().filter(|f| is_failing(f, fail_levels)).collect();
    if failing.is_empty() {
        let mut reason = format!("no new issues at a failing level ({})", fail_levels.join(", "));
        if !c.new.is_empty() {
            reason = format!("{} new issue(s), none at a failing level ({})", c.new.len(), fail_levels.join(", "));
        }
        if !c.fixed.is_empty() {
            reason.push_str(&format!("; {} fixed", c.fixed.len()));
        }
        return (Verdict::Pass, reason);
    }
    let mut per_level: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &failing {
        *per_level.entry(level(f)).or_insert(0) += 1;
    }
    let parts: Vec<String> = pipeline::config::LEVELS
        .iter()
        .filter_map(|l| per_level.get(l).map(|n| format!("{n} {l}{}", if *n == 1 { "" } else { "s" })))
        .collect();
    (Verdict::Fail, format!("{} new issue(s) at a failing level: {}", failing.len(), parts.join(", ")))
}

fn level(f: &Finding) -> &str {
    f.get("level").and_then(|l| l.as_str()).unwrap_or("error")
}

/// Whether a finding's level fails a pull request.
pub fn is_failing(f: &Finding, fail_levels: &[String]) -> bool {
    fail_levels.iter().any(|l| l == level(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(json: &str) -> Finding {
        findings::parse_line(json, "").unwrap()
    }
    fn classes(list: &[Finding]) -> Vec<String> {
        list.iter()
            .map(findings::location_of)
            .zip(list.iter().map(|f| findings::class_of(f).to_owned()))
            .map(|(l, c)| format!("{c}@{l}"))
            .collect()
    }
    fn levels() -> Vec<String> {
        vec!["error".into(), "warning".into()]
    }

    const DEPR_10: &str = r#"{"__class__": "DeprecatedEapi", "category": "a", "package": "foo", "version": "1.0", "eapi": "6"}"#;
    const DEPR_11: &str = r#"{"__class__": "DeprecatedEapi", "category": "a", "package": "foo", "version": "1.1", "eapi": "6"}"#;
    const MISSING_LIC: &str = r#"{"__class__": "MissingLicense", "category": "a", "package": "foo", "version": "1.0", "licenses": ["X"]}"#;

    #[test]
    fn a_new_issue_in_a_package_that_already_had_one_is_new() {
        let c = classify(&[f(DEPR_10)], &[f(DEPR_10), f(MISSING_LIC)], &BTreeSet::new());
        assert_eq!(classes(&c.new), ["MissingLicense@a/foo-1.0"]);
        assert_eq!(classes(&c.unchanged), ["DeprecatedEapi@a/foo-1.0"]);
        assert!(c.fixed.is_empty());
        assert_eq!(verdict(&c, &levels()).0, Verdict::Fail);
    }

    #[test]
    fn a_fix_is_fixed_and_passes() {
        let c = classify(&[f(DEPR_10), f(MISSING_LIC)], &[f(DEPR_10)], &BTreeSet::new());
        assert_eq!(classes(&c.fixed), ["MissingLicense@a/foo-1.0"]);
        let (v, reason) = verdict(&c, &levels());
        assert_eq!(v, Verdict::Pass);
        assert!(reason.contains("1 fixed"), "{reason}");
    }

    #[test]
    fn a_moved_line_is_unchanged() {
        let a = f(
            r#"{"__class__": "EmptyGlobalAssignment", "category": "a", "package": "foo", "version": "1.0", "line": "X=\"\"", "lineno": 3}"#,
        );
        let b = f(
            r#"{"__class__": "EmptyGlobalAssignment", "category": "a", "package": "foo", "version": "1.0", "line": "X=\"\"", "lineno": 9}"#,
        );
        let c = classify(&[a], std::slice::from_ref(&b), &BTreeSet::new());
        assert!(c.new.is_empty() && c.fixed.is_empty());
        assert_eq!(c.unchanged, vec![b]);
    }

    #[test]
    fn a_second_copy_of_an_issue_is_new() {
        let one = f(r#"{"__class__": "UnknownKeywords", "category": "a", "package": "foo", "version": "1.0", "keywords": ["x"]}"#);
        let c = classify(std::slice::from_ref(&one), &[one.clone(), one.clone()], &BTreeSet::new());
        assert_eq!(c.new.len(), 1);
        assert_eq!(c.unchanged.len(), 1);
    }

    #[test]
    fn a_bump_carries_the_old_issue() {
        let c = classify(&[f(DEPR_10)], &[f(DEPR_11)], &BTreeSet::new());
        assert!(c.new.is_empty(), "{:?}", c.new);
        assert!(c.fixed.is_empty(), "{:?}", c.fixed);
        assert_eq!(classes(&c.unchanged), ["DeprecatedEapi@a/foo-1.1"]);
    }

    #[test]
    fn a_copy_bump_keeping_the_old_version_adds_an_issue() {
        let c = classify(&[f(DEPR_10)], &[f(DEPR_10), f(DEPR_11)], &BTreeSet::new());
        assert_eq!(classes(&c.new), ["DeprecatedEapi@a/foo-1.1"]);
    }

    #[test]
    fn unstable_identities_are_neither_new_nor_fixed() {
        let flap = f(
            r#"{"__class__": "IndirectInherits", "category": "a", "package": "foo", "version": "1.0", "eclass": "e", "lineno": 1, "usage": "x"}"#,
        );
        let unstable: BTreeSet<String> = [findings::identity(&flap)].into();
        let c = classify(&[], std::slice::from_ref(&flap), &unstable);
        assert!(c.new.is_empty());
        assert_eq!(c.unchanged, vec![flap.clone()]);
        let c = classify(&[flap], &[], &unstable);
        assert!(c.fixed.is_empty());
    }

    #[test]
    fn aggregated_findings_are_compared_item_by_item() {
        let before = f(r#"{"__class__": "UnknownLicenses", "group": "FREE", "licenses": ["a", "b", "X"]}"#);
        let after = f(r#"{"__class__": "UnknownLicenses", "group": "FREE", "licenses": ["a", "b"]}"#);
        let c = classify(std::slice::from_ref(&before), std::slice::from_ref(&after), &BTreeSet::new());
        assert!(c.new.is_empty(), "a list that only shrinks adds nothing: {:?}", c.new);
        assert_eq!(c.fixed.len(), 1);
        assert_eq!(c.fixed[0]["licenses"], serde_json::json!(["X"]));
        assert_eq!(c.unchanged.len(), 2);
        let c = classify(&[after], std::slice::from_ref(&before), &BTreeSet::new());
        assert_eq!(c.new.len(), 1);
        assert_eq!(c.new[0]["licenses"], serde_json::json!(["X"]), "the report names the item the pull request added");
        assert_eq!(verdict(&c, &levels()).0, Verdict::Fail);
        // An unstable aggregated finding stays unstable item by item.
        let unstable: BTreeSet<String> = [findings::identity(&before)].into();
        let c = classify(&[], &[before], &unstable);
        assert!(c.new.is_empty() && c.unchanged.len() == 3);
    }

    #[test]
    fn a_dependency_made_unsolvable_is_new_and_the_ones_before_stay_unchanged() {
        // A keyword drop in a dependency adds it to a dependent's list of unsolvable dependencies on a profile.
        let nonsolvable = |deps: &str| {
            f(&format!(
                r#"{{"__class__": "NonsolvableDepsInStable", "category": "a", "package": "foo", "version": "1.0", "attr": "rdepend", "keyword": "alpha", "profile": "default/linux/alpha/17.0", "deps": [{deps}], "profile_status": "stable", "profile_deprecated": false, "num_profiles": 10}}"#
            ))
        };
        let c = classify(
            &[nonsolvable(r#""sys-libs/ncurses:0""#)],
            &[nonsolvable(r#""sys-devel/gettext", "sys-libs/ncurses:0""#)],
            &BTreeSet::new(),
        );
        assert!(c.fixed.is_empty(), "{:?}", c.fixed);
        assert_eq!(c.new.len(), 1);
        assert_eq!(c.new[0]["deps"], serde_json::json!(["sys-devel/gettext"]));
        assert_eq!(c.unchanged.len(), 1);
    }

    #[test]
    fn style_only_news_pass_unless_configured() {
        let style = f(r#"{"__class__": "DoubleEmptyLine", "category": "a", "package": "foo", "version": "1.0", "lines": [3]}"#);
        let c = classify(&[], &[style], &BTreeSet::new());
        assert_eq!(verdict(&c, &levels()).0, Verdict::Pass);
        assert_eq!(verdict(&c, &["style".to_string()]).0, Verdict::Fail);
    }
}

/// Everything the report is made of besides the classification.
#[derive(Debug, Clone)]
pub struct ReportInputs<'a> {
    pub repository: &'a str,
    pub base: &'a str,
    pub head: &'a str,
    pub tested: &'a str,
    pub tools: std::collections::BTreeMap<String, String>,
    pub full: bool,
    pub targets: Vec<String>,
    pub conflicts: Vec<String>,
    pub timings: std::collections::BTreeMap<String, f64>,
}

/// The differ's whole job for one revision: classify, decide, and fill the report document.
pub fn build_report(
    inputs: ReportInputs<'_>,
    base: &[Finding],
    merge: &[Finding],
    unstable: &BTreeSet<String>,
    fail_levels: &[String],
) -> findings::CheckReport {
    let mut report = findings::CheckReport::error(inputs.repository, inputs.base, inputs.head, "");
    report.tools = inputs.tools;
    report.timings = inputs.timings;
    report.scan = findings::report::ScanScope { full: inputs.full, targets: inputs.targets };
    if !inputs.conflicts.is_empty() {
        report.verdict = Verdict::Fail;
        report.reason = format!("the head does not merge onto the base tip: {} conflicting path(s)", inputs.conflicts.len());
        report.conflicts = inputs.conflicts;
        return report;
    }
    report.tested = inputs.tested.to_owned();
    let classified = classify(base, merge, unstable);
    let (verdict, reason) = verdict(&classified, fail_levels);
    report.verdict = verdict;
    report.reason = reason;
    report.new = classified.new;
    report.fixed = classified.fixed;
    report.unchanged = classified.unchanged;
    report
}

/// The differ step both paths run: the report of one scanned revision (an `error` report when regen or the checker
/// could not prepare or scan it).
pub fn report_of(repository: &str, s: &pipeline::messages::Scanned, fail_levels: &[String]) -> findings::CheckReport {
    let p = &s.prepared;
    let mut timings: BTreeMap<String, f64> = BTreeMap::new();
    for (k, v) in p.timings.iter().chain(&s.timings) {
        timings.insert(format!("{k}_seconds"), *v);
    }
    if let Some(reason) = p.error.as_ref().or(s.error.as_ref()) {
        let mut r = findings::CheckReport::error(repository, &p.base, &p.revision.head, reason.clone());
        r.timings = timings;
        return r;
    }
    let inputs = ReportInputs {
        repository,
        base: &p.base,
        head: &p.revision.head,
        tested: &p.tested,
        tools: s.tools.iter().cloned().collect(),
        full: s.full,
        targets: s.targets.clone(),
        conflicts: p.conflicts.clone(),
        timings,
    };
    let unstable: BTreeSet<String> = s.unstable.iter().cloned().collect();
    build_report(inputs, &s.base, &s.merge, &unstable, fail_levels)
}

pub mod stage;
