"""Content: text in, category out. content_v1 names the request inputs (caption, hashtags,
post type), read from the warehouse rather than Feast (training/content.py says why)."""

from training import baseline, labels
from training.task import Serving, Task
from training.trainers import TEXT

TASK = Task(
    name="content",
    entity="post",
    trainer=TEXT,
    feature_service="content_v1",
    metric="macro_f1",
    direction="maximize",
    families=("tfidf_logreg", "tfidf_svc", "keras_text"),
    label_query=labels.content_labels,
    label_days=0,
    baseline="the most frequent category of the training part, for every post",
    naive=baseline.majority_category,
    target="the post's content category",
    serving=Serving("posts"),
)
