#!/usr/bin/env bash
# The end-to-end figure of the compose stack (BENCHMARKS.md): detect → published latency (p50, p95) of one-package
# pull requests with 1 and then 2 checkers, and the CPU seconds each pull request cost, all read from the stack's
# Prometheus (the publisher's prci_end_to_end_latency_seconds histogram, every process's CPU counters), never from a
# stopwatch. A phase pushes BURST pull requests at once, so they queue: the latency is what a contributor sees when
# several pull requests arrive together, and the second checker shows in it.
# The repository is the real tree of ../shared/data (make-real-repo.sh: 1,243 real ebuilds, md5-cache not committed)
# and each pull request a revision bump of one real package; REAL=0 takes the stack test's synthetic repository
# instead (each pull request a new synthetic package).
# Usage: compose/test/stack-bench.sh BIN_DIR [WORK_DIR]    (BURST=8 by default; PRCI_TEST_TIMEOUT per report, 300 s)
# Prints one line per phase: checkers, pull requests, p50 s, p95 s, CPU s per pull request (prci processes and the
# tools they ran).
set -euo pipefail
cd "$(dirname "$0")/../.."
source compose/test/lib.sh "$@"
BURST=${BURST:-8}
REAL=${REAL:-1}

# add_real_pr N: a pull request bumping the revision of one real package (its newest ebuild copied as -r(100+N)),
# a different package for each N.
add_real_pr() {
    local n=$1
    (
        cd "$WORK/work"
        export GIT_AUTHOR_NAME=Test GIT_AUTHOR_EMAIL=test@example.com GIT_COMMITTER_NAME=Test GIT_COMMITTER_EMAIL=test@example.com
        mapfile -t packages < <(git ls-files '*.ebuild' | xargs -n 1 dirname | sort -u)
        local pkg=${packages[$(((n * 37) % ${#packages[@]}))]}
        local newest
        newest=$(ls "$pkg"/*.ebuild | sort -V | tail -n 1)
        git checkout --quiet -b "pr$n" master
        cp "$newest" "$(echo "$newest" | sed -E 's/(-r[0-9]+)?\.ebuild$//')-r$((100 + n)).ebuild"
        git add -A && git commit --quiet -m "$pkg: revision bump ($n)"
        git update-ref "refs/pull/$n/head" HEAD
        git checkout --quiet master && git branch --quiet -D "pr$n"
        git -C "$WORK/git/repo.git" fetch --quiet "$WORK/work" "refs/pull/$n/head:refs/pull/$n/head"
    )
}
push_pr() { if [ "$REAL" = 1 ]; then add_real_pr "$1"; else add_pr "$1"; fi; }

prepare
if [ "$REAL" = 1 ]; then
    bash compose/test/make-real-repo.sh "$WORK" >&2
    for pr in 1 2 3; do add_real_pr "$pr"; done
fi
$DC up -d 2>&1 | grep -v '^Creating' >&2 || true
# Warm-up: both trees regenerated whole and the base scanned once and cached, the tools' servers started, before
# anything is measured.
for pr in 1 2 3; do wait_report "$pr" >/dev/null || { log "no report for pull request $pr"; exit 1; }; done
log "warm-up done: pull requests 1-3 reported"

# The end-to-end histogram's cumulative buckets, summed over the publishers: "le count" lines.
buckets() {
    promql 'sum by (le) (prci_end_to_end_latency_seconds_bucket{job="prci"})' \
        | python3 -c 'import json,sys; [print(r["metric"]["le"], r["value"]) for r in map(json.loads, sys.stdin)]'
}
# CPU seconds used so far by every prci process and the tool runs it waited for.
cpu() { promql 'sum(prci_process_cpu_seconds_total{job="prci"}) + sum(prci_tool_cpu_seconds_total{job="prci"})' \
    | python3 -c 'import json,sys; v=[json.loads(l)["value"] for l in sys.stdin]; assert v, "no CPU series"; print(sum(v))'; }
# QUANTILE BEFORE AFTER: the quantile of what was observed between two bucket snapshots, interpolated within a bucket
# the way histogram_quantile does.
quantile() {
    python3 - "$@" <<'EOF'
import math, sys
q, before, after = float(sys.argv[1]), sys.argv[2], sys.argv[3]
def parse(text):
    return {float(le): float(n) for le, n in (line.split() for line in text.strip().splitlines())}
b, a = parse(before), parse(after)
les = sorted(a)
counts = [a[le] - b.get(le, 0.0) for le in les]
total = counts[-1]
if total <= 0:
    print("nan"); sys.exit()
rank, lower, below = q * total, 0.0, 0.0
for le, n in zip(les, counts):
    if n >= rank:
        if math.isinf(le):
            print(f"> {lower:g}"); sys.exit()
        print(f"{lower + (le - lower) * (rank - below) / max(n - below, 1e-9):.1f}"); sys.exit()
    lower, below = le, n
EOF
}
wait_consumers() { # N: until N checkers consume
    for _ in $(seq 1 90); do
        [ "$(prom_value 'sum(prci_consumer_up{job="prci",stage="checker"})')" = "$1" ] && return 0
        sleep 2
    done
    log "never $1 checkers consuming"; exit 1
}

next=10
printf '%-9s %-13s %-7s %-7s %s\n' checkers pull_requests p50_s p95_s cpu_s_per_pr
for checkers in 1 2; do
    $DC up -d --scale checker="$checkers" 2>&1 | grep -v -e '^Creating' -e 'is up-to-date' >&2 || true
    wait_consumers "$checkers"
    # A checker that just started clones the trees and fills its tool caches on its first job: one pull request per
    # checker first, not measured, so the phase measures checkers in their steady state.
    first=$next
    for _ in $(seq 1 "$checkers"); do push_pr "$next"; next=$((next + 1)); done
    for pr in $(seq "$first" $((next - 1))); do wait_report "$pr" >/dev/null || { log "no report for pull request $pr"; exit 1; }; done
    sleep 16 # a scrape after the last work
    before=$(buckets)
    cpu_before=$(cpu)
    first=$next
    for _ in $(seq 1 "$BURST"); do push_pr "$next"; next=$((next + 1)); done
    for pr in $(seq "$first" $((next - 1))); do wait_report "$pr" >/dev/null || { log "no report for pull request $pr"; exit 1; }; done
    sleep 16
    after=$(buckets)
    cpu_after=$(cpu)
    per_pr=$(python3 -c "import sys; print(f'{(float(sys.argv[2]) - float(sys.argv[1])) / int(sys.argv[3]):.1f}')" "$cpu_before" "$cpu_after" "$BURST")
    printf '%-9s %-13s %-7s %-7s %s\n' "$checkers" "$BURST" "$(quantile 0.5 "$before" "$after")" \
        "$(quantile 0.95 "$before" "$after")" "$per_pr"
done
$DC down >/dev/null 2>&1
