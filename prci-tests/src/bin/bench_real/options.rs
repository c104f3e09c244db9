//! The options of `--real`: which pull request types, variants and configured pkgcheck argument sets
//! to measure, how many copies of the snapshot, and which snapshot.

use anyhow::{bail, Context as _, Result};
use fixtures::real_tree::{PrKind, Variant, DISABLED_CHECK_ARG};
use std::path::PathBuf;

/// The configured pkgcheck arguments of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum ArgSet {
    /// No configured arguments.
    None,
    /// `--pkgcheck-arg=--checks=-MetadataVarCheck` (a check disabled, as an operator of this tree would).
    Disabled,
}

impl ArgSet {
    pub(crate) fn args(self) -> Vec<String> {
        match self {
            ArgSet::None => vec![],
            ArgSet::Disabled => vec![DISABLED_CHECK_ARG.to_owned()],
        }
    }

    /// For the table.
    pub(crate) fn label(self) -> &'static str {
        match self {
            ArgSet::None => "none",
            ArgSet::Disabled => "`--checks=-MetadataVarCheck`",
        }
    }

    /// For directory names.
    pub(crate) fn slug(self) -> &'static str {
        match self {
            ArgSet::None => "noargs",
            ArgSet::Disabled => "disabled",
        }
    }
}

/// The options of `--real`.
#[derive(Debug)]
pub(crate) struct Options {
    pub copies: usize,
    pub tarball: Option<PathBuf>,
    pub only: Vec<PrKind>,
    pub variants: Vec<Variant>,
    pub arg_sets: Vec<ArgSet>,
    /// Time the full-tree scan again even when the tree has a cached time (`--rescan`).
    pub rescan: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            copies: 14,
            tarball: None,
            only: PrKind::ALL.to_vec(),
            variants: Variant::ALL.to_vec(),
            arg_sets: vec![ArgSet::None, ArgSet::Disabled],
            rescan: false,
        }
    }
}

impl Options {
    pub fn set_only(&mut self, list: &str) -> Result<()> {
        let mut kinds = Vec::new();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let kind = PrKind::parse(name)
                .with_context(|| format!("--only: `{name}` is not one of {}", PrKind::ALL.map(PrKind::name).join(", ")))?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        if kinds.is_empty() {
            bail!("--only: no pull request type given");
        }
        kinds.sort();
        self.only = kinds;
        Ok(())
    }

    pub fn set_variant(&mut self, v: &str) -> Result<()> {
        self.variants = match v {
            "committed" => vec![Variant::Committed],
            "uncommitted" => vec![Variant::Uncommitted],
            "both" => Variant::ALL.to_vec(),
            other => bail!("--variant: `{other}` is not committed, uncommitted or both"),
        };
        Ok(())
    }

    pub fn set_args(&mut self, v: &str) -> Result<()> {
        self.arg_sets = match v {
            "none" => vec![ArgSet::None],
            "disabled" => vec![ArgSet::Disabled],
            "both" => vec![ArgSet::None, ArgSet::Disabled],
            other => bail!("--args: `{other}` is not none, disabled or both"),
        };
        Ok(())
    }
}
