"""The `smap` command line: thin wrappers over the flows, one clear line on any error.

Light modules are imported here; a command that needs MLflow (training, the registry)
imports the one module it uses inside itself, so `smap --help` loads none of Feast, MLflow,
TensorFlow, BentoML or Evidently (tests/unit/test_architecture.py holds this).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console
from rich.table import Table

from analytics.alerts import notify, pending, webhook_url
from analytics.report import serve as serve_folder
from analytics.report import write_report
from configs.data_dir import require_data_dir
from configs.errors import SmapError
from configs.settings import ConfigError, Settings, load_settings, telemetry_env
from feature_repo.store import OnlineStoreUnreachable
from ingestion.csv_comments import import_comments
from ingestion.csv_import import CsvImportError
from ingestion.simulator import PRESETS
from ingestion.warehouse import WarehouseError, open_warehouse
from monitoring.review import serve_reports
from pipelines import ab as ab_flow
from pipelines import analytics as analytics_flow
from pipelines import cluster as cluster_flow
from pipelines import flows
from pipelines import monitoring as monitor_flow
from pipelines import orchestrate as orchestrate_flow
from pipelines import recommend as recommend_flow
from pipelines import serving as serving_flow
from pipelines import ui as ui_flow
from pipelines.demo import run_loop, scrub
from pipelines.logs import log_to_data_dir, route_library_output
from pipelines.progress import fraction
from training.readiness import require_inputs
from training.tasks import get_task

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
analytics_app = typer.Typer(
    no_args_is_help=True, help="Influencers, trends, alerts, segment profiles and campaign KPIs."
)
app.add_typer(analytics_app, name="analytics")
cluster_app = typer.Typer(
    no_args_is_help=True, help="Spark standalone master, workers and MLflow server on this host."
)
app.add_typer(cluster_app, name="cluster")
ab_app = typer.Typer(no_args_is_help=True, help="Content experiments: reports and sample sizes.")
app.add_typer(ab_app, name="ab")
orchestrate_app = typer.Typer(
    no_args_is_help=True, help="Scheduled runs on Dagster: its UI, a job now, recent runs."
)
app.add_typer(orchestrate_app, name="orchestrate")
experiment_app = typer.Typer(
    no_args_is_help=True, help="Model experiments: a challenger in split or shadow traffic."
)
app.add_typer(experiment_app, name="experiment")
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
    # LightGBM's and XGBoost's OpenMP threads sleep while they wait instead of spinning: with
    # a core busy (the service answering beside a retrain) spinning doubled a fit's time
    # (2 LightGBM trials: 10 s -> 5.5 s); idle, sleeping costs ~10%. OMP_WAIT_POLICY overrides.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if writes:
        require_data_dir(settings.root)
    log_to_data_dir(settings.root)
    return settings


def print_counts(title: str, counts: Mapping[str, object]) -> None:
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

    if data["mlflow"]["tracking_uri"]:  # a URI of the user's own may carry a password too
        data["mlflow"]["tracking_uri"] = masked(data["mlflow"]["tracking_uri"])
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
    seed: Annotated[
        int | None, typer.Option(min=0, help="Random seed (default from config).")
    ] = None,
    shift_at: Annotated[
        int | None,
        typer.Option("--shift-at", help="Day index from which behaviour changes (drift)."),
    ] = None,
    experiments: Annotated[
        bool,
        typer.Option("--experiments", help="Plant content experiments with known lifts."),
    ] = False,
) -> None:
    """Generate a seeded social platform into the raw and truth tables."""
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
    counts = flows.simulate(
        settings, preset=preset, seed=seed, shift_at=shift_at, experiments=experiments
    )
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
    comments: Annotated[
        bool,
        typer.Option(
            "--comments",
            help="The file is a comment export (post id, author, time, text, optional label) "
            "of posts already imported; see docs/sentiment.md.",
        ),
    ] = False,
) -> None:
    """Load your own post export into the raw tables (rejects go to a file with reasons)."""
    if not path.is_file():
        raise SmapError(f"path: {path} does not exist")
    settings = settings_for(profile or ctx.obj)
    if comments:
        done = import_comments(path, mapping, open_warehouse(settings))
        counts = {k: v for k, v in vars(done).items() if k != "rejects_by_reason"}
        print_counts(f"imported comments of {path.name}", counts)
        if done.rejects_by_reason:
            print_counts("rejects by reason", done.rejects_by_reason)
        if done.comments_loaded == 0 and done.rows_duplicate == 0:
            raise SmapError(f"{path.name}: no comment could load")
        return
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
    settings = settings_for(profile)
    names = flows.apply_features(settings)
    project = settings.feast.project
    out.print(f"applied {len(names)} Feast objects to project {project}: {', '.join(names)}")


@features_app.command("materialize")
def features_materialize(profile: Profile = None) -> None:
    """Load the latest feature values into the online store (incremental after the first run)."""
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
            help="On imported posts: comma-separated tasks to train (default engagement,trend)."
        ),
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="Engagement only, fewer trials (a few minutes).")
    ] = False,
    shift_at: Annotated[
        int | None,
        typer.Option("--shift-at", help="Day the simulated behaviour changes (default: 2/3 in)."),
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the summary as JSON here.")
    ] = None,
) -> None:
    """The whole loop end to end: simulate a platform whose behaviour shifts, train, serve,
    replay the post-shift days through HTTP, detect the drift, retrain, swap the champion.
    On your imported posts: train and serve them (no replay)."""
    settings = settings_for(profile)
    if flows.has_imported_posts(settings):
        chosen = tuple(t.strip() for t in tasks.split(",") if t.strip()) if tasks else None
        result = flows.demo(settings, preset=preset, tasks=chosen)
        print_own_data_demo(settings, result)
        return
    summary = scrub(settings, run_loop(settings, preset=preset, shift_at=shift_at, quick=quick))
    print_loop_summary(settings, summary)
    if json_path:
        write_private(json_path, json.dumps(summary, indent=2, default=str))
        out.print(f"summary written to {json_path}")


def write_private(path: Path, text: str) -> None:
    """Write `text` readable by its owner only (mode 600, an existing file's mode included)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(text)


def print_loop_summary(settings: Settings, summary: dict) -> None:
    """What the loop did: the champions, each check, the swap, where to look next."""
    head = {
        "profile": settings.profile,
        "data_dir": str(settings.root),
        "posts simulated": summary["simulate"]["content_posts"],
        "behaviour shift": f"day {summary['shift_day']} ({summary['shift_date']})"
        if summary["shift_day"] is not None
        else "none (control run)",
    }
    for task, t in summary["trained"].items():
        head[f"{task} first champion"] = f"v{t['version']} ({t['gate']})"
    head["failed requests"] = summary["failed_requests"]
    head["seconds"] = summary["seconds"]
    print_counts("smap demo: the loop", head)
    table = Table(title="drift checks of the replayed days after the change")
    for col in ("task", "model", "answers", "features", "pred", "label", "quality", "verdict"):
        table.add_column(col)
    retrains = []
    for c in summary["checks"]:
        label = "-" if c["label_score"] is None else f"{c['label_score']:.2f}"
        quality = "-" if c["quality_value"] is None else f"{c['quality_value']:.2f}"
        table.add_row(c["task"], f"v{c['version']}", str(c["rows"]),
                      f"{c['drifted_share']:.0%}", f"{c['prediction_score']:.2f}", label,
                      f"{quality}/{c['test_value']:.2f}", c["verdict"])  # fmt: skip
        if c["retrain"]:
            retrains.append((c["task"], c["metric"], c["retrain"]))
    out.print(table)
    out.print("features: share of drifted features; pred, label: distances; quality: metric on "
              "matured labels / at test")  # fmt: skip

    def num(value) -> str:
        return "-" if value is None or value != value else f"{value:.3f}"

    for task, metric, r in retrains:
        if "error" in r or "skipped" in r:
            why = f"failed: {r['error']}" if "error" in r else f"skipped: {r['skipped']}"
            out.print(f"{task}: retrain {why}", markup=False, soft_wrap=True)
            continue
        out.print(
            f"{task}: retrained v{r['version']} on data since {r['since'][:10]}: {r['decision']}"
            f" ({metric} {num(r['challenger_value'])} against the old champion's "
            f"{num(r['champion_value'])} on the same post-change holdout)",
            markup=False,
            soft_wrap=True,
        )
    for task, swap in summary["after_swap"].items():
        out.print(
            f"{task}: the service now answers with v{swap['new_version']} "
            f"(versions seen: {swap['answered_by']}, failed requests: {swap['failed']})"
        )
    for reason in summary["skipped"].values():
        out.print(f"skipped {reason}", markup=False, soft_wrap=True)
    if "serve" in summary:
        print_demo_answers(summary["serve"])
    out.print(f"drift reports: {summary['reports']}", soft_wrap=True)
    board = summary.get("dashboard")
    if board:
        out.print(f"dashboard: {board['page']} ({board['seconds']} s to fill)", soft_wrap=True)
        for title, note in board["empty"].items():
            out.print(f"  {title}: {note}", markup=False, soft_wrap=True)
    for what, command in summary["commands"].items():
        out.print(f"{what}: {command}", markup=False, soft_wrap=True)


def print_own_data_demo(settings: Settings, result: dict) -> None:
    summary = {
        "profile": settings.profile,
        "data_dir": str(settings.root),
        "posts": "your imported posts",
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


TaskName = Annotated[str, typer.Argument(help="engagement | virality | churn | trend | content")]


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
            help="Comma-separated families: the task's own by default (linear, forest, "
            "xgboost, lightgbm, mlp; trend adds lstm; content: tfidf_logreg, tfidf_svc, "
            "keras_text), or any registered tabular family (hist_gradient_boosting)."
        ),
    ] = None,
    no_promote: Annotated[bool, typer.Option("--no-promote", help="Skip the gate.")] = False,
    rebuild: Rebuild = False,
    worker: Annotated[
        bool,
        typer.Option(
            "--worker",
            help="Join the study's round with other workers (any host): --trials is the "
            "round's total, recorded by its first worker; the last to finish registers and "
            "gates.",
        ),
    ] = False,
) -> None:
    """Tune candidates with Optuna (resumable study), log to MLflow, register, run the gate."""
    # before the heavy imports: e.g. trend on an export without hashtags fails at once
    require_inputs(settings_for(profile), task)
    from pipelines import training as training_flow

    training_flow.check_budget(trials, timeout)  # before any work or progress bar
    settings = settings_for(profile)
    chosen = tuple(f.strip() for f in families.split(",")) if families else None
    if worker:
        train_worker(settings, task, trials, timeout, not no_promote, chosen, rebuild)
        return
    with fraction(f"{task}: training set from Feast (chunks)") as update:
        result = training_flow.train(
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


def train_worker(
    settings: Settings,
    task: str,
    trials: int | None,
    timeout: float | None,
    promote: bool,
    families: tuple[str, ...] | None,
    rebuild: bool,
) -> None:
    """`smap train --worker`: this worker's share of the round, and who gates it."""
    from pipelines.training import train_worker as run_worker

    with fraction(f"{task}: training set from Feast (chunks)") as update:
        result = run_worker(settings, task, trials, timeout, promote, families, update, rebuild)
    summary: dict[str, object] = {
        "study": result.study,
        "round": f"{result.budget} trials from trial {result.first_trial}",
        "run id": result.run_id,
        "trials run here": ", ".join(map(str, result.trials_run)) or "none",
    }
    gated = result.gated
    if gated is None:
        summary["gate"] = f"not this worker: {result.reason}"
    else:
        summary |= {
            "model": gated.model_uri,
            "best trial": gated.best_trial,
            "validation": round(gated.validation_value, 4),
            **{f"test {k}": round(v, 4) for k, v in gated.test_metrics.items()},
            "gate": f"{gated.decision.decision}: {gated.decision.reason}"
            if gated.decision
            else "registered, not gated (--no-promote)",
        }
    print_counts(f"{task} worker", summary)


@app.command()
def gate(
    task: TaskName,
    profile: Profile = None,
    version: Annotated[int | None, typer.Option(help="Version to gate (default: newest).")] = None,
    rebuild: Rebuild = False,
) -> None:
    """Score a version and the champion on the same recent holdout; move `champion` if it wins."""
    from training.gate import gate_version

    settings = settings_for(profile)
    chosen = get_task(task)
    stored = chosen.trainer.build(settings, chosen, rebuild=rebuild)
    say_training_set(stored.reused, stored.path)
    decision = gate_version(settings, open_warehouse(settings), chosen, version, stored=stored)
    print_counts(f"gate {task}", {k: v for k, v in decision.__dict__.items()})


app.command("promote", hidden=True, help="Same as `smap gate`.")(gate)


def evaluation_table(task: str, report: dict) -> Table:
    """The evaluate report as one table: the models scored, then the baselines and oracle."""
    shown = report.get("version")
    champion = report["model_version"]
    columns: dict[str, dict] = {}
    if shown is not None and shown["version"] != champion:
        columns[f"version {shown['version']}"] = shown["metrics"]
    if champion is not None:
        columns[f"champion v{champion}"] = report["champion"]
    if report["linear_name"] is not None:
        columns[report["linear_name"]] = report["linear"]
    columns["naive baseline"] = report["baseline"]
    columns["oracle"] = report["oracle"]
    table = Table(title=f"{task} on {report['test_rows']} test rows ({report['metric']} first)")
    table.add_column("metric")
    for name in columns:
        table.add_column(name, justify="right")
    first = next(iter(columns.values()))
    names = [report["metric"], *(n for n in first if n != report["metric"])]
    for name in names:
        table.add_row(name, *(f"{c.get(name, float('nan')):.4f}" for c in columns.values()))
    return table


@app.command()
def evaluate(
    task: TaskName,
    profile: Profile = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    rebuild: Rebuild = False,
    version: Annotated[
        int | None,
        typer.Option(help="A registered version to score next to the champion (e.g. refused)."),
    ] = None,
) -> None:
    """The champion's test metrics next to a plain linear model, the naive baseline and the
    simulator's oracle; `--version N` adds a registered version (a refused challenger)."""
    from training import evaluate as evaluation

    report = evaluation.evaluate(settings_for(profile), get_task(task), rebuild, version)
    say_training_set(report["training_set"]["reused"], report["training_set"]["path"])
    if as_json:
        typer.echo(evaluation.report_json(report))  # strict JSON: NaN becomes null
        return
    if report.get("oracle_note"):
        out.print(f"oracle: {report['oracle_note']}")
    out.print(evaluation_table(task, report))
    gated = (report.get("version") or {}).get("gate")
    if gated:
        out.print(f"gate on version {version}: {gated['decision']}: {gated['reason']}")


@app.command()
def segment(profile: Profile = None) -> None:
    """Cluster active users (k in 5..7 by silhouette), register and gate the model; a crowned
    model writes user_segments."""
    from training.segmentation import segment as run_segment

    result = run_segment(settings_for(profile))
    print_counts(
        "user segments",
        {
            "k": result.k,
            "silhouette": round(result.silhouette, 4),
            "model version": result.version,
            "gate": f"{result.decision.decision}: {result.decision.reason}",
            "users segmented": result.segments_written,
            **{
                f"segment {r.segment}": f"{r.label} ({r.size})"
                for r in result.profiles.itertuples()
            },
        },
    )


def print_check(result) -> None:
    """One check: its verdict, the evidence, and what the trigger did."""
    table = Table(title=f"{result.task}: champion v{result.version} — {result.verdict.upper()}")
    table.add_column("item")
    table.add_column("value")
    quality = (
        f"{result.quality_value:.4f} on {result.labelled} labels (test {result.test_value:.4f})"
        if result.quality_value == result.quality_value
        else f"not judged ({result.labelled} matured labels)"
    )
    drifted = ", ".join(f"{c['column']} {c['score']:.2f}" for c in result.drifted_columns[:6])
    repeats = f" ({result.duplicates} repeats judged once)" if result.duplicates else ""
    rows = {
        "window": f"{result.rows} answers{repeats}, {result.window_start:%Y-%m-%d %H:%M:%S} .. "
        f"{result.window_end:%H:%M:%S}",
        "drifted features": f"{result.drifted_share:.0%}: {drifted or '-'}",
        "prediction drift": f"{result.prediction_score:.3f}",
        f"quality ({result.metric})": quality,
        "why": "; ".join(result.reasons),
        **({"notes": "; ".join(result.notes)} if result.notes else {}),
        "report": result.report,
        "monitoring run": result.monitoring_run,
    }
    if result.retrain:
        r = result.retrain
        if "error" in r:
            rows["retrain"] = f"error: {r['error']}"
        elif "skipped" in r:
            rows["retrain"] = f"skipped: {r['skipped']}"
        else:
            rows["retrain"] = (
                f"v{r['version']} on data since {r['since'][:10]}: {r['decision']} ({r['reason']})"
            )
    for key, value in rows.items():
        table.add_row(key, str(value))
    out.print(table, soft_wrap=True)


def retrain_outcome(record: dict) -> str:
    """One word for a check's retrain: the gate's decision, skipped or error."""
    return "skipped" if "skipped" in record else record.get("decision", "error")


def print_checks_summary(frame) -> None:
    table = Table(title="recent drift checks")
    for col in ("checked_at", "task", "version", "rows", "drifted", "prediction", "quality",
                "verdict", "retrain"):  # fmt: skip
        table.add_column(col)
    for r in frame.itertuples():
        retrain = retrain_outcome(json.loads(r.retrain)) if r.retrain else "-"
        table.add_row(
            f"{r.checked_at:%Y-%m-%d %H:%M:%S}",
            r.task,
            str(r.version),
            str(r.rows),
            f"{r.drifted_share:.0%}",
            f"{r.prediction_score:.3f}",
            "-" if r.quality_value != r.quality_value else f"{r.quality_value:.3f}",
            r.verdict,
            retrain,
        )
    out.print(table)


def print_running_experiments(settings: Settings, task: str | None) -> None:
    """The running model experiments under the checks of `monitor --summary`."""
    analyses = experiments().running(settings, task)
    if not analyses:
        out.print("no model experiment running")
    for analysis in analyses:
        print_experiment(analysis)


@app.command()
def monitor(
    task: Annotated[
        str | None,
        typer.Argument(help="engagement | virality | churn, or `ui` to browse the reports"),
    ] = None,
    profile: Profile = None,
    all_tasks: Annotated[
        bool, typer.Option("--all", help="Check every task in monitoring.tasks.")
    ] = False,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch", help="Run the orchestrator's monitor job every --interval (Dagster)."
        ),
    ] = False,
    interval: Annotated[float, typer.Option(help="Seconds between --watch rounds.")] = 300.0,
    no_retrain: Annotated[
        bool, typer.Option("--no-retrain", help="Report drift without retraining.")
    ] = False,
    summary: Annotated[
        bool, typer.Option("--summary", help="Print a table of recent checks and exit.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the check as JSON.")] = False,
    port: Annotated[int, typer.Option(help="Port of `smap monitor ui`.")] = 8088,
) -> None:
    """Evidently drift of the champions' logged answers against their training reference;
    persistent drift retrains behind the champion gate."""
    settings = settings_for(profile)
    if task == "ui":
        out.print(f"reports on http://127.0.0.1:{port} (Ctrl-C stops)")
        serve_reports(settings, "127.0.0.1", port)
        return
    if summary:
        print_checks_summary(monitor_flow.recent_checks(settings, task, 20))
        print_running_experiments(settings, task)
        return
    if interval <= 0:
        raise typer.BadParameter("must be more than 0 seconds", param_hint="--interval")
    if task is None and not all_tasks:
        raise typer.BadParameter("name a task or pass --all", param_hint="TASK")
    # (`task is None` only with --all, checked above: mypy needs it said to narrow `[task]`)
    tasks = list(settings.monitoring.tasks) if all_tasks or task is None else [task]
    for name in tasks:
        get_task(name)  # an unknown task is one line before any work
    show = (lambda r: out.print_json(data=r.as_json())) if as_json else print_check
    err = Console(stderr=True)
    if watch:  # a thin wrapper: the orchestrator's monitor job, every --interval

        def said(ran) -> None:
            how = "done" if ran.success else "failed"
            (out if ran.success else err).print(
                f"monitor run {ran.run_id[:8]} {how}: " + "; ".join(ran.said),
                markup=False,
                soft_wrap=True,
            )

        orchestrate_flow.watch(settings, tasks, interval, said)
        return
    if all_tasks:  # every task is checked, whatever one of them does
        results, problems, failures = monitor_flow.monitor_all(settings, not no_retrain, show)
        for why in problems.values():  # each reason starts with its task
            err.print(why, markup=False, soft_wrap=True)
        for why in failures.values():
            err.print(f"error: {why}", markup=False, soft_wrap=True)
        if failures or (problems and not results):
            raise typer.Exit(1)
        return
    show(monitor_flow.monitor(settings, tasks[0], retrain=not no_retrain))  # tasks == [task]


@models_app.command("history")
def models_history(task: TaskName, profile: Profile = None) -> None:
    """Every gate decision: which version held `champion` from when."""
    from pipelines import registry

    frame = registry.champion_history(settings_for(profile), task)
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
    from pipelines import registry

    decision = registry.rollback_champion(settings_for(profile), task)
    out.print(f"{task}: champion is version {decision.champion_after} again ({decision.reason})")


@experiment_app.command("start")
def experiment_start(
    task: TaskName,
    challenger: Annotated[int, typer.Option(help="The challenger's registered version.")],
    split: Annotated[
        float | None,
        typer.Option(help="Percent of authors/users the challenger answers (0 < PCT < 100)."),
    ] = None,
    shadow: Annotated[
        bool, typer.Option("--shadow", help="The challenger scores every request off the path.")
    ] = False,
    min_samples: Annotated[
        int, typer.Option(help="Labelled answers per arm before a winner can be named.")
    ] = 200,
    profile: Profile = None,
) -> None:
    """Start an experiment: the service follows it within serving.alias_poll_seconds."""
    if shadow == (split is not None):
        raise typer.BadParameter("pass either --split PCT or --shadow", param_hint="--split")
    mode = "shadow" if shadow else "split"
    e = experiments().start(settings_for(profile), task, challenger, mode, split, min_samples)
    share = f"{e.split:.0%} of entities" if e.mode == "split" else "shadow"
    out.print(
        f"{task}: experiment {e.id} started: version {e.challenger} vs champion "
        f"{e.champion} ({share}, {e.min_samples} labelled answers per arm)"
    )


def experiments():
    """pipelines.experiments, imported when an experiment command runs (it loads MLflow)."""
    from pipelines import experiments as flow

    return flow


def print_experiment(analysis) -> None:
    """One experiment: each arm's figures, the difference and the sequential verdict."""
    e = analysis.experiment

    def est(value: float, low: float = math.nan, high: float = math.nan) -> str:
        if not math.isfinite(value):
            return "-"
        interval = f" [{low:.4f}, {high:.4f}]" if math.isfinite(low) and math.isfinite(high) else ""
        return f"{value:.4f}{interval}"

    mode = f"split {e.split:.0%}" if e.mode == "split" else "shadow"
    table = Table(title=f"{e.task}: experiment {e.id} ({mode}, since {e.started_at[:19]})")
    for col in ("arm", "version", "answers", "labelled", analysis.metric, "abs error"):
        table.add_column(col)
    for a in analysis.arms:
        table.add_row(
            a.arm,
            str(a.version),
            str(a.answered),
            str(a.labelled),
            est(a.metric.value, a.metric.low, a.metric.high),
            est(a.abs_error.value, a.abs_error.low, a.abs_error.high),
        )
    s, d = analysis.error_difference, analysis.metric_difference
    table.add_row(
        "difference", "", "", "", est(d.value, d.low, d.high), est(s.difference, s.low, s.high)
    )
    out.print(table)
    out.print(f"always-valid p = {s.p_value:.4f}; {analysis.verdict}", markup=False)


@experiment_app.command("status")
def experiment_status(
    task: Annotated[str | None, typer.Argument(help="A task (default: every one).")] = None,
    profile: Profile = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the analyses as JSON.")] = False,
) -> None:
    """Each arm's metric and error, their difference and the always-valid sequential test."""
    analyses = experiments().status(settings_for(profile), task)
    if as_json:
        typer.echo(ab_flow.as_json([a.as_dict() for a in analyses]))  # strict: no NaN
        return
    if not analyses:
        out.print("no experiment is running")
    for analysis in analyses:
        print_experiment(analysis)


@experiment_app.command("stop")
def experiment_stop(
    task: TaskName,
    promote: Annotated[
        bool, typer.Option("--promote", help="Make the challenger champion if it won.")
    ] = False,
    profile: Profile = None,
) -> None:
    """Stop the experiment; with --promote the gate crowns the challenger only if it won."""
    analysis, decision, run_id = experiments().stop(settings_for(profile), task, promote)
    print_experiment(analysis)
    out.print(
        f"{task}: {decision.decision}: champion is version {decision.champion_after} "
        f"({decision.reason}); MLflow run {run_id}",
        markup=False,
        soft_wrap=True,
    )


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
    settings = settings_for(profile)
    s = settings.serving
    out.print(f"serving on http://{host or s.host}:{port or s.port} (Ctrl-C stops)")
    code = serving_flow.serve(settings, host, port, workers)
    if code not in (0, 130):
        raise typer.Exit(code)


@app.command()
def build(profile: Profile = None) -> None:
    """Pack the prediction service and smap's code as a Bento (bentofile.yaml); run it from
    anywhere with `bentoml serve TAG` (BENTOML_HOME as printed)."""
    settings = settings_for(profile)
    tag = serving_flow.build_bento(settings)
    home = os.environ.get("BENTOML_HOME", str(settings.root / "bentoml"))
    out.print(
        f"built {tag}; serve it with: BENTOML_HOME={home} bentoml serve {tag}", soft_wrap=True
    )


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
    rows, lineage = serving_flow.predict_file(settings_for(profile), task, file)
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
    slots = ", ".join(
        f"{s['planned_at'][:16]} ({s['engagement_rate']:.4f}"
        + (", tie" if s.get("tied_with_best") else "")
        + ")"
        for s in best["best"]
    )
    out.print(f"best posting time for author {served['drafts'][0]['user_id']}: {slots}")
    if best.get("tied_slots", 1) > 1:
        out.print(
            f"  {best['tied_slots']} hours of the week tie for best (within "
            f"{best['resolution']:g} of each other, the precision of the answer)"
        )
    trend = served.get("trend")
    if trend:
        lineage = trend["lineage"]
        for forecast in trend["forecasts"]:
            days = ", ".join(
                f"{d['day'][5:]} {d['usage']:.0f}"
                + (f" [{d['lower']:.0f}-{d['upper']:.0f}]" if d["lower"] is not None else "")
                for d in forecast["days"][:3]
            )
            out.print(
                f"#{forecast['hashtag']} usage, next days (trend v{lineage['version']}, "
                f"{trend['interval_level'] or 0:.0%} interval): {days}, ..."
            )


@app.command()
def recommend(
    profile: Profile = None,
    user: Annotated[int | None, typer.Option(help="Recommend fresh posts to this user.")] = None,
    n: Annotated[int, typer.Option(min=1, max=100, help="How many posts.")] = 10,
    run_evaluate: Annotated[
        bool,
        typer.Option(
            "--evaluate",
            help="Hit-rate@k and NDCG@k on held-out likes: popularity, champion, oracle.",
        ),
    ] = False,
    run_train: Annotated[
        bool,
        typer.Option("--train", help="Fit the ALS recommender, register it, gate it."),
    ] = False,
    queries: Annotated[
        int, typer.Option(min=10, help="Held-out likes sampled (--evaluate, --train).")
    ] = 2000,
    holdout_days: Annotated[int, typer.Option(min=1, help="Held-out days (--evaluate).")] = 7,
    k: Annotated[int, typer.Option(min=1, help="Hit-rate@k (--evaluate).")] = 10,
    proxy: Annotated[
        bool, typer.Option("--proxy", help="Score by the proxy, not the engagement champion.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Fresh posts for a user; --train fits the ALS recommender and gates it against
    popularity; --evaluate compares popularity, the champion and the oracle on held-out likes."""
    settings = settings_for(profile, writes=run_train)
    if run_train or run_evaluate:
        report = (
            recommend_flow.train(settings, holdout_days, queries)
            if run_train
            else recommend_flow.evaluate_models(settings, holdout_days, k, queries)
        )
        if as_json:
            from training.evaluate import report_json  # strict JSON; imports MLflow

            typer.echo(report_json(report))
            return
        if run_train:
            out.print(f"version {report['version']}: {report['decision']}: {report['reason']}")
        elif report["note"]:
            out.print(report["note"], markup=False)
        kk = 10 if run_train else k
        table = Table(
            title=f"{report['queries']} held-out likes of the last {holdout_days} days",
        )
        for col in ("method", f"hit_rate_at_{kk}", f"ndcg_at_{kk}"):
            table.add_column(col, justify="right")
        for row in report["methods"]:
            table.add_row(
                row["method"], f"{row[f'hit_rate_at_{kk}']:.4f}", f"{row[f'ndcg_at_{kk}']:.4f}"
            )
        out.print(table)
        return
    if user is None:
        raise typer.BadParameter("give --user ID, or --evaluate", param_hint="--user")
    answer = recommend_flow.recommend_for(settings, user, n, use_champion=not proxy)
    by_model = answer["scored_by"].startswith("recommendation")
    interests = ", ".join(answer["interests"] or []) or (
        "learned by the model" if by_model else "all (no history)"
    )
    out.print(f"user {user} at {answer['at']}; interests: {interests}", markup=False)
    out.print(f"scored by: {answer['scored_by']}", soft_wrap=True, markup=False)
    table = Table(title=f"{len(answer['posts'])} recommended posts")
    score = "score" if by_model else "predicted engagement"
    for col in ("post", "author", "category", "type", "published", score):
        table.add_column(col)
    for r in answer["posts"].itertuples():
        published = f"{r.created_at:%Y-%m-%d %H:%M}"
        cells = (str(r.post_id), str(r.user_id), r.category, r.post_type, published)
        table.add_row(*cells, f"{r.score:.4f}")
    out.print(table)


@analytics_app.command("run")
def analytics_run(profile: Profile = None) -> None:
    """Compute influencers, hashtag trends, post velocity, alerts, KPIs and segment profiles."""
    settings = settings_for(profile)
    print_counts(f"analytics ({settings.profile})", analytics_flow.run(settings))


@analytics_app.command("influencers")
def analytics_influencers(
    profile: Profile = None,
    category: Annotated[str | None, typer.Option(help="Only accounts of this category.")] = None,
    top: Annotated[int, typer.Option(help="How many accounts to list.")] = 10,
) -> None:
    """The top influencers (PageRank on the follow graph, weighted by engagement received)."""
    frame = analytics_flow.influencers(settings_for(profile, writes=False), category, top)
    title = f"top {len(frame)} influencers" + (f" in {category}" if category else "")
    out.print(analytics_flow.influencer_table(frame, title))


@app.command()
def alerts(
    profile: Profile = None,
    post: Annotated[
        bool, typer.Option("--post", help="POST them as JSON to analytics.alert_webhook_url.")
    ] = False,
    show_all: Annotated[
        bool, typer.Option("--all", help="List every alert, notified or not.")
    ] = False,
) -> None:
    """List the engagement anomalies not notified yet (`smap analytics run` detects them)."""
    settings = settings_for(profile)
    if post:
        webhook_url(settings.analytics)  # before anything is listed
    warehouse = open_warehouse(settings)
    shown = pending(warehouse, everything=show_all)
    which = "alerts" if show_all else "new alerts"
    if shown.empty:
        out.print(f"no {which}")
    else:
        out.print(analytics_flow.alert_table(shown, f"{len(shown)} {which}"))
    if post:
        sent = notify(warehouse, settings.analytics)
        out.print(f"posted {sent} alert(s) to the webhook")


@app.command()
def ui(
    profile: Profile = None,
    mlflow_port: Annotated[int, typer.Option(min=0, max=65535, help="0: a free port.")] = 0,
    review_port: Annotated[int, typer.Option(min=0, max=65535, help="0: a free port.")] = 0,
    dashboard_port: Annotated[int, typer.Option(min=0, max=65535, help="0: a free port.")] = 0,
) -> None:
    """Open MLflow's UI, the drift review page and the dashboard on 127.0.0.1 together;
    Ctrl-C stops all three."""
    settings = settings_for(profile, writes=False)

    def show(pages: ui_flow.Pages) -> None:
        print_counts("smap ui (Ctrl-C stops all three)", pages.lines())

    ui_flow.run_until_interrupted(
        settings,
        show,
        mlflow_port=mlflow_port,
        review_port=review_port,
        dashboard_port=dashboard_port,
    )


@app.command()
def report(
    profile: Profile = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Folder for index.html and exports/ (default: reports/dashboard)."
        ),
    ] = None,
    serve: Annotated[
        bool, typer.Option("--serve", help="Then serve the folder on 127.0.0.1 until Ctrl-C.")
    ] = False,
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port of --serve.")] = 8089,
) -> None:
    """Write the dashboard (one self-contained HTML page) and CSV/Parquet exports for BI tools."""
    settings = settings_for(profile)
    done = write_report(settings, out_dir)
    empty = {f"empty: {s.title}": s.note for s in done.sections if s.empty}
    print_counts(
        "dashboard",
        {
            "page": str(done.path),
            "exports (CSV + Parquet)": f"{len(done.exports)} tables in {done.folder / 'exports'}",
            "sections without data": len(empty) or "none",
            **empty,  # each says the command that fills it
        },
    )
    if serve:
        serve_folder(done.folder, port, lambda url: out.print(f"serving {url} (Ctrl-C stops)"))


@ab_app.command("report")
def ab_report(
    experiment: Annotated[str, typer.Argument(help="The experiment's name on its posts.")],
    profile: Profile = None,
    alpha: Annotated[float, typer.Option(help="1 - the intervals' level.")] = 0.05,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Per variant: posts, reach, engagement rate; against the control: difference and lift
    with intervals (plain and CUPED), p-value and the always-valid sequential test."""
    result = ab_flow.report(settings_for(profile, writes=False), experiment, alpha)
    if as_json:
        typer.echo(ab_flow.as_json(result.to_dict()))
        return
    for table in ab_flow.report_tables(result):
        out.print(table)


@ab_app.command("plan")
def ab_plan(
    baseline_rate: Annotated[
        float, typer.Option("--baseline-rate", help="The control's engagement rate (0-1).")
    ],
    lift: Annotated[float, typer.Option(help="Relative lift to detect, e.g. 0.1 for +10%.")],
    power: Annotated[float, typer.Option(help="Chance of detecting the lift.")] = 0.8,
    alpha: Annotated[float, typer.Option(help="False-positive rate (two-sided).")] = 0.05,
    sd: Annotated[
        float | None,
        typer.Option(help="Per-post sd of the rate (`ab report` shows it): Cohen's d, not h."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Posts needed per variant (statsmodels' NormalIndPower on Cohen's h, or d with --sd)."""
    result = ab_flow.plan(baseline_rate, lift, power, alpha, sd)
    if as_json:
        typer.echo(ab_flow.as_json(asdict(result)))
    else:
        out.print(ab_flow.plan_table(result))


def cluster_settings(profile: str | None) -> Settings:
    """`smap cluster` starts the cluster profile's servers unless told another profile."""
    return settings_for(profile or os.environ.get("SMAP_PROFILE") or "cluster")


def print_members(title: str, members, alive: Mapping[str, bool] | None = None) -> None:
    table = Table(title=title)
    for column in ("process", "pid", "address", "log"):
        table.add_column(column)
    if alive is not None:
        table.add_column("running")
    for m in members:
        row = [m.name, str(m.pid), m.url, Path(m.log).name]
        table.add_row(*row, *([] if alive is None else ["yes" if alive[m.name] else "no"]))
    out.print(table, soft_wrap=True)


@cluster_app.command("up")
def cluster_up(profile: Profile = None) -> None:
    """Start a Spark master, `cluster.workers` workers and the MLflow tracking server."""
    settings = cluster_settings(profile)
    state = cluster_flow.up(settings)
    print_members("cluster up", state.members)
    out.print(
        f"Spark master {state.master} (web UI {state.master_ui}); MLflow {state.tracking_uri}"
    )
    folder = cluster_flow.cluster_dir(settings)
    out.print(f"logs: {folder / 'logs'}; state: {folder / 'state.json'}", soft_wrap=True)


@cluster_app.command("down")
def cluster_down(profile: Profile = None) -> None:
    """Stop what `smap cluster up` started (nothing running is fine)."""
    stopped = cluster_flow.down(cluster_settings(profile))
    out.print(f"stopped {', '.join(m.name for m in stopped)}" if stopped else "cluster is not up")


@cluster_app.command("status")
def cluster_status(profile: Profile = None) -> None:
    """What runs, the master's workers and applications, and whether MLflow answers."""
    found = cluster_flow.status(cluster_settings(profile))
    if found.state is None:
        out.print("cluster is not up")
        return
    print_members("cluster", found.state.members, found.alive)
    workers = "no answer" if found.workers_alive is None else str(found.workers_alive)
    health = "healthy" if found.tracking_healthy else "no answer"
    out.print(f"alive workers (master): {workers}; MLflow {found.state.tracking_uri}: {health}")
    apps = Table(title=f"applications on {found.state.master}")
    for column in ("id", "name", "state", "cores", "seconds"):
        apps.add_column(column)
    for app_ in found.applications:
        seconds = f"{app_.get('duration', 0) / 1000:.1f}"
        apps.add_row(app_.get("id", ""), app_.get("name", ""), app_.get("state", ""),
                     str(app_.get("cores", "")), seconds)  # fmt: skip
    out.print(apps, soft_wrap=True)


JobName = Annotated[str, typer.Argument(help="materialize | analytics | monitor")]


def _when(text: str | None, option: str):
    """An ISO date or time (UTC unless it says otherwise), or None."""
    if text is None:
        return None
    from datetime import UTC, datetime

    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise SmapError(f"{option}: {text!r} is not an ISO date or time") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def print_runs(title: str, runs) -> None:
    table = Table(title=title)
    for col in ("tick", "job", "status", "run"):
        table.add_column(col)
    for r in runs:
        status = r.status if hasattr(r, "status") else ("SUCCESS" if r.success else "FAILURE")
        tick = r.at if isinstance(r.at, str) else r.at.isoformat()
        table.add_row(tick[:19], r.job, status, r.run_id[:8])
    out.print(table)


@orchestrate_app.command("ui")
def orchestrate_ui(
    profile: Profile = None,
    port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="0: a free port (default from config).")
    ] = None,
    daemon: Annotated[
        bool, typer.Option("--daemon/--no-daemon", help="Also run the schedules (the daemon).")
    ] = True,
) -> None:
    """Dagster's UI on 127.0.0.1 and its daemon, which runs the profile's schedules; Ctrl-C
    stops both."""
    settings = settings_for(profile)
    chosen = settings.orchestration.ui_port if port is None else port

    def show(url: str) -> None:
        runs = "schedules running" if daemon else "no daemon: schedules do not run"
        out.print(f"Dagster UI on {url} ({runs}; Ctrl-C stops)")

    orchestrate_flow.serve_ui(settings, chosen, daemon, show)


@orchestrate_app.command("run")
def orchestrate_run(
    job: JobName,
    profile: Profile = None,
    at: Annotated[
        str | None, typer.Option(help="The clock its stages read (ISO time; default now).")
    ] = None,
) -> None:
    """Run a job now in this process; recorded in the instance, so its UI shows it."""
    orchestrate_flow.require_job(job)
    settings = settings_for(profile)
    ran = orchestrate_flow.run_job(settings, job, _when(at, "--at"))
    print_runs(f"{job} ({settings.profile})", [ran])
    if not ran.success:
        raise SmapError(f"{job}: run {ran.run_id} failed (its steps and logs: smap orchestrate ui)")


@orchestrate_app.command("replay")
def orchestrate_replay(
    start: Annotated[str, typer.Option("--from", help="First tick's time (ISO; UTC).")],
    end: Annotated[str, typer.Option("--to", help="Up to this time, excluded (ISO; UTC).")],
    profile: Profile = None,
) -> None:
    """Run every scheduled tick from --from to --to in order, time advanced, not waited for
    (a day of a simulated platform in minutes)."""
    settings = settings_for(profile)
    first, last = _when(start, "--from"), _when(end, "--to")
    orchestrate_flow.check_replay_window(first, last)

    def progress(ran) -> None:  # a run takes minutes: say each one as it ends
        status = "SUCCESS" if ran.success else "FAILURE"
        out.print(f"{ran.at.isoformat()[:19]} {ran.job}: {status} (run {ran.run_id[:8]})")

    runs = orchestrate_flow.run_schedule(settings, first, last, on_run=progress)
    print_runs(f"replayed {len(runs)} scheduled runs ({settings.profile})", runs)
    failed = [r for r in runs if not r.success]
    if failed:
        raise SmapError(f"{len(failed)} of {len(runs)} runs failed (smap orchestrate ui)")


@orchestrate_app.command("status")
def orchestrate_status(
    profile: Profile = None,
    limit: Annotated[int, typer.Option(min=1, help="How many runs.")] = 20,
) -> None:
    """The newest runs of the profile's Dagster instance."""
    runs = orchestrate_flow.recent_runs(settings_for(profile), limit)
    print_runs("recent runs" if runs else "no runs yet", runs)


def _error_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def expected_errors() -> tuple[type[Exception], ...]:
    """SmapError, plus the expected errors of other layers until they derive from it."""
    legacy = (ConfigError, WarehouseError, CsvImportError, OnlineStoreUnreachable)
    return (SmapError, *(cls for cls in legacy if not issubclass(cls, SmapError)))


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI; an expected failure is one line and exit 1, a bug a traceback."""
    known = expected_errors()
    try:
        # outside standalone mode click returns a command's `typer.Exit(code)` instead of
        # raising it
        code = app(args=argv, prog_name="smap", standalone_mode=False)
    except known as exc:
        print(f"error: {_error_line(exc)}", file=sys.stderr)
        return 1
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        return 130
    except Exception as exc:
        # usage errors of typer's bundled click carry their own message and exit code
        show, exit_code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(exit_code, int):
            show()
            return exit_code
        raise
    return code if isinstance(code, int) else 0


def run() -> None:
    sys.exit(main())
