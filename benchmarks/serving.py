"""Serving latency and throughput: smap's BentoML service vs `mlflow models serve`, same model.

What is measured (one run, one table, one registered engagement model, the same draft post):

- `smap (own features)`: `smap serve` answering `POST /predict_engagement` with one draft;
  the service fetches the author and hashtag features online (Feast) itself.
- `smap (features passed in)`: `POST /predict_features` with the same draft's finished
  feature vector (no lookup): what the service costs besides its online read.
- `mlflow models serve`: the same registered model version, the feature vector passed in as
  `{"inputs": [record]}` (its fastest JSON format), same worker count.
- `smap best_posting_time`: one draft, 168 candidate hours, one batched model call.
- `smap (own features), shadow running`: the same `POST /predict_engagement` while a shadow
  experiment (`smap experiment start engagement --challenger V --shadow`) has a second
  version of the same family score every request off the request path, on the same server;
  then `--shadow-rounds` 1-client cells alternating without and with the experiment (the
  shared machine's load drifts; neighbours compare fairly), whose medians give the cost.
  The note says how many requests were shadowed.
- `in-process` (the floor): `Predictor.predict_engagement` / `best_posting_time` called in
  this process, sequentially: online lookup + model, no HTTP.

For each server: requests/s, p50 and p99 latency at 1, 16 and 64 concurrent clients. The load
comes from a separate process (`benchmarks/_load.py`: asyncio streams, one keep-alive
connection per client, the request bytes built once) over loopback, for `--seconds` per cell
after a short warm-up. Nothing here asserts on timings: it is a benchmark, not a test.

Isolation: a quick simulated platform is built under a temporary SMAP_DATA_DIR (local profile:
Parquet warehouse, SQLite online store, SQLite MLflow), engagement is trained on it (one
trial of `--family`, linear by default), and both servers run on free loopback ports;
everything is removed at the end.

    uv run python benchmarks/serving.py --json .smap/bench/serving.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

# run as a script, this file's folder comes first on sys.path and its own name would shadow
# the `serving` package it measures
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table as RichTable

from benchmarks._load import build_platform, check, percentile, run_load, smap_server  # noqa: E402
from configs.settings import Settings, telemetry_env  # noqa: E402

os.environ.update(telemetry_env())  # before MLflow, BentoML or Feast are imported

out = Console(width=None if sys.stdout.isatty() else 120)  # a readable table in a log file
log = Console(stderr=True)
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    target: str
    endpoint: str
    concurrency: int
    requests: int
    errors: int
    seconds: float
    p50_ms: float | None
    p99_ms: float | None
    note: str = ""

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "requests_per_second": round(self.requests_per_second, 1)}


def payloads(settings: Settings) -> dict:
    """One draft, its template (no time) and the finished feature record the model reads."""
    from pipelines.serving import demo_drafts
    from serving.features import feature_columns
    from serving.predictor import Predictor
    from serving.schemas import Draft
    from training.packaging import input_frame

    draft = demo_drafts(settings, n=1)[0]
    predictor = Predictor(settings, background=False)
    try:
        champion = predictor.champion("engagement", draft=True)
        parsed = Draft.model_validate(draft)
        rows = predictor._draft_rows([parsed], [parsed.planned_at])
        online = predictor.online.fetch(champion.feature_service, rows)
        features = champion.model.features
        columns = feature_columns(online, features)
        import pandas as pd

        frame = pd.DataFrame(dict(zip(features, columns, strict=True)))
        categorical = list(champion.model.encoder.categories)
        record = input_frame(frame, features, categorical).to_dict(orient="records")[0]
        record = {k: None if v != v else v for k, v in record.items()}  # JSON has no NaN
    finally:
        predictor.close()
    template = {k: v for k, v in draft.items() if k != "planned_at"}
    return {"draft": draft, "template": template, "record": record}


def in_process(
    settings: Settings, bodies: dict, seconds: float, reads: str = "direct"
) -> list[Result]:
    """The floor: the service's own code path called sequentially in this process; with
    `reads="feast"`, the same through Feast's `get_online_features` (the path before)."""
    from serving.predictor import Predictor
    from serving.schemas import Draft, DraftTemplate

    serving = settings.serving.model_copy(update={"online_reads": reads})
    predictor = Predictor(settings.model_copy(update={"serving": serving}), background=False)
    target = "in-process (floor)" if reads == "direct" else "in-process, Feast online reads"
    predictor.log.start()  # the log writer runs as in the service, off the measured path
    draft = Draft.model_validate(bodies["draft"])
    template = DraftTemplate.model_validate(bodies["template"])
    calls = {
        "predict_engagement": lambda: predictor.predict_engagement([draft], "bench"),
        "best_posting_time": lambda: predictor.best_posting_time(template, "bench"),
    }
    results = []
    try:
        for endpoint, call in calls.items():
            for _ in range(5):
                call()  # warm caches (registry, feature service refs)
            latencies = []
            start = time.perf_counter()
            while time.perf_counter() - start < seconds:
                t0 = time.perf_counter()
                call()
                latencies.append((time.perf_counter() - t0) * 1000)
            elapsed = time.perf_counter() - start
            results.append(
                Result(
                    target,
                    endpoint,
                    1,
                    len(latencies),
                    0,
                    elapsed,
                    percentile(latencies, 0.5),
                    percentile(latencies, 0.99),
                )
            )
    finally:
        predictor.close()
    return results


@contextlib.contextmanager
def mlflow_server(settings: Settings, version: int, workers: int):
    """`mlflow models serve` of the registered version, no new environment (same packages)."""
    import httpx

    from pipelines.serving import free_port, stop_service

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "MLFLOW_REGISTRY_URI": settings.mlflow_tracking_uri,
        # it starts `uvicorn` by name: this interpreter's scripts first, with or without `uv run`
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    cmd = [
        str(Path(sys.executable).with_name("mlflow")),
        "models",
        "serve",
        "-m",
        f"models:/engagement/{version}",
        "--env-manager",
        "local",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    errors = tempfile.TemporaryFile()  # its last lines explain a failed start
    process = subprocess.Popen(
        cmd,
        env=env,
        cwd=tempfile.gettempdir(),  # not the checkout: the model brings its own code
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=errors,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                errors.seek(0)
                tail = errors.read().decode(errors="replace").strip().splitlines()[-5:]
                raise RuntimeError(
                    f"mlflow models serve exited with code {process.returncode}: {' / '.join(tail)}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError("mlflow models serve was not ready within 180s")
            time.sleep(0.5)
        yield url
    finally:
        stop_service(process)
        errors.close()


def measure(target: str, endpoint: str, url: str, body: dict, args) -> list[Result]:
    check(url, body)
    results = []
    for clients in args.concurrency:
        log.print(f"{target} {endpoint}: {clients} client(s) for {args.seconds:g}s")
        r = run_load(url, body, clients, args.seconds, args.warmup)
        results.append(
            Result(
                target,
                endpoint,
                clients,
                r["requests"],
                r["errors"],
                r["seconds"],
                r["p50_ms"],
                r["p99_ms"],
            )
        )
    return results


def challenger_version(settings: Settings, family: str) -> int:
    """A second engagement version (one more trial of `family`), registered, not gated."""
    from benchmarks._load import quiet
    from pipelines.training import train

    with quiet():
        trained = train(settings, "engagement", trials=1, families=(family,), run_promotion=False)
    return int(trained.version)


@contextlib.contextmanager
def shadow_experiment(settings: Settings, url: str, challenger: int):
    """A shadow experiment of `challenger`, followed by the service, for the `with` body;
    yields a function that reads the service's shadow counters."""
    import httpx

    from training.experiments import end_experiment, start_experiment
    from training.tasks import get_task
    from training.tracking import use_tracking

    def followed() -> list[dict]:
        return httpx.get(f"{url}/metadata", timeout=10).json()["experiments"]

    def until(condition) -> None:
        deadline = time.monotonic() + 60
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError("the service did not follow the experiment within 60s")
            time.sleep(0.3)

    client = use_tracking(settings)
    experiment = start_experiment(client, get_task("engagement"), challenger, "shadow")
    try:
        until(lambda: bool(followed()))
        yield lambda: followed()[0]
    finally:
        end_experiment(client, experiment, {"benchmark": "serving"})
        until(lambda: not followed())


SHADOW = "smap (own features), shadow running"
NO_SHADOW = "smap (own features), no experiment"


def shadow_cost(settings: Settings, url: str, challenger: int, body: dict, args) -> list[Result]:
    """`predict_engagement` at every concurrency with a shadow experiment running, then
    `--shadow-rounds` pairs of 1-client cells without and with it, in A B, B A, A B order (a
    shared machine's load drifts: neighbours compare fairly, and a drift within a pair
    cancels over the rounds)."""
    one = argparse.Namespace(**{**vars(args), "concurrency": [1]})
    with shadow_experiment(settings, url, challenger) as counters:
        results = measure(SHADOW, "predict_engagement", f"{url}/predict_engagement", body, args)
        seen = counters()
    note = (
        f"shadowed {seen['shadow_scored']:,}, skipped {seen['shadow_skipped']:,} (queue full), "
        f"failed {seen['shadow_failed']:,}"
    )
    results.append(Result(SHADOW, "shadow scorings", 0, 0, 0, 0, None, None, note))
    for i in range(args.shadow_rounds):
        order = (NO_SHADOW, SHADOW) if i % 2 == 0 else (SHADOW, NO_SHADOW)  # A B, B A, A B ...
        for target in order:
            r = f"{url}/predict_engagement"
            if target == SHADOW:
                with shadow_experiment(settings, url, challenger):
                    cell = measure(target, "predict_engagement (A/B, 1 client)", r, body, one)
            else:
                cell = measure(target, "predict_engagement (A/B, 1 client)", r, body, one)
            results += cell
    return results


def run(args: argparse.Namespace, root: Path) -> list[Result]:
    settings, version = build_platform(root / "smap", args.preset, args.family)
    challenger = challenger_version(settings, args.family)
    bodies = payloads(settings)
    results = in_process(settings, bodies, args.seconds)
    results += in_process(settings, bodies, args.seconds, reads="feast")
    with mlflow_server(settings, version, args.workers) as url:
        results += measure(
            "mlflow models serve",
            "invocations",
            f"{url}/invocations",
            {"inputs": [bodies["record"]]},
            args,
        )
    with smap_server(settings, args.workers, env={"SMAP_SERVING__ALIAS_POLL_SECONDS": "1"}) as (
        url,
        _process,
    ):
        results += measure(
            "smap (own features)",
            "predict_engagement",
            f"{url}/predict_engagement",
            {"drafts": [bodies["draft"]]},
            args,
        )
        results += shadow_cost(settings, url, challenger, {"drafts": [bodies["draft"]]}, args)
        results += measure(
            "smap (features passed in)",
            "predict_features",
            f"{url}/predict_features",
            {"task": "engagement", "records": [bodies["record"]]},
            args,
        )
        results += measure(
            "smap (own features)",
            "best_posting_time",
            f"{url}/best_posting_time",
            {"draft": bodies["template"]},
            args,
        )
    return results


def render(results: list[Result], args: argparse.Namespace) -> None:
    title = (
        f"smap serving benchmark (preset={args.preset}, {args.family}, workers={args.workers}, "
        f"{args.seconds:g}s per cell, one draft per request)"
    )
    table = RichTable(title=title)
    for name in ("target", "endpoint"):
        table.add_column(name)
    for name in ("clients", "requests", "errors", "req/s", "p50 ms", "p99 ms"):
        table.add_column(name, justify="right")

    def ms(v: float | None) -> str:
        return "" if v is None else f"{v:.2f}"

    for r in results:
        if r.note:
            table.add_row(r.target, r.endpoint, "", "", "", "", "", r.note)
            continue
        table.add_row(
            r.target,
            r.endpoint,
            str(r.concurrency),
            f"{r.requests:,}",
            str(r.errors),
            f"{r.requests_per_second:,.1f}",
            ms(r.p50_ms),
            ms(r.p99_ms),
        )
    out.print(table)
    smap = {
        r.concurrency: r
        for r in results
        if r.target == "smap (own features)" and r.endpoint == "predict_engagement"
    }
    ab = [r for r in results if r.endpoint.endswith("(A/B, 1 client)")]
    without = [r.p50_ms for r in ab if r.target == NO_SHADOW and r.p50_ms]
    with_ = [r.p50_ms for r in ab if r.target == SHADOW and r.p50_ms]
    if without and with_ and len(without) == len(with_):
        a, b = float(np.median(without)), float(np.median(with_))
        paired = float(np.median(np.array(with_) / np.array(without))) - 1
        failed = sum(r.errors for r in results if r.target == SHADOW)
        out.print(
            f"shadow experiment, 1 client, {len(with_)} pairs of cells: median p50 of a "
            f"one-draft answer {a:.2f} -> {b:.2f} ms ({b / a - 1:+.1%}; median of the pairs' "
            f"ratios {paired:+.1%}; goal at most +10%), {failed} failed requests with a shadow "
            "running"
        )
    ref = {r.concurrency: r for r in results if r.target == "mlflow models serve"}
    for clients in sorted(set(smap) & set(ref)):
        a, b = smap[clients], ref[clients]
        if b.requests_per_second > 0:
            out.print(
                f"{clients} client(s): smap {a.requests_per_second / b.requests_per_second:.2f}x"
                f" the req/s of mlflow models serve"
            )


def metadata(args: argparse.Namespace) -> dict:
    import bentoml
    import feast
    import mlflow

    return {
        "preset": args.preset,
        "family": args.family,
        "workers": args.workers,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "concurrency": args.concurrency,
        "shadow_rounds": args.shadow_rounds,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "bentoml": bentoml.__version__,
        "mlflow": mlflow.__version__,
        "feast": feast.__version__,
        "platform": platform.platform(),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick", choices=("quick", "small", "default"))
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per cell")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds per cell")
    parser.add_argument("--concurrency", default="1,16,64", help="comma separated client counts")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument(
        "--family",
        default="linear",
        choices=("linear", "lightgbm", "xgboost", "forest"),
        help="the champion's model family (one trial)",
    )
    parser.add_argument(
        "--shadow-rounds", type=int, default=4, help="pairs of cells without/with a shadow"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    if not args.concurrency or min(args.concurrency) < 1:
        parser.error("--concurrency: positive client counts, e.g. 1,16,64")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="smap-bench-") as tmp:
        results = run(args, Path(tmp))
    render(results, args)
    if args.json:
        report = {"metadata": metadata(args), "results": [r.as_dict() for r in results]}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        log.print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
