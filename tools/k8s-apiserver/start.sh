#!/usr/bin/env bash
# Starts a real Kubernetes API server on loopback for tests: etcd, then kube-apiserver over it.
#
# usage: bash tools/k8s-apiserver/start.sh STATE_DIR      (stop: bash tools/k8s-apiserver/stop.sh STATE_DIR)
#
# Everything lives in STATE_DIR (created; must be empty or absent): generated PKI, token file, etcd
# data, logs (etcd.log, kube-apiserver.log), pid files. Binaries: KUBE_APISERVER_BIN / ETCD_BIN, else
# ${PULLBACK_PEERS_DIR:-~/.cache/pullback-peers}/k8s-apiserver.env (written by build.sh).
# Ports (loopback only): ETCD_PORT (19640), ETCD_PEER_PORT (19641), KUBE_APISERVER_PORT (19643).
#
# What runs, and what does not:
#   - authentication: a static token file with two users, and service-account tokens (TokenRequest)
#     signed with a key pair generated here: admin (group system:masters) and a static stand-in for
#     the actuator's service account (system:serviceaccount:pullback:pullback-actuator); anonymous off;
#   - authorization: RBAC only (what k8s/rbac.yaml grants is all a non-admin gets);
#   - a serving certificate for 127.0.0.1/localhost signed by a CA generated here (ca.crt);
#   - no controller-manager, scheduler or kubelet: a Deployment gets no ReplicaSets, no pods and no
#     status unless the test writes them (the tests play the controller through the status subresource).
#
# On success prints (and writes to STATE_DIR/env):
#   KUBE_SERVER=https://127.0.0.1:<port>  KUBE_CA_FILE=<ca.crt>  KUBE_ADMIN_TOKEN_FILE=<file>
#   KUBE_ACTUATOR_TOKEN_FILE=<file>  (the static service-account stand-in's token)
# and exits 0 once /readyz answers 200; on failure stops what it started, prints the logs' tails to
# stderr and exits non-zero. START_TIMEOUT (seconds, default 240) bounds the wait.
set -euo pipefail

STATE=${1:?usage: start.sh STATE_DIR}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ETCD_PORT=${ETCD_PORT:-19640}
ETCD_PEER_PORT=${ETCD_PEER_PORT:-19641}
KUBE_APISERVER_PORT=${KUBE_APISERVER_PORT:-19643}
START_TIMEOUT=${START_TIMEOUT:-240}

envfile="${PULLBACK_PEERS_DIR:-$HOME/.cache/pullback-peers}/k8s-apiserver.env"
from_env_file() { [ -f "$envfile" ] && sed -n "s/^$1=//p" "$envfile" | head -1; }
KUBE_APISERVER_BIN=${KUBE_APISERVER_BIN:-$(from_env_file KUBE_APISERVER_BIN)}
ETCD_BIN=${ETCD_BIN:-$(from_env_file ETCD_BIN)}
for b in "$KUBE_APISERVER_BIN" "$ETCD_BIN"; do
  [ -n "$b" ] && [ -x "$b" ] || { echo "start.sh: kube-apiserver/etcd binaries not found (KUBE_APISERVER_BIN='$KUBE_APISERVER_BIN' ETCD_BIN='$ETCD_BIN'): run bash $HERE/build.sh" >&2; exit 1; }
done

mkdir -p "$STATE"
[ -z "$(ls -A "$STATE")" ] || { echo "start.sh: $STATE is not empty" >&2; exit 1; }
STATE=$(cd "$STATE" && pwd)
pki="$STATE/pki"; mkdir -p "$pki" "$STATE/etcd-data"
chmod 700 "$STATE"

# --- PKI: CA, serving certificate for the loopback names, service-account signing key pair
openssl_quiet() { openssl "$@" >/dev/null 2>&1; }
openssl_quiet req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=pullback-test-ca" -keyout "$pki/ca.key" -out "$pki/ca.crt"
openssl_quiet req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout "$pki/serving.key" -out "$pki/serving.csr"
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n' > "$pki/serving.ext"
openssl_quiet x509 -req -in "$pki/serving.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 2 -extfile "$pki/serving.ext" -out "$pki/serving.crt"
openssl_quiet genrsa -out "$pki/sa.key" 2048
openssl_quiet rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub"

# --- static tokens (random per start): token,user,uid,"groups"
admin_token=$(openssl rand -hex 24); actuator_token=$(openssl rand -hex 24)
printf '%s,pullback-test-admin,uid-admin,"system:masters"\n%s,system:serviceaccount:pullback:pullback-actuator,uid-actuator,"system:serviceaccounts,system:serviceaccounts:pullback"\n' \
  "$admin_token" "$actuator_token" > "$pki/tokens.csv"
printf '%s\n' "$admin_token" > "$STATE/admin.token"
printf '%s\n' "$actuator_token" > "$STATE/actuator-static.token"
chmod 600 "$pki"/*.key "$pki/tokens.csv" "$STATE"/*.token

stop_all() { bash "$HERE/stop.sh" "$STATE" >/dev/null 2>&1 || true; }
fail() {
  echo "start.sh: $*" >&2
  for l in etcd kube-apiserver; do [ -f "$STATE/$l.log" ] && { echo "--- $l.log (tail)" >&2; tail -n 25 "$STATE/$l.log" >&2; }; done
  stop_all; exit 1
}

# --- etcd: one member, loopback, no fsync (test data only)
"$ETCD_BIN" --name pullback-test --data-dir "$STATE/etcd-data" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "pullback-test=http://127.0.0.1:$ETCD_PEER_PORT" \
  --unsafe-no-fsync --log-level warn >"$STATE/etcd.log" 2>&1 &
echo $! > "$STATE/etcd.pid"

t0=$(date +%s)
until curl -sf "http://127.0.0.1:$ETCD_PORT/health" >/dev/null 2>&1; do
  kill -0 "$(cat "$STATE/etcd.pid")" 2>/dev/null || fail "etcd exited"
  [ $(( $(date +%s) - t0 )) -lt "$START_TIMEOUT" ] || fail "etcd not healthy within ${START_TIMEOUT}s"
  sleep 0.3
done

# --- kube-apiserver: loopback, RBAC, token auth, no cloud, no kubelet, light on a shared machine
"$KUBE_APISERVER_BIN" \
  --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$KUBE_APISERVER_PORT" \
  --tls-cert-file "$pki/serving.crt" --tls-private-key-file "$pki/serving.key" --cert-dir "$STATE/certs" \
  --anonymous-auth=false --token-auth-file "$pki/tokens.csv" \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
  --authorization-mode RBAC \
  --service-cluster-ip-range 10.96.0.0/24 --endpoint-reconciler-type none \
  --enable-priority-and-fairness=false --profiling=false \
  --v 1 >"$STATE/kube-apiserver.log" 2>&1 &
echo $! > "$STATE/kube-apiserver.pid"

until [ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$pki/ca.crt" -H "Authorization: Bearer $admin_token" "https://127.0.0.1:$KUBE_APISERVER_PORT/readyz" 2>/dev/null)" = 200 ]; do
  kill -0 "$(cat "$STATE/kube-apiserver.pid")" 2>/dev/null || fail "kube-apiserver exited"
  kill -0 "$(cat "$STATE/etcd.pid")" 2>/dev/null || fail "etcd exited"
  [ $(( $(date +%s) - t0 )) -lt "$START_TIMEOUT" ] || fail "kube-apiserver not ready within ${START_TIMEOUT}s"
  sleep 0.5
done

{
  echo "KUBE_SERVER=https://127.0.0.1:$KUBE_APISERVER_PORT"
  echo "KUBE_CA_FILE=$pki/ca.crt"
  echo "KUBE_ADMIN_TOKEN_FILE=$STATE/admin.token"
  echo "KUBE_ACTUATOR_TOKEN_FILE=$STATE/actuator-static.token"
} > "$STATE/env"
echo "start.sh: ready in $(( $(date +%s) - t0 ))s" >&2
cat "$STATE/env"
