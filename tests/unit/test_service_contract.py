"""The service's contract without a server (issue 17): request bounds and strictness, request
ids, the API key's headers, bodies that are not JSON or too large, forecasts past the trained
horizon, and the corrected OpenAPI document."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from serving.answers import request_id
from serving.features import EPOCH, BeyondHorizon, ForecastPlan, StartPassed
from serving.schemas import (
    INT64_MAX,
    Day,
    Draft,
    FeatureRecords,
    Horizon,
    Tag,
    UserIds,
    openapi_document,
)
from serving.service import ApiKeyMiddleware, BodyLimit, JsonBodies, Smap, named_field

DRAFT = {
    "user_id": 3,
    "post_type": "video",
    "category": "food",
    "planned_at": "2026-03-02T10:30:00Z",
}


def _refused(adapter: TypeAdapter, body: str) -> bool:
    try:
        adapter.validate_json(body)
    except ValidationError:
        return True
    return False


def test_ids_are_strict_int64():
    drafts = TypeAdapter(list[Draft])
    for user_id in ('"2"', "true", '"x"', "1.5", str(2**63), "-1", "null"):
        assert _refused(drafts, f'[{json.dumps(DRAFT)[:-1]}, "user_id": {user_id}}}]'), user_id
    largest = drafts.validate_json(json.dumps([{**DRAFT, "user_id": INT64_MAX}]))
    assert largest[0].user_id == INT64_MAX
    users = TypeAdapter(UserIds)
    assert users.validate_json("[1, 2.0]") == [1, 2]  # JSON Schema's integer
    assert _refused(users, "[true]") and _refused(users, '["1"]') and _refused(users, "[1.5]")
    assert _refused(TypeAdapter(Horizon), '"7"') and _refused(TypeAdapter(Horizon), "31")


def test_booleans_are_strict_and_times_are_text_in_range():
    drafts = TypeAdapter(list[Draft])
    for is_paid in ('"yes"', "1", '"true"'):
        assert _refused(drafts, json.dumps([{**DRAFT, "is_paid": 0}]).replace("0", is_paid))
    for planned_at in (
        '"0001-01-01T00:00:00+14:00"',
        '"9999-12-31T23:30:00Z"',
        '"1999-12-31T23:59:59Z"',
        '"2100-01-01T00:00:00Z"',
        "1780000000",
        "null",
    ):
        body = json.dumps([DRAFT]).replace('"2026-03-02T10:30:00Z"', planned_at)
        assert _refused(drafts, body), planned_at
    naive = drafts.validate_json(json.dumps([{**DRAFT, "planned_at": "2099-12-31T23:00:00"}]))
    assert naive[0].planned_at == datetime(2099, 12, 31, 23, tzinfo=UTC)
    offset = drafts.validate_json(json.dumps([{**DRAFT, "planned_at": "2000-01-01T09:00+09:00"}]))
    assert offset[0].planned_at == datetime(2000, 1, 1, tzinfo=UTC)
    days = TypeAdapter(Day)
    assert days.validate_json('"2099-12-31"') == date(2099, 12, 31)
    for day in ('"9999-12-31"', '"1970-01-01"', "20000", "null"):
        assert _refused(days, day), day


def test_feature_values_are_finite_and_bounded():
    records = TypeAdapter(FeatureRecords)
    for value in ("Infinity", "-Infinity", "NaN", "1e308", "1e16", "true"):
        assert _refused(records, f'[{{"followers": {value}}}]'), value
    kept = records.validate_json('[{"followers": 1e15, "content_type": "video", "rate": null}]')
    assert kept == [{"followers": 1e15, "content_type": "video", "rate": None}]


def test_a_tag_is_one_tag_to_the_parser_too():
    tags = TypeAdapter(Tag)
    assert tags.validate_python("#Food_1") == "#Food_1"
    assert tags.validate_python("#café") == "#café"
    with pytest.raises(ValidationError):
        tags.validate_python("#\u0301")  # a combining mark: a word character to one regex only


def test_request_ids_are_kept_only_when_short_and_plain():
    assert request_id("trace-1.A_b") == "trace-1.A_b"
    assert request_id("x" * 64) == "x" * 64
    for given in (None, "", "x" * 65, "x" * 60_000, "a b", "é", "a\nb", "a/b"):
        fresh = request_id(given)
        assert fresh != given and len(fresh) == 32 and fresh.isalnum()


# -- middlewares ----------------------------------------------------------------------------------
async def _echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"bytes": len(body)})


def _app() -> Starlette:
    return Starlette(
        routes=[
            Route("/healthz", lambda r: PlainTextResponse("ok")),
            Route("/metrics", lambda r: PlainTextResponse("# metrics")),
            Route("/predict", _echo, methods=["POST"]),
        ]
    )


def test_the_key_is_bearer_in_any_case_or_x_api_key_and_headers_are_bytes():
    client = TestClient(ApiKeyMiddleware(_app(), key="s3cret", metrics_open=False))
    assert client.get("/healthz").status_code == 200
    for headers, status in [
        ({"x-api-key": "s3cret"}, 200),
        ({"authorization": "Bearer s3cret"}, 200),
        ({"authorization": "bearer s3cret"}, 200),
        ({"authorization": "BEARER   s3cret  "}, 200),
        ({"authorization": "s3cret"}, 401),  # no scheme
        ({"authorization": "Basic s3cret"}, 401),
        ({"authorization": "Bearer"}, 401),
        ({"x-api-key": b"\xff\xfe"}, 401),
        ({"authorization": b"Bearer \xff"}, 401),
        ({"x-api-key": "s3cret", "x-other": b"\xff\xfe"}, 200),
        ({}, 401),
    ]:
        answer = client.post("/predict", headers=headers)
        assert answer.status_code == status, headers
        if status == 401:
            assert "x-api-key" in answer.json()["error"]


def test_metrics_need_the_key_unless_opened():
    closed = TestClient(ApiKeyMiddleware(_app(), key="s3cret", metrics_open=False))
    assert closed.get("/metrics").status_code == 401
    assert closed.get("/metrics", headers={"x-api-key": "s3cret"}).status_code == 200
    opened = TestClient(ApiKeyMiddleware(_app(), key="s3cret", metrics_open=True))
    assert opened.get("/metrics").status_code == 200
    assert opened.post("/predict").status_code == 401
    no_key = TestClient(ApiKeyMiddleware(_app(), key="", metrics_open=False))
    assert no_key.get("/metrics").status_code == 200  # no key set: nothing is closed


def test_bodies_that_are_not_json_are_415():
    client = TestClient(JsonBodies(_app()))
    for kind in (
        "multipart/form-data",
        "multipart/form-data; boundary=x",
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/vnd.bentoml+pickle",
        "",
    ):
        answer = client.post("/predict", content=b"{}", headers={"content-type": kind})
        assert answer.status_code == 415, kind
        assert "application/json" in answer.json()["error"]
    for kind in ("application/json", "Application/JSON; charset=utf-8"):
        assert client.post("/predict", content=b"{}", headers={"content-type": kind}).json() == {
            "bytes": 2
        }
    assert client.post("/predict", content=b"{}").status_code == 200  # no type: read as JSON
    assert client.get("/healthz", headers={"content-type": "text/plain"}).status_code == 200


def _raw_post(app, chunks: list[bytes], declared: int | str | None = None):
    """Call `app` with a body pulled chunk by chunk; returns (status, body, chunks pulled)."""
    pulled, sent = 0, []
    headers = [(b"content-type", b"application/json")]
    if declared is not None:
        headers.append((b"content-length", str(declared).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/predict",
        "raw_path": b"/predict",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("c", 1),
        "server": ("s", 80),
    }

    async def receive():
        nonlocal pulled
        if pulled == len(chunks):
            return {"type": "http.disconnect"}
        pulled += 1
        return {
            "type": "http.request",
            "body": chunks[pulled - 1],
            "more_body": pulled < len(chunks),
        }

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body), pulled


def test_bodies_over_the_limit_are_413_before_they_are_read():
    app = BodyLimit(_app(), limit=1_000)
    status, body, pulled = _raw_post(app, [b"x" * 100] * 1_000, declared=100_000)
    assert (status, pulled) == (413, 0) and "max_body_bytes" in body["error"]
    status, body, pulled = _raw_post(app, [b"x" * 100] * 1_000)  # no length: counted
    assert (status, pulled) == (413, 11)
    status, body, pulled = _raw_post(app, [b"x" * 100] * 1_000, declared=500)  # a lying length
    assert (status, pulled) == (413, 11)
    status, body, pulled = _raw_post(app, [b"x" * 100] * 10)  # within: handed on whole
    assert (status, body, pulled) == (200, {"bytes": 1_000}, 10)
    status, _body, pulled = _raw_post(app, [b"x"], declared="9" * 5000)  # an absurd length
    assert (status, pulled) == (413, 0)


# -- forecasts ------------------------------------------------------------------------------------
def test_a_forecast_reaches_at_most_the_longest_trained_horizon():
    last = date(2026, 6, 1)
    known = {"usage_day": [(last - EPOCH).days]}

    def plan(start, horizon):
        return ForecastPlan(["a"], horizon, start, date(2026, 11, 28), longest=30)(known)

    _index, rows = plan(date(2026, 7, 1), 1)  # 30 days after the history: the longest
    assert rows["horizon"] == [30]
    with pytest.raises(BeyondHorizon, match=r"^start: .* at most 30 days .* 2026-07-01"):
        plan(date(2026, 7, 2), 1)
    with pytest.raises(BeyondHorizon, match="^start: "):
        plan(date(2026, 6, 26), 7)  # its last day is 36 days after the history
    with pytest.raises(StartPassed, match="^start: "):
        plan(last, 1)
    # a hashtag without history forecasts from the day before start: any start within range
    _index, rows = ForecastPlan(["b"], 7, date(2099, 1, 1), date(2026, 11, 28), longest=30)(
        {"usage_day": [None]}
    )
    assert rows["horizon"] == list(range(1, 8))
    # a champion trained on shorter horizons: the default start is refused naming horizon
    with pytest.raises(BeyondHorizon, match="^horizon: "):
        ForecastPlan(["a"], 20, None, date(2026, 11, 28), longest=14)(known)


# -- the OpenAPI document -------------------------------------------------------------------------
class _In(BaseModel):
    user_id: int


class _Out(BaseModel):
    user_id: int
    interests: list[str] | None


BENTOML_SPEC = {
    "openapi": "3.0.2",
    "paths": {
        "/readyz": {"get": {"responses": {"200": {"description": "ok"}}}},
        "/healthz": {"get": {"responses": {"200": {"description": "ok"}}}},
        "/metrics": {"get": {"responses": {"200": {"description": "ok"}}}},
        "/recommend": {
            "post": {
                "responses": {
                    "200": {"description": "flattened: interests non-null"},
                    "400": {"$ref": "#/components/schemas/InvalidArgument"},
                },
                "requestBody": {},
            }
        },
    },
    "components": {"schemas": {"InvalidArgument": {}, "NotFound": {}}},
}


def test_the_document_lists_every_status_and_keeps_nullable_fields():
    spec = openapi_document(
        BENTOML_SPEC,
        {"/recommend": (_In, _Out)},  # no documented example for this route
        not_found=("/recommend",),
        key_required=True,
        max_body_bytes=1234,
    )
    assert spec["openapi"] == "3.1.0"
    operation = spec["paths"]["/recommend"]["post"]
    assert set(operation["responses"]) == {"200", "401", "404", "413", "415", "422", "500", "503"}
    assert "1234 bytes" in operation["responses"]["413"]["description"]
    answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert {"type": "null"} in answer["properties"]["interests"]["anyOf"]
    assert operation["requestBody"]["required"] is True
    assert "InvalidArgument" not in spec["components"]["schemas"]
    assert spec["components"]["schemas"]["Error"]["required"] == ["error"]
    assert set(spec["paths"]["/readyz"]["get"]["responses"]) == {"200", "503"}
    assert set(spec["paths"]["/metrics"]["get"]["responses"]) == {"200", "401"}
    assert spec["paths"]["/healthz"]["get"]["security"] == []  # the probes are open
    assert "security" not in spec["paths"]["/metrics"]["get"]
    assert {"apiKey", "bearer"} == set(spec["components"]["securitySchemes"])
    opened = openapi_document(BENTOML_SPEC, {}, metrics_open=True, max_body_bytes=1)
    assert set(opened["paths"]["/metrics"]["get"]["responses"]) == {"200"}
    assert "security" not in opened and "securitySchemes" not in opened["components"]
    assert BENTOML_SPEC["openapi"] == "3.0.2"  # BentoML's own document is left as it was


def test_every_endpoint_refuses_a_top_level_key_it_does_not_take():
    """BentoML's input models ignore unknown keys; smap's refuse them, naming the key, and
    the document says so (`additionalProperties: false`)."""
    apis = Smap.apis.values()
    assert len(apis) >= 12
    for api in apis:
        with pytest.raises(ValidationError) as refused:
            api.input_spec.model_validate({"strat": "2026-01-01"})
        unknown = [e for e in refused.value.errors() if e["type"] == "extra_forbidden"]
        assert [e["loc"] for e in unknown] == [("strat",)], api.route
        assert api.input_spec.model_json_schema()["additionalProperties"] is False, api.route


def test_a_refused_body_names_the_first_field_in_its_error():
    """BentoML's refusal says "2 validation error for Input"; the answer's `error` names the
    field (pydantic's `detail` kept as it is); other bodies pass unchanged."""
    detail = [
        {"type": "missing", "loc": ["drafts", 0, "category"], "msg": "Field required"},
        {"type": "extra_forbidden", "loc": ["strat"], "msg": "Extra inputs are not permitted"},
    ]
    given = json.dumps({"error": "2 validation error for Input", "detail": detail}).encode()
    answer = json.loads(named_field(given))
    assert answer == {"error": "drafts.0.category: Field required (+1 more)", "detail": detail}
    whole = {"error": "1 validation error for Input", "detail": [{"loc": [], "msg": "Invalid"}]}
    assert json.loads(named_field(json.dumps(whole).encode()))["error"] == "body: Invalid"
    for other in (b'{"error": "n: must be at least 1"}', b"not json", b"[1]"):
        assert named_field(other) == other
