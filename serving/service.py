"""The smap prediction service (BentoML): one class, typed endpoints, lineage on every answer.

Run it with `smap serve` (or `bentoml serve serving.service:Smap`). The profile comes from
SMAP_PROFILE / SMAP_CONFIG like every smap command; SMAP_API_KEY, when set, is required on
every endpoint but the health probes (header `x-api-key: KEY` or `authorization: Bearer KEY`).
"""

from __future__ import annotations

import gc
import hmac
import os
from datetime import date, datetime
from typing import Any

import bentoml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from configs.settings import load_settings, telemetry_env
from serving.answers import BadRequest, Unavailable, new_request_id
from serving.client_errors import one_line_client_errors
from serving.insights import Insights, NotAnswerable, NotBuilt
from serving.schemas import (
    Category,
    ChurnResponse,
    ContentPosts,
    ContentResponse,
    Drafts,
    DraftTemplate,
    EngagementResponse,
    FeatureRecords,
    FeaturesResponse,
    ForecastTags,
    Horizon,
    InfluencersResponse,
    PostingTimeResponse,
    RecommendN,
    RecommendResponse,
    ScoredTask,
    TaskName,
    TaskResponse,
    TopN,
    TrendResponse,
    UserId,
    UserIds,
    UserSegmentResponse,
    ViralityResponse,
)

one_line_client_errors()  # a 4xx is one INFO line in the log, a 5xx keeps its traceback
OPEN_PATHS = {"/healthz", "/livez", "/readyz", "/metrics"}
REQUEST_ID_HEADER = "x-request-id"


class ApiKeyMiddleware:
    """401 for any request without the key, when SMAP_API_KEY is set (health stays open)."""

    def __init__(self, app, key: str | None = None):
        self.app = app
        self.key = key if key is not None else os.environ.get("SMAP_API_KEY", "")

    async def __call__(self, scope, receive, send):
        if not self.key or scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        given = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.encode(), self.key.encode()):
            response = JSONResponse(
                {"error": "x-api-key: missing or wrong API key"}, status_code=401
            )
            return await response(scope, receive, send)
        return await self.app(scope, receive, send)


class BadInputIs422:
    """Bad input answers 422 (Unprocessable Content) with its JSON naming the field: BentoML
    says 400 for a body its pydantic types reject, and so do the insight lookups."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def relabel(message):
            if message["type"] == "http.response.start" and message["status"] == 400:
                message = {**message, "status": 422}
            await send(message)

        return await self.app(scope, receive, relabel)


class MetadataPath:
    """GET /metadata reaches the mounted metadata app (which answers on /metadata/)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/metadata":
            scope = dict(scope, path="/metadata/", raw_path=b"/metadata/")
        return await self.app(scope, receive, send)


def _unavailable(ctx: bentoml.Context, reason: str) -> JSONResponse:
    ctx.response.status_code = 503
    return JSONResponse({"error": reason}, status_code=503)


async def _metadata(_request: Request) -> JSONResponse:
    service = bentoml.get_current_service()
    return JSONResponse(service.predictor.metadata().model_dump(mode="json"))


metadata_app = Starlette(routes=[Route("/", _metadata, methods=["GET"])])


@bentoml.service(
    name="smap",
    logging={"access": {"enabled": False}},
    traffic={"timeout": 30},
)
@bentoml.asgi_app(metadata_app, path="/metadata")
class Smap:
    """Engagement, virality, churn and posting-time answers from the registry's champions."""

    def __init__(self) -> None:
        from serving.content import ContentAnswers  # Feast and MLflow: not in the supervisor
        from serving.predictor import Predictor

        settings = load_settings()
        for key, value in telemetry_env(settings.telemetry).items():
            os.environ.setdefault(key, value)
        self.predictor = Predictor(settings)
        self.insights = Insights(settings)
        self.content = ContentAnswers(self.predictor)
        # everything loaded so far (libraries, registry, champions) lives as long as the
        # process: out of the collector's sight, a full collection no longer walks millions
        # of objects in the middle of a request (the p99 under load)
        gc.collect()
        gc.freeze()

    def _call(self, ctx: bentoml.Context, method, *args: Any):
        request_id = ctx.request.headers.get(REQUEST_ID_HEADER) or new_request_id()
        ctx.response.headers[REQUEST_ID_HEADER] = request_id
        try:
            return method(*args, request_id=request_id)
        except Unavailable as exc:
            return _unavailable(ctx, str(exc))
        except BadRequest as exc:
            ctx.response.status_code = 422
            return JSONResponse({"error": str(exc)}, status_code=422)

    @bentoml.api
    async def predict_engagement(self, drafts: Drafts, ctx: bentoml.Context) -> EngagementResponse:
        """Expected 7-day engagement rate of each draft post."""
        return self._call(ctx, self.predictor.predict_engagement, drafts)

    @bentoml.api
    async def predict_virality(self, drafts: Drafts, ctx: bentoml.Context) -> ViralityResponse:
        """Probability that each draft lands in the top share-rate tail, and the label at the
        threshold tuned in training."""
        return self._call(ctx, self.predictor.predict_virality, drafts)

    @bentoml.api
    async def predict_churn(self, user_ids: UserIds, ctx: bentoml.Context) -> ChurnResponse:
        """Risk that each account goes quiet for the next 28 days, and its band."""
        return self._call(ctx, self.predictor.predict_churn, user_ids)

    @bentoml.api
    async def predict(
        self,
        task: TaskName,
        ctx: bentoml.Context,
        drafts: Drafts | None = None,
        user_ids: UserIds | None = None,
    ) -> TaskResponse:
        """Any served task by name, from drafts or user ids as its binding says: the score,
        the label at the champion's tuned threshold where it has one, and lineage."""
        return self._call(ctx, self.predictor.predict, task, drafts, user_ids)

    @bentoml.api
    async def predict_features(
        self, task: ScoredTask, records: FeatureRecords, ctx: bentoml.Context
    ) -> FeaturesResponse:
        """Scores for finished feature vectors (by the champion's feature names, as
        `/metadata` lists them), for callers that bring their own features: no lookup."""
        return self._call(ctx, self.predictor.predict_features, task, records)

    @bentoml.api
    async def best_posting_time(
        self, draft: DraftTemplate, ctx: bentoml.Context, start: datetime | None = None
    ) -> PostingTimeResponse:
        """Predicted engagement for every hour of the next week and the best three slots."""
        request_id = ctx.request.headers.get(REQUEST_ID_HEADER) or new_request_id()
        ctx.response.headers[REQUEST_ID_HEADER] = request_id
        try:
            return self.predictor.best_posting_time(draft, request_id, start)
        except Unavailable as exc:
            return _unavailable(ctx, str(exc))

    @bentoml.api
    async def forecast_trend(
        self,
        hashtags: ForecastTags,
        horizon: Horizon,
        ctx: bentoml.Context,
        start: date | None = None,
    ) -> TrendResponse:
        """Daily usage of each hashtag for the next `horizon` days (from `start`, default the
        day after the last day of usage the online store holds), with prediction bounds."""
        return self._call(ctx, self.predictor.forecast_trend, hashtags, horizon, start)

    def _insight(self, ctx: bentoml.Context, method, *args: Any):
        """An analytics answer; 400/404 naming the field, 503 while its table is not built."""
        ctx.response.headers[REQUEST_ID_HEADER] = (
            ctx.request.headers.get(REQUEST_ID_HEADER) or new_request_id()
        )
        try:
            return method(*args)
        except NotAnswerable as exc:
            ctx.response.status_code = exc.status
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        except NotBuilt as exc:
            return _unavailable(ctx, str(exc))

    @bentoml.api
    async def top_influencers(
        self, ctx: bentoml.Context, category: Category | None = None, n: TopN = 10
    ) -> InfluencersResponse:
        """The best-ranked accounts (PageRank on the follow graph, weighted by engagement),
        optionally of one category; computed_at says when `smap analytics run` ranked them."""
        return self._insight(ctx, self.insights.top_influencers, category, n)

    @bentoml.api
    async def user_segment(self, user_id: UserId, ctx: bentoml.Context) -> UserSegmentResponse:
        """The segment `smap segment` gave an account, with the segment's readable profile."""
        return self._insight(ctx, self.insights.user_segment, user_id)

    @bentoml.api
    async def classify_content(self, posts: ContentPosts, ctx: bentoml.Context) -> ContentResponse:
        """The content category of each post from its caption, hashtags and type, with the
        probability of every category."""
        return self._call(ctx, self.content.classify, posts)

    @bentoml.api
    async def recommend_content(
        self, user_id: UserId, ctx: bentoml.Context, n: RecommendN = 10
    ) -> RecommendResponse:
        """Fresh posts from accounts the user does not follow, in the user's interest
        categories, best predicted engagement first."""
        return self._call(ctx, self.content.recommend, user_id, n)

    def __is_ready__(self) -> bool:
        return self.predictor.is_ready()

    @bentoml.on_shutdown
    def flush_prediction_log(self) -> None:
        self.predictor.close()


Smap.add_asgi_middleware(MetadataPath)
Smap.add_asgi_middleware(BadInputIs422)
Smap.add_asgi_middleware(ApiKeyMiddleware)
