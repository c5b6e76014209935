"""`smap train sentiment`: a comment's text -> negative, neutral or positive.

Two paths, one registry. VADER (`vaderSentiment`, a rule-based lexicon made for social-media
text: negation, intensifiers, capitals, emoji) needs no labels: it is logged as an MLflow
pyfunc model and registered as a version of `sentiment` like any trained one, so serving and
lineage do not care which path answered. Where comments carry labels, candidates are tuned
like every task (an Optuna study, a nested MLflow run per trial, macro F1 on validation):
TF-IDF (words and word pairs, emoji kept as tokens) with a multinomial logistic regression,
and a small Keras text model. The gate's naive baseline is VADER's class of each comment, so a
trained model is crowned only if it beats the lexicon on the time-held-out test part.

Comments are split by time (60/20/20, no gap: the label is known when the comment is written).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version as pkg_version
from typing import Any

import mlflow
import numpy as np
import optuna
import pandas as pd
from mlflow.pyfunc import PythonModel
from sklearn.metrics import accuracy_score, f1_score

from configs.settings import Settings
from ingestion.simulate_sentiment import CLASSES
from ingestion.warehouse import open_warehouse
from training import tags as tag
from training.dataset import ALL_DATA, DataWindow, TrainingSet, split_by_time
from training.descriptions import model_description
from training.errors import TaskError
from training.registry import Decision, crown_unscored, current_champion
from training.task import Task
from training.text_models import KERAS_FAMILIES, fit_keras, requirements
from training.text_objective import TextObjective
from training.tracking import (
    READY,
    VERSION_STATE,
    experiment_for,
    log_json,
    log_pyfunc,
    register_version,
    use_tracking,
)

TASK = "sentiment"
INPUTS = ["text"]
LEXICON = "vader"  # VADER's class, carried by every row: the gate's naive baseline
BASE_REQUIREMENTS = ("mlflow", "numpy", "pandas", "scikit-learn", "vaderSentiment")
# VADER's own cut points on its compound score (the package's README)
COMPOUND_NEGATIVE, COMPOUND_POSITIVE = -0.05, 0.05
TOKENS = r"[^\s,.!?;:\"()]+"  # whitespace words; an emoji stays a token of its own
SEQUENCE_LENGTH = 40
MIN_LABELLED = 30  # fewer labelled comments than this: VADER answers alone


# ---- VADER --------------------------------------------------------------------------------------


def _analyzer():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer  # type: ignore[import-untyped]

    return SentimentIntensityAnalyzer()


def vader_scores(texts: Any, analyzer=None) -> pd.DataFrame:
    """VADER's `neg`, `neu`, `pos` shares and `compound` score per text."""
    analyzer = analyzer or _analyzer()
    rows = [analyzer.polarity_scores(str(t)) for t in texts]
    return pd.DataFrame(rows, columns=["neg", "neu", "pos", "compound"]).astype(float)


def vader_class(compound: np.ndarray) -> np.ndarray:
    """VADER's class by its documented cut points on the compound score."""
    c = np.asarray(compound, dtype=float)
    polar = np.where(c >= COMPOUND_POSITIVE, "positive", "neutral")
    return np.where(c <= COMPOUND_NEGATIVE, "negative", polar).astype(object)


# ---- data ---------------------------------------------------------------------------------------


def labelled_comments(settings: Settings, task: Task, window: DataWindow = ALL_DATA):
    """The task's labelled comments of `window` (possibly none)."""
    return window.select(task.label_query(open_warehouse(settings)))


def sentiment_set(settings: Settings, task: Task, window: DataWindow = ALL_DATA) -> TrainingSet:
    """Labelled comments of `window` in time order, split 60/20/20, each row carrying VADER's
    class (the naive baseline)."""
    rows = labelled_comments(settings, task, window)
    unknown = sorted(set(rows.target) - set(CLASSES))
    if unknown:
        raise TaskError(
            f"{TASK}: label {unknown[0]!r} is not one of {', '.join(CLASSES)} "
            f"({len(unknown)} unknown label(s))"
        )
    if len(rows) < MIN_LABELLED or rows.target.nunique() < 2:
        raise TaskError(
            f"{TASK}: {len(rows)} labelled comments of {rows.target.nunique()} classes are too "
            f"few to train (at least {MIN_LABELLED} of two classes); VADER answers without "
            f"labels (`smap train sentiment` crowns it when there is no champion)"
        )
    frame, split = split_by_time(rows, "comment_id", task.label_days)
    if min(len(split.train), len(split.validation), len(split.test)) == 0:
        raise TaskError(f"{TASK}: {len(frame)} comments are too few to split by time")
    frame[LEXICON] = vader_class(vader_scores(frame.text).compound.to_numpy())
    return TrainingSet.of(task, frame, list(INPUTS), [], split)


def score(frame: pd.DataFrame, predicted) -> dict[str, float]:
    """Macro F1 over the three classes, and accuracy."""
    y, pred = frame.target.astype(str).to_numpy(), np.asarray(predicted).astype(str)
    return {
        "macro_f1": float(
            f1_score(y, pred, labels=list(CLASSES), average="macro", zero_division=0)
        ),
        "accuracy": float(accuracy_score(y, pred)),
    }


# ---- the logged model ---------------------------------------------------------------------------


class SentimentModel(PythonModel):
    """VADER or a fitted text classifier behind one interface: classes, or a score per class
    (VADER: its neg / neu / pos shares; trained: probabilities)."""

    kind = "multiclass"
    threshold = None

    def __init__(self, estimator: Any, family: str, classes: list[str]):
        self.estimator, self.family, self.classes = estimator, family, list(classes)
        self.features = list(INPUTS)
        self._vader = None

    def __getstate__(self):  # VADER's lexicon is rebuilt from the package, not pickled
        return {**self.__dict__, "_vader": None}

    def _texts(self, frame: pd.DataFrame) -> np.ndarray:
        if "text" not in frame.columns:
            raise ValueError("model input is missing feature(s): text")
        return frame.text.fillna("").astype(str).to_numpy(dtype=object)

    def scores_and_classes(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(rows, 3) scores in CLASSES order, and the class of each row."""
        texts = self._texts(frame)
        if self.family == LEXICON:
            self._vader = self._vader or _analyzer()
            found = vader_scores(texts, self._vader)
            scores = found[["neg", "neu", "pos"]].to_numpy()
            return scores, vader_class(found.compound.to_numpy())
        if self.family in KERAS_FAMILIES:
            proba = np.asarray(self.estimator.predict(texts, verbose=0), dtype=float)
        else:
            proba = np.asarray(self.estimator.predict_proba(texts), dtype=float)
        aligned = np.zeros((len(texts), len(CLASSES)))
        aligned[:, [CLASSES.index(c) for c in self.classes]] = proba
        return aligned, np.asarray(CLASSES, dtype=object)[aligned.argmax(1)]

    def predict_frame(self, frame: pd.DataFrame) -> np.ndarray:
        return self.scores_and_classes(frame)[1]

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        return self.predict_frame(model_input)


# ---- families -----------------------------------------------------------------------------------


def suggest(trial: optuna.Trial, family: str) -> dict[str, Any]:
    """All `suggest_*` calls of a family, in one visible block per family."""
    p = f"{family}."
    if family == "tfidf_logreg":
        return {
            "C": trial.suggest_float(p + "C", 0.1, 100.0, log=True),
            "ngram_max": trial.suggest_int(p + "ngram_max", 1, 3),
            "min_df": trial.suggest_int(p + "min_df", 1, 3),
            "sublinear_tf": trial.suggest_categorical(p + "sublinear_tf", [True, False]),
            # VADER's four scores beside the words: the lexicon's rules as features
            "lexicon": trial.suggest_categorical(p + "lexicon", [True, False]),
        }
    if family == "keras_text":
        return {
            "embedding": trial.suggest_int(p + "embedding", 16, 64, log=True),
            "units": trial.suggest_int(p + "units", 16, 64, log=True),
            "dropout": trial.suggest_float(p + "dropout", 0.0, 0.4),
            "learning_rate": trial.suggest_float(p + "learning_rate", 2e-3, 2e-2, log=True),
            "epochs": trial.suggest_int(p + "epochs", 4, 16, step=4),
        }
    raise ValueError(f"family: unknown sentiment family {family!r}")


@dataclass(frozen=True)
class SentimentData:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    seed: int

    @classmethod
    def of(cls, ts: TrainingSet, seed: int) -> SentimentData:
        train, val = ts.part("train"), ts.part("validation")
        return cls(
            train.text.astype(str).to_numpy(dtype=object),
            train.target.astype(str).to_numpy(),
            val.text.astype(str).to_numpy(dtype=object),
            val.target.astype(str).to_numpy(),
            seed,
        )


def _fit_tfidf(params: dict, data: SentimentData) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    vectorize = TfidfVectorizer(
        token_pattern=TOKENS,
        ngram_range=(1, params["ngram_max"]),
        min_df=params["min_df"],
        sublinear_tf=params["sublinear_tf"],
        lowercase=True,
    )
    classify = LogisticRegression(C=params["C"], max_iter=2000, random_state=data.seed)
    features: Any = vectorize
    if params.get("lexicon", False):
        from sklearn.pipeline import FeatureUnion

        features = FeatureUnion([("words", vectorize), ("lexicon", LexiconScores())])
    return Pipeline([("features", features), ("classify", classify)]).fit(
        data.x_train, data.y_train
    )


class LexiconScores:
    """VADER's neg, neu, pos and compound scores of each text as four features (a scikit-learn
    transformer; the analyzer is built on first use, never pickled)."""

    SCALE = 3.0  # about the weight of a strong TF-IDF column

    def __init__(self):
        self._vader = None

    def __getstate__(self):
        return {**self.__dict__, "_vader": None}

    def fit(self, x, y=None):
        return self

    def transform(self, x) -> np.ndarray:
        self._vader = self._vader or _analyzer()
        return vader_scores(x, self._vader).to_numpy() * self.SCALE

    def get_params(self, deep=True):
        return {}

    def set_params(self, **params):
        return self


def _fit_keras(params: dict, data: SentimentData, report) -> Any:
    return fit_keras(
        params,
        (data.x_train, np.searchsorted(CLASSES, data.y_train)),
        (data.x_val, np.searchsorted(CLASSES, data.y_val)),
        len(CLASSES),
        data.seed,
        report,
        batch_size=128,
        output_sequence_length=SEQUENCE_LENGTH,
        ngrams=2,  # word pairs: "not good" is a token of its own
        standardize="lower",
    )


def fit(family: str, params: dict, data: SentimentData, report=lambda step, loss: None):
    """One candidate fitted on the training part; `report(step, validation loss)` per epoch."""
    if family in KERAS_FAMILIES:
        return SentimentModel(_fit_keras(params, data, report), family, list(CLASSES))
    estimator = _fit_tfidf(params, data)
    return SentimentModel(estimator, family, [str(c) for c in estimator.classes_])


def lexicon_model() -> SentimentModel:
    """VADER as a model: no fit, no labels."""
    return SentimentModel(None, LEXICON, list(CLASSES))


# ---- search -------------------------------------------------------------------------------------


def objective(
    ts: TrainingSet, data: SentimentData, families: tuple[str, ...], run_id=""
) -> TextObjective:
    """Each trial fits one candidate and returns validation macro F1 (the best model is kept)."""
    return TextObjective(ts, data, families, run_id, suggest, fit, score, ts.part("validation"))


# ---- logging ------------------------------------------------------------------------------------


EXAMPLE = pd.DataFrame({"text": ["so love this 😍", "not good, boring", "where is this"]})


def log_model(model: SentimentModel, example: pd.DataFrame | None, family: str) -> None:
    example = EXAMPLE if example is None else example[INPUTS].head(5).reset_index(drop=True)
    log_pyfunc(model, example, requirements(BASE_REQUIREMENTS, family))


def oracle_scores(part: pd.DataFrame) -> dict[str, float]:
    """The simulator's expressed class on the same rows (empty on imported data)."""
    if part.oracle.isna().any():
        return {}
    return score(part, part.oracle.to_numpy())


def side_by_side(ts: TrainingSet, model: Any, predicted) -> dict[str, object]:
    """Macro F1 of the model, VADER and the oracle on the test part, and F1 per class."""
    test = ts.part("test")
    per_class = f1_score(
        test.target.astype(str),
        np.asarray(predicted).astype(str),
        labels=list(CLASSES),
        average=None,
        zero_division=0,
    )
    return {
        "family": getattr(model, "family", ""),
        "per_class_f1": dict(zip(CLASSES, map(float, per_class), strict=True)),
        "vader_macro_f1": score(test, test[LEXICON])["macro_f1"],
        "oracle_macro_f1": oracle_scores(test).get("macro_f1"),
        "classes": list(CLASSES),
    }


def log_extras(ts: TrainingSet, model: SentimentModel) -> None:
    """VADER and the oracle on the test part next to the model, F1 per class."""
    test = ts.part("test")
    log_json(side_by_side(ts, model, model.predict_frame(test)), "sentiment_test.json")


# ---- the lexicon champion -----------------------------------------------------------------------


def crown_lexicon(settings: Settings, task: Task) -> Decision | None:
    """Register VADER as a version of the task and crown it when the task has no champion,
    so sentiment answers without labels; None (nothing logged) when a champion exists."""
    client = use_tracking(settings)
    if current_champion(client, task.name) is not None:
        return None
    experiment_for(settings, task.name)
    with mlflow.start_run(run_name=f"{task.name}-vader") as run:
        mlflow.log_params({"family": LEXICON, "vaderSentiment": pkg_version("vaderSentiment")})
        mlflow.set_tags({tag.TASK: task.name, tag.FEATURES: task.feature_service})
        log_model(lexicon_model(), None, LEXICON)
    version = register_version(
        f"runs:/{run.info.run_id}/model",
        task.name,
        tags={VERSION_STATE: READY, tag.DATA: "none", tag.FEATURES: task.feature_service},
        description="VADER (vaderSentiment lexicon and rules): needs no labels",
        model_description=model_description(task),
    )
    return crown_unscored(
        client,
        open_warehouse(settings),
        task,
        version,
        "VADER, a lexicon that needs no labels, answers until a trained model beats it",
    )
