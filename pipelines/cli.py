"""The `smap` command line: thin wrappers over the flows, one clear line on any error."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console
from rich.table import Table

from configs.data_dir import require_data_dir
from configs.errors import SmapError
from configs.settings import ConfigError, Settings, load_settings, telemetry_env
from pipelines.logs import log_to_data_dir, route_library_output

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="smap: train, serve and monitor social-media engagement models.",
)
config_app = typer.Typer(no_args_is_help=True, help="Inspect the effective configuration.")
features_app = typer.Typer(no_args_is_help=True, help="Feast feature store: apply and materialize.")
ingest_app = typer.Typer(
    help="ETL raw tables into analytics tables, or load your own export.",
    invoke_without_command=True,
)
app.add_typer(config_app, name="config")
app.add_typer(features_app, name="features")
app.add_typer(ingest_app, name="ingest")
models_app = typer.Typer(no_args_is_help=True, help="Registry: champion history and rollback.")
app.add_typer(models_app, name="models")
out = Console()

Profile = Annotated[
    str | None,
    typer.Option(
        "--profile", "-p", help="Config profile (local | services); default SMAP_PROFILE or local."
    ),
]


Rebuild = Annotated[
    bool,
    typer.Option(
        "--rebuild", help="Build the training set afresh instead of reusing the stored one."
    ),
]


def say_training_set(reused: bool, path) -> None:
    """On stderr, so `--json` output stays parseable."""
    how = "reused (the data has not changed since it was built)" if reused else "built and stored"
    Console(stderr=True).print(f"training set {how}: {path}")


@app.callback()
def verbosity(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show library warnings and logs here.")
    ] = False,
) -> None:
    """smap: train, serve and monitor social-media engagement models."""
    route_library_output(verbose)


def settings_for(profile: str | None, writes: bool = True) -> Settings:
    """The profile's settings; a command that `writes` first checks its data directory."""
    settings = load_settings(profile)
    for key, value in telemetry_env(settings.telemetry).items():
        os.environ.setdefault(key, value)
    if writes:
        require_data_dir(settings.root)
    log_to_data_dir(settings.root)
    return settings


def print_counts(title: str, counts: dict[str, object]) -> None:
    table = Table(title=title)
    table.add_column("item")
    table.add_column("value", justify="right")
    for key, value in counts.items():
        table.add_row(key, str(value))
    out.print(table)


@config_app.command("show")
def config_show(profile: Profile = None) -> None:
    """Print the effective configuration (profile + env overrides); secrets are masked."""
    settings = settings_for(profile, writes=False)  # also shows a data_dir that is unusable
    data = json.loads(settings.model_dump_json())
    from sqlalchemy.engine import make_url

    def masked(url: str) -> str:
        return make_url(url).render_as_string(hide_password=True)

    data["resolved"] = {
        "data_dir": str(settings.root),
        "mlflow_tracking_uri": masked(settings.mlflow_tracking_uri),
        "optuna_storage": masked(settings.optuna_storage_url),
    }
    out.print(yaml.safe_dump(data, sort_keys=False), end="")


@app.command()
def simulate(
    profile: Profile = None,
    preset: Annotated[str | None, typer.Option(help="quick | small | default")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default from config).")] = None,
    shift_at: Annotated[
        int | None,
        typer.Option("--shift-at", help="Day index from which behaviour changes (drift)."),
    ] = None,
) -> None:
    """Generate a seeded social platform into the raw and truth tables."""
    from ingestion.simulator import PRESETS
    from pipelines import flows

    if preset is not None and preset not in PRESETS:
        raise SmapError(f"--preset: unknown preset {preset!r} (choose {', '.join(PRESETS)})")
    settings = settings_for(profile)
    chosen = preset or settings.simulator.preset
    days = PRESETS[chosen].days
    if shift_at is not None and not 1 <= shift_at < days:
        # a shift needs days before and after it, or there is no drift to detect
        raise SmapError(
            f"--shift-at: {shift_at} is not a day of preset {chosen} ({days} days); "
            f"choose 1 to {days - 1}"
        )
    started = time.perf_counter()
    counts = flows.simulate(settings, preset=preset, seed=seed, shift_at=shift_at)
    seconds = time.perf_counter() - started
    total = sum(counts.values())
    summary = {
        **counts,
        "total rows": total,
        "seconds (generate + write)": round(seconds, 1),
        "rows/s": f"{total / seconds:,.0f}",
    }
    print_counts(f"simulated ({settings.profile})", summary)


@ingest_app.callback()
def ingest(
    ctx: typer.Context,
    profile: Profile = None,
    since: Annotated[
        str | None, typer.Option(help="Only replace partitions from this date (YYYY-MM-DD).")
    ] = None,
) -> None:
    """Run the ETL (raw -> analytics tables); idempotent per date partition."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = profile
        return
    from pipelines import flows

    settings = settings_for(profile)
    print_counts(f"ingested ({settings.profile})", flows.ingest(settings, since=since))


@ingest_app.command("csv")
def ingest_csv(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="CSV or Parquet export of your posts.")],
    mapping: Annotated[
        Path | None, typer.Option(help="YAML column mapping (see configs/mappings/).")
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Validate the file and mapping and print a summary; write nothing."
        ),
    ] = False,
    profile: Profile = None,
) -> None:
    """Load your own post export into the raw tables (rejects go to a file with reasons)."""
    from pipelines import flows

    if not path.is_file():
        raise SmapError(f"path: {path} does not exist")
    settings = settings_for(profile or ctx.obj)
    if dry_run:
        print_import_preview(path, flows.preview_csv(settings, path, mapping))
        return
    result = flows.ingest_csv(settings, path, mapping)
    print_counts(f"imported {path.name}", {k: v for k, v in vars(result).items()})


def print_import_preview(path: Path, preview) -> None:
    """The dry run's summary; exits 1 (as the import would) when no row could load."""
    delimiter = {",": "comma", ";": "semicolon", "\t": "tab"}.get(preview.delimiter, "-")
    when = (
        f"{preview.first_post:%Y-%m-%d %H:%M} .. {preview.last_post:%Y-%m-%d %H:%M} UTC"
        if preview.first_post is not None
        else "-"
    )
    print_counts(
        f"dry run of {path.name} (nothing written)",
        {
            "rows read": preview.rows_read,
            "rows that would load": preview.rows_would_load,
            "rows already loaded or repeated": preview.rows_duplicate,
            "rows rejected": preview.rows_rejected,
            "delimiter": delimiter,
            "time range": when,
            "accounts (new)": f"{preview.accounts} ({preview.accounts_new})",
            "engagement denominator": preview.engagement_denominator,
        },
    )
    if preview.rejects_by_reason:
        from rich.markup import escape  # column names such as "Likes [total]" are not markup

        reasons = {escape(reason): rows for reason, rows in preview.rejects_by_reason.items()}
        print_counts("rejects by reason", reasons)
    if preview.rows_would_load == 0 and preview.rows_duplicate == 0:
        raise SmapError(f"{path.name}: no row would load")


@features_app.command("apply")
def features_apply(profile: Profile = None) -> None:
    """Register entities, feature views and feature services in the Feast registry."""
    from pipelines import flows

    settings = settings_for(profile)
    names = flows.apply_features(settings)
    project = settings.feast.project
    out.print(f"applied {len(names)} Feast objects to project {project}: {', '.join(names)}")


@features_app.command("materialize")
def features_materialize(profile: Profile = None) -> None:
    """Load the latest feature values into the online store (incremental after the first run)."""
    from pipelines import flows

    settings = settings_for(profile)
    print_counts("materialized (keys in the online store)", flows.materialize_features(settings))


@app.command()
def demo(
    profile: Profile = None,
    preset: Annotated[
        str | None, typer.Option(help="Simulator preset (default from config).")
    ] = None,
    tasks: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated tasks to train (default: engagement; on imported posts "
            "engagement,trend). A task whose inputs are absent is skipped with the reason."
        ),
    ] = None,
) -> None:
    """Run the main job end to end on the active profile (on your imported posts if any)."""
    from pipelines import flows
    from training.tasks import get_task

    settings = settings_for(profile)
    chosen = tuple(t.strip() for t in tasks.split(",") if t.strip()) if tasks else None
    result = flows.demo(settings, preset=preset, tasks=chosen)
    posts = (
        {"posts simulated": result["simulate"]["content_posts"]}
        if "simulate" in result
        else {"posts": "your imported posts"}
    )
    summary = {
        "profile": settings.profile,
        "data_dir": str(settings.root),
        **posts,
        "analytics rows": sum(result["ingest"].values()),
        "feast objects": len(result["apply"]),
        "online store keys": sum(result["materialize"].values()),
    }
    for task, trained in result["trained"].items():
        metric = get_task(task).metric
        summary[f"{task} model"] = trained.model_uri
        summary[f"{task} test {metric}"] = round(trained.test_metrics[metric], 4)
        summary[f"{task} gate"] = trained.decision.decision if trained.decision else "-"
    summary["seconds"] = result["seconds"]
    print_counts("smap demo", summary)
    for reason in result["skipped"].values():  # each reason starts with its task
        out.print(f"skipped {reason}", markup=False, soft_wrap=True)
    if "serve" in result:
        print_demo_answers(result["serve"])


TaskName = Annotated[str, typer.Argument(help="engagement | virality | churn | trend")]


@app.command()
def train(
    task: TaskName,
    profile: Profile = None,
    trials: Annotated[int | None, typer.Option(help="Trials to add to the study.")] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Stop starting trials after SECONDS.")
    ] = None,
    families: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated subset of: linear, forest, xgboost, lightgbm, mlp "
            "(trend: lightgbm, xgboost, forest, mlp, lstm)."
        ),
    ] = None,
    no_promote: Annotated[bool, typer.Option("--no-promote", help="Skip the gate.")] = False,
    rebuild: Rebuild = False,
) -> None:
    """Tune candidates with Optuna (resumable study), log to MLflow, register, run the gate."""
    from training.readiness import require_inputs

    # before the heavy imports: e.g. trend on an export without hashtags fails at once
    require_inputs(settings_for(profile), task)
    from pipelines.progress import fraction
    from training.train import check_budget
    from training.train import train as run_train

    check_budget(trials, timeout)  # before any work or progress bar
    settings = settings_for(profile)
    chosen = tuple(f.strip() for f in families.split(",")) if families else None
    with fraction(f"{task}: training set from Feast (chunks)") as update:
        result = run_train(
            settings,
            task,
            trials=trials,
            timeout=timeout,
            run_promotion=not no_promote,
            families=chosen,
            progress=update,
            rebuild=rebuild,
        )
    summary = {
        "model": result.model_uri,
        "run id": result.run_id,
        "study": result.study,
        "trials in study": result.trials_in_study,
        "best trial": result.best_trial,
        "validation": round(result.validation_value, 4),
        **{f"test {k}": round(v, 4) for k, v in result.test_metrics.items()},
    }
    if result.decision:
        summary["gate"] = f"{result.decision.decision}: {result.decision.reason}"
    print_counts(f"trained {task}", summary)


@app.command()
def promote(
    task: TaskName,
    profile: Profile = None,
    version: Annotated[int | None, typer.Option(help="Version to gate (default: newest).")] = None,
    rebuild: Rebuild = False,
) -> None:
    """Score a version and the champion on the same recent holdout; move `champion` if it wins."""
    from training.snapshot import training_set
    from training.tasks import get_task
    from training.train import promote_version

    settings = settings_for(profile)
    stored = training_set(settings, get_task(task), rebuild=rebuild)
    say_training_set(stored.reused, stored.path)
    decision = promote_version(settings, task, version, stored=stored)
    print_counts(f"gate {task}", {k: v for k, v in decision.__dict__.items()})


@app.command()
def evaluate(
    task: TaskName,
    profile: Profile = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    rebuild: Rebuild = False,
) -> None:
    """The champion's test metrics next to the simulator's oracle and a naive baseline."""
    from training.evaluate import evaluate as run_evaluate

    report = run_evaluate(settings_for(profile), task, rebuild)
    say_training_set(report["training_set"]["reused"], report["training_set"]["path"])
    if as_json:
        from training.evaluate import report_json

        typer.echo(report_json(report))  # strict JSON: NaN becomes null
        return
    table = Table(
        title=f"{task}: champion v{report['model_version']} on {report['test_rows']} test rows"
    )
    for col in ("metric", "champion", "oracle", "naive baseline"):
        table.add_column(col, justify="right")
    for name, value in report["champion"].items():
        table.add_row(
            name,
            f"{value:.4f}",
            f"{report['oracle'].get(name, float('nan')):.4f}",
            f"{report['baseline'].get(name, float('nan')):.4f}",
        )
    if report.get("oracle_note"):
        out.print(f"oracle: {report['oracle_note']}")
    out.print(table)


@app.command()
def segment(profile: Profile = None) -> None:
    """Cluster active users (k in 5..7 by silhouette), register the model, write user_segments."""
    from training.segmentation import segment as run_segment

    result = run_segment(settings_for(profile))
    print_counts(
        "user segments",
        {
            "k": result.k,
            "silhouette": round(result.silhouette, 4),
            "model version": result.version,
            "users segmented": result.segments_written,
            **{
                f"segment {r.segment}": f"{r.label} ({r.size})"
                for r in result.profiles.itertuples()
            },
        },
    )


@models_app.command("history")
def models_history(task: TaskName, profile: Profile = None) -> None:
    """Every gate decision: which version held `champion` from when."""
    from ingestion.warehouse import open_warehouse
    from training.registry import history
    from training.tasks import get_task

    settings = settings_for(profile)
    frame = history(open_warehouse(settings), get_task(task).name)
    table = Table(title=f"{task} champion history")
    for col in ("decided_at", "decision", "version", "champion_before", "champion_after", "reason"):
        table.add_column(col)
    for row in frame.itertuples():
        table.add_row(
            f"{row.decided_at:%Y-%m-%d %H:%M:%S}",
            row.decision,
            str(row.version),
            str(row.champion_before),
            str(row.champion_after),
            row.reason,
        )
    out.print(table)


@models_app.command("rollback")
def models_rollback(task: TaskName, profile: Profile = None) -> None:
    """Give `champion` back to the previous champion."""
    from ingestion.warehouse import open_warehouse
    from training.registry import rollback
    from training.tasks import get_task
    from training.tracking import use_tracking

    settings = settings_for(profile)
    decision = rollback(use_tracking(settings), open_warehouse(settings), get_task(task))
    out.print(f"{task}: champion is version {decision.champion_after} again ({decision.reason})")


@app.command()
def serve(
    profile: Profile = None,
    port: Annotated[int | None, typer.Option(help="Port (default serving.port).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
    host: Annotated[
        str | None, typer.Option(help="Bind address (default serving.host: 127.0.0.1).")
    ] = None,
) -> None:
    """Serve the champions over HTTP (BentoML) until interrupted."""
    from pipelines.serving import serve as run_serve

    settings = settings_for(profile)
    s = settings.serving
    out.print(f"serving on http://{host or s.host}:{port or s.port} (Ctrl-C stops)")
    code = run_serve(settings, host, port, workers)
    if code not in (0, 130):
        raise typer.Exit(code)


@app.command()
def predict(
    task: Annotated[str, typer.Argument(help="engagement | virality | churn")],
    file: Annotated[Path, typer.Option("--file", "-f", help="CSV or Parquet of drafts/users.")],
    profile: Profile = None,
    output: Annotated[
        Path | None, typer.Option("--out", help="Write the answers as CSV here.")
    ] = None,
) -> None:
    """Score a file of draft posts (or user ids for churn) on the task's champion."""
    from pipelines.serving import predict_file

    rows, lineage = predict_file(settings_for(profile), task, file)
    for key, value in lineage.items():
        rows[key] = value
    if output:
        rows.to_csv(output, index=False)
        out.print(f"wrote {len(rows)} predictions to {output}")
        return
    table = Table(
        title=f"{task}: {lineage['model']} v{lineage['version']} ({lineage['feature_service']})"
    )
    shown = [c for c in rows.columns if c not in lineage]
    for col in shown:
        table.add_column(col)
    for row in rows[shown].itertuples(index=False):
        table.add_row(*[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row])
    out.print(table)
    out.print(f"run {lineage['run_id']}, request {lineage['request_id']}")


def print_demo_answers(served: dict) -> None:
    """The demo's answers from the running service, with their lineage."""
    answer, best = served["engagement"], served["best"]
    lineage = answer["lineage"]
    table = Table(
        title=f"service at {served['url']}: engagement {lineage['model']} v{lineage['version']}"
        f" ({lineage['feature_service']}, run {lineage['run_id'][:8]}, request "
        f"{lineage['request_id'][:8]})"
    )
    for col in ("author", "type", "category", "planned", "engagement rate", "missing"):
        table.add_column(col)
    for draft, pred in zip(served["drafts"], answer["predictions"], strict=True):
        table.add_row(
            str(draft["user_id"]),
            draft["post_type"],
            draft["category"],
            draft["planned_at"][:16],
            f"{pred['engagement_rate']:.4f}",
            ", ".join(pred["missing_features"]) or "-",
        )
    out.print(table)
    slots = ", ".join(f"{s['planned_at'][:16]} ({s['engagement_rate']:.4f})" for s in best["best"])
    out.print(f"best posting time for author {served['drafts'][0]['user_id']}: {slots}")


def _error_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def expected_errors() -> tuple[type[Exception], ...]:
    """SmapError, plus the expected errors of other layers until they derive from it."""
    from feature_repo.store import OnlineStoreUnreachable
    from ingestion.csv_import import CsvImportError
    from ingestion.warehouse import WarehouseError

    legacy = (ConfigError, WarehouseError, CsvImportError, OnlineStoreUnreachable)
    return (SmapError, *(cls for cls in legacy if not issubclass(cls, SmapError)))


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI; an expected failure is one line and exit 1, a bug a traceback."""
    known = expected_errors()
    try:
        app(args=argv, prog_name="smap", standalone_mode=False)
    except known as exc:
        print(f"error: {_error_line(exc)}", file=sys.stderr)
        return 1
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        return 130
    except Exception as exc:
        # usage errors of typer's bundled click carry their own message and exit code
        if callable(getattr(exc, "show", None)) and isinstance(
            getattr(exc, "exit_code", None), int
        ):
            exc.show()
            return exc.exit_code
        raise
    return 0


def run() -> None:
    sys.exit(main())
