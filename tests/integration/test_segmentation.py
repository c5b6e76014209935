"""User segmentation end to end on both profiles: demo data -> k-means -> registry -> tables."""

import json

import mlflow
import numpy as np
import pytest

from configs.settings import load_settings
from ingestion.warehouse import open_warehouse
from pipelines import flows
from training.labels import segmentation_labels
from training.packaging import input_frame
from training.segmentation import segment, segmentation_frame
from training.tasks import TaskError
from training.tracking import use_tracking

pytestmark = pytest.mark.integration


def _load_offline(settings):
    """Simulated tables, the ETL and the Feast definitions: segmentation reads historical
    features only, so the online store is not loaded."""
    flows.simulate(settings)
    flows.ingest(settings)
    flows.apply_features(settings)
    return settings


@pytest.fixture(scope="module")
def local_platform(tmp_path_factory):
    root = tmp_path_factory.mktemp("segmentation") / "smap"
    return _load_offline(load_settings("local", env={"SMAP_DATA_DIR": str(root)}))


@pytest.fixture(scope="module")
def services_platform(module_services_settings):
    return _load_offline(module_services_settings)


@pytest.fixture(params=["local", "services"])
def any_settings(request: pytest.FixtureRequest):
    """The test on both profiles, each on a platform loaded once for this module."""
    return request.getfixturevalue(f"{request.param}_platform")


def test_segment_writes_registers_and_reproduces(any_settings):
    result = segment(any_settings)

    assert result.k in (5, 6, 7)
    assert set(result.silhouettes) == {5, 6, 7}
    assert np.isfinite(result.silhouette) and -1 < result.silhouette <= 1
    assert result.silhouette == max(s for s in result.silhouettes.values() if np.isfinite(s))

    warehouse = open_warehouse(any_settings)
    users = segmentation_labels(warehouse)
    written = warehouse.read("user_segments").sort_values("user_id").reset_index(drop=True)
    assert result.segments_written == len(written) == len(users)
    assert written.user_id.is_unique
    assert set(written.user_id) == set(users.user_id)
    assert set(written.segment) <= set(range(result.k))
    assert (written.model_version == result.version).all()

    profiles = result.profiles
    assert len(profiles) == result.k
    assert profiles["size"].sum() == len(users)
    assert profiles["share"].sum() == pytest.approx(1.0)
    assert profiles.label.is_unique
    stored = warehouse.read("segment_profiles").sort_values("segment").reset_index(drop=True)
    assert list(stored.segment) == list(profiles.segment)
    assert list(stored["size"]) == list(profiles["size"])
    assert "engagement_rate_28d" in json.loads(stored.profile_json.iloc[0])
    label_of = dict(zip(profiles.segment, profiles.label, strict=True))
    assert list(written.segment_label) == [label_of[s] for s in written.segment]

    use_tracking(any_settings)
    model = mlflow.pyfunc.load_model("models:/segmentation@champion")
    assert model.metadata.run_id == result.run_id
    frame, names = segmentation_frame(any_settings)
    assert list(frame.user_id) == list(written.user_id)
    predicted = np.asarray(model.predict(input_frame(frame, names, [])))
    assert (predicted == written.segment.to_numpy()).all()


def test_segment_refuses_too_few_users(local_platform):
    with pytest.raises(TaskError, match="too few"):
        segment(local_platform, k_range=(5, 100))  # refused before anything is written
