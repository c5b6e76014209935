"""Drift checks for review in a browser: an index of recorded checks, newest first, with their
verdicts and links to each check's Evidently report, served read-only on 127.0.0.1.

A small index page, not Evidently's UI workspace: the workspace keeps its own project and
snapshot store (a second copy of every report to keep in step with the `drift_checks` table)
and runs its own web service. Each check already writes its report as a standalone Evidently
HTML file, and the table already holds the decision, so one page over the table, linking those
files, shows the same reports with the verdict and the retrain beside them, using only the
standard library (`http.server`), with nothing to install or keep in sync.
"""

from __future__ import annotations

import html
import json
import logging
import shutil
from datetime import UTC, datetime
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import pandas as pd

from configs.errors import SmapError
from configs.settings import Settings
from ingestion.warehouse import open_warehouse
from monitoring.checks import checks

PREFIX = "reports/"  # URL folder of the served reports, relative to the index at `/`
SERVED = {".html": "text/html; charset=utf-8", ".json": "application/json"}
VERDICT_COLOURS = {"drift": "#c62828", "ok": "#2e7d32"}
LIMIT = 200  # newest checks listed

log = logging.getLogger("smap.review")


class ReviewError(SmapError):
    """The review server cannot start (the port is taken, the address is not local)."""


def reports_root(settings: Settings) -> Path:
    """The folder the checks write their reports to, and the only one the server reads."""
    return settings.reports_dir / "monitoring"


def report_url(root: Path, report: str, suffix: str = ".html") -> str | None:
    """Relative URL of a check's report (or its JSON twin), or None when the file is gone."""
    if not isinstance(report, str) or not report:
        return None
    path = Path(report).with_suffix(suffix)
    try:
        relative = path.resolve().relative_to(root.resolve())
    except ValueError:
        relative = Path(*path.parts[-2:])  # the data directory moved: <task>/<file>
    if not (root / relative).is_file():
        return None
    return PREFIX + quote(relative.as_posix())


def served_file(root: Path, url_path: str) -> Path | None:
    """The report a URL path names inside `root`; None for anything outside it or not a report."""
    if not url_path.startswith("/" + PREFIX):
        return None
    relative = unquote(url_path[len(PREFIX) + 1 :])
    if "\x00" in relative:
        return None
    base = root.resolve()
    try:
        target = (base / relative).resolve()
    except (OSError, ValueError):
        return None
    if not target.is_relative_to(base) or target.suffix not in SERVED or not target.is_file():
        return None
    return target


def _number(value, spec: str) -> str:
    return "–" if value is None or pd.isna(value) else format(value, spec)


def _retrain(raw: str) -> tuple[str, str]:
    """(short outcome, full detail) of a check's retrain record."""
    if not isinstance(raw, str) or not raw:
        return "–", ""
    try:
        record = json.loads(raw)
    except ValueError:
        return "?", raw
    if "error" in record:
        return "error", str(record["error"])
    if "skipped" in record:
        return "skipped", str(record["skipped"])
    outcome = f"v{record.get('version', '?')}: {record.get('decision', '?')}"
    return outcome, str(record.get("reason", ""))


def _row(check, root: Path) -> str:
    e = html.escape
    verdict = str(check.verdict)
    colour = VERDICT_COLOURS.get(verdict, "#616161")
    quality = (
        f"{_number(check.quality_value, '.3f')} vs {_number(check.test_value, '.3f')} "
        f"<small>{e(str(check.metric))}</small>"
    )
    retrain, detail = _retrain(check.retrain)
    links = [
        f'<a href="{e(url)}">{label}</a>'
        for label, url in (
            ("report", report_url(root, check.report)),
            ("json", report_url(root, check.report, ".json")),
        )
        if url
    ]
    checked = pd.Timestamp(check.checked_at)
    cells = [
        e(f"{checked:%Y-%m-%d %H:%M:%S}") if not pd.isna(checked) else "–",
        e(str(check.task)),
        e(f"v{check.version}"),
        e(f"{check.rows} ({check.labelled} labelled)"),
        f'<span title="{e(str(check.drifted_columns))}">'
        f"{_number(check.drifted_share, '.0%')}</span>",
        _number(check.prediction_score, ".3f"),
        _number(getattr(check, "label_score", None), ".3f"),
        quality,
        f'<span class="verdict" style="background:{colour}" title="{e(str(check.reason))}">'
        f"{e(verdict)}</span>",
        f'<span title="{e(detail)}">{e(retrain)}</span>',
        " · ".join(links) or "missing",
    ]
    return "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>smap drift checks</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #212121; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ padding: .35rem .6rem; border-bottom: 1px solid #e0e0e0; text-align: left; }}
th {{ background: #fafafa; }}
td small {{ color: #757575; }}
.verdict {{ color: #fff; border-radius: .25rem; padding: .1rem .5rem; font-weight: 600; }}
</style></head>
<body>
<h1>smap drift checks</h1>
<p>{summary}</p>
{body}
</body></html>
"""

HEADER = (
    "checked (UTC)",
    "task",
    "champion",
    "rows",
    "drifted features",
    "prediction drift",
    "label drift",
    "quality vs test",
    "verdict",
    "retrain",
    "report",
)


def index_html(settings: Settings) -> str:
    """The index page: the newest recorded checks, one row each, linking their reports."""
    frame = checks(open_warehouse(settings))
    total = len(frame)
    frame = frame.iloc[::-1].head(LIMIT)
    root = reports_root(settings)
    shown = f"{len(frame)} newest of {total}" if total > LIMIT else str(total)
    summary = (
        f"{shown} check(s) on profile <b>{html.escape(settings.profile)}</b>, "
        f"page made {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC. Hover a share, verdict or "
        "retrain for the detail."
    )
    if frame.empty:
        body = "<p>No checks recorded yet: run <code>smap monitor TASK</code>.</p>"
    else:
        head = "".join(f"<th>{h}</th>" for h in HEADER)
        rows = "\n".join(_row(check, root) for check in frame.itertuples(index=False))
        body = f"<table><thead><tr>{head}</tr></thead><tbody>\n{rows}\n</tbody></table>"
    return PAGE.format(summary=summary, body=experiments_html(settings) + body)


def experiments_html(settings: Settings) -> str:
    """The running model experiments (`smap experiment`) above the checks; a registry that
    cannot be read is said in one line, the checks are shown all the same."""
    from monitoring.experiments import running_analyses  # MLflow: only when a page is made

    e = html.escape
    try:
        analyses = running_analyses(settings, open_warehouse(settings), settings.monitoring.tasks)
    except Exception as exc:  # noqa: BLE001 - the page shows the checks regardless
        return f"<p>Model experiments not read: {e(str(exc).splitlines()[0][:200])}</p>"
    if not analyses:
        return "<p>No model experiment running (<code>smap experiment start</code>).</p>"
    rows = []
    for a in analyses:
        x, (c0, c1) = a.experiment, a.arms
        mode = f"split {x.split:.0%}" if x.mode == "split" else "shadow"
        cells = [
            x.task,
            x.id,
            mode,
            f"v{x.champion} / v{x.challenger}",
            f"{c0.labelled} / {c1.labelled} of {x.min_samples}",
            f"{_number(c0.metric.value, '.3f')} / {_number(c1.metric.value, '.3f')} {a.metric}",
            f"{a.error_difference.p_value:.3f}",
            a.verdict,
        ]
        rows.append("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in cells) + "</tr>")
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "task",
            "experiment",
            "mode",
            "champion / challenger",
            "labelled",
            "metric",
            "always-valid p",
            "verdict",
        )  # fmt: skip
    )
    return (
        f"<h2>model experiments</h2><table><thead><tr>{head}</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table><h2>drift checks</h2>"
    )


class ReviewHandler(BaseHTTPRequestHandler):
    """GET / is the index; GET /reports/<task>/<file> a report; anything else is 404."""

    server_version = "smap-review"

    def __init__(self, *args, settings: Settings, **kwargs):
        self.settings = settings
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, body: bool) -> None:
        path = urlsplit(self.path).path
        if path in ("/", "/index.html"):
            try:
                page = index_html(self.settings).encode()
            except Exception as exc:  # the store is down: say so on the page, keep serving
                log.exception("index of drift checks failed")
                self.send_error(HTTPStatus.SERVICE_UNAVAILABLE, str(exc).splitlines()[0][:200])
                return
            self._headers(SERVED[".html"], len(page))
            if body:
                self.wfile.write(page)
            return
        target = served_file(reports_root(self.settings), path)
        if target is None:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        with target.open("rb") as file:
            self._headers(SERVED[target.suffix], target.stat().st_size)
            if body:
                shutil.copyfileobj(file, self.wfile)

    def _headers(self, content_type: str, length: int) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()

    def log_message(self, format: str, *args) -> None:
        log.info("%s " + format, self.address_string(), *args)


def make_server(settings: Settings, host: str = "127.0.0.1", port: int = 8088):
    """A threading HTTP server over the reports (port 0: any free port), not yet serving."""
    handler = partial(ReviewHandler, settings=settings)
    try:
        return ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        raise ReviewError(f"cannot serve the reports on {host}:{port}: {exc.strerror}") from exc


def serve_reports(settings: Settings, host: str = "127.0.0.1", port: int = 8088) -> None:
    """Serve the index and the reports until Ctrl-C."""
    with make_server(settings, host, port) as server:
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
