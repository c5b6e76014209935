"""`smap report` on the quick preset: the page carries every section with its charts' data,
the best posting hour is the one the simulator favours, the exports read back with pandas, and
headless Chromium draws every chart from the local server without a console message."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from analytics.exports import PLAIN
from analytics.report import make_server
from analytics.trends import trending_hashtags
from configs.settings import load_settings
from ingestion.schema import MONITORING_TABLES, SEGMENT_TABLES
from ingestion.warehouse import open_warehouse
from pipelines import flows
from pipelines.analytics import run as run_analytics
from pipelines.cli import main

pytestmark = pytest.mark.integration

TITLES = [
    "KPIs over time",
    "Top content",
    "Trending hashtags",
    "Segments",
    "Influencers",
    "Best posting hours",
    "Engagement quality",
    "Share cascades",
    "Lifecycles",
    "Audience sentiment",
    "Platforms side by side",
    "Model health",
]
EXPORTS = {
    "kpi_daily", "campaign_kpis", "top_content", "trending_hashtags", "hashtag_trends",
    "segment_summary", "influencer_network", "posting_hours", "posting_weekday_hours",
    "drift_checks", "account_quality", "cascade_starters", "engagement_half_life",
    "stage_transitions", "stage_summary",
    "post_sentiment", "author_sentiment", "daily_sentiment",
    "platform_comparison", "platform_top_posts",
}  # fmt: skip
CHART = re.compile(r'Plotly\.newPlot\(\s*"([a-z]+-\d)"')  # one call per chart, by its div id


def _segments_and_a_check(warehouse) -> None:
    """Segments by a fixed rule (halves by active days: the model has its own test) and one
    recorded drift check, so every section but the registry's has data."""
    metrics = warehouse.read("user_engagement_metrics")
    latest = metrics[(metrics.date == metrics.date.max()) & (metrics.active_days_28d > 0)]
    busy = (latest.active_days_28d > latest.active_days_28d.median()).to_numpy()
    users = pd.DataFrame(
        {
            "user_id": latest.user_id.to_numpy(),
            "segment": np.where(busy, 0, 1),
            "segment_label": np.where(busy, "regulars", "occasionals"),
            "assigned_at": pd.Timestamp("2026-07-01", tz="UTC"),
            "model_version": 1,
        }
    )
    profiles = pd.DataFrame(
        {
            "segment": [0, 1],
            "label": ["regulars", "occasionals"],
            "size": [int(busy.sum()), int((~busy).sum())],
            "share": [busy.mean(), 1 - busy.mean()],
            "profile_json": "{}",
        }
    )
    warehouse.write_many(
        [(SEGMENT_TABLES["user_segments"], users), (SEGMENT_TABLES["segment_profiles"], profiles)]
    )
    table = MONITORING_TABLES["drift_checks"]
    check = {c: "" for c, kind in table.columns.items() if kind == "str"}
    now = pd.Timestamp("2026-07-01 06:00", tz="UTC")
    check.update(check_id="c1", task="engagement", version=3, checked_at=now, window_start=now,
                 window_end=now, rows=500, labelled=0, drifted_share=0.4, prediction_score=0.1,
                 label_score=np.nan, metric="r2", quality_value=np.nan, test_value=0.4,
                 verdict="drift")  # fmt: skip
    warehouse.append(table, pd.DataFrame([check]))


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory) -> tuple[Path, object, str]:
    """The quick preset simulated, ingested and analysed; `smap report --out` run on it."""
    root = tmp_path_factory.mktemp("report") / "smap"
    settings = load_settings("local", env={"SMAP_DATA_DIR": str(root)})
    flows.simulate(settings)
    flows.ingest(settings)
    warehouse = open_warehouse(settings)
    _segments_and_a_check(warehouse)
    run_analytics(settings)
    out = root.parent / "dashboard"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SMAP_DATA_DIR", str(root))
        assert main(["report", "--out", str(out)]) == 0
    return out, warehouse, (out / "index.html").read_text(encoding="utf-8")


class _Scripts(HTMLParser):
    """The page's script tags: how many, and the URLs of those that load one (none offline)."""

    def __init__(self) -> None:
        super().__init__()
        self.count, self.sources = 0, []

    def handle_starttag(self, tag, attrs) -> None:
        if tag == "script":
            self.count += 1
            self.sources += [value for name, value in attrs if name == "src"]


def _plot_data(page: str, div_id: str) -> str:
    """The JSON handed to Plotly.newPlot for one chart."""
    found = re.search(r'Plotly\.newPlot\(\s*"' + div_id + r'",\s*(\[.*?\]),\s*\{', page, re.S)
    assert found, f"no chart {div_id}"
    return found.group(1)


def test_page_has_every_section_and_the_charts_data(dashboard):
    out, warehouse, page = dashboard
    for title in TITLES:
        assert f"<h2>{title}</h2>" in page
    assert page.count("* plotly.js v") == 1  # inlined once
    scripts = _Scripts()
    scripts.feed(page)
    assert scripts.sources == [] and scripts.count == 1 + len(CHART.findall(page))

    kpis = _plot_data(page, "kpis-0")
    assert '"name":"engagement_rate"' in kpis and '"name":"posts"' in kpis
    top = trending_hashtags(warehouse.read("hashtag_trends"), n=10)
    hashtags = _plot_data(page, "hashtags-0")
    assert all(f'"{tag}"' in hashtags for tag in top.tag)
    for chart in ("content-0", "segments-0", "influencers-0", "hours-0", "hours-1", "health-0"):
        _plot_data(page, chart)
    assert "regulars" in _plot_data(page, "segments-0")
    assert "No champion in the registry yet" in page  # nothing trained: said, not failed


def test_best_posting_hour_is_the_one_the_simulator_favours(dashboard):
    out, _warehouse, page = dashboard
    hours = pd.read_parquet(out / "exports" / "posting_hours.parquet")
    best = int(hours.sort_values("rank").hour.iloc[0])
    # the simulator's hour effect peaks at 19:00 UTC (ingestion/simulator.py: hour_effect)
    assert best in (18, 19, 20), hours.sort_values("rank").head()
    ranked = hours.dropna(subset=["rank"])  # each ranked hour's median inside its band
    assert (ranked.lift_low <= ranked.median_lift).all()
    assert (ranked.median_lift <= ranked.lift_high).all()
    assert (ranked.lift_high > ranked.lift_low).all()
    grid = pd.read_parquet(out / "exports" / "posting_weekday_hours.parquet")
    weekend = grid.weekday >= 5  # the simulator adds 0.1 to the logit on Saturday and Sunday
    lift = grid.median_lift * grid.posts
    assert lift[weekend].sum() / grid.posts[weekend].sum() > (
        lift[~weekend].sum() / grid.posts[~weekend].sum()
    )
    assert f"{best:02d}:00" in page
    assert "90% confidence band" in page


def test_exports_read_back_with_pandas_from_csv_and_parquet(dashboard):
    out, warehouse, _page = dashboard
    folder = out / "exports"
    assert {p.stem for p in folder.glob("*.csv")} == EXPORTS
    assert {p.stem for p in folder.glob("*.parquet")} == EXPORTS
    for name in EXPORTS:
        csv, parquet = folder / f"{name}.csv", folder / f"{name}.parquet"
        assert csv.read_bytes()[:3] == b"\xef\xbb\xbf", name
        from_csv, from_parquet = pd.read_csv(csv), pd.read_parquet(parquet)
        assert list(from_csv.columns) == list(from_parquet.columns), name
        assert len(from_csv) == len(from_parquet) > 0, name
        assert all(PLAIN.match(c) for c in from_csv.columns), name

    daily = pd.read_csv(folder / "kpi_daily.csv", parse_dates=["date"])
    assert daily.posts.sum() == len(warehouse.read("content_posts"))
    assert pd.read_parquet(folder / "kpi_daily.parquet").posts.tolist() == daily.posts.tolist()
    assert str(pq.read_schema(folder / "kpi_daily.parquet").field("date").type) == "date32[day]"
    network = pd.read_csv(folder / "influencer_network.csv")
    assert network.computed_at.str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all()
    assert len(network) == len(warehouse.read("influencer_network"))


def _chromium() -> str:
    path = shutil.which("chromium")
    if not path:
        pytest.skip("Debian's `chromium` is not installed (`apt-get install -y chromium`)")
    return path


def _headless(url: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            _chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
            "--virtual-time-budget=15000", *args, url,
        ],
        capture_output=True,
        timeout=180,
    )  # fmt: skip


@pytest.mark.browser
def test_chromium_draws_every_chart_from_the_local_server(dashboard, tmp_path):
    from PIL import Image

    out, _warehouse, page = dashboard
    charts = CHART.findall(page)
    server = make_server(out, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/"
    try:
        shot = tmp_path / "dashboard.png"  # one run: the DOM on stdout and a screenshot
        dom = _headless(
            url,
            tmp_path / "chromium",
            "--dump-dom",
            f"--screenshot={shot}",
            "--window-size=1300,3000",
        )
    finally:
        server.shutdown()
        server.server_close()

    log = dom.stderr.decode(errors="replace")
    assert "CONSOLE" not in log, [line for line in log.splitlines() if "CONSOLE" in line]
    drawn = dom.stdout.decode(errors="replace")
    for chart in charts:  # each chart's div holds the SVG plotly drew
        div = drawn[drawn.index(f'id="{chart}"') :][:3000]
        assert 'class="main-svg"' in div, chart
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    rgb = pixels.reshape(-1, 3).astype(np.uint32)
    colours = len(np.unique(rgb[:, 0] << 16 | rgb[:, 1] << 8 | rgb[:, 2]))  # packed: fast
    assert float((pixels.min(axis=2) < 240).mean()) > 0.05, "the screenshot is nearly blank"
    assert colours > 200, f"only {colours} distinct colours: charts did not render"


@pytest.fixture
def mlflow_restored(monkeypatch):
    """MLflow's URIs and the request settings `use_tracking` exports, put back afterwards."""
    import mlflow

    for name in MLFLOW_ENV:
        if name in os.environ:
            monkeypatch.setenv(name, os.environ[name])
        else:
            monkeypatch.delenv(name, raising=False)
    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    yield
    mlflow.set_tracking_uri(before[0])
    mlflow.set_registry_uri(before[1])


MLFLOW_ENV = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
)


def test_model_health_names_the_registry_champions_or_why_not(local_settings, mlflow_restored):
    import mlflow

    from analytics.report import champions, health_section, section_html

    uri = local_settings.mlflow_tracking_uri  # the profile's SQLite registry file
    local_settings.root.mkdir(parents=True, exist_ok=True)
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment(
        "report-test", artifact_location=(local_settings.root / "artifacts").as_uri()
    )
    run = client.create_run(experiment).info.run_id
    client.log_metric(run, "test_r2", 0.42)
    client.create_registered_model("engagement")
    version = client.create_model_version("engagement", f"runs:/{run}/model", run).version
    client.set_registered_model_alias("engagement", "champion", version)

    client.set_model_version_tag("engagement", version, "smap.feature_service", "engagement_v2")

    found = champions(local_settings)
    assert found[["task", "version", "run_id", "feature_service"]].values.tolist() == [
        ["engagement", 1, run, "engagement_v2"]
    ]
    assert found.test_metrics.tolist() == ["r2 0.42"]
    html = section_html(health_section(None, found))
    assert "engagement v1" in html and run in html and "No drift checks recorded yet" in html

    (local_settings.root / "mlflow.db").write_text("not a database")  # a corrupt registry
    why = champions(local_settings)
    assert isinstance(why, str) and why.startswith("Registry not readable: MLflow at sqlite:")
    assert "file is not a database" in why and why in health_section(None, why).note


def test_services_profile_without_an_mlflow_database_has_no_registry_yet(services_settings):
    import psycopg2

    from analytics.report import champions, no_registry

    assert no_registry(services_settings)  # nothing trained: its MLflow database is not there
    assert champions(services_settings).empty  # said at once, no connection retried
    admin = psycopg2.connect(services_settings.postgres.dsn("postgres"))
    admin.autocommit = True
    with admin.cursor() as cur:  # the fixture drops <database>_mlflow afterwards
        cur.execute(f'CREATE DATABASE "{services_settings.postgres.companion("mlflow").database}"')
    admin.close()
    assert not no_registry(services_settings)
