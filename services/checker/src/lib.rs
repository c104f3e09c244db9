//! The checker stage: prepared trees in; the scan planned from what changed, base and merge scanned the same way (base results reused), candidate differences confirmed so pkgcheck's flaps never reach a verdict; both sides' findings out.
//!
//! Entry points: [`step::Checker::scan`] (the step `prci check` runs too), [`check`] (the algorithm) and
//! [`stage::CheckerStage`] (the queue consumer).

pub mod cache;
pub mod plan;
pub mod repo_scope;
pub mod scan;
pub mod selection;
pub mod stage;
pub mod step;

use cache::BaseCache;
use ebuild::index::CacheIndex;
use findings::Finding;
use plan::Plan;
use sandbox::TreeEnv;
use scan::{target_of, ScanError, Scanner, Unit};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;
use trees::Side;

/// Both sides' findings for one job, and which identities proved unstable.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub plan: Plan,
    pub base: Vec<Finding>,
    pub merge: Vec<Finding>,
    /// Identities whose count changed between scans of the same tree: pkgcheck flaps, never a difference.
    pub unstable: BTreeSet<String>,
    /// Base units answered from the cache / scanned.
    pub cache_hits: usize,
    pub cache_misses: usize,
    /// Confirmation rounds run.
    pub rescans: u32,
    pub timings: Vec<(String, f64)>,
}

/// How candidates are confirmed.
#[derive(Debug, Clone)]
pub struct ConfirmPolicy {
    pub rescans: u32,
    pub flaky_rescans: u32,
    pub flaky_keywords: Vec<String>,
}

impl ConfirmPolicy {
    /// The policy `checker.*` configures.
    pub fn from_settings(settings: &pipeline::Settings) -> ConfirmPolicy {
        ConfirmPolicy {
            rescans: settings.checker.confirm_rescans,
            flaky_rescans: settings.checker.flaky_rescans,
            flaky_keywords: settings.checker.flaky_keywords.clone(),
        }
    }
}

/// Inputs that identify the base tree for the cache.
#[derive(Debug, Clone)]
pub struct BaseId {
    /// The base commit's tree id plus the masters' commits.
    pub tree: String,
    /// How many master repositories the tree has.
    pub masters: usize,
    /// What pkgcheck's profile and eclass caches are made from: the base's `profiles/`, `eclass/` and
    /// `metadata/layout.conf` (git ids) and the masters' trees. A kept cache is used only for these inputs.
    pub tool_inputs: String,
}

/// Run the whole checker step on two prepared trees.
pub fn check(
    scanner: &Scanner,
    cache: &BaseCache,
    base_id: &BaseId,
    changed: &[String],
    base_env: &TreeEnv,
    merge_env: &TreeEnv,
    policy: &ConfirmPolicy,
) -> Result<Outcome, ScanError> {
    let mut timings = Vec::new();
    // pkgcheck's profile and eclass caches, kept beside each checkout (see `merge_tool_cache`); the merge side's
    // is brought up to date while the plan is made.
    let base_env = &TreeEnv { pkgcheck_cache: sandbox::env::kept_tool_cache(&base_env.tree), ..base_env.clone() };
    if let Err(e) = keep_for(&base_env.pkgcheck_cache, &base_id.tool_inputs) {
        tracing::warn!(error = %e, "could not prepare the base checkout's pkgcheck cache");
    }
    let merge_cache = JoinOnDrop(Some({
        let (scanner, env, inputs) = (scanner.clone(), merge_env.clone(), base_id.tool_inputs.clone());
        let trusted = tool_cache_inputs_unchanged(changed);
        std::thread::spawn(move || merge_tool_cache(&scanner, &env, &inputs, trusted))
    }));
    let t = Instant::now();
    let (plan, base_index, merge_index) = plan_of(changed, base_env, merge_env)?;
    timings.push(("plan".to_string(), t.elapsed().as_secs_f64()));
    let decision = (!plan.full).then(|| {
        let ctx = repo_scope::Context { has_masters: base_id.masters > 0, custom_checks: scanner.custom_checks() };
        let base_tree = repo_scope::Tree { path: &base_env.tree, index: &base_index };
        let merge_tree = repo_scope::Tree { path: &merge_env.tree, index: &merge_index };
        repo_scope::decide(changed, base_tree, merge_tree, &ctx)
    });
    let units = units_to_scan(scanner, &plan, decision.as_ref());
    let t = Instant::now();
    merge_cache.join();
    timings.push(("tool_cache".to_string(), t.elapsed().as_secs_f64()));

    let t = Instant::now();
    let (base, merge, hits, misses) = scan_both(scanner, cache, base_id, base_env, merge_env, &units, decision.as_ref())?;
    timings.push(("scan".to_string(), t.elapsed().as_secs_f64()));
    let t = Instant::now();
    let (unstable, rescans) = confirm(scanner, &plan, &units, base_env, merge_env, &base, &merge, policy)?;
    timings.push(("confirm".to_string(), t.elapsed().as_secs_f64()));
    Ok(Outcome { plan, base, merge, unstable, cache_hits: hits, cache_misses: misses, rescans, timings })
}

/// Both md5-cache indexes and the plan made from them (its reasons logged).
fn plan_of(changed: &[String], base_env: &TreeEnv, merge_env: &TreeEnv) -> Result<(Plan, CacheIndex, CacheIndex), ScanError> {
    let base_index = CacheIndex::read_kept(&base_env.tree, &kept_index(&base_env.tree))?;
    // Both md5-caches are valid for their trees: where the pull request changed neither an eclass nor a
    // repository-wide file, they differ only in the packages it changed (an md5-cache entry is its package's).
    let package_paths_only = !changed.iter().any(|p| ebuild::layout::feeds_package_metadata(p));
    let merge_index = if package_paths_only {
        let touched: BTreeSet<String> = changed.iter().filter_map(|p| ebuild::layout::package_of_path(p)).collect();
        base_index.with_packages_from(&merge_env.tree, &touched)?
    } else {
        CacheIndex::read_kept(&merge_env.tree, &kept_index(&merge_env.tree))?
    };
    let plan = plan::plan(changed, &base_env.tree, &merge_env.tree, &base_index, &merge_index);
    for reason in &plan.reasons {
        tracing::info!("plan: {reason}");
    }
    Ok((plan, base_index, merge_index))
}

/// Where the md5-cache index of a checkout is kept between jobs: beside it, never inside it (an entry is reused while
/// its file is unchanged: a job on the same base reads the base side's 18,000 entries of a Gentoo-size tree no more).
fn kept_index(tree: &Path) -> PathBuf {
    sandbox::env::kept_beside(tree, "md5-index.json")
}

/// The units both sides scan: the plan's, with the repo pass narrowed to the checks the pull request can affect
/// (`decision`) that the configured arguments let run.
fn units_to_scan(scanner: &Scanner, plan: &Plan, decision: Option<&repo_scope::Decision>) -> Vec<Unit> {
    if let Some(d) = decision {
        if d.affects_nothing() {
            tracing::info!("repo pass: the pull request changes no input of a repository-scope check; none is scanned");
        }
        for reason in &d.reasons {
            tracing::info!("repo pass reruns {reason}");
        }
    }
    units_of(plan, scanner.dependents_narrowing())
        .into_iter()
        .filter_map(|u| match (u, decision) {
            (Unit::RepoPass, Some(d)) if !d.all => {
                let allowed = scanner.allowed_checks(&d.rerun);
                if allowed.len() < d.rerun.len() {
                    tracing::info!(checks = ?allowed, "repo pass: configured pkgcheck arguments narrow the checks to rerun");
                }
                (!allowed.is_empty()).then_some(Unit::RepoChecks(allowed))
            }
            (other, _) => Some(other),
        })
        .collect()
}

/// Scan `units` on both sides at once (the base from the cache where it can), check the repo-scope model against a
/// cached whole repo pass, and retry base-side timeouts. Returns base, merge, cache hits and misses.
#[allow(clippy::too_many_arguments)]
fn scan_both(
    scanner: &Scanner,
    cache: &BaseCache,
    base_id: &BaseId,
    base_env: &TreeEnv,
    merge_env: &TreeEnv,
    units: &[Unit],
    decision: Option<&repo_scope::Decision>,
) -> Result<(Vec<Finding>, Vec<Finding>, usize, usize), ScanError> {
    // Where the base side is answered from the cache, the merge side has every core (both sides otherwise
    // scan at once, `checker.jobs` each). `-j` changes the order of pkgcheck's output, never its content.
    let merge_scanner = if units.iter().all(|u| base_cached(cache, base_id, &scanner.fingerprint(), u)) {
        tracing::info!(jobs = scanner.jobs * 2, "the base side is cached: the merge side scans with every core");
        scanner.with_jobs(scanner.jobs * 2)
    } else {
        scanner.clone()
    };
    let (base, merge) = std::thread::scope(|s| {
        let b = s.spawn(|| scan_base(scanner, cache, base_id, base_env, units));
        let m = s.spawn(|| rescan(&merge_scanner, merge_env, units, Side::Merge));
        (joined(b), joined(m))
    });
    let mut base = base?;
    let mut merge = merge?;
    // Where the base's whole repo pass is at hand (cached), check the model's predictions against it.
    if let (Some(d), Some(whole)) = (decision, &base.whole_repo_pass) {
        let broken: Vec<String> = d.broken_expectations(whole).into_iter().filter(|c| !d.rerun.contains(c)).collect();
        if !broken.is_empty() {
            tracing::warn!(checks = ?broken, "the base's repo-scope findings disagree with prci's model of them; scanning those checks too");
            let set: BTreeSet<String> = broken.iter().cloned().collect();
            base.all.extend(repo_scope::of_checks(whole, &set));
            merge.extend(scan_unit(scanner, merge_env, &Unit::RepoChecks(broken), Side::Merge)?);
            findings::sort_findings(&mut base.all);
            findings::sort_findings(&mut merge);
        }
    }
    let (mut base_all, hits, misses) = (base.all, base.hits, base.misses);
    retry_base_timeouts(scanner, base_env, units, &mut base_all, &merge)?;
    Ok((base_all, merge, hits, misses))
}

/// A thread joined when dropped: the merge cache's update never outlives the job that started it (an early error
/// return would otherwise let it run on after the repository lock is released, on the next job's checkout).
struct JoinOnDrop(Option<std::thread::JoinHandle<()>>);

impl JoinOnDrop {
    fn join(mut self) {
        self.wait();
    }

    fn wait(&mut self) {
        if let Some(handle) = self.0.take() {
            if handle.join().is_err() {
                tracing::warn!("preparing the merge side's pkgcheck cache panicked; it starts empty");
            }
        }
    }
}

impl Drop for JoinOnDrop {
    fn drop(&mut self) {
        self.wait();
    }
}

/// Whether the pull request leaves every input of pkgcheck's profile and eclass caches as the base has it:
/// it changes nothing under `profiles/`, `eclass/` or `metadata/` (md5-cache entries aside).
fn tool_cache_inputs_unchanged(changed: &[String]) -> bool {
    !changed.iter().any(|p| ebuild::layout::is_tool_cache_input(p))
}

/// When the pull request changed none of their inputs, give the merge side a private copy of the cache kept beside
/// its checkout, first made for the base's inputs (`keep_for`) and brought up to date. pkgcheck's caches are
/// pickles that every later scan loads, and a scan can run a pull request's code (pkgcheck sources an ebuild
/// that has no md5-cache entry), so the kept cache is written only by `pkgcheck cache --update` on profiles,
/// eclasses and metadata that are the base's, never by a scan of the merge tree; a pull request that changes
/// them scans with a cache of its own, built from nothing. The base side's kept cache is its own (upstream's code
/// only). Until the sandbox gives each run a read-only view of these directories (the next issue), a tool run
/// under the same uid could still write them.
fn merge_tool_cache(scanner: &Scanner, env: &TreeEnv, inputs: &str, trusted: bool) {
    if !trusted {
        return; // the scan builds its own from the pull request's profiles and eclasses
    }
    let kept = sandbox::env::kept_tool_cache(&env.tree);
    let updating = TreeEnv { pkgcheck_cache: kept.clone(), ..env.clone() };
    let updated = keep_for(&kept, inputs).map_err(ScanError::from).and_then(|()| scanner.update_tool_cache(&updating));
    if let Err(ScanError::Cancelled) = updated {
        return; // stopped half-way: the next job's keep_for finds its stamp and updates it again
    }
    if let Err(e) = updated {
        tracing::warn!(error = %e, "could not update the merge checkout's pkgcheck cache; dropping it");
        let _ = sandbox::env::empty_in_place(&kept);
        return;
    }
    if let Err(e) = copy_dir(&kept, &env.pkgcheck_cache) {
        tracing::warn!(error = %e, "could not copy the merge checkout's pkgcheck cache; the scan builds its own");
        let _ = sandbox::env::empty_in_place(&env.pkgcheck_cache);
    }
}

/// Make `dir` a kept cache for `inputs` (`BaseId::tool_inputs`): one made from other inputs is emptied first, so
/// a kept cache never relies on pkgcheck's own staleness checks (mtimes, and the files directly in each profile
/// directory: a `package.mask/` directory's files or `profiles/arch.list` are not among them).
fn keep_for(dir: &Path, inputs: &str) -> std::io::Result<()> {
    let stamp = dir.join("prci-inputs");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == inputs) {
        return Ok(());
    }
    sandbox::env::empty_in_place(dir)?;
    std::fs::write(stamp, inputs)
}

/// Copy a directory of regular files and directories (symlinks and anything else are left out).
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()))?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

/// Scan one unit of one side. Selected repo-pass checks that pkgcheck refuses to run alone (a check
/// skipped on this repository is an error when named with `-c`) are answered from the whole pass.
fn scan_unit(scanner: &Scanner, env: &TreeEnv, unit: &Unit, side: Side) -> Result<Vec<Finding>, ScanError> {
    match (scanner.scan(env, unit, side.name()), unit) {
        (Err(e), Unit::RepoChecks(checks)) => {
            tracing::warn!(error = %e, ?checks, side = side.name(), "pkgcheck would not run these checks alone; running the whole repo pass");
            let whole = scanner.scan(env, &Unit::RepoPass, side.name())?;
            Ok(repo_scope::of_checks(&whole, &checks.iter().cloned().collect()))
        }
        (result, _) => result,
    }
}

fn joined<T>(h: std::thread::ScopedJoinHandle<'_, Result<T, ScanError>>) -> Result<T, ScanError> {
    h.join().unwrap_or_else(|_| Err(ScanError::Tool("a scan thread panicked".into())))
}

/// The scans a plan needs: everything, or the repo pass plus eclass and package targets, and the packages there
/// only as reverse dependencies narrowed as `narrowing` allows (see [`DependentsNarrowing`]).
pub fn units_of(plan: &Plan, narrowing: DependentsNarrowing) -> Vec<Unit> {
    if plan.full {
        return vec![Unit::Full];
    }
    let mut units = vec![Unit::RepoPass];
    let eclasses: Vec<String> = plan.eclasses.iter().map(|e| format!("eclass/{e}.eclass")).collect();
    if !eclasses.is_empty() {
        units.push(Unit::Targets(eclasses));
    }
    let narrowed = |cp: &String| narrowing != DependentsNarrowing::None && plan.dependents.contains(cp);
    let whole: Vec<String> = plan.packages.iter().filter(|cp| !narrowed(cp)).cloned().collect();
    if !whole.is_empty() {
        units.push(Unit::Targets(whole));
    }
    let dependents: Vec<String> = plan.packages.iter().filter(|cp| narrowed(cp)).cloned().collect();
    if !dependents.is_empty() {
        units.push(dependents_unit(plan, narrowing, dependents));
    }
    units
}

/// How far the configured pkgcheck arguments let prci narrow the scan of reverse dependencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DependentsNarrowing {
    /// Arguments prci does not interpret: every check.
    None,
    /// The cross-package checks, on every arch (the arguments choose arches themselves).
    Checks,
    /// The cross-package checks, on the changed arches when the change was a keyword change.
    ChecksAndArches,
}

/// The unit that scans `targets` as reverse dependencies the way `plan` and `narrowing` say.
fn dependents_unit(plan: &Plan, narrowing: DependentsNarrowing, targets: Vec<String>) -> Unit {
    let arches = match narrowing {
        DependentsNarrowing::ChecksAndArches => plan.dependent_arches.iter().cloned().collect(),
        _ => Vec::new(),
    };
    Unit::Dependents { targets, arches }
}

/// Cache key unit name of a single target or pass.
fn unit_key(unit: &Unit) -> String {
    match unit {
        Unit::Full => "full".into(),
        Unit::RepoPass => "repo-pass".into(),
        Unit::RepoChecks(c) => format!("repo-checks:{}", c.join(",")),
        Unit::Targets(t) => t.join(","),
        Unit::Dependents { targets, arches } => {
            format!("dependents[{}][{}]:{}", plan::CROSS_PACKAGE_CHECKS.join(","), arches.join(","), targets.join(","))
        }
    }
}

/// The base side's findings.
struct BaseScan {
    all: Vec<Finding>,
    /// The whole repo pass's findings, when they were cached or scanned.
    whole_repo_pass: Option<Vec<Finding>>,
    hits: usize,
    misses: usize,
}

/// Scan the base side, one cache entry per target (so a later pull request touching other packages still hits).
fn scan_base(scanner: &Scanner, cache: &BaseCache, id: &BaseId, env: &TreeEnv, units: &[Unit]) -> Result<BaseScan, ScanError> {
    let fp = scanner.fingerprint();
    let (mut hits, mut misses) = (0, 0);
    let mut all = Vec::new();
    let mut whole_repo_pass = None;
    for unit in units {
        let singles: Vec<Unit> = match unit {
            Unit::Targets(t) | Unit::Dependents { targets: t, .. } => t.iter().map(|x| unit.with_targets(vec![x.clone()])).collect(),
            other => vec![other.clone()],
        };
        let mut missing = Vec::new();
        for single in &singles {
            let (key, _) = BaseCache::key(&id.tree, &fp, &unit_key(single));
            // Selected repo-pass checks are answered from a cached whole pass as well.
            let found = cache.get(&key).or_else(|| match single {
                Unit::RepoChecks(checks) => {
                    let whole = cache.get(&BaseCache::key(&id.tree, &fp, &unit_key(&Unit::RepoPass)).0)?;
                    let selected = repo_scope::of_checks(&whole, &checks.iter().cloned().collect());
                    whole_repo_pass = Some(whole);
                    Some(selected)
                }
                _ => None,
            });
            match found {
                Some(found) => {
                    hits += 1;
                    if *single == Unit::RepoPass {
                        whole_repo_pass = Some(found.clone());
                    }
                    all.extend(found);
                }
                None => missing.push(single.clone()),
            }
        }
        if missing.is_empty() {
            continue;
        }
        misses += missing.len();
        match unit {
            Unit::Targets(_) | Unit::Dependents { .. } => {
                let targets: Vec<String> = missing.iter().flat_map(|u| u.targets().to_vec()).collect();
                let found = scanner.scan(env, &unit.with_targets(targets.clone()), Side::Base.name())?;
                let mut by_target: BTreeMap<&str, Vec<Finding>> = targets.iter().map(|t| (t.as_str(), Vec::new())).collect();
                let mut attributed = true;
                for f in &found {
                    match target_of(f).and_then(|t| by_target.get_mut(t.as_str())) {
                        Some(list) => list.push(f.clone()),
                        None => attributed = false,
                    }
                }
                if attributed {
                    for (target, list) in &by_target {
                        let (key, about) = BaseCache::key(&id.tree, &fp, &unit_key(&unit.with_targets(vec![target.to_string()])));
                        store(cache, &key, &about, list);
                    }
                } else {
                    tracing::warn!("a base scan returned findings outside its targets; not cached");
                }
                all.extend(found);
            }
            _ => {
                let found = scan_unit(scanner, env, unit, Side::Base)?;
                let (key, about) = BaseCache::key(&id.tree, &fp, &unit_key(unit));
                store(cache, &key, &about, &found);
                if *unit == Unit::RepoPass {
                    whole_repo_pass = Some(found.clone());
                }
                all.extend(found);
            }
        }
    }
    findings::sort_findings(&mut all);
    if hits > 0 {
        tracing::info!(hits, misses, "base results cache");
    }
    Ok(BaseScan { all, whole_repo_pass, hits, misses })
}

/// A target whose base scan ran past its limit while its merge scan did not: the base side was most likely
/// slowed by load (both sides scan at once). Scan that target's base side once more, alone, so a busy host
/// does not turn into a spurious "fixed PrciScanTimeout" and the merge's findings there into "new" ones.
/// A second timeout stands (it is never cached either way).
fn retry_base_timeouts(
    scanner: &Scanner,
    base_env: &TreeEnv,
    units: &[Unit],
    base: &mut Vec<Finding>,
    merge: &[Finding],
) -> Result<(), ScanError> {
    let timed_out = |list: &[Finding]| -> BTreeSet<String> {
        list.iter().filter(|f| findings::class_of(f) == findings::TIMEOUT_CLASS).filter_map(target_of).collect()
    };
    let merge_timeouts = timed_out(merge);
    let retry: Vec<String> = timed_out(base).into_iter().filter(|t| !merge_timeouts.contains(t)).collect();
    for target in retry {
        tracing::warn!(%target, "the base scan of this target ran past its limit and the merge's did not; scanning the base side again");
        let unit = unit_for_target(units, target);
        let again = scanner.scan(base_env, &unit, Side::Base.name())?;
        base.retain(|f| !unit.covers(f));
        base.extend(again);
    }
    findings::sort_findings(base);
    Ok(())
}

/// Whether the base side of `unit` is answered from the cache (the same lookups `scan_base` makes).
fn base_cached(cache: &BaseCache, id: &BaseId, fp: &str, unit: &Unit) -> bool {
    let has = |u: &Unit| cache.get(&BaseCache::key(&id.tree, fp, &unit_key(u)).0).is_some();
    match unit {
        Unit::Targets(t) | Unit::Dependents { targets: t, .. } => t.iter().all(|x| has(&unit.with_targets(vec![x.clone()]))),
        Unit::RepoChecks(_) => has(unit) || has(&Unit::RepoPass),
        other => has(other),
    }
}

/// Store base results, unless they hold a timeout: whether a scan runs past its limit depends on how
/// busy the host was, so it is never cached base truth (a crash that recurred on its own is).
fn store(cache: &BaseCache, key: &str, about: &str, findings: &[Finding]) {
    if findings.iter().any(|f| findings::class_of(f) == findings::TIMEOUT_CLASS) {
        tracing::info!(unit = about, "base results hold a timeout; not cached");
        return;
    }
    if let Err(e) = cache.put(key, about, findings) {
        tracing::warn!(error = %e, "could not store base results");
    }
}

/// Count findings by identity.
pub fn counts(findings: &[Finding]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for f in findings {
        *m.entry(findings::identity(f)).or_insert(0) += 1;
    }
    m
}

/// Re-scan the targets of every candidate difference on both sides; an identity whose count moves
/// between scans of the same tree is unstable. Known-flaky keywords get more rounds, deterministic ones
/// (`findings::BUILTIN_DETERMINISTIC`) none.
#[allow(clippy::too_many_arguments)]
fn confirm(
    scanner: &Scanner,
    plan: &Plan,
    units: &[Unit],
    base_env: &TreeEnv,
    merge_env: &TreeEnv,
    base: &[Finding],
    merge: &[Finding],
    policy: &ConfirmPolicy,
) -> Result<(BTreeSet<String>, u32), ScanError> {
    let (cb, cm) = (counts(base), counts(merge));
    // candidate identity → (rounds required, unit to rescan)
    let mut candidates: BTreeMap<String, (u32, Unit)> = BTreeMap::new();
    for f in base.iter().chain(merge) {
        let id = findings::identity(f);
        if cb.get(&id) == cm.get(&id) || candidates.contains_key(&id) {
            continue;
        }
        let class = findings::class_of(f);
        if class == findings::CRASH_CLASS || class == findings::TIMEOUT_CLASS {
            continue; // narrowed down already; rescanning a hang costs a timeout
        }
        let rounds = if findings::is_flaky(class, &policy.flaky_keywords) {
            policy.flaky_rescans
        } else if findings::needs_no_confirmation(class, &policy.flaky_keywords) {
            0 // deterministic: the first scans of both sides already compared like with like
        } else {
            policy.rescans
        };
        // Rescan what reported it, so both runs counted it the same way (`Unit::covers`).
        let unit = if scan::is_repo_pass_finding(f) {
            // Checks that never run under `--cache=-git` (ProfilesCheck also reports ProfileError) cannot be named.
            let checks: Vec<String> = findings::checks_of(class)
                .iter()
                .filter(|c| repo_scope::is_repo_pass_check(c) && !repo_scope::INACTIVE.contains(c))
                .map(|c| c.to_string())
                .collect();
            match (checks.is_empty(), plan.full) {
                (false, _) => Unit::RepoChecks(checks),
                (true, true) => Unit::Full,
                (true, false) => Unit::RepoPass,
            }
        } else {
            // The kind of unit that scanned it first: a reverse dependency again with the cross-package checks.
            match target_of(f) {
                Some(t) => unit_for_target(units, t),
                None if plan.full => Unit::Full,
                None => Unit::RepoPass,
            }
        };
        candidates.insert(id, (rounds, unit));
    }
    let trusted = candidates.values().filter(|(rounds, _)| *rounds == 0).count();
    let mut unstable = BTreeSet::new();
    let mut round = 0;
    loop {
        let needed: Vec<(&String, &Unit)> = candidates
            .iter()
            .filter(|(id, (rounds, _))| *rounds > round && !unstable.contains(*id))
            .map(|(id, (_, unit))| (id, unit))
            .collect();
        if needed.is_empty() {
            break;
        }
        round += 1;
        let units = merge_units(needed.iter().map(|(_, u)| (*u).clone()));
        let (rb, rm) = std::thread::scope(|s| {
            let b = s.spawn(|| rescan(scanner, base_env, &units, Side::Base));
            let m = s.spawn(|| rescan(scanner, merge_env, &units, Side::Merge));
            (joined(b), joined(m))
        });
        let (sb, sm) = (counts(&rb?), counts(&rm?));
        let ids: Vec<String> = needed.iter().map(|(id, _)| (*id).clone()).collect();
        for id in ids {
            if sb.get(&id) != cb.get(&id) || sm.get(&id) != cm.get(&id) {
                tracing::info!(identity = %id.replace('\u{1f}', " "), round, "finding flapped between scans of the same tree; not a difference");
                unstable.insert(id);
            }
        }
    }
    tracing::info!(
        "confirm: {trusted} candidate differences taken as scanned (deterministic keywords, or no rescans configured), {} rescanned in {round} rounds",
        candidates.len() - trusted
    );
    Ok((unstable, round))
}

/// A unit scanning `target` alone the way `units` first scanned it (a reverse dependency with the cross-package
/// checks), so every count of it is compared between runs with the same arguments.
fn unit_for_target(units: &[Unit], target: String) -> Unit {
    match units.iter().find(|u| u.targets().contains(&target)) {
        Some(first) => first.with_targets(vec![target]),
        None => Unit::Targets(vec![target]),
    }
}

/// Group single-target units of one kind into one target list; keep passes as they are.
fn merge_units(units: impl Iterator<Item = Unit>) -> Vec<Unit> {
    // unit kind (with no targets) → targets
    let mut targets: BTreeMap<Unit, BTreeSet<String>> = BTreeMap::new();
    let mut passes = BTreeSet::new();
    for u in units {
        match &u {
            Unit::Targets(t) | Unit::Dependents { targets: t, .. } => {
                targets.entry(u.with_targets(vec![])).or_default().extend(t.iter().cloned())
            }
            _ => {
                passes.insert(u);
            }
        }
    }
    let mut out: Vec<Unit> = passes.into_iter().collect();
    if out.contains(&Unit::Full) {
        return vec![Unit::Full];
    }
    out.extend(targets.into_iter().map(|(kind, t)| kind.with_targets(t.into_iter().collect())));
    out
}

fn rescan(scanner: &Scanner, env: &TreeEnv, units: &[Unit], side: Side) -> Result<Vec<Finding>, ScanError> {
    let mut all = Vec::new();
    for unit in units {
        all.extend(scan_unit(scanner, env, unit, side)?);
    }
    Ok(all)
}

/// The tree id used for the base cache: the base commit's git tree plus the masters' trees.
pub fn base_id(mirror: &git2::Repository, base: git2::Oid, masters: &[&Path]) -> Result<BaseId, git2::Error> {
    let tree = mirror.find_commit(base)?.tree()?;
    let mut id = tree.id().to_string();
    let mut master_ids = String::new();
    for m in masters {
        let repo = git2::Repository::open(m)?;
        let master = repo.head()?.peel_to_tree()?.id().to_string();
        id.push('+');
        id.push_str(&master);
        master_ids.push_str(&master);
        master_ids.push(' ');
    }
    let entry = |path: &str| tree.get_path(Path::new(path)).map(|e| e.id().to_string()).unwrap_or_else(|_| "-".to_owned());
    let tool_inputs = format!(
        "profiles={} eclass={} layout={} masters={}",
        entry("profiles"),
        entry("eclass"),
        entry("metadata/layout.conf"),
        master_ids.trim_end()
    );
    Ok(BaseId { tree: id, masters: masters.len(), tool_inputs })
}
