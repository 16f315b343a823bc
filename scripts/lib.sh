# Shared helpers for the scripts in this folder; meant to be sourced.

# Installs redis-server with apt-get when it is not on PATH (fresh Debian machines, CI).
ensure_redis_server() {
  if command -v redis-server >/dev/null 2>&1; then
    return 0
  fi
  echo "== redis-server not found: installing it with apt-get"
  local sudo=""
  if [[ "$(id -u)" != 0 ]]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
  # The Debian package starts a system instance on 6379; leave it, tests use their own ports.
  command -v redis-server >/dev/null
}

# ensure_tool COMMAND PACKAGE: installs the Debian PACKAGE when COMMAND is not on PATH.
ensure_tool() {
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "== $1 not found: installing $2 with apt-get"
  local sudo=""
  if [[ "$(id -u)" != 0 ]]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$2" >/dev/null
  command -v "$1" >/dev/null
}
