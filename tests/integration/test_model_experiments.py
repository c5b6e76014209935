"""Model experiments against a running service (local profile) while a client keeps asking:
a split experiment, then a shadow one, each started, read and stopped through the gate with
the `smap experiment` commands; no request fails and every answer names its arm."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pandas as pd
import pytest

from ingestion.warehouse import open_warehouse
from pipelines import flows
from pipelines.cli import main
from pipelines.serving import local_service
from pipelines.training import train
from serving.prediction_log import read_parquet_log
from training.experiments import (
    RECORD_TAG,
    arm_of,
    end_experiment,
    experiment_decision,
    running_experiment,
    start_experiment,
)
from training.registry import current_champion, history
from training.tasks import get_task
from training.tracking import use_tracking

pytestmark = pytest.mark.integration


def drafts_of_matured_posts(settings, n: int) -> list[dict]:
    """Drafts that are posts the simulator published: their outcome is known (a label)."""
    labels = get_task("engagement").label_query(open_warehouse(settings))
    labels = labels.sort_values("event_timestamp").drop_duplicates("user_id").tail(n)
    return [
        {
            "user_id": int(r.user_id),
            "post_type": r.post_type,
            "category": r.category,
            "hashtags": str(r.hashtags).split(),
            "caption": r.caption or "",
            "planned_at": pd.Timestamp(r.event_timestamp).isoformat(),
            "is_paid": bool(r.is_paid),
        }
        for r in labels.itertuples()
    ]


class Client(threading.Thread):
    """Asks for one draft at a time, round the drafts, until stopped; keeps every answer."""

    def __init__(self, url: str, drafts: list[dict]):
        super().__init__(daemon=True)
        self.url, self.drafts = url, drafts
        self.answers: list[tuple[dict, int, dict]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=30) as http:
            i = 0
            while not self.halt.is_set():
                draft = self.drafts[i % len(self.drafts)]
                r = http.post(f"{self.url}/predict_engagement", json={"drafts": [draft]})
                self.answers.append((draft, r.status_code, r.json()))
                i += 1

    def since(self, n: int) -> list[tuple[dict, int, dict]]:
        return self.answers[n:]


def cli(capsys, *args: str) -> str:
    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def wait_for(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.3)


def followed(url: str) -> list[dict]:
    return httpx.get(f"{url}/metadata", timeout=10).json()["experiments"]


def test_split_and_shadow_experiments_on_a_running_service(local_settings, capsys, monkeypatch):
    settings = local_settings
    monkeypatch.setenv("SMAP_DATA_DIR", str(settings.root))
    monkeypatch.setenv("COLUMNS", "200")
    flows.prepare_data(settings)
    first = train(settings, "engagement", trials=1, families=("linear",))
    second = train(settings, "engagement", trials=1, families=("lightgbm",), run_promotion=False)
    client_registry = use_tracking(settings)
    assert current_champion(client_registry, "engagement") == first.version
    drafts = drafts_of_matured_posts(settings, 60)
    poll = {"SMAP_SERVING__ALIAS_POLL_SECONDS": "0.5"}
    with local_service(settings, env=poll, timeout=120) as (url, _):
        client = Client(url, drafts)
        client.start()
        try:
            # split: half of the authors answered by the challenger, each always by the same arm
            cli(capsys, "experiment", "start", "engagement", "--challenger", str(second.version),
                "--split", "50", "--min-samples", "5")  # fmt: skip
            experiment = running_experiment(client_registry, "engagement")
            assert experiment is not None and experiment.mode == "split"
            wait_for(lambda: len(followed(url)) == 1)
            seen = len(client.answers)
            wait_for(lambda: len(client.answers) > seen + 2 * len(drafts))
            split_answers = client.since(seen)
            for draft, status, body in split_answers:
                assert status == 200, body
                arm = arm_of(experiment, draft["user_id"])
                assert body["lineage"]["arm"] == arm
                assert body["lineage"]["version"] == (
                    second.version if arm == "challenger" else first.version
                )
            assert {b["lineage"]["arm"] for _, _, b in split_answers} == {"champion", "challenger"}
            time.sleep(2.5)  # the log flushes every second
            status = json.loads(cli(capsys, "experiment", "status", "engagement", "--json"))[0]
            labelled = [a["labelled"] for a in status["arms"]]
            assert min(labelled) >= 5, status
            assert 0 <= status["error_difference"]["p_value"] <= 1
            stopped = cli(capsys, "experiment", "stop", "engagement", "--promote")
            gate = history(open_warehouse(settings), "engagement").iloc[-1]
            assert (
                gate.decision in ("experiment_won", "experiment_kept")
                and gate.version == second.version
            )
            won = gate.decision == "experiment_won"
            assert ("challenger wins" in stopped) == won
            assert current_champion(client_registry, "engagement") == (
                second.version if won else first.version
            )
            record = json.loads(
                client_registry.get_model_version("engagement", str(second.version)).tags[
                    RECORD_TAG
                ]
            )
            run = client_registry.get_run(record["run_id"])
            assert run.data.params["mode"] == "split" and "sequential_p_value" in run.data.metrics
            assert running_experiment(client_registry, "engagement") is None
            wait_for(lambda: followed(url) == [])

            # shadow: the champion answers every request, the challenger scores the same inputs
            champion = current_champion(client_registry, "engagement")
            challenger = first.version if champion == second.version else second.version
            cli(capsys, "experiment", "start", "engagement", "--challenger", str(challenger),
                "--shadow", "--min-samples", "5")  # fmt: skip
            wait_for(lambda: len(followed(url)) == 1)
            seen = len(client.answers)
            wait_for(lambda: len(client.answers) > seen + len(drafts))
            shadow_answers = client.since(seen)
            assert all(s == 200 and b["lineage"]["arm"] == "champion" for _, s, b in shadow_answers)
            assert {b["lineage"]["version"] for _, _, b in shadow_answers} == {champion}
            time.sleep(2.5)
            log = read_parquet_log(settings.root / "predictions")
            asked = {b["lineage"]["request_id"] for _, _, b in shadow_answers}
            shadowed = log[log.request_id.isin(asked) & (log.arm == "challenger")]
            assert set(shadowed.model_version) == {challenger}
            assert len(shadowed) >= 0.9 * len(asked)  # past a full queue a request is not shadowed
            assert followed(url)[0]["shadow_failed"] == 0
            status = json.loads(cli(capsys, "experiment", "status", "engagement", "--json"))[0]
            assert status["paired"] and min(a["labelled"] for a in status["arms"]) >= 5
            summary = cli(capsys, "monitor", "--summary")
            assert "shadow" in summary and status["experiment"]["id"] in summary
            shown = open_warehouse(settings).read("model_experiments")  # the dashboard's table
            assert list(shown.experiment_id) == [status["experiment"]["id"]]
            assert (
                list(shown["mode"]) == ["shadow"] and shown.challenger_version.iloc[0] == challenger
            )
            cli(capsys, "experiment", "stop", "engagement", "--promote")
            assert open_warehouse(settings).read("model_experiments").empty
            assert (
                history(open_warehouse(settings), "engagement")
                .iloc[-1]
                .decision.startswith("experiment_")
            )
        finally:
            client.halt.set()
            client.join(timeout=30)
    assert client.answers and all(status == 200 for _, status, _ in client.answers)
    assert all(
        body["lineage"]["arm"] in ("champion", "challenger") for _, _, body in client.answers
    )

    # the gate itself: a winner is crowned only with --promote and only over the champion it
    # was compared with
    warehouse, task = open_warehouse(settings), get_task("engagement")
    champion = current_champion(client_registry, "engagement")
    challenger = first.version if champion == second.version else second.version
    e = start_experiment(client_registry, task, challenger, "split", 50, 5)
    kept = experiment_decision(client_registry, warehouse, task, e, True, (0.5, 0.4), "won", False)
    assert kept.decision == "experiment_kept" and "without --promote" in kept.reason
    d = experiment_decision(client_registry, warehouse, task, e, True, (0.5, 0.4), "won", True)
    assert (d.decision, d.champion_before, d.champion_after) == (
        "experiment_won",
        champion,
        challenger,
    )
    assert current_champion(client_registry, "engagement") == challenger
    assert history(warehouse, "engagement").iloc[-1].decision == "experiment_won"
    moved = experiment_decision(client_registry, warehouse, task, e, True, (0.5, 0.4), "won", True)
    assert moved.decision == "experiment_kept" and "champion moved" in moved.reason
    assert current_champion(client_registry, "engagement") == challenger
    end_experiment(client_registry, e, {})
    assert running_experiment(client_registry, "engagement") is None
