"""Short tag names read back, old registries' long names too; a version's gate sentence."""

from training import tags
from training.descriptions import version_description, with_gate
from training.tasks import get_task


def test_a_short_tag_is_read_before_its_long_name():
    assert tags.read({"features": "engagement_v2"}, tags.FEATURES) == "engagement_v2"
    assert tags.read({"smap.feature_service": "engagement_v1"}, tags.FEATURES) == "engagement_v1"
    assert tags.read({}, tags.STATE, "ready") == "ready"


def test_every_short_name_is_shorter_than_the_ui_column():
    assert all(len(name) <= 14 for name in tags.LEGACY)


def test_the_gate_sentence_is_replaced_not_appended():
    task = get_task("engagement")
    window = {
        "train_start": "2026-01-01 00:00:00",
        "train_end": "2026-02-01 00:00:00",
        "test_start": "2026-02-10 00:00:00",
        "test_end": "2026-02-20 00:00:00",
    }
    first = with_gate(version_description(task, window, "abc"), "r2 0.1 does not beat 0.2")
    second = with_gate(first, "rolled back from version 3")
    assert "trained on 2026-01-01..2026-02-01" in second
    assert second.count("Gate: ") == 1 and second.startswith("Gate: rolled back from version 3.")
