"""The `xgboost_spark` family on a real Spark session: it fits as well as the local `xgboost`
family with the same parameters, and the model it logs loads and predicts without Spark."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
import uuid
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from configs.settings import load_settings
from training.engines import start_engines
from training.families import FeatureEncoder, fit
from training.families.base import Data
from training.packaging import SmapModel, model_code
from training.trainers import pinned

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
PARAMS = {
    "rounds": 100,
    "eta": 0.1,
    "max_depth": 4,
    "subsample": 1.0,
    "colsample": 1.0,
    "min_child_weight": 1.0,
    "lambda": 1.0,
}
FEATURES = [f"x{i}" for i in range(6)]


def _frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, len(FEATURES)))
    x[rng.random(x.shape) < 0.05] = np.nan  # missing features, as Feast returns them
    filled = np.nan_to_num(x)
    y = np.sin(filled[:, 0]) + filled[:, 1] * filled[:, 2] + 0.5 * filled[:, 3]
    frame = pd.DataFrame(x, columns=FEATURES)
    frame["target"] = y + rng.normal(scale=0.1, size=rows)
    return frame


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    return float(1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2))


@pytest.fixture(scope="module", params=["local[2]", "standalone"])
def spark_master(request) -> str:
    """Spark in this process, or the session's standalone cluster (`smap cluster up`)."""
    if request.param == "standalone":
        return request.getfixturevalue("cluster_env")["SMAP_SPARK__MASTER"]
    return request.param


@pytest.fixture(scope="module")
def spark_settings(spark_master, tmp_path_factory):
    """Cluster settings on `spark_master`, its session shared by the module's tests and
    stopped after, so the next master gets a session of its own."""
    root = tmp_path_factory.mktemp("spark") / "smap"
    settings = load_settings(
        "cluster", env={"SMAP_DATA_DIR": str(root), "SMAP_SPARK__MASTER": spark_master}
    )
    start_engines(settings, ("xgboost_spark",))
    yield settings
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is not None:
        session.stop()


def test_spark_fit_matches_local_xgboost_and_serves_without_spark(spark_settings, tmp_path):
    train, val, test = _frame(10_000, 1), _frame(2000, 2), _frame(2000, 3)
    encoder = FeatureEncoder.fit(train, FEATURES, [], scale=False)
    data = Data(
        encoder.transform(train),
        train.target.to_numpy(),
        encoder.transform(val),
        val.target.to_numpy(),
        "regression",
        seed=7,
    )
    reported: list[tuple[int, float]] = []

    on_spark = fit("xgboost_spark", PARAMS, data, lambda step, loss: reported.append((step, loss)))
    local = fit("xgboost", PARAMS, data, lambda step, loss: None)

    x_test, y_test = encoder.transform(test), test.target.to_numpy()
    spark_r2, local_r2 = _r2(y_test, on_spark.predict(x_test)), _r2(y_test, local.predict(x_test))
    assert local_r2 > 0.8
    assert abs(spark_r2 - local_r2) < 0.02, (spark_r2, local_r2)
    assert reported == []  # rounds run in Spark tasks: nothing to prune on
    importances = on_spark.importances(len(FEATURES))
    assert importances is not None and importances.argmax() in (0, 1, 2, 3)

    model = SmapModel(encoder, on_spark, "regression", FEATURES)
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking)
    mlflow.set_experiment("xgboost_spark")  # not the experiment an earlier test made current
    with tempfile.TemporaryDirectory() as code, mlflow.start_run() as run:
        mlflow.pyfunc.log_model(
            name="model",
            python_model=model,
            pip_requirements=pinned(("mlflow", "xgboost")),
            code_paths=model_code(Path(code)),
        )
    test[FEATURES].to_parquet(tmp_path / "test.parquet")
    expected = model.predict_frame(test[FEATURES])

    # a process where importing pyspark fails loads the logged model and predicts
    served = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys
                sys.modules["pyspark"] = None  # any import of pyspark now raises
                import mlflow, numpy as np, pandas as pd
                mlflow.set_tracking_uri({tracking!r})
                model = mlflow.pyfunc.load_model("runs:/{run.info.run_id}/model")
                pred = model.predict(pd.read_parquet({str(tmp_path / "test.parquet")!r}))
                np.save({str(tmp_path / "served.npy")!r}, np.asarray(pred))
                """
            ),
        ],
        cwd=tmp_path,  # not the checkout: the model's own code is what loads
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert served.returncode == 0, served.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "served.npy"), expected, rtol=1e-6)


def test_spark_classifier_gives_probabilities_that_learned(spark_settings):
    frame = _frame(4000, 4)
    x, y = frame[FEATURES].to_numpy(), (frame.target > frame.target.median()).to_numpy(float)
    data = Data(x[:3000], y[:3000], x[3000:], y[3000:], "classification", seed=7)

    fitted = fit("xgboost_spark", PARAMS, data, lambda step, loss: None)

    p = fitted.predict(data.x_val)
    assert p.shape == (1000,) and ((p >= 0) & (p <= 1)).all()
    assert np.mean((p > 0.5) == data.y_val.astype(bool)) > 0.8


def test_train_on_the_cluster_profile_registers_a_spark_fitted_model(
    spark_settings, cluster_env, tmp_path
):
    from pipelines import flows
    from pipelines.training import train

    # the session cluster's MLflow server and database, a data folder of this test's own, the
    # local data engines (as in test_cluster_models.py) and this module's Spark master
    settings = load_settings(
        "cluster",
        env={
            **cluster_env,
            "SMAP_WAREHOUSE__TYPE": "parquet",
            "SMAP_FEAST__OFFLINE_STORE": "duckdb",
            "SMAP_DATA_DIR": str(tmp_path / "smap"),
            "SMAP_OPTUNA__STUDY_PREFIX": f"s{uuid.uuid4().hex[:8]}",
            "SMAP_SPARK__MASTER": spark_settings.spark.master,
            # the run keeps its best trial: no anchor or blend of other families may win
            "SMAP_TRAINING__ANCHORS": "false",
            "SMAP_TRAINING__BLEND": "false",
        },
    )
    flows.simulate(settings)
    flows.ingest(settings)
    flows.apply_features(settings)  # training reads the offline store only

    result = train(settings, "engagement", trials=2, families=("xgboost_spark",))

    run = MlflowClient().get_run(result.run_id)
    assert run.data.params["best_family"] == "xgboost_spark"
    assert np.isfinite(result.test_metrics["r2"])
    model = mlflow.pyfunc.load_model(result.model_uri)
    fitted = model.unwrap_python_model().fitted
    # a trial that learned the residual over the author's rate wraps its booster in a Member
    assert type(getattr(fitted, "fitted", fitted)).__name__ == "BoosterFitted"
