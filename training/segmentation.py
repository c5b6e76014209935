"""`smap segment`: behavioural user segments with k-means on the `segmentation_v1` features.

Rows are the latest snapshot of every recently active user (`segmentation_labels`); Feast
joins their features point in time. Features are median-imputed, count-like columns are
log1p-compressed, everything is standardised, and k-means is fitted for each k in `k_range`;
the k with the best silhouette (on a seeded sample) wins.

One MLflow run per call (params, silhouettes, profile table, pyfunc model). The new version
is registered as `segmentation` and goes through the same champion gate as the other tasks
(`training.registry.promote`), with silhouette as the metric and the seeded sample of the
current snapshot as the holdout. Champion, challenger and the naive baseline (users split
into thirds by active days) label the same users, and every labelling is scored in one
feature space, the challenger's (fitted on the current snapshot), so the silhouettes compare
partitions of the same points under the same distances, whatever their k. The sample is also
what the challenger was fitted on (k-means has no target to hold out), which favours it a
little; a tie keeps the champion. Only a crowned version rewrites `user_segments` and
`segment_profiles`; otherwise they keep the champion's assignments.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version as pkg_version
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler

from configs.settings import Settings
from feature_repo.store import open_store
from ingestion.schema import SEGMENT_TABLES
from ingestion.warehouse import open_warehouse
from training import tags as tag
from training.dataset import fingerprint, service_features
from training.descriptions import experiment_note, model_description, version_description
from training.errors import TaskError
from training.labels import segmentation_labels
from training.packaging import input_frame
from training.registry import Decision, promote
from training.tasks.segmentation import TASK as SEGMENTATION
from training.tracking import (
    experiment_for,
    git_commit,
    log_pyfunc,
    register_version,
    use_tracking,
)

TASK = "segmentation"
ROWS_PER_CLUSTER = 10  # at least this many users per requested cluster
REQUIREMENTS = ("mlflow", "numpy", "pandas", "scikit-learn")


@dataclass(frozen=True)
class SegmentResult:
    run_id: str
    version: int
    k: int
    silhouette: float
    silhouettes: dict[int, float]
    segments_written: int  # 0 when the gate kept the champion
    decision: Decision
    profiles: pd.DataFrame = field(repr=False)


class SegmentModel(PythonModel):
    """Median imputation -> log1p on count columns -> scaler -> k-means -> segment id.

    Segment ids are renumbered by size (0 = largest segment) through `order`.
    """

    def __init__(
        self,
        features: list[str],
        medians: dict[str, float],
        log_columns: list[str],
        scaler: StandardScaler,
        kmeans: KMeans,
        order: np.ndarray,
    ):
        self.features, self.medians, self.log_columns = features, medians, log_columns
        self.scaler, self.kmeans, self.order = scaler, kmeans, order

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.features if c not in frame.columns]
        if missing:
            raise ValueError(f"model input is missing feature(s): {', '.join(missing)}")
        return self.scaler.transform(
            _impute_log(frame[self.features], self.medians, self.log_columns).to_numpy()
        )

    def predict_frame(self, frame: pd.DataFrame) -> np.ndarray:
        return self.order[self.kmeans.predict(self.transform(frame))].astype(np.int64)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        return self.predict_frame(model_input)


def silhouette_scorer(space: SegmentModel):
    """Score any segment labelling of a frame by silhouette in `space`'s feature space, so
    champion, challenger and baseline are measured on the same points and distances."""

    def scorer(frame: pd.DataFrame, labels) -> dict[str, float]:
        labels = np.asarray(labels)
        if len(np.unique(labels)) < 2:  # one segment has no silhouette
            return {"silhouette": float("nan")}
        return {"silhouette": float(silhouette_score(space.transform(frame), labels))}

    return scorer


def requirements() -> list[str]:
    """Pinned pip requirements (skips MLflow's slow inference subprocess)."""
    return [f"{n}=={pkg_version(n)}" for n in REQUIREMENTS]


def segmentation_frame(settings: Settings, store=None) -> tuple[pd.DataFrame, list[str]]:
    """Latest user snapshot joined with `segmentation_v1` features, sorted by user_id."""
    task = SEGMENTATION
    store = store or open_store(settings)
    names = service_features(store, task.feature_service)
    rows = segmentation_labels(open_warehouse(settings))
    if rows.empty:
        raise TaskError(f"{TASK}: no recently active users to segment (run `smap ingest`)")
    service = store.get_feature_service(task.feature_service)
    joined = store.get_historical_features(entity_df=rows, features=service).to_df()
    frame = joined.sort_values("user_id", kind="stable").reset_index(drop=True)
    return frame, names


def _impute_log(x: pd.DataFrame, medians: dict[str, float], log_columns: list[str]) -> pd.DataFrame:
    out = x.astype(float).fillna(medians)
    for col in log_columns:
        out[col] = np.log1p(out[col].clip(lower=0))
    return out


def _fit_preprocessing(x: pd.DataFrame) -> tuple[dict[str, float], list[str], StandardScaler]:
    """Column medians, the non-negative count-like columns (not rates) and a fitted scaler."""
    medians = {c: float(v) if np.isfinite(v) else 0.0 for c, v in x.median().items()}
    filled = x.fillna(medians)
    log_columns = [c for c in x.columns if "rate" not in c and bool((filled[c] >= 0).all())]
    scaler = StandardScaler().fit(_impute_log(x, medians, log_columns).to_numpy())
    return medians, log_columns, scaler


def _label_segments(profiles: pd.DataFrame) -> list[str]:
    """Deterministic names from segment means: activity tier, role, engagement.

    Tier: segments ranked by active_days_28d, split in thirds (highly active / casual /
    dormant). Role: the most-followed segment, if it has over twice the average following,
    is "influencers"; else above-average posting makes "creators", above-average likes and
    comments given makes "engagers", the rest are "lurkers". The segment with the best
    engagement_rate_28d (unless dormant) is prefixed "high-engagement". Repeats get " 2", ...
    """
    k = len(profiles)
    weights = profiles["size"] / profiles["size"].sum()
    overall = lambda col: float((profiles[col].fillna(0) * weights).sum())  # noqa: E731
    activity_rank = profiles.active_days_28d.rank(ascending=False, method="first") - 1
    tiers = ("highly active", "casual", "dormant")
    given = profiles.likes_given_28d + profiles.comments_given_28d
    given_overall = overall("likes_given_28d") + overall("comments_given_28d")
    top_followed = profiles.followers.idxmax()
    top_engagement = profiles.engagement_rate_28d.fillna(-np.inf).idxmax()
    labels = []
    for i in profiles.index:
        tier = tiers[min(int(activity_rank[i] * 3 // k), 2)]
        if i == top_followed and profiles.followers[i] > 2 * overall("followers"):
            role = "influencers"
        elif profiles.posts_28d[i] > overall("posts_28d"):
            role = "creators"
        elif given[i] > given_overall:
            role = "engagers"
        else:
            role = "lurkers"
        prefix = "high-engagement " if i == top_engagement and tier != "dormant" else ""
        labels.append(f"{prefix}{tier} {role}")
    seen: dict[str, int] = {}
    unique = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        unique.append(label if seen[label] == 1 else f"{label} {seen[label]}")
    return unique


def _profiles(raw: pd.DataFrame, segments: np.ndarray, names: list[str]) -> pd.DataFrame:
    grouped = raw[names].assign(segment=segments).groupby("segment")
    means = grouped.mean()
    sizes = grouped.size()
    out = pd.DataFrame(
        {
            "segment": sizes.index.astype(int),
            "size": sizes.to_numpy(),
            "share": sizes.to_numpy() / len(raw),
        }
    ).set_index("segment", drop=False)
    out = out.join(means)
    out.insert(1, "label", _label_segments(out))
    return out.reset_index(drop=True)


def segment(settings: Settings, k_range=(5, 6, 7), sample: int = 5000) -> SegmentResult:
    """Cluster the latest user snapshot, log and register the model, gate it, and write the
    segments if it was crowned."""
    task = SEGMENTATION
    ks = sorted({int(k) for k in k_range})
    if not ks or ks[0] < 2:
        raise TaskError(f"{TASK}: k_range must hold cluster counts of at least 2 (got {k_range})")
    seed = settings.training.seed
    frame, names = segmentation_frame(settings)
    need = ROWS_PER_CLUSTER * ks[-1]
    if len(frame) < need:
        raise TaskError(
            f"{TASK}: {len(frame)} active users is too few for k={ks[-1]} "
            f"(need at least {need}; simulate a larger preset or lower k)"
        )
    raw = input_frame(frame, names, [])
    data_fingerprint = fingerprint(frame[["user_id", "event_timestamp", *names]])

    medians, log_columns, scaler = _fit_preprocessing(raw)
    x = scaler.transform(_impute_log(raw, medians, log_columns).to_numpy())
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(x), size=min(sample, len(x)), replace=False))
    fits: dict[int, KMeans] = {}
    silhouettes: dict[int, float] = {}
    for k in ks:
        fits[k] = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(x)
        labels = fits[k].labels_[rows]
        silhouettes[k] = (
            float(silhouette_score(x[rows], labels)) if len(np.unique(labels)) > 1 else float("nan")
        )
    finite = {k: s for k, s in silhouettes.items() if np.isfinite(s)}
    if not finite:
        raise TaskError(f"{TASK}: no k in {ks} gave at least two distinct clusters")
    best_k = max(finite, key=lambda k: (finite[k], -k))
    kmeans = fits[best_k]
    counts = np.bincount(kmeans.labels_, minlength=best_k)
    by_size = np.lexsort((np.arange(best_k), -counts))  # largest first, ties by cluster id
    order = np.empty(best_k, dtype=np.int64)
    order[by_size] = np.arange(best_k)
    model = SegmentModel(names, medians, log_columns, scaler, kmeans, order)
    segments = model.predict_frame(raw)
    profiles = _profiles(raw, segments, names)

    client = use_tracking(settings)
    experiment_for(settings, TASK, experiment_note(task))
    with mlflow.start_run(run_name=f"segment-k{best_k}") as run:
        mlflow.set_tags(
            {
                tag.TASK: TASK,
                tag.FEATURES: task.feature_service,
                tag.DATA: data_fingerprint,
                tag.COMMIT: git_commit(),
                "smap.gate": "silhouette",
            }
        )
        mlflow.log_params(
            {
                "k_range": ",".join(map(str, ks)),
                "k": best_k,
                "seed": seed,
                "feature_service": task.feature_service,
                "data_fingerprint": data_fingerprint,
                "rows": len(frame),
                "silhouette_sample": len(rows),
                "log_columns": ",".join(log_columns),
            }
        )
        mlflow.log_metrics({f"silhouette_k{k}": s for k, s in finite.items()})
        mlflow.log_metric("silhouette", finite[best_k])
        mlflow.log_dict(
            {"feature_service": task.feature_service, "features": names}, "lineage/features.json"
        )
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            profiles.to_csv(out / "segment_profiles.csv", index=False)
            (out / "segment_profiles.json").write_text(profiles.to_json(orient="records", indent=2))
            mlflow.log_artifacts(str(out), "profiles")
        example = raw.head(5)
        info = log_pyfunc(model, example, requirements())
        run_id = run.info.run_id
    version = register_version(
        info.model_uri,
        TASK,
        tags={tag.DATA: data_fingerprint, tag.FEATURES: task.feature_service},
        description=version_description(task, {}, data_fingerprint),
        model_description=model_description(task),
    )
    warehouse = open_warehouse(settings)
    decision = promote(
        client,
        warehouse,
        task,
        version,
        raw.iloc[rows].reset_index(drop=True),
        silhouette_scorer(model),
        settings.training.promote_margin,
    )
    if decision.champion_after != version:
        return SegmentResult(
            run_id, version, best_k, finite[best_k], silhouettes, 0, decision, profiles
        )

    label_of = dict(zip(profiles.segment, profiles.label, strict=True))
    user_segments = pd.DataFrame(
        {
            "user_id": frame.user_id.to_numpy(),
            "segment": segments,
            "segment_label": [label_of[s] for s in segments],
            "assigned_at": datetime.now(UTC),
            "model_version": version,
        }
    )
    segment_profiles = profiles[["segment", "label", "size", "share"]].assign(
        profile_json=[
            json.dumps({c: _jsonable(v) for c, v in row.items()})
            for row in profiles[names].to_dict(orient="records")
        ]
    )
    written = warehouse.write_many(
        [
            (SEGMENT_TABLES["user_segments"], user_segments),
            (SEGMENT_TABLES["segment_profiles"], segment_profiles),
        ]
    )
    return SegmentResult(
        run_id,
        version,
        best_k,
        finite[best_k],
        silhouettes,
        written["user_segments"],
        decision,
        profiles,
    )


def _jsonable(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None
