//! Test fixtures for prci: small Gentoo-style ebuild repositories in git work
//! trees (`Repo`, `Ebuild`), a deterministic bulk generator for benchmarks, and
//! helpers running the real `pmaint regen` / `pkgcheck scan` as the "slow truth", and a Gentoo-size
//! tree built from a real snapshot for `prci-bench --real` (`real_tree`), and git remotes served over https and ssh
//! on this machine (`remotes`), and a stateful fake of GitHub's REST API held to GitHub's OpenAPI description (`fake_github`).

pub mod ebuild;
pub mod fake_github;
pub mod real_tree;
pub mod remotes;
pub mod repo;
pub mod tools;

#[cfg(test)]
mod tests;

pub use ebuild::{eclass_function, metadata_xml, Ebuild};
pub use repo::{generated_atom, generated_category, generated_package, Repo};
pub use tools::{
    finding_classes, parse_json_stream, pkgcheck_path, pmaint_path, regen, scan_full, scan_full_with, tools_available, PkgcoreConfig,
};
