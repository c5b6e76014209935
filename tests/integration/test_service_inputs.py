"""A service that holds under attack (issue 17): the inputs a probe answered with a 5xx, and the
contract gaps it found, through the BentoML app over ASGI on a platform where every endpoint
answers for real (the quick preset; a champion for every served task, influencers and segments
built). Then schemathesis against the app's own OpenAPI document, through ASGI and over HTTP
against `smap serve`: zero 5xx, zero answers the document does not describe.

Each test below holds one shortfall of the probe: ids past int64, extreme dates, infinite
feature values, multipart and other bodies that are not JSON, non-UTF-8 headers, undocumented
statuses and nullable fields, lax coercions, bodies without a size limit, forecasts past the
trained horizon, /metrics without the key and the Authorization scheme, request ids kept
whatever they hold."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import date, timedelta

import mlflow
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.python import asgi as schemathesis_asgi
from starlette.testclient import TestClient

from configs.settings import load_settings
from ingestion.warehouse import open_warehouse
from pipelines import analytics, flows
from pipelines.serving import free_port, start_service, stop_service, wait_ready
from pipelines.training import train
from serving.prediction_log import read_parquet_log
from training.segmentation import segment

pytestmark = pytest.mark.integration

INT64_MAX = 2**63 - 1  # Feast's entity keys are int64
KEY = "k3y"
AUTH = {"x-api-key": KEY}
DRAFT = {
    "user_id": 1,
    "post_type": "video",
    "category": "food",
    "hashtags": ["#food_1"],
    "planned_at": "2026-06-01T12:00:00Z",
}
TEMPLATE = {k: v for k, v in DRAFT.items() if k != "planned_at"}


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    """Every served task with a champion (one fast trial each; churn's linear model rarely
    beats its naive baseline on the quick preset, so its version is crowned by hand), the
    segments and the influencer ranking built, the online store materialized."""
    root = tmp_path_factory.mktemp("inputs") / "smap"
    config = load_settings("local", env={"SMAP_DATA_DIR": str(root)})
    flows.prepare_data(config)
    trained = {}
    for task, family in [
        ("engagement", "linear"),
        ("virality", "linear"),
        ("churn", "linear"),
        ("trend", "lightgbm"),
        ("content", "tfidf_logreg"),
        ("sentiment", "tfidf_logreg"),  # VADER is crowned first; the trained model may win
    ]:
        trained[task] = train(config, task, trials=1, families=(family,))
    if trained["churn"].decision.champion_after is None:
        uri = config.mlflow_tracking_uri
        client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
        client.set_registered_model_alias("churn", "champion", str(trained["churn"].version))
    segment(config)
    analytics.run(config)
    return config


@pytest.fixture
def app(platform, monkeypatch, service_app):
    """The app with SMAP_API_KEY set, on the platform's profile."""
    monkeypatch.setenv("SMAP_DATA_DIR", str(platform.root))
    monkeypatch.setenv("SMAP_API_KEY", KEY)
    return service_app()


def _known_tag(client) -> tuple[str, str]:
    """A hashtag the online store holds usage of, and the last day it holds."""
    settings = load_settings()
    daily = open_warehouse(settings).read("hashtag_daily", columns=["tag", "date", "usage"])
    tag = str(daily.groupby("tag").usage.sum().idxmax())
    answer = client.post("/forecast_trend", json={"hashtags": [tag], "horizon": 1}, headers=AUTH)
    assert answer.status_code == 200, answer.text
    return tag, answer.json()["forecasts"][0]["history_until"]


def _named(answer, field: str) -> bool:
    """A 422 whose JSON names `field` (in `error` or in `detail`)."""
    body = answer.json()
    return answer.status_code == 422 and field in json.dumps(body) and "error" in body


# -- ids ------------------------------------------------------------------------------------------
def test_ids_past_int64_are_422_on_every_endpoint_and_the_largest_id_answers(app):
    huge = 2**63
    with TestClient(app) as client:
        asks = {
            "/predict_engagement": lambda u: {"drafts": [{**DRAFT, "user_id": u}]},
            "/predict_virality": lambda u: {"drafts": [{**DRAFT, "user_id": u}]},
            "/best_posting_time": lambda u: {"draft": {**TEMPLATE, "user_id": u}},
            "/predict": lambda u: {"task": "engagement", "drafts": [{**DRAFT, "user_id": u}]},
            "/predict_churn": lambda u: {"user_ids": [u]},
            "/user_segment": lambda u: {"user_id": u},
            "/recommend_content": lambda u: {"user_id": u, "n": 3},
        }
        for path, body in asks.items():
            refused = client.post(path, json=body(huge), headers=AUTH)
            assert _named(refused, "user_id"), (path, refused.status_code, refused.text)
            largest = client.post(path, json=body(INT64_MAX), headers=AUTH)
            assert largest.status_code in (200, 404), (path, largest.status_code, largest.text)
        churn = client.post("/predict", json={"task": "churn", "user_ids": [huge]}, headers=AUTH)
        assert _named(churn, "user_ids"), churn.text


# -- dates ----------------------------------------------------------------------------------------
def test_extreme_dates_are_422_naming_the_field(app):
    with TestClient(app) as client:
        early = {"drafts": [{**DRAFT, "planned_at": "0001-01-01T00:00:00+14:00"}]}
        assert _named(client.post("/predict_engagement", json=early, headers=AUTH), "planned_at")
        late = {"draft": TEMPLATE, "start": "9999-12-31T23:30:00Z"}
        assert _named(client.post("/best_posting_time", json=late, headers=AUTH), "start")
        far = {"hashtags": ["#food_1"], "horizon": 3, "start": "9999-12-31"}
        assert _named(client.post("/forecast_trend", json=far, headers=AUTH), "start")
        # the documented range's edges answer
        edge = {"draft": TEMPLATE, "start": "2099-12-31T23:00:00Z"}
        assert client.post("/best_posting_time", json=edge, headers=AUTH).status_code == 200
        first = {"drafts": [{**DRAFT, "planned_at": "2000-01-01T00:00:00Z"}]}
        assert client.post("/predict_engagement", json=first, headers=AUTH).status_code == 200
        # a number is not a time
        stamp = {"drafts": [{**DRAFT, "planned_at": 1780000000}]}
        assert _named(client.post("/predict_engagement", json=stamp, headers=AUTH), "planned_at")


# -- numbers --------------------------------------------------------------------------------------
def test_infinite_and_huge_feature_values_are_422(app):
    with TestClient(app) as client:
        meta = client.get("/metadata", headers=AUTH).json()
        features = next(t for t in meta["tasks"] if t["task"] == "engagement")["features"]
        numeric = next(f for f in features if "rate" in f or "followers" in f)
        record = dict.fromkeys(features)
        ok = client.post(
            "/predict_features", json={"task": "engagement", "records": [record]}, headers=AUTH
        )
        assert ok.status_code == 200, ok.text
        for value in ("Infinity", "-Infinity", "NaN", "1e308", "1e16"):
            body = json.dumps({"task": "engagement", "records": [record]})
            body = body.replace(f'"{numeric}": null', f'"{numeric}": {value}')
            answer = client.post(
                "/predict_features",
                content=body,
                headers={**AUTH, "content-type": "application/json"},
            )
            assert _named(answer, numeric), (value, answer.status_code, answer.text)
        bounded = client.post(
            "/predict_features",
            json={"task": "engagement", "records": [{**record, numeric: 1e15}]},
            headers=AUTH,
        )
        assert bounded.status_code == 200, bounded.text


# -- content types --------------------------------------------------------------------------------
POSTS = [
    "/predict_engagement",
    "/predict_virality",
    "/predict_churn",
    "/predict",
    "/predict_features",
    "/best_posting_time",
    "/forecast_trend",
    "/top_influencers",
    "/user_segment",
    "/classify_content",
    "/recommend_content",
    "/analyze_sentiment",
]


def test_bodies_that_are_not_json_are_415_with_a_json_error_on_every_post(app):
    kinds = [
        "multipart/form-data",
        "multipart/form-data; boundary=xyz",
        "application/x-www-form-urlencoded",
        "text/plain",
        "application/vnd.bentoml+pickle",
    ]
    with TestClient(app) as client:
        for path in POSTS:
            for kind in kinds:
                answer = client.post(path, content=b"{}", headers={**AUTH, "content-type": kind})
                assert answer.status_code == 415, (path, kind, answer.status_code, answer.text)
                assert "application/json" in answer.json()["error"]
        spelled = client.post(
            "/top_influencers",
            content=b"{}",
            headers={**AUTH, "content-type": "Application/JSON; charset=utf-8"},
        )
        assert spelled.status_code == 200, spelled.text


# -- headers ------------------------------------------------------------------------------------
def _raw(client, app, headers, body=b"{}", path="/top_influencers", chunks=1):
    """One POST straight through the ASGI app, in the test client's event loop (where the
    app's lifespan runs): headers as raw bytes (the test client re-encodes them as UTF-8),
    the body pulled in `chunks` equal parts and counted. Returns the status, the response
    headers and body, and how many parts the app pulled."""
    pulled, sent = 0, []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("testclient", 1),
        "server": ("testserver", 80),
        "state": {},
    }

    async def receive():
        nonlocal pulled
        if pulled == chunks:
            return {"type": "http.disconnect"}
        pulled += 1
        return {"type": "http.request", "body": body, "more_body": pulled < chunks}

    async def send(message):
        sent.append(message)

    async def call():
        await app(scope, receive, send)

    client.portal.call(call)
    start = next((m for m in sent if m["type"] == "http.response.start"), None)
    assert start is not None, "the app returned without starting a response"
    answer = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), answer, pulled


def test_non_utf8_headers_are_refused_cleanly(app):
    bad = b"\xff\xfe\xc3"
    json_type = (b"content-type", b"application/json")
    key = (b"x-api-key", KEY.encode())
    with TestClient(app) as client:
        for headers in (
            [(b"x-api-key", bad)],
            [(b"authorization", b"Bearer " + bad)],
            [(b"x-junk", bad)],
            [(b"x-request-id", bad)],
            [(b"x-\xff", b"1")],
        ):
            status, _headers, body, _pulled = _raw(client, app, [json_type, *headers])
            assert status == 401, (headers, status, body)
            assert "x-api-key" in json.loads(body)["error"]
        # with the key, an undecodable header elsewhere is harmless; an undecodable request
        # id is replaced by a fresh one
        headers = [json_type, key, (b"x-junk", bad), (b"x-request-id", bad)]
        status, answered, body, _pulled = _raw(client, app, headers)
        assert status == 200, body
        assert len(answered[b"x-request-id"]) == 32


def test_authorization_needs_the_bearer_scheme_in_any_case(app):
    with TestClient(app) as client:
        for value, status in {
            f"Bearer {KEY}": 200,
            f"bearer {KEY}": 200,
            f"BEARER  {KEY} ": 200,
            KEY: 401,
            f"Basic {KEY}": 401,
            f"Bearer{KEY}": 401,
            "Bearer wrong": 401,
        }.items():
            answer = client.post("/top_influencers", json={}, headers={"authorization": value})
            assert answer.status_code == status, (value, answer.text)


def test_metrics_need_the_key_unless_a_setting_opens_them(app, monkeypatch, service_app):
    with TestClient(app) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers=AUTH).status_code == 200
        assert client.get("/readyz").status_code == 200  # the probes stay open
    monkeypatch.setenv("SMAP_SERVING__METRICS_OPEN", "true")
    with TestClient(service_app()) as client:
        assert client.get("/metrics").status_code == 200
        assert client.post("/top_influencers", json={}).status_code == 401


def test_request_ids_are_kept_only_when_short_and_plain(app, platform):
    with TestClient(app) as client:
        for given, kept in {
            "trace-1.A_b": True,
            "x" * 64: True,
            "x" * 65: False,
            "x" * 60_000: False,
            "a b": False,
            "é".encode(): False,
            "a/../b": False,
        }.items():
            answer = client.post(
                "/predict_engagement",
                json={"drafts": [DRAFT]},
                headers={**AUTH, "x-request-id": given},
            )
            assert answer.status_code == 200, answer.text
            echoed = answer.headers["x-request-id"]
            assert answer.json()["lineage"]["request_id"] == echoed
            assert (echoed == given) is kept, given[:80]
            assert kept or len(echoed) == 32  # a fresh one
            assert len(echoed) <= 64
    logged = read_parquet_log(platform.root / "predictions")
    assert logged.request_id.str.len().max() <= 64


# -- the schema -----------------------------------------------------------------------------------
def test_the_openapi_document_lists_every_status_and_nullable_field(app):
    with TestClient(app) as client:
        spec = client.get("/docs.json", headers=AUTH).json()
        paths = spec["paths"]
        info = spec["info"]  # smap's own, not BentoML's boilerplate
        assert info["title"] == "smap prediction service" and info["version"] != "None"
        assert "BentoML" not in info["description"]
        assert (
            "| `POST /predict_engagement` | Expected 7-day engagement rate" in info["description"]
        )
        assert "requires a key" in info["description"]  # this app runs with SMAP_API_KEY
        page = client.get("/", headers=AUTH).text
        assert "<title>smap prediction service</title>" in page
        assert "googletagmanager" not in page
        assert "./guide/serving.md" in info["description"]
        guide = client.get("/guide/serving.md", headers=AUTH)
        assert guide.status_code == 200 and "best_posting_time" in guide.text
        missing = client.get("/guide/pyproject.toml", headers=AUTH)
        assert missing.status_code == 404 and "no docs page" in missing.json()["error"]
        assert client.get("/guide/..%2Fpyproject.toml", headers=AUTH).status_code == 404
        long = client.get(f"/guide/{'a' * 5000}.md", headers=AUTH)  # past the OS's name limit
        assert long.status_code == 404 and len(long.json()["error"]) < 2000
        for path in POSTS:
            responses = paths[path]["post"]["responses"]
            assert {"200", "401", "413", "415", "422", "503"} <= set(responses), path
            assert "400" not in responses, path  # bad input is a 422
            for status in ("401", "413", "415", "422", "503"):
                schema = responses[status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (path, status)
        assert "404" in paths["/user_segment"]["post"]["responses"]
        assert set(paths["/metrics"]["get"]["responses"]) == {"200", "401"}
        assert set(paths["/readyz"]["get"]["responses"]) == {"200", "503"}
        error = spec["components"]["schemas"]["Error"]
        assert error["required"] == ["error"]

        def answer_schema(path):
            return paths[path]["post"]["responses"]["200"]["content"]["application/json"]

        influencers = answer_schema("/top_influencers")["schema"]["properties"]
        assert {"type": "null"} in influencers["category"]["anyOf"]
        recommend = answer_schema("/recommend_content")["schema"]["properties"]
        assert {"type": "null"} in recommend["interests"]["anyOf"]
        assert {"type": "null"} in recommend["lineage"]["anyOf"]

        # and the null comes back where the document says it may
        top = client.post("/top_influencers", json={"n": 2}, headers=AUTH)
        assert top.status_code == 200 and top.json()["category"] is None
        # an optional field is left out; null is not one of its values
        start = paths["/best_posting_time"]["post"]["requestBody"]["content"]
        assert "anyOf" not in start["application/json"]["schema"]["properties"]["start"]
        # every documented example is answered
        for path in POSTS:
            example = paths[path]["post"]["requestBody"]["content"]["application/json"]
            if "example" in example:
                answer = client.post(path, json=example["example"], headers=AUTH)
                assert answer.status_code in (200, 404), (path, answer.text)


def test_lax_coercions_are_refused(app):
    with TestClient(app) as client:
        for path, body, field in [
            ("/predict_engagement", {"drafts": [{**DRAFT, "is_paid": "yes"}]}, "is_paid"),
            ("/predict_engagement", {"drafts": [{**DRAFT, "is_paid": 1}]}, "is_paid"),
            ("/predict_engagement", {"drafts": [{**DRAFT, "user_id": True}]}, "user_id"),
            ("/predict_engagement", {"drafts": [{**DRAFT, "user_id": "1"}]}, "user_id"),
            ("/predict_engagement", {"drafts": [{**DRAFT, "user_id": 1.5}]}, "user_id"),
            ("/predict_churn", {"user_ids": [True]}, "user_ids"),
            ("/best_posting_time", {"draft": TEMPLATE, "start": None}, "start"),
            ("/forecast_trend", {"hashtags": ["#a"], "horizon": "7"}, "horizon"),
            ("/forecast_trend", {"hashtags": ["#a"], "horizon": 7, "start": None}, "start"),
            ("/top_influencers", {"n": "5"}, "n"),
            ("/top_influencers", {"category": None}, "category"),
            ("/recommend_content", {"user_id": 1, "n": 2.5}, "n"),
            ("/user_segment", {"user_id": "1"}, "user_id"),
            ("/predict", {"task": "engagement", "drafts": None}, "drafts"),
            ("/predict_features", {"task": "engagement", "records": [{"a": True}]}, "records"),
        ]:
            answer = client.post(path, json=body, headers=AUTH)
            assert _named(answer, field), (path, body, answer.status_code, answer.text)
            assert field in answer.json()["error"], answer.text  # not only in `detail`
        # a whole number written 3.0 is JSON Schema's integer 3
        whole = client.post("/predict_churn", json={"user_ids": [1.0, 2]}, headers=AUTH)
        assert whole.status_code == 200, whole.text
        assert [p["user_id"] for p in whole.json()["predictions"]] == [1, 2]


def test_unknown_top_level_keys_are_422_naming_them_on_every_post(app):
    with TestClient(app) as client:
        spec = client.get("/docs.json", headers=AUTH).json()
        for path in POSTS:
            answer = client.post(path, json={"strat": "2026-06-01"}, headers=AUTH)
            assert _named(answer, "strat"), (path, answer.status_code, answer.text)
            body = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]
            assert body["schema"]["additionalProperties"] is False, path
        misspelt = {"draft": TEMPLATE, "strat": "2026-06-01T12:00:00Z"}  # for `start`
        answer = client.post("/best_posting_time", json=misspelt, headers=AUTH)
        assert _named(answer, "strat"), answer.text


# -- body size ------------------------------------------------------------------------------------
def test_bodies_over_the_limit_are_413_before_they_are_read(app):
    """A declared Content-Length over `serving.max_body_bytes` is refused before a byte is
    read; a chunked body (no length) once the bytes read pass the limit: the rest is never
    pulled from the client."""
    chunk = b" " * 65_536
    with TestClient(app) as client:
        big = client.post(
            "/predict_engagement",
            content=b" " * 2_000_000,
            headers={**AUTH, "content-type": "application/json"},
        )
        assert big.status_code == 413 and "max_body_bytes" in big.json()["error"]
        under = {"drafts": [{**DRAFT, "caption": "x" * 2000}] * 200}  # about 500 KB
        assert client.post("/predict_engagement", json=under, headers=AUTH).status_code == 200

        def ask(declared: int | None, chunks: int):
            headers = [(b"x-api-key", KEY.encode()), (b"content-type", b"application/json")]
            if declared is not None:
                headers.append((b"content-length", str(declared).encode()))
            status, _headers, _body, pulled = _raw(
                client, app, headers, chunk, "/predict_engagement", chunks
            )
            return status, pulled

        started = time.perf_counter()
        status, pulled = ask(declared=193_000_000, chunks=3_000)  # a 193 MB body, declared
        assert (status, pulled) == (413, 0)
        status, pulled = ask(declared=None, chunks=3_000)  # streamed without a length
        assert status == 413 and pulled == 1_048_576 // len(chunk) + 1
        assert time.perf_counter() - started < 5


# -- forecasts ------------------------------------------------------------------------------------
def test_forecast_days_past_the_trained_horizon_are_422_naming_start(app):
    with TestClient(app) as client:
        tag, until = _known_tag(client)
        last = date.fromisoformat(until)

        def ask(start, horizon):
            body = {"hashtags": [tag], "horizon": horizon, "start": str(start)}
            return client.post("/forecast_trend", json=body, headers=AUTH)

        reach = ask(last + timedelta(days=30), 1)  # the champion's longest horizon: 30 days
        assert reach.status_code == 200, reach.text
        assert reach.json()["forecasts"][0]["days"][0]["horizon"] == 30
        for start, horizon in [(last + timedelta(days=31), 1), (last + timedelta(days=25), 7)]:
            answer = ask(start, horizon)
            assert answer.status_code == 422 and answer.json()["error"].startswith("start:")
            assert "30 days" in answer.json()["error"], answer.text
        assert _named(ask("2200-01-01", 3), "start")


# -- schemathesis ---------------------------------------------------------------------------------
@pytest.fixture
def api_schema(app, request):
    """The app's own /docs.json, every call authenticated with the key; the lifespan (the
    service's start) runs once and is shut down after."""
    # schemathesis 4.32 names each operation's subtest through `node._nodeid`, which pytest 9.2
    # no longer has (its `nodeid` reads `_id`): give it the attribute it reads
    request.node._nodeid = request.node.nodeid
    loaded = schemathesis.openapi.from_asgi("/docs.json", app, headers=AUTH, config=CONFIG)
    yield loaded
    schemathesis_asgi.shutdown_lifespans()
    calls = sum(n for counts in SEEN.values() for n in counts.values())
    print(f"\nschemathesis: {len(SEEN)} operations, {calls} calls:", json.dumps(SEEN, indent=1))


# Every check schemathesis has, positive_data_acceptance told that a 422 may answer valid
# data: an unknown category, a record without the champion's features, an unknown task, a
# forecast past the trained horizon, a time outside the documented range are all valid JSON
# Schema (which cannot say "a category of a ranked account" or "before 2100").
CONFIG = schemathesis.Config.from_dict(
    {"checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "401", "404", "422"]}}}
)
schema = schemathesis.pytest.from_fixture("api_schema")
SEEN: dict[str, dict[int, int]] = {}


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(case):
    response = case.call_and_validate(headers=AUTH)
    counts = SEEN.setdefault(case.operation.label, {})
    counts[response.status_code] = counts.get(response.status_code, 0) + 1


# -- schemathesis over HTTP, against `smap serve` --------------------------------------------------
@pytest.fixture(scope="module")
def served(platform, tmp_path_factory):
    """`smap serve` (one worker, the key required) on the platform: uvicorn's HTTP parsing and
    BentoML's worker process in the path, which the ASGI runs above leave out."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("served") / "serve.log"
    with open(log_path, "wb") as log_file:
        process = start_service(
            platform, "127.0.0.1", port, 1, {"SMAP_API_KEY": KEY},
            stdout=log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_ready(url, process, timeout=180)
            yield url, log_path
        finally:
            stop_service(process, timeout=60)


@pytest.fixture
def http_schema(served, request):
    request.node._nodeid = request.node.nodeid  # as in api_schema
    return schemathesis.openapi.from_url(f"{served[0]}/docs.json", headers=AUTH, config=CONFIG)


over_http = schemathesis.pytest.from_fixture("http_schema")


@over_http.parametrize()
@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_schemathesis_over_http_finds_no_server_error(case, served):
    response = case.call_and_validate(headers=AUTH)
    assert response.status_code < 500
    assert "Traceback" not in served[1].read_text(errors="replace")
