//! Gentoo package versions (PMS 3.2, 3.3): parsing, ordering, and whether a versioned dependency atom matches a version.

use std::cmp::Ordering;

/// One version, e.g. `1.02.3b_rc4_p5-r6`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// The dot-separated numeric components, as written.
    numbers: Vec<String>,
    letter: Option<char>,
    /// `(rank, number)`: rank 0 `_alpha`, 1 `_beta`, 2 `_pre`, 3 `_rc`, 5 `_p` (4 is "no suffix").
    suffixes: Vec<(u8, String)>,
    /// `-rN` (0 when absent).
    revision: String,
}

const SUFFIXES: [(&str, u8); 5] = [("alpha", 0), ("beta", 1), ("pre", 2), ("rc", 3), ("p", 5)];
const NO_SUFFIX: u8 = 4;

impl Version {
    /// Parse a version; `None` for anything that is not one.
    pub fn parse(text: &str) -> Option<Version> {
        let (main, revision) = match text.rsplit_once("-r") {
            Some((m, r)) if !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()) => (m, r.to_owned()),
            _ => (text, "0".to_owned()),
        };
        let mut parts = main.split('_');
        let head = parts.next()?;
        let (digits, letter) = match head.chars().last() {
            Some(c) if c.is_ascii_lowercase() => (&head[..head.len() - 1], Some(c)),
            _ => (head, None),
        };
        let numbers: Vec<String> = digits.split('.').map(str::to_owned).collect();
        if numbers.iter().any(|n| n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit())) {
            return None;
        }
        let mut suffixes = Vec::new();
        for part in parts {
            let (rank, rest) = SUFFIXES.iter().find_map(|(name, rank)| part.strip_prefix(name).map(|rest| (*rank, rest)))?;
            if !rest.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            suffixes.push((rank, if rest.is_empty() { "0".to_owned() } else { rest.to_owned() }));
        }
        Some(Version { numbers, letter, suffixes, revision })
    }

    /// PMS algorithm 3.1, revision included.
    pub fn cmp_full(&self, other: &Version) -> Ordering {
        self.cmp_without_revision(other).then_with(|| int_cmp(&self.revision, &other.revision))
    }

    /// PMS algorithm 3.1 without the revision (what `~cat/pkg-V` compares).
    pub fn cmp_without_revision(&self, other: &Version) -> Ordering {
        let numbers = int_cmp(&self.numbers[0], &other.numbers[0]).then_with(|| {
            for (a, b) in self.numbers.iter().zip(&other.numbers).skip(1) {
                let ord = if a.starts_with('0') || b.starts_with('0') {
                    a.trim_end_matches('0').cmp(b.trim_end_matches('0'))
                } else {
                    int_cmp(a, b)
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            self.numbers.len().cmp(&other.numbers.len())
        });
        numbers.then_with(|| self.letter.cmp(&other.letter)).then_with(|| {
            let n = self.suffixes.len().max(other.suffixes.len());
            for i in 0..n {
                let a = self.suffixes.get(i).map_or((NO_SUFFIX, "0"), |(r, v)| (*r, v.as_str()));
                let b = other.suffixes.get(i).map_or((NO_SUFFIX, "0"), |(r, v)| (*r, v.as_str()));
                let ord = a.0.cmp(&b.0).then_with(|| int_cmp(a.1, b.1));
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            Ordering::Equal
        })
    }
}

/// The version part of a `PF` of package `cp` (`gzip-1.10-r1` of `app-arch/gzip` → `1.10-r1`).
pub fn of_pf<'a>(cp: &str, pf: &'a str) -> Option<&'a str> {
    let pn = cp.split_once('/').map_or(cp, |(_, pn)| pn);
    pf.strip_prefix(pn).and_then(|v| v.strip_prefix('-'))
}

/// Compare two strings of digits as integers of any size.
fn int_cmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Whether an atom's version restriction (`op` one of `<`, `<=`, `=`, `~`, `>=`, `>`; `version` as written
/// after the package name) matches `version`. `None` when that cannot be decided here: a glob (`=cat/pkg-1*`),
/// an unknown operator, or a version that does not parse.
pub fn atom_matches(op: &str, version: &str, candidate: &str) -> Option<bool> {
    if version.ends_with('*') {
        return None;
    }
    let (wanted, have) = (Version::parse(version)?, Version::parse(candidate)?);
    let ord = have.cmp_full(&wanted);
    Some(match op {
        "<" => ord == Ordering::Less,
        "<=" => ord != Ordering::Greater,
        "=" => ord == Ordering::Equal,
        "~" => have.cmp_without_revision(&wanted) == Ordering::Equal,
        ">=" => ord != Ordering::Less,
        ">" => ord == Ordering::Greater,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap_or_else(|| panic!("{s} is a version"))
    }

    #[test]
    fn versions_are_ordered_as_pms_says() {
        // Each is less than the next.
        let ascending = [
            "0.9",
            "1",
            "1.0",
            "1.0a",
            "1.0z",
            "1.0.0",
            "1.01",
            "1.1_alpha",
            "1.1_alpha2",
            "1.1_beta",
            "1.1_pre",
            "1.1_rc1",
            "1.1",
            "1.1-r1",
            "1.1-r2",
            "1.1_p",
            "1.1_p1",
            "1.1_p1-r3",
            "1.1.1",
            "1.2",
            "1.10",
            "2_pre1_p2",
            "2",
            "20200101",
        ];
        for pair in ascending.windows(2) {
            assert_eq!(v(pair[0]).cmp_full(&v(pair[1])), Ordering::Less, "{} < {}", pair[0], pair[1]);
            assert_eq!(v(pair[1]).cmp_full(&v(pair[0])), Ordering::Greater, "{} > {}", pair[1], pair[0]);
        }
        assert_eq!(v("1.0-r0").cmp_full(&v("1.0")), Ordering::Equal);
        assert_eq!(v("1.010").cmp_full(&v("1.01")), Ordering::Equal, "trailing zeros of a component with a leading zero");
        assert_eq!(v("1.1-r3").cmp_without_revision(&v("1.1")), Ordering::Equal);
        for bad in ["", "a", "1.", ".1", "1..2", "1_foo", "1-rc", "1_p1a"] {
            assert!(Version::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn atom_operators_match_versions() {
        assert_eq!(atom_matches(">=", "3.9", "3.11.1"), Some(true));
        assert_eq!(atom_matches(">=", "3.9", "3.11.1-r1"), Some(true));
        assert_eq!(atom_matches("<", "3.11.1", "3.11.1-r1"), Some(false));
        assert_eq!(atom_matches("<=", "3.11.1", "3.11.1-r1"), Some(false), "a revision is a later version");
        assert_eq!(atom_matches("=", "3.11.1", "3.11.1-r0"), Some(true));
        assert_eq!(atom_matches("=", "3.11.1", "3.11.1-r1"), Some(false));
        assert_eq!(atom_matches("~", "3.11.1", "3.11.1-r1"), Some(true));
        assert_eq!(atom_matches(">", "1.0_rc1", "1.0"), Some(true));
        assert_eq!(atom_matches("=", "1*", "1.2"), None, "globs are not decided here");
        assert_eq!(atom_matches("!", "1", "1"), None);
    }
}
