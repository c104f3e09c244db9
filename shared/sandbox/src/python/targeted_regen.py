"""prci's targeted md5-cache regeneration: what `pmaint regen` does for a whole repository, for the packages named on stdin only.

Usage: python3 targeted_regen.py --config CONFIG_DIR --repo LOCATION [--threads N] < packages
(one `category/package` a line). It follows pkgcore's `_cmd_api_regen_cache` (pkgcore/operations/repo.py, 0.12.30)
step by step, restricted to those packages:

1. regenerate the stale or missing md5-cache entries of every version (unfiltered, as pmaint: a package whose
   metadata turns out bad still gets its entry written first), with the same regen helper and eclass caching;
2. iterate the filtered repository for those packages: versions with bad metadata (unsupported EAPI, bad SLOT,
   unparseable REQUIRED_USE, an ebuild that failed to source) are errors, and their entries are not kept;
3. delete the cache entries of those packages that are not valid versions any more (and any unparseable entry in
   the categories visited, which a full regen would delete too);
4. flush the cache.

Exit 0: clean; 1: some versions failed (as pmaint); 3: a package name pkgcore cannot target (the caller runs a
full regen); 2: any other error, with a one-line message on stderr.
"""

import argparse
import os
import sys


def fail(code, message):
    sys.stderr.write(f"prci-targeted-regen: {' '.join(str(message).split())}\n")
    sys.exit(code)


def find_repo(domain, location):
    """The raw ebuild repository (as `pmaint regen LOCATION` picks it) whose location is `location`."""
    wanted = os.path.realpath(location)
    for repo in domain.source_repos_raw:
        loc = getattr(repo, "location", None)
        if loc is not None and os.path.realpath(loc) == wanted:
            return repo
    return None


def main():
    parser = argparse.ArgumentParser(description="targeted pmaint regen")
    parser.add_argument("--config", required=True)
    parser.add_argument("--repo", required=True)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    targets = []
    for line in sys.stdin.read().splitlines():
        line = line.strip()
        if not line:
            continue
        parts = line.split("/")
        if len(parts) != 2 or not all(parts):
            fail(3, f"not a category/package: {line!r}")
        targets.append((parts[0], parts[1]))
    targets = sorted(set(targets))

    from pkgcore.config import load_config
    from pkgcore.ebuild.atom import atom
    from pkgcore.ebuild.cpv import CPV
    from pkgcore.operations import regen as regen_mod
    from pkgcore.operations import observer as observer_mod
    from pkgcore.restrictions import packages
    from snakeoil.formatters import PlainTextFormatter

    config = load_config(location=args.config)
    domain = config.get_default("domain")
    if domain is None:
        fail(2, f"no domain in the pkgcore config {args.config}")
    repo = find_repo(domain, args.repo)
    if repo is None:
        fail(2, f"no repository at {args.repo} in the pkgcore config {args.config}")
    if not repo.operations.supports("regen_cache"):
        fail(2, f"repository {repo.location} does not support cache regeneration")
    cache = getattr(repo, "cache", None)
    if not cache:
        # pmaint skips such a repository (and writes nothing).
        return 0
    # pkgcore calls the md5-cache read-only when its directory is not writable; prci's sandbox leaves only the
    # named packages' category directories of it writable (what this script writes), so say it is.
    for c in [cache] if hasattr(cache, "commit") else cache:
        if os.path.isdir(getattr(c, "location", "")):
            c.readonly = False

    try:
        restricts = [atom(f"{cat}/{pkg}") for cat, pkg in targets]
    except Exception as e:  # an invalid package name: let a full regen decide what it means
        fail(3, f"cannot target {e}")
    if not restricts:
        return 0
    restrict = packages.OrRestriction(*restricts)

    observer = observer_mod.formatter_output(PlainTextFormatter(sys.stdout))
    sync_rate = getattr(cache, "sync_rate", None)
    errors = 0
    try:
        if sync_rate is not None:
            cache.set_sync_rate(1000000)
        pkgs = list(repo.itermatch(restrict, pkg_filter=None))
        for pkg, e in regen_mod.regen_repository(repo, pkgs, observer=observer, threads=args.threads, force=False, eclass_caching=True):
            observer.error(f"caught exception {e} while processing {pkg.cpvstr}")
            errors += 1

        valid = frozenset(pkg.cpvstr for pkg in repo.itermatch(restrict))
        for pkg in sorted(repo._bad_masked):
            observer.error(f"{pkg.cpvstr}: {pkg.data.msg(verbosity=observer.verbosity)}")
            errors += 1

        caches = getattr(repo, "cache", ())
        if hasattr(caches, "commit"):
            caches = [caches]
        wanted = {cat: set() for cat, _ in targets}
        for cat, pkg in targets:
            wanted[cat].add(pkg)
        for c in caches:
            if c.readonly:
                continue
            for cat, pkg_names in sorted(wanted.items()):
                try:
                    names = sorted(os.listdir(os.path.join(c.location, cat)))
                except FileNotFoundError:
                    continue
                for name in names:
                    key = f"{cat}/{name}"
                    if name.endswith(".cpickle") or not os.path.isfile(os.path.join(c.location, key)):
                        continue
                    try:
                        ours = CPV(key, versioned=True).package in pkg_names
                    except Exception:
                        ours = True  # not a version of anything: a full regen deletes it as well
                    if ours and key not in valid:
                        del c[key]
    finally:
        if sync_rate is not None:
            cache.set_sync_rate(sync_rate)
        repo.operations.run_if_supported("flush_cache")
    return 1 if errors else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SystemExit:
        raise
    except KeyboardInterrupt:
        fail(2, "interrupted")
    except BaseException as e:  # a real error: one line for the caller's log
        fail(2, f"{type(e).__name__}: {e}")
