"""Training sets on the real offline stores: no entity row lost, stored once, reused, logged."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import mlflow
import pandas as pd
import pytest

from configs.settings import load_settings
from feature_repo.store import open_store
from pipelines import flows
from pipelines.training import train
from training.dataset import (
    feature_groups,
    feature_service,
    historical_features,
    missing_groups,
)
from training.evaluate import evaluate
from training.snapshot import training_set
from training.tasks import get_task
from training.tracking import use_tracking

pytestmark = pytest.mark.integration
UNKNOWN_AUTHOR = 987_654_321


def _engagement_rows(settings) -> pd.DataFrame:
    from ingestion.warehouse import open_warehouse

    return get_task("engagement").label_query(open_warehouse(settings))


def test_every_labelled_row_comes_back_exactly_once(any_settings):
    """Given posts of one author sharing a timestamp and a post whose author has no feature
    row at all, when the training join runs, then each entity row comes back once, the shared
    timestamp keeps both posts with the same author features, and the unknown author's post
    is there with null author features (counted as a missing group)."""
    flows.simulate(any_settings)
    flows.ingest(any_settings)
    flows.apply_features(any_settings)
    labelled = _engagement_rows(any_settings)
    rows = labelled.iloc[len(labelled) // 2 :].head(400).copy()
    author = rows.user_id.value_counts().index[0]
    twins = rows.index[rows.user_id == author][:2]
    rows.loc[twins[1], "event_timestamp"] = rows.loc[twins[0], "event_timestamp"]
    orphan = rows.index[rows.user_id != author][0]
    rows.loc[orphan, "user_id"] = UNKNOWN_AUTHOR

    store = open_store(any_settings)
    service = get_task("engagement").feature_service
    frame, _restored = historical_features(store, rows, service, chunk_rows=1000)

    assert len(frame) == len(rows)
    assert sorted(frame.post_id) == sorted(rows.post_id)
    pair = frame[frame.post_id.isin(rows.loc[twins, "post_id"])]
    assert len(pair) == 2 and pair.followers.nunique(dropna=False) == 1
    assert pair.followers.notna().all()
    lost = frame[frame.user_id == UNKNOWN_AUTHOR]
    assert len(lost) == 1 and lost.followers.isna().all()
    groups = feature_groups(feature_service(store, service))
    counts = missing_groups(frame, groups)
    assert counts["user_engagement"] >= 1  # the orphan, and any author quiet beyond the TTL


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    root = tmp_path_factory.mktemp("training_sets")
    settings = load_settings("local", env={"SMAP_DATA_DIR": str(root / "smap")})
    flows.prepare_data(settings)
    return settings


def test_stored_set_is_reused_until_the_data_changes(platform):
    task = get_task("engagement")
    first = training_set(platform, task)
    again = training_set(platform, task)
    assert (first.reused, again.reused) == (False, True)
    assert again.training_set.fingerprint == first.training_set.fingerprint
    assert again.training_set.frame.equals(first.training_set.frame)
    assert (again.training_set.split.test == first.training_set.split.test).all()

    forced = training_set(platform, task, rebuild=True)
    assert forced.reused is False
    assert forced.training_set.fingerprint == first.training_set.fingerprint

    flows.ingest(platform)  # rewrites the analytics tables: the data may have changed
    assert training_set(platform, task).reused is False


READ_BACK = """
import json, sys
from configs.settings import load_settings
from training.snapshot import training_set
from training.tasks import get_task
stored = training_set(load_settings(), get_task("engagement"), columns=["target"])
columns = sorted(stored.training_set.frame.columns)
print(json.dumps([stored.reused, columns, "feast" in sys.modules]))
"""


def test_a_stored_set_is_read_back_without_feast_while_the_registry_is_unchanged(platform):
    """Given a stored set, when it is asked for again with the registry as it was, then it is
    read back without importing Feast (seconds of every reused `smap evaluate`), with only
    the columns asked for; after `features apply` rewrites the registry, the definitions are
    read from Feast again before the stored set is trusted."""
    task = get_task("engagement")
    training_set(platform, task)
    env = {**os.environ, "SMAP_PROFILE": "local", "SMAP_DATA_DIR": str(platform.root)}

    def read_back() -> list:
        done = subprocess.run(
            [sys.executable, "-c", READ_BACK], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-1500:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    assert read_back() == [True, ["event_timestamp", "target"], False]
    flows.apply_features(platform)
    assert read_back() == [True, ["event_timestamp", "target"], True]
    assert read_back() == [True, ["event_timestamp", "target"], False]


def test_train_logs_its_set_and_evaluate_reuses_it(platform):
    result = train(platform, "engagement", trials=2, families=("linear",))
    client = use_tracking(platform)
    run = client.get_run(result.run_id)
    inputs = run.inputs.dataset_inputs
    assert len(inputs) == 1
    fingerprint = inputs[0].dataset.digest
    assert inputs[0].dataset.name == f"engagement-{get_task('engagement').feature_service}"
    assert "missing_rows.user_engagement" in run.data.metrics
    assert "missing_rows.restored" in run.data.metrics

    report = evaluate(platform, get_task("engagement"))
    assert report["training_set"]["reused"] is True
    assert report["training_set"]["fingerprint"] == fingerprint
    assert report["training_set"]["champion_trained_on_it"] is True
    assert mlflow.get_tracking_uri() == platform.mlflow_tracking_uri


def test_asof_store_gives_feasts_own_point_in_time_answer(platform):
    """The local store's ASOF join against Feast's DuckDB window join, TTL included: the same
    values for every entity row of the engagement training set, on every view of its service."""
    rows = _engagement_rows(platform)
    rows = rows.iloc[:: max(1, len(rows) // 3000)]
    window = platform.model_copy(
        update={"feast": platform.feast.model_copy(update={"offline_store": "duckdb_window"})}
    )
    service = get_task("engagement").feature_service
    asof, _ = historical_features(open_store(platform), rows, service, chunk_rows=100_000)
    feast, _ = historical_features(open_store(window), rows, service, chunk_rows=100_000)
    assert len(asof) == len(feast) == len(rows)
    pd.testing.assert_frame_equal(asof, feast[asof.columns], check_dtype=False)


def test_postgres_asof_store_gives_feasts_own_point_in_time_answer(services_settings):
    """The services store's as-of join against Feast's own PostgreSQL join (every feature row
    inside the TTL, ranked), TTL included: the same values for every sampled entity row of
    the engagement training set, on every view of its service, hashtag slots and the author's
    ten-year category history among them."""
    from feast import FeatureStore, RepoConfig

    from feature_repo.store import feature_store_config

    flows.simulate(services_settings)
    flows.ingest(services_settings)
    flows.apply_features(services_settings)
    rows = _engagement_rows(services_settings)
    rows = rows.iloc[:: max(1, len(rows) // 300)]
    config = feature_store_config(services_settings)
    assert (
        config["offline_store"]["type"] == "feature_repo.postgres_asof.AsofPostgreSQLOfflineStore"
    )
    config["offline_store"]["type"] = "postgres"
    feasts = FeatureStore(config=RepoConfig(repo_path=services_settings.feature_repo_dir, **config))
    service = get_task("engagement").feature_service
    asof, _ = historical_features(open_store(services_settings), rows, service, 100_000)
    feast, _ = historical_features(feasts, rows, service, 100_000)
    assert len(asof) == len(feast) == len(rows)
    assert asof[["tag1_momentum", "author_category_share"]].notna().any().all()
    pd.testing.assert_frame_equal(asof, feast[asof.columns], check_dtype=False)
