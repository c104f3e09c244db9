#!/usr/bin/env bash
# Try the compose stack for real on this Docker engine (no registry needed) and check what it does:
#   1. the images (.ci/stack-images.sh BIN_DIR), a test repository with three pull requests (make-repo.sh) served by
#      a `forge` container over git:// (forge.yaml);
#   2. `up -d`; every pull request gets its report (1 pass, 2 fail, 3 pass), made in the sandbox (bubblewrap), and the
#      hostile one (3) wrote nothing outside its sandbox;
#   2b. compose/github.yaml: the forge's secrets reach the publisher (and not the checker) as compose secrets;
#   3. `up -d --scale checker=3`: three checkers consume, a new pull request is reported;
#   4. Prometheus scrapes every stage (one target per container) and RabbitMQ, has the alert rules, and sees work done
#      by each of the five stages;
#   4b. `docker kill` of the checker holding a (slow on purpose: slow-checker.yaml) scan: another checker redoes it,
#      the report comes, one verdict;
#   4c. `restart rabbitmq` while a checker holds a slow scan and another pull request is in flight: both reported;
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
source compose/test/lib.sh "$@"

prepare

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

# The GitHub override's secrets: the poller and the publisher (uid 1000) read the files compose mounts, nobody else
# gets them. (The forge itself is tested against a fake GitHub in prci-tests/tests/github.rs.)
secrets=$(mktemp -d)
printf 'not-a-real-token\n' >"$secrets/github-token"
printf 'not-a-real-secret\n' >"$secrets/github-webhook-secret"
chown 1000 "$secrets"/* && chmod 0440 "$secrets"/*
GDC="$DC -f compose/github.yaml"
export PRCI_SECRETS_DIR=$secrets GITHUB_REPOSITORY=test/repo
seen=$($GDC run --rm --no-deps --entrypoint cat publisher /run/secrets/github-token 2>/dev/null || true)
unseen=$($GDC run --rm --no-deps --user 1000 --entrypoint sh checker -c 'ls /run/secrets 2>&1' 2>/dev/null || true)
[ "$seen" = not-a-real-token ] && ok "github.yaml: the publisher reads its token from a compose secret" \
    || bad "github.yaml: the publisher read '$seen' from /run/secrets/github-token"
grep -q "No such file" <<<"$unseen" && ok "github.yaml: the checker gets no forge secret" || bad "github.yaml: the checker sees $unseen"
unset PRCI_SECRETS_DIR GITHUB_REPOSITORY
rm -rf "$secrets"

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
# Every dashboard panel's query has data in the stack's Prometheus (the GitHub budget only on a GitHub forge, checked
# against the fake in github.rs); each is asked again for up to a minute, since a rate needs two scrapes.
empty=0
while IFS=$'\t' read -r file panel _ expr; do
    case "$expr" in *prci_github_*) continue ;; esac
    got=0
    for _ in $(seq 1 30); do
        [ -n "$(promql "$expr" | head -n 1)" ] && { got=1; break; }
        sleep 2
    done
    [ "$got" = 1 ] || { bad "dashboard $file, panel \"$panel\": no data for $expr"; empty=$((empty + 1)); }
done < <(python3 prci-tests/fixtures/check_dashboards.py dashboards --list-queries)
[ "$empty" = 0 ] && ok "every dashboard query (but the GitHub budget's) has data in the stack's Prometheus"
# Every alert rule Prometheus loaded reads series that exist (a healthy stack fires none of them, so what is asked is
# that each metric an expression names has data here; the GitHub budget's only on a GitHub forge, as above).
missing=0
while IFS=$'\t' read -r alert name; do
    [ -n "$(promql "count($name)" | head -n 1)" ] || { bad "alert $alert: no series of $name"; missing=$((missing + 1)); }
done < <(curl -sf "$PROM/api/v1/rules" | python3 -c '
import json, re, sys
for g in json.load(sys.stdin)["data"]["groups"]:
    for r in g["rules"]:
        for m in sorted(set(re.findall(r"\b(prci_[a-z_]+)", r["query"]))):
            if not m.startswith("prci_github_"):
                print(r["name"], m, sep="\t")')
[ "$missing" = 0 ] && ok "every metric the alert rules read (but the GitHub budget's) has series in the stack's Prometheus"

# ---------------------------------------------------------------- 4b. docker kill of a checker mid-scan
# The checkers get slow-pkgcheck (slow-checker.yaml): a scan of a tree holding sys-test/slowscan/files/slow first
# sleeps 25.5 s. The checker holding pull request 7's scan is killed in that sleep; the broker redelivers the message
# to another checker, which does the whole scan again.
SDC="$DC -f compose/test/slow-checker.yaml"
$SDC up -d --scale checker=3 2>&1 | grep -v -e '^Creating' -e '^Recreating' -e 'is up-to-date' >&2 || true
add_slow_pr() { # N: a pull request adding sys-test/slowscan, slow to scan
    local n=$1
    (
        cd "$WORK/work"
        export GIT_AUTHOR_NAME=Test GIT_AUTHOR_EMAIL=test@example.com GIT_COMMITTER_NAME=Test GIT_COMMITTER_EMAIL=test@example.com
        git checkout --quiet -b "pr$n" master
        mkdir -p sys-test/slowscan/files
        cp sys-test/seed/metadata.xml sys-test/slowscan/
        sed "s/seed/slowscan/g" sys-test/seed/seed-1.0.ebuild >sys-test/slowscan/slowscan-1.0.ebuild
        echo "slow-pkgcheck sleeps on trees holding this file (pull request $n)" >sys-test/slowscan/files/slow
        git add -A && git commit --quiet -m "sys-test/slowscan: new package (slow to scan, $n)"
        git update-ref "refs/pull/$n/head" HEAD
        git checkout --quiet master && git branch --quiet -D "pr$n"
        git -C "$WORK/git/repo.git" fetch --quiet "$WORK/work" "refs/pull/$n/head:refs/pull/$n/head"
    )
}
checkers() { docker ps -q --filter "label=com.docker.compose.project=$PROJECT" --filter label=com.docker.compose.service=checker; }
# The checker container running a slow scan (its `sleep 25.5`), empty until one does; waits up to TIMEOUT s.
sleeping_checker() {
    for _ in $(seq 1 "$TIMEOUT"); do
        for c in $(checkers); do
            # (docker top needs a PID column in what it asks ps for)
            docker top "$c" -eo pid,args 2>/dev/null | grep -Eq '^ *[0-9]+ +/usr/bin/sleep 25.5' && { echo "$c"; return 0; }
        done
        sleep 1
    done
    return 1
}
add_pr_verdicts() { $DC logs --no-color differ 2>&1 | grep -c "verdict revision=gentoo#$1@" || true; }
add_slow_pr 7
if victim=$(sleeping_checker); then
    victim_name=$(docker inspect -f '{{.Name}}' "$victim")
    docker kill "$victim" >/dev/null
    if waited=$(wait_report 7); then
        verdict=$(report 7 | field 'd["verdict"]')
        if [ -n "$verdict" ] && [ "$verdict" != error ]; then
            ok "docker kill of ${victim_name#/} mid-scan: pull request 7 reported ($verdict) ${waited} s later by another checker"
        else
            bad "docker kill mid-scan: pull request 7's verdict $verdict"
        fi
    else
        bad "docker kill of ${victim_name#/} mid-scan: no report for pull request 7 within $TIMEOUT s"
        $DC logs --no-color --tail=20 checker >&2
    fi
    sleep 5
    n=$(add_pr_verdicts 7)
    [ "$n" = 1 ] && ok "pull request 7: one verdict after the kill" || bad "pull request 7: $n verdicts after the kill"
else
    bad "no checker ever held pull request 7's slow scan"; $DC logs --no-color --tail=30 checker >&2
fi

# ---------------------------------------------------------------- 4c. the broker restarted mid-run
# Pull request 8's slow scan is in a checker's hands and pull request 9 is queued or in flight when RabbitMQ restarts:
# every consumer reconnects, the unacknowledged messages come back (durable quorum queues), both are reported.
add_slow_pr 8
if sleeping_checker >/dev/null; then
    add_pr 9
    t_restart=$(now)
    $DC restart rabbitmq >/dev/null 2>&1
    log "rabbitmq restarted in $(since "$t_restart") s"
    for pr in 8 9; do
        if waited=$(wait_report "$pr"); then
            ok "restart rabbitmq mid-run: pull request $pr reported ($(report "$pr" | field 'd["verdict"]')) ${waited} s after the restart"
        else
            bad "restart rabbitmq mid-run: no report for pull request $pr within $TIMEOUT s"; $DC logs --no-color --tail=20 >&2
        fi
    done
else
    bad "no checker ever held pull request 8's slow scan"
fi
# Back to the stack's own checkers (the killed one comes back too).
$DC up -d --scale checker=3 2>&1 | grep -v -e '^Creating' -e '^Recreating' -e 'is up-to-date' >&2 || true

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
