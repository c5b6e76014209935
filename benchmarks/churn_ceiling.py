"""How well churn can be predicted from activity alone, even knowing each account's traits.

The simulator's oracle knows the day an account starts to disengage; a model sees only the days
it was active. This scores the posterior of the churn target ("no activity in the next 28
days") given an account's last `--history-days` days of activity, its true daily activity rate
and its true hazard (read from `truth_users`), under the simulator's own process: active with
the rate until it disengages, then with the rate times (0.85 x 0.9 not yet churned) per day.
It is a ceiling for features built from activity: they have to estimate the rate too.

    export SMAP_DATA_DIR=/tmp/churn-data
    smap simulate --preset small && smap ingest
    python benchmarks/churn_ceiling.py   # ROC-AUC on the test split `smap train churn` uses
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from configs.settings import load_settings
from ingestion.simulator import DISENGAGE_TO_CHURN, QUIET_DECAY
from ingestion.warehouse import open_warehouse
from training.dataset import time_split
from training.labels import CHURN_DAYS, churn_labels

EPOCH = pd.Timestamp("1970-01-01", tz="UTC")


def epoch_days(stamps: pd.Series) -> np.ndarray:
    stamps = pd.to_datetime(stamps)
    if stamps.dt.tz is None:
        stamps = stamps.dt.tz_localize("UTC")
    return ((stamps - EPOCH) // pd.Timedelta(days=1)).to_numpy()


def activity_window(
    activity: pd.DataFrame, users: np.ndarray, days: np.ndarray, history: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: 1 on each of the `history` days up to `days` the user was active (oldest
    first), and which of those days lie inside the data."""
    active_day = epoch_days(activity.date)
    first = int(active_day.min())
    grid = np.zeros(
        (int(max(users.max(), activity.user_id.max())) + 1, int(active_day.max()) - first + 1)
    )
    grid[activity.user_id.to_numpy(), active_day - first] = 1
    column = days[:, None] - first - history + 1 + np.arange(history)[None, :]
    inside = column >= 0
    seen = np.where(inside, grid[users[:, None], np.clip(column, 0, grid.shape[1] - 1)], 0.0)
    return seen, inside.astype(float)


def quiet_posterior(
    seen: np.ndarray, inside: np.ndarray, rate: np.ndarray, hazard: np.ndarray
) -> np.ndarray:
    """P(no activity in the next CHURN_DAYS days | the window's activity, rate, hazard): the
    account is engaged throughout, or disengaged on one of the window's days."""
    history = seen.shape[1]
    fade = QUIET_DECAY * (1 - DISENGAGE_TO_CHURN)  # active and not yet churned, per day after
    p, h = rate[:, None], hazard  # the rate as a column, against the window's days

    def log_likelihood(p_active: np.ndarray) -> np.ndarray:
        p_active = np.clip(p_active, 1e-12, 1 - 1e-12)
        return (inside * (seen * np.log(p_active) + (1 - seen) * np.log(1 - p_active))).sum(1)

    def quiet_for(first: int, days: int) -> np.ndarray:  # no activity on `days` days, from
        return np.prod(1 - p * fade ** np.arange(first, first + days), axis=1)  # `first` after

    # engaged now: stays engaged and quiet, or disengages on day j after a quiet j - 1 days
    stays = ((1 - h) * (1 - rate)) ** CHURN_DAYS
    leaves = sum(
        h * ((1 - h) * (1 - rate)) ** (j - 1) * quiet_for(0, CHURN_DAYS - j + 1)
        for j in range(1, CHURN_DAYS + 1)
    )
    log_post = [np.log(np.clip(1 - h * history, 1e-6, 1)) + log_likelihood(p)]
    quiet = [stays + leaves]
    for start in range(history):  # disengaged on the window's day `start`
        since = np.arange(history)[None, :] - start
        log_post.append(
            np.log(h) + log_likelihood(np.where(since >= 0, p * fade ** np.maximum(since, 0), p))
        )
        quiet.append(quiet_for(history - start, CHURN_DAYS))
    weights = np.stack(log_post, 1)
    weights = np.exp(weights - weights.max(1, keepdims=True))
    return (weights * np.stack(quiet, 1)).sum(1) / weights.sum(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history-days", type=int, default=60)
    args = parser.parse_args(argv)
    warehouse = open_warehouse(load_settings())
    if not warehouse.exists("truth_users"):
        print("churn_ceiling: the data has no truth_users table (simulate it)", file=sys.stderr)
        return 1
    labels = churn_labels(warehouse)
    truth = warehouse.read("truth_users").set_index("user_id")
    users, days = labels.user_id.to_numpy(), epoch_days(labels.event_timestamp) - 1
    seen, inside = activity_window(
        warehouse.read("user_activity", columns=["user_id", "date"]), users, days, args.history_days
    )
    posterior = quiet_posterior(
        seen,
        inside,
        truth.daily_active_prob.loc[users].to_numpy(),
        truth.churn_hazard.loc[users].to_numpy(),
    )
    test = time_split(labels.event_timestamp, CHURN_DAYS).test
    target = labels.target.to_numpy()[test]
    print(
        json.dumps(
            {
                "test_rows": len(test),
                "posterior_with_true_traits": roc_auc_score(target, posterior[test]),
                "oracle": roc_auc_score(target, labels.oracle.to_numpy()[test]),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
