"""A seeded stream of realistic tweets, each labelled AI/ML/data science or not.

The stream stands in for the X API when there is no account, and feeds tests and
benchmarks, so it is deterministic: the same seed gives byte-identical payloads in any
process (timestamps come from a fixed start plus seeded gaps, never the wall clock;
nothing depends on ``hash()``), and :meth:`SyntheticTweets.generate` starts from the
beginning of the seed's stream on every call.

The demo's classifier is trained on this stream, so its variety decides how the served
model does on real posts. Every text is composed: a template (see
:mod:`ssp.sources.synthetic_vocab`) filled from slot vocabularies, then decorated the way
people write (openers and closers, typos, emoji, hashtags, a place tag, links, a reply
mention, all lower or upper case), so that 20,000 tweets hold over 90% distinct texts even
after case, whitespace and links are normalised away. The default mix (see the
``*_share`` arguments):

* about 28% AI posts: 20% with an obvious term (AI, machine learning, LLM, model, lab and
  library names; papers with arXiv links, releases with GitHub and Hugging Face links,
  policy and product news, jobs, tutorials, complaints; ``everyday_life_share`` (35%) of those
  not drawn from the vocabulary lists are ``everyday_life`` posts: AI as people meet it, the
  bank's chatbot, an AI detector at school, AI art on a poster, a first year in data science)
  and 8% ``implicit_ai`` ones in the jargon of people who train models (loss curves, CUDA out
  of memory, GPU queues, eval sets, annotation guidelines, tokenizers, sweeps, papers accepted
  at venues, Kaggle; ``everyday_life_share`` of those not drawn from the lists are
  ``everyday_life`` posts of people who use models: fine-tuning overnight, 4-bit quantization,
  context windows, hallucinated citations, tool calls, an image generator's six fingers).
  ``field_terms_share`` (45%) of each is ``field_terms``: frames (questions, complaints,
  tutorials, jobs, news, jokes) filled from the labelling vocabulary in ``data/labeling``
  (jargon, libraries, labs and models, venues, NLP, deep learning, vision, ML and data
  science terms; other-language terms only in the language their script tells, else in
  mixed-language frames), and implicit ones pairing words of two ``ml_context_*`` kinds.
  The lists are read once, on the first run, from ``$SSP_DATA_DIR/labeling`` or the repo's
  ``data/labeling`` (built-in fallbacks when missing), and kept sorted;
* 11% ``trap`` posts, not AI but holding a word keyword rules catch: people, friends,
  restaurants and shops named Ai (Ai Weiwei, Ai Hoshino, Ai Miyazato), "Al" written with a
  capital I (AI Pacino, AI Nassr), a game's AI (enemies, teammates, racing drivers, difficulty
  settings, in many languages), AI as the artificial insemination of cattle, Adobe
  Illustrator's .ai files, Air India's flight codes, "250 ml of milk", Mobile Legends' "ML"
  (Tagalog, Indonesian), Allen Iverson's "AI3", the Portuguese "ai" and the Italian "ai",
  Transformers toys, Claude from accounting, Python the snake, Gemini the sign, a llama, a
  plane's copilot, big-company news that is not about AI;
* 12% ``hard_negative`` posts using big, deep, data, network, language, intelligence,
  model, learning, training, neural, vision, smart, bot... in their everyday senses (a model
  casting, a car model, Model UN, a PR at the gym, puppy training, a power transformer, a data
  breach, in many languages), and short posts holding little else than one such word in an
  everyday collocation (the washing machine, body language, text me back), since a short post
  gives a model nothing else to go by;
* 15% ``news`` posts (also ``hard_negative``): science, health, business and tech that is
  not AI (new studies, university news, vaccines, earnings, small businesses, startups,
  gadget reviews, software updates, app outages, cybersecurity, launches, climate reports,
  "rocket science", "deep state", "big business"), headlines with links, many languages;
* 8% ``spam`` posts (not AI): free PDF links, ``#np`` plugs, "50% OFF" links, follow trains,
  crypto pumps, giveaway bots, quotes, horoscopes, one- or two-word exclamations, fancams,
  lyrics, blessings;
* the rest (26%) ordinary posts: sports, K-pop, politics, food, weather, travel, jobs, religion,
  Wordle, giveaways and spam, slang and typos, emoji-only (``und``); ``everyday_life_share`` of
  them are ``everyday_life`` posts in the very frames of the AI ones with no AI in them (the
  bank, the school, the group chat, a first year in nursing), so that the frames say nothing
  either way and only the AI words tell the two apart;
* every kind in many languages: 28% of tweets are not in English (es, ja, pt, id, fr, de,
  tl, hi, ko, tr, it, ar, th, vi, nl, pl, sw and ``und``), with the right ``lang``;
* v1.1 retweets (``RT @user: `` text cut to 140 characters, the original in
  ``retweeted_status``) and extended tweets (``truncated: true`` with the full text in
  ``extended_tweet``);
* 2% exact duplicates (same text, new id) and 3% near duplicates (case, whitespace or
  link changes) of recent tweets, more if asked for;
* t.co links in the text with the real URL in the entities, hashtags and mentions with
  their indices;
* about ``v2_share`` of payloads in X API v2 shape, with ``note_tweet`` for long texts
  and retweets through ``referenced_tweets`` and ``includes.tweets``.

Ids are snowflake-like: milliseconds since the X epoch, a seed-derived worker number
and the stream index, so top-level ids strictly increase and never repeat; retweeted
originals carry a worker bit of their own and cannot collide with them.
"""

from __future__ import annotations

import functools
import random
import re
import string
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from ssp.sources import synthetic_vocab as vocab
from ssp.text import load_ai_keywords

__all__ = ["DEFAULT_START", "SyntheticTweet", "SyntheticTweets", "synthetic_payloads"]

DEFAULT_START = datetime(2024, 3, 4, 8, 0, tzinfo=UTC)
_X_EPOCH_MS = 1288834974657
_ORIGINAL_WORKER_BIT = 0x200
_V1_MAX = 140
_V2_MAX = 280
_TCO_ALPHABET = string.ascii_letters + string.digits
# Pairs of link characters indexed by 12 random bits: five lookups make a 10-character
# t.co path several times faster than drawing each character.
_TCO_PAIRS = tuple(
    _TCO_ALPHABET[i % 62] + _TCO_ALPHABET[(i // 62) % 62] for i in range(4096)
)
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# The leading lookahead lets the engine skip most positions without trying each branch.
_ENTITY = re.compile(
    r"(?=[h#@])(?:(?P<url>https://t\.co/[A-Za-z0-9]+)"
    r"|(?<![\w&#])#(?P<tag>\w+)|(?<![\w@])@(?P<user>\w{1,15}))"
)
_TCO = re.compile(r"(https://t\.co/[A-Za-z0-9]+)")
_ENDS_IN_LINK = re.compile(r"https://t\.co/[A-Za-z0-9]+$")
_SOURCES = (
    '<a href="http://twitter.com/download/iphone" rel="nofollow">Twitter for iPhone</a>',
    '<a href="http://twitter.com/download/android" rel="nofollow">Twitter for Android</a>',
    '<a href="https://mobile.twitter.com" rel="nofollow">Twitter Web App</a>',
    '<a href="https://about.twitter.com/products/tweetdeck" rel="nofollow">TweetDeck</a>',
)


@dataclass(frozen=True, slots=True)
class SyntheticTweet:
    """One generated payload with its ground truth.

    ``traits`` names what the tweet exercises: ``ai``, ``implicit_ai`` (AI without an
    obvious keyword), ``trap`` (looks like AI, is not), ``non_english``, ``retweet``,
    ``hard_negative`` (an ambiguous word in its everyday sense), ``news`` (non-AI science,
    health, business or tech news; also ``hard_negative``), ``spam`` (spam and filler),
    ``field_terms`` (AI in the labelling vocabulary's terms), ``everyday_life`` (AI in
    everyday life, or the same frames without it), ``extended`` (v1.1
    truncated + extended_tweet), ``note_tweet`` (long v2 text),
    ``duplicate``, ``near_duplicate``, and ``v1`` or ``v2`` for the payload shape.
    """

    payload: dict[str, Any]
    is_ai: bool
    tweet_id: int
    traits: frozenset[str] = frozenset()


class _Template(NamedTuple):
    text: str
    fields: tuple[str, ...]
    is_ai: bool
    traits: frozenset[str]
    lang: str
    kind: str


# kind -> (templates by language, is_ai, traits)
_KIND_SOURCES: dict[str, tuple[dict[str, tuple[str, ...]], bool, tuple[str, ...]]] = {
    "ai": (vocab.AI, True, ("ai",)),
    "ai_life": (vocab.AI_LIFE, True, ("ai", "everyday_life")),
    "life": (vocab.LIFE, False, ("everyday_life",)),
    "implicit_life": (vocab.IMPLICIT_LIFE, True, ("ai", "everyday_life")),
    "implicit": (vocab.IMPLICIT, True, ("ai", "implicit_ai")),
    "trap": (vocab.TRAP, False, ("trap",)),
    "hard": (vocab.HARD, False, ("hard_negative",)),
    "ordinary": (vocab.ORDINARY, False, ()),
    "ai_terms": (vocab.FIELD_TERMS, True, ("ai", "field_terms")),
    "ai_context": (vocab.FIELD_CONTEXT, True, ("ai", "implicit_ai", "field_terms")),
    "news": (vocab.NEWS_POSTS, False, ("hard_negative", "news")),
    "spam": (vocab.SPAM, False, ("spam",)),
}
# Relative frequency of each non-English language among non-English tweets.
_LANGUAGE_WEIGHTS = {
    "es": 16, "ja": 12, "pt": 10, "id": 9, "fr": 7, "de": 6, "tl": 6, "hi": 5, "ko": 5, "tr": 5,
    "it": 4, "ar": 4, "th": 3, "vi": 3, "nl": 2, "pl": 2, "sw": 1, "und": 2,
}
# Typos only go into scripts with letters between spaces.
_TYPO_LANGS = frozenset(("en", "es", "pt", "fr", "de", "it", "id", "tl", "tr", "nl", "pl", "sw"))
_FIELDS = string.Formatter()
_LINK_SLOTS = frozenset(("arxiv", "github", "hf", "blog", "jobs"))
_MILLILITRES = ("50", "100", "125", "150", "200", "250", "300", "330", "400", "500", "750", "1000")
# Links a tweet of each kind may end with, as slot names.
_KIND_LINKS = {
    "ai": ("arxiv", "github", "hf", "blog"),
    "ai_life": ("link_news", "link_video"),
    "life": ("link_news", "link_video"),
    "implicit_life": ("link_news", "link_video"),
    "implicit": ("arxiv", "github", "blog"),
    "trap": ("link_news", "link_video", "link_shop"),
    "hard": ("link_news", "link_video", "link_music"),
    "ordinary": ("link_news", "link_video", "link_music", "link_shop", "link_food"),
    "ai_terms": ("arxiv", "github", "hf", "blog"),
    "ai_context": ("arxiv", "github", "blog"),
    "news": ("link_news", "link_sci", "link_video"),
    "spam": ("link_spam", "link_music", "link_shop", "link_sc"),
}
# Kinds whose texts must keep the labelling vocabulary's terms intact: no typos in them.
_EXACT_KINDS = frozenset(("ai_terms", "ai_context"))
_LABELING_DIR_NAME = "labeling"
# Scripts that tell a term's language; checked in this order, then kana/kanji (Japanese when
# Shift JIS can write it), then plain ASCII (English frames). Anything else is "mixed".
_SCRIPT_LANGS = (
    ("ko", re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")),
    ("hi", re.compile(r"[\u0900-\u097f]")),
    ("ar", re.compile(r"[\u0600-\u06ff]")),
    ("th", re.compile(r"[\u0e00-\u0e7f]")),
    ("vi", re.compile(r"[đĐơƠưƯ\u1ea0-\u1ef9]")),
    ("tr", re.compile(r"[ğĞıİşŞ]")),
    ("pl", re.compile(r"[ąĄćĆęĘłŁńŃśŚźŹżŻ]")),
)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff]")


def _compile(kind: str) -> tuple[dict[str, tuple[_Template, ...]], tuple[str, ...]]:
    """The kind's templates by language, and its non-English languages repeated by weight."""
    by_lang, is_ai, traits = _KIND_SOURCES[kind]
    compiled: dict[str, tuple[_Template, ...]] = {}
    for lang, texts in by_lang.items():
        lang_traits = frozenset(traits) | ({"non_english"} if lang != "en" else frozenset())
        templates: list[_Template] = []
        for text in texts:
            fields = tuple(dict.fromkeys(name for _, name, _, _ in _FIELDS.parse(text) if name))
            template = _Template(text, fields, is_ai, lang_traits, lang, kind)
            # A template whose words never change is drawn less often, or it would repeat itself.
            varied = any(not (name in _LINK_SLOTS or name.startswith("link_")) for name in fields)
            templates.extend((template,) * (3 if varied else 1))
        compiled[lang] = tuple(templates)
    others = tuple(lang for lang, weight in _LANGUAGE_WEIGHTS.items() if lang in compiled for _ in range(weight))
    return compiled, others


_KINDS = {kind: _compile(kind) for kind in _KIND_SOURCES}
_VOCAB = vocab.VOCAB
_KNOWN_ACCOUNTS = vocab.KNOWN_ACCOUNTS
_FIRST, _LAST, _NAMES, _LOCATIONS = vocab.FIRST, vocab.LAST, vocab.NAMES, vocab.LOCATIONS
_GITHUB_ORGS, _GITHUB_REPOS = vocab.GITHUB_ORGS, vocab.GITHUB_REPOS
_BLOGS, _SLUGS, _NEWS, _FOOD = vocab.BLOGS, vocab.SLUGS, vocab.NEWS, vocab.FOOD
_SCI_NEWS = vocab.SCI_NEWS
_SHORTENERS = ("bit.ly", "tinyurl.com", "cutt.ly", "rb.gy", "shorturl.at")
_AI_FILLERS, _ORDINARY_FILLERS, _FILLER_TAGS = vocab.AI_FILLERS, vocab.ORDINARY_FILLERS, vocab.FILLER_TAGS


def _labeling_dir() -> Path:
    """Where the labelling vocabulary lives (the folder the labelling functions read; sources do not
    import labelling, so the folder is found by the shared data-folder rule)."""
    from ssp.config import data_path

    return data_path(_LABELING_DIR_NAME)


def _read_terms(folder: Path, name: str) -> list[str]:
    try:
        return load_ai_keywords(folder / name)
    except (FileNotFoundError, ValueError):
        return []


def _script_lang(term: str) -> str | None:
    """The language a term's script tells (``en`` for plain ASCII), or None when it cannot."""
    for lang, pattern in _SCRIPT_LANGS:
        if pattern.search(term):
            return lang
    if _CJK.search(term):
        try:
            term.encode("shift_jis")
        except UnicodeEncodeError:
            return None  # simplified Chinese, say: no language of the stream
        return "ja"
    return "en" if term.isascii() else None


class _FieldVocab(NamedTuple):
    terms: dict[str, tuple[str, ...]]
    # language -> ((kind, words), ...), only kinds with words
    context: dict[str, tuple[tuple[str, tuple[str, ...]], ...]]


def _sorted(found: dict[str, set[str]]) -> dict[str, tuple[str, ...]]:
    return {key: tuple(sorted(words)) for key, words in found.items() if words}


def _context_words(folder: Path) -> dict[str, tuple[tuple[str, tuple[str, ...]], ...]]:
    by_lang: dict[str, dict[str, set[str]]] = {"en": {}, "ja": {}, "ko": {}}
    for kind, name in vocab.CONTEXT_LISTS.items():
        words = _read_terms(folder, name) or list(vocab.FIELD_FALLBACK[kind])
        for word in words:
            lang = _script_lang(word)
            # Acronyms and sizes (GPU, A100, 7B) are written the same in every language.
            universal = word.isascii() and (word.isupper() or any(ch.isdigit() for ch in word))
            for target, found in by_lang.items():
                if lang == target or (universal and target != "en"):
                    found.setdefault(kind, set()).add(word)
    context = {}
    for lang, found in by_lang.items():
        kinds = tuple(sorted(_sorted(found).items()))
        context[lang] = kinds if len(kinds) >= 2 else tuple(
            (kind, vocab.FIELD_FALLBACK[kind]) for kind in vocab.CONTEXT_LISTS)
    return context


@functools.cache
def _field_vocab() -> _FieldVocab:
    """The labelling vocabulary as slot values, read once (on the first run) and kept.

    ``t_<list>`` slots get a list's ASCII terms, ``t_<lang>`` the terms of any list whose script
    tells the language, ``t_mixed`` the rest (other-language terms a script cannot place).
    """
    folder = _labeling_dir()
    found: dict[str, set[str]] = {}
    lists = [(slot, name) for slot, names in vocab.FIELD_LISTS.items() for name in names]
    for slot, name in [*lists, ("t_mixed", vocab.OTHER_LANGUAGE_LIST)]:
        for term in _read_terms(folder, name):
            lang = _script_lang(term)
            if lang is None or (lang == "en" and slot == "t_mixed"):
                key = "t_mixed"
            else:
                key = slot if lang == "en" else f"t_{lang}"
            found.setdefault(key, set()).add(term)
    terms = _sorted(found)
    for slot, fallback in vocab.FIELD_FALLBACK.items():
        if slot.startswith("t_"):
            terms.setdefault(slot, fallback)
    for lang in _LANGUAGE_WEIGHTS:
        # A language the lists hold nothing for gets English terms, as its posts often do.
        terms.setdefault(f"t_{lang}", terms["t_dl"])
    return _FieldVocab(terms, _context_words(folder))


@functools.cache
def _all_vocab() -> dict[str, tuple[str, ...]]:
    return {**_VOCAB, **_field_vocab().terms}


def _display_url(url: str) -> str:
    shown = url.split("://", 1)[-1].removeprefix("www.")
    return shown if len(shown) <= 26 else shown[:25] + "…"


def _recase(text: str, change: Callable[[str], str]) -> str:
    """``text`` with ``change`` applied to everything but its t.co links (they are case-sensitive)."""
    pieces = _TCO.split(text)
    return "".join(piece if i % 2 else change(piece) for i, piece in enumerate(pieces))


def _cut(text: str, limit: int) -> str:
    """Cut ``text`` at a space so that it plus an ellipsis fits in ``limit``."""
    head = text[: limit - 1]
    space = head.rfind(" ")
    return (head[:space] if space > limit // 2 else head) + "…"


class SyntheticTweets:
    """A deterministic, labelled mix of tweets; see the module docstring."""

    def __init__(
        self,
        seed: int = 42,
        v2_share: float = 0.3,
        *,
        ai_share: float = 0.2,
        trap_share: float = 0.11,
        implicit_ai_share: float = 0.08,
        hard_negative_share: float = 0.12,
        news_share: float = 0.15,
        spam_share: float = 0.08,
        field_terms_share: float = 0.45,
        everyday_life_share: float = 0.35,
        non_english_share: float = 0.28,
        retweet_share: float = 0.15,
        duplicate_share: float = 0.02,
        near_duplicate_share: float = 0.03,
        long_share: float = 0.1,
        start: datetime = DEFAULT_START,
        users: int = 600,
    ) -> None:
        shares = {
            "v2_share": v2_share, "ai_share": ai_share, "trap_share": trap_share,
            "implicit_ai_share": implicit_ai_share, "hard_negative_share": hard_negative_share,
            "news_share": news_share, "spam_share": spam_share, "field_terms_share": field_terms_share,
            "everyday_life_share": everyday_life_share, "non_english_share": non_english_share,
            "retweet_share": retweet_share, "duplicate_share": duplicate_share,
            "near_duplicate_share": near_duplicate_share, "long_share": long_share,
        }
        for name, value in shares.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if ai_share + trap_share + implicit_ai_share + hard_negative_share + news_share + spam_share > 1.0:
            raise ValueError("ai_share + trap_share + implicit_ai_share + hard_negative_share"
                             " + news_share + spam_share must be at most 1")
        if duplicate_share + near_duplicate_share > 1.0:
            raise ValueError("duplicate_share + near_duplicate_share must be at most 1")
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self.seed = seed
        self.v2_share = v2_share
        self.ai_share = ai_share
        self.trap_share = trap_share
        self.implicit_ai_share = implicit_ai_share
        self.hard_negative_share = hard_negative_share
        self.news_share = news_share
        self.spam_share = spam_share
        self.field_terms_share = field_terms_share
        self.everyday_life_share = everyday_life_share
        bound = 0.0
        bounds = []
        field, life = field_terms_share, everyday_life_share
        for share, kind in ((ai_share * (1 - field) * (1 - life), "ai"), (ai_share * (1 - field) * life, "ai_life"),
                            (ai_share * field, "ai_terms"),
                            (trap_share, "trap"), (implicit_ai_share * (1 - field) * (1 - life), "implicit"),
                            (implicit_ai_share * (1 - field) * life, "implicit_life"),
                            (implicit_ai_share * field, "ai_context"), (hard_negative_share, "hard"),
                            (news_share, "news"), (spam_share, "spam")):
            bound += share
            bounds.append((bound, kind))
        # the rest is ordinary posts, everyday_life_share of them in the frames of the ai_life posts
        bounds.append((bound + (1.0 - bound) * life, "life"))
        self._kind_bounds = tuple(bounds)
        self.non_english_share = non_english_share
        self.retweet_share = retweet_share
        self.duplicate_share = duplicate_share
        self.near_duplicate_share = near_duplicate_share
        self.long_share = long_share
        self.start_ms = int(start.timestamp() * 1000)
        if self.start_ms <= _X_EPOCH_MS:
            raise ValueError("start must be after the X snowflake epoch (2010-11-04)")
        self._worker = (seed * 2654435761) % 509  # 9 bits, spread over seeds
        self._users = self._make_users(random.Random(f"users-{seed}"), max(users, 2))

    # ------------------------------------------------------------------ public
    def generate(self, n: int | None = None) -> Iterator[SyntheticTweet]:
        """Yield ``n`` tweets (forever if None), from the start of this seed's stream."""
        if n is not None and n < 0:
            raise ValueError(f"n must be 0 or more, got {n}")
        return _Run(self).tweets(n)

    # ------------------------------------------------------------------ users
    @staticmethod
    def _make_users(rng: random.Random, count: int) -> list[dict[str, Any]]:
        users: list[dict[str, Any]] = []
        seen_names: set[str] = set()
        seen_ids: set[int] = set()
        while len(users) < count:
            first = rng.randrange(len(_FIRST))
            screen = f"{_FIRST[first]}{rng.choice(_LAST)}{rng.choice(('', '', rng.randrange(10, 9999)))}"
            user_id = rng.randrange(10**6, 2**60)
            if screen in seen_names or user_id in seen_ids or len(screen) > 15:
                continue
            seen_names.add(screen)
            seen_ids.add(user_id)
            created = time.gmtime(rng.randrange(1230768000, 1700000000))
            users.append({
                "id": user_id,
                "id_str": str(user_id),
                "name": f"{_NAMES[first]} {rng.choice(('', '🌱', '✨', '(they/them)', 'PhD'))}".strip(),
                "screen_name": screen,
                "location": rng.choice(_LOCATIONS),
                "verified": rng.random() < 0.03,
                "followers_count": int(rng.paretovariate(1.2) * 40),
                "friends_count": rng.randrange(0, 3000),
                "statuses_count": rng.randrange(1, 90000),
                "created_at": _v1_time(created),
            })
        return users


class _Content(NamedTuple):
    text: str
    lang: str
    is_ai: bool
    urls: dict[str, str]
    traits: frozenset[str]


def _v1_time(tm: time.struct_time) -> str:
    # Written out by hand: strftime's %a and %b follow the locale, X's format does not.
    year, month, day, hour, minute, second, weekday = tm[:7]
    return (
        f"{_WEEKDAYS[weekday]} {_MONTHS[month - 1]} {day:02d} "
        f"{hour:02d}:{minute:02d}:{second:02d} +0000 {year}"
    )


def _iso_time(tm: time.struct_time, millis: int) -> str:
    year, month, day, hour, minute, second = tm[:6]
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}.{millis:03d}Z"


class _Run:
    """The state of one pass over a seed's stream."""

    def __init__(self, config: SyntheticTweets) -> None:
        self.c = config
        self.rng = random.Random(config.seed)
        self.users = config._users
        self.mention_ids = dict(_KNOWN_ACCOUNTS)
        self.mention_ids.update((u["screen_name"], u["id"]) for u in self.users)
        self.recent: deque[_Content] = deque(maxlen=64)
        self.retweets = 0
        self._time_cache: tuple[int, str, time.struct_time] = (-1, "", time.gmtime(0))
        self._trait_cache: dict[tuple[frozenset[str], tuple[str, ...]], frozenset[str]] = {}
        self.vocab = _all_vocab()
        self.context = _field_vocab().context
        self._context_kind = ""
        self.slots: dict[str, Callable[[dict[str, str]], str]] = {
            "arxiv": lambda urls: self._link(urls, self._arxiv()),
            "github": lambda urls: self._link(
                urls, f"https://github.com/{self._pick(_GITHUB_ORGS)}/{self._pick(_GITHUB_REPOS)}"),
            "hf": lambda urls: self._link(
                urls, f"https://huggingface.co/{self._pick(_GITHUB_ORGS)}/{self._pick(_GITHUB_REPOS)}"),
            "blog": lambda urls: self._link(urls, self._blog()),
            "jobs": lambda urls: self._link(urls, f"https://jobs.lever.co/ssp-lab/{self.rng.getrandbits(32):08x}"),
            "link_news": lambda urls: self._link(urls, self._pick(_NEWS) + self._pick(_SLUGS)),
            "link_food": lambda urls: self._link(urls, self._pick(_FOOD) + self._pick(_SLUGS)),
            "link_sci": lambda urls: self._link(urls, self._pick(_SCI_NEWS) + self._pick(_SLUGS)),
            "link_spam": lambda urls: self._link(
                urls, f"https://{self._pick(_SHORTENERS)}/{self._tco()[-7:]}"),
            "link_sc": lambda urls: self._link(
                urls, f"https://soundcloud.com/{self._pick(_FIRST)}{self._pick(_LAST)}/{self._tco()[-8:]}"),
            "cx": lambda _: self._context_word("en"),
            "cx_ja": lambda _: self._context_word("ja"),
            "cx_ko": lambda _: self._context_word("ko"),
            "link_music": lambda urls: self._link(
                urls, f"https://open.spotify.com/album/{self.rng.getrandbits(64):016x}"),
            "link_shop": lambda urls: self._link(
                urls, f"https://www.amazon.com/dp/B0{self.rng.getrandbits(32):08X}"),
            "version": lambda _: f"{self.rng.randrange(1, 4)}.{self.rng.randrange(0, 20)}.{self.rng.randrange(0, 5)}",
            "n": lambda _: str(self.rng.randrange(2, 500)),
            "pct": lambda _: str(self.rng.randrange(1, 99)),
            "day": lambda _: str(self.rng.randrange(1, 100)),
            "temp": lambda _: str(self.rng.randrange(-5, 39)),
            "k": lambda _: str(self.rng.randrange(1, 10)),
            "ml": lambda _: self._pick(_MILLILITRES),
            "wordle": lambda _: f"{self.rng.randrange(900, 1400):,}",
            "link_video": lambda urls: self._link(
                urls, f"https://www.youtube.com/watch?v={self._tco()[-11:]}"),
        }

    # ------------------------------------------------------------------ helpers
    def _pick(self, options: tuple[Any, ...] | list[Any]) -> Any:
        return options[int(self.rng.random() * len(options))]

    def _context_word(self, lang: str) -> str:
        """A word of an ml_context kind other than the one drawn last, so two slots differ in kind."""
        kinds = self.context[lang]
        at = int(self.rng.random() * len(kinds))
        if kinds[at][0] == self._context_kind:
            at = (at + 1 + int(self.rng.random() * (len(kinds) - 1))) % len(kinds)
        kind, words = kinds[at]
        self._context_kind = kind
        return self._pick(words)

    def _tco(self) -> str:
        bits = self.rng.getrandbits(60)
        pairs = _TCO_PAIRS
        return (
            f"https://t.co/{pairs[bits & 4095]}{pairs[(bits >> 12) & 4095]}"
            f"{pairs[(bits >> 24) & 4095]}{pairs[(bits >> 36) & 4095]}{pairs[bits >> 48]}"
        )

    def _link(self, urls: dict[str, str], expanded: str) -> str:
        short = self._tco()
        urls[short] = expanded
        return short

    def _arxiv(self) -> str:
        rng = self.rng
        return f"https://arxiv.org/abs/2{rng.randrange(3, 5)}{rng.randrange(1, 13):02d}.{rng.randrange(1, 20000):05d}"

    def _blog(self) -> str:
        base = self._pick(_BLOGS).replace("{u}", self._pick(_FIRST))
        if base.endswith("="):
            return base + self._tco()[-10:]
        return base + self._pick(_SLUGS)

    def _clock(self, ms: int) -> tuple[str, time.struct_time]:
        # Neighbouring tweets mostly share a second, so the formatting is cached. Only
        # forward moves replace it: a retweeted original lies in the past and would
        # otherwise evict the second the stream is still in.
        sec = ms // 1000
        cached = self._time_cache
        if sec == cached[0]:
            return cached[1], cached[2]
        tm = time.gmtime(sec)
        formatted = _v1_time(tm)
        if sec > cached[0]:
            self._time_cache = (sec, formatted, tm)
        return formatted, tm

    def _snowflake(self, ms: int, worker: int, sequence: int) -> int:
        return ((ms - _X_EPOCH_MS) << 22) | (worker << 12) | (sequence & 0xFFF)

    # ------------------------------------------------------------------ content
    def _fill(self, template: _Template, urls: dict[str, str]) -> str:
        if not template.fields:
            return template.text
        slots = self.slots
        values: dict[str, str] = {}
        for name in template.fields:
            maker = slots.get(name)
            if maker is not None:
                values[name] = maker(urls)
                continue
            # "lib2" draws from what "lib" draws from, but differs from "lib".
            base = name.rstrip("0123456789")
            maker = slots.get(base)
            options = None if maker else self.vocab[base]
            value = maker(urls) if maker else self._pick(options)
            while value == values.get(base):
                value = maker(urls) if maker else self._pick(options)
            values[name] = value
        return template.text.format_map(values)

    def _kind(self) -> str:
        roll = self.rng.random()
        for bound, kind in self.c._kind_bounds:
            if roll < bound:
                return kind
        return "ordinary"

    def _fresh_content(self) -> _Content:
        c, rng = self.c, self.rng
        by_lang, other_langs = _KINDS[self._kind()]
        lang = "en"
        if other_langs and rng.random() < c.non_english_share:
            lang = self._pick(other_langs)
        template = self._pick(by_lang[lang])
        urls: dict[str, str] = {}
        text = self._decorate(self._fill(template, urls), template, urls)
        if lang == "en" and rng.random() < c.long_share:
            text = self._lengthen(text, template)
        return _Content(text, lang, template.is_ai, urls, template.traits)

    # Decoration is what makes two tweets from one template differ, as people's do: an
    # opener or a closer, a typo, emoji, a hashtag, a link, a reply, a change of case.
    def _decorate(self, text: str, template: _Template, urls: dict[str, str]) -> str:
        rng = self.rng
        openers = vocab.OPENERS.get(template.lang)
        if openers:
            if rng.random() < 0.3:
                text = self._pick(openers) + text
            if rng.random() < 0.3:
                closer = self._pick(vocab.CLOSERS[template.lang])
                # a closer written without a space ("w" in Japanese) must not run into a link
                text += (" " + closer) if _ENDS_IN_LINK.search(text) and closer[:1].isalnum() else closer
            if template.lang in _TYPO_LANGS and template.kind not in _EXACT_KINDS and rng.random() < 0.15:
                text = self._typo(text)
        return self._decorate_extras(text, template, urls)

    def _decorate_extras(self, text: str, template: _Template, urls: dict[str, str]) -> str:
        rng = self.rng
        kind = template.kind
        roll = rng.random()
        if roll < 0.45:
            emoji = vocab.EMOJI[kind]
            text += " " + self._pick(emoji)
            if roll < 0.2:
                text += self._pick(emoji) + (self._pick(emoji) if roll < 0.07 else "")
        roll = rng.random()
        if roll < 0.25:
            tags = vocab.HASHTAGS[kind]
            text += " #" + self._pick(tags) + (" #" + self._pick(tags) if roll < 0.08 else "")
        if rng.random() < 0.06:
            text += " 📍" + self._pick(_VOCAB["city"])
        if not urls and rng.random() < 0.1:
            text += " " + self.slots[self._pick(_KIND_LINKS[kind])](urls)
        if rng.random() < 0.08:
            text = f"@{self._pick(self.users)['screen_name']} {text}"
        roll = rng.random()
        if roll < 0.08:
            text = _recase(text, str.lower)
        elif roll < 0.095 and not template.is_ai:
            text = _recase(text, str.upper)
        return text

    def _typo(self, text: str) -> str:
        rng = self.rng
        words = text.split(" ")
        for _ in range(3):
            at = int(rng.random() * len(words))
            word = words[at]
            if len(word) < 4 or not word.isalpha():
                continue
            i = 1 + int(rng.random() * (len(word) - 2))
            kind = int(rng.random() * 3)
            if kind == 0:  # two letters swapped
                words[at] = word[:i] + word[i + 1] + word[i] + word[i + 2:]
            elif kind == 1:  # a letter dropped
                words[at] = word[:i] + word[i + 1:]
            else:  # a letter doubled
                words[at] = word[:i] + word[i] + word[i:]
            return " ".join(words)
        return text

    def _lengthen(self, text: str, template: _Template) -> str:
        fillers = _AI_FILLERS if template.is_ai else _ORDINARY_FILLERS
        # A third of long texts pass the v2 limit too, so note_tweet shows up.
        target = _V2_MAX + 20 if self.rng.random() < 0.33 else _V1_MAX + 20
        parts = [text]
        length = len(text)
        start = int(self.rng.random() * len(fillers))
        for step in range(len(fillers)):
            if length >= target:
                break
            sentence = fillers[(start + step) % len(fillers)]
            parts.append(sentence)
            length += len(sentence) + 1
        # Implicit AI stays implicit: no #MachineLearning tacked on.
        if template.kind in ("ai", "ai_terms"):
            parts.append(self._pick(_FILLER_TAGS))
        return " ".join(parts)

    def _near_duplicate(self, original: _Content) -> _Content:
        rng = self.rng
        urls = dict(original.urls)
        pieces = _TCO.split(original.text)  # odd indices are links, left untouched
        kind = int(rng.random() * 4)
        if kind == 0:
            pieces = [p if i % 2 else p.lower() for i, p in enumerate(pieces)]
        elif kind == 1:
            # upper case only where lower-casing brings the text back (Turkish "ı" comes back as "i")
            pieces = [p if i % 2 else p.upper() if p.upper().lower() == p.lower() else p.lower()
                      for i, p in enumerate(pieces)]
        elif kind == 2:
            pieces[0] = "  " + pieces[0].replace(" ", "  ", 1)
            pieces[-1] = pieces[-1] + " \n"
        elif len(pieces) > 1:
            # Shared through another shortener: new t.co link, same page with tracking.
            old = pieces[1]
            new = self._link(urls, urls.pop(old) + "?utm_source=twitter")
            pieces[1] = new
        else:
            pieces[-1] = pieces[-1] + " " + self._link(urls, self._blog())
        text = "".join(pieces)
        if text == original.text:
            # Changing the case of caseless or already lowercase text changes nothing.
            text = original.text + " "
        traits = (original.traits - {"duplicate"}) | {"near_duplicate"}
        return _Content(text, original.lang, original.is_ai, urls, traits)

    def _content(self) -> _Content:
        c, rng = self.c, self.rng
        if self.recent:
            roll = rng.random()
            if roll < c.duplicate_share:
                original = self._pick(tuple(self.recent))
                return original._replace(traits=original.traits | {"duplicate"})
            if roll < c.duplicate_share + c.near_duplicate_share:
                return self._near_duplicate(self._pick(tuple(self.recent)))
        content = self._fresh_content()
        self.recent.append(content)
        return content

    # ------------------------------------------------------------------ entities
    def _entities_v1(self, text: str, urls: dict[str, str]) -> dict[str, Any]:
        hashtags: list[dict[str, Any]] = []
        links: list[dict[str, Any]] = []
        mentions: list[dict[str, Any]] = []
        entities = {"hashtags": hashtags, "urls": links, "user_mentions": mentions, "symbols": []}
        if not urls and "#" not in text and "@" not in text:
            return entities
        for match in _ENTITY.finditer(text):
            kind = match.lastgroup
            if kind == "tag":
                hashtags.append({"text": match["tag"], "indices": list(match.span())})
            elif kind == "url":
                # A link cut off by truncation is no longer a link.
                expanded = urls.get(match["url"])
                if expanded is not None:
                    links.append({"url": match["url"], "expanded_url": expanded,
                                  "display_url": _display_url(expanded),
                                  "indices": list(match.span())})
            else:
                name = match["user"]
                user_id = self._mention_id(name)
                mentions.append({"screen_name": name, "name": name, "id": user_id,
                                 "id_str": str(user_id), "indices": list(match.span())})
        return entities

    def _entities_v2(self, text: str, urls: dict[str, str]) -> dict[str, Any]:
        entities: dict[str, Any] = {}
        if not urls and "#" not in text and "@" not in text:
            return entities
        for match in _ENTITY.finditer(text):
            kind = match.lastgroup
            start, end = match.span()
            if kind == "tag":
                entities.setdefault("hashtags", []).append(
                    {"start": start, "end": end, "tag": match["tag"]})
            elif kind == "url":
                expanded = urls.get(match["url"])
                if expanded is not None:
                    entities.setdefault("urls", []).append({
                        "start": start, "end": end, "url": match["url"],
                        "expanded_url": expanded, "display_url": _display_url(expanded)})
            else:
                name = match["user"]
                entities.setdefault("mentions", []).append(
                    {"start": start, "end": end, "username": name, "id": str(self._mention_id(name))})
        return entities

    def _mention_id(self, screen_name: str) -> int:
        known = self.mention_ids.get(screen_name)
        if known is None:
            # Stable across processes, unlike hash().
            known = 10**9 + sum(ord(ch) * 131**i for i, ch in enumerate(screen_name)) % 10**12
            self.mention_ids[screen_name] = known
        return known

    # ------------------------------------------------------------------ payloads
    def _v1_status(self, tweet_id: int, ms: int, user: dict[str, Any], content: _Content,
                   flags: list[str]) -> dict[str, Any]:
        text, urls = content.text, content.urls
        status: dict[str, Any] = {
            "created_at": self._clock(ms)[0],
            "id": tweet_id,
            "id_str": str(tweet_id),
            "text": text,
            "source": _SOURCES[int(self.rng.random() * 4)],
            "truncated": False,
            "in_reply_to_status_id": None,
            "in_reply_to_user_id": None,
            "in_reply_to_screen_name": None,
            "user": dict(user),
            "geo": None,
            "place": None,
            "is_quote_status": False,
            "retweet_count": 0,
            "favorite_count": 0,
            "entities": None,
            "favorited": False,
            "retweeted": False,
            "filter_level": "low",
            "lang": content.lang,
            "timestamp_ms": str(ms),
        }
        if len(text) > _V1_MAX:
            # Compatibility mode: the text is cut and ends in a link to the whole tweet.
            flags.append("extended")
            short_urls = dict(urls)
            self_link = self._link(short_urls, f"https://twitter.com/i/web/status/{tweet_id}")
            short = _cut(text, _V1_MAX - len(self_link)) + " " + self_link
            status["text"] = short
            status["truncated"] = True
            status["entities"] = self._entities_v1(short, short_urls)
            status["extended_tweet"] = {
                "full_text": text,
                "display_text_range": [0, len(text)],
                "entities": self._entities_v1(text, urls),
            }
        else:
            status["entities"] = self._entities_v1(text, urls)
        return status

    def _v2_tweet(self, tweet_id: int, ms: int, user: dict[str, Any], text: str, lang: str,
                  urls: dict[str, str], flags: list[str]) -> dict[str, Any]:
        tweet: dict[str, Any] = {
            "id": str(tweet_id),
            "text": text,
            "created_at": _iso_time(self._clock(ms)[1], ms % 1000),
            "author_id": user["id_str"],
            "lang": lang,
            "edit_history_tweet_ids": [str(tweet_id)],
            "possibly_sensitive": False,
        }
        if len(text) > _V2_MAX:
            flags.append("note_tweet")
            short = _cut(text, _V2_MAX)
            tweet["text"] = short
            entities = self._entities_v2(short, urls)
            note: dict[str, Any] = {"text": text}
            note_entities = self._entities_v2(text, urls)
            if note_entities:
                note["entities"] = note_entities
            tweet["note_tweet"] = note
        else:
            entities = self._entities_v2(text, urls)
        if entities:
            tweet["entities"] = entities
        return tweet

    def _traits(self, content: _Content, flags: list[str]) -> frozenset[str]:
        # Few distinct combinations exist; sharing them saves a set per tweet.
        key = (content.traits, tuple(flags))
        traits = self._trait_cache.get(key)
        if traits is None:
            traits = self._trait_cache[key] = content.traits.union(flags)
        return traits

    @staticmethod
    def _v2_user(user: dict[str, Any]) -> dict[str, Any]:
        return {"id": user["id_str"], "name": user["name"], "username": user["screen_name"]}

    def _payload(self, index: int, ms: int, content: _Content) -> SyntheticTweet:
        c, rng = self.c, self.rng
        tweet_id = self._snowflake(ms, self.c._worker, index)
        users = self.users
        user = users[int(rng.random() * len(users))]
        v2 = rng.random() < c.v2_share
        flags = ["v2" if v2 else "v1"]
        if rng.random() >= c.retweet_share:
            if v2:
                data = self._v2_tweet(tweet_id, ms, user, content.text, content.lang, content.urls, flags)
                payload: dict[str, Any] = {"data": data, "includes": {"users": [self._v2_user(user)]}}
            else:
                payload = self._v1_status(tweet_id, ms, user, content, flags)
            return SyntheticTweet(payload, content.is_ai, tweet_id, self._traits(content, flags))

        flags.append("retweet")
        author = users[int(rng.random() * len(users))]
        while author is user:
            author = users[int(rng.random() * len(users))]
        original_ms = ms - 60_000 - int(rng.random() * 3 * 86_400_000)
        sequence = self.retweets
        self.retweets += 1
        original_id = self._snowflake(
            original_ms, _ORIGINAL_WORKER_BIT | ((sequence >> 12) & 0x1FF), sequence)
        rt_text = f"RT @{author['screen_name']}: {content.text}"
        if len(rt_text) > _V1_MAX:
            rt_text = _cut(rt_text, _V1_MAX)
        if v2:
            original = self._v2_tweet(original_id, original_ms, author, content.text,
                                      content.lang, content.urls, flags)
            data = self._v2_tweet(tweet_id, ms, user, rt_text, content.lang, content.urls, [])
            data["referenced_tweets"] = [{"type": "retweeted", "id": original["id"]}]
            payload = {
                "data": data,
                "includes": {"users": [self._v2_user(user), self._v2_user(author)],
                             "tweets": [original]},
            }
        else:
            original = self._v1_status(original_id, original_ms, author, content, flags)
            original["retweet_count"] = rng.randrange(1, 5000)
            rt_content = _Content(rt_text, content.lang, content.is_ai, content.urls, content.traits)
            payload = self._v1_status(tweet_id, ms, user, rt_content, [])
            payload["retweeted_status"] = original
            payload["retweet_count"] = original["retweet_count"]
        return SyntheticTweet(payload, content.is_ai, tweet_id, self._traits(content, flags))

    def tweets(self, n: int | None) -> Iterator[SyntheticTweet]:
        rng = self.rng
        ms = self.c.start_ms
        index = 0
        while n is None or index < n:
            # At least 1 ms apart, so ids strictly increase; about 22 tweets a second.
            ms += 1 + int(rng.expovariate(1 / 45))
            yield self._payload(index, ms, self._content())
            index += 1


def synthetic_payloads(n: int, seed: int = 42) -> Iterator[dict[str, Any]]:
    """Yield ``n`` synthetic payloads for ``seed`` (see :class:`SyntheticTweets`)."""
    return (tweet.payload for tweet in SyntheticTweets(seed).generate(n))
