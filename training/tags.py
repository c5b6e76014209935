"""The MLflow tag names smap writes on runs and registered versions.

Short names, so they read whole in the MLflow UI's tag columns (`smap.data_finger…` did not).
Registries written before the rename hold the long names: `read` falls back to them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import overload

TASK = "task"
FEATURES = "features"  # the Feast feature service the model reads
DATA = "data"  # fingerprint of the training frame
STUDY = "study"  # the Optuna study
COMMIT = "commit"  # smap's git commit
BEST_TRIAL = "best_trial"  # the Optuna trial number of the registered model
BEST_TRIAL_ID = "best_trial_id"  # that trial's id in the study storage
CHOSEN = "chosen"  # what the run kept: its best trial, an anchor or a blend (selection.py)
STATE = "state"  # pending | ready | abandoned (a version's training run finished or not)
GATE = "gate"  # the gate's decision on a version (promoted, below_baseline, ...)
GATE_RECORD = "gate_record"  # the whole decision as JSON (the gate's intent, see registry.py)

# experiment tags MLflow's UI reads
EXPERIMENT_KIND = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"  # opens the model-training view (MLflow >= 3.4)
NOTE = "mlflow.note.content"  # an experiment's or run's description

LEGACY = {
    TASK: "smap.task",
    FEATURES: "smap.feature_service",
    DATA: "smap.data_fingerprint",
    STUDY: "smap.optuna_study",
    COMMIT: "smap.git_commit",
    BEST_TRIAL: "smap.best_trial_number",
    BEST_TRIAL_ID: "smap.best_trial_id",
    STATE: "smap.state",
    GATE: "smap.gate_decision",
    GATE_RECORD: "smap.gate_record",
}


@overload
def read(tags: Mapping[str, str], name: str) -> str | None: ...
@overload
def read(tags: Mapping[str, str], name: str, default: str) -> str: ...
def read(tags: Mapping[str, str], name: str, default: str | None = None) -> str | None:
    """The tag `name`, or its long name in a registry written before the rename."""
    if name in tags:
        return tags[name]
    return tags.get(LEGACY.get(name, name), default)
