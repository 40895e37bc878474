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

import functools
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["LEXICON_LISTS", "lexicon_layer", "list_pattern", "list_patterns", "read_lexicon"]

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


# RE2 runs a pattern as a DFA within a memory budget; past about 5,000 characters of alternatives (the
# 252 entries of ml_jargon, the 356 of everyday_topics) the DFA outgrows it and matching falls back to
# slower machinery: 7-17 us a tweet for one list, against under 1 us for each of the pieces.
MAX_PATTERN_CHARS = 4000


def list_patterns(entries: Sequence[str], max_chars: int = MAX_PATTERN_CHARS) -> list[str]:
    """:func:`list_pattern` of consecutive pieces of ``entries``, each pattern at most ``max_chars`` long
    where one entry allows it: a text holds an entry of the list exactly when one of them matches it.

    >>> pieces = list_patterns([f"word{i}" for i in range(100)], max_chars=300)
    >>> len(pieces) > 1 and all(len(p) <= 300 for p in pieces)
    True
    >>> import re
    >>> [any(re.fullmatch(p.replace("\\\\p{L}", "a-z").replace("\\\\p{N}", "0-9"), t) for p in pieces)
    ...  for t in ["say word7 now", "word99", "word100"]]
    [True, True, False]
    >>> list_patterns([]) == [list_pattern([])]
    True
    """
    pieces: list[list[str]] = [[]]
    for entry in entries:
        if pieces[-1] and len(list_pattern([*pieces[-1], entry])) > max_chars:
            pieces.append([])
        pieces[-1].append(entry)
    return [list_pattern(piece) for piece in pieces]


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

    patterns = [list_patterns(entries) for entries in lists]

    class LexiconFeatures(keras.layers.Layer):
        def call(self, texts):
            texts = tf.reshape(texts, [-1])
            found = [functools.reduce(tf.logical_or, (tf.strings.regex_full_match(texts, p) for p in pieces))
                     for pieces in patterns]
            return tf.cast(tf.stack(found, axis=1), tf.float32)

    return LexiconFeatures(name="lexicon")
