"""Which model a run keeps: its best trial, a cheap anchor, or a blend of several, all
scored on the same folds (`search.Objective.score`).

A tuned search can lose to a plain ridge on small data: the anchors (a ridge or logistic
regression at default strength, and where the task has an offset a ridge over it) are scored
beside every run's trials, so the run keeps whichever is better. A blend averages the best
candidate of each family (and the anchors); it is kept only when it beats the best single
candidate on the mean over folds and on most folds, since averaging is always a little
better on the data it was chosen on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import optuna
from optuna.trial import TrialState

from configs.settings import TrainingSettings
from training.families.base import FeatureEncoder, Fitted
from training.families.combine import Blend, Member, Scaling
from training.search import FAMILY, RUN_ID, Objective, Scored, Spec, failure_line

log = logging.getLogger(__name__)

BLEND_SIZE = 3  # most members a blend takes: the best of this many families or anchors
ANCHOR_FAMILY = "linear"
ANCHOR_PARAMS = {"alpha": 1.0}  # Ridge's and LogisticRegression's own default strength
ANCHOR_OFFSET_STRENGTH = 5.0  # an author's own rate counts fully after a handful of posts


@dataclass(frozen=True)
class Candidate:
    """One model a run may keep: its members (one, or several averaged) and their score."""

    label: str
    specs: tuple[Spec, ...]
    scored: Scored
    trial: int | None = None  # the Optuna trial it is, when it is one

    @property
    def family(self) -> str:
        return self.specs[0].family if len(self.specs) == 1 else "blend"

    def summary(self) -> dict[str, object]:
        return {
            "label": self.label,
            "family": self.family,
            "value": self.scored.value,
            "spread": self.scored.spread,
            "folds": list(self.scored.folds),
            "members": [
                {"family": s.family, "params": s.params, "offset_strength": s.offset_strength}
                for s in self.specs
            ],
            "trial": self.trial,
        }


def anchors(objective: Objective) -> list[Candidate]:
    """The plain linear model on the same features, and over the offset where there is one."""
    specs = [("ridge" if _regresses(objective) else "logistic", Spec(ANCHOR_FAMILY, ANCHOR_PARAMS))]
    if objective.prepared.offset is not None:
        specs.append(
            (
                "ridge over the shrunk author rate",
                Spec(ANCHOR_FAMILY, ANCHOR_PARAMS, ANCHOR_OFFSET_STRENGTH),
            )
        )
    found = []
    for label, spec in specs:
        try:
            found.append(Candidate(label, (spec,), objective.score(spec)))
        except (ValueError, ArithmeticError) as exc:  # what fails a trial skips an anchor
            log.warning("anchor %s not scored: %s", label, failure_line(exc))
    return found


def _regresses(objective: Objective) -> bool:
    return objective.trainer.fit_kind == "regression"


def _better(objective: Objective, a: float, b: float) -> bool:
    return a > b if objective.direction == "maximize" else a < b


def blend(objective: Objective, members: list[Candidate]) -> Candidate | None:
    """The equal-weight average of `members`' fold predictions, scored on each fold."""
    if len(members) < 2:
        return None
    folds = objective.prepared.folds
    trainer, ts = objective.trainer, objective.ts
    values, preds, every = [], [], []
    for i, fold in enumerate(folds):
        mean = np.mean([m.scored.predictions[i] for m in members], axis=0)
        metrics = trainer.score(ts, fold.frame, trainer.from_training_scale(mean, fold.frame))
        values.append(float(metrics[ts.task.metric]))
        preds.append(mean)
        every.append(metrics)
    label = "blend of " + ", ".join(m.label for m in members)
    specs = tuple(s for m in members for s in m.specs)
    return Candidate(label, specs, Scored.of(values, every, preds))


def _wins(objective: Objective, challenger: Candidate, best: Candidate) -> bool:
    """Better on the mean over folds and on more than half of them (the one split: better)."""
    ahead = [
        _better(objective, a, b)
        for a, b in zip(challenger.scored.folds, best.scored.folds, strict=True)
    ]
    return _better(objective, challenger.scored.value, best.scored.value) and (
        sum(ahead) * 2 > len(ahead)
    )


def run_candidates(objective: Objective, study: optuna.Study, run_id: str) -> list[Candidate]:
    """This run's complete trials this process scored, best first (trials other workers ran
    have no predictions here: they compete through the best trial alone)."""
    done = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.user_attrs.get(RUN_ID) == run_id and t.number in objective.scored
    ]
    found = [
        Candidate(f"trial {t.number} ({t.user_attrs[FAMILY]})", (Spec.of_trial(t),),
                  objective.scored[t.number], t.number)
        for t in done
    ]  # fmt: skip
    sign = 1.0 if objective.direction == "maximize" else -1.0
    return sorted(found, key=lambda c: -sign * c.scored.value)


@dataclass(frozen=True)
class Selection:
    chosen: Candidate
    considered: tuple[Candidate, ...]

    def summary(self) -> dict[str, object]:
        return {
            "chosen": self.chosen.summary(),
            "considered": [c.summary() for c in self.considered],
        }


def choose(
    objective: Objective,
    study: optuna.Study,
    best: optuna.trial.FrozenTrial,
    settings: TrainingSettings,
) -> Selection:
    """The run's model: `best` (the run's best trial), unless an anchor or a blend wins."""
    assert best.value is not None
    trials = run_candidates(objective, study, objective.run_id)
    mine = next((c for c in trials if c.trial == best.number), None)
    if mine is None:  # another worker's trial: scored again here, on the same folds
        spec = Spec.of_trial(best)
        mine = Candidate(
            f"trial {best.number} ({spec.family})", (spec,), objective.score(spec), best.number
        )
    considered = [mine]
    chosen = mine
    if settings.anchors:
        for anchor in anchors(objective):
            considered.append(anchor)
            if _better(objective, anchor.scored.value, chosen.scored.value):
                chosen = anchor
    if settings.blend:
        pool = _blend_pool(objective, [*trials, *considered[1:]] if trials else considered)
        for size in range(2, min(BLEND_SIZE, len(pool)) + 1):
            mixed = blend(objective, pool[:size])
            if mixed is not None:
                considered.append(mixed)
                if _wins(objective, mixed, chosen):
                    chosen = mixed
    return Selection(chosen, tuple(considered))


def _blend_pool(objective: Objective, candidates: list[Candidate]) -> list[Candidate]:
    """The best candidate of each family (an anchor is a linear one), best first: a blend
    averages different families, whose errors differ."""
    sign = 1.0 if objective.direction == "maximize" else -1.0
    ordered = sorted(candidates, key=lambda c: -sign * c.scored.value)
    seen, pool = set(), []
    for candidate in ordered:
        if candidate.family not in seen:
            seen.add(candidate.family)
            pool.append(candidate)
    return pool


def refit(objective: Objective, candidate: Candidate) -> tuple[FeatureEncoder, Fitted]:
    """The candidate fitted on the train part (the validation part stays for calibration),
    with the encoder its prediction reads: a single plain member keeps its family's own
    encoder (as every model did before offsets and blends); anything else reads the unscaled
    one."""
    prepared = objective.prepared
    fitted = [objective.fit(spec, prepared.data, _quiet) for spec in candidate.specs]
    if len(fitted) == 1 and not isinstance(fitted[0], Member):
        return prepared.encoders[candidate.specs[0].scaled], fitted[0]
    scaling = Scaling.of(prepared.encoders[True])
    members = [
        f if isinstance(f, Member) else Member(f, scaling if s.scaled else None, None)
        for f, s in zip(fitted, candidate.specs, strict=True)
    ]
    if len(members) == 1:
        return prepared.encoders[False], members[0]
    return prepared.encoders[False], Blend(members, [1.0] * len(members))


def _quiet(step: int, loss: float) -> None:
    """A refit reports to no pruner."""
