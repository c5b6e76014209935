"""`smap train content`: caption + hashtags + post type -> content category.

Trained like the other tasks: an Optuna study in the profile's storage, a nested MLflow run
per trial, the best trial of the run registered as `content` and crowned only through the
champion gate (`training.registry.promote`), with macro F1 on the newest 20% of posts as the
metric and "the most frequent category" as the naive baseline.

Why the warehouse and not Feast: every input is the post's own text and type, which a
serving request carries (a draft has no history to look up), and the target is known at
publication. A feature service would be an on-demand view passing three request strings
through, and Feast stores no free text online. So rows come from `content_posts` through
`labels.content_labels`; `content_v1` names this input contract (caption, hashtags, post type
as request data) in the lineage, not a Feast FeatureService. Posts are split by time
(60/20/20, no gap: there is no label window).

Candidates: TF-IDF (caption words and bigrams, hashtags as whole tokens, post type one-hot)
with a multinomial logistic regression, or with a linear SVM calibrated to probabilities, and
a small TensorFlow text model (TextVectorization, embedding, average pooling, dense).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mlflow
import numpy as np
import optuna
import pandas as pd
from mlflow.pyfunc import PythonModel
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from configs.settings import Settings
from ingestion.warehouse import open_warehouse
from training.dataset import ALL_DATA, DataWindow, TrainingSet, split_by_time
from training.errors import TaskError
from training.task import Task
from training.text_models import KERAS_FAMILIES, fit_keras, requirements
from training.text_objective import TextObjective
from training.tracking import log_json, log_pyfunc

TASK = "content"
INPUTS = ["caption", "hashtags", "post_type"]
MAJORITY = "majority_category"  # the naive baseline's answer, carried by every row
BASE_REQUIREMENTS = ("mlflow", "numpy", "pandas", "scikit-learn")
SEQUENCE_LENGTH = 80  # tokens per post (captions run to 60 words, plus tags and type)


# ---- data ---------------------------------------------------------------------------------------


def content_set(settings: Settings, task: Task, window: DataWindow = ALL_DATA) -> TrainingSet:
    """Posts of `window` in time order, split 60/20/20, each row carrying the train part's
    most frequent category (the naive baseline)."""
    rows = window.select(task.label_query(open_warehouse(settings)))
    if rows.target.nunique() < 2:
        raise TaskError(
            f"{TASK}: needs posts of at least two categories ({len(rows)} posts, "
            f"{rows.target.nunique()} categories)"
        )
    frame, split = split_by_time(rows, "post_id", task.label_days)
    if min(len(split.train), len(split.validation), len(split.test)) == 0:
        raise TaskError(f"{TASK}: {len(frame)} posts are too few to split by time")
    frame[MAJORITY] = frame.target.iloc[split.train].value_counts().idxmax()
    return TrainingSet.of(task, frame, list(INPUTS), ["post_type"], split)


def score(frame: pd.DataFrame, predicted) -> dict[str, float]:
    """Macro F1 over the categories present in `frame`, and accuracy."""
    y, pred = frame.target.astype(str).to_numpy(), np.asarray(predicted).astype(str)
    labels = np.unique(y)
    return {
        "macro_f1": float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(y, pred)),
    }


def _text(frame: pd.DataFrame) -> np.ndarray:
    """One string per post for the network: caption, tags without '#', and a type token."""
    tags = frame.hashtags.fillna("").astype(str).str.replace("#", " ", regex=False)
    kind = "type_" + frame.post_type.fillna("").astype(str)
    return (frame.caption.fillna("").astype(str) + " " + tags + " " + kind).to_numpy(dtype=object)


# ---- the logged model ---------------------------------------------------------------------------


class ContentModel(PythonModel):
    """A fitted text classifier behind one interface: category labels or probabilities."""

    kind = "multiclass"
    threshold = None

    def __init__(self, estimator: Any, family: str, classes: list[str]):
        self.estimator, self.family, self.classes = estimator, family, list(classes)
        self.features = list(INPUTS)

    def _inputs(self, frame: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in INPUTS if c not in frame.columns]
        if missing:
            raise ValueError(f"model input is missing feature(s): {', '.join(missing)}")
        return frame[INPUTS].fillna("").astype(str)

    def predict_proba_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """(rows, categories) probabilities, columns in `classes` order."""
        x = self._inputs(frame)
        if self.family in KERAS_FAMILIES:
            return np.asarray(self.estimator.predict(_text(x), verbose=0), dtype=float)
        return np.asarray(self.estimator.predict_proba(x), dtype=float)

    def predict_frame(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.classes, dtype=object)[self.predict_proba_frame(frame).argmax(1)]

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        return self.predict_frame(model_input)


# ---- families -----------------------------------------------------------------------------------


def suggest(trial: optuna.Trial, family: str) -> dict[str, Any]:
    """All `suggest_*` calls of a family, in one visible block per family."""
    p = f"{family}."
    if family == "tfidf_logreg":
        return {
            "C": trial.suggest_float(p + "C", 0.1, 100.0, log=True),
            "ngram_max": trial.suggest_int(p + "ngram_max", 1, 2),
            "min_df": trial.suggest_int(p + "min_df", 1, 5),
            "sublinear_tf": trial.suggest_categorical(p + "sublinear_tf", [True, False]),
        }
    if family == "tfidf_svc":
        return {
            "C": trial.suggest_float(p + "C", 0.01, 10.0, log=True),
            "ngram_max": trial.suggest_int(p + "ngram_max", 1, 2),
            "min_df": trial.suggest_int(p + "min_df", 1, 5),
            "sublinear_tf": trial.suggest_categorical(p + "sublinear_tf", [True, False]),
        }
    if family == "keras_text":
        return {
            "embedding": trial.suggest_int(p + "embedding", 16, 64, log=True),
            "units": trial.suggest_int(p + "units", 16, 128, log=True),
            "dropout": trial.suggest_float(p + "dropout", 0.0, 0.4),
            "learning_rate": trial.suggest_float(p + "learning_rate", 1e-3, 2e-2, log=True),
            "epochs": trial.suggest_int(p + "epochs", 4, 16, step=4),
        }
    raise ValueError(f"family: unknown content family {family!r}")


def _tfidf(params: dict) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import OneHotEncoder

    return ColumnTransformer(
        [
            (
                "caption",
                TfidfVectorizer(
                    ngram_range=(1, params["ngram_max"]),
                    min_df=params["min_df"],
                    sublinear_tf=params["sublinear_tf"],
                ),
                "caption",
            ),
            (  # a tag is one token ("#fashion_12" -> "fashion_12")
                "hashtags",
                TfidfVectorizer(token_pattern=r"[^\s#,]+", sublinear_tf=params["sublinear_tf"]),
                "hashtags",
            ),
            ("post_type", OneHotEncoder(handle_unknown="ignore"), ["post_type"]),
        ]
    )


def _fit_sklearn(family: str, params: dict, x: pd.DataFrame, y: np.ndarray, seed: int):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.svm import LinearSVC

    if family == "tfidf_logreg":
        clf = LogisticRegression(C=params["C"], max_iter=2000, random_state=seed)
    else:  # probabilities from Platt scaling on 3 folds of the training part
        clf = CalibratedClassifierCV(LinearSVC(C=params["C"], random_state=seed), cv=3)
    return Pipeline([("tfidf", _tfidf(params)), ("classify", clf)]).fit(x, y)


def _fit_keras(params: dict, data: ContentData, report) -> Any:
    return fit_keras(
        params,
        (_text(data.x_train), data.codes(data.y_train)),
        (_text(data.x_val), data.codes(data.y_val)),
        len(data.classes),
        data.seed,
        report,
        batch_size=256,
        output_sequence_length=SEQUENCE_LENGTH,
    )


@dataclass(frozen=True)
class ContentData:
    x_train: pd.DataFrame
    y_train: np.ndarray
    x_val: pd.DataFrame
    y_val: np.ndarray
    classes: list[str]
    seed: int

    @classmethod
    def of(cls, ts: TrainingSet, seed: int) -> ContentData:
        train, val = ts.part("train"), ts.part("validation")
        return cls(
            train[INPUTS].reset_index(drop=True),
            train.target.astype(str).to_numpy(),
            val[INPUTS].reset_index(drop=True),
            val.target.astype(str).to_numpy(),
            sorted(ts.frame.target.astype(str).unique()),
            seed,
        )

    def codes(self, y: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.classes, y)


def fit(family: str, params: dict, data: ContentData, report=lambda step, loss: None):
    """One candidate fitted on the training part; `report(step, validation loss)` per epoch."""
    if family in KERAS_FAMILIES:
        return ContentModel(_fit_keras(params, data, report), family, data.classes)
    estimator = _fit_sklearn(family, params, data.x_train, data.y_train, data.seed)
    model = ContentModel(estimator, family, list(estimator.classes_))
    if model.classes != data.classes:  # a category absent from the training part
        aligned = _Aligned(estimator, model.classes, data.classes)
        model = ContentModel(aligned, family, data.classes)
    return model


class _Aligned:
    """Probabilities over every category of the data (0 for one the training part lacks)."""

    def __init__(self, inner: Any, known: list[str], every: list[str]):
        self.inner, self.at, self.width = inner, [every.index(c) for c in known], len(every)

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        out = np.zeros((len(x), self.width))
        out[:, self.at] = self.inner.predict_proba(x)
        return out


# ---- search -------------------------------------------------------------------------------------


def objective(
    ts: TrainingSet, data: ContentData, families: tuple[str, ...], run_id=""
) -> TextObjective:
    """Each trial fits one candidate and returns validation macro F1 (the best model is kept)."""
    return TextObjective(ts, data, families, run_id, suggest, fit, score, data.x_val)


def _log_confusion(ts: TrainingSet, predicted: np.ndarray, classes: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    test = ts.part("test")
    y = test.target.astype(str).to_numpy()
    matrix = confusion_matrix(y, predicted.astype(str), labels=classes)
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("content: confusion (test)")
    for (i, j), n in np.ndenumerate(matrix):
        ax.text(j, i, str(n), ha="center", va="center", fontsize=7)
    fig.tight_layout()
    mlflow.log_figure(fig, "plots/confusion.png")
    plt.close(fig)
    per_class = f1_score(y, predicted.astype(str), labels=classes, average=None, zero_division=0)
    log_json(dict(zip(classes, map(float, per_class), strict=True)), "per_class_f1.json")


def oracle_scores(part: pd.DataFrame) -> dict[str, float]:
    """The simulator's Bayes classifier on the same rows (empty on imported data)."""
    if part.oracle.isna().any():
        return {}
    return score(part, part.oracle.to_numpy())


PARTS = ("train", "validation", "test")


def evaluate_extras(ts: TrainingSet, model: ContentModel, predicted) -> dict[str, object]:
    """What `smap evaluate content` adds: the family, F1 per category, rows per part."""
    test = ts.part("test")
    labels = sorted(test.target.astype(str).unique())
    per_class = f1_score(
        test.target.astype(str), np.asarray(predicted).astype(str), labels=labels, average=None
    )
    return {
        "family": getattr(model, "family", ""),
        "per_class_f1": dict(zip(labels, map(float, per_class), strict=True)),
        "split": {"rows": {n: len(getattr(ts.split, n)) for n in PARTS}},
    }


def log_model(model: ContentModel, example: pd.DataFrame, family: str) -> None:
    log_pyfunc(model, example, requirements(BASE_REQUIREMENTS, family))


def log_extras(ts: TrainingSet, model: ContentModel) -> None:
    """The categories as a parameter, the test confusion matrix and F1 per category."""
    mlflow.log_param("classes", ",".join(model.classes))
    test = ts.part("test")
    _log_confusion(ts, model.predict_frame(test[INPUTS].reset_index(drop=True)), model.classes)
