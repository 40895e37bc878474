"""Labelling functions: small named rules that vote AI (1), NOT_AI (0) or ABSTAIN (-1) on one tweet.

Snorkel's label model learns how far to trust each rule from how the rules agree and disagree,
so a rule only has to be right clearly more often than not on the tweets it votes on, and must
abstain everywhere else. The positive rules each look for one kind of evidence (a term, a tool,
a link); the negative ones vote NOT_AI only on tweets that show no sign of AI at all *and* are
plainly about something else or fall into a known trap. Both classes are needed: a label model
that only ever sees AI votes cannot tell a silent tweet from a negative one.

>>> from types import SimpleNamespace
>>> lfs = make_lfs()
>>> def votes(text, urls=(), hashtags=(), lang="en"):
...     row = SimpleNamespace(text=text, urls=urls, hashtags=hashtags, lang=lang,
...                           user_screen_name="someone", is_retweet=False)
...     return sorted(lf.name for lf in lfs if lf(row) != ABSTAIN)
>>> votes("Warming up the learning rate of an LLM in PyTorch #MachineLearning")
['mentions_machine_learning', 'mentions_ml_library', 'mentions_nlp', 'uses_ml_jargon']
>>> votes("Add 200 ML of milk and stir", lang="en")
['ml_is_not_machine_learning']
>>> votes("Ai Weiwei's new show is stunning")
['ai_is_a_name']

Rows
----
A labelling function takes one row ``x`` (a pandas ``Series`` from ``PandasLFApplier``, or any
object with attributes) and reads only the fields it needs: ``text`` (str), ``urls`` (expanded
URLs) and ``hashtags`` (without "#") as lists, tuples or numpy arrays, and ``lang``; any of the
last three may be None. ``user_screen_name`` and ``is_retweet`` are part of the row but no rule
uses them. Rows from pandas (lists) and from Spark's ``mapInPandas`` (numpy arrays) get the same
votes. A row without a field a rule reads, or a field of the wrong type, raises
:class:`LabelingFunctionError` naming it.

How text is matched
-------------------
Keyword lists live in ``data/labeling/*.txt`` (one file per list; each file says which rule uses
it and how its lines match). Most are matched by :class:`ssp.sources.KeywordMatcher`: whole
words, phrases in any spacing or as one hashtag, acronyms ("AI", "ML") only in capitals. Before
any list looks at a text, the traps are taken out of it:

* a quantity in millilitres ("200 ml", "500ML"), in any language;
* people and characters called Ai, and the works they are in (``ai_names.txt``), together with
  every "Ai"/"ai" not written in capitals in that tweet;
* a game's "AI" (``game_ai_phrases.txt``), and any "AI" or "ML" (Mobile Legends) in a tweet that
  is inside a video game (``game_context.txt``).

* any "AI" or "ML" (and "IA", "KI") in a tweet whose other words give it another sense
  (``ai_other_sense_context.txt``): artificial insemination of cattle, Allen Iverson's crossover,
  Amnesty International, Marxism-Leninism.

So "Ai Weiwei", "the enemy AI" and "ADD 200 ML OF MILK" never count as evidence of AI, and the
trap rules (``ai_is_a_name``, ``ai_in_a_video_game``, ``ai_means_something_else``,
``ml_is_not_machine_learning``) vote NOT_AI on them when nothing else in the tweet points to AI.
Camel-case hashtags are also read as words ("#NoAIArt" says "No AI Art"), and Latin letters
written against Japanese, Chinese or Korean get a word boundary ("生成AIで").

No rule votes on a lone word that is ordinary too. The words people who build models use every
day ("model", "training", "dataset", "GPU", "reviewers") come in five kinds
(``ml_context_*.txt``); ``talks_about_building_models`` votes AI only when a tweet holds words of
two kinds, outside a video game and without words that give them their everyday senses (a
runway, a gym, a puppy in training). Names that are also ordinary words are listed only in forms
that are not: "GPT-4" but not "GPT" (a partition table), "Claude 3" but not "Claude". @mentions are taken out too: they name whom
a tweet is addressed to, not what it is about, though an AI lab's account still keeps the
negative rules quiet.

Speed and shipping
------------------
:func:`make_lfs` compiles every list once. The rules of one call share a one-row cache per field,
keyed by the identity of the field's value: every rule of a ``PandasLFApplier`` pass sees the same
row objects one after another, so the text is cleaned and checked for evidence of AI once per row,
not once per rule; each list is found by a set lookup of the text's words before any regular
expression runs. The 27 rules label 50,000 synthetic tweets through ``PandasLFApplier`` in about
6 s on two busy cores. They pickle with cloudpickle (the caches are left behind), so Spark can
ship them to executors.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
from snorkel.labeling import LabelingFunction

from ssp.config import data_path
from ssp.errors import SspError
from ssp.text import KeywordMatcher, load_ai_keywords

__all__ = [
    "ABSTAIN",
    "AI",
    "KEYWORD_LISTS",
    "LABELING_DIR_NAME",
    "NOT_AI",
    "LabelingFunctionError",
    "default_keyword_dir",
    "lf_names",
    "make_lfs",
]

AI = 1
NOT_AI = 0
ABSTAIN = -1

LABELING_DIR_NAME = "labeling"
_REPO_ROOT = Path(__file__).resolve().parents[3]

# Lists whose words are evidence of AI: each drives one positive rule, and together they keep
# every negative rule quiet.
_TERM_LISTS = (
    "ai_terms",
    "machine_learning_terms",
    "deep_learning_terms",
    "nlp_terms",
    "computer_vision_terms",
    "data_science_terms",
    "ml_libraries",
    "ai_labs_models_researchers",
    "ml_venues",
    "ml_jargon",
    "other_language_terms",
)
# Lists of words that trigger a negative rule (when the tweet shows no sign of AI).
_WORD_LISTS = (
    "not_data_science",
    "not_neural_network",
    "not_big_data",
    "not_nlp",
    "not_ai",
    "not_cv",
    "ai_lookalike_words",
    "everyday_topics",
    "everyday_phrases",
)
_OTHER_LISTS = (
    "other_language_acronyms",
    "ai_hints",
    "ai_names",
    "game_ai_phrases",
    "game_context",
    "ml_game_languages",
    "ml_sites",
    "code_hosts",
    "ml_repo_words",
    "ai_other_sense_context",
)
# Five kinds of words people who build models use, each ordinary on its own; two kinds together
# in one tweet are evidence (labelling function talks_about_building_models).
_CONTEXT_LISTS = (
    "ml_context_models",
    "ml_context_training",
    "ml_context_data",
    "ml_context_compute",
    "ml_context_research",
    "ml_context_other_senses",
)
# How many of the kinds a tweet must hold for talks_about_building_models to vote.
MIN_CONTEXT_KINDS = 2
KEYWORD_LISTS = _TERM_LISTS + _WORD_LISTS + _OTHER_LISTS + _CONTEXT_LISTS

# A number of millilitres: "200 ml", "2,5ml", "500 ML". Written in code rather than a list file
# because it is a shape, not a vocabulary.
_ML_QUANTITY = re.compile(r"(?<![\w.,])\d+(?:[.,]\d+)?\s?(?:ml|mL|ML|Ml)(?!\w)")
_MENTION = re.compile(r"(?<!\w)@\w+")
# "ai" written other than in capitals, as a name is ("Ai", "ai"), once a tweet is known to be
# about a person or character called Ai.
_NAME_AI = re.compile(r"(?<!\w)#?(?:Ai|ai|aI)(?:'?s)?(?!\w)")
# Any "AI" or "ML" token, once a tweet is known to be inside a video game.
# ("IA" and "KI" are the acronym in Romance languages and German.)
_ANY_AI = re.compile(r"(?<!\w)#?(?:ai|a\.i\.?|ia|ki)(?:'?s)?(?!\w)", re.IGNORECASE)
_ANY_ML = re.compile(r"(?<!\w)#?ml(?:'?s)?(?!\w)", re.IGNORECASE)
# Words as the keys of the matchers' set lookups see them; "_" joins words in phrases.
_WORD_RUN = re.compile(r"[^\W_]+")
_TAG_BODY = re.compile(r"#(\w+)")
# Japanese, Chinese and Korean: KeywordMatcher matches keywords in them anywhere, without word boundaries
# (a superset of its ranges is fine here: it only sends more texts to the matcher).
_UNSPACED_SCRIPT = re.compile(r"[\u3040-\u9fff\uac00-\ud7af\uf900-\ufaff]")
# Splits a repository owner or name into words: "nanoGPT" -> nano, GPT; "tiny-llm" -> tiny, llm.
_NAME_PARTS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
# A hashtag written in camel case is words run together: "#NoAIArt" says "No AI Art".
_CAMEL_TAG = re.compile(r"(?<![\w&])#(\w*[a-z]\w*[A-Z]\w*|\w*[A-Z]{2,}[a-z]\w*)")
_CAMEL_PARTS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
# Latin letters written against Japanese, Chinese or Korean ("生成AIで", "AI로"): the acronym has
# no word boundary there, so a space is put between the scripts before matching.
_SCRIPT_SEAM = re.compile(
    r"(?<=[\u3040-\u9fff\uac00-\ud7af\uf900-\ufaff])(?=[A-Za-z0-9])|(?<=[A-Za-z0-9])(?=[\u3040-\u9fff\uac00-\ud7af\uf900-\ufaff])"
)
_NO_TRAPS: frozenset[str] = frozenset()
_NO_KEYS: frozenset[str] = frozenset()


class LabelingFunctionError(SspError, ValueError):
    """A keyword list that cannot be used, or a row the labelling functions cannot read."""


def default_keyword_dir() -> Path:
    """The folder of keyword lists used when none is given: ``$SSP_DATA_DIR/labeling`` when that
    folder exists, otherwise the repo's ``data/labeling`` (:func:`ssp.config.data_path`)."""
    return data_path(LABELING_DIR_NAME)


def _keyword_folder(keyword_dir: str | Path | None) -> Path:
    if keyword_dir is None or str(keyword_dir) == "":
        folder = default_keyword_dir()
    else:
        folder = Path(keyword_dir).expanduser()
        if not folder.is_absolute():
            folder = _REPO_ROOT / folder
    if not folder.is_dir():
        raise LabelingFunctionError(
            f"keyword folder {folder} does not exist (keyword_dir={keyword_dir!r}); it should hold "
            f"the labelling keyword lists such as {_TERM_LISTS[0]}.txt"
        )
    return folder


def _read_list(folder: Path, name: str) -> list[str]:
    path = folder / f"{name}.txt"
    if not path.is_file():
        raise LabelingFunctionError(f"keyword list {path} is missing; the labelling functions need it")
    try:
        return load_ai_keywords(path)
    except UnicodeDecodeError as err:
        raise LabelingFunctionError(f"keyword list {path} is not UTF-8 text ({err.reason})") from None
    except ValueError:
        raise LabelingFunctionError(
            f"keyword list {path} is empty: it holds only comments or blank lines"
        ) from None


def _word_keys(phrase: str) -> set[str]:
    """What a text must contain, as a word, for ``phrase`` to match in it: its first word, or its
    first words run together as in a hashtag, case-folded."""
    runs = _WORD_RUN.findall(phrase.casefold())
    return {"".join(runs[:n]) for n in range(1, len(runs) + 1)}


def _text_keys(text: str) -> frozenset[str]:
    """The words of ``text`` and its hashtags run together, case-folded, each also without a final
    "s": every matcher below can only match a text holding one of its keys (see ``_word_keys``)."""
    folded = text.casefold()
    keys = set(_WORD_RUN.findall(folded))
    if "#" in folded:
        keys.update(tag.replace("_", "") for tag in _TAG_BODY.findall(folded))
    keys.update([key[:-1] for key in keys if key.endswith("s")])
    return frozenset(keys)


class _Keywords:
    """A keyword list matched by :class:`~ssp.sources.KeywordMatcher` rules, fast.

    One matcher for a whole list tries every keyword at every position of a text, tens of
    microseconds a text. Here each keyword has a matcher of its own, tried only on texts that hold
    one of the keyword's keys (``_word_keys``): a match starts at a word boundary with the
    keyword's first word or, as a hashtag, its words run together, give or take a plural "s", so
    no text a keyword matches is skipped. Keywords in scripts written without spaces have no
    boundary to look for and are tried on every text in those scripts.
    """

    def __init__(self, keywords: Iterable[str], matchers: dict[str, KeywordMatcher]) -> None:
        by_key: dict[str, list[KeywordMatcher]] = {}
        unspaced: list[KeywordMatcher] = []
        for keyword in dict.fromkeys(k.strip() for k in keywords if k.strip()):
            # Lists share keywords; so do their matchers.
            matcher = matchers.get(keyword) or matchers.setdefault(keyword, KeywordMatcher([keyword]))
            if _UNSPACED_SCRIPT.search(keyword):
                unspaced.append(matcher)
            else:
                for key in _word_keys(keyword):
                    by_key.setdefault(key, []).append(matcher)
        self.by_key = {key: tuple(found) for key, found in by_key.items()}
        self.keys = frozenset(by_key)
        self.unspaced = tuple(unspaced)

    def found_in(self, facts: _TextFacts, text: str | None = None) -> bool:
        """Whether a keyword is in ``text`` (default ``facts.clean``), a text cut from ``facts``."""
        if text is None:
            text = facts.clean
        if self.unspaced and facts.unspaced and any(m.matches(text) for m in self.unspaced):
            return True
        if self.keys.isdisjoint(facts.keys):  # nearly always, and without building a set
            return False
        for key in self.keys.intersection(facts.keys):
            for matcher in self.by_key[key]:
                if matcher.matches(text):
                    return True
        return False


class _Phrases:
    """Whole words in any case; the words of a phrase joined by spaces, hyphens, underscores or
    nothing, so that the hashtag form ("#OshiNoKo") matches as well. Unlike KeywordMatcher this
    finds spans, which the traps need in order to blank them out."""

    def __init__(self, phrases: Iterable[str]) -> None:
        bodies = []
        keys: set[str] = set()
        for phrase in phrases:
            words = [re.escape(word) for word in re.split(r"[\s\-_]+", phrase.lstrip("#")) if word]
            if words:
                bodies.append(r"[\s\-_]*".join(words))
                keys |= _word_keys(phrase)
        bodies.sort(key=len, reverse=True)  # a phrase wins over a shorter one it starts with
        self.pattern = re.compile(rf"(?<!\w)#?(?:{'|'.join(bodies)})(?:'?s)?(?!\w)", re.IGNORECASE)
        self.keys = frozenset(keys)

    def found_in(self, text: str, keys: frozenset[str]) -> bool:
        """Whether a phrase is in ``text``, whose keys (``_text_keys``) are ``keys``."""
        return not self.keys.isdisjoint(keys) and self.pattern.search(text) is not None

    def blank(self, text: str, keys: frozenset[str]) -> tuple[str, int]:
        """``text`` with every phrase replaced by a space, and how many there were."""
        if self.keys.isdisjoint(keys):
            return text, 0
        return self.pattern.subn(" ", text)


def _site(entry: str) -> tuple[str, str]:
    entry = entry.strip().lower()
    if "://" in entry:
        entry = entry.split("://", 1)[1]
    host, _, path = entry.partition("/")
    path = path.strip("/")
    return host.removeprefix("www."), f"/{path}" if path else ""


def _on_site(host: str, path: str, sites: Sequence[tuple[str, str]]) -> bool:
    for site_host, prefix in sites:
        if host == site_host or host.endswith("." + site_host):
            if not prefix or path == prefix or path.startswith(prefix + "/"):
                return True
    return False


def _name_words(segment: str) -> set[str]:
    segment = segment.removesuffix(".git")
    words = {segment.lower()}
    words.update(part.lower() for part in _NAME_PARTS.findall(segment))
    return words


class _Lexicon:
    """Every keyword list of one folder, compiled."""

    def __init__(self, folder: Path) -> None:
        lists = {name: _read_list(folder, name) for name in KEYWORD_LISTS}
        matchers: dict[str, KeywordMatcher] = {}
        self.terms = {name: _Keywords(lists[name], matchers) for name in _TERM_LISTS}
        self.any_term = _Keywords((k for name in _TERM_LISTS for k in lists[name]), matchers)
        self.hints = _Keywords(lists["ai_hints"], matchers)
        self.foreign_acronyms = _Keywords(lists["other_language_acronyms"], matchers)
        self.words = {name: _Keywords(lists[name], matchers) for name in _WORD_LISTS}
        self.ai_names = _Phrases(lists["ai_names"])
        self.game_ai = _Phrases(lists["game_ai_phrases"])
        self.game_context = _Phrases(lists["game_context"])
        self.ml_game_languages = frozenset(code.lower() for code in lists["ml_game_languages"])
        self.ml_sites = tuple(_site(entry) for entry in lists["ml_sites"])
        self.code_hosts = tuple(_site(entry) for entry in lists["code_hosts"])
        self.ml_repo_words = frozenset(word.lower() for word in lists["ml_repo_words"])
        self.other_sense = _Phrases(lists["ai_other_sense_context"])
        self.context_kinds = tuple(_Keywords(lists[name], matchers) for name in _CONTEXT_LISTS[:-1])
        self.context_other_senses = _Keywords(lists[_CONTEXT_LISTS[-1]], matchers)

    def shows_ai(self, facts: _TextFacts, text: str) -> bool:
        """Any evidence of AI in ``text`` (cut from ``facts``) or in the accounts it mentions, or a
        hint of it that makes a NOT_AI vote unsafe."""
        return (
            self.any_term.found_in(facts, text)
            or self.hints.found_in(facts, text)
            or bool(facts.mentions and self.any_term.found_in(facts, facts.mentions))
            or (not facts.in_game and (facts.context_kinds if text is facts.clean
                                       else self.context_kinds_in(facts, text)) >= MIN_CONTEXT_KINDS)
        )

    def context_kinds_in(self, facts: _TextFacts, text: str) -> int:
        """How many of the kinds of model-building words (``_CONTEXT_LISTS``) ``text`` holds; none
        when it also holds a word that gives them their everyday senses (a runway, a gym)."""
        kinds = sum(1 for kind in self.context_kinds if kind.found_in(facts, text))
        if kinds >= MIN_CONTEXT_KINDS and self.context_other_senses.found_in(facts, text):
            return 0
        return kinds


class _TextFacts:
    """One text with its traps blanked out (``clean``), and what it says, each worked out once."""

    __slots__ = (
        "_context_kinds", "_evidence", "_evidence_without_ml", "_has_ml", "_lexicon", "_without_ml", "clean",
        "in_game", "keys", "mentions", "traps", "unspaced",
    )

    def __init__(self, text: str, lexicon: _Lexicon) -> None:
        self._lexicon = lexicon
        self._evidence: bool | None = None
        self._evidence_without_ml: bool | None = None
        self._without_ml: str | None = None
        self._has_ml = 0
        self.mentions = ""
        self.in_game = False
        self._context_kinds: int | None = None
        if not text:
            self.clean, self.keys, self.traps, self.unspaced = "", _NO_KEYS, _NO_TRAPS, False
            return
        text = _spell_out(text)
        # Blanking only removes words, so the keys of the whole text serve every text cut from it.
        self.keys = _text_keys(text)
        self.unspaced = bool(_UNSPACED_SCRIPT.search(text))
        # A mention says whom a tweet is addressed to, not what it is about ("happy birthday
        # @PyTorch"), so it is no evidence for a positive rule; an AI lab's account is still enough
        # to keep the negative rules quiet ("a Research Scientist at @DeepMind").
        if "@" in text:
            self.mentions = " ".join(_MENTION.findall(text))
            text = _MENTION.sub(" ", text)
        traps: set[str] = set()
        if any(key.endswith("ml") for key in self.keys):  # "ml" or "500ml", else no quantity
            text, found = _ML_QUANTITY.subn(" ", text)
            if found:
                traps.add("ml_unit")
        text, found = lexicon.ai_names.blank(text, self.keys)
        if found:
            traps.add("ai_name")
            # In a text written all in capitals "AI" is no acronym either: "AI FROM OSHI NO KO".
            shouted = text == text.upper() and text != text.lower()
            text = (_ANY_AI if shouted else _NAME_AI).sub(" ", text)
        text, found = lexicon.game_ai.blank(text, self.keys)
        if found:
            traps.add("game_ai")
        if lexicon.game_context.found_in(text, self.keys):
            self.in_game = True
            text, found = _ANY_AI.subn(" ", text)
            if found:
                traps.add("game_ai")
            text, found = _ANY_ML.subn(" ", text)
            if found:
                traps.add("ml_game")
        if lexicon.other_sense.found_in(text, self.keys):
            text, found_ai = _ANY_AI.subn(" ", text)
            text, found_ml = _ANY_ML.subn(" ", text)
            if found_ai or found_ml:
                traps.add("ai_other_sense")
        self.clean = text
        self.traps = frozenset(traps) if traps else _NO_TRAPS

    @property
    def evidence(self) -> bool:
        if self._evidence is None:
            self._evidence = self._lexicon.shows_ai(self, self.clean)
        return self._evidence

    @property
    def context_kinds(self) -> int:
        """How many kinds of model-building words ``clean`` holds (``_Lexicon.context_kinds_in``)."""
        if self._context_kinds is None:
            self._context_kinds = self._lexicon.context_kinds_in(self, self.clean)
        return self._context_kinds

    def _strip_ml(self) -> None:
        if self._without_ml is None:
            self._without_ml, self._has_ml = _ANY_ML.subn(" ", self.clean)

    @property
    def without_ml(self) -> str:
        """``clean`` without any "ML" token, for languages in which ML is mostly a game."""
        self._strip_ml()
        return self._without_ml

    @property
    def has_ml(self) -> bool:
        """Whether an "ML" token, in any case, is left in ``clean``."""
        self._strip_ml()
        return self._has_ml > 0

    @property
    def evidence_without_ml(self) -> bool:
        if self._evidence_without_ml is None:
            self._evidence_without_ml = self._lexicon.shows_ai(self, self.without_ml)
        return self._evidence_without_ml


def _spell_out(text: str) -> str:
    """``text`` with camel-case hashtags also written out as words and a space between Latin
    letters and CJK characters, so that acronyms in them are found on word boundaries."""
    if "#" in text:
        words = [" ".join(_CAMEL_PARTS.findall(tag)) for tag in _CAMEL_TAG.findall(text)]
        if words:
            text = f"{text} {' '.join(words)}"
    if text.isascii():
        return text
    return _SCRIPT_SEAM.sub(" ", text)


class _LinkFacts:
    __slots__ = ("ml_code", "ml_site")

    def __init__(self, urls: tuple[str, ...], lexicon: _Lexicon) -> None:
        self.ml_site = self.ml_code = False
        for url in urls:
            try:
                parts = urlsplit(url if "://" in url else f"http://{url}")
                host = (parts.hostname or "").removeprefix("www.")
            except ValueError:
                continue  # not a URL one can parse, so not a link to any site we know
            path = parts.path.rstrip("/")
            if _on_site(host, path, lexicon.ml_sites):
                self.ml_site = True
            if _on_site(host, path, lexicon.code_hosts):
                words: set[str] = set()
                for segment in [s for s in path.split("/") if s][:2]:
                    words |= _name_words(segment)
                if words & lexicon.ml_repo_words:
                    self.ml_code = True

    @property
    def evidence(self) -> bool:
        return self.ml_site or self.ml_code


def _is_missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _field(x: Any, name: str) -> Any:
    try:
        # Series item access is several times faster than its attribute access.
        return x[name] if isinstance(x, pd.Series) else getattr(x, name)
    except (KeyError, AttributeError):
        raise LabelingFunctionError(
            f"tweet row has no {name!r} field; the labelling functions read text, urls, hashtags and lang"
        ) from None


def _string_list(value: Any, name: str) -> tuple[str, ...]:
    if _is_missing(value):
        return ()
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        raise LabelingFunctionError(
            f"tweet field {name!r} must be a list of strings, got {type(value).__name__}: {value!r:.80}"
        )
    items = []
    for item in value:
        if isinstance(item, str):
            items.append(item)
        elif not _is_missing(item):
            raise LabelingFunctionError(
                f"tweet field {name!r} must hold strings, got {type(item).__name__}: {item!r:.80}"
            )
    return tuple(items)


_UNSET = object()


class _TweetFacts:
    """The compiled lists plus a one-row cache per field, shared by the rules of one make_lfs call.

    Each cache holds the field value it was computed from and is hit only for that very object,
    so a hit is always right: what the rules derive from a field depends on nothing else (rows
    are read, never changed in place, while they are labelled). The cache is one tuple, replaced
    whole, so a reader never sees a key with another key's facts.
    """

    def __init__(self, lexicon: _Lexicon) -> None:
        self.lexicon = lexicon
        self._reset()

    def _reset(self) -> None:
        self._columns: tuple[Any, dict[Any, int]] = (_UNSET, {})
        self._text: tuple[Any, _TextFacts | None] = (_UNSET, None)
        self._tags: tuple[Any, _TextFacts | None] = (_UNSET, None)
        self._links: tuple[Any, _LinkFacts | None] = (_UNSET, None)

    def __getstate__(self) -> dict[str, Any]:
        return {"lexicon": self.lexicon}  # the caches stay behind

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.lexicon = state["lexicon"]
        self._reset()

    def field(self, x: Any, name: str) -> Any:
        """Field ``name`` of row ``x``."""
        if type(x) is pd.Series:
            # Every row of a frame shares its column index, so the position of each field is
            # looked up once per frame; reading the row's array by position is several times
            # faster than x[name], which repeats the label lookup and its checks on every call.
            index = x.index
            columns = self._columns
            if index is not columns[0]:
                columns = (index, {label: i for i, label in enumerate(index)} if index.is_unique else {})
                self._columns = columns
            position = columns[1].get(name)
            if position is not None:
                return x._values[position]
        return _field(x, name)

    def text(self, x: Any) -> _TextFacts:
        value = self.field(x, "text")
        key, facts = self._text
        if value is key and facts is not None:
            return facts
        if isinstance(value, str):
            text = value
        elif _is_missing(value):
            text = ""
        else:
            raise LabelingFunctionError(f"tweet field 'text' must be a string, got {type(value).__name__}")
        facts = _TextFacts(text, self.lexicon)
        self._text = (value, facts)
        return facts

    def tags(self, x: Any) -> _TextFacts:
        """The hashtags written out as "#a #b", matched like text."""
        value = self.field(x, "hashtags")
        key, facts = self._tags
        if value is key and facts is not None:
            return facts
        tags = _string_list(value, "hashtags")
        facts = _TextFacts(" ".join("#" + tag.lstrip("#") for tag in tags if tag.strip("#")), self.lexicon)
        self._tags = (value, facts)
        return facts

    def links(self, x: Any) -> _LinkFacts:
        value = self.field(x, "urls")
        key, facts = self._links
        if value is key and facts is not None:
            return facts
        facts = _LinkFacts(_string_list(value, "urls"), self.lexicon)
        self._links = (value, facts)
        return facts

    def lang(self, x: Any) -> str:
        value = self.field(x, "lang")
        if isinstance(value, str):
            return value.strip().lower()
        if _is_missing(value):
            return ""
        raise LabelingFunctionError(f"tweet field 'lang' must be a string or None, got {type(value).__name__}")

    def foreign_acronym(self, x: Any, text: _TextFacts) -> bool:
        """"IA" or "KI" in a tweet whose language is known and is not English."""
        acronyms = self.lexicon.foreign_acronyms
        if not (acronyms.found_in(text) or acronyms.found_in(self.tags(x))):
            return False
        return self.lang(x) not in ("", "en")

    def no_ai_evidence(self, x: Any, *, ignore_ml: bool = False) -> bool:
        """Nothing in the text, hashtags, links or language points to AI (``ignore_ml``: apart
        from a bare "ML", for the Mobile Legends trap)."""
        text = self.text(x)
        if text.evidence_without_ml if ignore_ml else text.evidence:
            return False
        tags = self.tags(x)
        if tags.evidence_without_ml if ignore_ml else tags.evidence:
            return False
        if self.links(x).evidence:
            return False
        return not self.foreign_acronym(x, text)

    def mentions(self, x: Any, list_name: str) -> bool:
        matcher = self.lexicon.terms[list_name]
        return matcher.found_in(self.text(x)) or matcher.found_in(self.tags(x))

    def says(self, x: Any, list_name: str) -> bool:
        return self.lexicon.words[list_name].found_in(self.text(x))


# ---------------------------------------------------------------- positive rules (vote AI)


def _vote_ai(found: bool) -> int:
    return AI if found else ABSTAIN


def mentions_ai(x: Any, facts: _TweetFacts) -> int:
    """AI named outright: "artificial intelligence", "AI" in capitals, GenAI, #AI (ai_terms.txt).
    "Ai Weiwei", a game's "enemy AI" and "AI3" are blanked out first and do not count."""
    return _vote_ai(facts.mentions(x, "ai_terms"))


def mentions_machine_learning(x: Any, facts: _TweetFacts) -> int:
    """Machine learning named outright: "machine learning", "ML" in capitals, reinforcement
    learning, #100DaysOfMLCode (machine_learning_terms.txt). Not "200 ml", and not a bare "ML"
    in languages where it is mostly the game Mobile Legends (ml_game_languages.txt)."""
    matcher = facts.lexicon.terms["machine_learning_terms"]
    text, tags = facts.text(x), facts.tags(x)
    if not (matcher.found_in(text) or matcher.found_in(tags)):
        return ABSTAIN
    if facts.lang(x) in facts.lexicon.ml_game_languages:
        return _vote_ai(matcher.found_in(text, text.without_ml) or matcher.found_in(tags, tags.without_ml))
    return AI


def mentions_deep_learning(x: Any, facts: _TweetFacts) -> int:
    """Deep learning and network architectures: neural networks, LSTM, GAN, diffusion models
    (deep_learning_terms.txt). Not "Transformers" alone, which are also films and toys."""
    return _vote_ai(facts.mentions(x, "deep_learning_terms"))


def mentions_nlp(x: Any, facts: _TweetFacts) -> int:
    """Language technology: NLP, LLMs, language models, sentiment analysis, machine translation
    (nlp_terms.txt)."""
    return _vote_ai(facts.mentions(x, "nlp_terms"))


def mentions_computer_vision(x: Any, facts: _TweetFacts) -> int:
    """Computer vision: object detection, image segmentation, facial recognition
    (computer_vision_terms.txt)."""
    return _vote_ai(facts.mentions(x, "computer_vision_terms"))


def mentions_data_science(x: Any, facts: _TweetFacts) -> int:
    """Data science and its engineering: data science, big data, data mining, MLOps, Kaggle
    (data_science_terms.txt)."""
    return _vote_ai(facts.mentions(x, "data_science_terms"))


def mentions_ml_library(x: Any, facts: _TweetFacts) -> int:
    """A machine-learning library by a name only it has: PyTorch, scikit-learn, XGBoost, spaCy
    (ml_libraries.txt)."""
    return _vote_ai(facts.mentions(x, "ml_libraries"))


def mentions_ai_lab_model_or_researcher(x: Any, facts: _TweetFacts) -> int:
    """An AI lab, a named model or a well-known researcher: OpenAI, DeepMind, ChatGPT, BERT,
    Stable Diffusion, Yann LeCun (ai_labs_models_researchers.txt)."""
    return _vote_ai(facts.mentions(x, "ai_labs_models_researchers"))


def mentions_ml_venue(x: Any, facts: _TweetFacts) -> int:
    """An ML conference, preprint server or meetup: NeurIPS, ICML, CVPR, arXiv, PyData
    (ml_venues.txt)."""
    return _vote_ai(facts.mentions(x, "ml_venues"))


def uses_ml_jargon(x: Any, facts: _TweetFacts) -> int:
    """Words only people training models use, for ML tweets that never name the field: learning
    rate, overfitting, validation accuracy, training data, classifier (ml_jargon.txt)."""
    return _vote_ai(facts.mentions(x, "ml_jargon"))


def mentions_ai_in_other_language(x: Any, facts: _TweetFacts) -> int:
    """AI or ML in another language: inteligencia artificial, maschinelles Lernen, 機械学習
    (other_language_terms.txt); or "IA"/"KI" in a tweet whose language is known and is not English
    (other_language_acronyms.txt), as in English "#IA" is mostly Iowa."""
    if facts.mentions(x, "other_language_terms"):
        return AI
    return _vote_ai(facts.foreign_acronym(x, facts.text(x)))


def links_to_ml_site(x: Any, facts: _TweetFacts) -> int:
    """A link to a site whose pages are about ML: arxiv.org, huggingface.co, kaggle.com,
    pytorch.org, a conference's proceedings (ml_sites.txt)."""
    return _vote_ai(facts.links(x).ml_site)


def links_to_ml_code(x: Any, facts: _TweetFacts) -> int:
    """A link to a repository on GitHub or another code host (code_hosts.txt) whose owner or name
    is made of ML words: github.com/karpathy/nanoGPT, gitlab.com/x/tiny-llm (ml_repo_words.txt).
    Most code on GitHub is not ML, so a GitHub link alone does not vote."""
    return _vote_ai(facts.links(x).ml_code)


def talks_about_building_models(x: Any, facts: _TweetFacts) -> int:
    """Words of two kinds that, together, only people building models use: a model and its
    training, a dataset and its accuracy, a GPU and a batch size, a preprint and its reviewers
    (ml_context_*.txt), outside a video game. One such word alone does not vote."""
    text = facts.text(x)
    if text.in_game:
        return ABSTAIN
    return _vote_ai(text.context_kinds >= MIN_CONTEXT_KINDS)


# ---------------------------------------------------------------- negative rules (vote NOT_AI)


def _word_without_ai(x: Any, facts: _TweetFacts, list_name: str) -> int:
    if facts.says(x, list_name) and facts.no_ai_evidence(x):
        return NOT_AI
    return ABSTAIN


def not_data_science(x: Any, facts: _TweetFacts) -> int:
    """"data" or "science" with nothing about AI around them: mobile data, data protection, "for
    science" (not_data_science.txt)."""
    return _word_without_ai(x, facts, "not_data_science")


def not_neural_network(x: Any, facts: _TweetFacts) -> int:
    """"neural" or "network" with nothing about AI around them: a social or support network,
    neural pathways (not_neural_network.txt)."""
    return _word_without_ai(x, facts, "not_neural_network")


def not_big_data(x: Any, facts: _TweetFacts) -> int:
    """"big" with nothing about AI around it: a big day, Big Sean, a big fan (not_big_data.txt)."""
    return _word_without_ai(x, facts, "not_big_data")


def not_nlp(x: Any, facts: _TweetFacts) -> int:
    """"natural" or "language" with nothing about AI around them: love language, sign language,
    natural remedies (not_nlp.txt)."""
    return _word_without_ai(x, facts, "not_nlp")


def not_ai(x: Any, facts: _TweetFacts) -> int:
    """"artificial" or "intelligence" with nothing about AI around them: the intelligence
    community, artificial sweeteners, emotional intelligence (not_ai.txt)."""
    return _word_without_ai(x, facts, "not_ai")


def not_cv(x: Any, facts: _TweetFacts) -> int:
    """"computer" or "vision" with nothing about AI around them: a new computer, a vision board
    (not_cv.txt)."""
    return _word_without_ai(x, facts, "not_cv")


def is_not_ai_tweet(x: Any, facts: _TweetFacts) -> int:
    """A word a keyword filter for AI lets through (business, ebook, deep, machine, model,
    training...) with nothing about AI around it (ai_lookalike_words.txt)."""
    return _word_without_ai(x, facts, "ai_lookalike_words")


def is_everyday_topic(x: Any, facts: _TweetFacts) -> int:
    """Plainly about sport, food, weather, politics, music, shopping or travel, with nothing about
    AI in it (everyday_topics.txt)."""
    return _word_without_ai(x, facts, "everyday_topics")


def field_word_in_an_everyday_phrase(x: Any, facts: _TweetFacts) -> int:
    """One of the field's words in an everyday phrase, with nothing about AI in the tweet: the
    washing machine, body language, a deep breath, my data plan, a role model, potty training,
    the group chat, a record label (everyday_phrases.txt).

    >>> from types import SimpleNamespace
    >>> facts = _TweetFacts(_Lexicon(default_keyword_dir()))
    >>> row = lambda text: SimpleNamespace(text=text, urls=(), hashtags=(), lang="en")
    >>> field_word_in_an_everyday_phrase(row("the washing machine again 😩"), facts)
    0
    >>> field_word_in_an_everyday_phrase(row("my love language is snacks"), facts)
    0
    >>> field_word_in_an_everyday_phrase(row("a role model for every data scientist"), facts)
    -1
    >>> field_word_in_an_everyday_phrase(row("the machine learning course"), facts)
    -1
    """
    return _word_without_ai(x, facts, "everyday_phrases")


def ai_is_a_name(x: Any, facts: _TweetFacts) -> int:
    """"Ai" or "AI" as a person or character: Ai Weiwei, Ai from Oshi no Ko, Allen Iverson's "AI3"
    (ai_names.txt), with nothing else about AI in the tweet."""
    if "ai_name" in facts.text(x).traps and facts.no_ai_evidence(x):
        return NOT_AI
    return ABSTAIN


def ai_in_a_video_game(x: Any, facts: _TweetFacts) -> int:
    """A game's computer-controlled players: "the enemy AI", "companion AI pathfinding", or "AI"
    in a tweet about playing (game_ai_phrases.txt, game_context.txt), with nothing else about AI."""
    if "game_ai" in facts.text(x).traps and facts.no_ai_evidence(x):
        return NOT_AI
    return ABSTAIN


def ai_means_something_else(x: Any, facts: _TweetFacts) -> int:
    """"AI" or "ML" in another sense, known from the words around it: artificial insemination of
    cattle, Allen Iverson's crossover, Amnesty International, Marxism-Leninism
    (ai_other_sense_context.txt), with nothing else about AI in the tweet."""
    if "ai_other_sense" in facts.text(x).traps and facts.no_ai_evidence(x):
        return NOT_AI
    return ABSTAIN


def ml_is_not_machine_learning(x: Any, facts: _TweetFacts) -> int:
    """"ml" that is not machine learning: millilitres in any language ("250 ml of milk", "500 ml
    de agua"), Mobile Legends in a game tweet or in Indonesian, Filipino or Malay tweets
    (ml_game_languages.txt), with nothing else about AI in the tweet."""
    text = facts.text(x)
    if text.traps & {"ml_unit", "ml_game"}:
        return NOT_AI if facts.no_ai_evidence(x) else ABSTAIN
    if text.has_ml and facts.lang(x) in facts.lexicon.ml_game_languages:
        return NOT_AI if facts.no_ai_evidence(x, ignore_ml=True) else ABSTAIN
    return ABSTAIN


_LABELING_FUNCTIONS: tuple[Callable[[Any, _TweetFacts], int], ...] = (
    mentions_ai,
    mentions_machine_learning,
    mentions_deep_learning,
    mentions_nlp,
    mentions_computer_vision,
    mentions_data_science,
    mentions_ml_library,
    mentions_ai_lab_model_or_researcher,
    mentions_ml_venue,
    uses_ml_jargon,
    mentions_ai_in_other_language,
    links_to_ml_site,
    links_to_ml_code,
    talks_about_building_models,
    not_data_science,
    not_neural_network,
    not_big_data,
    not_nlp,
    not_ai,
    not_cv,
    is_not_ai_tweet,
    is_everyday_topic,
    field_word_in_an_everyday_phrase,
    ai_is_a_name,
    ai_in_a_video_game,
    ai_means_something_else,
    ml_is_not_machine_learning,
)


def make_lfs(keyword_dir: str | Path | None = None) -> list[LabelingFunction]:
    """The labelling functions, positives first, with their keyword lists read from ``keyword_dir``.

    ``keyword_dir`` defaults to :func:`default_keyword_dir`; a relative path is taken from the
    repo root. A missing or empty list raises :class:`LabelingFunctionError` naming the file.
    """
    facts = _TweetFacts(_Lexicon(_keyword_folder(keyword_dir)))
    return [LabelingFunction(name=f.__name__, f=f, resources={"facts": facts}) for f in _LABELING_FUNCTIONS]


def lf_names(lfs: Sequence[LabelingFunction]) -> list[str]:
    """The names of ``lfs`` in their order; they must be unique, as they name label-matrix columns."""
    names = [lf.name for lf in lfs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise LabelingFunctionError(f"labelling function names must be unique; repeated: {', '.join(repeated)}")
    return names
