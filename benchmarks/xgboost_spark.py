"""XGBoost in process vs on Spark: fit seconds and validation R² at growing row counts.

The same fixed parameters (200 rounds, depth 6) on a synthetic regression set of 30 features,
fitted by the `xgboost` family (in process, 2 threads) and the `xgboost_spark` family (one
XGBoost worker per slot of the master, `local[2]` by default) on one Spark session started
once (its start-up is printed apart). It argues `training.spark_min_rows`; nothing asserted.

    OMP_WAIT_POLICY=PASSIVE uv run python benchmarks/xgboost_spark.py --rows 10000 100000 400000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

# run as a script, this file's folder comes first on sys.path and `benchmarks/serving.py`
# would shadow the `serving` package
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from configs.settings import load_settings  # noqa: E402
from training.engines import start_engines  # noqa: E402
from training.families import fit  # noqa: E402
from training.families.base import Data  # noqa: E402

PARAMS = {
    "rounds": 200,
    "eta": 0.1,
    "max_depth": 6,
    "subsample": 0.8,
    "colsample": 0.8,
    "min_child_weight": 1.0,
    "lambda": 1.0,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 400_000])
    parser.add_argument("--master", default="local[2]")
    a = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            "cluster", env={"SMAP_DATA_DIR": tmp, "SMAP_SPARK__MASTER": a.master}
        )
        started = time.perf_counter()
        start_engines(settings, ("xgboost_spark",))
        Console().print(f"Spark session ({a.master}): {time.perf_counter() - started:.1f} s")
        table = Table(title="fixed parameters, 30 features; seconds per fit")
        for column in ("train rows", "xgboost s", "xgboost_spark s", "R² xgboost / spark"):
            table.add_column(column, justify="right")
        rng = np.random.default_rng(0)
        for rows in a.rows:
            x = rng.normal(size=(rows + rows // 4, 30))
            y = np.sin(x[:, 0]) + x[:, 1] * x[:, 2] + rng.normal(scale=0.1, size=len(x))
            data = Data(x[:rows], y[:rows], x[rows:], y[rows:], "regression", 1)
            seconds, r2 = [], []
            for family in ("xgboost", "xgboost_spark"):
                started = time.perf_counter()
                fitted = fit(family, PARAMS, data, lambda step, loss: None)
                seconds.append(time.perf_counter() - started)
                pred = fitted.predict(data.x_val)
                ss = ((data.y_val - data.y_val.mean()) ** 2).sum()
                r2.append(1 - ((data.y_val - pred) ** 2).sum() / ss)
            table.add_row(
                f"{rows:,}", f"{seconds[0]:.1f}", f"{seconds[1]:.1f}", f"{r2[0]:.3f} / {r2[1]:.3f}"
            )
        Console().print(table)


if __name__ == "__main__":
    main()
