#!/usr/bin/env python3
"""TF-IDF + logistic-regression baseline on the same split as `reviewloop train`.

Reads an export of the label store (`reviewloop export --format jsonl --taxonomy nikl-absa`),
which carries each review's split, and reports on the validation and test splits:
keyword micro/macro F1 (one-vs-rest logistic regression on character n-grams, threshold
0.5) and sentiment micro/macro F1 (multinomial logistic regression on review + keyword).
Last, keyword micro F1 again with thresholds tuned per keyword on validation, as
reviewloop tunes its own.
Run by hand: python3 scripts/baseline_tfidf.py export.jsonl   (needs scikit-learn)
"""
import json
import sys

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.multiclass import OneVsRestClassifier
from sklearn.preprocessing import MultiLabelBinarizer

rows = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8")]
rows = [r for r in rows if r["labels"] is not None]
keywords = sorted({k for r in rows for k in r["labels"]})
by_split = {s: [r for r in rows if r["split"] == s] for s in ("train", "validation", "test")}

vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), min_df=2, sublinear_tf=True)
x_train = vectorizer.fit_transform([r["text"] for r in by_split["train"]])
binarizer = MultiLabelBinarizer(classes=keywords)
y_train = binarizer.fit_transform([list(r["labels"]) for r in by_split["train"]])
keep = y_train.sum(axis=0) > 0  # a keyword never seen in training cannot be learnt
keyword_model = OneVsRestClassifier(LogisticRegression(max_iter=2000, C=10, class_weight="balanced"))
keyword_model.fit(x_train, y_train[:, keep])


def pairs(split):
    texts, classes = [], []
    for r in by_split[split]:
        for k, level in r["labels"].items():
            texts.append(r["text"] + " [SEP] " + k)
            classes.append(level)
    return texts, classes


pair_vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), min_df=2, sublinear_tf=True)
texts, classes = pairs("train")
sentiment_model = LogisticRegression(max_iter=2000, C=10, class_weight="balanced")
sentiment_model.fit(pair_vectorizer.fit_transform(texts), classes)

for split in ("validation", "test"):
    data = by_split[split]
    x = vectorizer.transform([r["text"] for r in data])
    truth = binarizer.transform([list(r["labels"]) for r in data])[:, keep]
    predicted = keyword_model.predict(x)
    present = truth.sum(axis=0) > 0
    kw_micro = f1_score(truth, predicted, average="micro", zero_division=0)
    kw_macro = f1_score(truth[:, present], predicted[:, present], average="macro", zero_division=0)
    texts, classes = pairs(split)
    guess = sentiment_model.predict(pair_vectorizer.transform(texts))
    st_micro = f1_score(classes, guess, average="micro")
    st_macro = f1_score(classes, guess, average="macro", labels=sorted(set(classes)))
    print(f"{split:<10} n={len(data):4}  keyword micro F1 {kw_micro:.3f} macro F1 {kw_macro:.3f}  "
          f"sentiment micro F1 {st_micro:.3f} macro F1 {st_macro:.3f}")


# Thresholds tuned per keyword on validation, as reviewloop tunes its own (best F1 over
# 0.05…0.95, ties to the one nearest 0.5; 0.5 for a keyword absent from validation).
def keyword_data(split):
    data = by_split[split]
    probabilities = keyword_model.predict_proba(vectorizer.transform([r["text"] for r in data]))
    return probabilities, binarizer.transform([list(r["labels"]) for r in data])[:, keep]


def best_threshold(p, t):
    if t.sum() == 0:
        return 0.5
    grid = [step * 0.05 for step in range(1, 20)]
    return max(grid, key=lambda g: (f1_score(t, p >= g, zero_division=0), -abs(g - 0.5)))


p_valid, t_valid = keyword_data("validation")
tuned = [best_threshold(p_valid[:, j], t_valid[:, j]) for j in range(p_valid.shape[1])]
for split in ("validation", "test"):
    p, t = keyword_data(split)
    micro = f1_score(t, p >= tuned, average="micro", zero_division=0)
    print(f"{split:<10} keyword micro F1 with thresholds tuned per keyword on validation {micro:.3f}")
