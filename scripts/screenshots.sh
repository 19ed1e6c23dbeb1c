#!/usr/bin/env bash
# Remakes docs/img/annotate-shown-{ko,en}.png: an item page of a `shown` round with the
# suggestions of a small model trained on NIKL ABSA (about two minutes on two cores).
# Usage: scripts/screenshots.sh [NIKL_DIR]  (default ../shared/data/nikl-absa-2022);
# BIN=path uses that binary instead of building one.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/prepare.sh"
ensure_browser
need_packages fonts-noto-cjk
cd "$ROOT"
NIKL="${1:-$ROOT/../shared/data/nikl-absa-2022}"
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN="$ROOT/target/release/reviewloop"
fi
WORK="$(mktemp -d)"
DB="reviewloop_shots_$$"
export DATABASE_URL="postgres://127.0.0.1:5432/$DB" REVIEWLOOP_DATA_DIR="$WORK/models"
cleanup() {
  [ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null || true
  psql -h 127.0.0.1 -d postgres -qc "DROP DATABASE IF EXISTS \"$DB\"" || true
  rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN" import "$NIKL/train.jsonl" --format nikl-absa
"$BIN" train --taxonomy nikl-absa --base none --name small 2>&1 | tee "${TRAIN_LOG:-/dev/null}"
"$BIN" model promote small --reason "screenshots" >/dev/null 2>&1 || true
# Reviews nobody has labelled, for the round to pick from.
head -n 200 "$NIKL/unlabelled.jsonl" > "$WORK/pool.jsonl"
"$BIN" import "$WORK/pool.jsonl" --format nikl-absa
"$BIN" user add shots --role annotator --password "screenshots-only" >/dev/null
ROUND="$("$BIN" round new --name "suggestions" --taxonomy nikl-absa --size 30 --assist shown | grep -o 'round [0-9]*' | grep -o '[0-9]*' | head -1)"
"$BIN" worker --once >/dev/null
PORT=18088
"$BIN" serve --bind "127.0.0.1:$PORT" --no-worker >"$WORK/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 60); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.5; done
mkdir -p docs/img
APP_URL="http://127.0.0.1:$PORT" APP_USER=shots APP_PASSWORD="screenshots-only" APP_ROUND="$ROUND" \
  APP_SHOTS="$ROOT/docs/img" NODE_PATH="$ROOT/node_modules" node tests/browser/shots.mjs
echo "written: docs/img/annotate-shown-ko.png docs/img/annotate-shown-en.png"
