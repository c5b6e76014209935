"""Typed smap settings: one frozen pydantic model per concern, loaded from a YAML profile.

Load order: `configs/<profile>.yaml` -> `${VAR}` / `${VAR:-default}` expansion -> `SMAP_*`
environment overrides (nested keys joined by `__`, e.g. `SMAP_REDIS__PORT=6380`) -> validation.
Secrets (the PostgreSQL password) are never read from YAML, only from the environment.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args
from urllib.error import URLError
from urllib.parse import quote, urlencode
from urllib.request import urlopen

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from configs.platforms import PlatformSettings

CONFIG_DIR = Path(__file__).resolve().parent
PROFILES = ("local", "services", "cluster")
_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# read directly, not as config keys (SMAP_API_KEY is a secret the service reads at start)
_RESERVED_ENV = {"SMAP_PROFILE", "SMAP_CONFIG", "SMAP_DATABASE", "SMAP_API_KEY"}
_warned_env: set[str] = set()  # unknown variables already warned about in this process
_CRON = r"^\S+( \S+){4}$"  # five cron fields; Dagster validates the rest when it loads


class ConfigError(ValueError):
    """A profile that cannot be loaded; the message is one line naming the key."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PostgresSettings(_Frozen):
    host: str = "127.0.0.1"
    port: int = Field(5432, ge=1, le=65535)
    user: str = "postgres"
    password: SecretStr = SecretStr("")
    database: str = "smap"
    db_schema: str = Field("smap", pattern=r"^[a-z_][a-z0-9_]*$")
    sslmode: Literal["disable", "prefer", "require"] = "disable"
    # libpq counts whole seconds; the read timeout bounds a query whose server went away
    # (TCP keepalives and tcp_user_timeout), so no client waits forever on a dead connection
    connect_timeout_seconds: int = Field(5, ge=1)
    read_timeout_seconds: int = Field(60, ge=2)

    def timeouts(self) -> dict[str, int]:
        """libpq connection parameters that bound connecting and waiting on a dead server."""
        read = self.read_timeout_seconds
        return {
            "connect_timeout": self.connect_timeout_seconds,
            "keepalives": 1,
            "keepalives_idle": max(1, read // 2),
            "keepalives_interval": max(1, read // 6),
            "keepalives_count": 3,
            "tcp_user_timeout": read * 1000,
        }

    def dsn(self, database: str | None = None) -> str:
        """libpq key/value DSN, for psycopg2 and psycopg 3 (values quoted: a password may hold
        spaces, quotes or '#')."""
        params: dict[str, object] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "dbname": database or self.database,
            "sslmode": self.sslmode,
            **self.timeouts(),
        }
        pw = self.password.get_secret_value()
        if pw:
            params["password"] = pw
        return " ".join(f"{key}={_libpq_quote(str(value))}" for key, value in params.items())

    def sqlalchemy_url(self, database: str | None = None) -> str:
        """URL for SQLAlchemy users (Feast registry, MLflow, Optuna), timeouts included."""
        pw = self.password.get_secret_value()
        auth = quote(self.user, safe="") + (f":{quote(pw, safe='')}" if pw else "")
        query = urlencode({"sslmode": self.sslmode, **self.timeouts()})
        db = database or self.database
        return f"postgresql+psycopg2://{auth}@{self.host}:{self.port}/{db}?{query}"

    def companion(self, suffix: str) -> PostgresSettings:
        """Settings for `<database>_<suffix>`: MLflow and Optuna each need their own database
        because both keep an `alembic_version` table."""
        return self.model_copy(update={"database": f"{self.database}_{suffix}"})


class RedisSettings(_Frozen):
    host: str = "127.0.0.1"
    port: int = Field(6379, ge=1, le=65535)
    db: int = Field(0, ge=0, le=15)
    # a Redis that accepts connections but never answers must not hang a job
    connect_timeout_seconds: float = Field(3.0, gt=0)
    read_timeout_seconds: float = Field(30.0, gt=0)

    def client(self, timeout_seconds: float | None = None):
        """A redis-py client on this server, with the profile's connect and read timeouts
        (or `timeout_seconds` for both: a health check that must answer at once)."""
        import redis

        both = timeout_seconds is not None
        return redis.Redis(
            host=self.host,
            port=self.port,
            db=self.db,
            socket_connect_timeout=timeout_seconds if both else self.connect_timeout_seconds,
            socket_timeout=timeout_seconds if both else self.read_timeout_seconds,
        )

    def connection_string(self) -> str:
        """Feast's Redis connection string; Feast passes the options on to redis-py."""
        return (
            f"{self.host}:{self.port},db={self.db},"
            f"socket_connect_timeout={self.connect_timeout_seconds},"
            f"socket_timeout={self.read_timeout_seconds}"
        )


class WarehouseSettings(_Frozen):
    """Where raw and analytics tables live: Parquet files, a PostgreSQL schema or the
    cluster's lake (Parquet folders partitioned by day, ingestion/lake.py)."""

    type: Literal["parquet", "postgres", "lake"] = "parquet"
    # the cluster profile's lake: a base URI every machine reaches (file:///shared/lake,
    # s3a://bucket/path), one folder per table, partitioned by date; null is <data_dir>/lake
    lake_uri: str | None = None
    # rows `smap ingest csv` reads, validates and stages at a time: its memory grows with it
    import_chunk_rows: int = Field(50_000, ge=1)


class FeastSettings(_Frozen):
    project: str = Field("smap", pattern=r"^[a-z][a-z0-9_]*$")
    # duckdb: Feast's DuckDB store over the Parquet tables with an ASOF point-in-time join
    # (TTL kept, one row per entity row; feature_repo/offline_store.py); duckdb_window: Feast's
    # own DuckDB join, file: Feast's Dask store, both kept for benchmarks/training_set.py;
    # spark: Feast's Spark store over the lake, Feast's Spark compute engine materializes
    offline_store: Literal["duckdb", "duckdb_window", "file", "postgres", "spark"] = "duckdb"
    online_store: Literal["sqlite", "redis"] = "sqlite"
    registry: Literal["file", "sql"] = "file"


class MLflowSettings(_Frozen):
    """Tracking backend; `null` means the profile's default (SQLite under data_dir)."""

    tracking_uri: str | None = None
    # server: the tracking server `smap cluster up` starts (http://cluster.host:mlflow_port)
    backend: Literal["sqlite", "postgres", "server"] = "sqlite"
    # where new experiments keep their artifacts: a folder or object-store URI that every
    # machine of the team reaches (file:///shared/mlartifacts, s3://bucket/path);
    # null is <data_dir>/mlartifacts, or the server's own store when tracking goes over HTTP
    artifact_location: str | None = None
    experiment_prefix: str = "smap"
    # an MLflow tracking server (http URI) that stops answering: per-request bound and retries
    request_timeout_seconds: int = Field(60, ge=1)
    request_max_retries: int = Field(2, ge=0)


class OptunaSettings(_Frozen):
    storage: Literal["sqlite", "postgres"] = "sqlite"
    study_prefix: str = "smap"


# Where MLflow (runs, model registry) and Optuna (studies) keep their state: a SQLAlchemy
# database of the tool's own. Both tables are here, not in training/, because the settings'
# URLs come from them and `smap config` or the dashboard must not import the training stack.


@dataclass(frozen=True)
class SqliteFile:
    """`<data_dir>/<name>.db`; the tool creates the file on first use."""

    name: str

    def path(self, settings: Settings) -> Path:
        return settings.root / f"{self.name}.db"

    def url(self, settings: Settings) -> str:
        return f"sqlite:///{self.path(settings)}"

    def server_database(self, settings: Settings) -> PostgresSettings | None:
        """None: SQLAlchemy creates the file on first use."""
        return None

    def exists(self, settings: Settings) -> bool:
        return self.path(settings).is_file()


@dataclass(frozen=True)
class PostgresCompanion:
    """`<database>_<suffix>` on the profile's PostgreSQL server (its own database: MLflow and
    Optuna each keep an `alembic_version` table), created on first use."""

    suffix: str

    def url(self, settings: Settings) -> str:
        return settings.postgres.companion(self.suffix).sqlalchemy_url()

    def server_database(self, settings: Settings) -> PostgresSettings | None:
        """The database to create on the server before first use."""
        return settings.postgres.companion(self.suffix)

    def exists(self, settings: Settings) -> bool:
        """Whether the database was ever created (asked of the profile's own database)."""
        import psycopg2

        companion = settings.postgres.companion(self.suffix).database
        with psycopg2.connect(settings.postgres.dsn()) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (companion,))
            found = cur.fetchone() is not None
        conn.close()
        return found


@dataclass(frozen=True)
class TrackingServer:
    """An MLflow tracking server reached over HTTP (`smap cluster up` starts it on
    cluster.host:cluster.mlflow_port). It keeps runs and the registry in `store` and serves
    artifacts itself (`mlflow-artifacts:/`), so no client needs the artifact folder on disk."""

    store: PostgresCompanion

    def url(self, settings: Settings) -> str:
        return f"http://{settings.cluster.host}:{settings.cluster.mlflow_port}"

    def server_database(self, settings: Settings) -> PostgresSettings | None:
        """None: the server, not its clients, creates its database (`smap cluster up`)."""
        return None

    def exists(self, settings: Settings, timeout_seconds: float = 3.0) -> bool:
        """Whether the server answers its health check."""
        try:
            with urlopen(f"{self.url(settings)}/health", timeout=timeout_seconds) as answer:
                return answer.status == 200
        except (URLError, OSError):
            return False


# the server `smap cluster up` runs: its runs and registry beside the services profile's
TRACKING_SERVER = TrackingServer(PostgresCompanion("mlflow"))
# mlflow.backend -> MLflow's tracking and model registry store (when no tracking_uri is set)
TRACKING_STORES: dict[str, SqliteFile | PostgresCompanion | TrackingServer] = {
    "sqlite": SqliteFile("mlflow"),
    "postgres": PostgresCompanion("mlflow"),
    "server": TRACKING_SERVER,
}
# optuna.storage -> Optuna's study storage
STUDY_STORAGES: dict[str, SqliteFile | PostgresCompanion] = {
    "sqlite": SqliteFile("optuna"),
    "postgres": PostgresCompanion("optuna"),
}


class SparkSettings(_Frozen):
    """The Spark that the cluster profile's heavy steps run on (ETL, Feast's Spark offline
    store and compute engine): a standalone master (`spark://host:port`) or `local[N]`."""

    master: str = Field("local[2]", pattern=r"^(local(\[(\d+|\*)\])?|spark://[^/\s]+:\d+)$")
    app_prefix: str = "smap"  # applications show in the master's UI as <prefix>-<step>
    driver_memory: str = Field("2g", pattern=r"^\d+[kmgt]$")
    executor_memory: str = Field("1g", pattern=r"^\d+[kmgt]$")
    shuffle_partitions: int = Field(8, ge=1)  # Spark's 200 is for far bigger clusters
    conf: dict[str, str] = {}  # any other spark.* setting, passed on as it is


class ClusterSettings(_Frozen):
    """What `smap cluster up` starts on this machine: a Spark standalone master with its
    workers and an MLflow tracking server, each on its own port."""

    host: str = "127.0.0.1"
    spark_port: int = Field(7077, ge=1, le=65535)
    spark_webui_port: int = Field(8080, ge=1, le=65535)
    workers: int = Field(2, ge=1, le=16)
    worker_cores: int = Field(1, ge=1)
    worker_memory: str = Field("2g", pattern=r"^\d+[kmgt]$")
    mlflow_port: int = Field(5005, ge=1, le=65535)


class SimulatorSettings(_Frozen):
    preset: Literal["quick", "small", "default"] = "quick"
    seed: int = Field(42, ge=0)  # numpy's generators take no negative seed
    start_date: str = Field("2026-01-01", pattern=r"^\d{4}-\d{2}-\d{2}$")


class TrainingSettings(_Frozen):
    seed: int = 42
    trials: int = Field(20, ge=1)
    timeout_seconds: float | None = Field(None, gt=0)
    promote_margin: float = Field(0.0, ge=0)
    families: tuple[str, ...] | None = None
    # entity rows per Feast historical query, in time order: bounds the join's memory (the
    # stores join every feature row within the TTL before keeping the latest); measured with
    # benchmarks/training_set.py
    retrieval_chunk_rows: int = Field(100_000, ge=1000)
    # from this many training rows, a family with a Spark counterpart (xgboost) fits on Spark
    # where the profile offers it (cluster); below it, Spark's start-up and data transfer cost
    # more than the fit (docs/scale-out.md)
    spark_min_rows: int = Field(2_000_000, ge=1)
    # model selection (training/selection.py): up to this many train + validation rows every
    # trial is scored by time-ordered cross-validation over `cv_folds` expanding windows; above
    # it on the one validation split, where it is large enough to trust
    cv_max_rows: int = Field(50_000, ge=0)
    cv_folds: int = Field(3, ge=2, le=10)
    # cheap, strong candidates (a ridge or logistic regression, with and without the naive
    # baseline as offset) scored beside every run's trials, and a blend of the best of several
    # families, chosen only when cross-validation says so
    anchors: bool = True
    blend: bool = True


class ServingSettings(_Frozen):
    """The prediction service: where it listens, how it follows the registry, its log."""

    host: str = "127.0.0.1"  # loopback unless a profile opens it up
    port: int = Field(3000, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64)
    alias_poll_seconds: float = Field(10.0, gt=0)  # how soon a promoted champion serves
    log_flush_seconds: float = Field(1.0, gt=0)
    log_batch_rows: int = Field(5_000, ge=1)
    log_buffer_rows: int = Field(100_000, ge=1)  # past this, log rows are dropped and counted
    # direct: read Feast's online tables for a batch in one query / pipeline
    # (serving/online_reader.py); feast: through FeatureStore.get_online_features
    online_reads: Literal["direct", "feast"] = "direct"
    # the longest a request waits on the online store (connect and read, no retries): past
    # it the answer is 503 naming the store; the event loop never waits on it (docs/serving.md)
    dependency_timeout_ms: int = Field(250, ge=1, le=60_000)
    # how often a background check pings the online store and compares its materialization
    # marks with the registry's (readiness and the `x-smap-degraded` header read its result)
    online_check_seconds: float = Field(2.0, gt=0)
    # BentoML's OpenTelemetry spans (no exporter is configured: they cost ~15% of a request
    # and go nowhere) and its Prometheus request metrics on /metrics
    tracing: bool = False
    metrics: bool = True
    # a request body over this is refused (413) before it is read or as soon as the bytes
    # streamed pass it; 1 MiB is 4 KiB per draft of a full batch of 256
    max_body_bytes: int = Field(1_048_576, ge=1_024)
    # with SMAP_API_KEY set, /metrics needs the key too unless this opens it (a scraper
    # without the key); the health probes are always open
    metrics_open: bool = False


class DriftThresholds(_Frozen):
    """When a task's check says drift. Column scores are distances (Wasserstein, normed by the
    reference's spread, for numbers; Jensen-Shannon for categories), so a large window does
    not flag a harmless shift the way a p-value would."""

    column: float = Field(0.2, gt=0)  # a column drifts when its distance exceeds this
    drift_share: float = Field(0.3, gt=0, le=1)  # data drift: this share of features drifted
    prediction: float = Field(0.15, gt=0)  # prediction drift: distance of the predictions
    label: float = Field(0.15, gt=0)  # label drift: matured outcomes against training labels
    # features that grow with time by nature (an account only gets older): shown in the
    # report, left out of the drift share, or every window would drift
    trending: tuple[str, ...] = (
        "account_age_days",
        "author_prior_posts",
        "matured_posts_all",
        "followers",
    )
    quality_drop: float = Field(0.1, ge=0)  # metric worse than the test score by this much
    min_rows: int = Field(200, ge=1)  # fewer logged rows: not enough to judge
    min_labelled: int = Field(100, ge=1)  # fewer matured labels: quality is not judged


class MonitoringSettings(_Frozen):
    """Drift checks on the prediction log and the retraining they may start."""

    tasks: tuple[str, ...] = ("engagement", "virality", "churn")  # `smap monitor --all`
    thresholds: dict[str, DriftThresholds] = {}  # per task; missing tasks use `default`
    default: DriftThresholds = DriftThresholds()
    max_rows: int = Field(1_000_000, ge=1_000)  # newest logged rows a check reads at most
    consecutive: int = Field(2, ge=1)  # drift verdicts in a row before a retrain starts
    retrain: bool = True  # false: checks only report
    retrain_days: int = Field(60, ge=14)  # the retrain's window: the newest labelled days
    retrain_trials: int = Field(6, ge=1)
    retrain_families: tuple[str, ...] | None = ("linear", "xgboost", "lightgbm")
    # no retrain of a task this soon after its last one (a burst of odd traffic, or two
    # watchers, would otherwise retrain and promote again and again)
    retrain_cooldown_minutes: float = Field(60.0, ge=0)
    # Parquet log parts older than this are compacted into one file per hour before a check
    compact_after_minutes: float = Field(10.0, gt=0)

    def for_task(self, task: str) -> DriftThresholds:
        return self.thresholds.get(task, self.default)


class AnalyticsSettings(_Frozen):
    """The analytics layer: anomaly alerts, where they are posted, what an engagement is worth."""

    # POST target of `smap alerts --post` (JSON); a chat webhook URL may hold a token, so set
    # it from the environment (SMAP_ANALYTICS__ALERT_WEBHOOK_URL) rather than a shared file
    alert_webhook_url: str | None = Field(None, pattern=r"^https?://\S+$")
    alert_webhook_timeout_seconds: float = Field(10.0, gt=0)
    alert_threshold: float = Field(3.5, gt=0)  # |robust z| that flags a day (Iglewicz-Hoaglin)
    alert_window_days: int = Field(28, ge=7)  # the account's own history a day is scored on
    alert_recent_days: int = Field(7, ge=1)  # only days this close to the newest data alert
    value_per_engagement: float = Field(0.10, ge=0)  # campaign ROI: what one interaction earns


class OrchestrationSchedules(_Frozen):
    """When Dagster runs each job (cron, in `orchestration.timezone`); null: never scheduled."""

    materialize: str | None = Field("0 * * * *", pattern=_CRON)  # ETL, then the online store
    analytics: str | None = Field("15 6 * * *", pattern=_CRON)  # analytics, then the report
    monitor: str | None = Field("30 * * * *", pattern=_CRON)  # drift checks; drift retrains


class OrchestrationSettings(_Frozen):
    """smap's jobs on Dagster (docs/orchestration.md): schedules, retries, the UI's port. Its
    state lives under `<data_dir>/dagster/` locally, in `<database>_dagster` on PostgreSQL."""

    schedules: OrchestrationSchedules = OrchestrationSchedules()
    storage: Literal["sqlite", "postgres"] = "sqlite"  # runs, events and schedule ticks
    timezone: str = "UTC"
    retries: int = Field(2, ge=0, le=10)  # a failed step runs again this many times
    retry_delay_seconds: float = Field(60.0, ge=0)  # before the first retry; doubles after
    max_concurrent_runs: int = Field(4, ge=1)  # runs of all jobs at once (one per job)
    ui_port: int = Field(3070, ge=0, le=65535)  # `smap orchestrate ui` on 127.0.0.1


class Settings(_Frozen):
    profile: Literal["local", "services", "cluster"] = "local"
    telemetry: bool = False  # opt in to MLflow / BentoML / Evidently usage telemetry
    data_dir: Path = Path(".smap")
    warehouse: WarehouseSettings = WarehouseSettings()
    postgres: PostgresSettings = PostgresSettings()
    redis: RedisSettings = RedisSettings()
    feast: FeastSettings = FeastSettings()
    mlflow: MLflowSettings = MLflowSettings()
    optuna: OptunaSettings = OptunaSettings()
    simulator: SimulatorSettings = SimulatorSettings()
    training: TrainingSettings = TrainingSettings()
    serving: ServingSettings = ServingSettings()
    analytics: AnalyticsSettings = AnalyticsSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    spark: SparkSettings = SparkSettings()
    platforms: PlatformSettings = PlatformSettings()  # docs/platforms.md
    cluster: ClusterSettings = ClusterSettings()
    orchestration: OrchestrationSettings = OrchestrationSettings()

    @property
    def root(self) -> Path:
        return self.data_dir.resolve()

    @property
    def warehouse_dir(self) -> Path:
        return self.root / "warehouse"

    @property
    def lake_uri(self) -> str:
        """The lake's base URI, no trailing slash: table T lives under `<lake_uri>/T/`."""
        if self.warehouse.lake_uri:
            return self.warehouse.lake_uri.rstrip("/")
        return (self.root / "lake").as_uri()

    @property
    def feature_repo_dir(self) -> Path:
        return self.root / "feature_repo"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def online_store_db(self) -> Path:
        """The file of Feast's SQLite online store (`feast.online_store: sqlite`)."""
        return self.root / "online_store.db"

    @property
    def mlflow_tracking_uri(self) -> str:
        if self.mlflow.tracking_uri:
            return self.mlflow.tracking_uri
        return TRACKING_STORES[self.mlflow.backend].url(self)

    @property
    def mlflow_artifact_root(self) -> str | None:
        """Where new experiments keep artifacts; None over HTTP: the tracking server's own
        store (`mlflow-artifacts:/`, proxied), which no client needs on its disk."""
        if self.mlflow.artifact_location:
            return self.mlflow.artifact_location
        if self.mlflow_tracking_uri.startswith(("http://", "https://")):
            return None
        return (self.root / "mlartifacts").as_uri()

    @property
    def optuna_storage_url(self) -> str:
        return STUDY_STORAGES[self.optuna.storage].url(self)


def expand_env(text: str, env: dict[str, str]) -> str:
    """Fill `${VAR}` and `${VAR:-default}`; an unset VAR without default is an error."""

    def fill(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"config error: ${{{name}}} is used in the profile but not set")

    return _ENV_PATTERN.sub(fill, text)


def _libpq_quote(value: str) -> str:
    """Quote a libpq DSN value, so spaces, quotes and '#' stay part of it."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def _annotation(path: list[str]) -> object:
    """The type of the setting at `path`, or None when there is no such setting."""
    model: type[BaseModel] = Settings
    for depth, part in enumerate(path):
        field = model.model_fields.get(part)
        if field is None:
            return None
        if depth == len(path) - 1:
            return field.annotation
        if not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return None
        model = field.annotation
    return None


def _is_secret(path: list[str]) -> bool:
    """True when the setting at `path` is typed SecretStr (read verbatim, never printed)."""
    return _annotation(path) is SecretStr


def _is_text(path: list[str]) -> bool:
    """A text or path setting (optional or not): its value is the variable's exact text."""
    kinds = set(get_args(_annotation(path))) or {_annotation(path)}
    return bool(kinds - {type(None)}) and kinds - {type(None)} <= {str, Path, SecretStr}


def _env_value(key: str, value: str, path: list[str]) -> object:
    """Text, path and secret settings take the value verbatim ('abc #def' stays whole, '0123'
    stays text); other values are YAML scalars or lists (`[a, b]`, `null`)."""
    if value == "" or _is_secret(path):
        return value
    if _is_text(path) and value not in ("null", "~"):
        return value
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        raise ConfigError(f"config error: {key} is not a valid value: {value!r}") from None


def _setting_names(model: type[BaseModel] = Settings, prefix: str = "SMAP_") -> list[str]:
    """Every variable name that sets a leaf setting (SMAP_REDIS__PORT, SMAP_DATA_DIR, ...)."""
    names = []
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            names += _setting_names(kind, f"{prefix}{name.upper()}__")
        else:
            names.append(f"{prefix}{name.upper()}")
    return names


def _warn_unknown(key: str) -> None:
    """A stray SMAP_* variable (a typo, another tool's) must not block every command: say which
    setting it probably meant, once per process, on stderr whatever logging is set up."""
    if key in _warned_env:
        return
    _warned_env.add(key)
    # compared without the shared SMAP_ prefix, which would make every name look close
    names = {name[len("SMAP_") :]: name for name in [*_setting_names(), *sorted(_RESERVED_ENV)]}
    close = difflib.get_close_matches(key[len("SMAP_") :], list(names), n=1)
    hint = f"; did you mean {names[close[0]]}?" if close else ""
    print(f"warning: {key} is not a smap setting, ignored{hint}", file=sys.stderr, flush=True)


def _apply_env_overrides(raw: dict, env: dict[str, str], referenced: set[str]) -> dict:
    """Apply SMAP_* settings; variables the profile itself references (${SMAP_DATABASE}) are
    known, others that name no setting are warned about and skipped."""
    for key, value in env.items():
        if not key.startswith("SMAP_") or key in _RESERVED_ENV:
            continue
        path = key[len("SMAP_") :].lower().split("__")
        if _annotation(path) is None:
            if key not in referenced:
                _warn_unknown(key)
            continue
        node = raw
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[path[-1]] = _env_value(key, value, path)
    return raw


def _secret_values(env: dict[str, str]) -> list[str]:
    """The secrets given in the environment, to scrub from any message."""
    found = []
    for key, value in env.items():
        if key.startswith("SMAP_") and value:
            if _is_secret(key[len("SMAP_") :].lower().split("__")):
                found.append(value)
    return found


def _format_error(err: ValidationError, source: str, secrets: list[str]) -> str:
    first = err.errors()[0]
    loc = [str(p) for p in first["loc"]]
    where = ".".join(loc) or "<root>"
    detail = first["msg"]
    if first["type"] == "extra_forbidden":
        detail = "unknown key"
    got = first.get("input")
    shown = (
        got is not None
        and first["type"] != "extra_forbidden"
        and not isinstance(got, dict | list)  # a section may hold a secret
        and not _is_secret(loc)
    )
    suffix = f" (got {got!r})" if shown else ""
    more = f" [+{len(err.errors()) - 1} more]" if len(err.errors()) > 1 else ""
    message = f"config error in {source}: {where}: {detail}{suffix}{more}"
    for secret in secrets:
        message = message.replace(secret, "***")
    return message


def profile_path(profile: str) -> Path:
    if profile not in PROFILES:
        raise ConfigError(
            f"config error: SMAP_PROFILE={profile!r} is not a profile "
            f"(choose {', '.join(PROFILES)})"
        )
    return CONFIG_DIR / f"{profile}.yaml"


def load_settings(
    profile: str | None = None, path: Path | None = None, env: dict[str, str] | None = None
) -> Settings:
    """Load the active profile (default `local`, or `SMAP_PROFILE`) with env overrides applied."""
    env = dict(os.environ if env is None else env)
    if path is None:
        path = Path(env["SMAP_CONFIG"]) if "SMAP_CONFIG" in env else None
    if path is None:
        path = profile_path(profile or env.get("SMAP_PROFILE", "local"))
    if not path.is_file():
        raise ConfigError(f"config error: profile file {path} does not exist")
    text = path.read_text()
    referenced = {match.group(1) for match in _ENV_PATTERN.finditer(text)}
    try:
        raw = yaml.safe_load(expand_env(text, env)) or {}
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" line {line + 1}" if line is not None else ""
        raise ConfigError(f"config error in {path.name}{where}: not valid YAML") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"config error in {path.name}: top level must be a mapping")
    if "password" in (raw.get("postgres") or {}):
        raise ConfigError(
            f"config error in {path.name}: postgres.password: secrets come only from the "
            "environment (SMAP_POSTGRES__PASSWORD)"
        )
    raw = _apply_env_overrides(raw, env, referenced)
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, path.name, _secret_values(env))) from None


def telemetry_env(opt_in: bool = False) -> dict[str, str]:
    """Environment that keeps MLflow, BentoML and Evidently from sending usage data."""
    if opt_in:
        return {}
    return {
        "DO_NOT_TRACK": "true",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "BENTOML_DO_NOT_TRACK": "True",
        "EVIDENTLY_DISABLE_TELEMETRY": "1",
    }
