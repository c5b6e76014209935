"""Comment text whose words carry the comment's sentiment (see docs/sentiment.md).

The main stream draws each comment's latent sentiment (a number in [-1, 1]). This module turns
it into a three-class label and a text, from its own random stream, so every other table stays
as the main stream drew it:

1. label: negative below NEGATIVE_BELOW, positive above POSITIVE_ABOVE, neutral between; an
   off-topic comment (OFF_TOPIC share: spam, tags, questions about something else) is neutral.
2. expressed class: the label, except that a SARCASM share of the polar comments is written
   with the opposite polarity's words (sarcasm: the words say "love it", the writer means no).
3. words: one or two cues of the expressed class (a polar word, optionally after an
   intensifier, or a negated word of the other polarity: "not good"), context words, and an
   emoji of the class with EMOJI_SHARE; then noise: a MIXED share of polar comments add a
   weaker cue of the other polarity ("but the sound is bad"), a NOISE_EMOJI share an emoji of
   a random class.

The oracle is the expressed class: what the generator meant the words to say, before the word
noise. No reader of the text can know a comment was sarcastic, so the oracle is also the best
any text model can do against the label, up to the word noise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SENTIMENT_STREAM = 5150  # comment text comes from default_rng([seed, SENTIMENT_STREAM])
CLASSES = ("negative", "neutral", "positive")
NEGATIVE_BELOW = 0.0  # latent sentiment below this: negative
POSITIVE_ABOVE = 0.45  # above this: positive
OFF_TOPIC = 0.08
SARCASM = 0.06
EMOJI_SHARE = 0.4
MIXED = 0.15
NOISE_EMOJI = 0.08
NEGATION = 0.2  # share of cues written as a negated word of the other polarity
INTENSIFIED = 0.35

POSITIVE = "love great amazing beautiful awesome perfect nice fantastic stunning gorgeous brilliant best".split()  # noqa: E501
NEGATIVE = (
    "hate awful terrible boring ugly worst disappointing annoying bad horrible lame trash".split()
)  # noqa: E501
NEGATED_POSITIVE = ["not bad", "not boring", "never disappoints", "no complaints"]
NEGATED_NEGATIVE = ["not good", "not great", "not worth it", "not impressed", "don't like"]
INTENSIFIERS = ["so", "really", "very", "super", "absolutely", "totally", "SO"]
SUBJECTS = ["this", "the post", "the video", "this photo", "the colors", "the vibe", "it"]
NEUTRAL = [
    "where is this",
    "what camera is this",
    "saw this yesterday",
    "posted at 5",
    "how much is it",
    "link?",
    "same here",
    "which one is it",
    "is this new",
    "when is the next one",
    "first time seeing this",
    "ok",
]
OFF_TOPIC_TEXT = [
    "follow me for more",
    "check my page",
    "dm for collab",
    "who is watching in 2026",
    "@friend look",
    "giveaway on my profile",
    "anyone know the song",
    "first",
]
EMOJI = {
    "negative": ["😡", "👎", "😒", "😢", "🤮"],
    "neutral": ["🤔", "👀", "📍"],
    "positive": ["😍", "❤️", "🔥", "👏", "😊"],
}


def _pick(rng: np.random.Generator, options: list[str], n: int) -> np.ndarray:
    return np.asarray(options, dtype=object)[rng.integers(0, len(options), n)]


def _cues(rng: np.random.Generator, positive: np.ndarray) -> np.ndarray:
    """One sentiment cue per row, of the row's polarity (True: positive)."""
    n = len(positive)
    word = np.where(positive, _pick(rng, POSITIVE, n), _pick(rng, NEGATIVE, n))
    boost = _pick(rng, INTENSIFIERS, n) + " "
    word = np.where(rng.random(n) < INTENSIFIED, boost + word, word)
    negated = np.where(positive, _pick(rng, NEGATED_POSITIVE, n), _pick(rng, NEGATED_NEGATIVE, n))
    return np.where(rng.random(n) < NEGATION, negated, word)


def comment_sentiment(seed: int, latent: np.ndarray) -> pd.DataFrame:
    """Per comment (in `latent`'s order): `text`, `label` and `oracle` class names."""
    rng = np.random.default_rng([seed, SENTIMENT_STREAM])
    n = len(latent)
    label = np.where(latent < NEGATIVE_BELOW, 0, np.where(latent > POSITIVE_ABOVE, 2, 1))
    off_topic = rng.random(n) < OFF_TOPIC
    label[off_topic] = 1
    polar = label != 1
    sarcastic = polar & (rng.random(n) < SARCASM)
    expressed = np.where(sarcastic, 2 - label, label)
    positive = expressed == 2

    subject = _pick(rng, SUBJECTS, n)
    first, second = _cues(rng, positive), _cues(rng, positive)
    two = rng.random(n) < 0.4
    polar_text = np.where(
        rng.random(n) < 0.5, subject + " is " + first, first + " " + subject
    ) + np.where(two, np.asarray(", " + second, dtype=object), "")
    mixed = (expressed != 1) & (rng.random(n) < MIXED)
    against = _cues(rng, ~positive)
    polar_text = np.where(
        mixed, first + ", " + second + " but " + _pick(rng, SUBJECTS, n) + " " + against, polar_text
    )
    neutral_text = np.where(off_topic, _pick(rng, OFF_TOPIC_TEXT, n), _pick(rng, NEUTRAL, n))
    text = np.where(expressed == 1, neutral_text, polar_text)

    names = np.asarray(CLASSES)
    emoji = np.empty(n, dtype=object)
    for c, name in enumerate(CLASSES):
        emoji[expressed == c] = _pick(rng, EMOJI[name], int((expressed == c).sum()))
    noise = np.empty(n, dtype=object)
    noise_class = rng.integers(0, 3, n)
    for c, name in enumerate(CLASSES):
        noise[noise_class == c] = _pick(rng, EMOJI[name], int((noise_class == c).sum()))
    text = np.where(rng.random(n) < EMOJI_SHARE, text + " " + emoji, text)
    text = np.where(rng.random(n) < NOISE_EMOJI, text + " " + noise, text)
    return pd.DataFrame(
        {"text": text.astype(object), "label": names[label], "oracle": names[expressed]}
    )
