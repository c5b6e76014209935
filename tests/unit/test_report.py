"""The dashboard's pieces on hand-made frames: posting-hour lift, BI exports, an empty
warehouse, and the folder server (loopback, nothing outside the folder)."""

from __future__ import annotations

import http.client
import threading

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from analytics import report
from analytics.errors import AnalyticsError
from analytics.exports import write_export

T0 = pd.Timestamp("2026-03-02", tz="UTC")  # a Monday


def _performance(rows: list[tuple[int, int, float]]) -> pd.DataFrame:
    """(author, hours after T0, engagement rate) per post; a newer post makes them all matured."""
    frame = pd.DataFrame(rows, columns=["user_id", "hours", "engagement_rate"])
    frame["created_at"] = T0 + pd.to_timedelta(frame.pop("hours"), unit="h")
    frame["post_id"] = np.arange(len(frame))
    newest = frame.iloc[[-1]].assign(created_at=T0 + pd.Timedelta(days=70), user_id=99)
    return pd.concat([frame, newest], ignore_index=True)


def test_best_hours_compare_posts_with_their_authors_usual():
    # a strong author posts only at 09:00; a weak one mostly at 09:00, sometimes at 19:00,
    # where it doubles its usual: 19:00 wins although 09:00 has the higher raw engagement rate
    rows = [(1, 24 * day + 9, 0.20) for day in range(40)]
    rows += [(2, 24 * day + 9, 0.02) for day in range(60)]
    rows += [(2, 24 * day + 19, 0.04) for day in range(30)]
    lift = report.posting_lift(_performance(rows))
    hours, grid = report.posting_hours(lift)

    assert report.best_hours(hours, n=1) == [19]
    by_hour = hours.set_index("hour")
    assert by_hour.loc[19, "median_lift"] == pytest.approx(2.0)
    assert by_hour.loc[9, "median_lift"] == pytest.approx(1.0)
    assert by_hour.loc[9, "mean_engagement_rate"] > by_hour.loc[19, "mean_engagement_rate"]
    assert by_hour.loc[3, "posts"] == 0 and pd.isna(by_hour.loc[3, "rank"])
    assert len(grid) == 7 * 24 and grid.posts.sum() == len(lift) == 130
    assert set(grid[grid.posts > 0].weekday_name) == set(report.WEEKDAYS)


def test_too_few_posts_rank_no_hour():
    frame = _performance([(1, h, 0.1) for h in range(10)])
    section = report.hours_section(frame)
    assert section.empty and "Too few matured posts" in section.note


def test_csv_export_is_bom_utf8_with_iso_times_and_parquet_keeps_types(tmp_path):
    frame = pd.DataFrame(
        {
            "user_id": [1, 2],
            "username": ["zoë", "李"],
            "created_at": pd.to_datetime(["2026-06-01 19:00:00", "2026-06-02 08:30:15"], utc=True),
            "date": pd.to_datetime(["2026-06-01", "2026-06-02"]),
            "rate": [0.5, np.nan],
        }
    )
    done = write_export(tmp_path, "sample", frame)

    raw = done.csv.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # the BOM Power Query needs to read UTF-8
    lines = raw.decode("utf-8-sig").split("\r\n")
    assert lines[0] == "user_id,username,created_at,date,rate"
    assert lines[1] == "1,zoë,2026-06-01T19:00:00Z,2026-06-01,0.5"
    assert lines[2] == "2,李,2026-06-02T08:30:15Z,2026-06-02,"
    back = pd.read_csv(done.csv)
    assert back.username.tolist() == ["zoë", "李"] and list(back.columns) == list(frame.columns)

    schema = pq.read_schema(done.parquet)
    assert str(schema.field("created_at").type) == "timestamp[us, tz=UTC]"
    assert str(schema.field("date").type) == "date32[day]"
    assert str(schema.field("username").type) == "string"
    parquet = pd.read_parquet(done.parquet)
    assert parquet.created_at.tolist() == frame.created_at.tolist()
    assert done.rows == 2


def test_an_export_with_a_column_bi_tools_trip_on_is_refused(tmp_path):
    with pytest.raises(AnalyticsError, match="Engagement Rate"):
        write_export(tmp_path, "odd", pd.DataFrame({"Engagement Rate": [1.0]}))


def test_an_empty_warehouse_gives_a_page_whose_sections_say_what_to_run(local_settings, tmp_path):
    done = report.write_report(local_settings, tmp_path / "out")

    page = done.path.read_text()
    assert [s.title for s in done.sections] == [
        "KPIs over time",
        "Top content",
        "Trending hashtags",
        "Segments",
        "Influencers",
        "Best posting hours",
        "Engagement quality",
        "Share cascades",
        "Lifecycles",
        "Experiments",
        "Audience sentiment",
        "Platforms side by side",
        "Model health",
    ]
    assert all(s.empty for s in done.sections) and done.exports == []
    for section in done.sections:
        assert section.title in page and "run `smap" in section.note
    assert not any(f'id="{s.key}-0"' in page for s in done.sections)  # no chart
    assert not (local_settings.root / "mlflow.db").exists()  # no registry made to read none


def _get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    answer = conn.getresponse()
    body = answer.read()
    conn.close()
    return answer.status, body


def test_the_server_serves_the_folder_and_nothing_outside_it(tmp_path):
    folder = tmp_path / "dashboard"
    with pytest.raises(report.ReportError, match="no index.html"):
        report.make_server(folder, port=0)
    (folder / "exports").mkdir(parents=True)
    (folder / "index.html").write_text("<h1>smap dashboard</h1>")
    (folder / "exports" / "kpi_daily.csv").write_text("date\n")
    (tmp_path / "secret.txt").write_text("not for you")
    (folder / "link.txt").symlink_to(tmp_path / "secret.txt")

    server = report.make_server(folder, port=0)
    assert server.server_address[0] == "127.0.0.1"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_port
        assert _get(port, "/") == (200, b"<h1>smap dashboard</h1>")
        status, listing = _get(port, "/exports/")
        assert status == 200 and b"kpi_daily.csv" in listing
        assert _get(port, "/../secret.txt")[0] == 404
        assert _get(port, "/link.txt")[0] == 404  # a symlink out of the folder
    finally:
        server.shutdown()
        server.server_close()
