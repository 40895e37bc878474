"""The curated vocabulary of the field as features inside the classifier: one 0/1 feature per keyword
list of ``data/labeling`` (the labelling functions' lists), computed by RE2 regular expressions in
the TensorFlow graph, so the exported SavedModel still takes raw strings and needs no file beside it.

A model trained on a few thousand synthetic posts knows only the words those posts use; the lists
hold the field's vocabulary (libraries, models, venues, jargon, 18 languages) and the words of its
traps and everyday topics. Each list becomes one feature, "does the text hold one of these
entries", whose weight the model learns from its training rows like any other: a list whose entries
point to AI gets a positive weight, a list of game talk or everyday topics a negative one, so a
feature can never vote on its own.

Matching follows the lists' own rule (``data/ai_keywords.txt``): whole words in any case; a phrase
in any spacing, with hyphens or underscores, or run together as a hashtag; an entry in capitals
("AI", "NLP") only in capitals; an entry in a script written without spaces anywhere.

>>> pattern = list_pattern(["machine learning", "NLP", "機械学習", "#AIArt"])
>>> import re
>>> [bool(re.fullmatch(pattern.replace("\\\\p{L}", "a-zA-Z").replace("\\\\p{N}", "0-9"), t)) for t in
...  ["I love Machine-Learning!", "nlp is fun", "NLP rocks", "機械学習の勉強", "#AIArt", "#aiart"]]
[True, False, True, True, True, True]
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["LEXICON_LISTS", "lexicon_layer", "list_pattern", "read_lexicon"]

# The lists that become features, in a fixed order (the model's weights follow it).
LEXICON_LISTS = (
    "ai_terms", "machine_learning_terms", "deep_learning_terms", "nlp_terms", "computer_vision_terms",
    "data_science_terms", "ml_libraries", "ai_labs_models_researchers", "ml_venues", "ml_jargon",
    "other_language_terms", "other_language_acronyms",
    "ml_context_models", "ml_context_training", "ml_context_data", "ml_context_compute", "ml_context_research",
    "ml_context_other_senses", "ai_names", "game_context", "game_ai_phrases", "ai_other_sense_context",
    "everyday_topics", "ai_lookalike_words",
)
_UNSPACED = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_SPECIAL = re.compile(r"([\\.^$|?*+()\[\]{}\-/#&'!:,])")
_EDGE_BEFORE = r"(?:^|[^\p{L}\p{N}_])"
_EDGE_AFTER = r"(?:'?s)?(?:$|[^\p{L}\p{N}_])"


def _escape(word: str) -> str:
    return _SPECIAL.sub(r"\\\1", word)


def _body(entry: str) -> str:
    words = [_escape(w) for w in re.split(r"[\s\-_]+", entry) if w]
    return r"[\s\-_]*".join(words)


def list_pattern(entries: Iterable[str]) -> str:
    """One RE2 pattern that fully matches a text holding any of ``entries`` (see the module docstring)."""
    capitals, words, unspaced, tags = [], [], [], []
    for entry in dict.fromkeys(e.strip() for e in entries if e.strip()):
        if entry.startswith("#"):
            tags.append(_escape(entry[1:]))
        elif _UNSPACED.search(entry):
            unspaced.append(_escape(entry))
        elif entry.isupper() and " " not in entry:
            capitals.append(_body(entry))
            tags.append(_escape(re.sub(r"[\W_]+", "", entry)))
        else:
            words.append(_body(entry))
            tags.append(_escape(re.sub(r"[\W_]+", "", entry)))
    branches = []
    if words:
        branches.append(rf"{_EDGE_BEFORE}(?i:{'|'.join(sorted(words, key=len, reverse=True))}){_EDGE_AFTER}")
    if capitals:
        branches.append(rf"{_EDGE_BEFORE}(?:{'|'.join(sorted(capitals, key=len, reverse=True))}){_EDGE_AFTER}")
    if tags:
        branches.append(rf"#(?i:{'|'.join(sorted(set(tags), key=len, reverse=True))})(?:$|[^\p{{L}}\p{{N}}_])")
    if unspaced:
        branches.append(f"(?:{'|'.join(unspaced)})")
    return rf"(?s).*(?:{'|'.join(branches)}).*" if branches else r"(?!)"


def read_lexicon(folder: Path | None = None, names: Sequence[str] = LEXICON_LISTS) -> list[list[str]]:
    """The entries of each list in ``names``, from ``folder`` (default: the labelling functions' folder)."""
    from ssp.labeling.functions import default_keyword_dir
    from ssp.text import load_ai_keywords

    folder = Path(folder) if folder else default_keyword_dir()
    return [load_ai_keywords(folder / f"{name}.txt") for name in names]


def lexicon_layer(lists: Sequence[Sequence[str]]):
    """A Keras layer: raw texts ``[batch]`` to ``[batch, len(lists)]`` floats, 1.0 where a text holds
    an entry of that list. The patterns are constants of the graph."""
    import keras
    import tensorflow as tf

    patterns = [list_pattern(entries) for entries in lists]

    class LexiconFeatures(keras.layers.Layer):
        def call(self, texts):
            texts = tf.reshape(texts, [-1])
            found = [tf.cast(tf.strings.regex_full_match(texts, p), tf.float32) for p in patterns]
            return tf.stack(found, axis=1)

    return LexiconFeatures(name="lexicon")
