"""By hand (no test depends on it). Ranks suspects from `bench audit --scores` files as
`audit::confident` does, for each model's scores and for the mean of their probabilities
(an ensemble), and counts the planted flips among the top 2 × flipped. Each row's
`present` is what the audit ranked: the fold models' probability (`model`), blended with
the neighbours' vote (`neighbours`) unless the run had `--neighbours 0`.

    python3 scripts/audit_ensemble.py frozen.jsonl trained.jsonl
"""
import json, sys

def load(path):
    return [json.loads(l) for l in open(path)]

def suspects(present, labelled):
    p = [[1 - x, x] for x in present]
    given = [int(l) for l in labelled]
    sums = [[0.0, 0], [0.0, 0]]
    for pr, g in zip(p, given):
        sums[g][0] += pr[g]; sums[g][1] += 1
    limits = [s / n if n else None for s, n in sums]
    found = []
    for i, (pr, g) in enumerate(zip(p, given)):
        c = 1 - g
        if limits[c] is None or pr[c] < limits[c]:
            continue
        margin = pr[c] - pr[g]
        if margin <= 0:
            continue
        excess = (pr[c] - limits[c]) / max(1 - limits[c], 1e-7)
        found.append((-excess, i))
    found.sort()
    return [i for _, i in found]

def score(rows, present):
    labelled = [r["labelled"] for r in rows]
    flips = [r["flip"] for r in rows]
    n = sum(f is not None for f in flips)
    top = suspects(present, labelled)[: 2 * n]
    hit = [i for i in top if flips[i] is not None]
    kinds = {}
    for f in flips:
        if f is not None:
            kinds[f] = kinds.get(f, 0) + 1
    by = {k: sum(flips[i] == k for i in hit) / v for k, v in kinds.items()}
    return len(hit) / len(top), len(hit) / n, by

def main(files):
    runs = [load(f) for f in files]
    for f, rows in zip(files, runs):
        pr, rc, by = score(rows, [r["present"] for r in rows])
        print(f, "%.3f %.3f" % (pr, rc), by)
    if len(runs) > 1:
        assert all(r["labelled"] == s["labelled"] and r["flip"] == s["flip"] for rows in runs[1:] for r, s in zip(runs[0], rows))
        mean = [sum(rows[i]["present"] for rows in runs) / len(runs) for i in range(len(runs[0]))]
        pr, rc, by = score(runs[0], mean)
        print("mean of", len(runs), "%.3f %.3f" % (pr, rc), by)

if __name__ == "__main__":
    main(sys.argv[1:])
