"""Model experiments without a service: which arm answers whom, the sequential test, the
analysis of logged arms, and old prediction-log parts read beside new ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from analytics import model_experiments_stats as st
from monitoring.experiments import analyse_rows
from serving.experiments import ShadowScorer
from serving.prediction_log import COLUMNS, _merge, read_parquet_log
from training.experiments import Experiment, arm_of


def experiment(mode: str = "split", split: float = 0.3, min_samples: int = 50) -> Experiment:
    return Experiment("abc123", "engagement", 1, 2, mode, split, min_samples,  # type: ignore[arg-type]
                      "2026-01-01T00:00:00+00:00")  # fmt: skip


def test_an_author_always_gets_one_arm_and_the_split_is_the_share_asked():
    e = experiment(split=0.3)
    first = [arm_of(e, user) for user in range(20_000)]
    assert first == [arm_of(e, user) for user in range(20_000)]  # deterministic
    share = first.count("challenger") / len(first)
    assert 0.28 < share < 0.32
    other = Experiment(**{**e.__dict__, "id": "other"})
    assert [arm_of(other, u) for u in range(200)] != first[:200]  # a new experiment reshuffles
    assert {arm_of(experiment("shadow", 0.0), u) for u in range(100)} == {"champion"}
    assert Experiment.from_json(e.to_json()) == e


def test_msprt_rarely_rejects_an_aa_and_finds_a_real_difference():
    false = sum(
        st.two_sample(np.abs(rng.normal(size=1000)), rng.random(1000) < 0.5).p_value < 0.05
        for rng in (np.random.default_rng(s) for s in range(100))
    )
    assert false <= 8  # nominal 5% of 100, read after every answer
    rng = np.random.default_rng(0)
    x, b = np.abs(rng.normal(size=3000)), rng.random(3000) < 0.5
    x[b] *= 0.8
    result = st.two_sample(x, b)
    assert result.p_value < 0.01 and result.low < result.difference < result.high < 0
    d = np.abs(rng.normal(size=2000)) * 0.8 - np.abs(rng.normal(size=2000))
    paired = st.paired(d)
    assert paired.p_value < 0.01 and paired.high < 0
    assert st.paired(d[:10]).p_value == 1.0  # before the burn-in nothing is claimed


def logged(e: Experiment, n: int, challenger_noise: float, seed: int = 0) -> pd.DataFrame:
    """Rows as `arm_rows` gives them: a label per answer, each arm's prediction around it."""
    rng = np.random.default_rng(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    label = rng.normal(size=n)
    rows = []
    for i in range(n):
        at = start + timedelta(seconds=i)
        arms = ["champion", "challenger"] if e.mode == "shadow" else [arm_of(e, i)]
        for arm in arms:
            noise = challenger_noise if arm == "challenger" else 1.0
            rows.append({"request_id": f"r{i}", "entity": f'{{"user_id": {i}}}', "arm": arm,
                         "prediction": label[i] + noise * rng.normal(), "label": label[i],
                         "logged_at": at})  # fmt: skip
    return pd.DataFrame(rows)


@pytest.mark.parametrize("mode", ["split", "shadow"])
def test_analysis_names_a_better_challenger_and_not_an_equal_one(mode):
    e = experiment(mode, 0.5 if mode == "split" else 0.0)
    better = analyse_rows(e, "r2", logged(e, 1500, challenger_noise=0.6))
    assert better.won and better.enough and better.paired == (mode == "shadow")
    champion, challenger = better.arms
    assert challenger.metric.value > champion.metric.value
    assert better.metric_difference.low > 0  # the bootstrap interval of the R² difference
    assert challenger.abs_error.value < champion.abs_error.value
    same = analyse_rows(e, "r2", logged(e, 1500, challenger_noise=1.0, seed=3))
    assert not same.won and "no difference" in same.verdict
    few = analyse_rows(experiment(mode, e.split, min_samples=5000), "r2", logged(e, 300, 0.5))
    assert not few.won and few.verdict.startswith("waiting")
    unlabelled = logged(e, 200, 0.5).assign(label=np.nan)
    assert not analyse_rows(e, "r2", unlabelled).won
    nothing = analyse_rows(e, "r2", pd.DataFrame(columns=["request_id", "arm", "label"]))
    assert nothing.verdict.startswith("waiting: 0 and 0") and nothing.error_difference.p_value == 1


def _part(path, rows: int, with_arm: bool) -> None:
    frame = pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(rows)],
            "logged_at": pd.Timestamp("2026-01-01", tz="UTC"),
            "task": "engagement",
            "entity": "{}",
            "features": "{}",
            "prediction": 0.1,
            "model": "engagement",
            "model_version": 1,
            "run_id": "x",
            "feature_service": "engagement_v2",
            **({"arm": "challenger"} if with_arm else {}),
        }
    )
    frame.to_parquet(path, index=False)


def test_log_parts_written_before_arms_read_and_compact_beside_new_ones(tmp_path):
    folder = tmp_path / "predictions"
    folder.mkdir()
    old = folder / "part-20260101T000000000000-1-a.parquet"
    new = folder / "part-20260101T000001000000-1-b.parquet"
    _part(old, 3, with_arm=False)
    _part(new, 2, with_arm=True)
    rows = read_parquet_log(folder)
    assert list(rows.columns) == list(COLUMNS)
    assert rows.arm.isna().sum() == 3 and (rows.arm == "challenger").sum() == 2
    target = tmp_path / "merged.parquet"
    assert _merge([], [old, new], target, []) == 5
    merged = pd.read_parquet(target)
    assert merged.arm.isna().sum() == 3 and (merged.arm == "challenger").sum() == 2


def test_shadow_scores_in_batches_bounded_and_never_raises():
    batches: list[list] = []
    scorer = ShadowScorer(batches.append, seconds=3600, queue=3)
    assert all(scorer.submit(i) for i in range(3))
    assert not scorer.submit(3) and scorer.skipped == 1  # a full queue: not shadowed
    scorer.drain()
    assert batches == [[0, 1, 2]] and scorer.scored == 3

    def broken(batch):
        raise RuntimeError("challenger failed")

    failing = ShadowScorer(broken, seconds=3600)
    failing.submit("x")
    failing.drain()  # counted, not raised
    assert failing.failed == 1 and failing.scored == 0
    scorer.close()
    failing.close()
