"""Models made of fitted families: one member with its input scaling and an offset, or a
blend of several. Both read the unscaled encoder's matrix (NaN where a feature is missing),
so a model mixing scaled and unscaled families still has one encoder, and serving's fast
path (`encode` then `fitted.predict`) needs nothing new.

Logged with every model (`training.packaging.model_code`): numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.families.base import Fitted


@dataclass(frozen=True)
class Scaling:
    """The scaled encoder's imputation and standardisation, applied to an unscaled matrix."""

    medians: np.ndarray
    means: np.ndarray
    stds: np.ndarray

    @classmethod
    def of(cls, encoder) -> Scaling:
        assert encoder.scale and encoder.medians is not None  # a fitted scaled encoder
        return cls(encoder.medians, encoder.means, encoder.stds)

    def apply(self, x: np.ndarray) -> np.ndarray:
        return (np.where(np.isnan(x), self.medians, x) - self.means) / self.stds


@dataclass(frozen=True)
class Offset:
    """What the naive baseline knows, as the start a model learns the residual over: the
    author's recent rate shrunk toward the population by how many posts it rests on,
    (n * rate + k * population) / (n + k). An author with one recent post gets little of
    their own rate, one with thirty nearly all; an author with no recent rate gets the
    population's."""

    rate: int  # column of the rate in the unscaled matrix
    count: int | None  # column of the posts it rests on (None: every known rate counts as 1)
    population: float
    strength: float  # k: the posts' worth of weight the population gets

    def base(self, x: np.ndarray) -> np.ndarray:
        rate = x[:, self.rate].astype(float)
        known = ~np.isnan(rate)
        if self.count is None:
            n = known.astype(float)
        else:
            n = np.where(known, np.maximum(np.nan_to_num(x[:, self.count].astype(float)), 1.0), 0)
        return (n * np.where(known, rate, 0.0) + self.strength * self.population) / (
            n + self.strength
        )


class Member(Fitted):
    """One fitted family on the unscaled matrix: scaled first if the family needs it, its
    prediction added to the offset when it learned the residual over one."""

    def __init__(self, fitted: Fitted, scaling: Scaling | None, offset: Offset | None):
        super().__init__(fitted.estimator, fitted.kind, fitted.family)
        self.fitted, self.scaling, self.offset = fitted, scaling, offset

    def predict(self, x: np.ndarray) -> np.ndarray:
        inner = self.fitted.predict(self.scaling.apply(x) if self.scaling is not None else x)
        if self.offset is None:
            return np.asarray(inner, dtype=float)
        return np.asarray(inner, dtype=float) + self.offset.base(x)

    def importances(self, n_features: int) -> np.ndarray | None:
        return self.fitted.importances(n_features)


class Blend(Fitted):
    """The weighted mean of members' predictions (values, or probabilities for classifiers)."""

    def __init__(self, members: list[Member], weights: list[float]):
        super().__init__(None, members[0].kind, "blend")
        total = float(sum(weights))
        self.members, self.weights = members, [w / total for w in weights]

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.sum(
            [w * m.predict(x) for m, w in zip(self.members, self.weights, strict=True)], axis=0
        )

    def importances(self, n_features: int) -> np.ndarray | None:
        """Members' importances, each normalised to sum 1, weighted like their predictions."""
        parts = []
        for member, weight in zip(self.members, self.weights, strict=True):
            values = member.importances(n_features)
            if values is not None and np.sum(np.abs(values)) > 0:
                values = np.abs(np.asarray(values[:n_features], dtype=float))
                parts.append(weight * values / values.sum())
        return np.sum(parts, axis=0) if parts else None
