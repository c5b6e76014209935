"""Comment text with sentiment: the simulator's words, labels and oracle; the comments import;
VADER as a model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from ingestion.csv_comments import import_comments
from ingestion.csv_import import CsvImportError, import_posts
from ingestion.simulate_sentiment import comment_sentiment
from ingestion.simulator import simulate
from ingestion.warehouse import ParquetWarehouse

FIXTURES = Path(__file__).parents[1] / "fixtures"


@pytest.fixture(scope="module")
def said():
    latent = np.clip(np.random.default_rng(3).normal(0.2, 0.42, 20_000), -1, 1)
    return latent, comment_sentiment(7, latent)


def test_labels_follow_the_latent_sentiment_and_the_oracle_only_sarcasm(said):
    latent, frame = said
    positive, negative = frame.label == "positive", frame.label == "negative"
    assert (latent[positive.to_numpy()] > 0.45).all() and (latent[negative.to_numpy()] < 0).all()
    differs = frame.label != frame.oracle
    assert set(frame.label[differs]) <= {"negative", "positive"}  # sarcasm flips polar ones
    assert (frame.oracle[differs] != "neutral").all()
    assert 0.02 < differs.mean() < 0.06
    assert 0.9 < f1_score(frame.label, frame.oracle, average="macro") < 0.99


def test_words_carry_negation_emoji_and_off_topic_noise(said):
    _, frame = said
    text = frame.text
    assert text.str.strip().ne("").all()
    assert text.str.contains(r"\bnot (?:good|great|worth it|impressed)\b").any()
    assert text.str.contains("😍|❤️|🔥").any() and text.str.contains("😡|👎").any()
    assert frame.label[text.str.contains("follow me|check my page")].eq("neutral").all()


def test_same_seed_same_text_and_the_tables_carry_it():
    a, b = simulate("quick", seed=5), simulate("quick", seed=5)
    pd.testing.assert_frame_equal(a["comments"], b["comments"])
    comments, truth = a["comments"], a["truth_comment_sentiment"]
    assert set(comments.label) == {"negative", "neutral", "positive"}
    assert (truth.comment_id.to_numpy() == comments.comment_id.to_numpy()).all()


def _posts(tmp_path: Path) -> ParquetWarehouse:
    mapping = tmp_path / "posts.yaml"
    text = (FIXTURES / "posts_mapping.yaml").read_text()
    mapping.write_text(text.replace("columns:\n", 'columns:\n  post_id: "Post ID"\n', 1))
    warehouse = ParquetWarehouse(tmp_path / "warehouse")
    import_posts(FIXTURES / "posts_export.csv", mapping, warehouse, tmp_path / "rejects")
    return warehouse


def test_comments_import_joins_posts_counts_rejects_and_skips_repeats(tmp_path):
    warehouse = _posts(tmp_path)
    export = tmp_path / "comments.csv"
    pd.DataFrame(
        {
            "Post": ["17900000", "17900000", "17900001", "999", "17900001"],
            "Account": ["acme_travel", "acme_travel", "acme_coffee", "acme_travel", "acme_coffee"],
            "User": ["ann", "bob", "cy", "dee", "eve"],
            "When": ["2026-03-01T09:00:00Z"] * 5,
            "Comment": ["love it 😍", "not great", "where is this", "hi", "meh"],
            "Label": ["positive", "negative", "", "neutral", "grumpy"],
        }
    ).to_csv(export, index=False)
    mapping = tmp_path / "comments.yaml"
    mapping.write_text(
        "columns:\n  post_id: Post\n  post_account: Account\n  author: User\n"
        "  timestamp: When\n  text: Comment\n  label: Label\n"
    )

    first = import_comments(export, mapping, warehouse)
    again = import_comments(export, mapping, warehouse)

    assert (first.comments_loaded, first.rows_rejected, first.labelled) == (3, 2, 2)
    assert first.rejects_by_reason == {
        "post_id: no imported post has this id": 1,
        "label: not one of negative, neutral, positive": 1,
    }
    assert (again.comments_loaded, again.rows_duplicate) == (0, 3)
    stored = warehouse.read("comments")
    assert sorted(stored.text) == ["love it 😍", "not great", "where is this"]
    assert stored.sentiment.isna().all()


def test_comments_import_names_a_missing_column(tmp_path):
    warehouse = _posts(tmp_path)
    export = tmp_path / "comments.csv"
    pd.DataFrame({"post_id": ["1"], "author": ["a"], "timestamp": ["2026-03-01"]}).to_csv(
        export, index=False
    )
    with pytest.raises(CsvImportError, match=r"missing column\(s\): text"):
        import_comments(export, None, warehouse)


def test_vader_model_classes_and_scores():
    from training.sentiment import lexicon_model, vader_class

    assert list(vader_class(np.array([-0.5, 0.0, 0.04, 0.05]))) == [
        "negative", "neutral", "neutral", "positive"
    ]  # fmt: skip
    scores, classes = lexicon_model().scores_and_classes(
        pd.DataFrame({"text": ["I love this 😍", "this is awful", "posted at 5"]})
    )
    assert list(classes) == ["positive", "negative", "neutral"]
    assert scores.shape == (3, 3) and np.allclose(scores.sum(axis=1), 1.0, atol=0.01)
