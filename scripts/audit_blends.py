"""By hand (needs scikit-learn and numpy; no test depends on it). Whether any blend of
the audit's signals finds more planted flips: the fold models' probability (`model`),
the e5 neighbours' vote (`neighbours`) and a lexical vote (the share of the review's k
nearest reviews by character 2–4-gram TF-IDF cosine labelled with the keyword), with
weights in steps of 0.1 and k of 5, 10, 20 and 40. Reads the labelled NIKL file the
`bench audit --scores` runs were made from (reviews in file order, repeated texts once,
as the audit's import keeps them) and prints, for each run, the default blend and the
three best blends found on that same run, which flatters them.

    python3 scripts/audit_blends.py ../shared/data/nikl-absa-2022/train.jsonl '제품 전체#일반' s8.jsonl s9.jsonl
"""
import json, sys

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from audit_ensemble import load, score

def texts_of(path):
    seen, texts = set(), []
    for line in open(path, encoding="utf-8"):
        text = json.loads(line)["sentence_form"]
        if text not in seen:
            seen.add(text)
            texts.append(text)
    return texts

def nearest(texts):
    tfidf = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, min_df=2)
    x = tfidf.fit_transform(texts)
    similar = (x @ x.T).toarray()
    np.fill_diagonal(similar, -1)
    return np.argsort(-similar, axis=1)[:, :40]

def main(data, keyword, files):
    order = nearest(texts_of(data))
    for path in files:
        rows = load(path)
        assert len(rows) == len(order), f"{path}: {len(rows)} reviews, the file has {len(order)}"
        labelled = np.array([r["labelled"] for r in rows], dtype=float)
        model = np.array([r["model"] for r in rows])
        e5 = np.array([r["neighbours"] for r in rows])
        recall = lambda present: score(rows, list(present))[1]
        found = []
        for k in (5, 10, 20, 40):
            lexical = labelled[order[:, :k]].mean(1)
            for a in range(11):
                for b in range(11 - a):
                    present = (1 - (a + b) / 10) * model + a / 10 * e5 + b / 10 * lexical
                    found.append((round(recall(present), 3), k, a / 10, b / 10))
        found.sort(reverse=True)
        print(f"{path} ({keyword}): default {recall(0.6 * model + 0.4 * e5):.3f}; best (recall, k, e5 share, lexical share): {found[:3]}")

if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
