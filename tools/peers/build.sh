#!/usr/bin/env bash
# Builds the real peers that test/interop runs against, from the Go module proxy and Maven Central:
#   - telemetrygen (OTLP load generator, opentelemetry-collector-contrib/cmd/telemetrygen)
#   - a custom OpenTelemetry Collector from tools/peers/otelcol-builder.yaml (otlp receiver, kafka
#     receiver and exporter, span_metrics connector, prometheus/debug/nop/file exporters)
#   - Micrometer's OTLP registry (micrometer-registry-otlp, tools/peers/micrometer/pom.xml) driven by
#     tools/peers/micrometer/MicrometerPeer.java: the metrics a Spring Boot service exports over OTLP.
#
# usage: bash tools/peers/build.sh
#
# Idempotent: binaries go to ${PULLBACK_PEERS_DIR:-$HOME/.cache/pullback-peers}/<key>/bin, where <key>
# names the versions and a hash of the manifest; a binary already there is reused and not rebuilt.
# Nothing is written inside the repository.
#
# Output contract: progress and timings go to stderr; stdout carries exactly three lines,
#   TELEMETRYGEN_BIN=<absolute path>
#   OTELCOL_BIN=<absolute path>
#   MICROMETER_PEER=<absolute path of a launcher script; it needs `java` on PATH>
# and the same lines are written to <cache root>/peers.env, which test/interop reads when the
# variables are not set. Exits non-zero (with the failing step named) when a peer cannot be built.
#
# Why the Collector is not built by the builder itself: the builder's `go mod tidy` also resolves the
# test imports of every dependency. For some component sets one of those is not served by the proxy
# reachable here (issue 15); for this manifest it passed on 2026-12-01 but spent ~70 s and 1 GB of
# module cache on test-only modules. So the builder only generates the sources (--skip-get-modules
# --skip-compilation), `go get` pins the manifest's modules, and a plain `go build -mod=mod`
# compiles them, resolving only what the binary imports.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MANIFEST="$HERE/otelcol-builder.yaml"

BUILDER_VERSION=v0.165.0
# the newest telemetrygen the Go module proxy serves here (v0.165.1 is refused)
TELEMETRYGEN_VERSION=v0.161.0
BUILDER_MODULE=go.opentelemetry.io/collector/cmd/builder
TELEMETRYGEN_MODULE=github.com/open-telemetry/opentelemetry-collector-contrib/cmd/telemetrygen

# The go command as CI has it: this machine's own toolchain (no toolchain download), modules from the
# Go module proxy, no VCS stamping (the generated sources are not a repository).
export GOTOOLCHAIN=local
export GOFLAGS=-buildvcs=false
export GOPROXY=${GOPROXY:-https://proxy.golang.org,direct}

ROOT=${PULLBACK_PEERS_DIR:-$HOME/.cache/pullback-peers}
manifest_hash=$(sha256sum "$MANIFEST" | cut -c1-12)
KEY="otelcol-${BUILDER_VERSION}_telemetrygen-${TELEMETRYGEN_VERSION}_${manifest_hash}"
DIR="$ROOT/$KEY"
BIN="$DIR/bin"
mkdir -p "$BIN"

t0=$(date +%s)
log() { echo "[peers +$(( $(date +%s) - t0 ))s] $*" >&2; }
command -v go >/dev/null || { log "FAILED: no 'go' on PATH (Go 1.26 is needed)"; exit 1; }
log "go: $(go version); cache: $DIR"

# Installs a binary atomically: built into a scratch dir, then renamed, so an interrupted build never
# leaves a half-written binary that a later run would take as cached.
build_telemetrygen() {
  local out="$BIN/telemetrygen"
  if [ -x "$out" ]; then log "telemetrygen $TELEMETRYGEN_VERSION: cached"; return; fi
  local s; s=$(date +%s)
  log "telemetrygen $TELEMETRYGEN_VERSION: go install ..."
  local tmp; tmp=$(mktemp -d "$DIR/tg.XXXXXX")
  if ! GOBIN="$tmp" go install -trimpath -ldflags='-s -w' "$TELEMETRYGEN_MODULE@$TELEMETRYGEN_VERSION" >&2; then
    rm -rf "$tmp"; log "FAILED: go install telemetrygen@$TELEMETRYGEN_VERSION"; exit 1
  fi
  mv "$tmp/telemetrygen" "$out"; rm -rf "$tmp"
  log "telemetrygen built in $(( $(date +%s) - s ))s"
}

build_otelcol() {
  local out="$BIN/otelcol-pullback-peer"
  if [ -x "$out" ]; then log "collector $BUILDER_VERSION: cached"; return; fi
  local s; s=$(date +%s)
  local tools="$DIR/tools"
  if [ ! -x "$tools/builder" ]; then
    log "collector builder $BUILDER_VERSION: go install ..."
    GOBIN="$tools" go install -trimpath "$BUILDER_MODULE@$BUILDER_VERSION" >&2 || { log "FAILED: go install builder@$BUILDER_VERSION"; exit 1; }
  fi
  # the manifest's output_path is relative: generate under the cache dir, never in the repository;
  # one scratch dir per run (two concurrent runs do not share sources), removed after a success
  local work; work=$(mktemp -d "$DIR/work.XXXXXX")
  cp "$MANIFEST" "$work/manifest.yaml"
  log "collector: generating sources (builder --skip-get-modules --skip-compilation) ..."
  (cd "$work" && "$tools/builder" --config manifest.yaml --skip-get-modules --skip-compilation >&2) || { log "FAILED: builder could not generate the sources"; exit 1; }
  # --skip-get-modules writes no go.mod: pin the manifest's modules and the core packages that the
  # generated main.go imports (at the builder's release) with `go get`, which, unlike `go mod tidy`,
  # loads only what those packages import, not their tests.
  local pins=("go.opentelemetry.io/collector/otelcol@$BUILDER_VERSION" "go.opentelemetry.io/collector/service/telemetry/otelconftelemetry@$BUILDER_VERSION")
  local line
  while read -r line; do pins+=("$line"); done < <(sed -n 's/^ *- gomod: *\([^ ]*\) \(v[^ ]*\).*/\1@\2/p' "$MANIFEST")
  log "collector: go get ${#pins[@]} pinned modules ..."
  (cd "$work/otelcol-src" && go mod init otelcol-pullback-peer >&2 && go get "${pins[@]}" >&2) || { log "FAILED: go get of the Collector's modules"; exit 1; }
  log "collector: go build ..."
  local tmp; tmp=$(mktemp -d "$DIR/oc.XXXXXX")
  if ! (cd "$work/otelcol-src" && go build -mod=mod -trimpath -ldflags='-s -w' -o "$tmp/otelcol" . >&2); then
    rm -rf "$tmp"; log "FAILED: go build of the generated Collector in $work/otelcol-src"; exit 1
  fi
  mv "$tmp/otelcol" "$out"; rm -rf "$tmp" "$work"
  log "collector built in $(( $(date +%s) - s ))s"
}

# The Micrometer peer: its classpath resolved by Maven, its one source compiled by javac, a launcher
# script beside them. Keyed by a hash of the pom and the source; built in a scratch dir, then renamed.
MICROMETER_SRC="$HERE/micrometer"
# bad arguments exit 2 once the JVM loaded the class: the launcher and its classpath (in ~/.m2) work
micrometer_runs() { local rc=0; "$1" --check >/dev/null 2>&1 || rc=$?; [ "$rc" -eq 2 ]; }
build_micrometer() {
  local key; key=$(cat "$MICROMETER_SRC/pom.xml" "$MICROMETER_SRC/MicrometerPeer.java" | sha256sum | cut -c1-12)
  MICROMETER_DIR="$ROOT/micrometer-$key"
  if [ -x "$MICROMETER_DIR/micrometer-peer" ] && micrometer_runs "$MICROMETER_DIR/micrometer-peer"; then log "micrometer peer: cached"; return; fi
  command -v mvn >/dev/null || { log "FAILED: no 'mvn' on PATH (Maven and a JDK 17+ build the Micrometer peer)"; exit 1; }
  command -v javac >/dev/null || { log "FAILED: no 'javac' on PATH (a JDK 17+ builds the Micrometer peer)"; exit 1; }
  local s; s=$(date +%s)
  local tmp; tmp=$(mktemp -d "$ROOT/mm.XXXXXX")
  log "micrometer peer: resolving micrometer-registry-otlp from Maven Central ..."
  mvn -B -q -f "$MICROMETER_SRC/pom.xml" dependency:build-classpath -Dmdep.outputFile="$tmp/classpath" -Dmdep.includeScope=runtime >&2 \
    || { rm -rf "$tmp"; log "FAILED: mvn could not resolve tools/peers/micrometer/pom.xml"; exit 1; }
  javac -d "$tmp/classes" -cp "$(cat "$tmp/classpath")" "$MICROMETER_SRC/MicrometerPeer.java" >&2 \
    || { rm -rf "$tmp"; log "FAILED: javac tools/peers/micrometer/MicrometerPeer.java"; exit 1; }
  rm -rf "$MICROMETER_DIR"; mv "$tmp" "$MICROMETER_DIR"
  printf '#!/bin/sh\nexec java -cp "%s:%s" MicrometerPeer "$@"\n' "$MICROMETER_DIR/classes" "$(cat "$MICROMETER_DIR/classpath")" > "$MICROMETER_DIR/micrometer-peer.tmp"
  chmod +x "$MICROMETER_DIR/micrometer-peer.tmp"; mv "$MICROMETER_DIR/micrometer-peer.tmp" "$MICROMETER_DIR/micrometer-peer"
  log "micrometer peer built in $(( $(date +%s) - s ))s"
}

# the Micrometer peer first: it takes seconds, so under .ci/run its Maven resolution is over long
# before tools/kafka/broker.sh resolves the broker into the same ~/.m2 (Maven does not lock it)
build_micrometer
build_telemetrygen
build_otelcol

# a smoke check that both binaries start on this machine (a broken cache entry fails here, not in a test)
"$BIN/telemetrygen" --help >/dev/null 2>&1 || { log "FAILED: $BIN/telemetrygen does not run"; exit 1; }
"$BIN/otelcol-pullback-peer" components >/dev/null 2>&1 || { log "FAILED: $BIN/otelcol-pullback-peer does not run"; exit 1; }
micrometer_runs "$MICROMETER_DIR/micrometer-peer" || { log "FAILED: $MICROMETER_DIR/micrometer-peer does not run"; exit 1; }
log "done"

envfile="$ROOT/peers.env"
printf 'TELEMETRYGEN_BIN=%s\nOTELCOL_BIN=%s\nMICROMETER_PEER=%s\n' "$BIN/telemetrygen" "$BIN/otelcol-pullback-peer" "$MICROMETER_DIR/micrometer-peer" > "$envfile.tmp"
mv "$envfile.tmp" "$envfile"
cat "$envfile"
