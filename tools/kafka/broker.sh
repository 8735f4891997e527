#!/usr/bin/env bash
# A real single-node Apache Kafka broker (KRaft, combined broker+controller) on loopback, built from
# Maven Central jars: no Docker, no tarball. Used by the test setup and by .ci/run.
#
#   tools/kafka/broker.sh start    resolve jars (first run), format storage (a fresh, empty broker),
#                                  start, wait until it answers
#   tools/kafka/broker.sh stop     stop the broker this script started (by pid); its data stays
#   tools/kafka/broker.sh resume   start the broker formatted by an earlier `start` again, with its
#                                  data (topics, records, committed offsets): a broker bounce
#   tools/kafka/broker.sh restart  stop, then resume
#   tools/kafka/broker.sh status   exit 0 if it is running and answering
#
# Environment: KAFKA_PORT (19092), KAFKA_CONTROLLER_PORT (19093), KAFKA_DIR (state, logs, pid;
# default ${TMPDIR:-/tmp}/pullback-kafka-$KAFKA_PORT), KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS (0, so
# tests do not wait; the broker's own default is 3000, what a consumer group formed anew waits for
# its first assignment on a user's cluster). A test that stops its broker runs its own:
# other ports and its own KAFKA_DIR, never the shared one. On success `start`, `resume` and
# `restart` print the bootstrap address.
#
# KAFKA_SECURITY=sasl_ssl (default: plaintext, unchanged) makes `start` open the client listener as
# SASL_SSL instead: TLS with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 enabled. It needs
#   KAFKA_SSL_DIR      a directory with ca.crt, broker.crt and broker.key (PEM, key unencrypted
#                      PKCS#8), made by the caller (a test generates them in a temp dir; never commit
#                      keys). broker.crt must name 127.0.0.1 (subjectAltName IP) and allow both
#                      serverAuth and clientAuth: the broker also connects to itself with it.
#   KAFKA_SASL_USERS   "name:password ..." (name [A-Za-z0-9_], password [A-Za-z0-9._~-]): each user gets a
#                      PLAIN credential (JAAS) and SCRAM-SHA-256/512 credentials (storage format
#                      --add-scram), so they exist before the first client connects.
#   KAFKA_SSL_CLIENT_AUTH  none (default) | requested | required (mTLS: clients need a cert signed by ca.crt)
# The broker talks to itself over the same listener with PLAIN and a random internal user. `resume`
# and `restart` reuse the mode and credentials `start` wrote.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
port=${KAFKA_PORT:-19092}
cport=${KAFKA_CONTROLLER_PORT:-19093}
dir=${KAFKA_DIR:-${TMPDIR:-/tmp}/pullback-kafka-$port}
pidfile=$dir/broker.pid
cpfile=$here/target/kafka-cp.txt
security=${KAFKA_SECURITY:-plaintext}

log() { echo "[broker] $*" >&2; }

answering() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

classpath() {
  if [ ! -s "$cpfile" ]; then
    command -v mvn >/dev/null || { log "mvn not found: install Maven (and a JDK 17+) or set KAFKA_BROKERS"; exit 1; }
    log "resolving Apache Kafka from Maven Central (first run only)"
    mvn -B -q -f "$here/pom.xml" dependency:build-classpath \
      -Dmdep.outputFile="$cpfile" -Dmdep.includeScope=runtime >&2
  fi
  cat "$cpfile"
}

start() {
  if running && answering; then log "already running (pid $(cat "$pidfile"))"; echo "127.0.0.1:$port"; return 0; fi
  command -v java >/dev/null || { log "java not found: install a JDK 17+ or set KAFKA_BROKERS"; exit 1; }
  local lname scram=()
  case "$security" in
    plaintext) lname=PLAINTEXT ;;
    sasl_ssl) lname=SASL_SSL; sasl_ssl_check ;;
    *) log "KAFKA_SECURITY must be plaintext or sasl_ssl, got '$security'"; exit 2 ;;
  esac
  local cp; cp=$(classpath)
  rm -rf "$dir"; mkdir -p "$dir/data"
  cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=$lname://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=$lname://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=$lname
listener.security.protocol.map=CONTROLLER:PLAINTEXT,$lname:$lname
log.dirs=$dir/data
num.partitions=3
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=${KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS:-0}
PROPS
  if [ "$security" = sasl_ssl ]; then
    sasl_ssl_props >> "$dir/server.properties"
    local u
    for u in $KAFKA_SASL_USERS; do
      scram+=(--add-scram "SCRAM-SHA-256=[name=${u%%:*},password=${u#*:}]" --add-scram "SCRAM-SHA-512=[name=${u%%:*},password=${u#*:}]")
    done
  fi
  local jopts=(-Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true "-Dlog4j2.configurationFile=$here/log4j2.properties")
  local cid; cid=$(java -cp "$cp" kafka.tools.StorageTool random-uuid)
  java "${jopts[@]}" -cp "$cp" kafka.tools.StorageTool format -t "$cid" -c "$dir/server.properties" ${scram[@]+"${scram[@]}"} >"$dir/format.log" 2>&1 \
    || { log "storage format failed:"; cat "$dir/format.log" >&2; exit 1; }
  launch "$cp"
}

# KAFKA_SECURITY=sasl_ssl: the inputs exist and are well formed (fails before anything is written).
sasl_ssl_check() {
  local ssl=${KAFKA_SSL_DIR:-} f u
  [ -n "$ssl" ] || { log "KAFKA_SECURITY=sasl_ssl needs KAFKA_SSL_DIR (ca.crt, broker.crt, broker.key)"; exit 2; }
  for f in ca.crt broker.crt broker.key; do
    [ -s "$ssl/$f" ] || { log "KAFKA_SSL_DIR: $ssl/$f is missing or empty"; exit 2; }
  done
  [ -n "${KAFKA_SASL_USERS:-}" ] || { log "KAFKA_SECURITY=sasl_ssl needs KAFKA_SASL_USERS (\"name:password ...\")"; exit 2; }
  for u in $KAFKA_SASL_USERS; do
    [[ $u =~ ^[A-Za-z0-9_]+:[A-Za-z0-9._~-]+$ ]] || { log "KAFKA_SASL_USERS: entries are name:password, name [A-Za-z0-9_], password [A-Za-z0-9._~-]"; exit 2; }
  done
  case "${KAFKA_SSL_CLIENT_AUTH:-none}" in none|requested|required) ;; *) log "KAFKA_SSL_CLIENT_AUTH must be none, requested or required"; exit 2 ;; esac
}

# The SASL_SSL listener's properties (appended to server.properties by `start`): PEM key and trust
# stores copied into $dir (the broker reads them at start), PLAIN users in the listener's JAAS line,
# SCRAM users added at format time. The inter-broker user's password is random per `start`.
sasl_ssl_props() {
  local ssl=$KAFKA_SSL_DIR u ipw plain=""
  ipw=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  cat "$ssl/broker.key" "$ssl/broker.crt" > "$dir/keystore.pem"
  cp "$ssl/ca.crt" "$dir/truststore.pem"
  chmod 600 "$dir/keystore.pem"
  for u in $KAFKA_SASL_USERS; do plain+=" user_${u%%:*}=\"${u#*:}\""; done
  cat <<PROPS
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=PLAIN
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="pbbroker" password="$ipw" user_pbbroker="$ipw"$plain;
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PEM
ssl.keystore.location=$dir/keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$dir/truststore.pem
ssl.client.auth=${KAFKA_SSL_CLIENT_AUTH:-none}
ssl.endpoint.identification.algorithm=https
PROPS
}

# Starts the broker on the formatted storage in $dir and waits until it answers. The properties
# file written by `start` keeps the ports it was formatted with.
launch() {
  local cp=$1
  local jopts=(-Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true "-Dlog4j2.configurationFile=$here/log4j2.properties")
  local since=0; [ -f "$dir/broker.log" ] && since=$(wc -l <"$dir/broker.log")
  nohup java "${jopts[@]}" -cp "$cp" kafka.Kafka "$dir/server.properties" >>"$dir/broker.log" 2>&1 &
  echo $! > "$pidfile"
  log "started pid $(cat "$pidfile"), log $dir/broker.log; waiting for 127.0.0.1:$port"
  for _ in $(seq 1 120); do
    if ! running; then log "broker exited:"; tail -40 "$dir/broker.log" >&2; exit 1; fi
    # only lines written by this launch count (the log is appended to across resumes)
    if answering && tail -n +"$((since + 1))" "$dir/broker.log" | grep -q "Kafka Server started"; then
      log "ready"; echo "127.0.0.1:$port"; return 0
    fi
    sleep 0.5
  done
  log "broker did not become ready in 60 s"; tail -40 "$dir/broker.log" >&2; stop; exit 1
}

resume() {
  if running && answering; then log "already running (pid $(cat "$pidfile"))"; echo "127.0.0.1:$port"; return 0; fi
  [ -s "$dir/server.properties" ] && [ -s "$dir/data/meta.properties" ] \
    || { log "no formatted broker in $dir: run \`$0 start\` first"; exit 1; }
  command -v java >/dev/null || { log "java not found: install a JDK 17+ or set KAFKA_BROKERS"; exit 1; }
  local cp; cp=$(classpath)
  launch "$cp"
}

stop() {
  if ! running; then log "not running"; rm -f "$pidfile"; return 0; fi
  local pid; pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; log "stopped"; return 0; }; sleep 0.5; done
  log "still alive after 30 s, killing"; kill -9 "$pid" 2>/dev/null || true; rm -f "$pidfile"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  resume) resume ;;
  restart) stop; resume ;;
  status) running && answering ;;
  *) echo "usage: $0 start|stop|resume|restart|status" >&2; exit 2 ;;
esac
