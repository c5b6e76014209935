"""Intervals and calibration of trained models, measured beyond what a run logs.

On the data directory's stored training sets (`SMAP_DATA_DIR`), for a registered version of
each task (default 1, the first one trained):

- `engagement`: test coverage and mean width of the kept interval (scaled by the prediction,
  `ConformalInterval`) against one constant half-width (the conformal quantile of
  |y - prediction| on the same validation part), overall and per fifth of test posts by
  predicted rate, lowest first.
- `virality`, `churn`: the positive rate and the mean raw score of the validation and test
  parts (a calibrator learnt on the first corrects the second only where they agree), the
  5-fold cross-validated Brier score within validation of no calibration, Platt and
  isotonic, and the test ECE of each.

    SMAP_DATA_DIR=/tmp/unc-data uv run python benchmarks/uncertainty.py
    SMAP_DATA_DIR=/tmp/unc-quick uv run python benchmarks/uncertainty.py --version 1
"""

from __future__ import annotations

import argparse

import mlflow
import numpy as np
from sklearn.model_selection import StratifiedKFold

from configs.settings import load_settings
from training.metrics import expected_calibration_error
from training.packaging import (
    CALIBRATION_FOLDS,
    ConformalInterval,
    conformal_quantile,
    fit_calibrator,
)
from training.tasks import get_task
from training.tracking import use_tracking

FIFTHS = 5


def parts(settings, name: str, version: int):
    """(model, (y, raw score) on validation, (y, raw score) on test) of `name` v`version`."""
    task = get_task(name)
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}").unwrap_python_model()
    ts = task.trainer.build(settings, task).training_set
    out = []
    for part in ("validation", "test"):
        frame = ts.part(part)
        raw = model.raw_frame(task.trainer.model_input(ts, frame))
        out.append((frame.target.to_numpy(dtype=float), raw))
    return model, out[0], out[1]


def coverage_by_fifth(y, pred, low, high) -> str:
    inside = (y >= low) & (y <= high)
    fifth = np.searchsorted(np.quantile(pred, np.arange(1, FIFTHS) / FIFTHS), pred)
    per = ", ".join(f"{inside[fifth == f].mean():.3f}" for f in range(FIFTHS))
    return f"coverage {inside.mean():.4f}, width {np.mean(high - low):.4f}, per fifth {per}"


def engagement(settings, version: int) -> None:
    _model, (y_val, p_val), (y_test, p_test) = parts(settings, "engagement", version)
    half = conformal_quantile(y_val - p_val)
    constant = (np.clip(p_test - half, 0, None), p_test + half)
    scaled = ConformalInterval.fit(y_val, p_val).bounds(p_test)
    print(f"engagement v{version} constant width: {coverage_by_fifth(y_test, p_test, *constant)}")
    print(f"engagement v{version} scaled (kept):  {coverage_by_fifth(y_test, p_test, *scaled)}")


def calibration(settings, name: str, version: int) -> None:
    _model, (y_val, raw_val), (y_test, raw_test) = parts(settings, name, version)
    labels = y_val.astype(int)
    for part, y, raw in (("validation", y_val, raw_val), ("test", y_test, raw_test)):
        print(f"{name} v{version} {part}: positive rate {y.mean():.4f}, mean raw {raw.mean():.4f}")
    brier = {"none": 0.0, "sigmoid": 0.0, "isotonic": 0.0}
    folds = StratifiedKFold(CALIBRATION_FOLDS, shuffle=True, random_state=0)
    for fit_rows, held in folds.split(raw_val.reshape(-1, 1), labels):
        brier["none"] += float(np.sum((raw_val[held] - labels[held]) ** 2))
        for method in ("sigmoid", "isotonic"):
            mapped = fit_calibrator(method, labels[fit_rows], raw_val[fit_rows])(raw_val[held])
            brier[method] += float(np.sum((mapped - labels[held]) ** 2))
    ece = {"none": expected_calibration_error(y_test, raw_test)}
    for method in ("sigmoid", "isotonic"):
        calibrated = fit_calibrator(method, labels, raw_val)(raw_test)
        ece[method] = expected_calibration_error(y_test, calibrated)
    for method in brier:
        print(
            f"{name} v{version} {method}: cross-validated Brier {brier[method] / len(labels):.4f}"
            f", test ECE {ece[method]:.4f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", type=int, default=1, help="registered version of each task")
    args = parser.parse_args()
    settings = load_settings()
    use_tracking(settings)
    engagement(settings, args.version)
    for name in ("virality", "churn"):
        calibration(settings, name, args.version)


if __name__ == "__main__":
    main()
