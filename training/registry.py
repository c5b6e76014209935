"""The champion gate: aliases move only when a challenger wins on the same recent holdout.

It is left alone (a drift-triggered retrain promotes unattended), so it fails closed:

- A registry error is an error. Only MLflow's "registered model ... not found" and "alias ...
  not found" answers mean "no champion yet"; anything else (a server down or answering 5xx, a
  locked database) raises `RegistryError` naming the registry, and no alias moves.
- A challenger, the first one included, is crowned only if it beats the task's naive baseline
  on the holdout. It replaces a champion only if it also does not lose to a plain linear
  model on the same features (Ridge or LogisticRegression, `training/linear_baseline.py`) by
  more than the margin (at least `LINEAR_TIE`); a first model that loses to it is crowned so
  the task answers, and its reason says by how much. Every reason carries both baselines'
  values.
- The decision and the alias move are recorded together. The `champion` alias is the truth
  (serving follows it); `champion_history` is its log, whose last row per task names the
  version holding the alias (None: no champion). The two stores share no transaction, so a
  decision is committed in this order, under the warehouse's write lock (which serialises the
  gates of a profile):
    1. the decision is written to the version as a tag (`gate_record`: the intent);
    2. the alias moves;
    3. the history row is appended. If that fails, the alias is moved back and the error
       raised: neither store changed.
  What can still leave them apart is a process killed between 2 and 3 (or 2 raising after
  the server applied it, or the move back failing too). `reconcile` repairs that, under the
  same lock, at the start of every commit and in `history(..., client)`: when the history's
  last champion is not the alias's version, it appends that version's gate record if the
  record explains the move (before = recorded, after = alias), else a `reconciled` row saying
  what the registry holds. So after every gate call that returns, and after any failure once
  `reconcile` has run, the history's last champion is the alias's version. (The `challenger`
  alias is a pointer to the last loser, not part of the history.)

`smap models history` answers which version was champion at any time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from configs.errors import SmapError
from configs.settings import Settings
from ingestion.schema import MODEL_TABLES
from ingestion.warehouse import Warehouse, WarehouseError
from training import tags as tag
from training.baseline import naive_prediction
from training.descriptions import with_gate
from training.errors import RegistryError, TaskError
from training.linear_baseline import LinearBaseline
from training.task import Task
from training.tracking import _masked, use_tracking

CHAMPION, CHALLENGER = "champion", "challenger"
RECORD_TAG = tag.GATE_RECORD
HISTORY = MODEL_TABLES["champion_history"]
NAN = float("nan")
# a plain linear model must beat a challenger by more than this (besides the margin) to refuse
# it: the search's own `linear` family lands within about that of it, and refusing a tuned
# ridge for a difference the reason cannot even show would leave a task without a champion
LINEAR_TIE = 0.005


@dataclass(frozen=True)
class Decision:
    task: str
    version: int
    # first_champion | promoted | kept_champion | below_baseline | below_linear | rollback |
    # reconciled
    decision: str
    champion_before: int | None
    champion_after: int | None  # None: still no champion (the first model lost to the baseline)
    metric: str
    challenger_value: float
    champion_value: float
    reason: str


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@contextmanager
def _registry(client: MlflowClient, action: str) -> Iterator[None]:
    """MLflow failing (unreachable, 5xx, locked database): one line naming the registry."""
    try:
        yield
    except (MlflowException, OSError) as exc:
        uri = _masked(getattr(client, "_registry_uri", None) or mlflow.get_registry_uri())
        raise RegistryError(
            f"MLflow registry at {uri}: {action} failed: {_first_line(exc)}"
        ) from exc


def is_absent(exc: MlflowException) -> bool:
    """MLflow's answers (SQL, file and REST stores alike) for a registered model or an alias
    that does not exist; any other error is a failure, never "no champion"."""
    text = str(exc).lower()
    if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
        return "registered model" in text and "not found" in text
    return exc.error_code == "INVALID_PARAMETER_VALUE" and "alias" in text and "not found" in text


def alias_version(client: MlflowClient, task: str, alias: str) -> int | None:
    """The version `alias` points at; None only when the model or the alias does not exist."""
    with _registry(client, f"reading {task}@{alias}"):
        try:
            return int(client.get_model_version_by_alias(task, alias).version)
        except MlflowException as exc:
            if is_absent(exc):
                return None
            raise


def current_champion(client: MlflowClient, task: str) -> int | None:
    """The champion's version, None if there is none yet; a registry failure raises."""
    return alias_version(client, task, CHAMPION)


@dataclass(frozen=True)
class ChampionEntry:
    """A task's champion as the registry names it: the client that read it, its version, the
    run that trained it and the version's tags (its feature service among them)."""

    client: MlflowClient
    task: str
    version: int
    run_id: str
    tags: dict[str, str]

    def load(self) -> Any:
        """The smap model inside the version, from this client's registry."""
        with _registry(self.client, f"loading {self.task} version {self.version}"):
            uri = self.client.get_model_version_download_uri(self.task, str(self.version))
            return mlflow.pyfunc.load_model(uri).unwrap_python_model()


def champion_entry(settings: Settings, task: str) -> ChampionEntry | None:
    """The task's champion in the profile's registry, None when it has none yet; a registry
    failure raises."""
    client = use_tracking(settings)
    version = current_champion(client, task)
    if version is None:
        return None
    with _registry(client, f"reading {task} version {version}"):
        found = client.get_model_version(task, str(version))
    return ChampionEntry(client, task, version, found.run_id or "", dict(found.tags))


def score_version(
    client: MlflowClient, task: Task, version: int, holdout: pd.DataFrame, scorer
) -> float:
    """The version's metric on `holdout`, loaded from `client`'s registry (not the global one)."""
    with _registry(client, f"loading {task.name} version {version}"):
        uri = client.get_model_version_download_uri(task.name, str(version))
        model = mlflow.pyfunc.load_model(uri)
    inner = model.unwrap_python_model()
    return float(scorer(holdout, inner.predict_frame(holdout))[task.metric])


def beats(task: Task, challenger: float, champion: float, margin: float) -> bool:
    if not np.isfinite(challenger):
        return False
    if not np.isfinite(champion):
        return True
    if task.direction == "maximize":
        return challenger > champion + margin
    return challenger < champion - margin


def _row(d: Decision, decided_at: datetime) -> pd.DataFrame:
    return pd.DataFrame([{**asdict(d), "decided_at": decided_at}])


def _rows(warehouse: Warehouse, task: str) -> pd.DataFrame:
    if not warehouse.exists(HISTORY.name):
        return HISTORY.conform(pd.DataFrame({c: [] for c in HISTORY.columns}))
    table = warehouse.read(HISTORY.name)
    table = table[table.task == task]
    return table.sort_values("decided_at", kind="stable").reset_index(drop=True)


def _last_champion(rows: pd.DataFrame) -> int | None:
    """The champion after the last decision in `rows` (None: none)."""
    if rows.empty or pd.isna(rows.champion_after.iloc[-1]):
        return None
    return int(rows.champion_after.iloc[-1])


def _point(client: MlflowClient, task: str, alias: str, version: int | None) -> None:
    """Point `alias` at `version`, or remove it (None)."""
    target = "nothing" if version is None else f"version {version}"
    with _registry(client, f"moving {task}@{alias} to {target}"):
        if version is None:
            client.delete_registered_model_alias(task, alias)
        else:
            client.set_registered_model_alias(task, alias, str(version))


def _gate_record(client: MlflowClient, task: str, version: int):
    """The last decision a gate took about `version` (from its tag) and when, or None."""
    with _registry(client, f"reading {task} version {version}"):
        text = tag.read(client.get_model_version(task, str(version)).tags, RECORD_TAG)
    if text is None:
        return None  # no tag
    try:
        data = json.loads(text)
        decided_at = pd.Timestamp(data.pop("decided_at")).to_pydatetime()
        return Decision(**data), decided_at
    except (TypeError, ValueError):  # no tag, or not one this module wrote
        return None


def gate_decision(client: MlflowClient, task: str, version: int) -> Decision | None:
    """The last decision a gate took about `version`, None if it was never gated."""
    record = _gate_record(client, task, version)
    return None if record is None else record[0]


def why_no_champion(client: MlflowClient, task: str) -> str:
    """Why `task` has no champion, in one line: no version yet, or what the gate said about
    the newest version it refused (its reason carries the figures)."""
    with _registry(client, f"listing {task} versions"):
        found = client.search_model_versions(f"name='{task}'")
    if not found:
        return f"{task}: no version registered yet (run `smap train {task}`)"
    for version in sorted(found, key=lambda v: int(v.version), reverse=True):
        record = _gate_record(client, task, int(version.version))
        if record is not None:
            d = record[0]
            return (
                f"{task}: no champion: the gate refused version {d.version} "
                f"({d.decision}): {d.reason} (`smap models history {task}`)"
            )
    newest = max(int(v.version) for v in found)
    return (
        f"{task}: no champion: version {newest} was never gated "
        f"(run `smap gate {task} --version {newest}`)"
    )


def _version_name(version: int | None) -> str:
    return "no version" if version is None else f"version {version}"


def _reconcile(client: MlflowClient, warehouse: Warehouse, task: Task) -> Decision | None:
    alias = current_champion(client, task.name)
    recorded = _last_champion(_rows(warehouse, task.name))
    if alias == recorded:
        return None
    found = _gate_record(client, task.name, alias) if alias is not None else None
    if found and (found[0].champion_before, found[0].champion_after) == (recorded, alias):
        d, decided_at = found  # a gate moved the alias and was stopped before recording it
    else:
        version = alias if alias is not None else recorded
        assert version is not None  # they differ, so one of them is a version
        d = Decision(
            task.name,
            version,
            "reconciled",
            recorded,
            alias,
            task.metric,
            NAN,
            NAN,
            f"the champion alias was on {_version_name(alias)} while the history said "
            f"{_version_name(recorded)} (moved outside the gate); recorded as found",
        )
        decided_at = datetime.now(UTC)
    warehouse.append(HISTORY, _row(d, decided_at))
    return d


def reconcile(client: MlflowClient, warehouse: Warehouse, task: Task) -> Decision | None:
    """Bring the history's last champion back to the alias's version (a gate stopped between
    moving the alias and recording it); returns the row appended, or None if they agreed."""
    with warehouse.writing():
        return _reconcile(client, warehouse, task)


def _undo(client: MlflowClient, task: str, alias: str, previous: int | None) -> str:
    """Move `alias` back after a failed record; say where it stands."""
    try:
        _point(client, task, alias, previous)
    except RegistryError as exc:
        return (
            f"moving it back failed too ({exc}); the next gate or `smap models history` "
            "records what the registry holds"
        )
    return f"{task}@{alias} stays on {_version_name(previous)}"


def _commit(client: MlflowClient, warehouse: Warehouse, task: Task, d: Decision, alias: str):
    """Move `alias` (champion: to `champion_after`; challenger: to the version) and append the
    history row as one change, in the order the module docstring explains."""
    target = d.champion_after if alias == CHAMPION else d.version
    with warehouse.writing():
        _reconcile(client, warehouse, task)
        now = current_champion(client, task.name)
        if now != d.champion_before:
            raise RegistryError(
                f"{task.name}: the champion moved to {_version_name(now)} while version "
                f"{d.version} was being gated; run the gate again"
            )
        previous = alias_version(client, task.name, alias)
        decided_at = datetime.now(UTC)
        record = json.dumps({**asdict(d), "decided_at": decided_at.isoformat()})
        with _registry(client, f"tagging {task.name} version {d.version}"):
            client.set_model_version_tag(task.name, str(d.version), RECORD_TAG, record)
            client.set_model_version_tag(task.name, str(d.version), tag.GATE, d.decision)
            client.set_model_version_tag(
                task.name, str(d.version), d.metric, f"{d.challenger_value:.6g}"
            )
            described = client.get_model_version(task.name, str(d.version)).description
            client.update_model_version(
                task.name, str(d.version), description=with_gate(described, d.reason)
            )
        _point(client, task.name, alias, target)
        try:
            warehouse.append(HISTORY, _row(d, decided_at))
        except BaseException as exc:
            undone = _undo(client, task.name, alias, previous)
            if isinstance(exc, SmapError | WarehouseError | OSError):
                raise RegistryError(
                    f"{task.name}: the champion history could not record version {d.version}'s "
                    f"{d.decision} ({_first_line(exc)}); {undone}"
                ) from exc
            raise
    return d


def _linear_note(linear: tuple[str, float] | None) -> str:
    """The plain linear model's value on the holdout, for a reason that names the naive one."""
    return "" if linear is None else f" ({linear[0]} {linear[1]:.4f})"


def _baselines(naive: float, linear: tuple[str, float] | None) -> str:
    """Both baselines' values on the holdout, for a reason about the champion."""
    plain = "" if linear is None else f", {linear[0]} {linear[1]:.4f}"
    return f"(naive {naive:.4f}{plain})"


def promote(
    client: MlflowClient,
    warehouse: Warehouse,
    task: Task,
    version: int,
    holdout: pd.DataFrame,
    scorer,
    margin: float,
    linear: LinearBaseline | None = None,
) -> Decision:
    """Score challenger and champion on `holdout`; move `champion` only if it wins by `margin`.

    A challenger that does not beat the naive baseline on the same holdout is never crowned,
    not even as the first champion. One that the plain `linear` model (fitted on the same
    set's train part) beats by more than `margin` (at least `LINEAR_TIE`) never replaces a
    champion (`below_linear`); as the first model it is crowned, so the task answers, and
    the reason says by how much the plain model wins.
    """
    before = current_champion(client, task.name)
    if before == version:
        raise TaskError(f"{task.name}: version {version} is already the champion")
    new_value = score_version(client, task, version, holdout, scorer)
    baseline_value = float(scorer(holdout, naive_prediction(task, holdout))[task.metric])
    plain = (
        None
        if linear is None
        else (linear.name, float(scorer(holdout, linear.predict(holdout))[task.metric]))
    )

    def decided(decision: str, after: int | None, old: float, reason: str) -> Decision:
        return Decision(
            task.name, version, decision, before, after, task.metric, new_value, old, reason
        )

    def refused(decision: str, why: str) -> Decision:
        reason = f"{why}; version {version} stays challenger"
        return _commit(client, warehouse, task, decided(decision, before, NAN, reason), CHALLENGER)

    if not beats(task, new_value, baseline_value, 0.0):
        return refused(
            "below_baseline",
            f"{task.metric} {new_value:.4f} does not beat the naive baseline's "
            f"{baseline_value:.4f} ({task.baseline}) on the holdout{_linear_note(plain)}",
        )
    below_plain = plain is not None and beats(task, plain[1], new_value, max(margin, LINEAR_TIE))
    if below_plain and before is not None:
        assert plain is not None
        return refused(
            "below_linear",
            f"{task.metric} below a plain {plain[0]} on the same features: {new_value:.4f} vs "
            f"{plain[1]:.4f} (margin {max(margin, LINEAR_TIE)}; naive {baseline_value:.4f})",
        )
    if before is None:
        beaten = (
            f" but is below a plain {plain[0]} on the same features ({plain[1]:.4f}, margin "
            f"{max(margin, LINEAR_TIE)}): crowned so the task answers; a challenger must beat "
            f"both to replace it"
            if below_plain and plain is not None
            else _linear_note(plain)
        )
        reason = (
            f"no champion yet; {task.metric} {new_value:.4f} beats the naive baseline's "
            f"{baseline_value:.4f}{beaten}"
        )
        return _commit(
            client, warehouse, task, decided("first_champion", version, NAN, reason), CHAMPION
        )
    old_value = score_version(client, task, before, holdout, scorer)
    if beats(task, new_value, old_value, margin):
        decision, after, alias = "promoted", version, CHAMPION
        reason = f"{task.metric} {new_value:.4f} beats {old_value:.4f} by more than {margin}"
    else:
        decision, after, alias = "kept_champion", before, CHALLENGER
        reason = f"{task.metric} {new_value:.4f} does not beat {old_value:.4f} by {margin}"
    d = decided(decision, after, old_value, f"{reason} {_baselines(baseline_value, plain)}")
    return _commit(client, warehouse, task, d, alias)


def crown_unscored(
    client: MlflowClient, warehouse: Warehouse, task: Task, version: int, reason: str
) -> Decision | None:
    """Make `version` the first champion of a task that has none, without a holdout (a model
    that needs no labels, e.g. a lexicon); None when a champion already exists."""
    if current_champion(client, task.name) is not None:
        return None
    d = Decision(task.name, version, "first_champion", None, version, task.metric, NAN, NAN, reason)
    return _commit(client, warehouse, task, d, CHAMPION)


def history(
    warehouse: Warehouse, task: Task | str, client: MlflowClient | None = None
) -> pd.DataFrame:
    """Every gate decision of `task`, oldest first; given the registry's `client` (and the
    `Task`), first reconciled with it, so the last row names the version `champion` points at."""
    if client is not None:
        if isinstance(task, str):
            raise TypeError("history: reconciling with the registry needs the Task, not its name")
        reconcile(client, warehouse, task)
    return _rows(warehouse, task if isinstance(task, str) else task.name)


def champion_at(
    warehouse: Warehouse, task: Task | str, when: datetime, client: MlflowClient | None = None
) -> int | None:
    """Which version held `champion` at `when` (None before the first champion)."""
    past = history(warehouse, task, client)
    return _last_champion(past[past.decided_at <= pd.Timestamp(when)])


def rollback(client: MlflowClient, warehouse: Warehouse, task: Task) -> Decision:
    """Give `champion` back to the version that held it before the current one."""
    with warehouse.writing():
        _reconcile(client, warehouse, task)
        current = current_champion(client, task.name)
        past = _rows(warehouse, task.name)
        changes = past[
            past.champion_after.notna()
            & (past.champion_after == current)
            & past.champion_before.notna()
            & (past.champion_before != past.champion_after)
        ]
        if current is None or changes.empty:
            raise TaskError(f"{task.name}: there is no previous champion to roll back to")
        previous = int(changes.champion_before.iloc[-1])
        d = Decision(
            task.name,
            previous,
            "rollback",
            current,
            previous,
            task.metric,
            NAN,
            NAN,
            f"rolled back from version {current}",
        )
        return _commit(client, warehouse, task, d, CHAMPION)


def commit(client: MlflowClient, warehouse: Warehouse, task: Task, d: Decision, alias: str):
    """Record a decision taken elsewhere (an experiment's): the version's tags, the alias
    move and the history row, as every gate decision is committed."""
    return _commit(client, warehouse, task, d, alias)
