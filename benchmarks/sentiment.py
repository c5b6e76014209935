"""Sentiment on real labelled social-media text: VADER against smap's trained path.

The data is VADER's own human-rated tweets (Hutto & Gilbert, ICWSM 2014; MIT licence): 4,200
tweets, each with the mean of 20 raters' scores in [-4, 4], in `tweets_GroundTruth.txt` of
`additional_resources/hutto_ICWSM_2014.tar.gz` in github.com/cjhutto/vaderSentiment. Kept out
of git; pass the file's path. Three classes from the mean rating: negative at or below
-BAND, positive at or above +BAND, neutral between; both common bands (0.5 and 1.0) are
reported, since the choice moves the figures. VADER was built with these raters, so it is
at home here: a hard baseline.

Scored by stratified 5-fold cross-validation (every tweet is tested once, by a model that never
saw it), with the trained path's two TF-IDF + logistic-regression variants at the search's
middle settings: words only, and words plus VADER's four scores (`lexicon: true`).

    .venv/bin/python benchmarks/sentiment.py PATH/tweets_GroundTruth.txt [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold

from training.sentiment import SentimentData, _fit_tfidf, vader_class, vader_scores

BANDS = (0.5, 1.0)
FOLDS = 5
SEED = 42


def read_tweets(path: Path) -> pd.DataFrame:
    """id, mean rating, text (tab-separated; the text may hold tabs of its own)."""
    rows = []
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            parts = line.rstrip("\r\n").split("\t", 2)
            if len(parts) != 3:
                raise SystemExit(f"{path.name}: line {number} is not id<TAB>rating<TAB>text")
            rows.append((parts[0], float(parts[1]), parts[2]))
    return pd.DataFrame(rows, columns=["id", "rating", "text"])


def classes(rating: pd.Series, band: float) -> np.ndarray:
    r = rating.to_numpy()
    return np.where(r <= -band, "negative", np.where(r >= band, "positive", "neutral"))


def cross_validated(texts: np.ndarray, y: np.ndarray, lexicon: bool) -> np.ndarray:
    """Each tweet's class from a model fitted on the other folds."""
    params = {"C": 3.0, "ngram_max": 2, "min_df": 1, "sublinear_tf": True, "lexicon": lexicon}
    predicted = np.empty(len(y), dtype=object)
    for train, test in StratifiedKFold(FOLDS, shuffle=True, random_state=SEED).split(texts, y):
        data = SentimentData(texts[train], y[train], texts[test], y[test], SEED)
        predicted[test] = _fit_tfidf(params, data).predict(texts[test])
    return predicted


def run(path: Path) -> list[dict[str, object]]:
    tweets = read_tweets(path)
    texts = tweets.text.to_numpy(dtype=object)
    vader = vader_class(vader_scores(texts).compound.to_numpy())
    rows = []
    for band in BANDS:
        y = classes(tweets.rating, band)
        f1 = lambda pred: float(f1_score(y, pred, average="macro"))  # noqa: E731, B023
        rows.append(
            {
                "band": band,
                "tweets": len(y),
                "shares": {c: round(float(np.mean(y == c)), 3) for c in np.unique(y)},
                "vader_macro_f1": f1(vader),
                "tfidf_logreg_macro_f1": f1(cross_validated(texts, y, lexicon=False)),
                "tfidf_vader_logreg_macro_f1": f1(cross_validated(texts, y, lexicon=True)),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="tweets_GroundTruth.txt")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args(argv)
    if not args.path.is_file():
        print(f"{args.path}: no such file", file=sys.stderr)
        return 2
    rows = run(args.path)
    print("| neutral band | tweets | VADER | TF-IDF + LR | TF-IDF + VADER scores + LR |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| ±{r['band']} | {r['tweets']} | {r['vader_macro_f1']:.3f} | "
            f"{r['tfidf_logreg_macro_f1']:.3f} | {r['tfidf_vader_logreg_macro_f1']:.3f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
