#!/usr/bin/env bash
# Load-tests sso-token with its load generator (src/bin/sso-loadtest): seeds authorization codes
# into Redis, drives POST /identity/sso/oauth2/access_token, verifies every answer (status, the
# six fields, JWT signature and claims, no jti or code accepted twice) and prints a summary:
# throughput, latency percentiles, errors by kind, Redis commands per exchange, CPU, peak RSS.
# Exits non-zero on any violation or unexpected error.
#
# Usage: scripts/loadtest.sh [options] [-- more `sso-loadtest run` options]
#   (their paths, after --trace, --compare or --config-dir, are read against the directory you
#   run it from, as --out and --key are; the summaries' JSON goes to --out)
#
# By default it builds the release binaries, generates a fresh RSA-2048 key, starts one server
# pinned to CPU 0 with one worker (SSO__SERVER__WORKERS=1), runs the generator on CPU 1 against
# the Redis of the configuration (config/, SSO_ENV, SSO__REDIS__URL), and stops what it started.
# Redis' figures count every client of that Redis, other users' commands too: --start-redis
# gives the run a Redis of its own.
#
# Servers
#   --url URL             test a running server instead of starting one; repeat for several, up
#                         to 64 (requests go round-robin; each of the -c connections holds one
#                         to every server). Its key and clients must be the config's.
#   --instances N         servers to start, all against one Redis [1]
#   --port PORT           port of the first started server, the others on the next ports
#                         [free ports below the ephemeral range]
#   --workers N           worker threads of each started server [1]
#   --server-cpus LIST    taskset CPU list of started servers (and of --sign-bench) [0]
#   --client-cpus LIST    taskset CPU list of the generator [1]
#   --client-rt           run the generator with real-time priority (chrt -f 1, needs root), the
#                         same as --redis-rt gives Redis: on a CPU shared with a real-time Redis
#                         its open-loop sends then leave on time instead of queueing behind Redis
#                         (how late they leave is still measured, and counted in the latencies)
#   --no-pin              no taskset at all
#   --server-log LEVEL    RUST_LOG of started servers [warn: no access log line per request]
# Redis
#   --start-redis         start a private redis-server (no persistence) and use it
#   --redis-port PORT     its port [a free one]
#   --redis-cpus LIST     taskset CPU list of that redis-server [not pinned]
#   --redis-rt            run that redis-server with real-time priority (chrt -f 1, needs root):
#                         sharing a CPU with the generator, it then answers at once, as a Redis
#                         on its own machine would, instead of queueing behind the generator
#   --replica             also start a replica of it (same CPUs and priority)
#   --replica-acks N      started servers wait for N replica acknowledgements per exchange
#                         (redis.replica_acks; redis.replica_ack_timeout_ms from the config)
# Signing key (started servers and the generator read the same one)
#   --alg ALG             generate a fresh key: rs256 (RSA-2048), es256 (P-256), eddsa (Ed25519)
#                         [rs256 when servers are started and --key is not given]
#   --key FILE            use this PEM private key (sets SSO__TOKEN__SIGNING_KEY)
# Load (shortcuts for `sso-loadtest run` options; see `sso-loadtest run --help` for all)
#   -c, --connections C   connections, or most requests in flight with --rate [50]
#   -n, --requests N      requests to send [10000 unless --duration]
#   -d, --duration SECS   run for this long instead
#   --rate R              open loop: R requests/s on a fixed timetable; latency from due time
#   --warmup N            closed-loop requests before the measured run, not counted [1000; 0 in --smoke]
#   --form-basic          form body + HTTP Basic instead of the seed's JSON
#   --pkce                store an S256 challenge with each code and send the verifier
#   --replay-every K      every K-th request re-sends the previous code: one of two must win
#   --no-verify-signature skip the JWT signature check (everything else is still checked)
# Extra runs, compared with the main one in its summary
#   --sign-bench SECS     first measure raw signatures/s of the key on one thread (server CPUs)
#   --healthz             also drive GET /healthz with the same connections (the ES256/EdDSA
#                         target is exchanges/s >= 25 % of that)
# Other
#   --out DIR             JSON summaries and server logs go here [target/loadtest]
#   --label TEXT          name of the run in its summary
#   --trace               also write each answered request's due time and latency (µs) to
#                         OUT_DIR/trace-token.txt (and trace-healthz.txt): when the slow ones
#                         happened
#   --perf-stat           count what the started servers ask of the kernel per request, warm-up
#                         included: system calls (sendto, recvfrom, writev, epoll_wait), the
#                         inter-processor interrupts they send (wake-ups of another CPU), their
#                         context switches, and the machine's TCP segments sent (loopback: both
#                         directions, Redis's too). Needs perf (linux-perf) and root; printed
#                         after each run, kept in OUT_DIR/perf-token.csv (and perf-healthz.csv)
#   --profile P           release or debug binaries [release; debug with --smoke]
#   --no-build            use the binaries as they are
#   --smoke               CI smoke test: private Redis, one debug server, a few hundred verified
#                         exchanges (JSON with replays, form + Basic + PKCE open loop, healthz,
#                         sign-bench); fails on any violation or error. Takes no load
#                         options of its own (-c, -n, -d, --rate, --healthz, --trace, ...)
#   -h, --help            this text
#
# Examples
#   scripts/loadtest.sh --start-redis --alg rs256 --sign-bench 5 -c 64 -d 20
#   scripts/loadtest.sh --start-redis --alg eddsa --healthz -c 64 -d 20
#   scripts/loadtest.sh --start-redis --alg eddsa --rate 10000 -d 30 -c 200
#   scripts/loadtest.sh --start-redis --instances 2 --server-cpus 0 -c 100 -d 20
#   scripts/loadtest.sh --start-redis --replica --replica-acks 1 --alg eddsa -c 64 -d 20
#   scripts/loadtest.sh --url http://127.0.0.1:8080 -n 5000 -- --server-pid 1234
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh  # usage, die, need (options), and the helpers used below
# The demo client (config/demo-clients.toml) unless the caller names a registry.
export SSO__CLIENTS__FILE="${SSO__CLIENTS__FILE:-$(pwd)/config/demo-clients.toml}"

# Prints its arguments NUL-separated, the paths among them (the values of `sso-loadtest run`'s
# path options) made absolute against the caller's directory: the generator runs from the
# repository root.
caller_paths() {
  local arg path_next=0
  for arg in "$@"; do
    if ((path_next)); then
      arg="$(from_caller "$arg")" path_next=0
    else
      case "$arg" in
        --trace|--compare|--config-dir) path_next=1 ;;
        --trace=*|--compare=*|--config-dir=*) arg="${arg%%=*}=$(from_caller "${arg#*=}")" ;;
      esac
    fi
    printf '%s\0' "$arg"
  done
}

urls=() instances=1 port="" workers=1 server_cpus=0 client_cpus=1 pin=1 server_log=warn
start_redis=0 redis_port="" redis_cpus="" redis_rt=0 client_rt=0 replica=0 replica_acks="" alg="" key="" out="target/loadtest" label=""
profile="" build=1 smoke=0 sign_bench="" healthz=0 warmup="" trace=0 perf_stat=0 run_args=() extra=()
started_only=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --url) need "$@"; urls+=("$2"); shift ;;
    --instances) need "$@"; instances="$2"; started_only+=("$1"); shift ;;
    --port) need "$@"; port="$2"; started_only+=("$1"); shift ;;
    --workers) need "$@"; workers="$2"; started_only+=("$1"); shift ;;
    --server-cpus) need "$@"; server_cpus="$2"; shift ;;
    --client-cpus) need "$@"; client_cpus="$2"; shift ;;
    --client-rt) client_rt=1 ;;
    --no-pin) pin=0 ;;
    --server-log) need "$@"; server_log="$2"; started_only+=("$1"); shift ;;
    --start-redis) start_redis=1; started_only+=("$1") ;;
    --redis-port) need "$@"; redis_port="$2"; shift ;;
    --redis-cpus) need "$@"; redis_cpus="$2"; shift ;;
    --redis-rt) redis_rt=1 ;;
    --replica) replica=1; started_only+=("$1") ;;
    --replica-acks) need "$@"; replica_acks="$2"; started_only+=("$1"); shift ;;
    --alg) need "$@"; alg="$2"; started_only+=("$1"); shift ;;
    --key) need "$@"; key="$(from_caller "$2")"; shift ;;
    -c|--connections|-n|--requests|-d|--duration|--rate|--replay-every)
      need "$@"; run_args+=("$1" "$2"); shift ;;
    --warmup) need "$@"; warmup="$2"; shift ;;
    --form-basic|--pkce|--no-verify-signature) run_args+=("$1") ;;
    --sign-bench) need "$@"; sign_bench="$2"; shift ;;
    --healthz) healthz=1 ;;
    --trace) trace=1 ;;
    --perf-stat) perf_stat=1 ;;
    --out) need "$@"; out="$(from_caller "$2")"; shift ;;
    --label) need "$@"; label="$2"; shift ;;
    --profile) need "$@"; profile="$2"; shift ;;
    --no-build) build=0 ;;
    --smoke) smoke=1 ;;
    --) shift; mapfile -d '' -t extra < <(caller_paths "$@"); break ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done

(( ${#urls[@]} == 0 || ${#started_only[@]} == 0 )) \
  || die "with --url, drop ${started_only[*]}: they set up the servers this script starts"
# --smoke starts its own Redis.
[[ $smoke == 1 ]] && start_redis=1
[[ $replica == 0 || $start_redis == 1 ]] || die "--replica needs --start-redis"
[[ $start_redis == 1 || ( -z "$redis_port" && -z "$redis_cpus" && $redis_rt == 0 ) ]] \
  || die "--redis-port, --redis-cpus and --redis-rt apply to a started Redis: add --start-redis"
if [[ $smoke == 1 ]] && (( ${#run_args[@]} > 0 || healthz == 1 || trace == 1 || perf_stat == 1 )) ; then
  die "--smoke runs its own fixed load; drop the load options (-c, -n, -d, --rate, --healthz, ...)"
fi
if [[ $perf_stat == 1 ]]; then
  (( ${#urls[@]} == 0 )) || die "--perf-stat counts the servers this script starts: drop --url"
  command -v perf >/dev/null || die "--perf-stat needs perf (apt-get install linux-perf)"
  command -v nstat >/dev/null || die "--perf-stat needs nstat (apt-get install iproute2)"
  ensure_tool jq jq
fi
# --redis-rt and --client-rt: the same real-time priority, so neither preempts the other.
realtime=(chrt -f 1)
if [[ $redis_rt == 1 || $client_rt == 1 ]]; then
  command -v chrt >/dev/null || die "--redis-rt and --client-rt need chrt (util-linux)"
fi
if [[ -n "$replica_acks" ]]; then
  [[ "$replica_acks" =~ ^[0-9]+$ ]] || die "--replica-acks must be a number"
  export SSO__REDIS__REPLICA_ACKS="$replica_acks"
fi
if [[ $smoke == 1 ]]; then
  profile="${profile:-debug}"
  alg="${alg:-rs256}"
  warmup="${warmup:-0}"
  [[ ${#urls[@]} -eq 0 ]] || die "--smoke starts its own server; drop --url"
fi
profile="${profile:-release}"
warmup="${warmup:-1000}"
valid_profile "$profile"
[[ "$instances" =~ ^[1-9][0-9]*$ ]] || die "--instances must be a positive number"
start_servers=0
[[ ${#urls[@]} -eq 0 ]] && start_servers=1
if [[ $start_servers == 1 && -z "$alg" && -z "$key" ]]; then alg=rs256; fi
[[ -n "$alg" && -n "$key" ]] && die "--alg and --key exclude each other"
case "$alg" in
  "") ;;
  rs256) kind=rsa2048 ;;
  es256) kind=p256 ;;
  eddsa) kind=ed25519 ;;
  *) die "--alg is rs256, es256 or eddsa" ;;
esac
if [[ $pin == 1 ]] && { ! command -v taskset >/dev/null 2>&1 || [[ "$(nproc)" -lt 2 ]]; }; then
  echo "== no taskset or a single CPU: running unpinned"
  pin=0
fi
# A container or a CPU manager may allow other CPUs than 0 and 1 (the defaults): taskset would
# refuse them, and the run would fail after the build.
if [[ $pin == 1 ]]; then
  for cpus in "$server_cpus" "$client_cpus" "$redis_cpus"; do
    [[ -z "$cpus" ]] || taskset -c "$cpus" true 2>/dev/null && continue
    echo "== CPUs $cpus are not all allowed here ($(taskset -pc $$ | sed 's/.*: //')): running unpinned"
    pin=0
    break
  done
fi
pinned_to() { if [[ $pin == 1 && -n "$1" ]]; then echo "$1"; else echo any; fi; }
on_cpus() { # on_cpus LIST command...: pinned when pinning is on and LIST is not empty
  local cpus="$1"; shift
  if [[ $pin == 1 && -n "$cpus" ]]; then taskset -c "$cpus" "$@"; else "$@"; fi
}
spawn() { # spawn LIST LOG command...: like on_cpus, in the background; sets $spawned to its pid
  local cpus="$1" log="$2"; shift 2
  if [[ $pin == 1 && -n "$cpus" ]]; then set -- taskset -c "$cpus" "$@"; fi
  "$@" >"$log" 2>&1 &
  spawned=$!
  pids+=("$spawned")
}

# 1,000 connections need 1,000 descriptors on each side: raise the soft limit when allowed.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
mkdir -p "$out"
out="$(cd "$out" && pwd)"
rm -f "$out"/server-*.log  # named by random port: a failed run's logs are then its own
# This run's summaries and traces replace any earlier run's: a run that fails before writing
# its own must not leave an old one to compare against (a ratio) or to count (the smoke trace).
rm -f "$out"/{sign-bench,healthz,token,smoke-json,smoke-form,smoke-healthz}.json \
  "$out"/{smoke-form-trace,trace-healthz,trace-token}.txt "$out"/perf-*.csv
clean_up_on_exit

find_binaries "$profile" "$build"

if [[ $start_redis == 1 ]]; then
  ensure_redis_server
  redis_port="${redis_port:-$(free_port)}"
  # Else the run would seed and measure whatever answers there.
  ! listening "$redis_port" || die "--redis-port $redis_port is in use"
  echo "== starting redis-server on 127.0.0.1:$redis_port$( [[ $redis_rt == 1 ]] && echo ', real-time priority')"
  rt=()
  [[ $redis_rt == 1 ]] && rt=("${realtime[@]}")
  spawn "$redis_cpus" "$out/redis.log" "${rt[@]}" redis-server --port "$redis_port" --bind 127.0.0.1 \
    --save "" --appendonly no --daemonize no --loglevel warning --dir "$work"
  { wait_redis "$redis_port" && kill -0 "$spawned" 2>/dev/null; } \
    || die "redis-server did not start (see $out/redis.log)"
  export SSO__REDIS__URL="redis://127.0.0.1:$redis_port"
  if [[ $replica == 1 ]]; then
    replica_port=$(free_port)
    mkdir -p "$work/replica"
    echo "== starting its replica on 127.0.0.1:$replica_port"
    spawn "$redis_cpus" "$out/replica.log" "${rt[@]}" redis-server --port "$replica_port" \
      --bind 127.0.0.1 --save "" --appendonly no --daemonize no --loglevel warning \
      --dir "$work/replica" --replicaof 127.0.0.1 "$redis_port"
    for _ in $(seq 100); do
      redis-cli -p "$redis_port" info replication 2>/dev/null | grep -q 'state=online' && break
      sleep 0.1
    done
    redis-cli -p "$redis_port" info replication | grep -q 'state=online' \
      || die "the replica did not come in sync (see $out/replica.log)"
  fi
fi

if [[ -n "$alg" ]]; then
  key="$work/signing-$alg.pem"
  echo "== generating a $alg key ($kind): kid $("$server_bin" keygen --kind "$kind" --out "$key")"
fi
if [[ -n "$key" ]]; then
  [[ -r "$key" ]] || die "--key $key is not readable"
  export SSO__TOKEN__SIGNING_KEY="$(cd "$(dirname "$key")" && pwd)/$(basename "$key")"
fi

pid_args=() server_pids=()
if [[ $start_servers == 1 ]]; then
  for i in $(seq 0 $(( instances - 1 ))); do
    if [[ -n "$port" ]]; then p=$(( port + i )); else p="$(free_port)"; fi
    ! listening "$p" || die "port $p is in use: the run would drive whatever serves there"
    echo "== starting sso-token on 127.0.0.1:$p (workers $workers, CPUs $(pinned_to "$server_cpus"))"
    spawn "$server_cpus" "$out/server-$p.log" env SSO__SERVER__LISTEN="127.0.0.1:$p" \
      SSO__SERVER__WORKERS="$workers" SSO__SERVER__SHUTDOWN_TIMEOUT_SECS=1 \
      RUST_LOG="$server_log" "$server_bin" serve
    pid_args+=(--server-pid "$spawned")
    server_pids+=("$spawned")
    urls+=("http://127.0.0.1:$p")
  done
fi
url_args=()
for u in "${urls[@]}"; do url_args+=(--url "$u"); done

client_prio=()
[[ $client_rt == 1 ]] && client_prio=("${realtime[@]}")
generator() { on_cpus "$client_cpus" "${client_prio[@]}" "$loadtest_bin" "$@"; }
# --perf-stat: perf_start NAME before a run, perf_stop NAME JSON after it prints the counts per
# request of that run's summary (its requests and warm-up), from OUT_DIR/perf-NAME.csv.
perf_events="syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_writev"
perf_events+=",syscalls:sys_enter_epoll_wait,ipi:ipi_send_cpu,context-switches"
tcp_segments() { nstat -az TcpOutSegs | awk '$1 == "TcpOutSegs" { print $2 }'; }
perf_start() {
  [[ $perf_stat == 1 ]] || return 0
  segments_before=$(tcp_segments)
  perf stat -x, -e "$perf_events" -p "$(IFS=,; echo "${server_pids[*]}")" -o "$out/perf-$1.csv" &
  perf_pid=$!
  sleep 0.5  # attached before the first request, so that every request is counted
}
perf_stop() {
  [[ $perf_stat == 1 ]] || return 0
  kill -INT "$perf_pid" 2>/dev/null || true
  wait "$perf_pid" 2>/dev/null || true
  local requests segments
  if ! grep -q '^[0-9]' "$out/perf-$1.csv" 2>/dev/null; then
    echo "loadtest.sh: perf stat counted nothing (root? perf_event_paranoid?): $out/perf-$1.csv" >&2
    failed=1
    return 0
  fi
  requests=$(jq '.requests_sent + .warmup_requests' "$2" 2>/dev/null) || return 0  # a failed run
  segments=$(( $(tcp_segments) - segments_before ))
  echo "== perf-stat [$1]: per request, the started servers ($requests requests)"
  awk -F, -v n="$requests" '$1 ~ /^[0-9]+$/ && n > 0 {
    sub(/^(syscalls:sys_enter_|ipi:)/, "", $3); printf "   %-22s %8.3f\n", $3, $1 / n }' "$out/perf-$1.csv"
  awk -v s="$segments" -v n="$requests" \
    'BEGIN { if (n > 0) printf "   %-22s %8.3f   (the whole machine)\n", "TCP segments sent", s / n }'
}

failed=0
compare=()
if [[ -n "$sign_bench" ]]; then
  on_cpus "$server_cpus" "$loadtest_bin" sign-bench --seconds "$sign_bench" --json "$out/sign-bench.json"
  compare+=(--compare "$out/sign-bench.json")
fi
common=("${url_args[@]}" "${pid_args[@]}" --wait-ready 30 --warmup "$warmup")
if [[ $smoke == 1 ]]; then
  echo "== smoke: JSON exchanges, closed loop, with deliberate replays"
  generator run "${common[@]}" -c 8 -n 300 --replay-every 10 --label smoke-json \
    --json "$out/smoke-json.json" "${extra[@]}" || failed=1
  # The replays were sent, and each refused: a generator that stopped sending them passes else.
  grep -q '"expected_rejections": 30,' "$out/smoke-json.json" 2>/dev/null \
    || { echo "loadtest.sh: the smoke's 30 replays were not all sent and refused" >&2; failed=1; }
  echo "== smoke: form + Basic + PKCE, open loop"
  generator run "${common[@]}" -c 8 -n 100 --rate 200 --form-basic --pkce --label smoke-form \
    --json "$out/smoke-form.json" --trace "$out/smoke-form-trace.txt" "${extra[@]}" || failed=1
  traced=$(grep -vc '^#' "$out/smoke-form-trace.txt" 2>/dev/null || true)
  [[ "$traced" == 100 ]] || { echo "loadtest.sh: --trace kept $traced of 100 requests" >&2; failed=1; }
  echo "== smoke: GET /healthz"
  generator run "${common[@]}" --endpoint healthz -c 8 -n 200 --label smoke-healthz \
    --json "$out/smoke-healthz.json" || failed=1
  echo "== smoke: sign-bench"
  "$loadtest_bin" sign-bench --seconds 0.3 || failed=1
else
  if [[ $healthz == 1 ]]; then
    trace_args=()
    [[ $trace == 1 ]] && trace_args=(--trace "$out/trace-healthz.txt")
    perf_start healthz
    generator run "${common[@]}" --endpoint healthz "${run_args[@]}" --label healthz \
      --json "$out/healthz.json" "${trace_args[@]}" "${extra[@]}" || failed=1
    perf_stop healthz "$out/healthz.json"
    compare+=(--compare "$out/healthz.json")
  fi
  label_args=()
  [[ -n "$label" ]] && label_args=(--label "$label")
  trace_args=()
  [[ $trace == 1 ]] && trace_args=(--trace "$out/trace-token.txt")
  perf_start token
  generator run "${common[@]}" "${run_args[@]}" "${compare[@]}" "${label_args[@]}" \
    --json "$out/token.json" "${trace_args[@]}" "${extra[@]}" || failed=1
  perf_stop token "$out/token.json"
fi
for pid in "${pids[@]}"; do
  kill -0 "$pid" 2>/dev/null || { echo "loadtest.sh: process $pid died during the run" >&2; failed=1; }
done
if [[ $failed != 0 ]]; then
  echo "loadtest.sh: FAILED (summaries and server logs in $out)" >&2
  exit 1
fi
echo "== passed; JSON summaries in $out"
