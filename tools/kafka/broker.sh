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
# default ${TMPDIR:-/tmp}/pullback-kafka-$KAFKA_PORT). A test that stops its broker runs its own:
# other ports and its own KAFKA_DIR, never the shared one. On success `start`, `resume` and
# `restart` print the bootstrap address.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
port=${KAFKA_PORT:-19092}
cport=${KAFKA_CONTROLLER_PORT:-19093}
dir=${KAFKA_DIR:-${TMPDIR:-/tmp}/pullback-kafka-$port}
pidfile=$dir/broker.pid
cpfile=$here/target/kafka-cp.txt

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
  local cp; cp=$(classpath)
  rm -rf "$dir"; mkdir -p "$dir/data"
  cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=3
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
  local jopts=(-Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true "-Dlog4j2.configurationFile=$here/log4j2.properties")
  local cid; cid=$(java -cp "$cp" kafka.tools.StorageTool random-uuid)
  java "${jopts[@]}" -cp "$cp" kafka.tools.StorageTool format -t "$cid" -c "$dir/server.properties" >"$dir/format.log" 2>&1 \
    || { log "storage format failed:"; cat "$dir/format.log" >&2; exit 1; }
  launch "$cp"
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
