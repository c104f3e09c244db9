//! Rendering of the text files a fixture repository is made of: ebuilds,
//! metadata.xml files and documented eclass functions.

/// Year written in the copyright header of every generated ebuild and eclass.
pub const COPYRIGHT_YEAR: u32 = 2024;

/// Maintainer e-mail written into every generated metadata.xml and eclass.
pub const MAINTAINER_EMAIL: &str = "test@example.com";

/// The two-line copyright header Gentoo ebuilds and eclasses start with.
pub fn copyright_header() -> String {
    format!(
        "# Copyright {COPYRIGHT_YEAR} Gentoo Authors\n\
         # Distributed under the terms of the GNU General Public License v2\n"
    )
}

/// The variables and extra lines of one ebuild.
///
/// `Default` leaves `description` and `homepage` empty; [`crate::Repo::add_package`]
/// fills them with `Test package <cat>/<pkg>` and `https://example.com/<pkg>` when
/// they are empty (use [`Ebuild::for_package`] to get them filled up front).
/// Empty variables are not written at all (pkgcheck flags `X=""`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ebuild {
    pub eapi: String,
    pub description: String,
    pub homepage: String,
    pub license: String,
    pub slot: String,
    pub keywords: String,
    pub iuse: String,
    pub inherit: Vec<String>,
    pub depend: String,
    pub rdepend: String,
    pub bdepend: String,
    pub pdepend: String,
    /// Extra lines appended after the variables (phase functions, …).
    pub body: String,
}

impl Default for Ebuild {
    fn default() -> Self {
        Ebuild {
            eapi: "8".into(),
            description: String::new(),
            homepage: String::new(),
            license: "MIT".into(),
            slot: "0".into(),
            keywords: "~amd64".into(),
            iuse: String::new(),
            inherit: Vec::new(),
            depend: String::new(),
            rdepend: String::new(),
            bdepend: String::new(),
            pdepend: String::new(),
            body: String::new(),
        }
    }
}

impl Ebuild {
    /// The default ebuild with DESCRIPTION and HOMEPAGE filled for `cat/pkg`.
    pub fn for_package(cat: &str, pkg: &str) -> Ebuild {
        let mut e = Ebuild::default();
        e.fill_defaults(cat, pkg);
        e
    }

    /// Fill an empty DESCRIPTION / HOMEPAGE with the per-package defaults.
    pub fn fill_defaults(&mut self, cat: &str, pkg: &str) {
        if self.description.is_empty() {
            self.description = default_description(cat, pkg);
        }
        if self.homepage.is_empty() {
            self.homepage = default_homepage(pkg);
        }
    }

    /// Builder-style helpers, handy in tests: `Ebuild::default().with_rdepend("a/b")`.
    pub fn with_inherit(mut self, eclass: &str) -> Ebuild {
        self.inherit.push(eclass.to_string());
        self
    }

    pub fn with_rdepend(mut self, dep: &str) -> Ebuild {
        self.rdepend = dep.to_string();
        self
    }

    pub fn with_body(mut self, body: &str) -> Ebuild {
        self.body = body.to_string();
        self
    }

    pub fn with_keywords(mut self, keywords: &str) -> Ebuild {
        self.keywords = keywords.to_string();
        self
    }

    /// Render a clean ebuild: copyright header, EAPI, inherit, the metadata
    /// variables in the order pkgcheck expects, dependency variables, then `body`.
    /// No empty assignments, no double empty lines, no trailing whitespace.
    pub fn render(&self) -> String {
        let mut blocks: Vec<String> = vec![copyright_header()];
        if !self.eapi.is_empty() {
            blocks.push(format!("EAPI={}\n", self.eapi));
        }
        let inherits: Vec<&str> = self.inherit.iter().map(|s| s.trim()).filter(|s| !s.is_empty()).collect();
        if !inherits.is_empty() {
            blocks.push(format!("inherit {}\n", inherits.join(" ")));
        }
        blocks.push(assignments(&[
            ("DESCRIPTION", &self.description),
            ("HOMEPAGE", &self.homepage),
            ("LICENSE", &self.license),
            ("SLOT", &self.slot),
            ("KEYWORDS", &self.keywords),
            ("IUSE", &self.iuse),
        ]));
        blocks.push(assignments(&[
            ("DEPEND", &self.depend),
            ("RDEPEND", &self.rdepend),
            ("BDEPEND", &self.bdepend),
            ("PDEPEND", &self.pdepend),
        ]));
        blocks.push(clean_block(&self.body));
        blocks.retain(|b| !b.is_empty());
        blocks.join("\n")
    }
}

/// `Test package <cat>/<pkg>`: the default DESCRIPTION.
pub fn default_description(cat: &str, pkg: &str) -> String {
    format!("Test package {cat}/{pkg}")
}

/// `https://example.com/<pkg>`: the default HOMEPAGE.
pub fn default_homepage(pkg: &str) -> String {
    format!("https://example.com/{pkg}")
}

/// `NAME="value"` lines for the non-empty values, each ending in a newline.
fn assignments(vars: &[(&str, &String)]) -> String {
    vars.iter().filter(|(_, v)| !v.trim().is_empty()).map(|(k, v)| format!("{k}=\"{}\"\n", v.trim())).collect()
}

/// Strip trailing whitespace from every line, collapse runs of empty lines,
/// drop leading/trailing empty lines; the result ends in a newline (or is empty).
pub fn clean_block(text: &str) -> String {
    let mut out = String::new();
    let mut last_empty = true;
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            if !last_empty {
                out.push('\n');
            }
            last_empty = true;
        } else {
            out.push_str(line);
            out.push('\n');
            last_empty = false;
        }
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

/// A documented eclass function:
///
/// ```text
/// # @FUNCTION: name
/// # @DESCRIPTION:
/// # Test function name.
/// name() {
/// <tab>body…
/// }
/// ```
///
/// Every non-empty line of `body` is indented with one tab. Join several
/// functions with `"\n"` to get one empty line between them.
pub fn eclass_function(name: &str, body: &str) -> String {
    let mut out = format!("# @FUNCTION: {name}\n# @DESCRIPTION:\n# Test function {name}.\n{name}() {{\n");
    for line in clean_block(body).lines() {
        if line.is_empty() {
            out.push('\n');
        } else {
            out.push('\t');
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str("}\n");
    out
}

/// The header [`crate::Repo::add_eclass`] writes before the caller's body:
/// copyright plus the eclass doc block pkgcheck wants.
pub fn eclass_header(name: &str) -> String {
    format!(
        "{}\n\
         # @ECLASS: {name}.eclass\n\
         # @MAINTAINER:\n\
         # Test <{MAINTAINER_EMAIL}>\n\
         # @SUPPORTED_EAPIS: 7 8\n\
         # @BLURB: Test eclass {name}\n\
         # @DESCRIPTION:\n\
         # Test eclass {name}, written by the prci test fixtures.\n",
        copyright_header()
    )
}

/// Full text of an eclass: [`eclass_header`], an EAPI guard, then `body`.
pub fn render_eclass(name: &str, body: &str) -> String {
    let guard = "case ${EAPI} in\n\
                 \t7|8) ;;\n\
                 \t*) die \"${ECLASS}: EAPI ${EAPI:-0} not supported\" ;;\n\
                 esac\n";
    let mut blocks = vec![eclass_header(name), guard.to_string(), clean_block(body)];
    blocks.retain(|b| !b.is_empty());
    blocks.join("\n")
}

/// A valid metadata.xml with one person maintainer ([`MAINTAINER_EMAIL`]) and,
/// for every flag in `iuse` (`+`/`-` prefixes stripped), a local USE flag
/// description.
pub fn metadata_xml(iuse: &str) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE pkgmetadata SYSTEM \"https://www.gentoo.org/dtd/metadata.dtd\">\n\
         <pkgmetadata>\n\
         \t<maintainer type=\"person\">\n",
    );
    out.push_str(&format!("\t\t<email>{MAINTAINER_EMAIL}</email>\n"));
    out.push_str("\t\t<name>Test</name>\n\t</maintainer>\n");
    let flags: Vec<&str> = iuse.split_whitespace().map(|f| f.trim_start_matches(['+', '-'])).filter(|f| !f.is_empty()).collect();
    if !flags.is_empty() {
        out.push_str("\t<use>\n");
        for flag in flags {
            out.push_str(&format!("\t\t<flag name=\"{flag}\">Build the {flag} feature of the test package</flag>\n"));
        }
        out.push_str("\t</use>\n");
    }
    out.push_str("</pkgmetadata>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_default_for_package() {
        let text = Ebuild::for_package("cat-a", "foo").render();
        assert_eq!(
            text,
            "# Copyright 2024 Gentoo Authors\n\
             # Distributed under the terms of the GNU General Public License v2\n\
             \n\
             EAPI=8\n\
             \n\
             DESCRIPTION=\"Test package cat-a/foo\"\n\
             HOMEPAGE=\"https://example.com/foo\"\n\
             LICENSE=\"MIT\"\n\
             SLOT=\"0\"\n\
             KEYWORDS=\"~amd64\"\n"
        );
    }

    #[test]
    fn render_full() {
        let e = Ebuild {
            iuse: "debug".into(),
            inherit: vec!["testlib".into()],
            rdepend: "cat-a/foo".into(),
            depend: "${RDEPEND}".into(),
            body: "\n\nsrc_compile() {   \n\ttestlib_hello\n\n\n}\n\n".into(),
            ..Ebuild::for_package("cat-a", "bar")
        };
        let text = e.render();
        assert!(text.contains("\nEAPI=8\n\ninherit testlib\n\nDESCRIPTION="));
        assert!(text.contains("IUSE=\"debug\"\n\nDEPEND=\"${RDEPEND}\"\nRDEPEND=\"cat-a/foo\"\n\nsrc_compile() {\n"));
        assert!(!text.contains("\n\n\n"), "{text}");
        assert!(!text.lines().any(|l| l != l.trim_end()));
        assert!(text.ends_with("}\n"));
        assert!(!text.contains("BDEPEND"));
    }

    #[test]
    fn eclass_function_renders_doc() {
        assert_eq!(eclass_function("f", "echo hi\n"), "# @FUNCTION: f\n# @DESCRIPTION:\n# Test function f.\nf() {\n\techo hi\n}\n");
    }

    #[test]
    fn metadata_xml_lists_flags() {
        let xml = metadata_xml("+debug -ssl");
        assert!(xml.contains("<flag name=\"debug\">"));
        assert!(xml.contains("<flag name=\"ssl\">"));
        assert!(!metadata_xml("").contains("<use>"));
    }
}
