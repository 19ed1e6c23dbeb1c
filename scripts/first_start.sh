#!/usr/bin/env bash
# Measures a newcomer's first start (README's tour, docs/loop.md): `scripts/serve.sh`
# on a fresh database and data folder, the time from the app listening to the demo
# round picked by the first model with its suggestions, then the browser journey
# (tests/browser/journey.mjs) as annotator, engineer and reviewer on what it made.
# The release build and the e5 wheel (.cache) are reused when present: time them apart.
# With --two-cycles it then labels on (scripts/label_with_suggestions.mjs, the policy
# set to retrain every 30 labels) until a second cycle has run by itself, and shoots the
# timeline into docs/img/loop-timeline.png.
#   scripts/first_start.sh [--two-cycles] [PORT]   (screenshots in test-artifacts/first-start)
set -euo pipefail
TWO_CYCLES=""
if [ "${1:-}" = "--two-cycles" ]; then TWO_CYCLES=1; shift; fi
source "$(dirname "${BASH_SOURCE[0]}")/prepare.sh"
ensure_browser
cd "$ROOT"
PORT="${1:-8091}"
DB=reviewloop_first_start
export DATABASE_URL="postgres://127.0.0.1:5432/$DB" REVIEWLOOP_DATA_DIR
REVIEWLOOP_DATA_DIR="$(mktemp -d)"
SHOTS="$ROOT/test-artifacts/first-start"
mkdir -p "$SHOTS"
psql -h 127.0.0.1 -d postgres -qc "DROP DATABASE IF EXISTS $DB"
cargo build --release --quiet
BIN=target/release/reviewloop
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }'; }

t0=$(now)
scripts/serve.sh --bind "127.0.0.1:$PORT" >"$SHOTS/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
until curl -sf -o /dev/null "http://127.0.0.1:$PORT/login"; do
  kill -0 $SERVER 2>/dev/null || { cat "$SHOTS/serve.log"; exit 1; }
  sleep 0.5
done
t_listen=$(now)
echo "serve.sh to listening: $(since "$t0") s (base import and trim, demo import)"

sql() { psql -h 127.0.0.1 -d "$DB" -qtAc "$1"; }
until [ "$(sql "SELECT count(*) FROM loop_cycles c JOIN round_items i ON i.round_id = c.round_id
               WHERE c.state = 'done' AND i.suggestion IS NOT NULL")" -gt 0 ]; do
  sleep 2
done
echo "listening to the assisted round: $(since "$t_listen") s"
sql "SELECT j.kind, round(extract(epoch FROM j.finished_at - j.started_at)) || ' s'
     FROM jobs j ORDER BY j.id" | sed 's/^/  job /'

PASSWORD="first-start-$RANDOM$RANDOM"
for role in annotator engineer reviewer; do
  "$BIN" user add "first-$role" --role "$role" --password "$PASSWORD" >/dev/null
done
APP_URL="http://127.0.0.1:$PORT" APP_PASSWORD="$PASSWORD" APP_SHOTS="$SHOTS" APP_WAIT_S=60 \
  APP_ANNOTATOR=first-annotator APP_ENGINEER=first-engineer APP_REVIEWER=first-reviewer \
  node tests/browser/journey.mjs

[ -n "$TWO_CYCLES" ] || exit 0
"$BIN" loop set --taxonomy fashion --every-labels 30 >/dev/null
t_labels=$(now)
while [ "$(sql "SELECT count(*) FROM loop_cycles WHERE state = 'done'")" -lt 2 ]; do
  APP_URL="http://127.0.0.1:$PORT" APP_PASSWORD="$PASSWORD" APP_ANNOTATOR=first-annotator LABELS=10 \
    node scripts/label_with_suggestions.mjs
  sql "SELECT '  cycle ' || id || ': ' || state FROM loop_cycles ORDER BY id"
done
echo "second cycle done $(since "$t_labels") s after labelling began"
APP_URL="http://127.0.0.1:$PORT" APP_PASSWORD="$PASSWORD" APP_ANNOTATOR=first-annotator LABELS=0 \
  APP_ENGINEER=first-engineer SHOT="$ROOT/docs/img/loop-timeline.png" node scripts/label_with_suggestions.mjs
