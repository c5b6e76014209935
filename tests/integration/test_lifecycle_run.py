"""Engagement quality, share cascades and lifecycles through `smap analytics run` on both
profiles: the share graph round-trips through the warehouse, the planted bot bursts are the
ones discounted, and an export without a share graph gets counters-only quality and a page
that says why its cascades are missing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from analytics.report import write_report
from ingestion.warehouse import open_warehouse
from pipelines import flows
from pipelines.analytics import run as run_analytics

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_analytics_run_writes_quality_cascades_and_lifecycles(any_settings):
    flows.simulate(any_settings, preset="quick")
    flows.ingest(any_settings)
    done = run_analytics(any_settings)
    warehouse = open_warehouse(any_settings)

    posts = warehouse.read("content_posts")
    assert done["post_quality"] == len(posts)
    scored = warehouse.read("post_quality")
    flagged = scored[scored.bot_engagements > 0].set_index("post_id").bot_engagements
    planted = warehouse.read("truth_bot_bursts").set_index("post_id").bot_shares
    assert flagged.sort_index().to_dict() == planted.sort_index().to_dict()
    assert set(scored.quality_class) == {"low", "medium", "high"}

    cascades = warehouse.read("post_cascades")
    assert len(cascades) == (posts.shares > 0).sum()  # bot-only posts have no cascade
    assert cascades.depth.max() >= 3 and (cascades.viral_share <= 0.8 + 1e-9).all()
    starters = warehouse.read("cascade_starters")
    assert starters["rank"].min() == 1 and starters.user_id.isin(posts.user_id).all()

    half = warehouse.read("engagement_half_life").set_index(["post_type", "kind"])
    assert half.half_life_hours[("video", "share")] > half.half_life_hours[("text", "share")]
    summary = warehouse.read("stage_summary").set_index("stage")
    assert summary.users.sum() == len(warehouse.read("users"))
    assert summary.churn_rate["active"] < summary.churn_rate["dormant"]
    transitions = warehouse.read("stage_transitions")
    assert len(transitions) == 25 and transitions.users.sum() > 0

    page = write_report(any_settings)
    shown = {s.key: s for s in page.sections}
    for key in ("quality", "cascades", "lifecycle"):
        assert shown[key].figures and not shown[key].empty, key


def test_an_export_without_a_share_graph_scores_on_counters(local_settings):
    flows.ingest_csv(local_settings, FIXTURES / "posts_export.csv", FIXTURES / "posts_mapping.yaml")
    flows.ingest(local_settings)
    run_analytics(local_settings)
    warehouse = open_warehouse(local_settings)
    posts = warehouse.read("content_posts").set_index("post_id")
    scored = warehouse.read("post_quality").set_index("post_id")
    assert (scored.shares == posts.shares.reindex(scored.index)).all()
    assert scored.bot_engagements.sum() == 0
    assert warehouse.read("post_cascades").empty
    cascades = next(s for s in write_report(local_settings).sections if s.key == "cascades")
    assert "No share graph" in cascades.note
    assert pd.notna(scored.quality_score).any()


class QuietDaysModel:
    """A stand-in churn champion: the probability grows with the days since the last activity."""

    features = ["days_since_last_activity", "active_days_28d"]

    def predict_frame(self, frame: pd.DataFrame):
        return (frame.days_since_last_activity.clip(0, 60) / 60.0).to_numpy()


@pytest.fixture
def mlflow_restored(monkeypatch):
    """MLflow's global URIs and request settings put back after the test."""
    import mlflow

    for name in ("MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES"):
        monkeypatch.setenv(name, "30")
    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    yield
    mlflow.set_tracking_uri(before[0])
    mlflow.set_registry_uri(before[1])


def test_stages_carry_the_churn_champion_s_probability(local_settings, mlflow_restored):
    import mlflow
    from mlflow.pyfunc import PythonModel

    from analytics.churn_risk import champion_churn
    from analytics.lifecycle import track_lifecycles

    class Wrapped(PythonModel, QuietDaysModel):
        def predict(self, context, model_input, params=None):
            return self.predict_frame(model_input)

    flows.simulate(local_settings, preset="quick")
    flows.ingest(local_settings)
    warehouse = open_warehouse(local_settings)
    assert champion_churn(local_settings) is None  # no registry yet: nothing opened

    uri = local_settings.mlflow_tracking_uri
    local_settings.root.mkdir(parents=True, exist_ok=True)
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment(
        "lifecycle-test", artifact_location=(local_settings.root / "artifacts").as_uri()
    )
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    with mlflow.start_run(experiment_id=experiment):
        logged = mlflow.pyfunc.log_model(name="model", python_model=Wrapped(), pip_requirements=[])
    version = mlflow.register_model(logged.model_uri, "churn").version
    assert champion_churn(local_settings) is None  # registered, not champion
    client.set_registered_model_alias("churn", "champion", version)

    scorer = champion_churn(local_settings)
    assert scorer is not None and scorer.version == int(version)
    track_lifecycles(warehouse, scorer)
    summary = warehouse.read("stage_summary").set_index("stage")
    probability = summary.churn_probability
    assert probability["active"] < probability["at-risk"] < probability["dormant"]
    assert summary.risk_source.iloc[0].startswith(f"churn champion v{version} on ")
