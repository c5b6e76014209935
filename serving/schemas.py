"""Request and response bodies of the prediction API: bounds live here, so bad input is
rejected before any lookup, with the offending field named.

Every id fits the online store's int64 keys, every time and date lies in a documented range
(EARLIEST up to LATEST), every number is finite and bounded, and numbers, booleans and ids are
strict: `"1"` or `true` is not an id, `1.5` is not a count, `"yes"` is not a boolean (a whole
number written `3.0` is the integer 3, as JSON Schema's `integer` says). An optional field is
left out to take its default; `null` is not a value of a field the schema does not mark
nullable."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from annotated_types import Ge, Le
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    field_validator,
)

from ingestion.simulator import POST_TYPES
from serving.rules import POSTING_RESOLUTION

MAX_BATCH = 256  # drafts or users per request
MAX_HASHTAGS = 30
MAX_CAPTION = 2200  # the longest caption the big platforms accept
INT64_MAX = 2**63 - 1  # the online store's entity keys are int64
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # times and dates a request may name
LATEST = datetime(2100, 1, 1, tzinfo=UTC)  # (excluded)
TIME_RANGE = "from 2000-01-01T00:00:00Z up to (not including) 2100-01-01T00:00:00Z"
DAY_RANGE = "from 2000-01-01 up to (not including) 2100-01-01"
MAX_FEATURE_VALUE = 1e15  # |number| in a finished feature vector
PostType = Literal[POST_TYPES]  # type: ignore[valid-type]
_WORD = re.compile(r"#?\w+")  # what feature_repo.drafts.parse_hashtags reads as one tag


def _one_tag(value: str) -> str:
    """The pattern below is checked by pydantic's regex engine; a tag must also be one tag to
    Python's `re`, which parses it (their `\\w` differ on some Unicode marks)."""
    if not _WORD.fullmatch(value):
        raise ValueError("a hashtag: letters, digits and underscores, optionally after '#'")
    return value


Tag = Annotated[
    str, Field(min_length=1, max_length=100, pattern=r"^#?\w+$"), AfterValidator(_one_tag)
]


def _whole(value: Any) -> Any:
    """JSON Schema's `integer` is any number without a fraction: 3.0 is the integer 3. Text
    and booleans stay what they are, and strict validation refuses them."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _whole_items(value: Any) -> Any:
    return [_whole(v) for v in value] if isinstance(value, list) else value


def whole(ge: int, le: int) -> Any:
    """A strict integer in [ge, le]: a number without a fraction, never text or a boolean."""
    return Annotated[int, Strict(), Ge(ge), Le(le), BeforeValidator(_whole)]


# whole(0, INT64_MAX) spelled out: mypy reads no type from a call, and Id annotates fields here
Id = Annotated[int, Strict(), Ge(0), Le(INT64_MAX), BeforeValidator(_whole)]
# in a list, the whole numbers are taken at the list: BentoML rebuilds a list's item type
# from its parts, and an item's own validator would leave its bounds out of the schema
ListedId = Annotated[int, Strict(), Ge(0), Le(INT64_MAX)]
Flag = Annotated[bool, Strict()]
# the platform a draft is written for (configs/platforms.py); left out: `platforms.default`
Platform = Annotated[
    str | None,
    Field(
        None,
        min_length=1,
        max_length=40,
        pattern=r"^[A-Za-z][A-Za-z0-9_]*$",
        description="The platform the draft is for (instagram, tiktok, x, facebook, youtube, "
        "linkedin); left out: the profile's `platforms.default` (instagram). A platform the "
        "engagement model never saw adds no platform effect.",
    ),
    AfterValidator(lambda value: value.lower() if value else value),
]


def _not_a_number(value: Any) -> Any:
    """Times and dates are ISO 8601 text in JSON: a number (or boolean) is not read as a
    Unix timestamp."""
    if isinstance(value, int | float):
        raise ValueError("an ISO 8601 string, not a number")
    return value


def _in_time_range(value: datetime) -> datetime:
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    if not EARLIEST <= value < LATEST:
        raise ValueError(f"a time {TIME_RANGE}")
    return value.astimezone(UTC)


def _in_day_range(value: date) -> date:
    if not EARLIEST.date() <= value < LATEST.date():
        raise ValueError(f"a date {DAY_RANGE}")
    return value


Moment = Annotated[
    datetime,
    BeforeValidator(_not_a_number),
    AfterValidator(_in_time_range),
    Field(description=f"ISO 8601 date-time {TIME_RANGE}; without an offset it is UTC."),
]
Day = Annotated[
    date,
    BeforeValidator(_not_a_number),
    AfterValidator(_in_day_range),
    Field(description=f"ISO 8601 date {DAY_RANGE}."),
]


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def optional(description: str) -> Any:
    """An optional request field: left out, it takes its default (None); `null` is refused,
    as the schema says (no `default: null` shown next to a type that has no null)."""
    return Field(description=f"{description} (optional: leave it out for the default)",
                 json_schema_extra=_no_default)  # fmt: skip


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Draft(_Body):
    """A post that is not published yet."""

    user_id: Id = Field(description="The author.")
    post_type: PostType
    category: str = Field(min_length=1, max_length=40, pattern=r"^[\w -]+$")
    hashtags: list[Tag] = Field(default_factory=list, max_length=MAX_HASHTAGS)
    caption: str = Field("", max_length=MAX_CAPTION)
    planned_at: Moment = Field(
        description=f"When it would be published: ISO 8601 {TIME_RANGE} (naive means UTC)."
    )
    is_paid: Flag = False
    platform: Platform = None

    @field_validator("category")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.strip().lower()


class DraftTemplate(_Body):
    """A draft whose publishing time is what we are looking for."""

    user_id: Id
    post_type: PostType
    category: str = Field(min_length=1, max_length=40, pattern=r"^[\w -]+$")
    hashtags: list[Tag] = Field(default_factory=list, max_length=MAX_HASHTAGS)
    caption: str = Field("", max_length=MAX_CAPTION)
    is_paid: Flag = False
    platform: Platform = None

    @field_validator("category")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.strip().lower()


Drafts = Annotated[list[Draft], Field(min_length=1, max_length=MAX_BATCH)]
UserIds = Annotated[
    list[ListedId], BeforeValidator(_whole_items), Field(min_length=1, max_length=MAX_BATCH)
]
PostingStart = Annotated[Moment, optional(f"The first hour looked at {TIME_RANGE}; default now")]


ScoredTask = Literal["engagement", "virality", "churn"]
FeatureName = Annotated[str, Field(min_length=1, max_length=100)]
FeatureNumber = Annotated[
    float,
    Strict(),
    Field(allow_inf_nan=False, ge=-MAX_FEATURE_VALUE, le=MAX_FEATURE_VALUE),
]
FeatureText = Annotated[str, Field(max_length=200)]
# a finished feature vector, by the model's own feature names (numbers, category text, null)
FeatureRecord = Annotated[
    dict[FeatureName, FeatureNumber | FeatureText | None],
    Field(
        max_length=500,
        description="Feature name -> a finite number within ±1e15, category text, or null "
        "(missing).",
    ),
]
FeatureRecords = Annotated[list[FeatureRecord], Field(min_length=1, max_length=MAX_BATCH)]


class Lineage(_Body):
    """Which model answered, trained on what, for which request."""

    model: str
    version: int
    run_id: str
    feature_service: str
    request_id: str
    arm: Literal["champion", "challenger"] = Field(
        "champion",
        description="Which arm of a model experiment answered (`smap experiment`): the "
        "champion, or the challenger a split experiment routes this author or user to.",
    )


class Interval(_Body):
    """The range the true value (an engagement rate) falls in with probability `level`: a
    split-conformal interval, its width learnt from held-out rows in training
    (`docs/training.md`)."""

    low: float
    high: float
    level: float


INTERVAL_DOC = "Null when the champion carries no interval (trained before intervals)."
# the answer to DRAFT_EXAMPLE on the small preset (docs/serving.md)
INTERVAL_EXAMPLE = {"low": 0.0264, "high": 0.1451, "level": 0.9}


class EngagementPrediction(_Body):
    user_id: int
    engagement_rate: float
    interval: Interval | None = Field(None, description=INTERVAL_DOC, examples=[INTERVAL_EXAMPLE])
    missing_features: list[str]


class EngagementResponse(_Body):
    predictions: list[EngagementPrediction]
    lineage: Lineage


TaskName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[a-z][a-z0-9_]*$",
        description="A registered task with a serving binding (`/metadata` lists them).",
        examples=["engagement", "churn"],
    ),
]


class TaskPrediction(_Body):
    """One answer of a task served by `POST /predict`: its score, and where the champion has a
    tuned threshold (a probability), the label at that threshold; where it has a prediction
    interval (a regression), its bounds."""

    user_id: int
    value: float
    label: bool | None = None
    interval: Interval | None = None
    missing_features: list[str]


class TaskResponse(_Body):
    task: str
    predictions: list[TaskPrediction]
    lineage: Lineage


class ViralityPrediction(_Body):
    user_id: int
    probability: float
    viral: bool
    threshold: float
    missing_features: list[str]


class ViralityResponse(_Body):
    predictions: list[ViralityPrediction]
    lineage: Lineage


class ChurnPrediction(_Body):
    user_id: int
    risk: float
    band: Literal["low", "medium", "high"]
    missing_features: list[str]


class ChurnResponse(_Body):
    predictions: list[ChurnPrediction]
    lineage: Lineage


class FeaturesResponse(_Body):
    """Scores in the task's units (engagement rate, virality probability, churn risk), in
    the order of the records."""

    task: str
    predictions: list[float]
    lineage: Lineage


class PostingSlot(_Body):
    planned_at: datetime
    engagement_rate: float
    interval: Interval | None = Field(None, description=INTERVAL_DOC, examples=[INTERVAL_EXAMPLE])
    # within `resolution` of the best slot's rate: a tie, not a ranking
    tied_with_best: bool = False


class PostingTimeResponse(_Body):
    best: list[PostingSlot]
    slots: list[PostingSlot]
    missing_features: list[str]
    lineage: Lineage
    resolution: float = POSTING_RESOLUTION  # rates closer than this are ties
    tied_slots: int = 1  # slots of the week tied with the best (1: the best is clear)


class TaskStatus(_Body):
    task: str
    serving: bool
    reason: str = ""
    model: str | None = None
    version: int | None = None
    alias: str = "champion"
    run_id: str | None = None
    feature_service: str | None = None
    threshold: float | None = None
    training_window: dict[str, str] = Field(default_factory=dict)
    features: list[str] = Field(default_factory=list)  # what `/predict_features` takes


class RunningExperiment(_Body):
    """A model experiment this worker follows (`smap experiment start`)."""

    id: str
    task: str
    mode: str
    champion_version: int
    challenger_version: int
    split: float  # share of entities the challenger answers (0 in shadow mode)
    started_at: str
    shadow_scored: int = 0  # this worker's shadow scorings since it started (all tasks)
    shadow_skipped: int = 0
    shadow_failed: int = 0


class Metadata(_Body):
    profile: str
    online_store: str
    online_store_ok: bool
    online_store_reason: str = ""
    tasks: list[TaskStatus]
    predictions_logged: int
    predictions_dropped: int
    experiments: list[RunningExperiment] = Field(default_factory=list)


MAX_TOP = 100  # influencers per answer
Category = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, to_lower=True, min_length=1, max_length=40, pattern=r"^[\w -]+$"
    ),
]
TopN = whole(1, MAX_TOP)
UserId = Id
OptionalCategory = Annotated[Category, optional("One category of the ranked accounts")]


class Influencer(_Body):
    rank: int  # over every account
    category_rank: int  # within the account's main category
    user_id: int
    username: str
    account_type: str
    category: str  # the category the account posts most in
    followers: int
    following: int
    engagement_received: int
    pagerank: float


class InfluencersResponse(_Body):
    """No model answers this: `computed_at` says when `smap analytics run` ranked them."""

    influencers: list[Influencer]
    category: str | None = None
    computed_at: datetime


class UserSegmentResponse(_Body):
    """`computed_at`: when `smap segment` assigned the segment; `description` is empty while
    the profiles belong to another model version than the assignment."""

    user_id: int
    segment: int
    name: str
    description: str
    model_version: int
    computed_at: datetime


class ContentPost(_Body):
    """A post (draft or published) to classify: its text and type."""

    caption: str = Field("", max_length=MAX_CAPTION)
    hashtags: list[Tag] = Field(default_factory=list, max_length=MAX_HASHTAGS)
    post_type: PostType


ContentPosts = Annotated[list[ContentPost], Field(min_length=1, max_length=MAX_BATCH)]


class ContentPrediction(_Body):
    category: str
    probabilities: dict[str, float]  # every category the champion knows; they sum to 1


class ContentResponse(_Body):
    predictions: list[ContentPrediction]
    lineage: Lineage


MAX_RECOMMENDED = 100
RecommendN = whole(1, MAX_RECOMMENDED)


class RecommendedPost(_Body):
    post_id: int
    author_id: int
    category: str
    post_type: str
    published_at: datetime
    predicted_engagement: float | None = None  # the engagement rule's score
    score: float | None = None  # the recommendation champion's ranking score


class RecommendResponse(_Body):
    """Fresh posts for a user, best first. With a recommendation champion: every post of the
    last 3 days not by the user, ranked by the champion (`score`; `interests` null). Without
    one: posts from accounts the user does not follow, in the user's interest categories
    (`interests` null: no history, every category), best predicted engagement first.
    `scored_by` names the model or the proxy, `lineage` is the model's."""

    user_id: int
    interests: list[str] | None
    at: datetime
    posts: list[RecommendedPost]
    scored_by: str
    lineage: Lineage | None = None


def utc_now() -> datetime:
    return datetime.now(UTC)


MAX_FORECAST_TAGS = 50
MAX_HORIZON = 30  # days ahead a trend forecast reaches
ForecastTags = Annotated[list[Tag], Field(min_length=1, max_length=MAX_FORECAST_TAGS)]
Horizon = whole(1, MAX_HORIZON)
ForecastStart = Annotated[
    Day,
    optional(
        f"The first day forecast, {DAY_RANGE}; default the day after the last day of usage "
        "the online store holds. The last day asked (start + horizon - 1) may lie at most "
        "the trend champion's longest trained horizon (30 days) after that day"
    ),
]


class DayForecast(_Body):
    """Expected usage of a hashtag on one day, with the prediction interval's bounds (null
    when the model carries no interval)."""

    day: date
    horizon: int  # days after the last day of usage the forecast starts from
    usage: float
    lower: float | None
    upper: float | None


class HashtagForecast(_Body):
    hashtag: str  # lower case, without '#'
    history_until: date | None  # the last day of usage the online store holds (null: none)
    days: list[DayForecast]
    missing_features: list[str]


class TrendResponse(_Body):
    """`interval_level`: the central coverage the bounds were calibrated for (on held-out
    days in training)."""

    forecasts: list[HashtagForecast]
    interval_level: float | None
    lineage: Lineage


OptionalDrafts = Annotated[Drafts, optional("Drafts, for a task answered from drafts")]
OptionalUserIds = Annotated[UserIds, optional("User ids, for a task answered from user ids")]


# -- the OpenAPI document ------------------------------------------------------------------------
# BentoML writes /docs.json from the endpoints' signatures, but lists 400/404/500 for every
# endpoint whatever it answers, flattens a nullable top-level field into a non-null one and
# calls the document OpenAPI 3.0 while pydantic writes JSON Schema 2020-12 (OpenAPI 3.1's).
# `openapi_document` corrects BentoML's document; the service applies it to /docs.json.

REF = "#/components/schemas/{model}"
ERROR = {
    "title": "Error",
    "type": "object",
    "description": "Every refusal: `error` says why, naming the field (or what to run).",
    "required": ["error"],
    "properties": {
        "error": {"type": "string"},
        "detail": {
            "type": "array",
            "items": {"type": "object"},
            "description": "A body the schema refuses: one entry per problem, `loc` naming "
            "the field.",
        },
    },
}
REFUSALS = {
    401: "SMAP_API_KEY is set and the request carries no valid key (`x-api-key: KEY` or "
    "`Authorization: Bearer KEY`).",
    404: "Nothing is known about the id asked for.",
    413: "The body is larger than `serving.max_body_bytes` ({max_body_bytes} bytes).",
    415: "The body is not `application/json`.",
    422: "The input breaks the schema or cannot be answered; `error` (and `detail`) name the "
    "field.",
    500: "An unexpected error (a bug: the server log has it).",
    503: "The answer cannot be given now: no champion for the task, the online store or the "
    "warehouse unreachable, a table not built yet; `error` says which.",
}
API_REFUSALS = (401, 413, 415, 422, 500, 503)
DRAFT_EXAMPLE = {
    "user_id": 1,
    "post_type": "video",
    "category": "food",
    "hashtags": ["#food_1"],
    "caption": "our new pasta",
    "planned_at": "2026-06-01T18:00:00Z",
    "is_paid": False,
}
TEMPLATE_EXAMPLE = {k: v for k, v in DRAFT_EXAMPLE.items() if k != "planned_at"}
# a request body per endpoint, shown in the document (`/predict_features` reads the
# champion's own feature names, which `/metadata` lists: no fixed example)
REQUEST_EXAMPLES = {
    "/predict_engagement": {"drafts": [DRAFT_EXAMPLE]},
    "/predict_virality": {"drafts": [DRAFT_EXAMPLE]},
    "/predict": {"task": "engagement", "drafts": [DRAFT_EXAMPLE]},
    "/predict_churn": {"user_ids": [1, 2]},
    "/best_posting_time": {"draft": TEMPLATE_EXAMPLE},
    "/forecast_trend": {"hashtags": ["#food_1"], "horizon": 7},
    "/top_influencers": {"category": "food", "n": 5},
    "/user_segment": {"user_id": 1},
    "/classify_content": {
        "posts": [{"caption": "pasta with sushi", "hashtags": ["#food_1"], "post_type": "image"}]
    },
    "/recommend_content": {"user_id": 1, "n": 5},
    "/analyze_sentiment": {"texts": ["so love this 😍", "not good, boring"]},
}
# where the service's docs page links to smap's docs: the service serves them under /guide
DOCS_URL = "./guide"
REQUEST_ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
REQUEST_ID_DOC = {
    "description": "The request's id: the caller's `x-request-id` when it matches the pattern, "
    "else a fresh one; also `lineage.request_id`.",
    "required": True,
    "schema": {"type": "string", "pattern": REQUEST_ID_PATTERN},
}


def _json(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def _refusals(statuses, max_body_bytes: int) -> dict[str, dict]:
    return {
        str(status): {
            "description": REFUSALS[status].format(max_body_bytes=max_body_bytes),
            "content": _json({"$ref": REF.format(model="Error")}),
        }
        for status in sorted(statuses)
    }


def _schema(model: type[BaseModel], mode: str, components: dict) -> dict:
    """The model's JSON Schema as pydantic writes it (nullable fields kept), its nested models
    added to the document's components."""
    schema = model.model_json_schema(ref_template=REF, mode=mode)  # type: ignore[arg-type]
    for name, nested in schema.pop("$defs", {}).items():
        components.setdefault(name, nested)
    schema.pop("root_input", None)  # BentoML's marker, not JSON Schema
    return schema


def service_info(spec: dict, key_required: bool, docs_url: str) -> dict:
    """The document's `info`: smap's title, version and a description of what each endpoint
    answers and how to authenticate, in place of BentoML's boilerplate."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("smap")
    except PackageNotFoundError:
        release = "dev"
    rows = []
    for route, methods in sorted(spec["paths"].items()):
        post = methods.get("post")
        if post:
            summary = " ".join((post.get("description") or "").split()).split(". ")[0]
            rows.append(f"| `POST {route}` | {summary.rstrip('.')} |")
    auth = (
        "**This service requires a key**: send `x-api-key: KEY` or `Authorization: Bearer "
        "KEY` (the key is `SMAP_API_KEY` where the service runs); click **Authorize** to try "
        "the endpoints here."
        if key_required
        else "No key is required now; when the service is started with `SMAP_API_KEY` set, "
        "every endpoint but the health probes needs `x-api-key: KEY` or `Authorization: "
        "Bearer KEY`."
    )
    description = "\n".join(
        [
            "Predictions and insights for social-media posts and accounts, answered by the "
            "`champion` of each task in smap's MLflow registry, with online features from "
            "Feast. Every answer carries its lineage (model, version, run id, feature "
            "service, request id) and is logged for drift monitoring.",
            "",
            "| endpoint | answers |",
            "|---|---|",
            *rows,
            "| `GET /metadata` | the champion of each task: version, run, feature service, "
            "training window, features |",
            "",
            f"**Authentication.** {auth}",
            "",
            "**Trying it.** Every endpoint but `/predict_features` (whose fields are the "
            "champion's own features, listed by `/metadata`) has an example body that the "
            "demo's data answers: click *Try it out*, then *Execute*. Bad input is a 422 whose "
            "`error` names the field; a task without a champion is a 503 saying what to run.",
            "",
            f"**Docs**: [serving]({docs_url}/serving.md) (endpoints, ties, errors), "
            f"[training]({docs_url}/training.md) (tasks, the champion gate), "
            f"[monitoring]({docs_url}/monitoring.md), "
            f"[architecture]({docs_url}/architecture.md).",
        ]
    )
    return {"title": "smap prediction service", "version": release, "description": description}


def openapi_document(
    spec: dict,
    bodies: dict[str, tuple[type[BaseModel], type[BaseModel]]],
    *,
    not_found: tuple[str, ...] = (),
    key_required: bool = False,
    metrics_open: bool = False,
    max_body_bytes: int,
    metadata: type[BaseModel] | None = None,
    docs_url: str = DOCS_URL,
) -> dict:
    """BentoML's document told the truth: per endpoint (`bodies`: route -> input and output
    models) its request and answer as pydantic validates and writes them, every status it can
    answer with the `Error` body, the `x-request-id` header; the probes' statuses; the API
    key's schemes when one is required."""
    spec = {**spec, "openapi": "3.1.0", "paths": dict(spec["paths"])}
    spec["info"] = service_info(spec, key_required, docs_url)
    spec["tags"] = [
        {
            "name": "Service APIs",
            "description": "smap's answers (the table above says what each is).",
        },
        {"name": "Infrastructure", "description": "Health probes and Prometheus metrics."},
    ]
    components = dict(spec.get("components", {}).get("schemas", {}))
    for bentoml_error in ("InvalidArgument", "NotFound", "InternalServerError"):
        components.pop(bentoml_error, None)
    components["Error"] = ERROR
    for route, (given, answered) in bodies.items():
        operation = dict(spec["paths"][route]["post"])
        request = _schema(given, "validation", components)
        content = _json(request)
        if route in REQUEST_EXAMPLES:
            content["application/json"]["example"] = REQUEST_EXAMPLES[route]
        operation["requestBody"] = {"required": bool(request.get("required")), "content": content}
        statuses = API_REFUSALS + ((404,) if route in not_found else ())
        operation["responses"] = {
            "200": {
                "description": "Successful Response",
                "headers": {"x-request-id": REQUEST_ID_DOC},
                "content": _json(_schema(answered, "serialization", components)),
            },
            **_refusals(statuses, max_body_bytes),
        }
        spec["paths"][route] = {**spec["paths"][route], "post": operation}
    probes = {"/readyz": (503,), "/metrics": () if metrics_open else (401,)}
    for route, statuses in probes.items():
        if route in spec["paths"]:
            operation = dict(spec["paths"][route]["get"])
            responses = {**operation["responses"], **_refusals(statuses, max_body_bytes)}
            if route == "/readyz":
                responses["503"] = {"description": "Not ready: no champion loaded, or the "
                                    "online store does not answer."}  # fmt: skip
            operation["responses"] = responses
            spec["paths"][route] = {**spec["paths"][route], "get": operation}
    if metadata is not None:
        spec["paths"]["/metadata"] = {
            "get": {
                "tags": ["Service APIs"],
                "operationId": "smap__metadata",
                "description": "Per task: the champion's version, alias, run id, feature "
                "service, training window and features; the online store and the log.",
                "responses": {
                    "200": {
                        "description": "Successful Response",
                        "content": _json(_schema(metadata, "serialization", components)),
                    },
                    **_refusals((401,), max_body_bytes),
                },
            }
        }
    spec["components"] = {**spec.get("components", {}), "schemas": components}
    if key_required:
        spec["components"]["securitySchemes"] = {
            "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            "bearer": {"type": "http", "scheme": "bearer"},
        }
        spec["security"] = [{"apiKey": []}, {"bearer": []}]
        open_probes = {"/healthz", "/livez", "/readyz"} | ({"/metrics"} if metrics_open else set())
        for route in open_probes & set(spec["paths"]):
            spec["paths"][route] = {
                method: {**operation, "security": []}
                for method, operation in spec["paths"][route].items()
            }
    return spec


MAX_COMMENT = 2200  # characters of one comment text


CommentText = Annotated[str, Field(max_length=MAX_COMMENT)]
# comment texts to read, in order (an example: ["so love this 😍", "not good, boring"])
SentimentTexts = Annotated[list[CommentText], Field(min_length=1, max_length=MAX_BATCH)]


class SentimentPrediction(_Body):
    sentiment: str  # negative | neutral | positive
    # a score per class: VADER's neg / neu / pos shares, or a trained model's probabilities
    scores: dict[str, float]


class SentimentResponse(_Body):
    predictions: list[SentimentPrediction]
    lineage: Lineage
