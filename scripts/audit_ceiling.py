"""By hand (no test depends on it). How many planted flips the fold models could find if
they had learnt from clean labels: the ceiling of any better fold model. Takes the
`--scores` file of a `bench audit --rate 0` run (fold models trained on the file's own
labels, nothing flipped), plants flips afterwards the way `bench audit` does (5 % of
the reviews, half removed and half added) with many random draws, and ranks the
suspects by the clean models' probability (`model`) as `audit::confident` does. The
neighbours' vote is left out: it would have to be taken over the flipped labels.

    reviewloop bench audit --data ../shared/data/nikl-absa-2022/train.jsonl --format nikl-absa \\
        --keyword '제품 전체#일반' --base e5-ko --fast --rate 0 --scores clean.jsonl
    python3 scripts/audit_ceiling.py clean.jsonl [draws]
"""
import random, statistics, sys

from audit_ensemble import load, score

def draw(rows, rng, rate=0.05):
    """One planting: (the labels as flipped, {index: "removed" | "added"})."""
    clean = [r["labelled"] for r in rows]
    total = round(len(rows) * rate)
    with_it = [i for i, l in enumerate(clean) if l]
    without = [i for i, l in enumerate(clean) if not l]
    flips = {i: "removed" for i in rng.sample(with_it, min(total // 2, len(with_it)))}
    flips.update({i: "added" for i in rng.sample(without, total - len(flips))})
    return [(not l) if i in flips else l for i, l in enumerate(clean)], flips

def recall(model, labelled, flips):
    """Recall overall, of removed and of added flips, counted as `audit_ensemble.score` does."""
    planted = [{"labelled": l, "flip": flips.get(i)} for i, l in enumerate(labelled)]
    _, found, by_kind = score(planted, model)
    return [found, by_kind["removed"], by_kind["added"]]

def main(path, draws):
    rows = load(path)
    assert not any(r["flip"] for r in rows), "a --rate 0 run: nothing planted by bench audit"
    model = [r["model"] for r in rows]
    rng = random.Random(0)
    runs = [recall(model, *draw(rows, rng)) for _ in range(draws)]
    for k, name in enumerate(["recall", "removed", "added"]):
        values = [r[k] for r in runs]
        print(f"{name}: mean {statistics.mean(values):.3f}, sd {statistics.stdev(values):.3f} over {draws} draws")

if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 200)
