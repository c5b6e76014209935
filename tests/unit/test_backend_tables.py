"""Backends are chosen by looking the profile's value up in one table per concern, never by
comparing a backend's name: a new backend (a `cluster` profile's Spark offline store, MLflow
over HTTP) is then one new value in the setting's `Literal` and one entry per table, and these
tests say which table still lacks it.

(a) scans the source of smap's packages for a comparison (==, !=, in, not in, is, match/case)
with a string naming a backend value, an `isinstance` on a warehouse class, the SQLite online
store's file name spelled outside its one property and a Redis client built by hand.
(b) holds every table to the values of its setting's `Literal` type.
"""

from __future__ import annotations

import ast
import types
import typing
from collections.abc import Collection, Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from configs.settings import CONFIG_DIR, PROFILES, STUDY_STORAGES, TRACKING_STORES, Settings

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (
    "configs",
    "ingestion",
    "feature_repo",
    "training",
    "analytics",
    "serving",
    "monitoring",
    "pipelines",
)

# Literal settings that choose something other than a backend (their values are not searched)
NOT_BACKENDS = {
    "postgres.sslmode": "a libpq connection option, passed on as it is",
    "simulator.preset": "how much data the simulator makes",
    "serving.online_reads": "smap's direct reader or Feast's get_online_features, same store",
}

# (file, the comparison as ast.unparse writes it) -> why it is not a backend choice; empty:
# every backend choice is a table lookup
ALLOWED_COMPARISONS: dict[tuple[str, str], str] = {}


def _literal_values(annotation: object) -> tuple[str, ...] | None:
    if typing.get_origin(annotation) is typing.Literal:
        return typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):  # Literal[...] | None
        for arg in typing.get_args(annotation):
            if (values := _literal_values(arg)) is not None:
                return values
    return None


def literal_settings(model: type[BaseModel] = Settings, prefix: str = "") -> dict[str, tuple]:
    """Every setting typed `Literal[...]`, by its dotted name, with its values."""
    found: dict[str, tuple] = {}
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            found |= literal_settings(kind, f"{prefix}{name}.")
        elif (values := _literal_values(kind)) is not None:
            found[f"{prefix}{name}"] = values
    return found


BACKEND_SETTINGS = {k: v for k, v in literal_settings().items() if k not in NOT_BACKENDS}
BACKEND_VALUES = frozenset(v for values in BACKEND_SETTINGS.values() for v in values)


def backend_tables() -> dict[str, dict[str, Collection]]:
    """setting -> {table name: the table} of every table keyed by that setting's value."""
    from feature_repo.data_sources import SOURCE_KINDS
    from feature_repo.online_state import ONLINE_STORES
    from feature_repo.store import OFFLINE_STORES, REGISTRIES
    from ingestion.etl import ETL_ENGINES
    from ingestion.warehouse import WAREHOUSES
    from pipelines.orchestrate import INSTANCE_STORAGES
    from serving.online_reader import ONLINE_READS
    from serving.prediction_log import PREDICTION_LOGS
    from training.engines import PROFILE_ENGINES
    from training.workers import STUDY_LOCKS

    return {
        "profile": {
            "configs.settings.PROFILES": PROFILES,
            "training.engines.PROFILE_ENGINES": PROFILE_ENGINES,
        },
        "warehouse.type": {
            "ingestion.warehouse.WAREHOUSES": WAREHOUSES,
            "ingestion.etl.ETL_ENGINES": ETL_ENGINES,
            "serving.prediction_log.PREDICTION_LOGS": PREDICTION_LOGS,
        },
        "feast.offline_store": {
            "feature_repo.store.OFFLINE_STORES": OFFLINE_STORES,
            "feature_repo.data_sources.SOURCE_KINDS": SOURCE_KINDS,
        },
        "feast.online_store": {
            "feature_repo.online_state.ONLINE_STORES": ONLINE_STORES,
            "serving.online_reader.ONLINE_READS": ONLINE_READS,
        },
        "feast.registry": {"feature_repo.store.REGISTRIES": REGISTRIES},
        "mlflow.backend": {"configs.settings.TRACKING_STORES": TRACKING_STORES},
        "optuna.storage": {
            "configs.settings.STUDY_STORAGES": STUDY_STORAGES,
            "training.workers.STUDY_LOCKS": STUDY_LOCKS,
        },
        "orchestration.storage": {"pipelines.orchestrate.INSTANCE_STORAGES": INSTANCE_STORAGES},
    }


# -- (a) the source scan --------------------------------------------------------------------


def _strings(node: ast.AST) -> set[str]:
    """The string constants a comparison side is or holds ("a", ("a", "b"), {"a"}, ["a"])."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return {
            e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)
        }
    return set()


_COMPARING = (ast.Eq, ast.NotEq, ast.In, ast.NotIn, ast.Is, ast.IsNot)


def backend_comparisons(tree: ast.AST, values: Collection[str]) -> Iterator[tuple[int, str]]:
    """(line, source) of every comparison with a string constant naming one of `values`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            for op, left, right in zip(node.ops, sides[:-1], sides[1:], strict=True):
                if isinstance(op, _COMPARING) and (_strings(left) | _strings(right)) & set(values):
                    yield node.lineno, ast.unparse(node)
                    break
        elif isinstance(node, ast.MatchValue) and _strings(node.value) & set(values):
            yield node.lineno, f"case {ast.unparse(node.value)}"


def _sources() -> Iterator[tuple[str, ast.AST]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield str(path.relative_to(ROOT)), ast.parse(path.read_text(), str(path))


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring constants of a module and its classes and functions."""
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            if isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def test_the_scan_finds_comparisons_with_backend_names():
    planted = ast.parse(
        "if settings.feast.online_store == 'redis': pass\n"
        "if kind != 'sqlite': pass\n"
        "ok = settings.warehouse.type in ('parquet', 'elsewhere')\n"
        "ok = 'postgres' not in kinds\n"
        "match settings.mlflow.backend:\n"
        "    case 'postgres' | 'other': pass\n"
        "ok = settings.serving.online_reads == 'direct'\n"  # not a backend value
        "ok = STORES[settings.feast.online_store]\n"  # a lookup, not a comparison
    )
    assert [line for line, _ in backend_comparisons(planted, BACKEND_VALUES)] == [1, 2, 3, 4, 6]


def test_backend_values_come_from_the_settings_literals():
    assert {"parquet", "postgres", "duckdb", "duckdb_window", "file", "sql"} <= BACKEND_VALUES
    assert {"sqlite", "redis", "local", "services"} <= BACKEND_VALUES
    assert "direct" not in BACKEND_VALUES and "require" not in BACKEND_VALUES
    assert set(NOT_BACKENDS) <= set(literal_settings())  # no stale exemption


def test_no_backend_is_chosen_by_comparing_its_name():
    found = []
    for name, tree in _sources():
        for line, source in backend_comparisons(tree, BACKEND_VALUES):
            if (name, source) not in ALLOWED_COMPARISONS:
                found.append(f"{name}:{line}: {source}")
    assert not found, (
        "backend chosen by a string comparison; look the setting up in its table instead "
        "(or add a non-backend use to ALLOWED_COMPARISONS, saying why):\n" + "\n".join(found)
    )


def test_no_isinstance_on_a_warehouse_class():
    from ingestion.warehouse import WAREHOUSES

    classes = {cls.__name__ for cls in WAREHOUSES.values()}
    found = []
    for name, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in (
                "isinstance",
                "issubclass",
            ):
                named = {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)}
                if named & classes:
                    found.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
    assert not found, "a warehouse kind is a WAREHOUSES entry:\n" + "\n".join(found)


def test_the_sqlite_online_store_file_is_named_in_one_place():
    found = []
    for name, tree in _sources():
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            text = node.value if isinstance(node, ast.Constant) else None
            if isinstance(text, str) and "online_store.db" in text and id(node) not in docs:
                found.append(f"{name}:{node.lineno}")
    assert [f.split(":")[0] for f in found] == ["configs/settings.py"], (
        "use Settings.online_store_db: " + ", ".join(found)
    )


def test_redis_clients_come_from_the_profile_settings():
    found = []
    for name, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = ast.unparse(node.func)
                if func.split(".")[-1] in ("Redis", "StrictRedis", "from_url") and (
                    "redis" in func.lower()
                ):
                    found.append(f"{name}:{node.lineno}: {func}")
    assert [f.split(":")[0] for f in found] == ["configs/settings.py"], (
        "build Redis clients with RedisSettings.client(): " + ", ".join(found)
    )


# -- (b) every table has every value ---------------------------------------------------------


def test_every_backend_setting_has_its_tables_listed_here():
    assert set(backend_tables()) == set(BACKEND_SETTINGS), (
        "a Literal setting is a backend choice with tables (list them in backend_tables) or "
        "not a backend (add it to NOT_BACKENDS, saying why)"
    )


@pytest.mark.parametrize("setting", sorted(BACKEND_SETTINGS))
def test_every_table_has_an_entry_for_every_value(setting):
    values = set(BACKEND_SETTINGS[setting])
    for table_name, table in backend_tables()[setting].items():
        missing, stale = values - set(table), set(table) - values
        assert not missing, f"{table_name} has no entry for {setting}: {sorted(missing)}"
        assert not stale, f"{table_name} has entries {sorted(stale)} that {setting} cannot take"


def test_every_profile_has_its_file():
    for profile in BACKEND_SETTINGS["profile"]:
        assert (CONFIG_DIR / f"{profile}.yaml").is_file(), profile


def test_kpis_are_built_for_every_warehouse_class():
    from analytics.kpis import BUILDERS
    from ingestion.warehouse import WAREHOUSES

    assert set(BUILDERS) == set(WAREHOUSES.values())


def test_online_stores_answer_every_caller_the_same_way():
    """Each entry is called with the same arguments (a lambda per entry drifts apart)."""
    import inspect

    from feature_repo.online_state import ONLINE_STORES

    settings = Settings()
    for store in ONLINE_STORES.values():
        inspect.signature(store.unreachable).bind(settings, timeout_seconds=1.0)
        inspect.signature(store.unreachable).bind(settings)
        for call in (store.feast_config, store.where, store.file, store.state):
            inspect.signature(call).bind(settings)
