#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft, combined broker + controller) on
# 127.0.0.1, for driftd's integration tests and CI. No Docker, no tarball:
# the broker's jars come from Maven Central through pom.xml beside this file.
#
#   kafka.sh fetch    copy the broker classpath into the cache (once)
#   kafka.sh start    wipe the data dir, format it, start the broker, wait until ready
#   kafka.sh resume   start the broker again on its existing data (after a stop)
#   kafka.sh stop     stop the broker (TERM, then KILL after a grace period)
#   kafka.sh status   say whether the broker is running (exit 0) or not (exit 3)
#   kafka.sh logs     print the tail of the broker log
#
# Environment (all optional; DRIFTDTEST_, not DRIFTD_, which is the daemon's settings
# prefix: the daemon refuses a DRIFTD_ variable that names no setting):
#   DRIFTDTEST_KAFKA_HOME             classpath cache          [deploy/kafka/.cache/libs]
#   DRIFTDTEST_KAFKA_PORT             client (PLAINTEXT) port  [39092]
#   DRIFTDTEST_KAFKA_CONTROLLER_PORT  KRaft controller port    [client port + 1]
#   DRIFTDTEST_KAFKA_DATA             data dir, wiped on start [deploy/kafka/.cache/data-<port>]
#   DRIFTDTEST_KAFKA_START_TIMEOUT    seconds to wait for readiness [90]
#   DRIFTDTEST_KAFKA_STOP_TIMEOUT     seconds between TERM and KILL [30]
#   DRIFTDTEST_KAFKA_JVM_OPTS         replaces the default heap/GC options
#   DRIFTDTEST_KAFKA_LOG_LEVEL        broker root log level    [WARN]
#   DRIFTDTEST_KAFKA_PYTHON           python with kafka-python for the readiness probe
#                                     [<repo>/.venv/bin/python if present]
#   DRIFTDTEST_KAFKA_MVN_FLAGS        extra flags for mvn (e.g. -Dmaven.repo.local=...)
#   JAVA_HOME                         Java 17+; otherwise `java` on PATH
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
POM="$HERE/pom.xml"
LOG4J2_CONF="$HERE/log4j2.properties"
CACHE="$HERE/.cache"

LIBS="${DRIFTDTEST_KAFKA_HOME:-$CACHE/libs}"
PORT="${DRIFTDTEST_KAFKA_PORT:-39092}"
START_TIMEOUT="${DRIFTDTEST_KAFKA_START_TIMEOUT:-90}"
STOP_TIMEOUT="${DRIFTDTEST_KAFKA_STOP_TIMEOUT:-30}"
LOG_LEVEL="${DRIFTDTEST_KAFKA_LOG_LEVEL:-WARN}"
JVM_OPTS="${DRIFTDTEST_KAFKA_JVM_OPTS:--Xms256m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xss512k}"
if [[ -n "${JAVA_HOME:-}" ]]; then JAVA="$JAVA_HOME/bin/java"; else JAVA=java; fi

STAMP_NAME=".driftd-fetched"     # in $LIBS: marks a complete classpath
MARKER_NAME=".driftd-kafka-data" # in $DATA: marks a dir this script may wipe

die() { echo "kafka.sh: $*" >&2; exit 1; }
say() { echo "kafka.sh: $*" >&2; }

is_port() { [[ "$1" =~ ^[0-9]+$ ]] && (("$1" > 0 && "$1" < 65536)); }
is_port "$PORT" || die "DRIFTDTEST_KAFKA_PORT must be a TCP port, got '$PORT'"
CONTROLLER_PORT="${DRIFTDTEST_KAFKA_CONTROLLER_PORT:-$((PORT + 1))}"
is_port "$CONTROLLER_PORT" || die "DRIFTDTEST_KAFKA_CONTROLLER_PORT must be a TCP port, got '$CONTROLLER_PORT'"
[[ "$CONTROLLER_PORT" != "$PORT" ]] || die "client and controller ports must differ"
[[ "$START_TIMEOUT" =~ ^[0-9]+$ ]] || die "DRIFTDTEST_KAFKA_START_TIMEOUT must be whole seconds"
[[ "$STOP_TIMEOUT" =~ ^[0-9]+$ ]] || die "DRIFTDTEST_KAFKA_STOP_TIMEOUT must be whole seconds"

DATA="${DRIFTDTEST_KAFKA_DATA:-$CACHE/data-$PORT}"
PID_FILE="$DATA/kafka.pid"
LOG_FILE="$DATA/kafka.log"
PROPS="$DATA/server.properties"
BOOTSTRAP="127.0.0.1:$PORT"

# The key a complete fetch is stamped with: the pom's content.
fetch_key() { sha256sum "$POM" | cut -d' ' -f1; }

is_fetched() { [[ -f "$LIBS/$STAMP_NAME" && "$(cat "$LIBS/$STAMP_NAME")" == "$(fetch_key)" ]]; }

# Succeeds when something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The PID from the pid file if that process is alive and is our broker.
running_pid() {
  local pid
  [[ -f "$PID_FILE" ]] || return 1
  pid="$(cat "$PID_FILE")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  # Guard against PID reuse: the process must be a broker on our properties.
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "kafka.Kafka $PROPS" || return 1
  echo "$pid"
}

log_tail() {
  if [[ -f "$LOG_FILE" ]]; then
    echo "---- last ${1:-60} lines of $LOG_FILE ----" >&2
    tail -n "${1:-60}" "$LOG_FILE" >&2
    echo "---- end of log ----" >&2
  fi
}

# Random 16-byte cluster id, base64url without padding, as Kafka's Uuid prints
# it; re-drawn while it starts with '-' (which the CLI would read as a flag).
random_cluster_id() {
  local id=-
  while [[ "$id" == -* ]]; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
  done
  echo "$id"
}

# The java command line shared by the storage tool and the broker, into JAVA_CMD.
JAVA_CMD=()
build_java_cmd() {
  local -a jvm_opts
  read -r -a jvm_opts <<<"$JVM_OPTS"
  JAVA_CMD=("$JAVA" "${jvm_opts[@]}"
    -Dlog4j2.shutdownHookEnabled=false
    -Djava.awt.headless=true
    -Djava.net.preferIPv4Stack=true
    "-Dlog4j2.configurationFile=$LOG4J2_CONF"
    "-Ddriftd.kafka.log.level=$LOG_LEVEL"
    "-Dkafka.logs.dir=$DATA"
    -cp "$LIBS/*")
}

cmd_fetch() {
  command -v mvn >/dev/null || die "mvn (Maven 3.6.3+) is not on PATH"
  if is_fetched; then
    say "classpath already in $LIBS"
    return 0
  fi
  mkdir -p "$(dirname "$LIBS")"
  # One fetch at a time per cache (parallel CI jobs, xdist workers).
  exec 9>"$LIBS.lock"
  flock 9
  if is_fetched; then
    say "classpath already in $LIBS"
    return 0
  fi
  if [[ -e "$LIBS" && ! -f "$LIBS/$STAMP_NAME" && -n "$(ls -A "$LIBS")" ]]; then
    die "$LIBS exists, is not empty and was not written by kafka.sh; refusing to replace it"
  fi
  local tmp="$LIBS.tmp.$$" t0=$SECONDS
  local -a mvn_flags=()
  read -r -a mvn_flags <<<"${DRIFTDTEST_KAFKA_MVN_FLAGS:-}"
  rm -rf "$tmp"
  say "fetching the Kafka broker classpath from Maven Central into $LIBS"
  # Maven 3.8 prints ANSI resets even with -B; strip them (pipefail keeps mvn's status).
  if ! mvn -q -B -Dstyle.color=never -f "$POM" "${mvn_flags[@]}" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp" 2>&1 | sed $'s/\e\\[[0-9;]*m//g' >&2; then
    rm -rf "$tmp"
    die "mvn dependency:copy-dependencies failed (see above)"
  fi
  compgen -G "$tmp/kafka_2.13-*.jar" >/dev/null || { rm -rf "$tmp"; die "no kafka_2.13 jar was fetched"; }
  # Exactly one SLF4J binding: two make SLF4J pick one at random, none makes it silent.
  local -a bindings=()
  local name jar
  for name in slf4j-reload4j slf4j-log4j12 slf4j-simple slf4j-jdk14 slf4j-nop \
    logback-classic log4j-slf4j-impl log4j-slf4j2-impl; do
    for jar in "$tmp/$name"-[0-9]*.jar; do
      if [[ -e "$jar" ]]; then bindings+=("${jar##*/}"); fi
    done
  done
  if ((${#bindings[@]} != 1)); then
    rm -rf "$tmp"
    die "expected exactly one SLF4J binding on the classpath, found ${#bindings[@]}: ${bindings[*]:-none}"
  fi
  fetch_key >"$tmp/$STAMP_NAME"
  rm -rf "$LIBS"
  mv "$tmp" "$LIBS"
  say "fetched $(find "$LIBS" -name '*.jar' | wc -l) jars in $((SECONDS - t0)) s (SLF4J binding: ${bindings[0]})"
}

write_properties() {
  cat >"$PROPS" <<EOF
# Written by deploy/kafka/kafka.sh: a single-node KRaft test broker.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$DATA/kraft-logs

# One node: every internal topic has one replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1

# Small and fast: few partitions, no rebalance delay, topics on first use.
num.partitions=1
offsets.topic.num.partitions=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.num.partitions=1
auto.create.topics.enable=true
group.initial.rebalance.delay.ms=0
# Let tests ask for short consumer session timeouts.
group.min.session.timeout.ms=1000

# Gentle on a shared 2-core machine and a 512 MiB heap.
num.network.threads=2
num.io.threads=2
background.threads=2
num.recovery.threads.per.data.dir=1
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=16777216
EOF
}

cmd_start() {
  is_fetched || die "no broker classpath in $LIBS: run '$0 fetch' first"
  command -v "$JAVA" >/dev/null || die "java not found (set JAVA_HOME or put Java 17+ on PATH)"
  local pid
  if pid="$(running_pid)"; then
    die "a broker is already running on $BOOTSTRAP (pid $pid); run '$0 stop' first"
  fi
  port_open "$PORT" && die "port $PORT is already in use on 127.0.0.1"
  port_open "$CONTROLLER_PORT" && die "controller port $CONTROLLER_PORT is already in use on 127.0.0.1"

  local t0=$EPOCHREALTIME cluster_id
  if [[ "${1:-}" == resume ]]; then
    # Keep the topics and offsets: the broker comes back as it went down.
    [[ -f "$DATA/$MARKER_NAME" && -f "$PROPS" ]] || die "no kafka.sh data in $DATA to resume"
    build_java_cmd
  else
    # Wipe the data dir, but only one this script made (or an empty one).
    [[ -n "$DATA" && "$DATA" != / ]] || die "refusing to use '$DATA' as the data dir"
    if [[ -d "$DATA" && ! -f "$DATA/$MARKER_NAME" && -n "$(ls -A "$DATA")" ]]; then
      die "$DATA is not empty and was not made by kafka.sh; refusing to wipe it"
    fi
    rm -rf "$DATA"
    mkdir -p "$DATA"
    touch "$DATA/$MARKER_NAME"
    write_properties

    cluster_id="$(random_cluster_id)"
    build_java_cmd
    if ! "${JAVA_CMD[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$PROPS" >>"$LOG_FILE" 2>&1; then
      log_tail 40
      die "formatting the KRaft storage failed"
    fi
  fi

  # The broker outlives this script: stdin from /dev/null, output to the log
  # (so no caller's pipe is held open), SIGHUP ignored, cwd in the data dir
  # (for any hs_err file). `exec` keeps $! the java process itself.
  (
    cd "$DATA"
    trap '' HUP
    exec "${JAVA_CMD[@]}" kafka.Kafka "$PROPS"
  ) </dev/null >>"$LOG_FILE" 2>&1 &
  pid=$!
  echo "$pid" >"$PID_FILE"

  if ! wait_ready "$pid"; then
    log_tail 60
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -f "$PID_FILE"
    die "broker on $BOOTSTRAP did not become ready (data and log kept in $DATA)"
  fi
  local elapsed
  elapsed="$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')"
  say "ready on $BOOTSTRAP (pid $pid, ${elapsed} s incl. format; log $LOG_FILE)"
}

# Python with kafka-python for a metadata probe, or nothing.
probe_python() {
  local py="${DRIFTDTEST_KAFKA_PYTHON:-$REPO/.venv/bin/python}"
  if [[ -x "$py" ]] && "$py" -c 'import kafka' 2>/dev/null; then echo "$py"; fi
}

# One metadata round trip: cluster description and topic list.
METADATA_PROBE='
import logging, sys
logging.disable(logging.CRITICAL)
from kafka import KafkaAdminClient
admin = KafkaAdminClient(bootstrap_servers=sys.argv[1], request_timeout_ms=5000,
                         client_id="driftd-kafka-sh-probe")
try:
    cluster = admin.describe_cluster()
    admin.list_topics()
    if not cluster.get("brokers"):
        sys.exit("no brokers in metadata yet")
finally:
    admin.close()
'

# Ready = accepts connections and answers a metadata request (with
# kafka-python), or, without it, accepts connections and has logged that
# the server started.
wait_ready() {
  local pid=$1 deadline=$((SECONDS + START_TIMEOUT)) py
  py="$(probe_python)"
  [[ -n "$py" ]] || say "no python with kafka-python found; readiness = port open + 'Kafka Server started'"
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      say "the broker process exited during startup"
      return 1
    fi
    if port_open "$PORT"; then
      if [[ -n "$py" ]]; then
        timeout 20 "$py" -c "$METADATA_PROBE" "$BOOTSTRAP" >/dev/null 2>&1 && return 0
      else
        grep -q 'Kafka Server started' "$LOG_FILE" && return 0
      fi
    fi
    sleep 0.25
  done
  say "timed out after ${START_TIMEOUT} s"
  return 1
}

cmd_stop() {
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$PID_FILE"
    say "no broker running for $DATA"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    say "broker (pid $pid) still up after ${STOP_TIMEOUT} s; sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$PID_FILE"
  say "stopped broker on $BOOTSTRAP (pid $pid)"
}

cmd_status() {
  local pid
  if pid="$(running_pid)"; then
    if port_open "$PORT"; then
      echo "running: $BOOTSTRAP (pid $pid, data $DATA)"
    else
      echo "starting or unhealthy: pid $pid alive but $BOOTSTRAP refuses connections (data $DATA)"
    fi
    return 0
  fi
  echo "not running (data $DATA)"
  return 3
}

cmd_logs() {
  [[ -f "$LOG_FILE" ]] || die "no log at $LOG_FILE"
  tail -n "${1:-100}" "$LOG_FILE"
}

usage() {
  sed -n '2,/^set -euo pipefail/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

main() {
  local cmd="${1:-}"
  shift || true
  case "$cmd" in
    fetch) cmd_fetch ;;
    start) cmd_start ;;
    resume) cmd_start resume ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    logs) cmd_logs "$@" ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
