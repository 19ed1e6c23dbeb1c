#!/usr/bin/env bash
# By hand: scripts/nikl_run.sh BIN OUT imports NIKL train.jsonl into a scratch database,
# trains a small version from scratch and evaluates it, writing import.txt, train.log and
# eval.txt to OUT. Two binaries (before / after a refactoring) must give the same files
# but for the output folder named in train.log.
set -euo pipefail
BIN=$1; OUT=$2; mkdir -p "$OUT"
DB="parity_$(basename "$OUT")"
export DATABASE_URL="postgres://127.0.0.1:5432/$DB" REVIEWLOOP_DATA_DIR="$OUT/models"
psql -h 127.0.0.1 -d postgres -qc "DROP DATABASE IF EXISTS \"$DB\""
rm -rf "$OUT/models"
NIKL="${NIKL:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/../shared/data/nikl-absa-2022}"
"$BIN" import $NIKL/train.jsonl --format nikl-absa > "$OUT/import.txt" 2>&1
"$BIN" train --taxonomy nikl-absa --base none --name small > "$OUT/train.log" 2>&1
"$BIN" eval --version "$OUT/models/nikl-absa/small" > "$OUT/eval.txt" 2>&1
psql -h 127.0.0.1 -d postgres -qc "DROP DATABASE IF EXISTS \"$DB\""
echo "written: $OUT/import.txt $OUT/train.log $OUT/eval.txt"
