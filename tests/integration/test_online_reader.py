"""The direct online reader (serving/online_reader.py) answers what Feast's own
`get_online_features` answers, value for value, on both online stores (SQLite and Redis):
known and unknown authors, categories and hashtags, empty hashtag slots, repeated entities."""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import pytest

from feature_repo.store import open_store
from pipelines import flows
from serving.features import draft_rows
from serving.online import OnlineFeatures

pytestmark = pytest.mark.integration


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


@pytest.fixture
def materialized(any_settings):
    flows.simulate(any_settings, preset="quick", seed=3)
    flows.ingest(any_settings)
    flows.apply_features(any_settings)
    flows.materialize_features(any_settings)
    return any_settings


def test_direct_reads_equal_feast_online_features(materialized):
    settings = materialized
    store = open_store(settings)
    direct = OnlineFeatures(settings, store)
    assert direct.reader is not None  # the profile default is the direct reader
    serving = settings.serving.model_copy(update={"online_reads": "feast"})
    feast = OnlineFeatures(settings.model_copy(update={"serving": serving}), store)

    from ingestion.warehouse import open_warehouse

    warehouse = open_warehouse(settings)
    users = warehouse.read("users")["user_id"].astype(int).tolist()
    tags = warehouse.read("hashtags")["tag"].astype(str).tolist()
    rng = np.random.default_rng(0)
    n = 40
    user_ids = [int(u) for u in rng.choice(users, n)] + [10**9, users[0], users[0]]
    m = len(user_ids)
    categories = [str(c) for c in rng.choice(["food", "travel", "tech", "nope"], m)]
    hashtags = [
        [f"#{t}" for t in rng.choice(tags, int(rng.integers(0, 7)))]
        + (["#unknown_tag"] if i % 5 == 0 else [])
        for i in range(m)
    ]
    rows = draft_rows(
        user_ids,
        [str(t) for t in rng.choice(["image", "video", "text"], m)],
        categories,
        hashtags,
        ["a caption" * int(k) for k in rng.integers(0, 4, m)],
        [datetime(2026, 3, 1, int(h)) for h in rng.integers(0, 24, m)],
        [bool(p) for p in rng.integers(0, 2, m)],
    )
    users = {"user_id": user_ids}
    # (service, rows, features at least): churn_v2 reads part of the user view (a projection)
    cases = [("engagement_v2", rows, 16), ("churn_v1", users, 16), ("churn_v2", users, 7)]
    for service, entity_rows, least in cases:
        want = feast.fetch(service, entity_rows)
        got = direct.fetch(service, entity_rows)
        features = [name for name in want if name not in entity_rows]
        assert len(features) >= least, service
        for name in features:
            assert name in got, (service, name)
            for i, (a, b) in enumerate(zip(got[name], want[name], strict=True)):
                assert _same(a, b), (service, name, i, a, b)
        known = [v is not None for v in got["followers"]]
        assert any(known) and not known[n]  # real authors found, the made-up one not
    got = direct.fetch("engagement_v2", rows)
    assert any(v is not None for v in got["tag1_momentum"])  # stored hashtags found
    assert 0 < sum(got["hashtags_known"]) < sum(len(h) for h in hashtags)  # unknown ones not


def test_a_replaced_sqlite_store_is_read_from_the_new_file(local_settings):
    """An open connection keeps reading a deleted file: the reader reconnects when the
    online store file was replaced (a store loaded again in full while serving)."""
    import shutil
    import sqlite3

    settings = local_settings
    flows.prepare_data(settings, preset="quick")
    online = OnlineFeatures(settings)
    user = {"user_id": [int(v) for v in range(1, 200)]}
    before = online.fetch("churn_v1", user)["followers"]
    known = next(i for i, v in enumerate(before) if v is not None)
    path = settings.online_store_db
    copy = path.with_name("replacement.db")
    shutil.copy(path, copy)
    with sqlite3.connect(copy) as db:  # the replacement no longer knows that author
        table = f"{settings.feast.project}_user_engagement"
        key = online.reader._entity_key(online.plan("churn_v1").views[0], (user["user_id"][known],))
        db.execute(f'DELETE FROM "{table}" WHERE entity_key = ?', (key,))
    copy.replace(path)
    after = online.fetch("churn_v1", user)["followers"]
    assert after[known] is None
    assert [v for i, v in enumerate(after) if i != known] == [
        v for i, v in enumerate(before) if i != known
    ]
