"""Text rules several stages share: the duplicate key of a tweet, the domain of a link, and the AI
keyword matcher. They belong to no stage: the producer routes with the keywords, the labelling
functions vote with them, the dataset deduplicates and the simulation pools with the duplicate
key, the classify stream and the web apps file links under the same domain.

>>> normalize_text("RT @nasa:  Launch   TODAY https://t.co/AbC123")
'launch today'
>>> link_domain("https://WWW.Example.ORG:8443/x")
'example.org'
>>> matches_ai_keywords("Fine-tuning an LLM", ["LLM"]), matches_ai_keywords("200 ml of milk", ["ML"])
(True, False)

Keyword matching (:func:`matches_ai_keywords`) follows the rules written at the top of
``data/ai_keywords.txt``: whole words, phrases in any spacing or as one hashtag, and
acronyms written in capitals matched only in capitals (or as a hashtag), so that
"200 ml of milk" and "Ai Weiwei" are not taken for machine learning.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

__all__ = [
    "KEYWORDS_FILE_NAME",
    "KeywordMatcher",
    "default_keywords_path",
    "link_domain",
    "load_ai_keywords",
    "matches_ai_keywords",
    "normalise_domain",
    "normalize_text",
]

# Repeated, because a retweet of a retweet reads "RT @a: RT @b: ...".
_RT_PREFIX = re.compile(r"^(?:\s*rt\s+@\w+:)+", re.IGNORECASE)
# \b: the "www." in "awww.so cute" is no link
_URL = re.compile(r"\b(?:https?://|www\.)\S+", re.IGNORECASE)


def normalize_text(text: str) -> str:
    """The key two tweets must share to count as duplicates.

    A leading ``RT @user:`` is dropped so that a retweet matches its original; links are dropped
    because the same page is shared through ever new t.co links; case and runs of whitespace are
    folded. Punctuation, mentions elsewhere, hashtags and emoji stay: they change what a tweet says.

    >>> normalize_text("RT @nasa:  Launch   TODAY https://t.co/AbC123 🚀")
    'launch today 🚀'
    >>> normalize_text("launch today\\n🚀 https://t.co/Zz9")
    'launch today 🚀'
    >>> normalize_text("Launch today!")
    'launch today!'

    A tweet that is nothing but links keeps them, so that two tweets sharing different pages are
    not taken for one:

    >>> normalize_text("https://t.co/AbC https://t.co/Xy")
    'https://t.co/abc https://t.co/xy'
    """
    stripped = _URL.sub(" ", _RT_PREFIX.sub("", text))
    normalized = " ".join(stripped.casefold().split())
    if normalized:
        return normalized
    return " ".join(text.casefold().split())


# ---------------------------------------------------------------- links
def normalise_domain(host: str) -> str:
    """A host as ``ssp classify`` files it under ``domain``: lower case, no trailing dot, no ``www.``."""
    host = host.strip().lower().rstrip(".")
    return host[4:] if host.startswith("www.") else host


def link_domain(url: str) -> str:
    """The domain of ``url`` (see :func:`normalise_domain`), or '' when it has no host."""
    try:
        return normalise_domain(urlsplit(url).hostname or "")
    except ValueError:
        return ""


# ---------------------------------------------------------------- AI keywords
KEYWORDS_FILE_NAME = "ai_keywords.txt"

# "#AI" is a keyword, "# note" and a lone "#" are comments, as is " # note" after one.
_COMMENT_LINE = re.compile(r"#(?:\s|$)")
_INLINE_COMMENT = re.compile(r"\s+#\s.*$")
_PHRASE_JOINER = r"[\s\-_]+"
_HASHTAG = re.compile(r"(?<![\w&])#(\w+)")
_NOT_TAG_CHARS = re.compile(r"[\W_]+")
# Scripts written without spaces: a keyword in them has no word boundary to look for.
# (Korean is written with spaces, but its particles join the word before them: "데이터셋이".)
_UNSPACED_SCRIPT = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def default_keywords_path() -> Path:
    """The keyword file used when none is given: ``$SSP_DATA_DIR/ai_keywords.txt`` when that file
    exists, otherwise the repo's ``data/ai_keywords.txt`` (:func:`ssp.config.data_path`)."""
    from ssp.config import data_path

    return data_path(KEYWORDS_FILE_NAME)


def load_ai_keywords(path: str | Path | None = None) -> list[str]:
    """Read the keyword list: one keyword or phrase a line, ``# `` comments, no repeats."""
    if path is None:
        path = default_keywords_path()
        if not path.is_file():
            searched = [str(path)]
            if os.environ.get("SSP_DATA_DIR"):
                searched.insert(0, str(Path(os.environ["SSP_DATA_DIR"]) / KEYWORDS_FILE_NAME))
            raise FileNotFoundError(
                f"AI keyword list not found (looked at {', '.join(searched)}); "
                f"set SSP_DATA_DIR to a folder holding {KEYWORDS_FILE_NAME}"
            )
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"AI keyword list {path} does not exist")
    keywords: list[str] = []
    seen: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or _COMMENT_LINE.match(line):
            continue
        keyword = _INLINE_COMMENT.sub("", line)
        if keyword.casefold() not in seen:
            seen.add(keyword.casefold())
            keywords.append(keyword)
    if not keywords:
        raise ValueError(f"AI keyword list {path} holds no keywords")
    return keywords


def _is_acronym(keyword: str) -> bool:
    return keyword.isupper() and not any(ch.isspace() for ch in keyword)


def _tag_form(word: str) -> str:
    return _NOT_TAG_CHARS.sub("", word).lower()


def _body(keyword: str) -> str:
    """The keyword as a pattern whose words may be joined by spaces, hyphens or underscores."""
    words = [re.escape(word) for word in re.split(_PHRASE_JOINER, keyword) if word]
    return _PHRASE_JOINER.join(words)


def _alternation(keywords: list[str], flags: int) -> re.Pattern[str] | None:
    """One pattern for the list: a keyword matches as a whole word (a plural or possessive, "LLMs",
    "GPT's", still names the thing), a keyword in a script written without spaces anywhere.

    The word-start check comes once, before the alternation, so the engine tries the keywords only where a
    word starts (``\\b`` too when every keyword starts with a word character: the engine skips ahead to
    word starts); 6-10x faster than each keyword carrying its own boundaries, with the same matches.

    >>> words = _alternation(["machine learning", "AI", "機械学習"], re.IGNORECASE)
    >>> [bool(words.search(t)) for t in ("Machine-learning rocks", "AIs are here", "FAIR play", "最新の機械学習")]
    [True, True, False, True]
    """
    if not keywords:
        return None
    # Longest first so a phrase wins over a keyword that is its prefix.
    ordered = sorted(keywords, key=len, reverse=True)
    spaced = [k for k in ordered if not _UNSPACED_SCRIPT.search(k)]
    branches = [_body(k) for k in ordered if _UNSPACED_SCRIPT.search(k)]
    if spaced:
        start = r"\b(?<!\w)" if all(re.match(r"\w", k) for k in spaced) else r"(?<!\w)"
        branches.insert(0, start + "(?:" + "|".join(_body(k) for k in spaced) + r")(?:'?s)?(?!\w)")
    return re.compile("|".join(branches), flags)


class KeywordMatcher:
    """Decides whether a text mentions any keyword of a list; see the module docstring."""

    def __init__(self, keywords: Iterable[str]) -> None:
        self.keywords: tuple[str, ...] = tuple(k.strip() for k in keywords if k.strip())
        acronyms = [k for k in self.keywords if not k.startswith("#") and _is_acronym(k)]
        words = [
            k for k in self.keywords if not k.startswith("#") and not _is_acronym(k)
        ]
        self._acronyms = _alternation(acronyms, 0)
        self._words = _alternation(words, re.IGNORECASE)
        self._tags = frozenset(
            form for form in (_tag_form(k) for k in self.keywords) if form
        )

    def matches(self, text: str | None) -> bool:
        if not text:
            return False
        if self._words is not None and self._words.search(text):
            return True
        if self._acronyms is not None and self._acronyms.search(text):
            return True
        if "#" in text:
            for tag in _HASHTAG.findall(text):
                form = _tag_form(tag)
                if form in self._tags or (form.endswith("s") and form[:-1] in self._tags):
                    return True
        return False

    __call__ = matches


@lru_cache(maxsize=8)
def _cached_matcher(keywords: tuple[str, ...]) -> KeywordMatcher:
    return KeywordMatcher(keywords)


def matches_ai_keywords(text: str | None, keywords: Iterable[str] | KeywordMatcher) -> bool:
    """True when ``text`` mentions one of ``keywords`` (a list or a :class:`KeywordMatcher`).

    The compiled matcher for a list is cached, so calling this once per tweet with the
    same list costs a tuple conversion, not a regex compilation.
    """
    if isinstance(keywords, KeywordMatcher):
        return keywords.matches(text)
    return _cached_matcher(tuple(keywords)).matches(text)
