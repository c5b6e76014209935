"""Expected failures are one line and exit 1; a bug inside a stage keeps its traceback."""

import pytest

from configs.errors import SmapError
from pipelines import flows
from pipelines.cli import main
from training.errors import TaskError


def test_expected_error_of_a_stage_is_one_line(monkeypatch, capsys):
    def refuse(*args, **kwargs):
        raise TaskError("engagement: nothing to do\nsecond line never shown")

    monkeypatch.setattr(flows, "simulate", refuse)
    assert main(["simulate"]) == 1
    err = capsys.readouterr().err
    assert err == "error: engagement: nothing to do\n"


def test_bug_inside_a_stage_keeps_its_traceback(monkeypatch):
    def broken(*args, **kwargs):
        return {}["content_posts"]  # a bug, not an expected failure

    monkeypatch.setattr(flows, "simulate", broken)
    with pytest.raises(KeyError):
        main(["simulate"])


def test_a_plain_value_error_is_a_bug_too(monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("could not convert string to float: 'x'")

    monkeypatch.setattr(flows, "simulate", broken)
    with pytest.raises(ValueError, match="could not convert"):
        main(["simulate"])


def test_every_expected_error_class_is_a_smap_error():
    assert issubclass(TaskError, SmapError)
