//! Configured check and keyword selection (`--checks`/`-c`, `--keywords`/`-k` in `checker.pkgcheck_args`), interpreted by prci so that every kind of scan applies it the same way.
//!
//! pkgcheck applies `--scopes` before `--checks` and `--keywords`: `--checks=+X`, `-c X` or
//! `--keywords=…` given next to prci's own `--scopes=repo,cat,profiles` re-enable package checks in
//! the repository pass, which then scans every package of the tree with them (slow, and a second copy
//! of each finding a target scan reports). So the repository pass never gets the configured selection
//! verbatim: prci computes which repository-pass checks the selection allows and names them itself;
//! target scans get the configured arguments as they are. Findings are filtered by the keyword
//! selection afterwards, the same for every run. Arguments prci cannot interpret (`--scopes`,
//! `--checksets`, `--net`, `--cache`, unknown names) are passed verbatim everywhere and make the
//! repository pass run whole.

use findings::{self, CRASH_CLASS, TIMEOUT_CLASS};
use std::collections::BTreeSet;

/// What configured pkgcheck arguments select.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Checks named without a prefix: they replace the default set.
    only: BTreeSet<String>,
    /// Checks named with `+`: added to the default set.
    added: BTreeSet<String>,
    /// Checks named with `-`.
    removed: BTreeSet<String>,
    /// Keywords named without a prefix (aliases expanded): only those are reported.
    keywords_only: BTreeSet<String>,
    /// Keywords named with `-` (aliases expanded).
    keywords_removed: BTreeSet<String>,
    /// Arguments prci does not interpret, verbatim.
    pub opaque: Vec<String>,
    /// The configured arguments without the check and keyword selection.
    pub passthrough: Vec<String>,
}

/// Which selection option an argument is, and its inline value (`--checks=V`, `-cV`, `-c=V`).
fn option_of(arg: &str) -> Option<(char, Option<&str>)> {
    for (long, kind) in [("--checks", 'c'), ("--keywords", 'k')] {
        if arg == long {
            return Some((kind, None));
        }
        if let Some(v) = arg.strip_prefix(long).and_then(|r| r.strip_prefix('=')) {
            return Some((kind, Some(v)));
        }
    }
    for (short, kind) in [("-c", 'c'), ("-k", 'k')] {
        if arg == short {
            return Some((kind, None));
        }
        if let Some(v) = arg.strip_prefix(short) {
            return Some((kind, Some(v.strip_prefix('=').unwrap_or(v))));
        }
    }
    None
}

/// Options that change which checks run in ways prci does not model.
fn is_opaque_option(arg: &str) -> bool {
    let flag = arg.split('=').next().unwrap_or(arg);
    matches!(flag, "--scopes" | "--checksets" | "--net" | "--cache" | "-s" | "-C")
        || (arg.starts_with("-s") || arg.starts_with("-C")) && !arg.starts_with("--")
}

impl Selection {
    /// Interpret configured pkgcheck arguments. As in pkgcheck, the last `--checks` and the last
    /// `--keywords` option win.
    pub fn parse(args: &[String]) -> Selection {
        let mut sel = Selection::default();
        let (mut checks, mut keywords): (Option<String>, Option<String>) = (None, None);
        let mut i = 0;
        while i < args.len() {
            let arg = &args[i];
            match option_of(arg) {
                Some((kind, inline)) => {
                    let value = match inline {
                        Some(v) => Some(v.to_owned()),
                        None => {
                            i += 1;
                            args.get(i).cloned()
                        }
                    };
                    match (kind, value) {
                        ('c', Some(v)) => checks = Some(v),
                        ('k', Some(v)) => keywords = Some(v),
                        _ => sel.opaque.push(arg.clone()),
                    }
                }
                None => {
                    if is_opaque_option(arg) {
                        sel.opaque.push(arg.clone());
                    }
                    sel.passthrough.push(arg.clone());
                }
            }
            i += 1;
        }
        if let Some(v) = checks {
            sel.read_checks(&v);
        }
        if let Some(v) = keywords {
            sel.read_keywords(&v);
        }
        sel
    }

    fn read_checks(&mut self, value: &str) {
        let known = findings::all_checks();
        for item in value.split(',').filter(|s| !s.is_empty()) {
            let (set, name) = match item.as_bytes()[0] {
                b'-' => (&mut self.removed, &item[1..]),
                b'+' => (&mut self.added, &item[1..]),
                _ => (&mut self.only, item),
            };
            if known.contains(name) {
                set.insert(name.to_owned());
            } else {
                self.opaque.push(format!("--checks={value}"));
                return;
            }
        }
    }

    fn read_keywords(&mut self, value: &str) {
        for item in value.split(',').filter(|s| !s.is_empty()) {
            let (set, name) = match item.strip_prefix('-') {
                Some(name) => (&mut self.keywords_removed, name),
                None => (&mut self.keywords_only, item.trim_start_matches('+')),
            };
            match findings::expand_keyword(name) {
                Some(members) => set.extend(members.into_iter().map(str::to_owned)),
                None => {
                    self.opaque.push(format!("--keywords={value}"));
                    return;
                }
            }
        }
    }

    /// Whether the configured arguments change which checks run in a way prci does not model.
    pub fn is_opaque(&self) -> bool {
        !self.opaque.is_empty()
    }

    /// Whether anything selects checks or keywords.
    pub fn selects(&self) -> bool {
        !(self.only.is_empty()
            && self.added.is_empty()
            && self.removed.is_empty()
            && self.keywords_only.is_empty()
            && self.keywords_removed.is_empty())
    }

    /// Whether `check` runs under this selection (pkgcheck's rules: named checks replace the defaults,
    /// `+` adds, `-` removes; a check all of whose keywords are filtered out does not run).
    pub fn allows_check(&self, check: &str) -> bool {
        let enabled = if self.only.is_empty() {
            !findings::is_optional_check(check) || self.added.contains(check)
        } else {
            self.only.contains(check) || self.added.contains(check)
        };
        if !enabled || self.removed.contains(check) {
            return false;
        }
        let reports = findings::keywords_of_check(check);
        reports.is_empty() || reports.iter().any(|k| self.keeps(k))
    }

    /// Whether findings of `class` are reported under this selection. prci's own classes always are.
    pub fn keeps(&self, class: &str) -> bool {
        if class == CRASH_CLASS || class == TIMEOUT_CLASS {
            return true;
        }
        if self.keywords_removed.contains(class) {
            return false;
        }
        self.keywords_only.is_empty() || self.keywords_only.contains(class)
    }

    /// The `--checks` value that makes the repository pass run exactly the allowed checks among `pass_checks`
    /// (its default ones removed where disallowed, optional ones added where asked for); None when nothing changes.
    pub fn repo_pass_checks_arg(&self, pass_checks: &BTreeSet<&str>) -> Option<String> {
        let mut items = Vec::new();
        for check in pass_checks {
            match (findings::is_optional_check(check), self.allows_check(check)) {
                (false, false) => items.push(format!("-{check}")),
                (true, true) => items.push(format!("+{check}")),
                _ => {}
            }
        }
        (!items.is_empty()).then(|| format!("--checks={}", items.join(",")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(args: &[&str]) -> Selection {
        Selection::parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn no_arguments_select_the_defaults() {
        let s = sel(&["--exit=error"]);
        assert!(!s.is_opaque() && !s.selects());
        assert_eq!(s.passthrough, ["--exit=error"]);
        assert!(s.allows_check("UnusedLicensesCheck"));
        assert!(!s.allows_check("UnusedInMastersCheck"), "optional checks run only when asked");
        assert!(s.keeps("UnusedLicenses"));
    }

    #[test]
    fn every_spelling_of_checks_is_understood() {
        for args in [
            &["--checks=-UnusedLicensesCheck"][..],
            &["--checks", "-UnusedLicensesCheck"],
            &["-c=-UnusedLicensesCheck"],
            &["-c", "-UnusedLicensesCheck"],
        ] {
            let s = sel(args);
            assert!(!s.is_opaque(), "{args:?}");
            assert!(s.passthrough.is_empty(), "{args:?}");
            assert!(!s.allows_check("UnusedLicensesCheck"), "{args:?}");
            assert!(s.allows_check("UnusedEclassesCheck"), "{args:?}");
        }
        let s = sel(&["-cLicenseCheck"]);
        assert!(s.allows_check("LicenseCheck") && !s.allows_check("UnusedLicensesCheck"));
    }

    #[test]
    fn named_checks_replace_the_defaults_and_plus_adds() {
        let s = sel(&["-c", "KeywordsCheck,+UnusedInMastersCheck"]);
        assert!(s.allows_check("KeywordsCheck"));
        assert!(s.allows_check("UnusedInMastersCheck"));
        assert!(!s.allows_check("UnusedLicensesCheck"));
        let s = sel(&["--checks=+KeywordsCheck"]);
        assert!(s.allows_check("UnusedLicensesCheck") && s.allows_check("KeywordsCheck"));
    }

    #[test]
    fn keywords_filter_findings_and_checks_with_nothing_left() {
        let s = sel(&["--keywords=-UnusedLicenses"]);
        assert!(!s.keeps("UnusedLicenses"));
        assert!(s.keeps("UnknownLicense"));
        assert!(!s.allows_check("UnusedLicensesCheck"), "its only keyword is filtered out");
        let s = sel(&["-k", "error"]);
        assert!(s.keeps("UnknownLicense"));
        assert!(!s.keeps("DeprecatedEapi"));
        assert!(s.keeps(CRASH_CLASS));
        let s = sel(&["-k=-NonsolvableDeps"]);
        assert!(!s.keeps("NonsolvableDepsInStable"));
    }

    #[test]
    fn what_prci_cannot_interpret_is_opaque() {
        for args in [
            &["--scopes=pkg"][..],
            &["-C", "all"],
            &["--net"],
            &["--cache=+git"],
            &["--checks=NoSuchCheck"],
            &["-k", "NoSuchKeyword"],
            &["--checks"],
        ] {
            assert!(sel(args).is_opaque(), "{args:?}");
        }
    }

    #[test]
    fn the_last_option_wins_as_in_pkgcheck() {
        let s = sel(&["--checks=-UnusedLicensesCheck", "--checks=-UnusedEclassesCheck"]);
        assert!(s.allows_check("UnusedLicensesCheck"));
        assert!(!s.allows_check("UnusedEclassesCheck"));
    }

    #[test]
    fn the_repo_pass_names_only_what_changes() {
        let pass: BTreeSet<&str> = ["UnusedLicensesCheck", "UnusedEclassesCheck", "UnusedInMastersCheck"].into();
        assert_eq!(sel(&[]).repo_pass_checks_arg(&pass), None);
        assert_eq!(sel(&["--checks=+KeywordsCheck"]).repo_pass_checks_arg(&pass), None);
        assert_eq!(sel(&["--checks=-UnusedLicensesCheck"]).repo_pass_checks_arg(&pass).as_deref(), Some("--checks=-UnusedLicensesCheck"));
        assert_eq!(
            sel(&["-c", "KeywordsCheck,+UnusedInMastersCheck"]).repo_pass_checks_arg(&pass).as_deref(),
            Some("--checks=-UnusedEclassesCheck,+UnusedInMastersCheck,-UnusedLicensesCheck")
        );
    }
}
