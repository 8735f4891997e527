#!/usr/bin/env bash
# Builds a real Kubernetes API server and its etcd from the Go module proxy, for the actuator tests
# against a real API server (test/actuator/kube-apiserver.test.ts, issue 15 item 4):
#   - kube-apiserver from k8s.io/kubernetes (KUBERNETES_VERSION)
#   - etcd from go.etcd.io/etcd/server/v3 (ETCD_VERSION)
#
# usage: bash tools/k8s-apiserver/build.sh
#
# Idempotent: binaries go to ${PULLBACK_PEERS_DIR:-$HOME/.cache/pullback-peers}/<key>/bin, where <key>
# names both versions and a hash of this script (the wrapper mains below are part of it); a binary
# already there is reused. Nothing is written inside the repository.
#
# Output contract (as tools/peers/build.sh): progress and timings on stderr; stdout carries exactly
#   KUBE_APISERVER_BIN=<absolute path>
#   ETCD_BIN=<absolute path>
# and the same lines go to <cache root>/k8s-apiserver.env, which the tests and start.sh read when the
# variables are not set. Exits non-zero, naming the failing step, when a binary cannot be built.
#
# Why a wrapper module: k8s.io/kubernetes cannot be `go install`ed, its go.mod replaces every
# k8s.io/<staging> module by ./staging/src/k8s.io/<name>, a directory that does not exist in the module
# zip. The wrapper requires k8s.io/kubernetes and replaces each of those modules by its published
# release (v0.Y.Z for Kubernetes v1.Y.Z), the list read from the go.mod of that very version. etcd
# needs no such trick: a main over go.etcd.io/etcd/server/v3/etcdmain in its own module (its own
# dependency versions, not Kubernetes'), the same thing etcd's server/main.go is.
#
# Cost: see tools/k8s-apiserver/README.md. BUILD_PROCS=1 (one core, so that other work keeps the
# other) and BUILD_NICE=10 by default.
set -euo pipefail

KUBERNETES_VERSION=${KUBERNETES_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.7.3}
BUILD_PROCS=${BUILD_PROCS:-1}

export GOTOOLCHAIN=local
export GOFLAGS="-mod=mod -buildvcs=false"
export GOPROXY=${GOPROXY:-https://proxy.golang.org,direct}

ROOT=${PULLBACK_PEERS_DIR:-$HOME/.cache/pullback-peers}
self_hash=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-12)
KEY="kube-apiserver-${KUBERNETES_VERSION}_etcd-${ETCD_VERSION}_${self_hash}"
DIR="$ROOT/$KEY"
BIN="$DIR/bin"
mkdir -p "$BIN"

t0=$(date +%s)
log() { echo "[k8s-apiserver +$(( $(date +%s) - t0 ))s] $*" >&2; }
command -v go >/dev/null || { log "FAILED: no 'go' on PATH (Go 1.26 is needed)"; exit 1; }
log "go: $(go version); cache: $DIR"

# compiles package . of $1 into $2 on BUILD_PROCS cores with extra link flags $3, atomically
# (scratch dir then rename, so an interrupted build never leaves a binary a later run takes as cached)
go_build() {
  local src=$1 out=$2 ldflags="-s -w ${3:-}" tmp
  tmp=$(mktemp -d "$DIR/out.XXXXXX")
  if ! (cd "$src" && GOMAXPROCS=$BUILD_PROCS nice -n "${BUILD_NICE:-10}" go build -p "$BUILD_PROCS" -trimpath -ldflags="$ldflags" -o "$tmp/bin" . >&2); then
    rm -rf "$tmp"; return 1
  fi
  mv "$tmp/bin" "$out"; rm -rf "$tmp"
}

build_etcd() {
  local out="$BIN/etcd"
  if [ -x "$out" ]; then log "etcd $ETCD_VERSION: cached"; return; fi
  local s work; s=$(date +%s); work=$(mktemp -d "$DIR/etcd-src.XXXXXX")
  printf 'module pullback-etcd\n\ngo 1.26.0\n' > "$work/go.mod"
  cat > "$work/main.go" <<'GO'
// etcd for pullback's tests: the etcd server's own entry point, nothing else.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  log "etcd $ETCD_VERSION: go get + go build (-p $BUILD_PROCS) ..."
  (cd "$work" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2) || { log "FAILED: go get go.etcd.io/etcd/server/v3@$ETCD_VERSION"; exit 1; }
  go_build "$work" "$out" || { log "FAILED: go build of etcd $ETCD_VERSION in $work"; exit 1; }
  rm -rf "$work"
  log "etcd built in $(( $(date +%s) - s ))s"
}

build_kube_apiserver() {
  local out="$BIN/kube-apiserver"
  if [ -x "$out" ]; then log "kube-apiserver $KUBERNETES_VERSION: cached"; return; fi
  local s work gomod staging; s=$(date +%s); work=$(mktemp -d "$DIR/kas-src.XXXXXX")
  log "kube-apiserver $KUBERNETES_VERSION: reading k8s.io/kubernetes's go.mod ..."
  gomod=$(cd "$work" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
  [ -n "$gomod" ] && [ -f "$gomod" ] || { log "FAILED: go mod download k8s.io/kubernetes@$KUBERNETES_VERSION"; exit 1; }
  staging="v0.${KUBERNETES_VERSION#v1.}"
  {
    printf 'module pullback-kube-apiserver\n\ngo 1.26.0\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$KUBERNETES_VERSION"
    # "k8s.io/api => ./staging/src/k8s.io/api" becomes "k8s.io/api => k8s.io/api v0.Y.Z"
    sed -n "s#^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/src/.*#\t\1 => \1 $staging#p" "$gomod"
    printf ')\n'
  } > "$work/go.mod"
  local n; n=$(grep -c ' => ' "$work/go.mod" || true)
  [ "$n" -gt 0 ] || { log "FAILED: no staging replace directives found in $gomod"; exit 1; }
  cat > "$work/main.go" <<'GO'
// kube-apiserver for pullback's tests: the API server's own command (k8s.io/kubernetes), nothing else.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() { os.Exit(cli.Run(app.NewAPIServerCommand())) }
GO
  log "kube-apiserver: $n staging modules replaced by their $staging releases; go build (-p $BUILD_PROCS) ..."
  # the version the binary reports (/version, the compatibility-version checks): what `make` stamps
  local v=${KUBERNETES_VERSION#v} pkg=k8s.io/component-base/version
  local stamp="-X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=${v%%.*} -X $pkg.gitMinor=$(echo "$v" | cut -d. -f2) -X $pkg.gitTreeState=clean"
  go_build "$work" "$out" "$stamp" || { log "FAILED: go build of kube-apiserver $KUBERNETES_VERSION in $work"; exit 1; }
  rm -rf "$work"
  log "kube-apiserver built in $(( $(date +%s) - s ))s"
}

build_etcd
build_kube_apiserver

# a smoke check that both start on this machine (a broken cache entry fails here, not in a test)
"$BIN/etcd" --version >/dev/null 2>&1 || { log "FAILED: $BIN/etcd does not run"; exit 1; }
"$BIN/kube-apiserver" --version >/dev/null 2>&1 || { log "FAILED: $BIN/kube-apiserver does not run"; exit 1; }
log "done: $("$BIN/kube-apiserver" --version 2>&1 | head -1); etcd $("$BIN/etcd" --version 2>&1 | sed -n 's/^etcd Version: //p')"

envfile="$ROOT/k8s-apiserver.env"
printf 'KUBE_APISERVER_BIN=%s\nETCD_BIN=%s\n' "$BIN/kube-apiserver" "$BIN/etcd" > "$envfile.tmp"
mv "$envfile.tmp" "$envfile"
cat "$envfile"
