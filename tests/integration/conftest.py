"""Fixtures of the integration tier beyond tests/conftest.py."""

from cluster_fixtures import cluster_env, cluster_settings  # noqa: F401  (one cluster per session)
