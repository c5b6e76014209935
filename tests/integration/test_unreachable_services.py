"""A PostgreSQL or Redis that cannot be reached: one line, non-zero exit, nothing half-written."""

import pytest

from pipelines.cli import main

pytestmark = pytest.mark.integration


def test_unreachable_postgres_is_one_line(capsys, monkeypatch):
    monkeypatch.setenv("SMAP_PROFILE", "services")
    monkeypatch.setenv("SMAP_POSTGRES__PORT", "1")
    assert main(["simulate"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: PostgreSQL at 127.0.0.1:1 is not reachable")
    assert "\n" not in err  # failed before the simulation started: no progress output


def test_unreachable_redis_is_one_line_before_any_work(capsys, monkeypatch, services_settings):
    monkeypatch.setenv("SMAP_PROFILE", "services")
    monkeypatch.setenv("SMAP_DATABASE", services_settings.postgres.database)
    monkeypatch.setenv("SMAP_REDIS__PORT", "1")
    assert main(["features", "materialize"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: Redis at 127.0.0.1:1 is not reachable")


def test_failed_postgres_load_leaves_no_partial_table(services_settings, monkeypatch):
    import pandas as pd

    from ingestion.schema import RAW_TABLES
    from ingestion.simulator import simulate
    from ingestion.warehouse import open_warehouse

    warehouse = open_warehouse(services_settings)
    posts = simulate("quick", seed=1)["content_posts"]
    warehouse.write(RAW_TABLES["content_posts"], posts.head(50))
    broken = posts.head(80).copy()
    broken.loc[70, "post_id"] = broken.loc[0, "post_id"]  # duplicate key: COPY fails mid-way
    with pytest.raises(Exception, match="duplicate key"):
        warehouse.write(RAW_TABLES["content_posts"], broken)
    after = warehouse.read("content_posts")
    assert len(after) == 50
    pd.testing.assert_series_equal(after.post_id, posts.head(50).post_id, check_names=False)


def test_etl_on_postgres_is_idempotent_and_creates_views(services_settings):
    from ingestion.etl import run_etl
    from ingestion.schema import ALL_TABLES
    from ingestion.simulator import simulate
    from ingestion.warehouse import open_warehouse

    warehouse = open_warehouse(services_settings)
    for name, frame in simulate("quick", seed=2).items():
        warehouse.write(ALL_TABLES[name], frame)
    first = run_etl(services_settings, warehouse)
    run_etl(services_settings, warehouse)
    assert {n: len(warehouse.read(n)) for n in first} == first
    top = warehouse.read("top_performing_content")
    assert len(top) > 0 and "category_rank" in top.columns
