#!/usr/bin/env python3
"""K-fold cross-validation of `reviewloop train` against TF-IDF + LR on the same folds
(run by hand; needs scikit-learn and a built reviewloop).

Every labelled review of a JSONL export (`reviewloop export --format jsonl`) is in the
test split of exactly one fold. For fold f: the reviews of fold f are the test split; of
the rest, one in nine (by a hash of the text) is the validation split that early
stopping and thresholds use, the others train. Each fold gets its own scratch database
(the labelled reviews with their splits, plus an optional unlabelled file) and data dir
(sharing the bases of --data-dir), then `reviewloop train ARGS…`, `reviewloop eval`
(test split) and scripts/baseline_tfidf.py on the fold's own export. Prints one line per
fold and the means with their standard deviations, and writes everything to OUT/cv.json.

  python3 scripts/cross_validate.py --bin target/release/reviewloop --export export.jsonl \\
      --unlabelled ../shared/data/nikl-absa-2022/unlabelled.jsonl --data-dir models \\
      --taxonomy nikl-absa --out /tmp/cv -- --base e5-ko
"""
import argparse
import hashlib
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
KEYS = ["keyword_micro_f1", "keyword_macro_f1", "sentiment_macro_f1", "pipeline_f1"]


def bucket(text: str, n: int) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little") % n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--export", required=True, help="JSONL export of the labelled reviews")
    parser.add_argument("--unlabelled", help="a file of unlabelled reviews to import beside them (NIKL format)")
    parser.add_argument("--data-dir", required=True, help="where the bases are (its base/ is shared)")
    parser.add_argument("--taxonomy", default="nikl-absa")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--only", help="comma-separated folds to run (default: all)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--baseline-only", action="store_true", help="only TF-IDF + LR on every fold (seconds)")
    parser.add_argument("train_args", nargs="*")
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in open(args.export, encoding="utf-8")]
    rows = [r for r in rows if r.get("labels") is not None]
    folds = range(args.folds) if not args.only else [int(f) for f in args.only.split(",")]
    if args.baseline_only:
        runs = {str(f): baseline(args, fold_file(args, out / f"fold{f}", rows, f)) for f in folds}
        (out / "baseline.json").write_text(json.dumps(runs, indent=1))
        report_baseline(runs)
        return
    results = json.loads((out / "cv.json").read_text()) if (out / "cv.json").exists() else {}
    for f in folds:
        if str(f) in results:
            continue
        results[str(f)] = run_fold(args, out, rows, f)
        (out / "cv.json").write_text(json.dumps(results, indent=1))
        report(results)


def fold_file(args, fold_dir: pathlib.Path, rows: list, f: int) -> pathlib.Path:
    """The labelled reviews with fold f's splits: its reviews test, one in nine of the rest validation."""
    fold_dir.mkdir(exist_ok=True)
    data = fold_dir / "labelled.jsonl"
    with open(data, "w", encoding="utf-8") as file:
        for r in rows:
            split = "test" if bucket(r["text"], args.folds) == f else ("validation" if bucket(r["text"] + "#v", 9) == 0 else "train")
            file.write(json.dumps({"text": r["text"], "labels": r["labels"], "split": split,
                                   "mall": r.get("mall", ""), "category": r.get("category", "")}, ensure_ascii=False) + "\n")
    return data


def run_fold(args, out: pathlib.Path, rows: list, f: int) -> dict:
    fold_dir = out / f"fold{f}"
    data = fold_file(args, fold_dir, rows, f)
    # First, so a missing scikit-learn stops the run before half an hour of training.
    reference = baseline(args, data)
    models = fold_dir / "models"
    models.mkdir(exist_ok=True)
    shared = pathlib.Path(args.data_dir).resolve() / "base"
    if not (models / "base").exists():
        os.symlink(shared, models / "base")
    env = dict(os.environ, DATABASE_URL=f"postgres://127.0.0.1:5432/reviewloop_cv_{f}", REVIEWLOOP_DATA_DIR=str(models))
    subprocess.run(["psql", "-h", "127.0.0.1", "-d", "postgres", "-qc", f"DROP DATABASE IF EXISTS reviewloop_cv_{f}"], check=True)
    def rl(*command, **kwargs):
        return subprocess.run([args.bin, *command], env=env, check=True, **kwargs)
    rl("import", str(data), "--format", "jsonl", "--taxonomy", args.taxonomy, capture_output=True)
    if args.unlabelled:
        rl("import", args.unlabelled, "--format", "nikl-absa", "--taxonomy", args.taxonomy, capture_output=True)
    version = models / args.taxonomy / "cv"
    seconds = None
    if version.exists():
        # Trained by a run that stopped before its result was written (a version folder
        # appears only once training succeeded): evaluated again, not retrained.
        print(f"fold {f}: evaluating the version trained earlier in {version}", file=sys.stderr)
    else:
        started = time.time()
        with open(fold_dir / "train.log", "w") as log:
            rl("train", "--taxonomy", args.taxonomy, "--name", "cv", *args.train_args, stdout=log, stderr=log)
        seconds = time.time() - started
    evaluation = json.loads(rl("eval", "--taxonomy", args.taxonomy, "--version", str(version), "--json", capture_output=True).stdout)
    ours = {
        "reviews": evaluation["reviews"],
        "keyword_micro_f1": evaluation["keyword"]["micro"]["f1"],
        "keyword_macro_f1": evaluation["keyword"]["macro_avg"]["f1"],
        "sentiment_macro_f1": evaluation["sentiment"]["macro_avg"]["f1"],
        "pipeline_f1": evaluation["pipeline"]["f1"],
        "per_keyword": {name: scores["f1"] for name, scores in evaluation["keyword"]["labels"]},
        "support": {name: scores["support"] for name, scores in evaluation["keyword"]["labels"]},
        "train_seconds": seconds,
    }
    subprocess.run(["psql", "-h", "127.0.0.1", "-d", "postgres", "-qc", f"DROP DATABASE IF EXISTS reviewloop_cv_{f}"], check=True)
    return {"ours": ours, "baseline": reference}


def baseline(args, data: pathlib.Path) -> dict:
    """TF-IDF + LR on the fold's file (it carries each review's split, as an export does)."""
    run = subprocess.run([args.python, str(ROOT / "scripts" / "baseline_tfidf.py"), str(data), "--json"],
                         check=True, capture_output=True)
    return json.loads(run.stdout)["test"]


def report(results: dict) -> None:
    for f, r in sorted(results.items()):
        line = "  ".join(f"{k} {r['ours'][k]:.3f}/{r['baseline'][k]:.3f}" for k in KEYS)
        seconds = r["ours"]["train_seconds"]
        trained = f"train {seconds:.0f} s" if seconds is not None else "trained earlier"
        print(f"fold {f} (ours/TF-IDF): {line}  {trained}")
    if len(results) > 1:
        for who in ("ours", "baseline"):
            line = "  ".join(f"{k} {mean_sd(r[who][k] for r in results.values())}" for k in KEYS)
            print(f"mean {who:<8}: {line}")
        for k in KEYS:
            deltas = [r["ours"][k] - r["baseline"][k] for r in results.values()]
            print(f"  {k}: ours − TF-IDF {statistics.mean(deltas):+.3f} (per fold {', '.join(f'{d:+.3f}' for d in deltas)})")
    per_keyword(results)
    sys.stdout.flush()


def mean_sd(values) -> str:
    values = list(values)
    return f"{statistics.mean(values):.3f}±{statistics.stdev(values):.3f}"


def report_baseline(runs: dict) -> None:
    for f, r in sorted(runs.items()):
        print(f"fold {f} TF-IDF: " + "  ".join(f"{k} {r[k]:.3f}" for k in KEYS))
    if len(runs) > 1:
        print("mean TF-IDF: " + "  ".join(f"{k} {mean_sd(r[k] for r in runs.values())}" for k in KEYS))


def per_keyword(results: dict) -> None:
    """Each keyword's F1 averaged over the folds where it has test labels, ours and TF-IDF's."""
    names = sorted({k for r in results.values() for k, n in r["ours"].get("support", {}).items() if n})
    print("per keyword (labels in the test folds; F1 ours / TF-IDF, mean over folds with labels):")
    for name in names:
        runs = [r for r in results.values() if r["ours"]["support"].get(name)]
        ours = statistics.mean(r["ours"]["per_keyword"][name] for r in runs)
        theirs = statistics.mean(r["baseline"].get("per_keyword", {}).get(name, 0.0) for r in runs)
        support = sum(r["ours"]["support"][name] for r in runs)
        print(f"  {name:<16} {support:5}  {ours:.3f} / {theirs:.3f}  {ours - theirs:+.3f}")


if __name__ == "__main__":
    main()
