"""The Dagster code location that `smap orchestrate ui` (webserver and daemon) loads: the
definitions of the profile in SMAP_PROFILE, built when Dagster first asks for them."""

from __future__ import annotations

import dagster as dg

from configs.settings import load_settings
from pipelines.orchestrate import definitions


@dg.definitions
def defs() -> dg.Definitions:
    return definitions(load_settings())
