#!/usr/bin/env python3
"""Prove every round-trip case in cases.json against the real pmaint/pkgcheck.

Run from the repository root with the project's tool environment:

    .tools/venv/bin/python prci-tests/data/roundtrip/verify.py [-k KEYWORD ...] [-v]

For the base tree and for each case (base + the case's files), in one scratch checkout at a fixed path:
`git init` + commit, `pmaint --config CFG regen -t 2 TREE`, then a full
`pkgcheck --config CFG scan --config no --cache=-git -j 2 -R JsonStream -r TREE` (fresh --cache-dir per scan).
A case passes when its keyword is among the findings that are new relative to the base (identity: the JSON
object without line numbers and the other volatile attributes prci leaves out), and, for an aggregated keyword
(`element` set), the case's finding lists exactly the base's elements plus `element` in `attr`.
Other new or vanished findings are allowed and printed. Exit status 1 on any failure.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASE = HERE / "base"
CASES = HERE / "cases.json"
ROOT = HERE.parents[2]
KEYWORDS_TSV = ROOT / "shared" / "src" / "keywords.tsv"
JOBS = "2"
TOOL_TIMEOUT = 300

# Attributes that are not part of a finding's identity: the brief's line keys plus what prci's
# identity also drops (ages, profile counts, copyright year, attributes measured to flap).
VOLATILE = {"lineno", "lines", "line", "age", "num_profiles", "year"}
FLAKY_ATTRS = {
    "IndirectInherits": {"eclass", "usage"},
    "MissingInherits": {"eclass", "usage"},
    "MissingPythonEclass": {"dep_type", "dep"},
}
FLAKY_KEYWORDS = {"IndirectInherits", "EclassExportFuncsBeforeInherit", "MissingInherits",
                  "VirtualKeywordsUpdate", "MissingPythonEclass"}
SCOPE_KEYS = ("category", "package", "version", "eclass")


def tool(name):
    for d in (Path(sys.executable).parent, ROOT / ".tools" / "venv" / "bin"):
        if (d / name).exists():
            return str(d / name)
    sys.exit(f"{name} not found next to {sys.executable} nor in .tools/venv/bin")


PMAINT, PKGCHECK = tool("pmaint"), tool("pkgcheck")


def identity(f, drop=()):
    cls = f["__class__"]
    return json.dumps(
        {k: v for k, v in f.items()
         if k not in drop
         and (k in SCOPE_KEYS or not (k in VOLATILE or k.endswith("_line") or k in FLAKY_ATTRS.get(cls, ())))},
        sort_keys=True)


def load_keywords():
    table = {}
    for line in KEYWORDS_TSV.read_text().splitlines():
        if line.startswith(("#", "@")) or not line.strip():  # comments, @alias and @optional lines
            continue
        name, level, scope, checks, *rest = line.split("\t")
        items = rest[0] if rest and rest[0] != "-" else None  # newer tables: the list attribute, if any
        table[name] = (level, scope, [c for c in checks.split(",") if c and c != "-"], items)
    return table


def validate_cases(cases, keywords):
    errors = []
    seen = set()
    for i, c in enumerate(cases):
        kw = c.get("keyword")
        where = f"case {i} ({kw})"
        missing = {"keyword", "scope", "check", "files", "element", "why"} - set(c)
        if missing:
            errors.append(f"{where}: missing fields {sorted(missing)}")
            continue
        if kw in seen:
            errors.append(f"{where}: duplicate keyword")
        seen.add(kw)
        if kw not in keywords:
            errors.append(f"{where}: keyword unknown to keywords.tsv")
            continue
        _level, scope, checks, items = keywords[kw]
        if c["scope"] != scope:
            errors.append(f"{where}: scope {c['scope']!r}, keywords.tsv says {scope!r}")
        if c["check"] not in checks:
            errors.append(f"{where}: check {c['check']!r} not in keywords.tsv's {checks}")
        if kw in FLAKY_KEYWORDS:
            errors.append(f"{where}: keyword known to flap")
        files = c["files"]
        if not isinstance(files, dict) or not 1 <= len(files) <= 2:
            errors.append(f"{where}: files must map 1 or 2 paths")
        for p in files:
            if p.startswith("/") or ".." in Path(p).parts or p.startswith("metadata/md5-cache"):
                errors.append(f"{where}: bad path {p!r}")
        if (c["element"] is None) != ("attr" not in c):
            errors.append(f"{where}: element and attr go together")
        elif items is not None and c.get("attr") != items:
            errors.append(f"{where}: keywords.tsv says {kw} is aggregated over {items!r}: "
                          f"element and attr={items!r} are required")
    return errors


class Tree:
    """One scratch checkout at a fixed path, reset to the base commit for every case."""

    def __init__(self, work):
        self.work = work
        self.path = work / "tree"
        self.cfg = work / "cfg"
        self.md5_base = work / "md5-cache.base"
        self.scans = 0
        self.env = dict(os.environ, GIT_AUTHOR_NAME="roundtrip", GIT_AUTHOR_EMAIL="roundtrip@example.org",
                        GIT_COMMITTER_NAME="roundtrip", GIT_COMMITTER_EMAIL="roundtrip@example.org",
                        GIT_CONFIG_NOSYSTEM="1", HOME=str(work), MAKEOPTS=f"-j{JOBS}")
        shutil.copytree(BASE, self.path, symlinks=True)
        self.git("init", "-q", "-b", "main")
        (self.path / ".git" / "info" / "exclude").write_text("/metadata/md5-cache/\n")
        self.commit("base")
        self.git("tag", "base")

    def git(self, *args):
        subprocess.run(["git", "-C", str(self.path), *args], check=True, env=self.env,
                       stdout=subprocess.DEVNULL)

    def commit(self, msg):
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "--no-verify", "-m", msg)

    def reset(self):
        self.git("reset", "-q", "--hard", "base")
        self.git("clean", "-fdq")  # without -x: the ignored md5-cache stays ...
        cache = self.path / "metadata" / "md5-cache"
        shutil.rmtree(cache, ignore_errors=True)  # ... and is replaced by the base's, so regen is incremental
        if self.md5_base.exists():
            shutil.copytree(self.md5_base, cache)

    def apply(self, files):
        for rel, content in files.items():
            p = self.path / rel
            if content is None:
                p.unlink()
            else:
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(content.encode())

    def write_config(self):
        """What prci writes: repos.conf naming the tree, make.profile -> the first existing profiles.desc entry."""
        shutil.rmtree(self.cfg, ignore_errors=True)
        self.cfg.mkdir()
        name = (self.path / "profiles" / "repo_name").read_text().strip()
        (self.cfg / "repos.conf").write_text(f"[DEFAULT]\nmain-repo = {name}\n\n[{name}]\nlocation = {self.path}\n")
        desc = self.path / "profiles" / "profiles.desc"
        for line in desc.read_text().splitlines() if desc.exists() else ():
            parts = line.split()
            if parts and not parts[0].startswith("#") and len(parts) > 1 and (self.path / "profiles" / parts[1]).is_dir():
                os.symlink(self.path / "profiles" / parts[1], self.cfg / "make.profile")
                break

    def run(self, argv):
        p = subprocess.run(argv, env=self.env, cwd=self.work, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=TOOL_TIMEOUT)
        return p.returncode, p.stdout, p.stderr

    def regen_and_scan(self):
        self.write_config()
        regen = self.run([PMAINT, "--config", str(self.cfg), "regen", "-t", JOBS, str(self.path)])
        self.scans += 1
        cache_dir = self.work / f"pkgcheck-cache-{self.scans}"
        scan = self.run([PKGCHECK, "--config", str(self.cfg), "scan", "--config", "no", "--cache-dir", str(cache_dir),
                         "--cache=-git", "-j", JOBS, "-R", "JsonStream", "-r", str(self.path)])
        shutil.rmtree(cache_dir, ignore_errors=True)
        findings = [json.loads(line) for line in scan[1].splitlines() if line.strip()]
        return regen, scan, findings


def short(f):
    return json.dumps(f, sort_keys=True)


def check_case(c, base_findings, regen, scan, findings, args_verbose=False):
    """Return (ok, messages)."""
    msgs = []
    if regen[0] not in (0, 1):
        return False, [f"pmaint regen exited {regen[0]}: {regen[2].strip()[-500:]}"]
    if regen[0] == 1:
        msgs.append(f"note: pmaint regen exited 1 (an ebuild failed to source): {regen[1].strip()[-300:]}")
    if scan[0] != 0:
        return False, msgs + [f"pkgcheck scan exited {scan[0]}: {scan[2].strip()[-800:]}"]
    base_ids = {identity(f) for f in base_findings}
    case_ids = {identity(f) for f in findings}
    new = [f for f in findings if identity(f) not in base_ids]
    gone = [f for f in base_findings if identity(f) not in case_ids]
    kw = c["keyword"]
    expected = [f for f in new if f["__class__"] == kw]
    others = [f for f in new if f["__class__"] != kw]
    ok = True
    if len(expected) > 1:
        ok = False
        msgs.append(f"{len(expected)} new {kw} findings, expected one: {[short(f) for f in expected]}")
    if not expected:
        ok = False
        msgs.append(f"{kw} is not among the new findings")
        unchanged = [f for f in findings if f["__class__"] == kw]
        if unchanged:
            msgs.append(f"  {kw} present but unchanged: {[short(f) for f in unchanged]}")
    elif c["element"] is not None:
        attr, element = c["attr"], c["element"]
        for f in expected:
            if attr not in f or not isinstance(f[attr], list):
                ok = False
                msgs.append(f"{kw} has no list attribute {attr!r}: {short(f)}")
                continue
            before = [b for b in base_findings if b["__class__"] == kw and identity(b, {attr}) == identity(f, {attr})]
            if len(before) > 1:
                ok = False
                msgs.append(f"aggregated {kw}: {len(before)} base findings at the same place")
                continue
            base_items = before[0][attr] if before else []
            if sorted(f[attr]) != sorted(base_items + [element]) or element in base_items:
                ok = False
                msgs.append(f"{kw}.{attr}: base {base_items} + {element!r} != case {f[attr]}")
            elif args_verbose:
                msgs.append(f"{kw}.{attr}: base {base_items} + {element!r} == case {f[attr]}")
        gone = [g for g in gone if g["__class__"] != kw]
    for f in sorted(others, key=short):
        msgs.append(f"  incidental new: {short(f)}")
    for f in sorted(gone, key=short):
        msgs.append(f"  incidental vanished: {short(f)}")
    return ok, msgs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-k", "--keyword", action="append", help="only the case(s) for this keyword")
    ap.add_argument("-v", "--verbose", action="store_true", help="print the expected findings too")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args()

    start = time.monotonic()
    keywords = load_keywords()
    cases = json.loads(CASES.read_text())
    errors = validate_cases(cases, keywords)
    if errors:
        print("\n".join(f"FAIL cases.json: {e}" for e in errors))
        return 1
    if args.keyword:
        cases = [c for c in cases if c["keyword"] in args.keyword]
        if not cases:
            print(f"no case for {args.keyword}")
            return 1

    work = Path(tempfile.mkdtemp(prefix="prci-roundtrip-"))
    failures = 0
    try:
        tree = Tree(work)
        regen, scan, base_findings = tree.regen_and_scan()
        if regen[0] != 0 or scan[0] != 0:
            print(f"FAIL base: regen exited {regen[0]}, scan exited {scan[0]}\n{regen[1]}{regen[2]}{scan[2]}")
            return 1
        shutil.copytree(tree.path / "metadata" / "md5-cache", tree.md5_base)
        print(f"OK   base: {len(base_findings)} findings")
        for f in sorted(base_findings, key=short):
            print(f"       {short(f)}")

        scopes, checks = set(), set()
        for c in cases:
            t0 = time.monotonic()
            tree.reset()
            tree.apply(c["files"])
            tree.commit(f"case {c['keyword']}")
            regen, scan, findings = tree.regen_and_scan()
            ok, msgs = check_case(c, base_findings, regen, scan, findings, args.verbose)
            failures += not ok
            if ok:
                scopes.add(c["scope"])
                checks.add(c["check"])
            label = f"{c['keyword']} ({c['scope']}, {c['check']})"
            if c["element"] is not None:
                label += f" +{c['attr']}={c['element']}"
            print(f"{'OK  ' if ok else 'FAIL'} {label}  [{time.monotonic() - t0:.1f}s]")
            if args.verbose:
                for f in findings:
                    if f["__class__"] == c["keyword"]:
                        print(f"       found: {short(f)}")
            for m in msgs:
                print(f"     {m}")

        print(f"{len(cases) - failures}/{len(cases)} cases OK; scopes {sorted(scopes)}; "
              f"{len(checks)} checks; {time.monotonic() - start:.0f}s")
    finally:
        if args.keep:
            print(f"scratch directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
