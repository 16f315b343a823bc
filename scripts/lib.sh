# Shared helpers for the scripts in this folder; meant to be sourced.

# Every script first moves to the repository root, then sources this file: from there a script
# reads itself as scripts/<name>, and OLDPWD, caught here, is where the user ran it.
caller_dir="${OLDPWD:-$PWD}"

# Option parsing: `usage` prints the script's header comment (line 2 up to `set -euo`), `die`
# names the script and exits 2, `need` checks that an option was given a value, `from_caller`
# makes a path the user gave absolute against where they ran the script, `valid_profile` and
# `positive` check the values every load script takes.
usage() { sed -n '2,/^set -euo/p' "scripts/${0##*/}" | sed '$d' | sed 's/^# \{0,1\}//'; }
from_caller() { if [[ "$1" == /* ]]; then echo "$1"; else echo "$caller_dir/$1"; fi; }
die() { echo "${0##*/}: $*" >&2; exit 2; }
need() { [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value"; }
valid_profile() { [[ "$1" == release || "$1" == debug ]] || die "--profile is release or debug"; }
positive() { # positive VALUE...
  local n
  for n in "$@"; do [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "numbers must be positive integers: $n"; done
}

# Prints the free space where the build writes, and warns when it is short: a build
# and test run fills about 5.5 GiB of target/, and a full disk shows up as an obscure rustc error.
report_free_disk() {
  local target="${CARGO_TARGET_DIR:-target}" free_kib
  mkdir -p "$target"
  free_kib=$(df -Pk "$target" | awk 'NR == 2 { print $4 }')
  echo "== free disk for $target: $((free_kib / 1024)) MiB"
  if ((free_kib < 6 * 1024 * 1024)); then
    echo "warning: less than 6 GiB free; the build may fail with 'No space left on device'" >&2
  fi
}

# apt_install PACKAGE...: apt-get update and install, waiting up to 10 minutes for the package
# lock (a fresh cloud machine runs apt-daily or unattended-upgrades at boot) and retrying an
# update that fails (a mirror mid-sync).
apt_install() {
  local sudo="" lock=(-o DPkg::Lock::Timeout=600) try
  if [[ "$(id -u)" != 0 ]]; then sudo="sudo"; fi
  for try in 1 2 3; do
    $sudo apt-get "${lock[@]}" update -qq && break
    ((try < 3)) || return 1
    echo "== apt-get update failed; again in 10 s" >&2
    sleep 10
  done
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get "${lock[@]}" install -y -qq "$@" >/dev/null
}

# Installs redis-server with apt-get when it is not on PATH (fresh Debian machines, CI).
ensure_redis_server() {
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "== redis-server not found: installing it with apt-get"
    apt_install redis-server
    # The Debian package starts a system instance on 6379; leave it, tests use their own ports.
    command -v redis-server >/dev/null
  fi
  redis_at_least_7
}

# redis_at_least_7: the exchange script declares itself with `#!lua` (flags), which Redis reads
# from 7.0 on; an older one refuses every exchange. Says so and fails otherwise.
redis_at_least_7() {
  local version
  version="$(redis-server --version | sed -n 's/.* v=\([0-9.]*\).*/\1/p')"
  if [[ "${version%%.*}" =~ ^[0-9]+$ ]] && (( ${version%%.*} >= 7 )); then
    return 0
  fi
  echo "redis-server ${version:-of unknown version} is too old: sso-token needs Redis 7 or later" \
    "(Debian 12 and later have it)" >&2
  return 1
}

# ensure_tool COMMAND PACKAGE: installs the Debian PACKAGE when COMMAND is not on PATH.
ensure_tool() {
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "== $1 not found: installing $2 with apt-get"
  apt_install "$2"
  command -v "$1" >/dev/null
}

# ensure_build_tools [COMPONENT...]: a C compiler (aws-lc and mimalloc build C), installed with
# apt-get when missing, and the named rustup components (rustfmt, clippy) when a minimal
# toolchain lacks them: said at once rather than as a linker or cargo error minutes in.
ensure_build_tools() {
  ensure_tool cc build-essential
  command -v rustup >/dev/null 2>&1 || return 0  # a toolchain not from rustup: as it comes
  local installed component
  installed="$(rustup component list --installed)"
  for component in "$@"; do
    if ! grep -q "^$component-" <<<"$installed"; then
      echo "== rustup component $component not installed: adding it"
      rustup component add "$component"
    fi
  done
}

# free_port [paired]: prints a TCP port on 127.0.0.1 that nobody listens on, below the kernel's
# ephemeral range (a port an outgoing connection has just used may sit in TIME_WAIT and refuse a
# listener). `paired`: for a Redis Cluster node, whose bus listens on PORT + 10000, that one too.
free_port() {
  local p low=32768 span=0
  [[ "${1:-}" == paired ]] && span=10000
  read -r low _ < /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
  (( low > 12000 + span )) || low=32768
  for _ in $(seq 100); do
    p=$(( 10000 + RANDOM % (low - 10000 - span) ))
    if ! listening "$p" && { (( span == 0 )) || ! listening $((p + span)); }; then
      echo "$p"; return 0
    fi
  done
  echo "no free port found" >&2
  return 1
}
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_private_redis PORT LOG: starts a throwaway redis-server on 127.0.0.1:PORT (no
# persistence) in the background, logging to LOG, and waits until it answers. Sets
# private_redis_pid for the caller's clean-up.
start_private_redis() {
  redis-server --port "$1" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
    --loglevel warning >>"$2" 2>&1 &
  private_redis_pid=$!
  wait_redis "$1" && return 0
  echo "start_private_redis: redis-server did not answer on port $1 (see $2)" >&2
  return 1
}

# wait_redis PORT [TRIES]: waits (0.1 s a try, 50 tries) until the redis on PORT answers PING.
wait_redis() {
  for _ in $(seq "${2:-50}"); do
    [[ "$(redis-cli -p "$1" ping 2>/dev/null || true)" == PONG ]] && return 0
    sleep 0.1
  done
  return 1
}

# wait_ready URL PID: waits (0.1 s a try, 100 tries) until URL/readyz answers 200; returns 1
# at once when the process PID has exited, or after the last try.
wait_ready() {
  for _ in $(seq 100); do
    curl -fs --max-time 1 "$1/readyz" >/dev/null && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# find_binaries PROFILE BUILD: builds the binaries of PROFILE (release or debug) when BUILD is 1,
# then sets server_bin and loadtest_bin, or dies (the caller's `die`) when they are missing.
find_binaries() {
  if [[ $2 == 1 ]]; then
    echo "== building the $1 binaries"
    if [[ $1 == release ]]; then cargo build --quiet --release --bins; else cargo build --quiet --bins; fi
  fi
  local bin_dir="${CARGO_TARGET_DIR:-$(pwd)/target}/$1"
  server_bin="$bin_dir/sso-token" loadtest_bin="$bin_dir/sso-loadtest"
  [[ -x "$server_bin" && -x "$loadtest_bin" ]] || die "no binaries in $bin_dir (drop --no-build)"
}

# clean_up_on_exit: a scratch directory in $work and an array pids for the caller's background
# processes; on exit (or INT/TERM) every pid is killed and reaped and $work removed.
clean_up_on_exit() {
  work="$(mktemp -d)"
  pids=()
  trap _clean_up EXIT
  trap 'exit 130' INT TERM
}
_clean_up() {
  local status=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
  exit "$status"
}

now() { date +%s.%N; }
# since T: seconds from T (a `now`) to now, one decimal.
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# prepare_run PROFILE BUILD: what a chaos or failover run needs before it starts: redis-server,
# jq and curl installed, the binaries of PROFILE (built when BUILD is 1), $out created and made
# absolute, and the clean-up trap (clean_up_on_exit).
prepare_run() {
  ensure_redis_server
  ensure_tool jq jq
  ensure_tool curl curl
  find_binaries "$1" "$2"
  mkdir -p "$out"
  out="$(cd "$out" && pwd)"
  clean_up_on_exit
}

# summed KEY PATTERN JSON: the sum of the counts under KEY (`errors`, `violation_kinds`) of a
# load-tool JSON summary whose names match the jq regex PATTERN (0 when none).
summed() {
  jq "[.$1 | to_entries[] | select(.key | test(\"$2\")) | .value] | add // 0" "$3"
}
