"""The smap prediction service (BentoML): one class, typed endpoints, lineage on every answer.

Run it with `smap serve` (or `bentoml serve serving.service:Smap`). The profile comes from
SMAP_PROFILE / SMAP_CONFIG like every smap command; SMAP_API_KEY, when set, is required on
every endpoint but the health probes (header `x-api-key: KEY` or `Authorization: Bearer KEY`),
and on /metrics unless `serving.metrics_open`.

Before an endpoint sees a request, the middlewares (outermost first) refuse what it must not
parse: no key (401), a body that is not JSON (415), a body over `serving.max_body_bytes`
(413, before it is read); and /docs.json is corrected to say what the service answers.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import json
import os
import re
from pathlib import Path
from typing import Any

import bentoml
from pydantic import ConfigDict
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from configs.settings import load_settings, telemetry_env
from serving.answers import BadRequest, Unavailable, request_id
from serving.client_errors import first_error, one_line_client_errors
from serving.insights import Insights, NotAnswerable, NotBuilt
from serving.schemas import (
    ChurnResponse,
    ContentPosts,
    ContentResponse,
    Drafts,
    DraftTemplate,
    EngagementResponse,
    FeatureRecords,
    FeaturesResponse,
    ForecastStart,
    ForecastTags,
    Horizon,
    InfluencersResponse,
    Metadata,
    OptionalCategory,
    OptionalDrafts,
    OptionalUserIds,
    PostingStart,
    PostingTimeResponse,
    RecommendN,
    RecommendResponse,
    ScoredTask,
    SentimentResponse,
    SentimentTexts,
    TaskName,
    TaskResponse,
    TopN,
    TrendResponse,
    UserId,
    UserIds,
    UserSegmentResponse,
    ViralityResponse,
    openapi_document,
)

one_line_client_errors()  # a 4xx is one INFO line in the log, a 5xx keeps its traceback
HEALTH_PATHS = frozenset({"/healthz", "/livez", "/readyz"})
REQUEST_ID_HEADER = "x-request-id"
DEGRADED_HEADER = "x-smap-degraded"  # the online store lost its data: why, what to run
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
JSON = b"application/json"


def _header(scope, name: bytes) -> bytes | None:
    """A request header's raw bytes (the first one), never decoded: a header is not UTF-8
    because a client says so."""
    return next((v for k, v in scope.get("headers", ()) if k.lower() == name), None)


def _refuse(status: int, error: str) -> JSONResponse:
    return JSONResponse({"error": error}, status_code=status)


def presented_keys(scope) -> list[bytes]:
    """The keys a request presents: `x-api-key: KEY`, `Authorization: Bearer KEY` (the scheme
    in any case, as HTTP says; a bare `Authorization: KEY` presents nothing)."""
    keys = []
    if (given := _header(scope, b"x-api-key")) is not None:
        keys.append(given.strip())
    if (authorization := _header(scope, b"authorization")) is not None:
        scheme, _, credentials = authorization.strip().partition(b" ")
        if scheme.lower() == b"bearer" and credentials.strip():
            keys.append(credentials.strip())
    return keys


class ApiKeyMiddleware:
    """401 for any request without the key, when SMAP_API_KEY is set (the health probes stay
    open, /metrics too when `serving.metrics_open`). Headers are compared as bytes: one that
    is not UTF-8 is a wrong key, not a crash."""

    def __init__(self, app, key: str | None = None, metrics_open: bool | None = None):
        self.app = app
        key = key if key is not None else os.environ.get("SMAP_API_KEY", "")
        self.key = key.encode()
        if metrics_open is None:
            metrics_open = bool(key) and load_settings().serving.metrics_open
        self.open_paths = HEALTH_PATHS | ({"/metrics"} if metrics_open else set())

    def authorized(self, scope) -> bool:
        return any(hmac.compare_digest(given, self.key) for given in presented_keys(scope))

    async def __call__(self, scope, receive, send):
        if not self.key or scope["type"] != "http" or scope["path"] in self.open_paths:
            return await self.app(scope, receive, send)
        if not self.authorized(scope):
            response = _refuse(
                401,
                "x-api-key: missing or wrong API key (send `x-api-key: KEY` or "
                "`Authorization: Bearer KEY`)",
            )
            return await response(scope, receive, send)
        return await self.app(scope, receive, send)


class JsonBodies:
    """415 for a body sent as anything but `application/json` (parameters such as charset
    aside; no Content-Type at all is read as JSON, as BentoML does). Multipart and pickle
    bodies never reach BentoML's parsers."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] in BODY_METHODS:
            given = _header(scope, b"content-type")
            if given is not None and given.split(b";")[0].strip().lower() != JSON:
                shown = given.decode("latin-1")[:80]
                response = _refuse(415, f"content-type: {shown!r} is not accepted; send "
                                        "application/json")  # fmt: skip
                return await response(scope, receive, send)
        return await self.app(scope, receive, send)


class BodyLimit:
    """413 for a body over `serving.max_body_bytes`: refused on its Content-Length before a
    byte is read, or as soon as the bytes streamed (chunked, or more than declared) pass the
    limit; a body within it is handed on whole. A worker never holds more than the limit."""

    def __init__(self, app, limit: int | None = None):
        self.app = app
        self.limit = limit if limit is not None else load_settings().serving.max_body_bytes

    def _too_large(self) -> JSONResponse:
        return _refuse(413, f"body: larger than {self.limit} bytes (serving.max_body_bytes)")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            return await self.app(scope, receive, send)
        declared = (_header(scope, b"content-length") or b"").strip()
        if declared.isdigit() and (len(declared) > 18 or int(declared) > self.limit):
            return await self._too_large()(scope, receive, send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return await self._too_large()(scope, receive, send)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body, handed = b"".join(chunks), False

        async def replay():
            nonlocal handed
            if handed:
                return await receive()  # after the body: the disconnect, when it comes
            handed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)


class TruthfulOpenApi:
    """GET /docs.json: BentoML's document corrected by `serving.schemas.openapi_document`
    (BentoML has no hook for an endpoint's other responses: its document is rewritten here)."""

    def __init__(self, app):
        self.app = app
        self.key_required = bool(os.environ.get("SMAP_API_KEY", ""))
        self.settings = load_settings().serving

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "GET":
            return await self.app(scope, receive, send)
        if scope["path"] == "/":
            return await self.docs_page(scope, receive, send)
        if scope["path"] != "/docs.json":
            return await self.app(scope, receive, send)
        start, body = await self.captured(scope, receive)
        if start.get("status") != 200:
            await send(start)
            return await send({"type": "http.response.body", "body": body})
        spec = openapi_document(
            json.loads(body),
            # `Smap` is the bentoml.Service its class decorator returns (mypy sees the class)
            {api.route: (api.input_spec, api.output_spec) for api in Smap.apis.values()},  # type: ignore[attr-defined]
            not_found=("/user_segment",),
            key_required=self.key_required,
            metrics_open=self.settings.metrics_open,
            max_body_bytes=self.settings.max_body_bytes,
            metadata=Metadata,
            docs_url="./guide",
        )
        return await JSONResponse(spec)(scope, receive, send)

    async def captured(self, scope, receive) -> tuple[dict, bytes]:
        """BentoML's own answer to this request, held back: its start message and body."""
        start: dict = {}
        chunks: list[bytes] = []

        async def keep(message):
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, keep)
        return start, b"".join(chunks)

    async def docs_page(self, scope, receive, send):
        """The Swagger page under smap's title, without BentoML's page tracker and GitHub corner."""
        start, body = await self.captured(scope, receive)
        if start.get("status") != 200:
            await send(start)
            return await send({"type": "http.response.body", "body": body})
        page = body.decode()
        page = page.replace("BentoML Prediction Service", "smap prediction service")
        page = re.sub(
            r"<!-- Google Tag Manager.*?<!-- End Google Tag Manager[^>]*-->", "", page, flags=re.S
        )
        # BentoML's corner link to its GitHub, and its stylesheet hiding the document's title
        page = re.sub(r'<div class="version">.*?</svg></a>\s*</div>\s*</div>', "", page, flags=re.S)
        page = page.replace(
            "</head>",
            "<style>.info .main .title { visibility: visible; }"
            " .info .main .title span { position: static; }</style></head>",
            1,
        )
        return await HTMLResponse(page)(scope, receive, send)


class BadInputIs422:
    """Bad input answers 422 (Unprocessable Content) with its JSON naming the field: BentoML
    says 400 for a body its pydantic types reject (its `error` reads "1 validation error for
    Input", the field only in `detail`), and so do the insight lookups."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start: dict | None = None
        chunks: list[bytes] = []

        async def relabel(message):
            nonlocal start
            if message["type"] == "http.response.start" and message["status"] == 400:
                start = {**message, "status": 422}
                return
            if start is None or message["type"] != "http.response.body":
                return await send(message)
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = named_field(b"".join(chunks))
            headers = [
                (k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"
            ]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        return await self.app(scope, receive, relabel)


def named_field(body: bytes) -> bytes:
    """BentoML's refusal of a body with its `error` naming the first field at fault (pydantic's
    `detail` kept); any other body as it is."""
    try:
        answer = json.loads(body)
    except ValueError:
        return body
    if not isinstance(answer, dict) or not isinstance(answer.get("detail"), list):
        return body
    return json.dumps({**answer, "error": first_error(answer["detail"])}).encode()


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

DOCS_DIR = Path(__file__).resolve().parent.parent / "docs"


async def _guide(request: Request) -> Response:
    """One of smap's docs pages (markdown, as text), linked from the service's docs page."""
    name = request.path_params["page"]
    pages = sorted(p.name for p in DOCS_DIR.glob("*.md"))
    if name not in pages:  # the caller's name never reaches the file system
        listed = ", ".join(pages) or "none here"
        return _refuse(404, f"page: no docs page {name[:100]!r} (pages: {listed})")
    page = DOCS_DIR / name
    return PlainTextResponse(page.read_text(), media_type="text/markdown; charset=utf-8")


guide_app = Starlette(routes=[Route("/{page}", _guide, methods=["GET"])])


@bentoml.service(
    name="smap",
    logging={"access": {"enabled": False}},
    traffic={"timeout": 30},
)
@bentoml.asgi_app(metadata_app, path="/metadata")
@bentoml.asgi_app(guide_app, path="/guide")
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

    @staticmethod
    def _request_id(ctx: bentoml.Context) -> str:
        """The caller's x-request-id when it is a sane one, else a fresh one; echoed back."""
        given = request_id(ctx.request.headers.get(REQUEST_ID_HEADER))
        ctx.response.headers[REQUEST_ID_HEADER] = given
        return given

    async def _call(self, ctx: bentoml.Context, method, *args: Any):
        rid = self._request_id(ctx)
        if degraded := self.predictor.degraded():
            ctx.response.headers[DEGRADED_HEADER] = degraded
        try:  # off the event loop: a hung online store never holds /healthz or other requests
            return await self.predictor.answer(method, *args, request_id=rid)
        except Unavailable as exc:
            return _unavailable(ctx, str(exc))
        except BadRequest as exc:
            ctx.response.status_code = 422
            return JSONResponse({"error": str(exc)}, status_code=422)

    @bentoml.api
    async def predict_engagement(self, drafts: Drafts, ctx: bentoml.Context) -> EngagementResponse:
        """Expected 7-day engagement rate of each draft post."""
        return await self._call(ctx, self.predictor.predict_engagement, drafts)

    @bentoml.api
    async def predict_virality(self, drafts: Drafts, ctx: bentoml.Context) -> ViralityResponse:
        """Probability that each draft lands in the top share-rate tail, and the label at the
        threshold tuned in training."""
        return await self._call(ctx, self.predictor.predict_virality, drafts)

    @bentoml.api
    async def predict_churn(self, user_ids: UserIds, ctx: bentoml.Context) -> ChurnResponse:
        """Risk that each account goes quiet for the next 28 days, and its band."""
        return await self._call(ctx, self.predictor.predict_churn, user_ids)

    @bentoml.api
    async def predict(
        self,
        task: TaskName,
        ctx: bentoml.Context,
        drafts: OptionalDrafts = None,
        user_ids: OptionalUserIds = None,
    ) -> TaskResponse:
        """Any served task by name, from drafts or user ids as its binding says: the score,
        the label at the champion's tuned threshold where it has one, and lineage."""
        return await self._call(ctx, self.predictor.predict, task, drafts, user_ids)

    @bentoml.api
    async def predict_features(
        self, task: ScoredTask, records: FeatureRecords, ctx: bentoml.Context
    ) -> FeaturesResponse:
        """Scores for finished feature vectors (by the champion's feature names, as
        `/metadata` lists them), for callers that bring their own features: no lookup."""
        return await self._call(ctx, self.predictor.predict_features, task, records)

    @bentoml.api
    async def best_posting_time(
        self, draft: DraftTemplate, ctx: bentoml.Context, start: PostingStart = None
    ) -> PostingTimeResponse:
        """Predicted engagement for every hour of the next week and the best three slots."""

        def answer(request_id: str) -> PostingTimeResponse:
            return self.predictor.best_posting_time(draft, request_id, start)

        return await self._call(ctx, answer)

    @bentoml.api
    async def forecast_trend(
        self,
        hashtags: ForecastTags,
        horizon: Horizon,
        ctx: bentoml.Context,
        start: ForecastStart = None,
    ) -> TrendResponse:
        """Daily usage of each hashtag for the next `horizon` days (from `start`, default the
        day after the last day of usage the online store holds), with prediction bounds. The
        last day asked may lie at most the champion's longest trained horizon (30 days) after
        that day."""
        return await self._call(ctx, self.predictor.forecast_trend, hashtags, horizon, start)

    async def _insight(self, ctx: bentoml.Context, method, *args: Any):
        """An analytics answer; 422/404 naming the field, 503 while its table is not built."""
        self._request_id(ctx)
        try:  # off the event loop (not on the answers' threads): the warehouse may be down
            return await asyncio.to_thread(method, *args)
        except NotAnswerable as exc:
            ctx.response.status_code = exc.status
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        except NotBuilt as exc:
            return _unavailable(ctx, str(exc))

    @bentoml.api
    async def top_influencers(
        self, ctx: bentoml.Context, category: OptionalCategory = None, n: TopN = 10
    ) -> InfluencersResponse:
        """The best-ranked accounts (PageRank on the follow graph, weighted by engagement),
        optionally of one category; computed_at says when `smap analytics run` ranked them."""
        return await self._insight(ctx, self.insights.top_influencers, category, n)

    @bentoml.api
    async def user_segment(self, user_id: UserId, ctx: bentoml.Context) -> UserSegmentResponse:
        """The segment `smap segment` gave an account, with the segment's readable profile."""
        return await self._insight(ctx, self.insights.user_segment, user_id)

    @bentoml.api
    async def classify_content(self, posts: ContentPosts, ctx: bentoml.Context) -> ContentResponse:
        """The content category of each post from its caption, hashtags and type, with the
        probability of every category."""
        return await self._call(ctx, self.content.classify, posts)

    @bentoml.api
    async def analyze_sentiment(
        self, texts: SentimentTexts, ctx: bentoml.Context
    ) -> SentimentResponse:
        """Negative, neutral or positive for each comment text, with a score per class."""
        from serving.sentiment import analyze  # MLflow: not in the supervisor

        return await self._call(ctx, analyze, self.predictor, texts)

    @bentoml.api
    async def recommend_content(
        self, user_id: UserId, ctx: bentoml.Context, n: RecommendN = 10
    ) -> RecommendResponse:
        """Fresh posts from accounts the user does not follow, in the user's interest
        categories, best predicted engagement first."""
        return await self._call(ctx, self.content.recommend, user_id, n)

    def __is_ready__(self) -> bool:
        return self.predictor.is_ready()

    @bentoml.on_shutdown
    def flush_prediction_log(self) -> None:
        self.predictor.close()


def forbid_unknown_keys(service) -> None:
    """Every endpoint refuses a top-level key it does not take (422 naming it), as the bodies
    inside do: a misspelt optional field (`strat` for `start`) is not silently left at its
    default. BentoML builds each endpoint's input model from its signature, extra keys
    ignored; the models are told otherwise here, before any request or document."""
    for api in service.apis.values():
        spec = api.input_spec
        spec.model_config = ConfigDict(**{**spec.model_config, "extra": "forbid"})
        spec.model_rebuild(force=True)


forbid_unknown_keys(Smap)
# outermost first: a request without the key is refused before its body is looked at
# (mypy does not apply class decorators: `Smap` is the bentoml.Service that wraps the class)
Smap.add_asgi_middleware(MetadataPath)  # type: ignore[attr-defined]
Smap.add_asgi_middleware(BadInputIs422)  # type: ignore[attr-defined]
Smap.add_asgi_middleware(ApiKeyMiddleware)  # type: ignore[attr-defined]
Smap.add_asgi_middleware(JsonBodies)  # type: ignore[attr-defined]
Smap.add_asgi_middleware(BodyLimit)  # type: ignore[attr-defined]
Smap.add_asgi_middleware(TruthfulOpenApi)  # type: ignore[attr-defined]
