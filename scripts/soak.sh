#!/usr/bin/env bash
# Soak test: one release server under a steady open-loop load for a long run, to show that it
# does not leak. It starts a private Redis (no persistence) and one `sso-token serve` (one
# worker, a fresh key, the demo client, a short token TTL so that the token records reach a
# steady state within the run), then, for --duration minutes:
#   - drives it with successive `sso-loadtest` open-loop runs of --run-secs each (--rate,
#     replays every --replay-every, every answer and signature verified);
#   - sends it SIGHUP every --reload-secs (configuration reload);
#   - sends --failures failed client authentications a minute (a wrong secret for demo-app, or
#     an unknown client id), each from another address (X-Forwarded-For; the server trusts
#     127.0.0.2 as a proxy), so that throttle counters are made, in Redis and in the server's
#     tables, and expire;
#   - samples every --sample-secs: the server's VmRSS, VmHWM and threads (/proc/PID/status),
#     its open descriptors (/proc/PID/fd), Redis used_memory, DBSIZE, keys without a TTL
#     (INFO keyspace), connected_clients, the lines of GET /metrics, and the figures of the
#     last finished load run (p50, p99, errors).
# Samples go to OUT/samples.csv, one line per load run to OUT/runs.csv, the load runs' JSON to
# OUT/runs/, the logs to OUT/. It prints a table per --table-minutes and a verdict, comparing
# the last third of the samples with the middle third (the first third is the warm-up: token
# records pile up until the TTL has passed). It fails when
#   - the median VmRSS, or VmHWM at the end, of the last third exceeds the middle third's by
#     more than --rss-tolerance-pct percent or more than --rss-tolerance-mib MiB (either);
#   - the most open descriptors, threads or Redis clients of the last third exceed the middle
#     third's by more than 2 (a load run's connections open and close around the samples);
#   - the median DBSIZE or Redis used_memory of the last third exceeds the middle third's by
#     more than --redis-tolerance-pct percent, or any Redis key has no TTL;
#   - the most lines of /metrics in the last third exceed the middle third's;
#   - a load run reports a violation, a 5xx or a request left unanswered (timeout, cut
#     connection), or could not run; a failed authentication is answered otherwise than 401
#     or 429; fewer SIGHUPs were applied than sent; the server or Redis died.
# Other error answers of a load run are counted and shown, not failed on. Exits 0 when every
# check passes, 1 otherwise, 2 when it could not run.
#
# Usage: scripts/soak.sh [options]
# Length and load
#   --duration MIN        length of the soak, minutes (at least 3) [35]
#   --run-secs SECS       length of each load run; the last one is cut to what is left [60]
#   --rate R              requests/s of each open-loop run [3000]
#   -c, --connections C   most requests in flight [64]
#   --replay-every K      every K-th request re-sends the previous code (0: none) [100]
#   --alg ALG             key of the server: rs256, es256 or eddsa [eddsa]
#   --token-ttl SECS      token.expires_in, the TTL of the token records [300]
# Events and samples
#   --reload-secs SECS    a SIGHUP this often [60]
#   --failures N          failed client authentications a minute, spread out (0: none) [20]
#   --sample-secs SECS    a sample this often [10]
#   --table-minutes MIN   rows of the printed table [5]
# Verdict
#   --rss-tolerance-pct P allowed growth of VmRSS (median) and VmHWM, percent [10]
#   --rss-tolerance-mib M ... and in MiB [4]
#   --redis-tolerance-pct P  allowed growth of the median DBSIZE and used_memory [10]
# Processes
#   --port PORT           port of the server [a free one]
#   --redis-port PORT     port of the private Redis [a free one]
#   --server-cpus LIST    taskset CPU list of the server [0]
#   --client-cpus LIST    taskset CPU list of the load generator [1]
#   --no-pin              no taskset at all
#   --profile P           release or debug binaries [release]
#   --no-build            use the binaries as they are
#   --out DIR             samples, runs, logs [target/soak]
#   -h, --help            this text
#
# Example (about 35 minutes; the server takes ~15 % of a core, the generator more):
#   scripts/soak.sh --duration 35 --rate 3000 --alg eddsa
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh  # usage, die, need (options), and the helpers used below
# The demo client (config/demo-clients.toml) unless the caller names a registry.
export SSO__CLIENTS__FILE="${SSO__CLIENTS__FILE:-$(pwd)/config/demo-clients.toml}"

duration=35 run_secs=60 rate=3000 connections=64 replay_every=100 alg=eddsa token_ttl=300
reload_secs=60 failures=20 sample_secs=10 table_minutes=5
rss_pct=10 rss_mib=4 redis_pct=10
port="" redis_port="" server_cpus=0 client_cpus=1 pin=1 profile=release build=1 out=target/soak
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --duration) need "$@"; duration="$2"; shift ;;
    --run-secs) need "$@"; run_secs="$2"; shift ;;
    --rate) need "$@"; rate="$2"; shift ;;
    -c|--connections) need "$@"; connections="$2"; shift ;;
    --replay-every) need "$@"; replay_every="$2"; shift ;;
    --alg) need "$@"; alg="$2"; shift ;;
    --token-ttl) need "$@"; token_ttl="$2"; shift ;;
    --reload-secs) need "$@"; reload_secs="$2"; shift ;;
    --failures) need "$@"; failures="$2"; shift ;;
    --sample-secs) need "$@"; sample_secs="$2"; shift ;;
    --table-minutes) need "$@"; table_minutes="$2"; shift ;;
    --rss-tolerance-pct) need "$@"; rss_pct="$2"; shift ;;
    --rss-tolerance-mib) need "$@"; rss_mib="$2"; shift ;;
    --redis-tolerance-pct) need "$@"; redis_pct="$2"; shift ;;
    --port) need "$@"; port="$2"; shift ;;
    --redis-port) need "$@"; redis_port="$2"; shift ;;
    --server-cpus) need "$@"; server_cpus="$2"; shift ;;
    --client-cpus) need "$@"; client_cpus="$2"; shift ;;
    --no-pin) pin=0 ;;
    --profile) need "$@"; profile="$2"; shift ;;
    --no-build) build=0 ;;
    --out) need "$@"; out="$(from_caller "$2")"; shift ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done
valid_profile "$profile"
positive "$duration" "$run_secs" "$rate" "$connections" "$token_ttl" "$reload_secs" \
  "$sample_secs" "$table_minutes" "$rss_pct" "$rss_mib" "$redis_pct"
[[ "$failures" =~ ^[0-9]+$ ]] || die "--failures is a number"
[[ "$replay_every" =~ ^[0-9]+$ && "$replay_every" != 1 ]] || die "--replay-every is 0 or at least 2"
(( duration >= 3 )) || die "--duration is at least 3 minutes"
case "$alg" in
  rs256) kind=rsa2048 ;;
  es256) kind=p256 ;;
  eddsa) kind=ed25519 ;;
  *) die "--alg is rs256, es256 or eddsa" ;;
esac
if (( duration * 60 / 3 < token_ttl + run_secs )); then
  echo "== warning: a third of the soak ($(( duration * 20 )) s) is shorter than the token TTL" \
    "plus a run ($(( token_ttl + run_secs )) s): the middle third may not be steady yet" >&2
fi
if [[ $pin == 1 ]] && { ! command -v taskset >/dev/null 2>&1 \
    || ! taskset -c "$server_cpus" true 2>/dev/null || ! taskset -c "$client_cpus" true 2>/dev/null; }; then
  echo "== no taskset, or CPUs $server_cpus / $client_cpus not allowed here: running unpinned"
  pin=0
fi
on_cpus() { # on_cpus LIST command...
  local cpus="$1"; shift
  if [[ $pin == 1 ]]; then taskset -c "$cpus" "$@"; else "$@"; fi
}

prepare_run "$profile" "$build"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
rm -rf "$out/runs"
mkdir -p "$out/runs"
rm -f "$out"/{samples.csv,runs.csv,failures.txt,reloads.txt,server.log,redis.log,loadtest.txt}

# Redis, private, no persistence.
redis_port="${redis_port:-$(free_port)}"
listening "$redis_port" && die "port $redis_port is taken"
start_private_redis "$redis_port" "$out/redis.log" || die "redis-server did not start"
redis_pid=$private_redis_pid
pids+=("$redis_pid")
export SSO__REDIS__URL="redis://127.0.0.1:$redis_port"
rcli() { redis-cli -p "$redis_port" "$@"; }

# The server: one worker, a fresh key, short-lived tokens, 127.0.0.2 a trusted proxy (the
# failed authentications come "through" it from many addresses; the load, from 127.0.0.1,
# counts as its own address).
export SSO__TOKEN__SIGNING_KEY="$work/signing-$alg.pem"
export SSO__TOKEN__EXPIRES_IN="$token_ttl"  # the generator checks expires_in against it
echo "== $alg key ($kind): kid $("$server_bin" keygen --kind "$kind" --out "$SSO__TOKEN__SIGNING_KEY")"
port="${port:-$(free_port)}"
listening "$port" && die "port $port is taken"
url="http://127.0.0.1:$port"
if [[ $pin == 1 ]]; then pin_server=(taskset -c "$server_cpus"); else pin_server=(); fi
"${pin_server[@]}" env SSO__SERVER__LISTEN="127.0.0.1:$port" SSO__SERVER__WORKERS=1 \
  SSO__THROTTLE__TRUSTED_PROXIES=127.0.0.2 \
  RUST_LOG=warn,sso_token::live=info \
  "$server_bin" serve >"$out/server.log" 2>&1 &
server_pid=$!
pids+=("$server_pid")
wait_ready "$url" "$server_pid" \
  || die "the server exited at its start or did not become ready (see $out/server.log)"
echo "== server pid $server_pid on $url (CPUs $([[ $pin == 1 ]] && echo "$server_cpus" || echo any)), Redis on $redis_port"
echo "== soak: $duration min, runs of $run_secs s at $rate/s ($alg, -c $connections, replay every" \
  "$replay_every), token TTL $token_ttl s, SIGHUP every $reload_secs s, $failures failed" \
  "authentications a minute, a sample every $sample_secs s"

t0=$(date +%s)
end=$(( t0 + duration * 60 ))

# The load: successive open-loop runs; one line per run in runs.csv.
echo "run,start_s,end_s,exit,requests,successes,rate_per_s,p50_us,p99_us,p99_9_us,max_us,errors,errors_5xx,unanswered,violations" \
  >"$out/runs.csv"
load() {
  local n=0 left secs status json child=""
  trap '[[ -z "$child" ]] || kill "$child" 2>/dev/null; exit 143' TERM
  while true; do
    left=$(( end - $(date +%s) ))
    (( left >= 10 )) || break
    secs=$(( left < run_secs ? left : run_secs ))
    n=$(( n + 1 ))
    json="$out/runs/run-$n.json"
    local start=$(( $(date +%s) - t0 ))
    status=0
    on_cpus "$client_cpus" "$loadtest_bin" run --url "$url" --rate "$rate" -d "$secs" \
      -c "$connections" --replay-every "$replay_every" --allow-errors --no-progress \
      --label "soak-$n" --json "$json" >>"$out/loadtest.txt" 2>&1 &
    child=$!
    wait "$child" || status=$?
    local stop=$(( $(date +%s) - t0 ))
    if [[ -s "$json" ]]; then
      jq -r --arg n "$n" --arg a "$start" --arg b "$stop" --arg s "$status" '[
        $n, $a, $b, $s, .requests_sent, .successes, (.rate_per_s | floor),
        .latency_us.p50, .latency_us.p99, .latency_us.p99_9, .latency_us.max,
        ([.errors[]] | add // 0),
        ([.errors | to_entries[] | select(.key | test("^5")) | .value] | add // 0),
        ([.errors | to_entries[] | select(.key | test("^(i/o: |connection closed|timeout|malformed|connect: )")) | .value] | add // 0),
        .violations] | map(tostring) | join(",")' "$json" >>"$out/runs.csv"
    else
      echo "$n,$start,$stop,$status,,,,,,,,,,," >>"$out/runs.csv"
    fi
  done
}
load &
load_pid=$!
pids+=("$load_pid")

# SIGHUP every reload_secs.
reloads() {
  while true; do
    sleep "$reload_secs"
    kill -HUP "$server_pid" 2>/dev/null || return 0
    echo "$(( $(date +%s) - t0 ))" >>"$out/reloads.txt"
  done
}
(( $(date +%s) + reload_secs < end )) && { reloads & pids+=("$!"); }

# Failed client authentications, each from a fresh address, alternately a wrong secret for
# demo-app and an unknown client id, sent from 127.0.0.2, the trusted proxy. Statuses in
# failures.txt.
fail_auths() {
  local i=0 pause
  pause=$(awk -v f="$failures" 'BEGIN { printf "%.3f", 60 / f }')
  while true; do
    sleep "$pause"
    i=$(( i + 1 ))
    local from="10.$(( RANDOM % 256 )).$(( RANDOM % 256 )).$(( 1 + RANDOM % 254 ))" client secret
    if (( i % 2 )); then client=demo-app secret=wrong-secret-$RANDOM
    else client=soak-unknown-$RANDOM-$i secret=whatever; fi
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 --interface 127.0.0.2 -u "$client:$secret" \
      -H "X-Forwarded-For: $from" "$url/identity/sso/oauth2/access_token" \
      -d grant_type=authorization_code -d code=soak-no-such-code \
      --data-urlencode redirect_uri=http://localhost:3000/sso/callback) || true
    echo "$(( $(date +%s) - t0 )) $client $code" >>"$out/failures.txt"
  done
}
(( failures > 0 )) && { fail_auths & pids+=("$!"); }

# Samples.
status_kib() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$server_pid/status" 2>/dev/null; }
info_field() { rcli info "$1" 2>/dev/null | tr -d '\r' | awk -F: -v k="$2" '$1 == k { print $2 }'; }
echo "t_s,rss_kib,hwm_kib,fds,threads,redis_used_memory,dbsize,redis_keys_without_ttl,redis_clients,metrics_lines,last_run,run_p50_us,run_p99_us,run_errors,run_5xx,run_violations" \
  >"$out/samples.csv"
alive=1
while (( $(date +%s) < end )); do
  next=$(( $(date +%s) + sample_secs ))
  if ! kill -0 "$server_pid" 2>/dev/null; then alive=0; echo "soak.sh: the server died" >&2; break; fi
  if ! kill -0 "$redis_pid" 2>/dev/null; then alive=0; echo "soak.sh: redis-server died" >&2; break; fi
  rss=$(status_kib VmRSS) hwm=$(status_kib VmHWM) threads=$(status_kib Threads) || true
  fds=$(ls "/proc/$server_pid/fd" 2>/dev/null | wc -l) || true
  used=$(info_field memory used_memory) || true
  clients=$(info_field clients connected_clients) || true
  dbsize=$(rcli dbsize 2>/dev/null | tr -d '\r') || true
  no_ttl=$(rcli info keyspace 2>/dev/null | tr -d '\r' \
    | awk -F'[:=,]' '$1 == "db0" { print $3 - $5; found = 1 } END { if (!found) print 0 }') || true
  lines=$(curl -fs --max-time 5 "$url/metrics" 2>/dev/null | wc -l) || lines=""
  last=$(tail -n +2 "$out/runs.csv" | tail -1 | awk -F, '{ print $1","$8","$9","$12","$13","$15 }')
  [[ -n "$last" ]] || last=",,,,,"
  echo "$(( $(date +%s) - t0 )),$rss,$hwm,$fds,$threads,$used,$dbsize,$no_ttl,$clients,$lines,$last" \
    >>"$out/samples.csv"
  wait_s=$(( next - $(date +%s) ))
  (( wait_s > 0 )) && sleep "$wait_s"
done

# The last run was cut to end with the soak; give it the time to verify its signatures.
for _ in $(seq 120); do kill -0 "$load_pid" 2>/dev/null || break; sleep 1; done
kill -0 "$load_pid" 2>/dev/null && echo "soak.sh: the last load run did not end in 2 minutes" >&2
for pid in "${pids[@]}"; do
  [[ $pid == "$server_pid" || $pid == "$redis_pid" || $pid == "$load_pid" ]] && continue
  kill "$pid" 2>/dev/null || true
done
wait "$load_pid" 2>/dev/null || true
applied=$(curl -fs --max-time 5 "$url/metrics" 2>/dev/null \
  | awk '$1 == "sso_config_reloads_total{result=\"applied\"}" { print int($2) }') || true
applied=${applied:-0}
sighups=$(wc -l <"$out/reloads.txt" 2>/dev/null || echo 0)
final_hwm=$(status_kib VmHWM) || true
kill -0 "$server_pid" 2>/dev/null || alive=0

# The table, one row per table_minutes: the last sample's RSS, HWM and /metrics lines, the
# most descriptors and threads, the median Redis memory and DBSIZE, the worst p99 and the
# errors of the runs that ended in it.
# median(a, n): the median of a[1..n] (sorted in place), 0 when n is 0; for the awk programs
# of the table and the verdict.
awk_median='
  function median(a, n,   i, j, t) {
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n ? a[int((n + 1) / 2)] : 0
  }'
echo "== per $table_minutes minutes (runs: p99 worst of those ended in the span; errors summed)"
awk -F, -v span=$(( table_minutes * 60 )) -v runs="$out/runs.csv" "$awk_median"'
  BEGIN {
    while ((getline line < runs) > 0) {
      split(line, f, ",")
      if (f[1] == "run" || f[9] == "") continue
      b = int(f[3] / span); if (f[9] > p99[b]) p99[b] = f[9]; err[b] += f[12]; v[b] += f[15]
    }
    printf "%-9s %9s %9s %5s %7s %14s %9s %8s %8s %7s %6s\n", "minutes", "RSS MiB", "HWM MiB",
      "fds", "threads", "Redis mem MiB", "DBSIZE", "metrics", "p99 ms", "errors", "viol."
  }
  NR == 1 { next }
  {
    b = int($1 / span)
    if (!(b in seen)) { seen[b] = 1; order[++nb] = b }
    rss[b] = $2; hwm[b] = $3; lines[b] = $10
    if ($4 > fds[b]) fds[b] = $4; if ($5 > thr[b]) thr[b] = $5
    n[b]++; mem[b, n[b]] = $6; db[b, n[b]] = $7
  }
  END {
    for (k = 1; k <= nb; k++) {
      b = order[k]; delete m; delete d
      for (i = 1; i <= n[b]; i++) { m[i] = mem[b, i]; d[i] = db[b, i] }
      printf "%3d–%-5d %9.1f %9.1f %5d %7d %14.1f %9d %8d %8s %7d %6d\n", b * span / 60,
        (b + 1) * span / 60, rss[b] / 1024, hwm[b] / 1024, fds[b], thr[b],
        median(m, n[b]) / 1048576, median(d, n[b]), lines[b],
        (b in p99) ? sprintf("%.2f", p99[b] / 1000) : "-", err[b], v[b]
    }
  }' "$out/samples.csv"

# The verdict: the middle third against the last third of the samples.
failed=0
check() { # check OK TEXT: prints the line, marks the run failed when OK is not 1
  if [[ $1 == 1 ]]; then echo "   ok    $2"; else echo "   FAIL  $2"; failed=1; fi
}
thirds() { # thirds COLUMN STAT: STAT (median, max, last) of the middle and of the last third
  awk -F, -v c="$1" -v stat="$2" "$awk_median"'
    NR > 1 && $c != "" { v[++n] = $c }
    function pick(from, to,   i, t, k, a) {
      k = 0; for (i = from; i <= to; i++) a[++k] = v[i]
      if (stat == "last") return a[k]
      if (stat == "max") { t = a[1]; for (i = 2; i <= k; i++) if (a[i] > t) t = a[i]; return t }
      return median(a, k)
    }
    END {
      if (n < 6) { print "0 0"; exit }
      t = int(n / 3); print pick(t + 1, 2 * t), pick(2 * t + 1, n)
    }' "$out/samples.csv"
}
samples=$(( $(wc -l <"$out/samples.csv") - 1 ))
echo "== verdict ($samples samples; the middle third against the last third)"
(( samples >= 6 )) || { echo "soak.sh: too few samples to judge" >&2; failed=1; }
within() { # within MIDDLE LAST PCT [KIB]: LAST exceeds MIDDLE by at most PCT percent (and KIB)
  awk -v a="$1" -v b="$2" -v p="$3" -v k="${4:-}" \
    'BEGIN { ok = (b - a <= a * p / 100) && (k == "" || b - a <= k); print ok ? 1 : 0 }'
}
read -r m l < <(thirds 2 median)
check "$(within "$m" "$l" "$rss_pct" $(( rss_mib * 1024 )))" \
  "VmRSS median $((m / 1024)).$(( m % 1024 * 10 / 1024 )) → $((l / 1024)).$(( l % 1024 * 10 / 1024 )) MiB (tolerance $rss_pct % and $rss_mib MiB)"
read -r m l < <(thirds 3 last)
l=${final_hwm:-$l}
check "$(within "$m" "$l" "$rss_pct" $(( rss_mib * 1024 )))" \
  "VmHWM at the end of the middle third → at the end: $((m / 1024)) → $((l / 1024)) MiB"
for spec in "4 descriptors" "5 threads" "9 Redis clients"; do
  read -r col name <<<"$spec"
  read -r m l < <(thirds "$col" max)
  check "$(( l <= m + 2 ))" "most $name $m → $l (slack 2)"
done
read -r m l < <(thirds 7 median)
check "$(within "$m" "$l" "$redis_pct")" "DBSIZE median $m → $l (tolerance $redis_pct %)"
read -r m l < <(thirds 6 median)
check "$(within "$m" "$l" "$redis_pct")" "Redis used_memory median $((m / 1048576)) → $((l / 1048576)) MiB (tolerance $redis_pct %)"
no_ttl=$(awk -F, 'NR > 1 && $8 > t { t = $8 } END { print t + 0 }' "$out/samples.csv")
check "$(( no_ttl == 0 ))" "Redis keys without a TTL, most in a sample: $no_ttl"
read -r m l < <(thirds 10 max)
check "$(( l <= m ))" "most /metrics lines $m → $l"
runs=$(( $(wc -l <"$out/runs.csv") - 1 ))
read -r requests ok errors e5xx unanswered violations bad_exit < <(awk -F, '
  NR > 1 { r += $5; s += $6; e += $12; x += $13; u += $14; v += $15
           if ($4 != 0 || $5 == "") bad++ }
  END { print r + 0, s + 0, e + 0, x + 0, u + 0, v + 0, bad + 0 }' "$out/runs.csv")
check "$(( runs > 0 && bad_exit == 0 ))" "load runs: $runs, $bad_exit did not finish with exit 0 and a summary"
check "$(( violations == 0 ))" "violations: $violations (of $requests requests, $ok tokens)"
check "$(( e5xx == 0 ))" "5xx answers: $e5xx"
check "$(( unanswered == 0 ))" "requests left unanswered (timeout, cut or refused connection): $unanswered"
echo "   info  all error answers: $errors ($(jq -s -c '[.[].errors | to_entries[]] | group_by(.key)
  | map({(.[0].key): (map(.value) | add)}) | add // {}' "$out"/runs/run-*.json 2>/dev/null || echo '?'))"
if (( failures > 0 )); then
  fail_total=$(wc -l <"$out/failures.txt" 2>/dev/null || echo 0)
  fail_other=$(awk '$3 != 401 && $3 != 429' "$out/failures.txt" 2>/dev/null | wc -l)
  check "$(( fail_total > 0 && fail_other == 0 ))" "failed authentications: $fail_total sent, statuses $(
    awk '{ c[$3]++ } END { for (k in c) printf "%s×%d ", k, c[k] }' "$out/failures.txt" 2>/dev/null)"
fi
check "$(( applied >= sighups ))" "SIGHUPs sent $sighups, reloads applied $applied"
check "$alive" "server and Redis alive to the end"
echo "   info  server log ($out/server.log), lines by kind (digits as N):"
sed -E 's/^\[[^ ]+ +/[/; s/[0-9]+/N/g; s/(key|kid) [A-Za-z0-9_-]{20,}/\1 …/' "$out/server.log" \
  | cut -c1-150 | sort | uniq -c | sort -rn | head -12 | sed 's/^/         /'
echo "   info  load runs' lines: $out/loadtest.txt"
if [[ $failed != 0 ]]; then
  echo "soak.sh: FAILED (samples, runs and logs in $out)" >&2
  exit 1
fi
echo "== soak passed; samples in $out/samples.csv, runs in $out/runs.csv"
