"""Compute engines a model family may need beyond its own process, and which profiles offer
them. A family names the engines it fits on (`Family.engines`); a profile's entry in
`PROFILE_ENGINES` says which it has, so a Spark family is offered on the cluster profile only.
"""

from __future__ import annotations

from collections.abc import Callable

from configs.settings import Settings
from ingestion.spark import spark_session
from training.errors import TaskError
from training.families import FAMILIES

# profile -> the engines its families may use
PROFILE_ENGINES: dict[str, frozenset[str]] = {
    "local": frozenset(),
    "services": frozenset(),
    "cluster": frozenset({"spark"}),
}


def _start_spark(settings: Settings) -> None:
    """The family finds the session as the process's active one (it imports no smap module)."""
    spark_session(settings, "train")


# engine -> what starts it in this process before a family fits on it
STARTERS: dict[str, Callable[[Settings], None]] = {"spark": _start_spark}


def engines(family: str) -> tuple[str, ...]:
    """The engines a family fits on (none for families outside the registry: content's)."""
    found = FAMILIES.get(family)
    return found.engines if found else ()


def offered(settings: Settings, family: str) -> bool:
    return set(engines(family)) <= PROFILE_ENGINES[settings.profile]


def require_offered(settings: Settings, families: tuple[str, ...]) -> None:
    """One line naming a family whose engine this profile does not offer."""
    for name in families:
        if not offered(settings, name):
            needs = ", ".join(engines(name))
            raise TaskError(
                f"families: {name} fits on {needs}, which the {settings.profile} profile does "
                "not offer (SMAP_PROFILE=cluster)"
            )


def start_engines(settings: Settings, families: tuple[str, ...]) -> None:
    """Start every engine the chosen families fit on, once, before the first trial."""
    for engine in sorted({e for name in families for e in engines(name)}):
        STARTERS[engine](settings)


def at_scale(settings: Settings, families: tuple[str, ...], rows: int) -> tuple[str, ...]:
    """On a training set of at least `training.spark_min_rows` rows, each family that has a
    counterpart on an engine this profile offers (xgboost -> xgboost_spark) is swapped for it."""
    if rows < settings.training.spark_min_rows:
        return families
    swapped = []
    for name in families:
        other = FAMILIES[name].at_scale if name in FAMILIES else None
        swapped.append(other if other and offered(settings, other) else name)
    return tuple(dict.fromkeys(swapped))
