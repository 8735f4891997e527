#!/usr/bin/env bash
# Stops what start.sh started in STATE_DIR (kube-apiserver first, then etcd) and leaves the directory
# (logs) in place. Idempotent. Only the pids recorded in STATE_DIR are signalled, and only while they
# still run the binary start.sh started (a recycled pid is left alone).
#
# usage: bash tools/k8s-apiserver/stop.sh STATE_DIR
set -uo pipefail
STATE=${1:?usage: stop.sh STATE_DIR}

stop_one() {
  local name=$1 pidfile="$STATE/$1.pid" pid i
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  # still the process we started? (its command line names the binary)
  if [ -n "$pid" ] && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q "$name"; then
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$pidfile"
}

stop_one kube-apiserver
stop_one etcd
exit 0
