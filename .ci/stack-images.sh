#!/usr/bin/env bash
# Build the images of the compose stack (compose/compose.yaml) on a Docker engine that can pull nothing:
#   prci-base:bookworm      debootstrap --variant=minbase of Debian bookworm, `docker import`ed (no registry needed)
#   prci:latest             compose/Dockerfile: the five stages, git, bubblewrap, the pinned QA tools in a venv
#   prci-rabbitmq:latest    compose/rabbitmq/Dockerfile: Debian's rabbitmq-server, management + prometheus plugins
#   prci-prometheus:latest  compose/prometheus.Dockerfile: Debian's prometheus, compose/prometheus/ copied in
# Build-time downloads come only from Debian's package mirror (apt, in the builds) and PyPI (the wheels of the pins
# of .ci/install-tools, downloaded by this host's pip and copied into the build context).
#
# Usage: .ci/stack-images.sh BIN_DIR    (BIN_DIR: prci, poller, regen, checker, differ, publisher, built for
#                                        bookworm's glibc, e.g. target/release)
# Idempotent and cached: every image is also tagged with a hash of its inputs (Dockerfile, build context, the
# image it starts from); an image whose inputs did not change is not rebuilt. The debootstrap tarball is kept in
# $PRCI_STACK_CACHE (default /var/cache/prci-stack), so even a pruned engine gets its base back in seconds.
# PRCI_STACK_REBUILD=1 rebuilds everything (the tarball too).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN_DIR=${1:?usage: .ci/stack-images.sh BIN_DIR (the directory holding prci, poller, regen, checker, differ, publisher)}
BIN_DIR=$(cd "$BIN_DIR" && pwd)
CACHE=${PRCI_STACK_CACHE:-/var/cache/prci-stack}
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
BINARIES="prci poller regen checker differ publisher"
REBUILD=${PRCI_STACK_REBUILD:-0}
export DOCKER_BUILDKIT=0 # the classic builder: no BuildKit/buildx on Debian's docker.io 20.10, and it uses local images

log() { printf 'stack-images: %s\n' "$*" >&2; }
hash_of() { sha256sum | cut -c1-16; }
# The label an image was tagged with, empty when there is no such image.
label_of() { docker image inspect --format "{{ index .Config.Labels \"org.prci.inputs\" }}" "$1" 2>/dev/null || true; }

for b in $BINARIES; do
    [ -x "$BIN_DIR/$b" ] || { log "$BIN_DIR/$b: missing or not executable"; exit 2; }
done
command -v docker >/dev/null || { log "docker: not found"; exit 2; }
mkdir -p "$CACHE"

# ---------------------------------------------------------------- prci-base:bookworm (debootstrap + docker import)
# What the base is made of; change BASE_RECIPE's version to force a new base.
BASE_RECIPE="v2 debootstrap --variant=minbase $SUITE $MIRROR security=$SECURITY_MIRROR"
BASE_HASH=$(printf '%s' "$BASE_RECIPE" | hash_of)
TARBALL="$CACHE/base-$SUITE-minbase-$BASE_HASH.tar"
make_tarball() {
    command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
    local dir
    dir=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    # shellcheck disable=SC2064
    trap "rm -rf '$dir'" EXIT
    log "debootstrap --variant=minbase $SUITE (a few minutes, once)"
    debootstrap --variant=minbase "$SUITE" "$dir" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
        || { tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
    # Like Debian's own container images: security updates, no recommends, no docs/man pages/locales,
    # no package lists or .debs kept in layers, and no service started by a package's postinst.
    cat >"$dir/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
EOF
    cat >"$dir/etc/apt/apt.conf.d/90prci-container" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    cat >"$dir/etc/dpkg/dpkg.cfg.d/90prci-nodoc" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
    printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
    chmod 755 "$dir/usr/sbin/policy-rc.d"
    find "$dir/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
    find "$dir/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
    rm -rf "$dir"/usr/share/man/* "$dir"/usr/share/info/* "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/archives/*.deb \
        "$dir"/var/log/*.log "$dir"/var/log/apt/* "$dir"/tmp/* "$dir"/etc/hostname "$dir"/etc/resolv.conf
    tar --numeric-owner -C "$dir" -cf "$TARBALL.part" .
    mv "$TARBALL.part" "$TARBALL"
    rm -rf "$dir"
    trap - EXIT
}
if [ "$REBUILD" = 1 ] || [ "$(label_of prci-base:$SUITE)" != "$BASE_HASH" ]; then
    if [ "$REBUILD" = 1 ] || [ ! -s "$TARBALL" ]; then
        make_tarball
    fi
    log "docker import prci-base:$SUITE from $TARBALL"
    docker import --change "LABEL org.prci.inputs=$BASE_HASH" --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["/bin/bash"]' "$TARBALL" "prci-base:$SUITE" >/dev/null
else
    log "prci-base:$SUITE is up to date ($BASE_HASH)"
fi
BASE_ID=$(docker image inspect --format '{{.Id}}' "prci-base:$SUITE")

# ---------------------------------------------------------------- the other images (docker build, input-hashed)
# build NAME DOCKERFILE CONTEXT_DIR: tag NAME:latest and NAME:<hash of the base, Dockerfile and context>.
build() {
    local name=$1 dockerfile=$2 context=$3 hash
    hash=$( {
        echo "$BASE_ID"
        sha256sum <"$dockerfile"
        (cd "$context" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum)
    } | hash_of)
    if [ "$REBUILD" != 1 ] && [ "$(label_of "$name:$hash")" = "$hash" ]; then
        docker tag "$name:$hash" "$name:latest"
        log "$name is up to date ($hash)"
        return
    fi
    log "docker build $name ($hash)"
    local start=$SECONDS
    if ! docker build --label "org.prci.inputs=$hash" -f "$dockerfile" -t "$name:$hash" -t "$name:latest" "$context" \
        >"$CACHE/build-$name.log" 2>&1; then
        tail -40 "$CACHE/build-$name.log" >&2
        log "docker build $name failed (whole output: $CACHE/build-$name.log)"
        exit 1
    fi
    log "$name built in $((SECONDS - start)) s"
    # Old tags of this image (other hashes) are dropped; their layers go when no container uses them.
    docker image ls --format '{{.Repository}}:{{.Tag}}' "$name" | grep -v -e ":latest\$" -e ":$hash\$" | xargs -r docker rmi >/dev/null 2>&1 || true
}

# prci: the build context is staged in the cache (the binaries, the tool pins from .ci/install-tools, their wheels).
CTX="$CACHE/context-prci"
rm -rf "$CTX"
mkdir -p "$CTX/bin"
# Debug info stripped (symbols kept, for backtraces): about a third of each binary.
for b in $BINARIES; do
    if command -v strip >/dev/null; then
        strip --strip-debug -o "$CTX/bin/$b" "$BIN_DIR/$b"
    else
        cp "$BIN_DIR/$b" "$CTX/bin/$b"
    fi
done
cp compose/prci-unmask-proc "$CTX/bin/"
# One source of truth for the QA tools' versions: the PINS line of .ci/install-tools, one requirement a line.
PINS=$(sed -n 's/^PINS="\(.*\)"$/\1/p' .ci/install-tools)
[ -n "$PINS" ] || { log ".ci/install-tools: no PINS=\"...\" line"; exit 2; }
printf '%s\n' $PINS >"$CTX/requirements.txt"
# The wheels, downloaded on this host (whose pip is set up for the PyPI it reaches; a build container may not trust
# the same TLS path) for bookworm's CPython 3.11 on x86_64, kept per set of pins: a rebuild downloads nothing.
WHEELS="$CACHE/wheels-$(hash_of <"$CTX/requirements.txt")"
if [ ! -f "$WHEELS/.complete" ]; then
    log "downloading the QA tools' wheels ($PINS) into $WHEELS"
    rm -rf "$WHEELS"
    platforms=""
    for v in 36 35 34 33 32 31 30 29 28 27 26 25 24 23 22 21 20 19 18 17 12 5; do
        platforms="$platforms --platform manylinux_2_${v}_x86_64"
    done
    # shellcheck disable=SC2086
    python3 -m pip download --quiet --disable-pip-version-check --only-binary=:all: --python-version 3.11 \
        --implementation cp $platforms --platform manylinux2014_x86_64 --platform manylinux2010_x86_64 \
        --platform manylinux1_x86_64 -d "$WHEELS" -r "$CTX/requirements.txt"
    touch "$WHEELS/.complete"
fi
mkdir -p "$CTX/wheels"
cp "$WHEELS"/*.whl "$CTX/wheels/"
build prci "$ROOT/compose/Dockerfile" "$CTX"

build prci-rabbitmq "$ROOT/compose/rabbitmq/Dockerfile" "$ROOT/compose/rabbitmq"

PCTX="$CACHE/context-prometheus"
rm -rf "$PCTX"
mkdir -p "$PCTX"
cp "$ROOT"/compose/prometheus/prometheus.yml "$ROOT"/compose/prometheus/alerts.yml "$PCTX/"
build prci-prometheus "$ROOT/compose/prometheus.Dockerfile" "$PCTX"

docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E '^prci(-base|-rabbitmq|-prometheus)?:(latest|bookworm) ' >&2
