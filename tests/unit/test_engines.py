"""Which profiles offer a Spark family, and when the default families move to Spark."""

from __future__ import annotations

import pytest

from configs.settings import load_settings
from training.engines import at_scale, offered, require_offered, start_engines
from training.errors import TaskError
from training.families import FAMILIES


def _settings(profile: str, tmp_path, **env: str):
    return load_settings(profile, env={"SMAP_DATA_DIR": str(tmp_path), **env})


def test_only_the_cluster_profile_offers_the_spark_family(tmp_path):
    assert offered(_settings("cluster", tmp_path), "xgboost_spark")
    for profile in ("local", "services"):
        settings = _settings(profile, tmp_path)
        assert not offered(settings, "xgboost_spark") and offered(settings, "xgboost")
        with pytest.raises(
            TaskError, match=rf"^families: xgboost_spark fits on spark, .*{profile}"
        ):
            require_offered(settings, ("linear", "xgboost_spark"))


def test_large_sets_swap_xgboost_for_its_spark_counterpart_where_offered(tmp_path):
    cluster = _settings("cluster", tmp_path, SMAP_TRAINING__SPARK_MIN_ROWS="1000")
    local = _settings("local", tmp_path, SMAP_TRAINING__SPARK_MIN_ROWS="1000")
    families = ("linear", "xgboost", "lightgbm")

    assert at_scale(cluster, families, 1000) == ("linear", "xgboost_spark", "lightgbm")
    assert at_scale(cluster, families, 999) == families
    assert at_scale(local, families, 10**9) == families


def test_every_family_with_a_counterpart_names_a_registered_family():
    for family in FAMILIES.values():
        assert family.at_scale is None or family.at_scale in FAMILIES


def test_families_outside_the_registry_need_no_engine(tmp_path):
    settings = _settings("local", tmp_path, SMAP_TRAINING__SPARK_MIN_ROWS="1")
    require_offered(settings, ("tfidf_logreg",))  # content's text families
    start_engines(settings, ("tfidf_logreg", "linear"))  # nothing to start
    assert at_scale(settings, ("tfidf_logreg",), 10) == ("tfidf_logreg",)
