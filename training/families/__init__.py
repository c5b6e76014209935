"""The model-family registry: one module per family, one line here.

A task names the families it tries (`Task.families`); the search looks each up here for its
search space and fit, and the logged model carries this package (`packaging.model_code`).
"""

from __future__ import annotations

from training.families import (
    forest,
    hist_gradient_boosting,
    lightgbm,
    linear,
    lstm,
    mlp,
    xgboost,
    xgboost_spark,
)
from training.families.base import Data, Family, FeatureEncoder, Fitted, Report

FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        linear.FAMILY,
        forest.FAMILY,
        xgboost.FAMILY,
        lightgbm.FAMILY,
        mlp.FAMILY,
        lstm.FAMILY,
        hist_gradient_boosting.FAMILY,
        xgboost_spark.FAMILY,
    ]
}

BASE_REQUIREMENTS = ("mlflow", "numpy", "pandas", "scikit-learn")


def get_family(name: str) -> Family:
    if name not in FAMILIES:
        raise ValueError(f"family: unknown model family {name!r} (choose {', '.join(FAMILIES)})")
    return FAMILIES[name]


def suggest(trial, name: str) -> dict:
    """The family's hyperparameters for this trial, named `<family>.<parameter>`."""
    return get_family(name).suggest(trial, f"{name}.")


def fit(name: str, params: dict, data: Data, report: Report) -> Fitted:
    return get_family(name).fit(params, data, report)


def requirements(name: str) -> tuple[str, ...]:
    """pip names a model of this family needs to load (versions pinned by the caller)."""
    return BASE_REQUIREMENTS + get_family(name).requirements


__all__ = ["FAMILIES", "Data", "Family", "FeatureEncoder", "Fitted", "fit", "suggest"]
