"""Serving flows: run the BentoML service, score a file of drafts, and the demo's last step
(start the service on its champions, send a few drafts, print the answers, stop it)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from configs.errors import SmapError
from configs.settings import Settings, telemetry_env
from ingestion.warehouse import open_warehouse
from serving.schemas import Drafts, UserIds

SERVICE = "serving.service:Smap"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def service_env(settings: Settings, workers: int) -> dict[str, str]:
    """Environment of the service process: the same profile and data, BentoML's home inside
    the data directory, the worker count, no telemetry."""
    env = dict(os.environ)
    env.update(telemetry_env(settings.telemetry))
    env["SMAP_PROFILE"] = settings.profile
    env["SMAP_DATA_DIR"] = str(settings.root)
    env.setdefault("BENTOML_HOME", str(settings.root / "bentoml"))
    options = [f"services.smap.workers={workers}"]
    if not settings.serving.tracing:  # every URL excluded: the span middleware passes through
        options.append("services.smap.tracing.excluded_urls=.")
    if not settings.serving.metrics:
        options.append("services.smap.metrics.enabled=false")
    env["BENTOML_CONFIG_OPTIONS"] = " ".join(options)
    return env


def serve_command(settings: Settings, host: str, port: int) -> list[str]:
    bentoml = Path(sys.executable).with_name("bentoml")
    return [str(bentoml), "serve", SERVICE, "--host", host, "--port", str(port),
            "--working-dir", str(PROJECT_ROOT)]  # fmt: skip


def start_service(
    settings: Settings,
    host: str | None = None,
    port: int | None = None,
    workers: int = 1,
    env: dict[str, str] | None = None,
    **kw,
) -> subprocess.Popen:
    """The service in its own process group; `env` overrides settings for it alone."""
    s = settings.serving
    cmd = serve_command(settings, host or s.host, port or s.port)
    environment = {**service_env(settings, workers), **(env or {})}
    return subprocess.Popen(cmd, env=environment, start_new_session=True, **kw)


def serve(settings: Settings, host=None, port=None, workers=None) -> int:
    """Run the service in the foreground until interrupted; returns its exit code."""
    process = start_service(settings, host, port, workers or settings.serving.workers)

    def interrupt(_signum, _frame):  # SIGTERM stops the service too, never orphans it
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:
        return process.wait()
    except KeyboardInterrupt:
        stop_service(process)
        return 130


def stop_service(process: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM to the service's process group (workers flush their prediction log), then wait."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(
    url: str, process: subprocess.Popen, timeout: float = 90, probe: str = "/readyz"
) -> None:
    """Poll `probe` until it answers 200; `/healthz` when no champion need be loaded."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the service exited with code {process.returncode}")
        try:
            if httpx.get(f"{url}{probe}", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the service at {url} was not ready within {timeout:.0f}s")


@contextmanager
def local_service(
    settings: Settings, workers: int = 1, env: dict[str, str] | None = None, timeout: float = 90
) -> Iterator[tuple[str, subprocess.Popen]]:
    """The service on a free loopback port, its output discarded, once it is ready: yields
    its url and process, and stops it on the way out. `env` overrides settings for it alone."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_service(
        settings,
        "127.0.0.1",
        port,
        workers,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(url, process, timeout)
        yield url, process
    finally:
        stop_service(process)


DRAFT_COLUMNS = ("user_id", "post_type", "category", "hashtags", "caption", "planned_at", "is_paid")
# a file may also have a `platform` column (optional, as on a draft)


def drafts_from_file(path: Path) -> list[dict]:
    """Draft posts from a CSV or Parquet file (hashtags as "#a #b")."""
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    missing = [c for c in ("user_id", "post_type", "category", "planned_at") if c not in frame]
    if missing:
        raise ValueError(f"{path.name}: missing column(s) {', '.join(missing)}")
    frame = frame.fillna({"hashtags": "", "caption": "", "is_paid": False})
    return [
        {
            "user_id": int(r.user_id),
            "post_type": str(r.post_type),
            "category": str(r.category),
            "hashtags": str(getattr(r, "hashtags", "") or "").replace(",", " ").split(),
            "caption": str(getattr(r, "caption", "") or ""),
            "planned_at": str(r.planned_at),
            "is_paid": bool(getattr(r, "is_paid", False)),
            # optional: a blank or absent platform is the profile's default (docs/platforms.md)
            **({"platform": str(r.platform)} if pd.notna(getattr(r, "platform", None)) else {}),
        }
        for r in frame.itertuples()
    ]


def predict_file(settings: Settings, task: str, path: Path) -> tuple[pd.DataFrame, dict]:
    """Score a file in process on the task's champion; returns the answers and their lineage."""
    from pydantic import TypeAdapter

    from serving.predictor import Predictor, Unavailable, new_request_id  # Feast, MLflow

    if not path.is_file():
        raise ValueError(f"--file: {path} does not exist")
    predictor = Predictor(settings, background=False)
    try:
        request_id = new_request_id()
        if task == "churn":
            frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
            users = TypeAdapter(UserIds).validate_python(frame.user_id.tolist())
            answer = predictor.predict_churn(users, request_id)
        elif task in ("engagement", "virality"):
            drafts = TypeAdapter(Drafts).validate_python(drafts_from_file(path))
            method = getattr(predictor, f"predict_{task}")
            answer = method(drafts, request_id)
        else:
            raise ValueError(f"task: {task!r} is not served (choose engagement, virality, churn)")
    except Unavailable as exc:
        raise ValueError(str(exc)) from None
    finally:
        predictor.close()
    rows = pd.DataFrame([p.model_dump() for p in answer.predictions])
    return rows, answer.lineage.model_dump()


def demo_drafts(settings: Settings, n: int = 3) -> list[dict]:
    """A few plausible drafts: active authors, a category and trending tags, tomorrow noon."""
    warehouse = open_warehouse(settings)
    posts = warehouse.read("post_features", columns=["user_id", "category", "hashtags"]).tail(n)
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(hour=12, minute=0, second=0)
    return [
        {
            "user_id": int(r.user_id),
            "post_type": ("video", "image", "carousel")[i % 3],
            "category": r.category,
            "hashtags": r.hashtags.split(),
            "caption": "our new collection is here",
            "planned_at": (tomorrow + timedelta(hours=3 * i)).isoformat(),
            "is_paid": i == 0,
        }
        for i, r in enumerate(posts.itertuples())
    ]


def ask_service(settings: Settings, url: str) -> dict:
    """A few drafts, a best-posting-time question and (with a trend champion) a week's
    forecast of their hashtags, asked of a running service, with the answers."""
    import httpx

    drafts = demo_drafts(settings)
    headers = {"x-api-key": os.environ.get("SMAP_API_KEY", "")}
    answer = httpx.post(
        f"{url}/predict_engagement", json={"drafts": drafts}, headers=headers, timeout=30
    )
    answer.raise_for_status()
    template = {k: v for k, v in drafts[0].items() if k != "planned_at"}
    best = httpx.post(
        f"{url}/best_posting_time", json={"draft": template}, headers=headers, timeout=30
    )
    best.raise_for_status()
    served = {"url": url, "drafts": drafts, "engagement": answer.json(), "best": best.json()}
    tags = [t for d in drafts for t in d["hashtags"]][:2]
    if tags:  # a trend champion answers; without one the 503 says so and the demo goes on
        trend = httpx.post(
            f"{url}/forecast_trend",
            json={"hashtags": tags, "horizon": 7},
            headers=headers,
            timeout=30,
        )
        if trend.status_code == 200:
            served["trend"] = trend.json()
    return served


def demo_serving(settings: Settings) -> dict:
    """Start the service on the trained champions, ask it about a few drafts, stop it."""
    with local_service(settings) as (url, _):
        return ask_service(settings, url)


def as_utc(when) -> pd.Timestamp:
    stamp = pd.Timestamp(when)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def published_drafts(settings: Settings, since=None, until=None) -> list[dict]:
    """Posts published in [since, until) described as the drafts they were: what a replay
    sends, so each answer's outcome is known once the post's label window has passed."""
    warehouse = open_warehouse(settings)
    posts = warehouse.read(
        "post_features",
        columns=[
            "post_id",
            "user_id",
            "post_type",
            "category",
            "hashtags",
            "caption",
            "event_timestamp",
            "is_paid",
        ],  # fmt: skip
    )
    stamps = pd.to_datetime(posts.event_timestamp, utc=True)
    keep = pd.Series(True, index=posts.index)
    if since is not None:
        keep &= stamps >= as_utc(since)
    if until is not None:
        keep &= stamps < as_utc(until)
    posts = posts[keep].sort_values("event_timestamp", kind="stable")
    if warehouse.exists("platform_posts"):  # each post on its own platform (docs/platforms.md)
        platforms = warehouse.read("platform_posts", columns=["post_id", "platform"])
        posts = posts.assign(platform=posts.post_id.map(platforms.set_index("post_id").platform))
    return [
        {
            "user_id": int(r.user_id),
            "post_type": str(r.post_type),
            "category": str(r.category),
            "hashtags": str(r.hashtags or "").split()[:30],
            "caption": str(r.caption or "")[:2200],
            "planned_at": pd.Timestamp(r.event_timestamp).isoformat(),
            "is_paid": bool(r.is_paid),
            **({"platform": str(r.platform)} if pd.notna(getattr(r, "platform", None)) else {}),
        }
        for r in posts.itertuples()
    ]


def send_drafts(
    url: str,
    drafts: list[dict],
    batch: int = 200,
    on_answer=None,
    endpoint: str = "predict_engagement",
) -> dict:
    """POST drafts to `endpoint` in batches; counts answers, failures and versions."""
    import httpx

    headers = {"x-api-key": os.environ.get("SMAP_API_KEY", "")}
    answered = failed = 0
    versions: dict[int, int] = {}
    with httpx.Client(timeout=60) as client:
        for i in range(0, len(drafts), batch):
            chunk = drafts[i : i + batch]
            try:
                reply = client.post(f"{url}/{endpoint}", json={"drafts": chunk}, headers=headers)
                reply.raise_for_status()
            except httpx.HTTPError:
                failed += len(chunk)
                continue
            version = int(reply.json()["lineage"]["version"])
            versions[version] = versions.get(version, 0) + len(chunk)
            answered += len(chunk)
            if on_answer:
                on_answer(answered, len(drafts))
    return {"answered": answered, "failed": failed, "versions": versions}


def build_bento(settings: Settings) -> str:
    """A Bento of the service and smap's code (bentofile.yaml), in the data directory's
    BentoML store; its requirements are the locked environment's (`uv export`)."""
    import tempfile

    import bentoml
    import yaml

    os.environ.setdefault("BENTOML_HOME", str(settings.root / "bentoml"))
    bentofile = PROJECT_ROOT / "bentofile.yaml"
    if not bentofile.is_file():
        raise SmapError(f"build: {bentofile} not found (`smap build` runs from a source checkout)")
    spec = yaml.safe_load(bentofile.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        requirements = Path(tmp) / "requirements.txt"
        exported = subprocess.run(
            [
                "uv",
                "export",
                "--frozen",
                "--no-dev",
                "--no-hashes",
                "--no-emit-project",
                "--quiet",
                "-o",
                str(requirements),
            ],  # fmt: skip
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
        )
        python = dict(spec.get("python") or {})
        if exported.returncode == 0:  # pinned as locked; build_ctx-relative files only
            python["packages"] = [
                line.strip()
                for line in requirements.read_text().splitlines()
                if line.strip() and not line.lstrip().startswith(("#", "-"))
            ]
        bento = bentoml.bentos.build(
            spec["service"],
            name=spec["name"],
            labels=spec.get("labels"),
            include=spec["include"],
            exclude=spec.get("exclude"),
            python=python,
            build_ctx=str(PROJECT_ROOT),
        )
    return str(bento.tag)
