#!/usr/bin/env bash
# Runs every check and test: formatting, clippy, unit and integration tests, and the load
# tool's smoke test.
# Installs what is missing: redis-server (the integration tests start their own instances), a C
# compiler, and the toolchain's rustfmt and clippy.
#
#   scripts/test.sh            everything
#   scripts/test.sh --help     this text
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/lib.sh
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  usage
  exit 0
fi
[[ $# -eq 0 ]] || die "unknown argument $1 (see --help)"

report_free_disk
ensure_build_tools rustfmt clippy
ensure_redis_server
ensure_tool ss iproute2  # a test reads the listener's backlog

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --locked --all-targets
echo "== load-test smoke (a few hundred verified exchanges)"
scripts/loadtest.sh --smoke
