from feast import FeatureService

from configs.settings import load_settings
from feature_repo.feature_services import CHURN_USER_FEATURES
from feature_repo.store import definitions
from serving.features import AUTHOR_DEFAULTS, AUTHOR_PROBE
from training.tasks.churn import TASK


def _services(tmp_path) -> dict[str, FeatureService]:
    settings = load_settings("local", env={"SMAP_DATA_DIR": str(tmp_path)})
    return {d.name: d for d in definitions(settings) if isinstance(d, FeatureService)}


def test_churn_trains_on_activity_and_keeps_its_old_service(tmp_path):
    """Given the feature repo, when its services are built, then churn's own service reads the
    user view's activity columns and the activity trend view, and churn_v1 stays for the
    champions trained on it."""
    services = _services(tmp_path)
    churn = services[TASK.feature_service]
    read = {p.name: [f.name for f in p.features] for p in churn.feature_view_projections}
    assert read["user_engagement"] == list(CHURN_USER_FEATURES)
    assert read["user_activity_trend"] == ["active_days_3d", "active_days_14d", "usual_active_rate"]
    assert "churn_v1" in services


def test_an_unknown_account_gets_a_default_for_every_churn_input(tmp_path):
    """Given churn's service, then serving can tell an unknown account (its probe is an
    input) and has a documented default for each input."""
    churn = _services(tmp_path)[TASK.feature_service]
    inputs = [f.name for p in churn.feature_view_projections for f in p.features]
    assert AUTHOR_PROBE in inputs
    assert set(inputs) <= set(AUTHOR_DEFAULTS)
