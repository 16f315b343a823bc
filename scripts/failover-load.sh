#!/usr/bin/env bash
# Load run across two Sentinel failovers with replica acknowledgement on (redis.replica_acks):
# starts a master and two replicas (min-replicas-to-write 1) and three sentinels on loopback,
# one sso-token in sentinel mode, and the load tool (sso-loadtest, open loop) against it. Mid-run
# it asks for `SENTINEL FAILOVER`; once that is over, it kills the new master with SIGKILL, so
# that Sentinel promotes another. With --cluster, the same across two failovers of one shard of
# a Redis Cluster (three masters with two replicas each): `CLUSTER FAILOVER` on a replica, then
# SIGKILL to that new master. After the run the load tool presents every code it sent once
# more (--recheck): a spent code must be refused, a code whose answer was a 503 may get its
# token now. Prints and checks:
#   - exchanges (200s), 503 temporarily_unavailable, other non-200 answers (must be 0);
#   - codes exchanged twice and jti issued twice, over the run and the recheck (must be 0);
#   - sso_replica_ack_failures_total of the service (printed, not checked).
# Exits 0 when every check passes, 1 otherwise, 2 when it could not run.
#
# Usage: scripts/failover-load.sh [options]
#   --rate R              requests/s, open loop [300]
#   -d, --duration SECS   length of the loaded run, at least 25 (two failovers) [30]
#   -c, --connections C   most requests in flight [32]
#   --cluster             a Redis Cluster instead of Sentinel
#   --replica-acks N      redis.replica_acks of the service [1]; 0 runs without (the hazard)
#   --ack-timeout-ms MS   redis.replica_ack_timeout_ms, below 1000 (the run's redis.timeout_ms) [300]
#   --profile P           release or debug binaries [release]
#   --no-build            use the binaries as they are
#   --out DIR             JSON summary, metrics and logs [target/failover-load]
#   -h, --help            this text
#
# CPU-heavy while it runs (six Redis processes, nine with --cluster, the service and the
# generator).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh  # usage, die, need (options), and the helpers used below
# The demo client (config/demo-clients.toml) unless the caller names a registry.
export SSO__CLIENTS__FILE="${SSO__CLIENTS__FILE:-$(pwd)/config/demo-clients.toml}"

rate=300 duration=30 connections=32 acks=1 ack_timeout=300 profile=release build=1 cluster=0
out=target/failover-load
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --rate) need "$@"; rate="$2"; shift ;;
    -d|--duration) need "$@"; duration="$2"; shift ;;
    -c|--connections) need "$@"; connections="$2"; shift ;;
    --cluster) cluster=1 ;;
    --replica-acks) need "$@"; acks="$2"; shift ;;
    --ack-timeout-ms) need "$@"; ack_timeout="$2"; shift ;;
    --profile) need "$@"; profile="$2"; shift ;;
    --no-build) build=0 ;;
    --out) need "$@"; out="$(from_caller "$2")"; shift ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done
valid_profile "$profile"
positive "$rate" "$duration" "$connections" "$ack_timeout"
[[ "$acks" =~ ^[0-9]+$ ]] || die "--replica-acks must be a number"
(( duration >= 25 )) || die "--duration must be at least 25 s (two failovers)"
# The service refuses an ack timeout that is not below redis.timeout_ms (1000 here, below).
(( ack_timeout < 1000 )) || die "--ack-timeout-ms must be below 1000 (the run's redis.timeout_ms)"

prepare_run "$profile" "$build"
rm -f "$out"/node-*.log "$out"/sentinel-*.log  # a failed run's logs are then its own

# Data nodes: every master with two replicas, as README "Redis topologies" advises.
declare -A node_pid
start_node() { # start_node PORT [redis-server args]
  local port="$1"; shift
  mkdir -p "$work/node-$port"
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
    --loglevel warning --dir "$work/node-$port" --min-replicas-to-write 1 \
    --min-replicas-max-lag 5 --repl-diskless-sync-delay 0 "$@" >"$out/node-$port.log" 2>&1 &
  node_pid[$port]=$!
  pids+=("$!")
  wait_redis "$port" || die "redis-server on $port did not start (see $out/node-$port.log)"
}
role() { redis-cli -p "$1" role 2>/dev/null | head -1 || true; }
# wait_replicas PORT N: until the master on PORT has N replicas online (10 s at most).
wait_replicas() {
  for _ in $(seq 100); do
    (( $(redis-cli -p "$1" info replication | grep -c 'state=online') == $2 )) && return 0
    sleep 0.1
  done
  die "the master on $1 does not have $2 replicas online"
}

if (( cluster )); then
  nodes=()
  # clashes PORT: an earlier node's bus took PORT, or an earlier node has PORT's bus port (the
  # earlier nodes may not listen on them yet).
  clashes() {
    local taken
    for taken in "${nodes[@]}"; do
      (( $1 == taken || $1 == taken + 10000 || $1 + 10000 == taken )) && return 0
    done
    return 1
  }
  for _ in $(seq 9); do
    port=$(free_port paired)
    while clashes "$port"; do port=$(free_port paired); done
    start_node "$port" --cluster-enabled yes --cluster-node-timeout 1000 \
      --cluster-config-file "$work/node-$port/nodes.conf"
    nodes+=("$port")
  done
  redis-cli --cluster create $(printf '127.0.0.1:%s ' "${nodes[@]}") --cluster-replicas 2 \
    --cluster-yes >"$out/cluster-create.log" 2>&1 \
    || die "redis-cli --cluster create failed (see $out/cluster-create.log)"
  for _ in $(seq 100); do
    ok=1
    for port in "${nodes[@]}"; do
      redis-cli -p "$port" cluster info | grep -q 'cluster_state:ok' || ok=0
    done
    (( ok )) && break
    sleep 0.1
  done
  (( ok )) || die "the cluster did not come up"
  masters=()
  for port in "${nodes[@]}"; do [[ "$(role "$port")" == master ]] && masters+=("$port"); done
  for port in "${masters[@]}"; do wait_replicas "$port" 2; done
  # The shard that fails over: the first master and its replicas.
  shard=("${masters[0]}")
  for port in "${nodes[@]}"; do
    [[ "$(redis-cli -p "$port" role 2>/dev/null | sed -n 3p)" == "${masters[0]}" ]] && shard+=("$port")
  done
  (( ${#shard[@]} == 3 )) || die "the shard of ${masters[0]} is not a master and two replicas"
  echo "== cluster: masters ${masters[*]}; the shard of ${masters[0]}: replicas ${shard[*]:1}"
  node_urls=$(printf 'redis://127.0.0.1:%s,' "${masters[@]}")
  export SSO__REDIS__MODE=cluster SSO__REDIS__NODES="${node_urls%,}"
  current_master() { # the master of the shard that fails over (a killed node answers nothing)
    for port in "${shard[@]}"; do
      [[ "$(role "$port" || true)" == master ]] && { echo "$port"; return 0; }
    done
    return 0
  }
  # wait_master_not PORT: until another node of the shard is its master and the cluster is ok
  # there (30 s at most).
  wait_master_not() {
    for _ in $(seq 300); do
      local m
      m=$(current_master)
      if [[ -n "$m" && "$m" != "$1" ]] && redis-cli -p "$m" cluster info | grep -q 'cluster_state:ok'; then
        return 0
      fi
      sleep 0.1
    done
    die "no node of the shard took over from $1"
  }
  first_failover() { # CLUSTER FAILOVER on a replica of the shard's master
    local replica=""
    for port in "${shard[@]}"; do [[ "$(role "$port")" == slave ]] && { replica=$port; break; }; done
    [[ -n "$replica" ]] || die "no replica in the shard of $1"
    echo "== t+$(since "$t0") s: CLUSTER FAILOVER on $replica (master $1)"
    [[ "$(redis-cli -p "$replica" cluster failover 2>/dev/null)" == OK ]] \
      || die "CLUSTER FAILOVER on $replica was refused"
  }
  # A replica that just lost an election waits before the next; the shard's replicas must also
  # be in sync with the new master again before it is killed.
  settle() { wait_replicas "$1" 2; sleep 3; }
else
  master_name=sso
  master=$(free_port)
  start_node "$master"
  replicas=("$(free_port)" "$(free_port)")
  for port in "${replicas[@]}"; do start_node "$port" --replicaof 127.0.0.1 "$master"; done
  wait_replicas "$master" 2

  sentinels=()
  for i in 0 1 2; do
    port=$(free_port)
    cat >"$work/sentinel-$i.conf" <<EOF
port $port
bind 127.0.0.1
sentinel monitor $master_name 127.0.0.1 $master 2
sentinel down-after-milliseconds $master_name 1000
sentinel failover-timeout $master_name 3000
sentinel parallel-syncs $master_name 1
EOF
    redis-server "$work/sentinel-$i.conf" --sentinel --daemonize no --loglevel warning \
      >"$out/sentinel-$i.log" 2>&1 &
    pids+=("$!")
    wait_redis "$port" || die "sentinel $i did not start (see $out/sentinel-$i.log)"
    sentinels+=("$port")
  done
  current_master() {
    redis-cli -p "${sentinels[0]}" sentinel get-master-addr-by-name "$master_name" 2>/dev/null | sed -n 2p
  }
  # wait_master_not PORT: until every sentinel names a master other than PORT (30 s at most).
  wait_master_not() {
    for _ in $(seq 300); do
      local moved=1
      for s in "${sentinels[@]}"; do
        local m
        m=$(redis-cli -p "$s" sentinel get-master-addr-by-name "$master_name" 2>/dev/null | sed -n 2p)
        [[ -n "$m" && "$m" != "$1" ]] || moved=0
      done
      (( moved )) && return 0
      sleep 0.1
    done
    die "the sentinels did not move the master away from $1"
  }
  echo "== master $master, replicas ${replicas[*]}, sentinels ${sentinels[*]}"

  sentinel_urls=$(printf 'redis://127.0.0.1:%s,' "${sentinels[@]}")
  export SSO__REDIS__MODE=sentinel SSO__REDIS__SENTINELS="${sentinel_urls%,}"
  export SSO__REDIS__MASTER_NAME="$master_name"
  first_failover() { # SENTINEL FAILOVER
    echo "== t+$(since "$t0") s: SENTINEL FAILOVER (master $1)"
    for _ in $(seq 50); do
      [[ "$(redis-cli -p "${sentinels[0]}" sentinel failover "$master_name" 2>/dev/null)" == OK ]] && break
      sleep 0.2
    done
  }
  # A sentinel starts no new failover of a master within 2 × failover-timeout of the last one.
  settle() { sleep 8; }
fi
export SSO__REDIS__TIMEOUT_MS=1000
export SSO__REDIS__REPLICA_ACKS="$acks" SSO__REDIS__REPLICA_ACK_TIMEOUT_MS="$ack_timeout"
export SSO__TOKEN__SIGNING_KEY="$work/signing.pem"
echo "== Ed25519 signing key: kid $("$server_bin" keygen --kind ed25519 --out "$SSO__TOKEN__SIGNING_KEY")"
service_port=$(free_port)
env SSO__SERVER__LISTEN="127.0.0.1:$service_port" SSO__SERVER__WORKERS=2 RUST_LOG=warn \
  "$server_bin" serve >"$out/service.log" 2>&1 &
pids+=("$!")
echo "== sso-token on 127.0.0.1:$service_port, redis.replica_acks = $acks (${ack_timeout} ms)"

echo "== load: $rate requests/s for $duration s, then every code once more"
"$loadtest_bin" run --url "http://127.0.0.1:$service_port" --wait-ready 30 --rate "$rate" \
  -d "$duration" -c "$connections" --timeout 5 --recheck --allow-errors --no-progress \
  --label "failover-acks-$acks" --json "$out/failover.json" >"$out/loadtest.txt" 2>&1 &
load_pid=$!
pids+=("$load_pid")

# The run starts once the codes are seeded: wait for the first successful exchanges.
ok_count() {
  curl -fs --max-time 1 "http://127.0.0.1:$service_port/metrics" 2>/dev/null \
    | awk '$1 == "sso_requests_total{endpoint=\"token\",outcome=\"ok\"}" { print int($2) }'
}
started=0
for _ in $(seq 600); do
  [[ "$(ok_count)" -gt 0 ]] 2>/dev/null && { started=1; break; }
  kill -0 "$load_pid" 2>/dev/null || die "the load tool stopped early (see $out/loadtest.txt)"
  sleep 0.1
done
(( started )) || die "no exchange succeeded in the first 60 s of the load (see $out/loadtest.txt)"
t0=$(now)
sleep 5
first=$(current_master)
first_failover "$first"
wait_master_not "$first"
second=$(current_master)
echo "== t+$(since "$t0") s: the master is $second"
settle "$second"
kill -0 "$load_pid" 2>/dev/null || die "the run ended before the second failover: raise -d"
echo "== t+$(since "$t0") s: SIGKILL to the master $second"
kill -KILL "${node_pid[$second]}"
wait "${node_pid[$second]}" 2>/dev/null || true
wait_master_not "$second"
echo "== t+$(since "$t0") s: the master is $(current_master)"
wait "$load_pid" && load_status=0 || load_status=$?
cat "$out/loadtest.txt"
(( load_status <= 1 )) || die "the load tool could not run (exit $load_status)"
curl -fs --max-time 2 "http://127.0.0.1:$service_port/metrics" >"$out/metrics.txt" || true

json="$out/failover.json"
exchanged=$(jq .successes "$json")
unavailable=$(summed errors '^503 temporarily_unavailable$' "$json")
other=$(( $(jq '[.errors[]] | add // 0' "$json") - unavailable ))
codes_twice=$(summed violation_kinds 'exchanged for a token more than once' "$json")
jtis_twice=$(summed violation_kinds 'jti value' "$json")
violations=$(jq .violations "$json")
ack_failures=$(awk '/^sso_replica_ack_failures_total/ { printf "%s%s=%s", sep, $1, $2; sep = ", " }' \
  "$out/metrics.txt" | sed 's/sso_replica_ack_failures_total//g')

cat <<EOF
== failover-load results (redis.replica_acks = $acks)
   requests sent                     $(jq .requests_sent "$json")
   exchanges (200)                   $exchanged
   503 temporarily_unavailable       $unavailable
   other non-200 answers             $other   (must be 0; recheck answers included)
   recheck                           $(jq -r '.recheck | "\(.presented) presented again, \(.refused) refused, \(.tokens) first tokens"' "$json")
   codes exchanged twice             $codes_twice   (must be 0)
   jti issued twice                  $jtis_twice   (must be 0)
   violations in all                 $violations   (must be 0)
   replica ack failures              ${ack_failures:-none}
EOF
failed=0
for n in "$other" "$codes_twice" "$jtis_twice" "$violations"; do
  [[ "$n" == 0 ]] || failed=1
done
(( exchanged > 0 )) || failed=1
if [[ $failed != 0 ]]; then
  echo "failover-load.sh: FAILED (logs in $out)" >&2
  exit 1
fi
echo "== failover-load passed"
