//! The crate graph cannot rot: every workspace crate depends only on the workspace crates ARCHITECTURE.md allows
//! it (read from `cargo metadata`), services never on each other, and a new crate must join the list to build.

#![allow(clippy::unwrap_used)] // a test harness: a panic is the failure message

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each workspace crate and the workspace crates it may depend on (normal, dev or build dependencies alike).
/// `*` = any. Keep in step with ARCHITECTURE.md's crate graph.
const ALLOWED: &[(&str, &[&str])] = &[
    ("findings", &[]),
    ("ebuild", &[]),
    ("trees", &[]),
    ("pipeline", &["findings"]),
    ("sandbox", &["ebuild"]),
    ("forge", &["pipeline", "trees"]),
    ("poller", &["pipeline", "trees", "forge"]),
    ("regen", &["pipeline", "trees", "sandbox", "ebuild"]),
    ("checker", &["pipeline", "trees", "sandbox", "ebuild", "findings"]),
    ("differ", &["pipeline", "findings"]),
    ("publisher", &["pipeline", "findings", "forge"]),
    ("prci", &["*"]),
    ("prci-tests", &["*"]),
];

/// The workspace's crates and, for each, the workspace crates it depends on.
fn workspace_edges() -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(&root)
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let names: BTreeSet<String> = packages.iter().map(|p| p["name"].as_str().expect("name").to_owned()).collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"].as_array().expect("dependencies");
            let local = deps.iter().filter_map(|d| d["name"].as_str()).filter(|n| names.contains(*n)).map(str::to_owned).collect();
            (p["name"].as_str().expect("name").to_owned(), local)
        })
        .collect()
}

#[test]
fn every_crate_depends_only_on_what_the_architecture_allows() {
    let edges = workspace_edges();
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut wrong = Vec::new();
    for (krate, deps) in &edges {
        let Some(may) = allowed.get(krate.as_str()) else {
            wrong.push(format!("{krate} is not in the allowed-edge list (prci-tests/tests/layout.rs, ARCHITECTURE.md)"));
            continue;
        };
        if may.contains(&"*") {
            continue;
        }
        for dep in deps {
            if !may.contains(&dep.as_str()) {
                wrong.push(format!("{krate} -> {dep} is not an allowed edge"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The list names only crates that exist, so it cannot hide a removed one.
    for (krate, _) in ALLOWED {
        assert!(edges.contains_key(*krate), "{krate} is in the list but not in the workspace");
    }
}

#[test]
fn services_never_depend_on_each_other() {
    let edges = workspace_edges();
    let services = ["poller", "regen", "checker", "differ", "publisher"];
    for service in services {
        let deps = &edges[service];
        for other in services {
            assert!(!deps.contains(other), "{service} depends on {other}");
        }
    }
    // The check is real: prci does see several services.
    assert!(edges["prci"].contains("regen") && edges["prci"].contains("checker"));
}
