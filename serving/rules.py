"""Business rules of the answers: pure functions the service calls and tests reach directly."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

import numpy as np

ChurnBand = Literal["low", "medium", "high"]
# the lower bound of each band
CHURN_BANDS: tuple[tuple[float, ChurnBand], ...] = ((0.6, "high"), (0.3, "medium"), (0.0, "low"))
DEFAULT_VIRALITY_THRESHOLD = 0.5  # only for a model logged without a tuned threshold
WEEK_HOURS = 168
BEST_SLOTS = 3
# the resolution of a posting-time answer: engagement rates are told to 4 decimals (0.0610),
# so slots whose predictions differ by less than one unit of the 4th decimal are a tie
POSTING_RESOLUTION = 1e-4


def churn_band(risk: float) -> ChurnBand:
    """Risk bands a retention team acts on: high >= 0.6, medium >= 0.3, else low."""
    return next(name for bound, name in CHURN_BANDS if risk >= bound)


def is_viral(probability: float, threshold: float | None) -> bool:
    """The label at the threshold tuned in training (F1-best on validation)."""
    return bool(probability >= (DEFAULT_VIRALITY_THRESHOLD if threshold is None else threshold))


def candidate_hours(start: datetime, hours: int = WEEK_HOURS) -> list[datetime]:
    """Every whole hour of the next week, starting at the first whole hour after `start`."""
    first = start.replace(minute=0, second=0, microsecond=0)
    if first < start:
        first += timedelta(hours=1)
    return [first + timedelta(hours=h) for h in range(hours)]


def best_slots(predictions: np.ndarray, k: int = BEST_SLOTS) -> list[int]:
    """Indexes of the k highest predictions, best first (earliest wins a tie)."""
    order = np.argsort(-np.asarray(predictions, dtype=float), kind="stable")
    return [int(i) for i in order[:k]]


def ties_with_best(predictions: np.ndarray, resolution: float = POSTING_RESOLUTION) -> list[bool]:
    """Which slots are within `resolution` of the best prediction (the best one included):
    the model cannot tell them apart at the precision it is answered with."""
    values = np.asarray(predictions, dtype=float)
    if values.size == 0:
        return []
    return [bool(v) for v in (values.max() - values) < resolution]
