"""Task metrics, all as plain functions of (truth, prediction)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    f1_score,
    mean_absolute_error,
    precision_recall_curve,
    r2_score,
    roc_auc_score,
)


def relative_mae(y: np.ndarray, pred: np.ndarray, naive: np.ndarray) -> float:
    """MAE of the forecast over MAE of seasonal-naive on the same points (MASE-style)."""
    denom = mean_absolute_error(y, naive)
    return float(mean_absolute_error(y, pred) / denom) if denom > 0 else float("nan")


def best_f1_threshold(y: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    """The score threshold maximising F1 (tuned on validation, applied to test)."""
    precision, recall, thresholds = precision_recall_curve(y, score)
    f1 = 2 * precision * recall / np.clip(precision + recall, 1e-12, None)
    i = int(np.nanargmax(f1[:-1])) if len(thresholds) else 0
    return (float(thresholds[i]) if len(thresholds) else 0.5), float(f1[i])


def expected_calibration_error(y: np.ndarray, prob: np.ndarray, bins: int = 10) -> float:
    """|mean label - mean probability| per equal-width probability bin, weighted by the
    bin's share of rows: how far a stated probability is from the rate it comes true."""
    y, prob = np.asarray(y, dtype=float), np.asarray(prob, dtype=float)
    at = np.clip((prob * bins).astype(int), 0, bins - 1)
    gap = 0.0
    for b in np.unique(at):
        rows = at == b
        gap += rows.sum() * abs(y[rows].mean() - prob[rows].mean())
    return float(gap / len(y)) if len(y) else float("nan")


def calibration_report(y: np.ndarray, raw: np.ndarray, calibrated: np.ndarray) -> dict[str, float]:
    """Brier score and ECE of the raw and the calibrated probabilities (same rows)."""
    return {
        "brier_raw": float(brier_score_loss(y, raw)),
        "brier": float(brier_score_loss(y, calibrated)),
        "ece_raw": expected_calibration_error(y, raw),
        "ece": expected_calibration_error(y, calibrated),
    }


def interval_report(y: np.ndarray, low: np.ndarray, high: np.ndarray) -> dict[str, float]:
    """Share of targets inside their interval and the interval's mean width."""
    y, low, high = (np.asarray(a, dtype=float) for a in (y, low, high))
    return {
        "interval_coverage": float(np.mean((y >= low) & (y <= high))),
        "interval_width": float(np.mean(high - low)),
    }


def regression_report(y, pred) -> dict[str, float]:
    return {"r2": float(r2_score(y, pred)), "mae": float(mean_absolute_error(y, pred))}


def classification_report(y, score, threshold: float | None = None) -> dict[str, float]:
    y = np.asarray(y)
    if len(np.unique(y)) < 2:
        return {"pr_auc": float("nan"), "roc_auc": float("nan")}
    out = {
        "pr_auc": float(average_precision_score(y, score)),
        "roc_auc": float(roc_auc_score(y, score)),
    }
    if threshold is not None:
        out["f1"] = float(f1_score(y, np.asarray(score) >= threshold))
        out["threshold"] = float(threshold)
    if np.all((np.asarray(score) >= 0) & (np.asarray(score) <= 1)):
        out["brier"] = float(brier_score_loss(y, score))
    return out


def forecast_report(y, pred, naive, horizon) -> dict[str, float]:
    y, pred, naive, horizon = map(np.asarray, (y, pred, naive, horizon))
    out = {"mase": relative_mae(y, pred, naive)}
    for h in (7, 30):
        at = horizon == h
        if at.any():
            out[f"mase_{h}"] = relative_mae(y[at], pred[at], naive[at])
    return out
