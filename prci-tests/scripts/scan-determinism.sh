#!/usr/bin/env bash
# Which pkgcheck keywords flap: N full scans (default 3) of the real tree in ../shared/data, each with another
# PYTHONHASHSEED, compared identity by identity (line numbers, ages and profile counts left out, as prci's identity
# does). Prints each keyword whose count of some identity differs between the scans, then the keywords prci takes
# without a confirming rescan (findings::BUILTIN_DETERMINISTIC) with how many identities they had. BENCHMARKS.md
# gives a run. Usage: prci-tests/scripts/scan-determinism.sh [RUNS] [WORKDIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
runs=${1:-3}
dir=${2:-$(mktemp -d)}
venv=${PRCI_TOOLS_VENV:-$root/.tools/venv}
mkdir -p "$dir/tree"
tar -xJf "$(ls "$root"/../shared/data/portage-stable-*.tar.xz | head -n 1)" -C "$dir/tree" --strip-components=1
"$venv/bin/pmaint" regen -t 2 "$dir/tree" >"$dir/regen.log" 2>&1
files=()
for i in $(seq 1 "$runs"); do
    start=$(date +%s)
    PYTHONHASHSEED=$i "$venv/bin/pkgcheck" scan --config no --cache-dir "$dir/cache$i" --cache=-git -j 2 -R JsonStream \
        -r "$dir/tree" --checks=-MetadataVarCheck >"$dir/scan$i.json" 2>"$dir/scan$i.err"
    echo "scan $i: $(wc -l <"$dir/scan$i.json") findings in $(($(date +%s) - start)) s"
    files+=("$dir/scan$i.json")
done
deterministic=$(sed -n '/^pub const BUILTIN_DETERMINISTIC/,/^];/p' "$root/shared/findings/src/lib.rs" | grep -o '"[A-Za-z]*"' | tr -d '"' | tr '\n' ' ')
python3 - "$deterministic" "${files[@]}" <<'PY'
import collections, json, sys
VOLATILE = {"lineno", "lines", "line", "age", "num_profiles", "year"}
def identity(f):
    return json.dumps({k: v for k, v in f.items() if k not in VOLATILE and not k.endswith("_line")}, sort_keys=True)
runs = []
for path in sys.argv[2:]:
    c = collections.Counter()
    for line in open(path):
        try:
            c[identity(json.loads(line))] += 1
        except ValueError:
            pass
    runs.append(c)
total, differing = collections.Counter(), collections.Counter()
for key in set().union(*runs):
    cls = json.loads(key)["__class__"]
    total[cls] += 1
    if len({r.get(key, 0) for r in runs}) > 1:
        differing[cls] += 1
print(f"{sum(total.values())} identities, {sum(differing.values())} differ between the scans")
for cls, n in differing.most_common():
    print(f"  flaps: {cls}: {n} of {total[cls]} identities")
for cls in sys.argv[1].split():
    print(f"  taken without a rescan: {cls}: {total.get(cls, 0)} identities, {differing.get(cls, 0)} differ")
PY
