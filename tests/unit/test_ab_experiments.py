"""Content experiments: planted in the simulator, read by analytics.ab, planned with
statsmodels, imported from an export and reported by `smap ab`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.power import NormalIndPower, zt_ind_solve_power
from statsmodels.stats.proportion import proportion_effectsize

from analytics.ab import analyse, cuped_adjusted, plan
from analytics.errors import AnalyticsError
from analytics.experiments_dashboard import experiments_parts
from ingestion.csv_import import import_posts
from ingestion.simulate_experiments import PLANTED
from ingestion.simulator import simulate
from ingestion.warehouse import ParquetWarehouse
from pipelines import ab as ab_flow
from pipelines.cli import main

SEED = 5


@pytest.fixture(scope="module")
def platform() -> dict[str, pd.DataFrame]:
    return simulate("quick", SEED, experiments=True)


@pytest.fixture(scope="module")
def posts(platform) -> pd.DataFrame:
    p = platform["content_posts"]
    return p.assign(engagement_rate=(p.likes + p.comments + p.shares + p.saves) / p.reach)


@pytest.mark.parametrize(
    ("rate", "lift", "power", "alpha"),
    [(0.05, 0.1, 0.8, 0.05), (0.02, -0.15, 0.9, 0.01), (0.3, 0.05, 0.8, 0.1)],
)
def test_the_plan_is_statsmodels_power_calculation(rate, lift, power, alpha):
    effect = proportion_effectsize(rate * (1 + lift), rate)
    expected = NormalIndPower().solve_power(effect, alpha=alpha, power=power, ratio=1.0)
    assert plan(rate, lift, power, alpha).posts_per_variant == int(np.ceil(expected))
    same = zt_ind_solve_power(effect, alpha=alpha, power=power, ratio=1.0)
    assert plan(rate, lift, power, alpha).posts_per_variant == int(np.ceil(same))
    d = rate * lift / 0.04  # with the per-post sd: Cohen's d
    by_sd = NormalIndPower().solve_power(d, alpha=alpha, power=power, ratio=1.0)
    assert plan(rate, lift, power, alpha, sd=0.04).posts_per_variant == int(np.ceil(by_sd))


@pytest.mark.parametrize(
    ("args", "message"),
    [((0.0, 0.1), "baseline-rate"), ((0.5, 1.5), "lift"), ((0.1, 0.0), "lift"),
     ((0.1, 0.1, 1.0), "power"), ((0.1, 0.1, 0.8, 0.05, 0.0), "sd")],
)  # fmt: skip
def test_a_plan_that_cannot_be_made_names_the_option(args, message):
    with pytest.raises(AnalyticsError, match=message):
        plan(*args)


def test_without_experiments_the_simulator_draws_the_same_platform(platform):
    plain = simulate("quick", SEED)
    posts, enrolled = platform["content_posts"], platform["content_posts"].experiment.notna()
    assert "experiment" not in plain["content_posts"] and "truth_experiments" not in plain
    for name in ("users", "follows", "likes", "hashtags", "post_hashtags", "campaigns"):
        pd.testing.assert_frame_equal(plain[name], platform[name])
    before = plain["content_posts"]
    pd.testing.assert_frame_equal(
        before[~enrolled.to_numpy()], posts.drop(columns=["experiment", "variant"])[~enrolled]
    )
    assert set(posts.variant.dropna()) == {"A", "B"}
    truth = platform["truth_experiments"].set_index("experiment")
    assert truth.true_lift.to_dict() == {s.name: s.true_lift for s in PLANTED}
    assert truth.posts.to_dict() == posts.experiment.value_counts().to_dict()
    # thinned posts never gain interactions, and keep no more comment rows than they count
    thinned = before[enrolled.to_numpy()]
    assert (posts[enrolled].likes.to_numpy() <= thinned.likes.to_numpy()).all()
    rows = platform["comments"].groupby("post_id").size()
    assert (rows <= posts.set_index("post_id").comments.reindex(rows.index)).all()


def test_the_intervals_hold_the_planted_lifts_and_cuped_narrows_them(posts):
    for spec in PLANTED:
        report = analyse(posts, spec.name)
        (c,) = report.comparisons
        assert report.control == "A" and [v.variant for v in report.variants] == ["A", "B"]
        # one seed: the 95% intervals widened by half (about 3 standard errors) must hold the
        # planted lift; their 95% coverage over 100 seeds is benchmarks/ab_coverage.py's
        for interval in (c.plain, c.cuped):
            middle = (interval.lift_low + interval.lift_high) / 2
            half = (interval.lift_high - interval.lift_low) / 2
            assert abs(spec.true_lift - middle) <= 1.5 * half, spec.name
        assert c.width_ratio < 0.95  # the author's earlier rate explains part of the variance
        assert 0 <= c.sequential_p <= 1 and c.looks > 30
        assert c.sequential_low <= c.plain.diff <= c.sequential_high
        assert sum(v.posts for v in report.variants) == (posts.experiment == spec.name).sum()
    aa = analyse(posts, "aa_check").comparisons[0]
    assert aa.sequential_p > 0.05


def test_cuped_without_a_varying_covariate_leaves_the_outcome():
    y = np.array([1.0, 2.0, 3.0])
    adjusted, theta = cuped_adjusted(y, np.ones(3))
    assert theta == 0.0 and adjusted.tolist() == y.tolist()


def test_degenerate_variants_give_numbers_not_a_crash():
    posts = pd.DataFrame(
        {
            "post_id": range(6),
            "user_id": [1, 2, 3, 1, 2, 3],
            "created_at": pd.date_range("2026-01-01", periods=6, freq="D", tz="UTC"),
            "reach": 100,
            "engagement_rate": 0.0,
            "experiment": "flat",
            "variant": ["A", "B"] * 3,
        }
    )
    (c,) = analyse(posts, "flat").comparisons
    assert c.plain.diff == 0 and np.isnan(c.width_ratio) and c.sequential_p == 1.0
    assert json.loads(ab_flow.as_json(analyse(posts, "flat").to_dict()))["experiment"] == "flat"


def test_an_unknown_or_one_sided_experiment_is_one_line(posts):
    with pytest.raises(AnalyticsError, match="experiments: aa_check, caption_style"):
        analyse(posts, "nope")
    one = posts[(posts.experiment != "aa_check") | (posts.variant == "A")]
    with pytest.raises(AnalyticsError, match="only variant 'A'"):
        analyse(one, "aa_check")


def test_the_dashboard_shows_lifts_or_else_a_sample_size_guide(posts):
    parts = experiments_parts(posts, None)
    assert set(parts.shown.experiment) == {s.name for s in PLANTED} and len(parts.figures) == 1
    assert "content_experiments" in parts.exports
    guide = experiments_parts(posts.assign(experiment=None, variant=None), None)
    assert guide.shown.posts_per_variant.is_monotonic_decreasing and guide.figures == []
    models = pd.DataFrame({"experiment": ["engagement v3 vs v2"], "requests": [120]})
    assert "model_experiments" in experiments_parts(posts, models).exports


def test_an_export_carries_experiment_and_variant(tmp_path: Path):
    export = tmp_path / "export.csv"
    export.write_text(
        "timestamp,type,category,reach,likes,comments,shares,test,arm\n"
        "2026-03-01 10:00,image,food,100,5,1,0,caption_style,B\n"
        "2026-03-01 11:00,image,food,100,4,0,0,,\n"
        "2026-03-01 12:00,image,food,100,3,0,0,caption_style,\n"
    )
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("columns: {experiment: test, variant: arm}\ndefault_account: cafe\n")
    warehouse = ParquetWarehouse(tmp_path / "warehouse")
    result = import_posts(export, mapping, warehouse, tmp_path / "rejects")
    assert (result.rows_loaded, result.rows_rejected) == (2, 1)
    rejects = pd.read_csv(result.rejects_path)
    assert (
        rejects.astype(str).apply(lambda r: "variant (column 'arm')" in " ".join(r), axis=1).any()
    )
    loaded = warehouse.read("content_posts").sort_values("created_at")
    assert loaded.experiment.tolist() == ["caption_style", ""]  # blank, as on PostgreSQL
    assert loaded.variant.tolist() == ["B", ""]


def test_smap_ab_report_and_plan(capsys):
    assert main(["simulate", "--preset", "quick", "--seed", str(SEED), "--experiments"]) == 0
    assert main(["ingest"]) == 0
    capsys.readouterr()
    assert main(["ab", "report", "caption_style", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (c,) = report["comparisons"]
    assert c["plain"]["lift_low"] <= 0.10 <= c["plain"]["lift_high"]
    assert c["width_ratio"] < 1 and report["control"] == "A"
    assert main(["ab", "report", "caption_style"]) == 0
    assert "CUPED" in capsys.readouterr().out
    assert main(["ab", "report", "nope"]) == 1
    assert "experiment 'nope': no posts" in capsys.readouterr().err
    assert main(["ab", "plan", "--baseline-rate", "0.05", "--lift", "0.1", "--json"]) == 0
    assert (
        json.loads(capsys.readouterr().out)["posts_per_variant"]
        == plan(0.05, 0.1).posts_per_variant
    )
    assert main(["ab", "plan", "--baseline-rate", "2", "--lift", "0.1"]) == 1
    assert "baseline-rate" in capsys.readouterr().err
