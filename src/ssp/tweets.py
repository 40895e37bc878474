"""The canonical post record and the one parser that builds it from X API and Bluesky payloads.

Every stage after the source (Kafka ingest, the Postgres tables, labelling, the
classifier, the dashboard) sees tweets only as :class:`Tweet`. Payloads are parsed
once, at the edge, by :func:`parse_tweet`; a payload it rejects raises
:class:`TweetParseError` whose ``reason`` is a short code for the dead-letter table.

>>> tweet = parse_tweet(
...     b'{"id_str": "1246751145290346497", "created_at": "Sun Apr 05 10:46:44 +0000 2020",'
...     b' "text": "Fish &amp; chips #food https://t.co/abc", "lang": "en",'
...     b' "user": {"screen_name": "chef"},'
...     b' "entities": {"hashtags": [{"text": "food"}], "urls": [{"url": "https://t.co/abc",'
...     b' "expanded_url": "https://example.com/fish"}]}}'
... )
>>> tweet.id, tweet.text, tweet.urls, tweet.hashtags
(1246751145290346497, 'Fish & chips #food https://t.co/abc', ('https://example.com/fish',), ('food',))
>>> tweet.created_at.isoformat()
'2020-04-05T10:46:44+00:00'
>>> try:
...     parse_tweet(b'{"id": 7, "created_at": "yesterday", "text": "hi"}')
... except TweetParseError as err:
...     print(err.reason)
wrong_type:created_at

Accepted shapes
---------------
* X API v1.1 status objects (streaming and REST, compatibility or extended mode).
* Bluesky Jetstream events (``{"did", "time_us", "kind": "commit", "commit": {...}}``): only a
  ``create`` of an ``app.bsky.feed.post`` record is a post; see :func:`parse_bluesky_event`.
* X API v2 responses for one tweet: ``{"data": {...}, "includes": {...}}``.
* A bare v2 tweet object: a dict whose ``id`` is a string and that has none of the
  v1.1-only keys (``id_str``, ``user``, ``truncated``, ``extended_tweet``, ...).
  Without ``includes`` there is no username and no retweeted tweet to take the full
  text from, so such a record has ``user_screen_name=None`` and, for a retweet, the
  ``RT @...`` text exactly as given.

Rules
-----
* ``text`` is the full, untruncated text, HTML-unescaped: for a retweet that of the
  retweeted tweet; otherwise ``extended_tweet.full_text``, then ``full_text``, then
  ``text`` (v1.1), or ``note_tweet.text`` then ``text`` (v2).
* ``urls`` and ``hashtags`` come from the entities that belong to that text, in the
  order the entity lists give them, each value once. URLs are expanded and never on
  t.co; v2 URL entities carrying a ``media_key`` are photos or videos and are left
  out, as v1.1 keeps those apart in ``entities.media``.
* v2 tweets need ``tweet.fields=created_at,lang,entities,note_tweet,referenced_tweets,
  author_id`` and ``expansions=author_id,referenced_tweets.id``; without
  ``created_at`` a payload is rejected, without the rest fields are just empty.
* JSON ``null`` counts as absent everywhere.

``reason`` codes: ``not_json``, ``oversized``, ``not_object``, ``not_a_tweet``
(stream notices such as ``delete``), ``api_error`` (a v2 response holding only
errors), ``no_id``, ``no_created_at``, ``no_text``, and ``wrong_type:<field>`` where
``<field>`` is the payload path without the v2 ``data.`` wrapper and without list
indices (``wrong_type:entities.urls``); ``id_str`` problems report as
``wrong_type:id``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

from ssp.errors import SspError

__all__ = [
    "PLATFORMS", "Tweet", "TweetParseError", "bluesky_post_id", "parse_bluesky_event", "parse_tweet", "post_web_url",
]

# Where a post was published: every post carries one, so links and reposts go to the right place.
PLATFORMS = ("x", "bluesky")

# Postgres BIGINT is where ids end up; refusing larger ones here keeps a bad id from
# failing a whole batch insert later.
_MAX_ID = 2**63 - 1
_MAX_ID_DIGITS = 19

# Keys only v1.1 status objects carry; their presence rules out a bare v2 object.
_V1_ONLY_KEYS = frozenset(
    {
        "id_str",
        "user",
        "truncated",
        "extended_tweet",
        "retweeted_status",
        "full_text",
        "timestamp_ms",
        "quoted_status",
        "is_quote_status",
    }
)

# Non-tweet messages the v1.1 streaming endpoints interleave with statuses.
_V1_NOTICE_KEYS = (
    "delete",
    "limit",
    "scrub_geo",
    "status_withheld",
    "user_withheld",
    "disconnect",
    "warning",
)

# Real retweets nest once; the cap only keeps a cyclic dict passed in directly from
# looping forever.
_MAX_RETWEET_DEPTH = 4

_V1_TIME = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"(\d\d) (\d\d:\d\d:\d\d) ([+-]\d\d)(\d\d) (\d{4})",
    re.ASCII,
)
_MONTHS = {
    name: f"{number:02d}"
    for number, name in enumerate(
        "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1
    )
}
_CREATED_AT_EXAMPLE = "e.g. 'Sun Apr 05 10:46:44 +0000 2020' or ISO 8601"


class TweetParseError(SspError, ValueError):
    """A payload that cannot become a :class:`Tweet`.

    ``reason`` is a short machine-friendly code (see the module docstring);
    ``str(err)`` names the tweet, the field and the problem.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Tweet:
    """One tweet in the form every stage of the pipeline uses.

    ``raw`` is the payload object as given, not copied. It is left out of
    equality, hashing and repr: a dict cannot be hashed, and payloads that parse
    to the same fields (say the v1.1 and v2 forms of one tweet) should compare equal.
    """

    id: int
    created_at: datetime
    text: str
    lang: str | None
    user_screen_name: str | None
    urls: tuple[str, ...]
    hashtags: tuple[str, ...]
    is_retweet: bool
    raw: dict[str, Any] = field(compare=False, repr=False)
    # ``x`` or ``bluesky``; a Bluesky post's AT URI and CID (what a repost names); an X retweet's
    # original (the tweet a repost of the retweet should name instead)
    platform: str = "x"
    uri: str | None = None
    cid: str | None = None
    retweet_of: int | None = None

    def to_row(self) -> dict[str, Any]:
        """Return the record as a plain dict for a database write."""
        return {
            "platform": self.platform,
            "uri": self.uri,
            "cid": self.cid,
            "retweet_of": self.retweet_of,
            "id": self.id,
            "created_at": self.created_at,
            "text": self.text,
            "lang": self.lang,
            "user_screen_name": self.user_screen_name,
            "urls": list(self.urls),
            "hashtags": list(self.hashtags),
            "is_retweet": self.is_retweet,
            "raw": self.raw,
        }


def parse_tweet(
    payload: dict[str, Any] | str | bytes, *, max_bytes: int | None = None
) -> Tweet:
    """Parse one X API v1.1 or v2 payload into a :class:`Tweet`.

    ``str`` and ``bytes`` payloads are JSON-decoded first; ``max_bytes`` limits
    their UTF-8 size and does not apply to an already decoded dict.
    """
    obj = _decode(payload, max_bytes)
    if isinstance(obj.get("kind"), str) and "did" in obj:
        return parse_bluesky_event(obj)
    data = obj.get("data")
    if data is not None:
        if not isinstance(data, dict):
            raise _wrong_type(None, "data", data, "a single tweet object")
        return _parse_v2(obj, data, obj.get("includes"), "data.")
    tweet_id = obj.get("id")
    if isinstance(tweet_id, str) and not (obj.keys() & _V1_ONLY_KEYS):
        return _parse_v2(obj, obj, None, "")
    return _parse_v1(obj)


def _decode(payload: object, max_bytes: int | None) -> dict[str, Any]:
    if isinstance(payload, dict):
        return payload
    if isinstance(payload, bytes | bytearray):
        size = len(payload)
    elif isinstance(payload, memoryview):
        size = payload.nbytes
    elif isinstance(payload, str):
        size = len(payload)
        # A character is at most 4 UTF-8 bytes, so only strings near the limit
        # need the cost of encoding to learn their real size.
        if max_bytes is not None and size <= max_bytes < 4 * size:
            size = len(payload.encode("utf-8", "surrogatepass"))
    else:
        raise TweetParseError(
            "not_object",
            f"tweet payload is a {type(payload).__name__}, expected a JSON object, str or bytes",
        )
    if max_bytes is not None and size > max_bytes:
        raise TweetParseError(
            "oversized",
            f"tweet payload is {size} bytes, more than the limit of {max_bytes}",
        )
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        start = bytes(payload[:60]) if not isinstance(payload, str) else payload[:60]
        raise TweetParseError(
            "not_json", f"tweet payload is not valid JSON ({exc}); it starts {start!r}"
        ) from exc
    if not isinstance(obj, dict):
        raise TweetParseError(
            "not_object",
            f"tweet payload is a JSON {type(obj).__name__}, expected a JSON object",
        )
    return obj


def _parse_v1(status: dict[str, Any]) -> Tweet:
    tweet_id = _v1_id(status)
    created_at = _created_at(status.get("created_at"), tweet_id, "created_at")

    source, path = status, ""
    for _ in range(_MAX_RETWEET_DEPTH):
        retweeted = source.get("retweeted_status")
        if retweeted is None:
            break
        if not isinstance(retweeted, dict):
            raise _wrong_type(
                tweet_id, path + "retweeted_status", retweeted, "a status object"
            )
        source, path = retweeted, path + "retweeted_status."

    text, entities, entities_path = _v1_full_text(source, tweet_id, path)
    urls, hashtags = _entities(entities, tweet_id, entities_path, "text")

    screen_name = None
    user = status.get("user")
    if user is not None:
        if not isinstance(user, dict):
            raise _wrong_type(tweet_id, "user", user, "a user object")
        screen_name = _optional_str(
            user.get("screen_name"), tweet_id, "user.screen_name"
        )

    return Tweet(
        id=tweet_id,
        created_at=created_at,
        text=html.unescape(text) if "&" in text else text,
        lang=_optional_str(status.get("lang"), tweet_id, "lang"),
        user_screen_name=screen_name,
        urls=urls,
        hashtags=hashtags,
        is_retweet=source is not status,
        raw=status,
        retweet_of=_lenient_id(source) if source is not status else None,
    )


def _lenient_id(status: dict[str, Any]) -> int | None:
    """A retweeted status's id, None when it has no valid one: the retweet itself is still a good record."""
    for key in ("id_str", "id"):
        value = status.get(key)
        if value is not None:
            try:
                return _tweet_id(value, key)
            except TweetParseError:
                return None
    return None


def _v1_id(status: dict[str, Any]) -> int:
    # id_str first: JavaScript producers round the numeric id, never the string.
    id_str = status.get("id_str")
    if id_str is not None:
        return _tweet_id(id_str, "id_str")
    raw_id = status.get("id")
    if raw_id is not None:
        return _tweet_id(raw_id, "id")
    for notice in _V1_NOTICE_KEYS:
        if notice in status:
            raise TweetParseError(
                "not_a_tweet", f"payload is a stream {notice!r} notice, not a tweet"
            )
    if "errors" in status:
        raise TweetParseError(
            "api_error", f"payload holds only API errors: {status['errors']!r:.200}"
        )
    keys = ", ".join(sorted(map(str, status))[:12])
    raise TweetParseError(
        "no_id", f"tweet payload has no 'id_str' or 'id' field (keys: {keys})"
    )


def _nested_full_text(
    obj: dict[str, Any], key: str, text_key: str, tweet_id: int, path: str
) -> tuple[str, object, str] | None:
    """The long text kept in a nested object (v1.1 ``extended_tweet``, v2 ``note_tweet``), if any."""
    nested = obj.get(key)
    if nested is None:
        return None
    if not isinstance(nested, dict):
        raise _wrong_type(tweet_id, path + key, nested, "an object")
    text = nested.get(text_key)
    if text is None:
        return None
    if not isinstance(text, str):
        raise _wrong_type(tweet_id, f"{path}{key}.{text_key}", text, "a string")
    return text, nested.get("entities"), f"{path}{key}.entities"


def _v1_full_text(
    status: dict[str, Any], tweet_id: int, path: str
) -> tuple[str, object, str]:
    """Return the status's full text, the entities that index into it and their path."""
    found = _nested_full_text(status, "extended_tweet", "full_text", tweet_id, path)
    if found is not None:
        return found
    for key in ("full_text", "text"):
        text = status.get(key)
        if text is not None:
            if not isinstance(text, str):
                raise _wrong_type(tweet_id, path + key, text, "a string")
            return text, status.get("entities"), path + "entities"
    raise TweetParseError("no_text", f"tweet {tweet_id}: field '{path}text' is missing")


def _parse_v2(
    raw: dict[str, Any], data: dict[str, Any], includes: object, prefix: str
) -> Tweet:
    raw_id = data.get("id")
    if raw_id is None:
        keys = ", ".join(sorted(map(str, data))[:12])
        raise TweetParseError(
            "no_id", f"tweet payload has no '{prefix}id' field (keys: {keys})"
        )
    tweet_id = _tweet_id(raw_id, prefix + "id")
    created_at = _created_at(data.get("created_at"), tweet_id, prefix + "created_at")

    if includes is not None and not isinstance(includes, dict):
        raise _wrong_type(tweet_id, "includes", includes, "an object")
    retweeted_id = _v2_retweeted_id(data, tweet_id, prefix)

    source, path = data, prefix
    if retweeted_id is not None and includes:
        found = _v2_find(includes, "tweets", retweeted_id, tweet_id)
        if found is not None:
            index, source = found
            path = f"includes.tweets[{index}]."
    text, entities, entities_path = _v2_full_text(source, tweet_id, path)
    urls, hashtags = _entities(entities, tweet_id, entities_path, "tag")

    screen_name = None
    author_id = data.get("author_id")
    if author_id is not None and includes:
        found = _v2_find(includes, "users", author_id, tweet_id)
        if found is not None:
            index, user = found
            screen_name = _optional_str(
                user.get("username"), tweet_id, f"includes.users[{index}].username"
            )

    return Tweet(
        id=tweet_id,
        created_at=created_at,
        text=html.unescape(text) if "&" in text else text,
        lang=_optional_str(data.get("lang"), tweet_id, prefix + "lang"),
        user_screen_name=screen_name,
        urls=urls,
        hashtags=hashtags,
        is_retweet=retweeted_id is not None,
        raw=raw,
        retweet_of=_lenient_id({"id": retweeted_id}) if retweeted_id is not None else None,
    )


def _v2_retweeted_id(data: dict[str, Any], tweet_id: int, prefix: str) -> str | None:
    references = data.get("referenced_tweets")
    if references is None:
        return None
    path = prefix + "referenced_tweets"
    if not isinstance(references, list):
        raise _wrong_type(tweet_id, path, references, "a list")
    for index, reference in enumerate(references):
        if not isinstance(reference, dict):
            raise _wrong_type(tweet_id, f"{path}[{index}]", reference, "an object")
        if reference.get("type") == "retweeted":
            # includes holds ids as strings; normalising lets an int id from a
            # lenient producer still find its tweet.
            return str(reference.get("id", ""))
    return None


def _v2_find(
    includes: dict[str, Any], key: str, wanted: object, tweet_id: int
) -> tuple[int, dict[str, Any]] | None:
    items = includes.get(key)
    if items is None:
        return None
    if not isinstance(items, list):
        raise _wrong_type(tweet_id, f"includes.{key}", items, "a list")
    wanted = str(wanted)
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise _wrong_type(tweet_id, f"includes.{key}[{index}]", item, "an object")
        if str(item.get("id")) == wanted:
            return index, item
    return None


def _v2_full_text(
    tweet: dict[str, Any], tweet_id: int, path: str
) -> tuple[str, object, str]:
    """Return the tweet's full text, the entities that index into it and their path."""
    found = _nested_full_text(tweet, "note_tweet", "text", tweet_id, path)
    if found is not None:
        return found
    text = tweet.get("text")
    if text is None:
        raise TweetParseError(
            "no_text", f"tweet {tweet_id}: field '{path}text' is missing"
        )
    if not isinstance(text, str):
        raise _wrong_type(tweet_id, path + "text", text, "a string")
    return text, tweet.get("entities"), path + "entities"


# ---------------------------------------------------------------- Bluesky (Jetstream)
POST_COLLECTION = "app.bsky.feed.post"
_LINK_FACET = "app.bsky.richtext.facet#link"
_TAG_FACET = "app.bsky.richtext.facet#tag"
_EXTERNAL_EMBED = "app.bsky.embed.external"
_RECORD_WITH_MEDIA_EMBED = "app.bsky.embed.recordWithMedia"


def bluesky_post_id(uri: str) -> int:
    """The 63-bit integer a Bluesky post is keyed by in every table (X ids are integers there too).

    It is a hash of the post's AT URI, which stays the post's identity (``Tweet.uri``); two
    posts share a key with odds of about 1 in 2**63 per pair.

    >>> bluesky_post_id("at://did:plc:abc/app.bsky.feed.post/3kxyz")
    8012476456161841534
    """
    import hashlib

    digest = hashlib.blake2b(uri.encode("utf-8"), digest_size=8, person=b"ssp-bsky-post").digest()
    return (int.from_bytes(digest, "big") >> 1) or 1


def post_web_url(platform: str, post_id: int | str, uri: str | None = None) -> str | None:
    """Where a post opens in a browser, on its own platform; None for a Bluesky post without its AT URI.

    >>> post_web_url("x", 1246751145290346497)
    'https://x.com/i/web/status/1246751145290346497'
    >>> post_web_url("bluesky", 7, "at://did:plc:abc/app.bsky.feed.post/3kxyz")
    'https://bsky.app/profile/did:plc:abc/post/3kxyz'
    """
    if platform == "bluesky":
        parts = (uri or "").removeprefix("at://").split("/")
        if len(parts) != 3 or parts[1] != POST_COLLECTION:
            return None
        return f"https://bsky.app/profile/{parts[0]}/post/{parts[2]}"
    return f"https://x.com/i/web/status/{post_id}"


def parse_bluesky_event(event: dict[str, Any]) -> Tweet:
    """Parse one Jetstream event into a :class:`Tweet` with ``platform="bluesky"``.

    Only ``kind="commit"`` events whose ``commit.operation`` is ``create`` and whose
    collection is ``app.bsky.feed.post`` are posts; the others (updates, deletes, identity
    and account events, other collections) raise ``not_a_tweet``. The id is
    :func:`bluesky_post_id` of the AT URI ``at://<did>/app.bsky.feed.post/<rkey>``, kept in
    ``uri`` with the record's ``cid``; ``text`` is ``record.text``; ``lang`` the first of
    ``record.langs``; links the ``#link`` facets' URIs then ``embed.external.uri`` (also
    inside a ``recordWithMedia`` embed), hashtags the ``#tag`` facets', each once; the author
    is the event's ``handle`` when the source knew it (from an identity event), else the DID.

    >>> post = parse_bluesky_event({"did": "did:plc:abc", "time_us": 1725911162329308, "kind": "commit",
    ...     "commit": {"operation": "create", "collection": "app.bsky.feed.post", "rkey": "3kxyz",
    ...                "cid": "bafyrei", "record": {"text": "LLMs #AI", "createdAt": "2024-09-09T19:46:02.102Z",
    ...                "langs": ["en"], "facets": [{"index": {"byteStart": 5, "byteEnd": 8},
    ...                "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "AI"}]}]}}})
    >>> post.platform, post.uri, post.hashtags, post.created_at.isoformat()
    ('bluesky', 'at://did:plc:abc/app.bsky.feed.post/3kxyz', ('AI',), '2024-09-09T19:46:02.102000+00:00')
    """
    did = event.get("did")
    if not isinstance(did, str) or not did.startswith("did:"):
        raise _wrong_type(None, "did", did, "a DID string ('did:...')")
    kind = event.get("kind")
    if kind != "commit":
        raise TweetParseError("not_a_tweet", f"Bluesky event of {did} is a {kind!r} event, not a post")
    commit = event.get("commit")
    if not isinstance(commit, dict):
        raise _wrong_type(None, "commit", commit, "an object")
    operation, collection = commit.get("operation"), commit.get("collection")
    if operation != "create" or collection != POST_COLLECTION:
        raise TweetParseError("not_a_tweet",
                              f"Bluesky event of {did} is a {operation!r} of {collection!r}, not a new post")
    rkey = commit.get("rkey")
    if not isinstance(rkey, str) or not rkey or "/" in rkey:
        raise _wrong_type(None, "commit.rkey", rkey, "a record key")
    uri = f"at://{did}/{POST_COLLECTION}/{rkey}"
    post_id = bluesky_post_id(uri)
    record = commit.get("record")
    if not isinstance(record, dict):
        raise _wrong_type(post_id, "commit.record", record, "a post record object")
    text = record.get("text")
    if text is None:
        raise TweetParseError("no_text", f"post {uri}: field 'commit.record.text' is missing")
    if not isinstance(text, str):
        raise _wrong_type(post_id, "commit.record.text", text, "a string")
    created_at = _created_at(record.get("createdAt"), post_id, "commit.record.createdAt")
    langs = record.get("langs")
    if langs is not None and not isinstance(langs, list):
        raise _wrong_type(post_id, "commit.record.langs", langs, "a list")
    lang = _optional_str(langs[0], post_id, "commit.record.langs[0]") if langs else None
    links, tags = _facet_values(record.get("facets"), post_id)
    handle = _optional_str(event.get("handle"), post_id, "handle")
    return Tweet(
        id=post_id,
        created_at=created_at,
        text=text,
        lang=lang,
        user_screen_name=handle or did,
        urls=_unique([*links, *_embed_links(record.get("embed"), post_id)]),
        hashtags=_unique(tags),
        is_retweet=False,
        raw=event,
        platform="bluesky",
        uri=uri,
        cid=_optional_str(commit.get("cid"), post_id, "commit.cid"),
    )


def _facet_values(facets: object, post_id: int) -> tuple[list[str], list[str]]:
    """The link URIs and tags of a post's rich-text facets, in order (mentions and unknown features are left out)."""
    links: list[str] = []
    tags: list[str] = []
    if facets is None:
        return links, tags
    path = "commit.record.facets"
    if not isinstance(facets, list):
        raise _wrong_type(post_id, path, facets, "a list")
    for index, facet in enumerate(facets):
        if not isinstance(facet, dict):
            raise _wrong_type(post_id, f"{path}[{index}]", facet, "a facet object")
        features = facet.get("features")
        if not isinstance(features, list):
            raise _wrong_type(post_id, f"{path}[{index}].features", features, "a list")
        for number, feature in enumerate(features):
            where = f"{path}[{index}].features[{number}]"
            if not isinstance(feature, dict):
                raise _wrong_type(post_id, where, feature, "a feature object")
            kind = feature.get("$type")
            if kind == _LINK_FACET:
                links.append(_required_str(feature.get("uri"), post_id, where + ".uri"))
            elif kind == _TAG_FACET:
                tags.append(_required_str(feature.get("tag"), post_id, where + ".tag").lstrip("#"))
    return links, tags


def _embed_links(embed: object, post_id: int) -> list[str]:
    """The link card's URI of an external embed, also one beside a quoted record."""
    path = "commit.record.embed"
    if isinstance(embed, dict) and embed.get("$type") == _RECORD_WITH_MEDIA_EMBED:
        embed, path = embed.get("media"), path + ".media"
    if not isinstance(embed, dict) or embed.get("$type") != _EXTERNAL_EMBED:
        return []
    external = embed.get("external")
    if not isinstance(external, dict):
        raise _wrong_type(post_id, path + ".external", external, "an object")
    return [_required_str(external.get("uri"), post_id, path + ".external.uri")]


def _required_str(value: object, post_id: int, path: str) -> str:
    if isinstance(value, str):
        return value
    raise _wrong_type(post_id, path, value, "a string")


def _entities(
    entities: object, tweet_id: int, path: str, tag_key: str
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Return (expanded URLs, hashtags) from one entities object, each value once."""
    if entities is None:
        return (), ()
    if not isinstance(entities, dict):
        raise _wrong_type(tweet_id, path, entities, "an object")
    # one item at a time, links before hashtags: the first problem in the payload is the one reported
    urls = _unique(_entity_url(item, tweet_id, f"{path}.urls[{index}]")
                   for index, item in _entity_items(entities, "urls", tweet_id, path))
    tags = _unique(_entity_tag(item, tweet_id, f"{path}.hashtags[{index}]", tag_key)
                   for index, item in _entity_items(entities, "hashtags", tweet_id, path))
    return urls, tags


def _entity_items(entities: dict, key: str, tweet_id: int, path: str) -> Iterator[tuple[int, dict]]:
    """The objects of list ``entities[key]`` with their index; none when the key is absent or empty."""
    items = entities.get(key)
    if not items:
        return
    if not isinstance(items, list):
        raise _wrong_type(tweet_id, f"{path}.{key}", items, "a list")
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise _wrong_type(tweet_id, f"{path}.{key}[{index}]", item, "an object")
        yield index, item


def _entity_url(item: dict, tweet_id: int, path: str) -> str | None:
    """A URL entity's expanded link; None for a media link, a t.co link or none at all."""
    if "media_key" in item:
        return None
    url = item.get("expanded_url") or item.get("url")
    if url is None:
        return None
    if not isinstance(url, str):
        raise _wrong_type(tweet_id, f"{path}.expanded_url", url, "a string")
    return None if _on_tco(url) else url


def _entity_tag(item: dict, tweet_id: int, path: str, tag_key: str) -> str:
    tag = item.get(tag_key)
    if not isinstance(tag, str):
        raise _wrong_type(tweet_id, f"{path}.{tag_key}", tag, "a string")
    return tag.lstrip("#")


def _unique(values) -> tuple[str, ...]:
    """The non-empty values, each once, in first-seen order."""
    return tuple(dict.fromkeys(value for value in values if value))


def _on_tco(url: str) -> bool:
    lowered = url.lower()
    if "t.co" not in lowered:
        return False
    # Compare the host, not a substring: "microsoft.co/..." is not a t.co link.
    rest = lowered.partition("://")[2] or lowered.removeprefix("//")
    host = re.split(r"[/?#]", rest, maxsplit=1)[0].rpartition("@")[2].partition(":")[0]
    return host == "t.co" or host.endswith(".t.co")


def _tweet_id(value: object, path: str) -> int:
    if isinstance(value, str):
        if value.isascii() and value.isdigit() and len(value) <= _MAX_ID_DIGITS:
            number = int(value)
            if 0 < number <= _MAX_ID:
                return number
    elif (
        isinstance(value, int) and not isinstance(value, bool) and 0 < value <= _MAX_ID
    ):
        return value
    raise _wrong_type(
        None, path, value, "a positive 64-bit integer or a string of digits"
    )


def _created_at(value: object, tweet_id: int, path: str) -> datetime:
    if value is None:
        raise TweetParseError(
            "no_created_at", f"tweet {tweet_id}: field '{path}' is missing"
        )
    parsed = _parse_timestamp(value) if isinstance(value, str) else None
    if parsed is None:
        raise _wrong_type(tweet_id, path, value, _CREATED_AT_EXAMPLE)
    return parsed


# Stream records arrive in time order and many share a second, so most timestamps
# repeat and a small cache skips the parsing; datetimes are immutable, safe to share.
@lru_cache(maxsize=2048)
def _parse_timestamp(value: str) -> datetime | None:
    """Parse a v1.1 or ISO 8601 timestamp to an aware UTC datetime, None if invalid."""
    match = _V1_TIME.fullmatch(value)
    if match is not None:
        # Rewritten as ISO 8601 because fromisoformat is several times faster than
        # strptime and checks the day against the month as well.
        month, day, clock, offset_hours, offset_minutes, year = match.groups()
        value = f"{year}-{_MONTHS[month]}-{day}T{clock}{offset_hours}:{offset_minutes}"
    try:
        parsed = datetime.fromisoformat(value)
        # A timestamp without an offset could be in any zone; guessing UTC would
        # silently shift tweets from producers that used local time.
        if parsed.tzinfo is None:
            return None
        return parsed if parsed.tzinfo is UTC else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _optional_str(value: object, tweet_id: int, path: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise _wrong_type(tweet_id, path, value, "a string")


def _wrong_type(
    tweet_id: int | None, path: str, value: object, expected: str
) -> TweetParseError:
    field_name = re.sub(r"\[\d+\]", "", path.removeprefix("data."))
    if field_name == "id_str":
        field_name = "id"
    shown = "missing" if value is None else _show(value)
    who = f"tweet {tweet_id}" if tweet_id is not None else "tweet payload"
    return TweetParseError(
        f"wrong_type:{field_name}",
        f"{who}: field '{path}' is {shown}, expected {expected}",
    )


def _show(value: object) -> str:
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return text if isinstance(value, str) else f"{text} ({type(value).__name__})"
