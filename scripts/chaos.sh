#!/usr/bin/env bash
# Chaos test: runs the load tool (sso-loadtest, open loop) against two replicas sharing one
# private Redis while it
#   (a) stops Redis (SHUTDOWN SAVE: the seeded codes survive) for a few seconds, starts it again;
#   (b) sends SIGTERM to replica 1 mid-load, waits for it to exit, starts it again. The
#       replicas keep serving, unready, for 1 s after SIGTERM (server.shutdown_delay_ms) and
#       the load tool health-checks /readyz every 100 ms, as a load balancer does: the way a
#       replica is taken out without a request lost (README, "Stopping").
# It samples sso_requests_total{endpoint="token",outcome="ok"} of both replicas every second
# (GET /metrics) to time the recovery, then prints the counts and checks them:
#   - no 5xx but 503 temporarily_unavailable, and no other error answer;
#   - no code exchanged twice, no jti twice (the load tool's cross-checks), no bad token;
#   - every request that reached a replica answered: only refused connections (the replica
#     was down; a load balancer sends those elsewhere) may go unanswered, never a request
#     cut off or timed out in flight;
#   - back to >= 90 % of the rate within --recovery seconds of each restart, and the
#     restarted replica taking requests again.
# Exits 0 when every check passes, 1 otherwise, 2 when it could not run.
#
# Usage: scripts/chaos.sh [options]
#   --rate R             requests/s, open loop [200]
#   -d, --duration SECS  length of the loaded run, at least redis-down + replica-down +
#                        2 × recovery + 7 (22 at the defaults) [24]
#   -c, --connections C  most requests in flight [32]
#   --redis-down SECS    how long Redis stays down [3]
#   --replica-down SECS  how long replica 1 stays down after it exited [2]
#   --recovery SECS      allowed time back to 90 % of the rate after each restart [5]
#   --profile P          release or debug binaries [release]
#   --no-build           use the binaries as they are
#   --out DIR            JSON summary, rate samples and logs [target/chaos]
#   -h, --help           this text
#
# CPU-heavy while it runs (two servers, Redis and the generator); keep runs short on shared
# machines, e.g. scripts/chaos.sh --profile debug --rate 150 -d 22.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh  # usage, die, need (options), and the helpers used below
# The demo client (config/demo-clients.toml) unless the caller names a registry.
export SSO__CLIENTS__FILE="${SSO__CLIENTS__FILE:-$(pwd)/config/demo-clients.toml}"

rate=200 duration=24 connections=32 redis_down=3 replica_down=2 recovery=5
profile=release build=1 out=target/chaos
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --rate) need "$@"; rate="$2"; shift ;;
    -d|--duration) need "$@"; duration="$2"; shift ;;
    -c|--connections) need "$@"; connections="$2"; shift ;;
    --redis-down) need "$@"; redis_down="$2"; shift ;;
    --replica-down) need "$@"; replica_down="$2"; shift ;;
    --recovery) need "$@"; recovery="$2"; shift ;;
    --profile) need "$@"; profile="$2"; shift ;;
    --no-build) build=0 ;;
    --out) need "$@"; out="$(from_caller "$2")"; shift ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done
valid_profile "$profile"
positive "$rate" "$duration" "$connections" "$redis_down" "$replica_down" "$recovery"
(( duration >= redis_down + replica_down + 2 * recovery + 7 )) || die "--duration is too short for both events"

prepare_run "$profile" "$build"

redis_port=$(free_port)
start_redis() {
  # No automatic saves; SHUTDOWN SAVE writes chaos.rdb and the restart loads it back.
  redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$work" --dbfilename chaos.rdb --daemonize no --loglevel warning \
    >>"$out/redis.log" 2>&1 &
  redis_pid=$!
  pids+=("$redis_pid")
  for _ in $(seq 50); do
    [[ "$(redis-cli -p "$redis_port" ping 2>/dev/null || true)" == PONG ]] && return 0
    sleep 0.1
  done
  die "redis-server did not start (see $out/redis.log)"
}
: >"$out/redis.log"
start_redis
export SSO__REDIS__URL="redis://127.0.0.1:$redis_port"
export SSO__TOKEN__SIGNING_KEY="$work/signing.pem"
echo "== Ed25519 signing key: kid $("$server_bin" keygen --kind ed25519 --out "$SSO__TOKEN__SIGNING_KEY")"

ports=("$(free_port)" "$(free_port)")
replica_pids=("" "")
start_replica() { # start_replica INDEX
  local i="$1"
  env SSO__SERVER__LISTEN="127.0.0.1:${ports[$i]}" SSO__SERVER__WORKERS=1 \
    SSO__SERVER__SHUTDOWN_TIMEOUT_SECS=10 SSO__SERVER__SHUTDOWN_DELAY_MS=1000 \
    RUST_LOG=warn "$server_bin" serve \
    >>"$out/replica-$i.log" 2>&1 &
  replica_pids[$i]=$!
  pids+=("$!")
  wait_ready "http://127.0.0.1:${ports[$i]}" "${replica_pids[$i]}" \
    || die "replica $((i + 1)) exited or did not become ready (see $out/replica-$i.log)"
}
for i in 0 1; do : >"$out/replica-$i.log"; start_replica "$i"; done
echo "== replicas on ports ${ports[*]}, Redis on $redis_port"

# Successful exchanges per second, both replicas, robust to a replica's counters restarting.
sampler() {
  local -a last=(0 0)
  local series='sso_requests_total{endpoint="token",outcome="ok"}'
  while true; do
    local delta=0
    for i in 0 1; do
      local v
      v=$(curl -fs --max-time 0.5 "http://127.0.0.1:${ports[$i]}/metrics" 2>/dev/null \
        | awk -v s="$series" '$1 == s { print int($2) }') || true
      [[ -n "$v" ]] || continue
      if (( v >= last[i] )); then delta=$(( delta + v - last[i] )); else delta=$(( delta + v )); fi
      last[i]=$v
    done
    echo "$(now) $delta"
    sleep 1
  done
}
sampler >"$out/rate.txt" &
pids+=("$!")

echo "== load: $rate requests/s for $duration s, two replicas"
"$loadtest_bin" run --url "http://127.0.0.1:${ports[0]}" --url "http://127.0.0.1:${ports[1]}" \
  --wait-ready 30 --health-check-ms 100 --rate "$rate" -d "$duration" -c "$connections" --timeout 5 \
  --allow-errors --no-progress --label chaos --json "$out/chaos.json" >"$out/loadtest.txt" 2>&1 &
load_pid=$!
pids+=("$load_pid")

# The run starts once codes are seeded: wait for the first successful exchanges.
started=0
for _ in $(seq 300); do
  awk '$2 > 0 { found = 1 } END { exit !found }' "$out/rate.txt" 2>/dev/null && { started=1; break; }
  kill -0 "$load_pid" 2>/dev/null || die "the load tool stopped early (see $out/loadtest.txt)"
  sleep 0.1
done
(( started )) || die "no exchange succeeded in the first 30 s of the load (see $out/loadtest.txt)"
t0=$(now)
sleep 4
echo "== t+$(since "$t0") s: stopping Redis (SHUTDOWN SAVE) for $redis_down s"
redis-cli -p "$redis_port" shutdown save >/dev/null 2>&1 || true
wait "$redis_pid" 2>/dev/null || true
sleep "$redis_down"
start_redis
redis_back=$(now)
echo "== t+$(since "$t0") s: Redis is back"
sleep $((recovery + 1))
echo "== t+$(since "$t0") s: SIGTERM to replica 1"
kill -TERM "${replica_pids[0]}"
wait "${replica_pids[0]}" 2>/dev/null || true
echo "== t+$(since "$t0") s: replica 1 exited; restarting it in $replica_down s"
sleep "$replica_down"
start_replica 0
replica_back=$(now)
echo "== t+$(since "$t0") s: replica 1 is back"
wait "$load_pid" && load_status=0 || load_status=$?
# The restarted replica must have taken requests again (its counters start from zero).
back_ok=$(curl -fs --max-time 1 "http://127.0.0.1:${ports[0]}/metrics" 2>/dev/null \
  | awk '$1 == "sso_requests_total{endpoint=\"token\",outcome=\"ok\"}" { print int($2) }') || true
back_ok=${back_ok:-0}
cat "$out/loadtest.txt"
(( load_status <= 1 )) || die "the load tool could not run (exit $load_status)"

# Seconds from `from` until the first one-second sample at >= 90 % of the rate (before `until`).
recovered_after() { # recovered_after FROM UNTIL
  awk -v from="$1" -v until="$2" -v want="$(( rate * 9 / 10 ))" \
    '$1 > from && $1 <= until && $2 >= want { printf "%.0f", $1 - from; found = 1; exit }
     END { if (!found) print "never" }' "$out/rate.txt"
}
replica_kill=$(awk -v t="$redis_back" -v r="$recovery" 'BEGIN { printf "%.3f", t + r + 1 }')
redis_recovery=$(recovered_after "$redis_back" "$replica_kill")
replica_recovery=$(recovered_after "$replica_back" "$(now)")

json="$out/chaos.json"
sent=$(jq .requests_sent "$json")
ok=$(jq .successes "$json")
unavailable=$(summed errors '^503 temporarily_unavailable$' "$json")
refused=$(summed errors '^connect: ' "$json")
other_5xx=$(jq '[.errors | to_entries[] | select(.key | test("^5")) | select(.key != "503 temporarily_unavailable") | .value] | add // 0' "$json")
unanswered=$(summed errors '^(i/o: |connection closed|timeout|malformed)' "$json")
other_errors=$(( $(jq '[.errors[]] | add // 0' "$json") - unavailable - refused - other_5xx - unanswered ))
codes_twice=$(summed violation_kinds 'exchanged for a token more than once' "$json")
jtis_twice=$(summed violation_kinds 'jti value' "$json")
violations=$(jq .violations "$json")

cat <<EOF
== chaos results
   requests sent                        $sent
   tokens issued                        $ok
   503 temporarily_unavailable          $unavailable
   refused connections (replica down)   $refused
   in-flight requests not answered      $unanswered   (must be 0)
   other 5xx                            $other_5xx   (must be 0)
   other error answers                  $other_errors   (must be 0)
   codes exchanged twice                $codes_twice   (must be 0)
   jti issued twice                     $jtis_twice   (must be 0)
   violations in all                    $violations   (must be 0)
   back to 90 % of rate after Redis     ${redis_recovery} s   (at most $recovery)
   back to 90 % of rate after replica   ${replica_recovery} s   (at most $recovery)
   tokens from the restarted replica    $back_ok   (must be > 0)
   rate samples: $out/rate.txt
EOF
failed=0
for n in "$unanswered" "$other_5xx" "$other_errors" "$codes_twice" "$jtis_twice" "$violations"; do
  [[ "$n" == 0 ]] || failed=1
done
for r in "$redis_recovery" "$replica_recovery"; do
  [[ "$r" != never && "$r" -le "$recovery" ]] || failed=1
done
(( ok > 0 && back_ok > 0 )) || failed=1
if [[ $failed != 0 ]]; then
  echo "chaos.sh: FAILED (logs in $out)" >&2
  exit 1
fi
echo "== chaos passed"
