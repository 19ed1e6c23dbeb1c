#!/usr/bin/env python3
"""TF-IDF + logistic-regression baseline on the same split as `reviewloop train`.

Reads an export of the label store (`reviewloop export --format jsonl --taxonomy nikl-absa`),
which carries each review's split, and reports on the validation and test splits:
keyword micro/macro F1 (one-vs-rest logistic regression on character n-grams, threshold
0.5), sentiment micro/macro F1 (multinomial logistic regression on review + keyword,
gold keywords), and the whole chain's F1 over (keyword, level) pairs (found keywords,
each with its predicted level, against the labelled pairs: the NIKL 2022 task's metric).
Last, keyword micro F1 and pipeline F1 again with thresholds tuned per keyword on
validation, as reviewloop tunes its own.
Run by hand: python3 scripts/baseline_tfidf.py export.jsonl [--json]   (needs scikit-learn)
With --json, one JSON object of every figure is printed instead of the lines.
"""
import json
import sys

import numpy as np
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
kept_keywords = [k for k, kept in zip(keywords, keep) if kept]
keyword_model = OneVsRestClassifier(LogisticRegression(max_iter=2000, C=10, class_weight="balanced"))
keyword_model.fit(x_train, y_train[:, keep])


def pair_text(text, keyword):
    return text + " [SEP] " + keyword


def pairs(split):
    texts, classes = [], []
    for r in by_split[split]:
        for k, level in r["labels"].items():
            texts.append(pair_text(r["text"], k))
            classes.append(level)
    return texts, classes


pair_vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), min_df=2, sublinear_tf=True)
texts, classes = pairs("train")
sentiment_model = LogisticRegression(max_iter=2000, C=10, class_weight="balanced")
sentiment_model.fit(pair_vectorizer.fit_transform(texts), classes)


def keyword_data(split):
    data = by_split[split]
    probabilities = keyword_model.predict_proba(vectorizer.transform([r["text"] for r in data]))
    return probabilities, binarizer.transform([list(r["labels"]) for r in data])[:, keep]


def pipeline_f1(split, decided):
    """F1 over (keyword, level) pairs: each found keyword gets the sentiment model's level."""
    data = by_split[split]
    found = [(i, kept_keywords[j]) for i, j in zip(*np.nonzero(decided))]
    if found:
        levels = sentiment_model.predict(pair_vectorizer.transform([pair_text(data[i]["text"], k) for i, k in found]))
    else:
        levels = []
    correct = sum(1 for (i, k), level in zip(found, levels) if data[i]["labels"].get(k) == level)
    labelled = sum(len(r["labels"]) for r in data)
    precision = correct / len(found) if found else 0.0
    recall = correct / labelled if labelled else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


figures = {}
for split in ("validation", "test"):
    data = by_split[split]
    p, truth = keyword_data(split)
    predicted = p >= 0.5
    present = truth.sum(axis=0) > 0
    texts, classes = pairs(split)
    guess = sentiment_model.predict(pair_vectorizer.transform(texts))
    figures[split] = {
        "reviews": len(data),
        "keyword_micro_f1": f1_score(truth, predicted, average="micro", zero_division=0),
        "keyword_macro_f1": f1_score(truth[:, present], predicted[:, present], average="macro", zero_division=0),
        "sentiment_micro_f1": f1_score(classes, guess, average="micro"),
        "sentiment_macro_f1": f1_score(classes, guess, average="macro", labels=sorted(set(classes))),
        "pipeline_f1": pipeline_f1(split, predicted),
        "per_keyword": {k: f1_score(truth[:, j], predicted[:, j], zero_division=0)
                        for j, k in enumerate(kept_keywords) if present[j]},
    }


# Thresholds tuned per keyword on validation, as reviewloop tunes its own (best F1 over
# 0.05…0.95, ties to the one nearest 0.5; 0.5 for a keyword absent from validation).
def best_threshold(p, t):
    if t.sum() == 0:
        return 0.5
    grid = [step * 0.05 for step in range(1, 20)]
    return max(grid, key=lambda g: (f1_score(t, p >= g, zero_division=0), -abs(g - 0.5)))


p_valid, t_valid = keyword_data("validation")
tuned = np.array([best_threshold(p_valid[:, j], t_valid[:, j]) for j in range(p_valid.shape[1])])
for split in ("validation", "test"):
    p, t = keyword_data(split)
    figures[split]["keyword_micro_f1_tuned"] = f1_score(t, p >= tuned, average="micro", zero_division=0)
    figures[split]["pipeline_f1_tuned"] = pipeline_f1(split, p >= tuned)

if "--json" in sys.argv:
    print(json.dumps(figures))
else:
    for split, f in figures.items():
        print(f"{split:<10} n={f['reviews']:4}  keyword micro F1 {f['keyword_micro_f1']:.3f} "
              f"macro F1 {f['keyword_macro_f1']:.3f}  sentiment micro F1 {f['sentiment_micro_f1']:.3f} "
              f"macro F1 {f['sentiment_macro_f1']:.3f}  pipeline F1 {f['pipeline_f1']:.3f}")
    for split, f in figures.items():
        print(f"{split:<10} with thresholds tuned per keyword on validation: keyword micro F1 "
              f"{f['keyword_micro_f1_tuned']:.3f}, pipeline F1 {f['pipeline_f1_tuned']:.3f}")
