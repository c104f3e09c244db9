#!/usr/bin/env bash
# Try the compose stack for real on this Docker engine (no registry needed) and check what it does:
#   1. the images (.ci/stack-images.sh BIN_DIR), a test repository with three pull requests (make-repo.sh) served by
#      a `forge` container over git:// (forge.yaml);
#   2. `up -d`; every pull request gets its report (1 pass, 2 fail, 3 pass), made in the sandbox (bubblewrap), and the
#      hostile one (3) wrote nothing outside its sandbox;
#   3. `up -d --scale checker=3`: three checkers consume, a new pull request is reported;
#   4. Prometheus scrapes every stage (one target per container) and RabbitMQ, has the alert rules, and sees work done
#      by each of the five stages;
#   5. a worker-only project (worker.yaml) on a network of its own, reaching the broker, the trees remote and the
#      forge by the published ports only, does the regen and checker work of a new pull request while the stack's own
#      regen and checker are stopped;
#   6. `stop regen` while it regenerates a slow pull request waits for it: the report comes, nothing is done twice;
#   7. `down` (volumes kept): the reports are still in the reports volume.
# Usage: compose/test/stack-test.sh BIN_DIR [WORK_DIR]   (WORK_DIR: the test repository, default /tmp/prci-stack-test)
# PRCI_TEST_KEEP_VOLUMES=1 starts from the volumes of a previous run (default: removed first, for a cold start).
# Everything it starts is named prcistack* / prciworker* / prcitest-worker; containers only address containers and
# networks it started itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN_DIR=${1:?usage: compose/test/stack-test.sh BIN_DIR [WORK_DIR]}
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

# ---------------------------------------------------------------- 2. up, the first reports
t_up=$(now)
$DC up -d 2>&1 | grep -v '^Creating' >&2 || true
log "docker-compose up -d returned after $(since "$t_up") s"
if t=$(wait_report 1); then
    ok "first report (pull request 1) $(since "$t_up") s after up"
else
    bad "no report for pull request 1 within $TIMEOUT s"; $DC logs --no-color --tail=30 >&2
fi
for pr in 2 3; do wait_report "$pr" >/dev/null || bad "no report for pull request $pr"; done
log "reports 1-3 written $(since "$t_up") s after up"
for expect in "1 pass" "2 fail" "3 pass"; do
    set -- $expect
    doc=$(report "$1")
    [ -n "$doc" ] || continue
    verdict=$(field 'd["verdict"]' <<<"$doc")
    sandbox=$(field 'd["tools"]["sandbox"]' <<<"$doc")
    if [ "$verdict" = "$2" ] && [ "$sandbox" = bubblewrap ]; then
        ok "pull request $1: $verdict, tools run in $sandbox"
    else
        bad "pull request $1: verdict $verdict (expected $2), sandbox $sandbox: $(field 'd["reason"]' <<<"$doc")"
    fi
done
[ "$(report 2 | field '[f["__class__"] for f in d["new"]]')" = "['UnknownLicense']" ] \
    && ok "pull request 2's new finding is UnknownLicense" || bad "pull request 2: new findings $(report 2 | field 'd["new"]')"
escaped=$(for s in regen checker publisher trees; do
    docker exec "${PROJECT}_${s}_1" sh -c 'find / -xdev -name pwned 2>/dev/null' || true
done)
[ -z "$escaped" ] && ok "the hostile pull request wrote nothing outside its sandbox" || bad "files written by the hostile pull request: $escaped"

# ---------------------------------------------------------------- 3. three checkers
$DC up -d --scale checker=3 2>&1 | grep -v -e '^Creating' -e 'is up-to-date' >&2 || true
consuming=0
for _ in $(seq 1 90); do
    consuming=$(prom_value 'sum(prci_consumer_up{job="prci",stage="checker"})')
    [ "$consuming" = 3 ] && break
    sleep 2
done
[ "$consuming" = 3 ] && ok "--scale checker=3: three checkers consume (prci_consumer_up, scraped by Prometheus)" \
    || bad "--scale checker=3: $consuming checkers consume"
add_pr 4
if t=$(wait_report 4); then ok "pull request 4 reported ${t} s after its push, with three checkers"; else bad "no report for pull request 4"; fi

# ---------------------------------------------------------------- 4. Prometheus
sleep 16 # one more scrape after the last report
for svc in poller regen differ publisher; do
    n=$(prom_value "count(up{job=\"prci\",service=\"$svc\"} == 1)")
    [ "$n" -ge 1 ] && ok "Prometheus scrapes $svc ($n target(s) up)" || bad "Prometheus: no $svc target up"
done
n=$(prom_value 'count(up{job="prci",service="checker"} == 1)')
[ "$n" = 3 ] && ok "Prometheus scrapes the 3 checkers, one target each" || bad "Prometheus: $n checker targets up"
[ "$(prom_value 'up{job="rabbitmq"}')" = 1 ] && ok "Prometheus scrapes rabbitmq:15692" || bad "Prometheus: rabbitmq not up"
rules=$(curl -sf "$PROM/api/v1/rules" | python3 -c 'import json,sys; print(sum(len(g["rules"]) for g in json.load(sys.stdin)["data"]["groups"]))')
[ "$rules" -gt 0 ] && ok "Prometheus has the alert rules ($rules)" || bad "Prometheus: no rules loaded"
for stage in regen checker differ publisher; do
    n=$(prom_value "sum(prci_messages_completed_total{job=\"prci\",stage=\"$stage\",outcome=\"ok\"})")
    [ "$n" -ge 4 ] && ok "Prometheus: $stage completed $n messages" || bad "Prometheus: $stage completed $n messages"
done
n=$(prom_value 'sum(prci_revisions_emitted_total{job="prci"})')
[ "$n" -ge 4 ] && ok "Prometheus: the poller emitted $n revisions" || bad "Prometheus: the poller emitted $n revisions"
n=$(prom_value 'sum(prci_end_to_end_latency_seconds_count{job="prci"})')
[ "$n" -ge 4 ] && ok "Prometheus: $n end-to-end latencies observed" || bad "Prometheus: $n end-to-end latencies"

# ---------------------------------------------------------------- 5. a worker-only project
$DC stop regen checker >/dev/null 2>&1
BROKER_URL=amqp://prci:prci@$GATEWAY:$PRCI_BROKER_PORT/%2f TREES_URL=git://$GATEWAY:$PRCI_TREES_PORT/trees.git \
    REPOSITORY_URL=git://$GATEWAY:$PRCI_TEST_FORGE_PORT/repo.git $WDC up -d --scale checker=2 2>&1 | grep -v '^Creating' >&2 || true
add_pr 5
if t=$(wait_report 5); then
    worker_log=$(BROKER_URL=x TREES_URL=x REPOSITORY_URL=x $WDC logs --no-color checker 2>&1 || true)
    if grep -q "repo pass" <<<"$worker_log"; then
        ok "pull request 5 reported ${t} s after its push, checked by the worker project (the stack's regen and checker stopped)"
    else
        bad "pull request 5 reported, but not by the worker project's checkers"
    fi
else
    bad "no report for pull request 5 from the worker project"
    BROKER_URL=x TREES_URL=x REPOSITORY_URL=x $WDC logs --no-color --tail=20 >&2
fi
BROKER_URL=x TREES_URL=x REPOSITORY_URL=x $WDC down >/dev/null 2>&1
$DC start regen checker >/dev/null 2>&1

# ---------------------------------------------------------------- 6. SIGTERM drains: `stop` waits for the message in hand
# Pull request 6's ebuild keeps bash busy for 40 s in global scope (no external command: pkgcore refuses those while
# sourcing), so regen holds its message that long; `stop regen` comes 15 s after the push.
(
    cd "$WORK/work"
    export GIT_AUTHOR_NAME=Test GIT_AUTHOR_EMAIL=test@example.com GIT_COMMITTER_NAME=Test GIT_COMMITTER_EMAIL=test@example.com
    git checkout --quiet -b pr6 master
    mkdir -p sys-test/slow
    cp sys-test/seed/metadata.xml sys-test/slow/
    { sed "s/seed/slow/g" sys-test/seed/seed-1.0.ebuild; printf '\nSECONDS=0\nwhile (( SECONDS < 40 )); do :; done\n'; } \
        >sys-test/slow/slow-1.0.ebuild
    git add -A && git commit --quiet -m "sys-test/slow: slow to source"
    git update-ref refs/pull/6/head HEAD
    git checkout --quiet master && git branch --quiet -D pr6
    git -C "$WORK/git/repo.git" fetch --quiet "$WORK/work" "refs/pull/6/head:refs/pull/6/head"
)
sleep 15
t_stop=$(now)
$DC stop regen >/dev/null 2>&1
took=$(since "$t_stop")
code=$(docker inspect -f '{{.State.ExitCode}}' "${PROJECT}_regen_1")
regen_log=$($DC logs --no-color regen 2>&1 || true)
# With regen stopped, the report can only come from the message it finished before it exited (the checker, differ
# and publisher go on).
if [ "$code" = 0 ] && grep -q "SIGTERM: draining" <<<"$regen_log" && waited=$(wait_report 6); then
    ok "stop regen mid-regen took ${took} s, exit 0: the message in hand was finished (report 6 written ${waited} s later)"
else
    bad "stop regen mid-regen: ${took} s, exit $code, report 6: $([ -n "$(report 6)" ] && echo written || echo missing)"
fi
$DC start regen >/dev/null 2>&1
sleep 10
n=$($DC logs --no-color differ 2>&1 | grep -c "verdict revision=gentoo#6@" || true)
[ "$n" = 1 ] && ok "pull request 6 was not done twice after the drain" || bad "pull request 6 got $n verdicts"

# ---------------------------------------------------------------- 7. down, volumes kept
t_down=$(now)
$DC down >/dev/null 2>&1
log "docker-compose down took $(since "$t_down") s"
kept=$(docker run --rm -v "${PROJECT}_reports:/r:ro" --entrypoint sh prci:latest -c 'ls /r/*/*.json | grep -vc rev.json' || echo 0)
[ "$kept" -ge 6 ] && ok "after down, the reports volume still holds $kept reports" || bad "after down: $kept reports in the volume"

log "$passed passed, $failed failed"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
