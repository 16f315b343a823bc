#!/usr/bin/env bash
# Compatibility check: standard OAuth client libraries, unmodified, against sso-token.
#   - Python: authlib's OAuth2Session (code flow, state, PKCE S256, client_secret_post,
#     client_secret_basic and private_key_jwt with PrivateKeyJWT, introspect_token,
#     revoke_token), PyJWT's PyJWKClient, and
#     requests-oauthlib's OAuth2Session (client_secret_basic, PKCE S256, its scope check);
#   - Node: openid-client (RFC 8414 discovery, authorizationCodeGrant, tokenIntrospection,
#     tokenRevocation, fetchUserInfo, fetchProtectedResource; client_secret_post,
#     client_secret_basic and private_key_jwt with PrivateKeyJwt), jose (createRemoteJWKSet +
#     jwtVerify) and simple-oauth2 (getToken, revoke in strict JSON mode);
#   - Go: golang.org/x/oauth2's Config (Exchange with PKCE S256 in its three AuthStyles,
#     RetrieveError, Client for user info);
#   - Java: Google's google-oauth-client (AuthorizationCodeFlow with PKCE, BasicAuthentication
#     and ClientParametersAuthentication, TokenResponseException, Credential for user info);
#   - Ruby: the oauth2 gem's OAuth2::Client (auth_code.authorize_url and get_token with PKCE S256,
#     auth_scheme :basic_auth and :request_body, OAuth2::Error, AccessToken#get for user info);
# once per signing key type: RSA (RS256), P-256 (ES256), Ed25519 (EdDSA). The Python and Node
# libraries are pinned in scripts/compat/ and installed from PyPI and npm into target/compat (a
# venv, a node folder); Go's, Java's and Ruby's are Debian's packages (golang-golang-x-oauth2-dev
# 0.3, libgoogle-oauth-client-java 1.34, ruby-oauth2 1.4.4), installed with apt-get when missing,
# with golang-go and default-jdk-headless (ruby-oauth2 brings ruby). A private redis-server and
# a debug sso-token (demo client, config/demo-clients.toml) run on free loopback ports. Every
# step prints PASS or FAIL (scripts/compat/check_*, CheckJava.java).
# Exits 0 when every step passes, 1 when one fails, 2 when the check could not run.
#
# Usage: scripts/compat.sh [options]
#   --only LANGUAGES     python, node, go, java, ruby: the languages to check, comma-separated
#                        [all]
#   --keys LIST          key types, comma-separated [rsa2048,p256,ed25519]
#   --no-build           use target/debug/sso-token as it is
#   -h, --help           this text
#
# Needs Python 3.11+ with venv, and Node 20+ with npm. About 10–20 s once the environments and
# the debug build exist, a minute or two with the installs (README, "Compatibility with client
# libraries").
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh  # usage, die, need (options), and the helpers used below
root="$(pwd)"

only="" keys="rsa2048,p256,ed25519" build=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --only) need "$@"; only="$2"; shift ;;
    --keys) need "$@"; keys="$2"; shift ;;
    --no-build) build=0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done
declare -A run=([python]=1 [node]=1 [go]=1 [java]=1 [ruby]=1)
if [[ -n "$only" ]]; then
  run=([python]=0 [node]=0 [go]=0 [java]=0 [ruby]=0)
  IFS=, read -r -a languages <<<"$only"
  for language in "${languages[@]}"; do
    [[ -n "${run[$language]:-}" ]] \
      || die "unknown language $language (python, node, go, java, ruby)"
    run[$language]=1
  done
fi
declare -A alg_of=([rsa2048]=RS256 [rsa3072]=RS256 [rsa4096]=RS256 [p256]=ES256 [ed25519]=EdDSA)
IFS=, read -r -a kinds <<<"$keys"
for kind in "${kinds[@]}"; do
  [[ -n "${alg_of[$kind]:-}" ]] \
    || die "unknown key type $kind (rsa2048, rsa3072, rsa4096, p256, ed25519)"
done

ensure_redis_server
ensure_tool curl curl
start=$(date +%s)
out="$root/target/compat"
mkdir -p "$out"

# The throwaway environments; reinstalled only when the pinned files change.
if [[ ${run[python]} == 1 ]]; then
  command -v python3 >/dev/null || die "python3 is needed"
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "Python 3.11 or later is needed (found $(python3 --version 2>&1))"
  venv="$out/venv"
  if ! cmp -s scripts/compat/requirements.txt "$venv/requirements.txt"; then
    echo "== Python environment: target/compat/venv (scripts/compat/requirements.txt)"
    rm -rf "$venv"
    python3 -m venv "$venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/compat/requirements.txt \
      || die "pip install failed"
    cp scripts/compat/requirements.txt "$venv/requirements.txt"
  fi
fi
if [[ ${run[node]} == 1 ]]; then
  command -v node >/dev/null && command -v npm >/dev/null || die "node and npm are needed"
  node_major=$(node -p 'process.versions.node.split(".")[0]')
  (( node_major >= 20 )) || die "Node 20 or later is needed (found $(node --version))"
  node_dir="$out/node"
  if ! cmp -s scripts/compat/package-lock.json "$node_dir/package-lock.json" \
      || [[ ! -d "$node_dir/node_modules" ]]; then
    echo "== Node environment: target/compat/node (scripts/compat/package.json, package-lock.json)"
    rm -rf "$node_dir"
    mkdir -p "$node_dir"
    cp scripts/compat/package.json scripts/compat/package-lock.json "$node_dir/"
    (cd "$node_dir" && npm ci --silent --no-audit --no-fund) || die "npm ci failed"
  fi
  # ES modules resolve packages next to the importing file.
  cp scripts/compat/check_node.mjs "$node_dir/"
fi
if [[ ${run[go]} == 1 ]]; then
  ensure_tool go golang-go
  [[ -d /usr/share/gocode/src/golang.org/x/oauth2 ]] || apt_install golang-golang-x-oauth2-dev
  echo "== Go check: target/compat/check_go (Debian's golang.org/x/oauth2, GOPATH mode)"
  GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$out/go-cache" \
    go build -o "$out/check_go" scripts/compat/check_go.go || die "go build failed"
fi
if [[ ${run[java]} == 1 ]]; then
  ensure_tool javac default-jdk-headless
  [[ -f /usr/share/java/google-oauth-client.jar ]] || apt_install libgoogle-oauth-client-java
  java_jars=""
  for jar in google-oauth-client google-http-client google-http-client-gson gson guava \
      opencensus-api opencensus-contrib-http-util grpc-context; do
    java_jars+="${java_jars:+:}/usr/share/java/$jar.jar"
  done
fi
if [[ ${run[ruby]} == 1 ]]; then
  # Debian's ruby-oauth2 brings ruby, Faraday and the rest; nothing comes from rubygems.org.
  ensure_tool ruby ruby-oauth2
  [[ -f /usr/lib/ruby/vendor_ruby/oauth2.rb ]] || apt_install ruby-oauth2
fi

if [[ $build == 1 ]]; then
  echo "== building sso-token (debug)"
  cargo build --quiet --bin sso-token
fi
bin="${CARGO_TARGET_DIR:-$root/target}/debug/sso-token"
[[ -x "$bin" ]] || die "no $bin (drop --no-build)"

work="$(mktemp -d)"
server_pid="" private_redis_pid=""
cleanup() {
  local status=$?
  for pid in $server_pid $private_redis_pid; do kill "$pid" 2>/dev/null || true; done
  for pid in $server_pid $private_redis_pid; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

redis_port=$(free_port) || die "no free port"
: >"$out/redis.log"
start_private_redis "$redis_port" "$out/redis.log" || die "redis-server did not start"

# The server and `sso-token issue-code` (run by the checks) read the same settings.
export SSO__REDIS__URL="redis://127.0.0.1:$redis_port"
export SSO__CLIENTS__FILE="$root/config/demo-clients.toml"
jwt_client=()
if [[ ${run[python]} == 1 || ${run[node]} == 1 ]]; then
  # A private_key_jwt client for authlib's PrivateKeyJWT and openid-client's PrivateKeyJwt: its
  # RSA key, its public JWK Set (the venv's joserfc or Node's jose writes it), and the demo
  # registry with it added, beside the set.
  "$bin" keygen --kind rsa2048 --out "$work/jwt-client.pem" >/dev/null
  if [[ ${run[python]} == 1 ]]; then
    "$out/venv/bin/python" scripts/compat/check_python.py \
      --write-jwks "$work/jwt-client.pem" "$work/jwt-client.jwks.json"
  else
    node "$out/node/check_node.mjs" \
      --write-jwks "$work/jwt-client.pem" --write-jwks "$work/jwt-client.jwks.json"
  fi
  { cat config/demo-clients.toml
    printf '\n[[clients]]\nid = "jwt-client"\njwks_file = "jwt-client.jwks.json"\n'
    printf 'redirect_uris = ["http://localhost:3000/sso/callback"]\n'
    printf 'scopes = ["user:basic", "user:contract"]\n'
  } >"$work/clients.toml"
  export SSO__CLIENTS__FILE="$work/clients.toml"
  jwt_client=(--jwt-client-key "$work/jwt-client.pem")
fi
export SSO__SERVER__WORKERS=1

# checked CHECK ARGS...: runs a check; its PASS and FAIL lines are also kept in $work/steps, to be
# counted at the end.
checked() { "$@" | tee -a "$work/steps"; }

failed=0
: >"$work/steps"
for kind in "${kinds[@]}"; do
  alg="${alg_of[$kind]}"
  port=$(free_port) || die "no free port"
  base="http://127.0.0.1:$port"
  export SSO__TOKEN__SIGNING_KEY="$work/$kind.pem"
  export SSO__SERVER__LISTEN="127.0.0.1:$port"
  export SSO__DISCOVERY__BASE_URL="$base"
  # RFC 8414 §3.3: the metadata's issuer is the URL it was discovered from (openid-client
  # checks it); it is also the tokens' iss.
  export SSO__TOKEN__ISSUER="$base"
  # Each key type's server starts afresh in Redis as well: its own key prefix, so the failed
  # authentications of the wrong-secret steps (seven a key type) are not counted against the
  # next ones. Shared, the run's 21st failure within throttle.window_secs (60 s) would exceed
  # max_failures (20) and block 127.0.0.1 for demo-app: 429, the right secret too.
  export SSO__REDIS__KEY_PREFIX="compat:$kind:"
  kid=$("$bin" keygen --kind "$kind" --out "$SSO__TOKEN__SIGNING_KEY")
  echo "== $alg ($kind key, kid ${kid:0:12}…): sso-token on $base"
  log="$out/server-$kind.log"
  RUST_LOG=info "$bin" serve >"$log" 2>&1 &
  server_pid=$!
  wait_ready "$base" "$server_pid" || die "sso-token exited or did not become ready (see $log)"

  if [[ ${run[python]} == 1 ]]; then
    checked "$out/venv/bin/python" scripts/compat/check_python.py \
      --base-url "$base" --sso-token "$bin" --alg "$alg" "${jwt_client[@]}" || failed=1
  fi
  if [[ ${run[node]} == 1 ]]; then
    checked node "$out/node/check_node.mjs" \
      --base-url "$base" --sso-token "$bin" --alg "$alg" "${jwt_client[@]}" || failed=1
  fi
  if [[ ${run[go]} == 1 ]]; then
    checked "$out/check_go" --base-url "$base" --sso-token "$bin" --alg "$alg" || failed=1
  fi
  if [[ ${run[java]} == 1 ]]; then
    checked java -cp "$java_jars" scripts/compat/CheckJava.java \
      --base-url "$base" --sso-token "$bin" --alg "$alg" || failed=1
  fi
  if [[ ${run[ruby]} == 1 ]]; then
    checked ruby scripts/compat/check_ruby.rb \
      --base-url "$base" --sso-token "$bin" --alg "$alg" || failed=1
  fi
  kill "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
done

echo "== $(( $(date +%s) - start )) s; server logs in target/compat/server-*.log"
passed=$(grep -c '^PASS' "$work/steps" || true)
failures=$(grep -c '^FAIL' "$work/steps" || true)
if [[ $failed == 0 ]]; then
  echo "compat: every step passed ($passed steps)"
else
  echo "compat: FAILURES above ($passed steps passed, $failures failed)"
  exit 1
fi
