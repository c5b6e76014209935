"""Model selection holds on small, shifting data: time-ordered folds that never see the test
part, anchors a tuned search must beat, offsets over the naive baseline, blends kept only
when the folds say so."""

from __future__ import annotations

import pickle

import numpy as np
import optuna
import pandas as pd
import pytest

from configs.settings import TrainingSettings
from training.dataset import TrainingSet, time_split
from training.families.combine import Blend, Member, Offset
from training.search import Spec, best_of_run, prepare, time_folds
from training.tasks import get_task
from training.trainers import REGRESSION

ENGAGEMENT = get_task("engagement")
FEATURES = ["engagement_rate_28d", "posts_28d", "x1", "post_type"]


def _small_set(rows: int = 900, seed: int = 0, linear: bool = True) -> TrainingSet:
    """Posts over 180 days whose engagement is the author's recent rate plus a little from
    one feature: what a ridge over the rate gets nearly right."""
    rng = np.random.default_rng(seed)
    stamps = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(
        np.sort(rng.uniform(0, 180, rows)), unit="D"
    )
    rate = rng.gamma(2.0, 0.02, rows)
    posts = rng.integers(0, 30, rows).astype(float)
    x1 = rng.normal(size=rows)
    effect = 0.01 * x1 if linear else 0.02 * np.sin(3 * x1)
    target = rate + effect + rng.normal(scale=0.005, size=rows)
    known = rng.uniform(size=rows) > 0.1
    frame = pd.DataFrame(
        {
            "event_timestamp": stamps,
            "engagement_rate_28d": np.where(known, rate, np.nan),
            "posts_28d": np.where(known, posts, 0.0),
            "x1": x1,
            "post_type": rng.choice(["video", "image"], rows),
            "target": target,
        }
    )
    split = time_split(frame.event_timestamp, ENGAGEMENT.label_days)
    return TrainingSet(ENGAGEMENT, frame, FEATURES, ["post_type"], split, f"fp{seed}", {})


def test_time_folds_expand_and_keep_the_label_gap_and_the_test_part_out():
    ts = _small_set()
    prepared = prepare(ts, 0, REGRESSION, TrainingSettings(cv_folds=3))
    folds = prepared.folds
    assert len(folds) == 3
    test_start = ts.part("test").event_timestamp.min()
    gap = pd.Timedelta(days=ENGAGEMENT.label_days)
    sizes = [len(f.data[False].y_train) for f in folds]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]  # expanding windows
    non_test = pd.concat([ts.part("train"), ts.part("validation")]).sort_values("event_timestamp")
    for fold in folds:
        scored = fold.frame.event_timestamp
        assert scored.max() < test_start
        trained = non_test.event_timestamp.iloc[: len(fold.data[False].y_train)]
        assert trained.max() < scored.min() - gap + pd.Timedelta(microseconds=1)
        assert np.allclose(fold.data[False].y_val, fold.frame.target.to_numpy())


def test_large_sets_are_scored_on_the_one_validation_split():
    ts = _small_set()
    prepared = prepare(ts, 0, REGRESSION, TrainingSettings(cv_max_rows=10))
    assert not prepared.cross_validated
    assert len(prepared.folds[0].frame) == len(ts.part("validation"))


def test_too_few_rows_for_folds_falls_back_to_the_split():
    assert time_folds(_small_set(rows=60), prepare(_small_set(rows=60), 0).data, 3) == []


def test_offset_shrinks_a_thin_rate_toward_the_population():
    offset = Offset(rate=0, count=1, population=0.05, strength=5.0)
    x = np.array([[0.20, 1.0], [0.20, 100.0], [np.nan, 0.0]])
    thin, thick, unknown = offset.base(x)
    assert unknown == pytest.approx(0.05)
    assert 0.05 < thin < 0.10  # one post: mostly the population
    assert thick == pytest.approx((100 * 0.2 + 5 * 0.05) / 105)


def _chosen(ts: TrainingSet, families: tuple[str, ...], trials: int, **selection):
    settings = TrainingSettings(**selection)
    objective = REGRESSION.objective(ts, families, "run", settings)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(1))
    study.optimize(objective, n_trials=trials)
    best = best_of_run(study, "run", ts.task.name)
    return objective, REGRESSION.best_model(ts, objective, best, study)


def test_a_plain_ridge_is_kept_when_the_search_cannot_beat_it():
    ts = _small_set()
    objective, model = _chosen(ts, ("forest",), 2, blend=False)
    chosen = model.selection["chosen"]
    singles = [c for c in model.selection["considered"] if c["family"] != "blend"]
    assert chosen["value"] == max(c["value"] for c in singles)
    assert chosen["family"] == "linear"  # a linear truth: the forests lose to the anchor
    assert len(chosen["folds"]) == 3
    pred = model.predict_frame(ts.part("test")[FEATURES])
    assert np.corrcoef(pred, ts.part("test").target)[0, 1] > 0.9


def test_without_anchors_the_run_keeps_its_best_trial():
    ts = _small_set()
    _, model = _chosen(ts, ("forest",), 2, anchors=False, blend=False)
    assert model.selection["chosen"]["family"] == "forest"


def test_a_blend_is_kept_only_when_it_beats_the_best_single_candidate_on_most_folds():
    ts = _small_set(linear=False)
    _, model = _chosen(ts, ("forest", "lightgbm"), 3)
    considered = model.selection["considered"]
    chosen = model.selection["chosen"]
    best_single = max((c for c in considered if c["family"] != "blend"), key=lambda c: c["value"])
    if chosen["family"] == "blend":
        ahead = sum(a > b for a, b in zip(chosen["folds"], best_single["folds"], strict=True))
        assert chosen["value"] > best_single["value"] and ahead * 2 > len(chosen["folds"])
        assert isinstance(model.fitted, Blend)
    else:
        assert chosen["value"] == best_single["value"]
    assert any(c["family"] == "blend" for c in considered)


def test_an_offset_member_predicts_the_same_after_pickling():
    ts = _small_set()
    objective = REGRESSION.objective(ts, ("linear",), "run", TrainingSettings())
    spec = Spec("linear", {"alpha": 1.0}, offset_strength=5.0)
    fitted = objective.fit(spec, objective.prepared.data, lambda step, loss: None)
    assert isinstance(fitted, Member) and fitted.offset is not None
    x = objective.prepared.data[False].x_val
    again = pickle.loads(pickle.dumps(fitted))
    assert np.allclose(again.predict(x), fitted.predict(x))


def test_an_anchor_that_cannot_be_scored_is_skipped_not_fatal(monkeypatch):
    from training import selection

    ts = _small_set()
    objective = REGRESSION.objective(ts, ("linear",), "run", TrainingSettings())
    real = objective.score

    def failing_with_offset(spec, report=None):
        if spec.offset_strength is not None:
            raise FloatingPointError("validation r2 is not finite (fold 1)")
        return real(spec, report)

    monkeypatch.setattr(objective, "score", failing_with_offset)
    assert [a.label for a in selection.anchors(objective)] == ["ridge"]
