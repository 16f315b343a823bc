#!/usr/bin/env bash
# Runs the service for local development, ready for a real exchange:
#   - installs redis-server, curl and a C compiler if missing; starts a Redis on 127.0.0.1:6379
#     if none answers there; that Redis keeps running after the service stops, so issued codes
#     survive a restart (stop it with `redis-cli -p 6379 shutdown nosave`);
#   - creates a dev signing key (target/dev/signing.pem) on first run;
#   - builds and starts sso-token with config/dev.toml and the demo client of config/demo-clients.toml,
#     after printing a copy-paste `issue-code` + curl pair that returns a real token.
#
#   scripts/dev.sh             run in the foreground (Ctrl-C stops it)
#   PORT=9090 scripts/dev.sh   listen on another port
#   REDIS_PORT=6380 scripts/dev.sh   use (or start) the Redis on another port
#   scripts/dev.sh --help      this text
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

source scripts/lib.sh
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  usage
  exit 0
fi
[[ $# -eq 0 ]] || die "unknown argument $1 (see --help)"

ensure_build_tools
ensure_redis_server
ensure_tool curl curl

port="${PORT:-8080}"
redis_port="${REDIS_PORT:-6379}"
# Said now, not as a bind error after the build and the printed curls.
if listening "$port"; then
  die "port $port on 127.0.0.1 is taken (another sso-token? try PORT=...)"
fi
if [[ "$(redis-cli -p "$redis_port" ping 2>/dev/null || true)" != "PONG" ]]; then
  echo "== starting redis-server on 127.0.0.1:$redis_port (appendonly, in target/dev)"
  mkdir -p target/dev
  redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly yes \
    --dir "$root/target/dev" --daemonize yes \
    --logfile "$root/target/dev/redis.log" --pidfile "$root/target/dev/redis.pid" >/dev/null
  for _ in $(seq 50); do
    [[ "$(redis-cli -p "$redis_port" ping 2>/dev/null || true)" == "PONG" ]] && break
    sleep 0.1
  done
  if [[ "$(redis-cli -p "$redis_port" ping 2>/dev/null || true)" != "PONG" ]]; then
    echo "error: no Redis answers PING on 127.0.0.1:$redis_port (is the port taken, or does" \
      "a Redis there want a password? try REDIS_PORT=...); its log:" >&2
    tail -n 5 target/dev/redis.log >&2 2>/dev/null || true
    exit 1
  fi
  echo "   (it keeps running after Ctrl-C; stop it with: redis-cli -p $redis_port shutdown nosave)"
  started_redis=1
else
  # Not ours: perhaps the system's own (Debian's package starts one, with persistence).
  version="$(redis-cli -p "$redis_port" info server 2>/dev/null | sed -n 's/^redis_version:\([0-9.]*\).*/\1/p')"
  echo "== using the Redis already answering on 127.0.0.1:$redis_port (Redis ${version:-?})"
  if ! [[ "${version%%.*}" =~ ^[0-9]+$ ]] || (( ${version%%.*} < 7 )); then
    echo "error: the Redis on 127.0.0.1:$redis_port is ${version:-of unknown version}; sso-token" \
      "needs Redis 7 or later (try REDIS_PORT=... to start a new one)" >&2
    exit 1
  fi
fi

echo "== building sso-token"
cargo build --quiet --bin sso-token
target_dir="${CARGO_TARGET_DIR:-target}"
[[ "$target_dir" == /* ]] || target_dir="$root/$target_dir"
bin="$target_dir/debug/sso-token"

mkdir -p target/dev
if [[ ! -f target/dev/signing.pem ]]; then
  echo "== creating a dev signing key (RSA 2048): target/dev/signing.pem"
  "$bin" keygen --out target/dev/signing.pem >/dev/null
fi

export SSO_ENV=dev
export SSO__SERVER__LISTEN="127.0.0.1:$port"
export SSO__DISCOVERY__BASE_URL="http://127.0.0.1:$port"
export SSO__REDIS__URL="redis://127.0.0.1:$redis_port"
redirect="http://localhost:3000/sso/callback"
# Printed before each exchange: a code is single use, and a second use revokes its token.
issue="CODE=\$(SSO_ENV=dev SSO__REDIS__URL=redis://127.0.0.1:$redis_port ${bin#"$root/"} issue-code \\
      --client demo-app --redirect-uri $redirect --scope user:basic)"

cat <<TRY

In another terminal, issue a code as the authorize service would, then exchange it:

  cd $root
  $issue
  curl -s -X POST http://127.0.0.1:$port/identity/sso/oauth2/access_token \\
      -H 'Content-Type: application/json' \\
      -d '{"grant_type":"authorization_code","client_id":"demo-app","client_secret":"demo-secret","code":"'"\$CODE"'","redirect_uri":"$redirect"}'

The same exchange as a standard OAuth client sends it (form body, HTTP Basic), with a new code
(a code is single use: a second use is refused, and revokes the token issued for it):

  $issue
  curl -s -u demo-app:demo-secret http://127.0.0.1:$port/identity/sso/oauth2/access_token \\
      -d grant_type=authorization_code -d "code=\$CODE" --data-urlencode redirect_uri=$redirect

Then, with a token from a new code: ask whether it is live, read the user's profile with it,
revoke it, and fetch the keys that verify it:

  $issue
  TOKEN=\$(curl -s -u demo-app:demo-secret http://127.0.0.1:$port/identity/sso/oauth2/access_token \\
      -d grant_type=authorization_code -d "code=\$CODE" --data-urlencode redirect_uri=$redirect \\
      | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
  curl -s -u demo-app:demo-secret http://127.0.0.1:$port/identity/sso/oauth2/introspect -d "token=\$TOKEN"
  curl -s -H "Authorization: Bearer \$TOKEN" http://127.0.0.1:$port/identity/sso/oauth2/user
  curl -s -w ' %{http_code}\\n' -u demo-app:demo-secret http://127.0.0.1:$port/identity/sso/oauth2/revoke -d "token=\$TOKEN"
  curl -s http://127.0.0.1:$port/identity/sso/oauth2/jwks

TRY
echo "== starting sso-token on 127.0.0.1:$port (Ctrl-C stops it)"
[[ -z "${started_redis:-}" ]] \
  || echo "   (the Redis started above keeps running: redis-cli -p $redis_port shutdown nosave)"
if [[ -z "${SSO__TOKEN__ISSUER:-}" ]]; then
  with_url="SSO__TOKEN__ISSUER=http://127.0.0.1:$port"
  [[ "$redis_port" == 6379 ]] || with_url="REDIS_PORT=$redis_port $with_url"
  [[ "$port" == 8080 ]] || with_url="PORT=$port $with_url"
  echo "   (its tokens keep the seed's issuer, com.central-x.security, not this server's URL: the warning" \
    "below is expected; for OAuth libraries that discover the server, run $with_url scripts/dev.sh)"
fi
exec "$bin" serve
