#!/usr/bin/env bash
# What compose/test/stack-test.sh and compose/test/stack-bench.sh share: the ports and names of the test stack (every
# one prcistack* / prciworker* / prcitest-worker), the compose commands, Prometheus queries, the test repository's
# pull requests and their reports. Sourced with BIN_DIR and WORK_DIR as $1 and $2, from the repository's root.
BIN_DIR=${1:?usage: $0 BIN_DIR [WORK_DIR]}
WORK=${2:-/tmp/prci-stack-test}
PROJECT=prcistack
WORKER_PROJECT=prciworker
NET=prcitest-worker
SUBNET=${PRCI_TEST_SUBNET:-172.31.250.0/24}
GATEWAY=${SUBNET%.*}.1
TIMEOUT=${PRCI_TEST_TIMEOUT:-300}

export PRCI_BIND=$GATEWAY PRCI_BROKER_PORT=35672 PRCI_RABBITMQ_UI_PORT=35673 PRCI_TREES_PORT=39418 \
    PRCI_TEST_FORGE_PORT=39419 PRCI_PROMETHEUS_PORT=39090 PRCI_REPORTS_PORT=38080 \
    PRCI_REPORTS_URL=http://$GATEWAY:38080/ PRCI_TEST_GIT_DIR=$WORK/git REPOSITORY_URL=git://forge/repo.git \
    PRCI_TEST_WORKER_NET=$NET
DC="docker-compose -p $PROJECT -f compose/compose.yaml -f compose/test/forge.yaml"
WDC="docker-compose -p $WORKER_PROJECT -f compose/worker.yaml -f compose/test/worker-net.yaml"
PROM=http://$GATEWAY:$PRCI_PROMETHEUS_PORT
REPORTS=http://$GATEWAY:$PRCI_REPORTS_PORT

passed=0
failed=0
log() { printf 'stack-test: %s\n' "$*" >&2; }
ok() { passed=$((passed + 1)); log "ok: $*"; }
bad() { failed=$((failed + 1)); log "FAILED: $*"; }
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }
# promql EXPR: the query's result as JSON lines {"metric": ..., "value": ...}
promql() {
    curl -sf --data-urlencode "query=$1" "$PROM/api/v1/query" \
        | python3 -c 'import json,sys; [print(json.dumps({"metric": r["metric"], "value": float(r["value"][1])})) for r in json.load(sys.stdin)["data"]["result"]]'
}
# prom_value EXPR: the single value of a query that gives one series (0 when none)
prom_value() { promql "$1" | python3 -c 'import json,sys; v=[json.loads(l)["value"] for l in sys.stdin]; print(int(sum(v)) if v else 0)'; }
# report PR: the report document of refs/pull/PR/head's current commit, empty until it is written
report() {
    local sha
    sha=$(git -C "$WORK/git/repo.git" rev-parse "refs/pull/$1/head")
    curl -sf "$REPORTS/$1/$sha.json" 2>/dev/null || true
}
wait_report() { # PR: seconds waited, or fails after TIMEOUT
    local start
    start=$(now)
    for _ in $(seq 1 "$TIMEOUT"); do
        [ -n "$(report "$1")" ] && { since "$start"; return 0; }
        sleep 1
    done
    return 1
}
field() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {}, {"d": d}))' "$1"; }
add_pr() { # N: a pull request adding sys-test/extraN, pushed to the forge's repository
    local n=$1
    (
        cd "$WORK/work"
        export GIT_AUTHOR_NAME=Test GIT_AUTHOR_EMAIL=test@example.com GIT_COMMITTER_NAME=Test GIT_COMMITTER_EMAIL=test@example.com
        git checkout --quiet -b "pr$n" master
        mkdir -p "sys-test/extra$n"
        cp sys-test/seed/metadata.xml "sys-test/extra$n/"
        sed "s/seed/extra$n/g" sys-test/seed/seed-1.0.ebuild >"sys-test/extra$n/extra$n-1.0.ebuild"
        git add -A && git commit --quiet -m "sys-test/extra$n: new package"
        git update-ref "refs/pull/$n/head" HEAD
        git checkout --quiet master && git branch --quiet -D "pr$n"
        git -C "$WORK/git/repo.git" fetch --quiet "$WORK/work" "refs/pull/$n/head:refs/pull/$n/head"
    )
}

# prepare: the images, the test repository, the worker network, and no stack left from a previous run.
prepare() {
    local t_images
    t_images=$(now)
    bash .ci/stack-images.sh "$BIN_DIR"
    log "images ready in $(since "$t_images") s"
    bash compose/test/make-repo.sh "$WORK" >/dev/null
    docker network inspect "$NET" >/dev/null 2>&1 || docker network create --subnet "$SUBNET" "$NET" >/dev/null
    $WDC down --remove-orphans >/dev/null 2>&1 || true
    if [ "${PRCI_TEST_KEEP_VOLUMES:-0}" = 1 ]; then
        $DC down --remove-orphans >/dev/null 2>&1 || true
    else
        $DC down -v --remove-orphans >/dev/null 2>&1 || true
    fi
}
