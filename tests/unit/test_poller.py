"""The poller behind the champions and the experiments: it calls its refresh again and again
on its own thread, logs a poll that changed something as one line, and stops when asked."""

from __future__ import annotations

import logging
import threading

from serving.poller import Poller


def test_a_poll_that_changes_something_is_one_line_and_stop_ends_the_thread(caplog):
    caplog.set_level(logging.INFO, logger="test.poller")
    answers = [["engagement v2", "churn v1"], []]
    polled_twice = threading.Event()

    def refresh() -> list[str]:
        if not answers:
            polled_twice.set()
            return []
        return answers.pop(0)

    poller = Poller(refresh, 0.01, "test-poller", "champion swap", logging.getLogger("test.poller"))
    poller.start()
    try:
        assert polled_twice.wait(timeout=30), "the poller did not poll again"
    finally:
        poller.stop()

    assert not poller._thread.is_alive()
    messages = [r.getMessage() for r in caplog.records if r.name == "test.poller"]
    assert len(messages) == 1  # the polls that changed nothing say nothing
    assert messages[0].startswith("champion swap: engagement v2, churn v1 (")


def test_a_poll_that_raises_is_logged_and_the_polling_goes_on(caplog):
    caplog.set_level(logging.INFO, logger="test.poller")
    calls = []
    polled_after = threading.Event()

    def refresh() -> list[str]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("unforeseen")
        polled_after.set()
        return []

    poller = Poller(refresh, 0.01, "test-poller", "champion swap", logging.getLogger("test.poller"))
    poller.start()
    try:
        assert polled_after.wait(timeout=30), "the polling ended with the failed poll"
    finally:
        poller.stop()

    failed = [r for r in caplog.records if r.name == "test.poller" and r.levelno == logging.ERROR]
    assert len(failed) == 1 and failed[0].exc_info is not None
    assert failed[0].getMessage().startswith("champion swap: the poll failed")
