"""What the service does for each endpoint, without BentoML: champions + online features +
rules + the prediction log. The BentoML class is a thin shell around one `Predictor`."""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np

from configs.settings import Settings
from feature_repo.drafts import parse_hashtags
from feature_repo.feature_services import DRAFT_SERVICES, TREND_SERVICES
from serving import rules
from serving.answers import BadRequest, Unavailable, new_request_id
from serving.experiments import Challengers, ShadowScorer, experiment_poller
from serving.features import (
    EPOCH,
    BadStart,
    ForecastPlan,
    draft_rows,
    feature_columns,
    missing_history,
    missing_per_row,
    unix_seconds,
)
from serving.models import Champion, Champions, NoChampion, alias_poller
from serving.online import OnlineFeatures, OnlineStoreDown, StoreWatch
from serving.prediction_log import PredictionLog, open_prediction_log, prediction_rows
from serving.schemas import (
    ChurnPrediction,
    ChurnResponse,
    DayForecast,
    Draft,
    DraftTemplate,
    EngagementPrediction,
    EngagementResponse,
    FeaturesResponse,
    HashtagForecast,
    Interval,
    Lineage,
    Metadata,
    PostingSlot,
    PostingTimeResponse,
    RunningExperiment,
    TaskPrediction,
    TaskResponse,
    TaskStatus,
    TrendResponse,
    ViralityPrediction,
    ViralityResponse,
    utc_now,
)
from training.errors import TaskError
from training.experiments import CHALLENGER, arm_of
from training.labels import TREND_HORIZONS
from training.packaging import interval_bounds
from training.tasks import TASKS, get_task

__all__ = ["BadRequest", "Predictor", "Unavailable", "new_request_id"]

log = logging.getLogger(__name__)


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def intervals(champion: Champion, preds: np.ndarray) -> list[Interval | None]:
    """Each prediction's interval from the champion: None where it carries none, or where a
    bound is not finite (a model calibrated on fewer than 9 validation rows cannot promise
    the level, and JSON has no infinity)."""
    bounds = champion.interval(preds)
    if bounds is None:
        return [None] * len(preds)
    low, high, level = bounds
    return [
        Interval(low=float(lo), high=float(hi), level=level)
        if np.isfinite(lo) and np.isfinite(hi)
        else None
        for lo, hi in zip(low, high, strict=True)
    ]


def served_tasks() -> tuple[str, ...]:
    """Every registered task with a serving binding: the champions the service follows."""
    return tuple(name for name, task in TASKS.items() if task.serving is not None)


GENERIC_REQUESTS = ("drafts", "users")  # what `POST /predict` answers for any task
REQUEST_THREADS = 4  # answers computed at once per worker, off its event loop


class Predictor:
    def __init__(self, settings: Settings, store=None, background: bool = True):
        self.settings = settings
        self.online = OnlineFeatures(settings, store)
        self.champions = Champions(settings, served_tasks())
        self.champions.refresh()
        self.log: PredictionLog = open_prediction_log(settings)
        self.poller = alias_poller(self.champions, settings.serving.alias_poll_seconds)
        self.watch = StoreWatch(self.online, settings.serving.online_check_seconds)
        self._threads = ThreadPoolExecutor(REQUEST_THREADS, thread_name_prefix="answer")
        self.challengers = Challengers(self.champions.client, self.champions.tasks)
        self.challengers.refresh()
        self.experiments = experiment_poller(self.challengers, settings.serving.alias_poll_seconds)
        self.shadow = ShadowScorer(self.shadow_score)
        if background:
            self.log.start()
            self.poller.start()
            self.watch.start()
            self.experiments.start()

    def close(self) -> None:
        self.experiments.stop()
        self.shadow.close()
        self.poller.stop()
        self.watch.stop()
        self._threads.shutdown(wait=False, cancel_futures=True)
        self.log.close()

    async def answer(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`method(*args, **kwargs)` on one of the predictor's threads: the event loop that
        awaits it (health probes, other requests) never waits on the online store; the store's
        reads are bounded by `serving.dependency_timeout_ms` (serving/online.py)."""
        call = functools.partial(method, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._threads, call)

    def degraded(self) -> str:
        """Why answers are computed without what was materialized into the online store ('' when
        it holds it), as the last check saw it: the `x-smap-degraded` header of an answer."""
        return self.watch.health().degraded

    # -- shared steps -------------------------------------------------------------------------
    def champion(self, task: str, draft: bool = False, entity: object = None) -> Champion:
        """The model that answers `task` for `entity` (an author or user id): the champion,
        or the challenger of a split experiment that routes the entity to it."""
        try:
            champion = self.champions.get(task)
        except NoChampion as exc:
            raise Unavailable(str(exc)) from None
        running = self.challengers.get(task)
        if running is not None and entity is not None:
            if arm_of(running.experiment, entity) == CHALLENGER:
                champion = running.challenger
        if draft and champion.feature_service not in DRAFT_SERVICES:
            raise Unavailable(
                f"{task}: champion v{champion.version} reads {champion.feature_service}, which "
                f"needs a published post; retrain it on {task}_v2 (`smap train {task}`)"
            )
        return champion

    def lookup(self, champion: Champion, rows: dict[str, list]) -> dict[str, list]:
        try:
            return self.online.fetch(champion.feature_service, rows)
        except OnlineStoreDown as exc:
            raise Unavailable(str(exc)) from None

    def score(
        self,
        champion: Champion,
        rows: dict[str, list],
        request_id: str,
        keys: list[dict],
        online: dict[str, list] | None = None,
    ):
        """Look up (unless given), default, predict, log: returns predictions and per-row
        missing lists."""
        if online is None:
            online = self.lookup(champion, rows)
        features = champion.model.features
        columns = feature_columns(online, features)
        predictions = champion.predict_columns(columns)
        lineage = self.lineage_dict(champion)
        self.log.add(
            prediction_rows(
                request_id, champion.task, keys, features, columns, predictions, lineage
            )
        )
        running = self.challengers.get(champion.task)
        if (
            running is not None
            and running.experiment.mode == "shadow"
            and champion.arm != CHALLENGER
        ):
            challenger = running.challenger
            self.shadow.submit((challenger, champion, rows, request_id, keys, online))
        return predictions, missing_per_row(online, rows)

    def shadow_score(self, batch: list[tuple]) -> None:
        """Challengers on the inputs their champions answered, one model call per challenger
        for the whole batch, logged as the challenger's arm with each request's id (on the
        shadow thread: the answers have gone). A challenger that reads another feature service
        looks its inputs up itself."""
        groups: dict[tuple[str, int], list[tuple]] = {}
        for item in batch:
            groups.setdefault((item[0].task, item[0].version), []).append(item)
        for items in groups.values():
            challenger = items[0][0]
            features = challenger.model.features
            parts = []
            for _, champion, rows, _, _, online in items:
                if challenger.feature_service != champion.feature_service:
                    online = self.online.fetch(challenger.feature_service, rows)
                parts.append(feature_columns(online, features))
            columns = [
                list(itertools.chain.from_iterable(part[i] for part in parts))
                for i in range(len(features))
            ]
            predictions = challenger.predict_columns(columns)
            lineage = self.lineage_dict(challenger)
            start = 0
            for (_, _, _, request_id, keys, _), part in zip(items, parts, strict=True):
                end = start + len(keys)
                self.log.add(
                    prediction_rows(request_id, challenger.task, keys, features, part,
                                    predictions[start:end], lineage)
                )  # fmt: skip
                start = end

    @staticmethod
    def lineage_dict(champion: Champion) -> dict:
        return {
            "model": champion.task,
            "version": champion.version,
            "run_id": champion.run_id,
            "feature_service": champion.feature_service,
            "arm": champion.arm,
        }

    def lineage(self, champion: Champion, request_id: str) -> Lineage:
        return Lineage(**self.lineage_dict(champion), request_id=request_id)

    def _draft_rows(self, drafts: Sequence[Draft | DraftTemplate], planned: Sequence[datetime]):
        default = self.settings.platforms.default  # a draft without a platform (docs/platforms.md)
        return draft_rows(
            [d.user_id for d in drafts],
            [d.post_type for d in drafts],
            [d.category for d in drafts],
            [d.hashtags for d in drafts],
            [d.caption for d in drafts],
            planned,
            [d.is_paid for d in drafts],
            [d.platform or default for d in drafts],
        )

    # -- endpoints ------------------------------------------------------------------------------
    def predict_engagement(self, drafts: list[Draft], request_id: str) -> EngagementResponse:
        champion = self.champion("engagement", draft=True, entity=drafts[0].user_id)
        rows = self._draft_rows(drafts, [d.planned_at for d in drafts])
        keys = [{"user_id": d.user_id, "planned_at": d.planned_at} for d in drafts]
        preds, missing = self.score(champion, rows, request_id, keys)
        return EngagementResponse(
            predictions=[
                EngagementPrediction(
                    user_id=d.user_id, engagement_rate=float(p), interval=i, missing_features=m
                )
                for d, p, i, m in zip(
                    drafts, preds, intervals(champion, preds), missing, strict=True
                )
            ],
            lineage=self.lineage(champion, request_id),
        )

    def predict_virality(self, drafts: list[Draft], request_id: str) -> ViralityResponse:
        champion = self.champion("virality", draft=True, entity=drafts[0].user_id)
        rows = self._draft_rows(drafts, [d.planned_at for d in drafts])
        keys = [{"user_id": d.user_id, "planned_at": d.planned_at} for d in drafts]
        preds, missing = self.score(champion, rows, request_id, keys)
        threshold = champion.threshold
        return ViralityResponse(
            predictions=[
                ViralityPrediction(
                    user_id=d.user_id,
                    probability=float(p),
                    viral=rules.is_viral(float(p), threshold),
                    threshold=rules.DEFAULT_VIRALITY_THRESHOLD if threshold is None else threshold,
                    missing_features=m,
                )
                for d, p, m in zip(drafts, preds, missing, strict=True)
            ],
            lineage=self.lineage(champion, request_id),
        )

    def predict(
        self,
        task_name: str,
        drafts: list[Draft] | None,
        user_ids: list[int] | None,
        request_id: str,
    ) -> TaskResponse:
        """Any served task whose requests are drafts or user ids, by its serving binding."""
        try:
            task = get_task(task_name)
        except TaskError as exc:
            raise BadRequest(str(exc)) from None
        binding = task.serving
        if binding is None or binding.request not in GENERIC_REQUESTS:
            raise BadRequest(f"task: {task.name} is not answered by /predict")
        if binding.request == "drafts":
            if not drafts or user_ids:
                raise BadRequest(f"drafts: {task.name} answers drafts (and no user_ids)")
            champion = self.champion(task.name, draft=True, entity=drafts[0].user_id)
            rows = self._draft_rows(drafts, [d.planned_at for d in drafts])
            keys = [{"user_id": d.user_id, "planned_at": d.planned_at} for d in drafts]
            users = [d.user_id for d in drafts]
        else:
            if not user_ids or drafts:
                raise BadRequest(f"user_ids: {task.name} answers user ids (and no drafts)")
            champion = self.champion(task.name, entity=int(user_ids[0]))
            users = [int(u) for u in user_ids]
            rows, keys = {"user_id": users}, [{"user_id": u} for u in users]
        preds, missing = self.score(champion, rows, request_id, keys)
        threshold = champion.threshold
        return TaskResponse(
            task=task.name,
            predictions=[
                TaskPrediction(
                    user_id=u,
                    value=float(p),
                    label=None if threshold is None else bool(p >= threshold),
                    interval=i,
                    missing_features=m,
                )
                for u, p, i, m in zip(
                    users, preds, intervals(champion, preds), missing, strict=True
                )
            ],
            lineage=self.lineage(champion, request_id),
        )

    def predict_churn(self, user_ids: list[int], request_id: str) -> ChurnResponse:
        champion = self.champion("churn", entity=int(user_ids[0]))
        rows = {"user_id": [int(u) for u in user_ids]}
        preds, missing = self.score(champion, rows, request_id, [{"user_id": u} for u in user_ids])
        return ChurnResponse(
            predictions=[
                ChurnPrediction(
                    user_id=u, risk=float(p), band=rules.churn_band(float(p)), missing_features=m
                )
                for u, p, m in zip(user_ids, preds, missing, strict=True)
            ],
            lineage=self.lineage(champion, request_id),
        )

    def best_posting_time(
        self, draft: DraftTemplate, request_id: str, start: datetime | None = None
    ) -> PostingTimeResponse:
        """Predicted engagement for each hour of the next week, in one batched model call."""
        champion = self.champion("engagement", draft=True, entity=draft.user_id)
        hours = rules.candidate_hours(start or utc_now())
        # the draft's row once (its hashtags parsed once); only the planned time varies
        first = self._draft_rows([draft], hours[:1])
        rows = {k: v * len(hours) for k, v in first.items()}
        rows["posted_at"] = [unix_seconds(h) for h in hours]
        # candidate hours are what-ifs: monitoring leaves them out of its windows
        keys = [{"user_id": draft.user_id, "planned_at": h, "candidate": True} for h in hours]
        try:  # one lookup for the draft
            online = self.online.fetch_varying(
                champion.feature_service, first, {"posted_at": rows["posted_at"]}
            )
        except OnlineStoreDown as exc:
            raise Unavailable(str(exc)) from None
        preds, missing = self.score(champion, rows, request_id, keys, online)
        tied = rules.ties_with_best(preds)
        slots = [
            PostingSlot(
                planned_at=h,
                engagement_rate=float(p),
                interval=i,
                tied_with_best=t and sum(tied) > 1,
            )
            for h, p, i, t in zip(
                hours, np.asarray(preds), intervals(champion, preds), tied, strict=True
            )
        ]
        return PostingTimeResponse(
            best=[slots[i] for i in rules.best_slots(preds)],
            slots=slots,
            missing_features=missing[0],
            lineage=self.lineage(champion, request_id),
            resolution=rules.POSTING_RESOLUTION,
            tied_slots=sum(tied),
        )

    def forecast_trend(
        self, hashtags: list[str], horizon: int, start: date | None, request_id: str
    ) -> TrendResponse:
        """Daily usage of each hashtag for `horizon` days from `start` (default: the day after
        the last day of usage the online store holds), with prediction bounds; one lookup."""
        champion = self.champion("trend")
        if champion.feature_service not in TREND_SERVICES:
            raise Unavailable(
                f"trend: champion v{champion.version} reads {champion.feature_service}, which "
                "is not served online; retrain it on trend_v2 (`smap train trend`)"
            )
        tags = [parse_hashtags(h)[0] for h in hashtags]
        # the horizons the champion was trained on: its intervals are calibrated per horizon
        intervals = getattr(champion.model, "intervals", None) or {}
        longest = max(intervals or TREND_HORIZONS)
        plan = ForecastPlan(tags, horizon, start, utc_now().date(), longest)
        try:
            online = self.online.fetch_expanded(champion.feature_service, {"tag": tags}, plan)
        except OnlineStoreDown as exc:
            raise Unavailable(str(exc)) from None
        except BadStart as exc:
            raise BadRequest(str(exc)) from None
        features = champion.model.features
        columns = feature_columns(online, features)
        predictions = np.asarray(champion.predict_columns(columns), dtype=float)
        # a model pickled before intervals existed has none: its bounds are null
        lower, upper = interval_bounds(intervals, predictions, np.asarray(online["horizon"]))
        keys = [
            {"hashtag": tag, "day": str(day), "horizon": int(h)}
            for tag, day, h in zip(online["tag"], plan.days, online["horizon"], strict=True)
        ]
        lineage = self.lineage_dict(champion)
        self.log.add(
            prediction_rows(request_id, "trend", keys, features, columns, predictions, lineage)
        )
        usage_days = online["usage_day"][::horizon]  # one per hashtag: rows come per hashtag
        missing = missing_history(tags, usage_days)
        forecasts = []
        for i, tag in enumerate(tags):
            rows = range(i * horizon, (i + 1) * horizon)
            forecasts.append(
                HashtagForecast(
                    hashtag=tag,
                    history_until=None
                    if usage_days[i] is None
                    else EPOCH + timedelta(days=int(usage_days[i])),
                    days=[
                        DayForecast(
                            day=plan.days[r],
                            horizon=int(online["horizon"][r]),
                            usage=float(predictions[r]),
                            lower=_finite(lower[r]),
                            upper=_finite(upper[r]),
                        )
                        for r in rows
                    ],
                    missing_features=missing[i],
                )
            )
        return TrendResponse(
            forecasts=forecasts,
            interval_level=getattr(champion.model, "interval_level", None),
            lineage=self.lineage(champion, request_id),
        )

    def predict_features(self, task: str, records: list[dict], request_id: str) -> FeaturesResponse:
        """Scores for finished feature vectors (a caller that has its own features): no
        lookup, the same champion, encoding and prediction log as every other answer."""
        champion = self.champion(task)
        encoder = champion.model.encoder
        features = list(champion.model.features)
        categorical = set(encoder.categories)
        known = set(features)
        for i, record in enumerate(records):
            missing = [name for name in features if name not in record]
            unknown = sorted(set(record) - known)
            named = (("missing", missing), ("unknown", unknown))
            problems = [f"{word} {', '.join(names)}" for word, names in named if names]
            if problems:
                raise BadRequest(f"records[{i}]: {'; '.join(problems)} (v{champion.version} "
                                 f"reads: {', '.join(features)})")  # fmt: skip
            for name in features:
                value = record[name]
                if name not in categorical and isinstance(value, str):
                    raise BadRequest(f"records[{i}].{name}: a number or null, not text")
        columns = [[record[name] for record in records] for name in features]
        predictions = champion.predict_columns(columns)
        lineage = self.lineage_dict(champion)
        keys = [{"record": i} for i in range(len(records))]
        self.log.add(
            prediction_rows(request_id, task, keys, features, columns, predictions, lineage)
        )
        return FeaturesResponse(
            task=task,
            predictions=[float(p) for p in predictions],
            lineage=self.lineage(champion, request_id),
        )

    # -- status ---------------------------------------------------------------------------------
    def status(self, task: str) -> TaskStatus:
        try:
            c = self.champions.get(task)
        except NoChampion as exc:
            return TaskStatus(task=task, serving=False, reason=str(exc))
        return TaskStatus(
            task=task,
            serving=True,
            model=c.task,
            version=c.version,
            run_id=c.run_id,
            feature_service=c.feature_service,
            threshold=c.threshold,
            training_window=c.window,
            features=list(c.model.features),
        )

    def online_reason(self) -> str:
        """'' when the online store answers with what was materialized into it, else why not:
        the watch's last check (every `serving.online_check_seconds`) or a read failed since."""
        health = self.watch.health()
        return self.online.down() or health.down or health.degraded

    def metadata(self) -> Metadata:
        reason = self.online_reason()
        return Metadata(
            profile=self.settings.profile,
            online_store=self.online.where(),
            online_store_ok=not reason,
            online_store_reason=reason,
            tasks=[self.status(t) for t in self.champions.tasks],
            predictions_logged=self.log.written,
            predictions_dropped=self.log.dropped,
            experiments=[
                RunningExperiment(
                    id=e.id,
                    task=e.task,
                    mode=e.mode,
                    champion_version=e.champion,
                    challenger_version=e.challenger,
                    split=e.split,
                    started_at=e.started_at,
                    shadow_scored=self.shadow.scored,
                    shadow_skipped=self.shadow.skipped,
                    shadow_failed=self.shadow.failed,
                )
                for e in self.challengers.running()
            ],
        )

    def is_ready(self) -> bool:
        """Ready: at least one champion is loaded and the online store answers now (a ping at
        the first try, within a second: BentoML asks from a thread, never its event loop; each
        worker answers for itself) with what was materialized into it (the watch's last check
        of the marks, every `serving.online_check_seconds`)."""
        if not any(self.champions.reason(t) == "" for t in self.champions.tasks):
            return False
        if down := self.online.ping():
            self.online.failed(down)
            return False
        return not self.watch.health().degraded
