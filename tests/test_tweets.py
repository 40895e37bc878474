"""Tests for ssp.tweets: the canonical tweet and its payload parser."""

from __future__ import annotations

import doctest
import html
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import ssp.tweets
from ssp.tweets import Tweet, TweetParseError, parse_tweet

APR_5 = datetime(2020, 4, 5, 10, 46, 44, tzinfo=UTC)


@pytest.fixture(scope="module")
def parsed(fixture_tweets_path: Path) -> dict[int, Tweet]:
    lines = fixture_tweets_path.read_bytes().splitlines()
    assert len(lines) == 200
    tweets = {tweet.id: tweet for tweet in map(parse_tweet, lines)}
    assert len(tweets) == 200, "tweet ids in the sample are not unique"
    return tweets


def summary(t: Tweet) -> tuple[Any, ...]:
    return (t.text, t.urls, t.hashtags, t.user_screen_name, t.is_retweet)


def v1(**fields: Any) -> dict[str, Any]:
    status: dict[str, Any] = {
        "id": 1001,
        "id_str": "1001",
        "created_at": "Sun Apr 05 10:46:44 +0000 2020",
        "text": "hello world",
        "truncated": False,
        "lang": "en",
        "user": {"screen_name": "alice"},
        "entities": {"urls": [], "hashtags": []},
    }
    return status | fields


def v2(**fields: Any) -> dict[str, Any]:
    tweet = {"id": "2002", "text": "v2 text", "lang": "en", "author_id": "42"}
    return tweet | {"created_at": "2020-04-05T10:46:44.000Z"} | fields


def ents(urls: Iterable[str] = (), tags: Iterable[str] = (), key: str = "text") -> dict:
    return {
        "urls": [{"url": "https://t.co/x", "expanded_url": url} for url in urls],
        "hashtags": [{key: tag} for tag in tags],
    }


# --- the 200 real v1.1 payloads ---------------------------------------------------


def test_fixture_records_are_clean(parsed: dict[int, Tweet]) -> None:
    for tweet in parsed.values():
        assert tweet.id == int(tweet.raw["id_str"])
        assert tweet.created_at.tzinfo is UTC and tweet.text
        assert all("t.co/" not in url for url in tweet.urls)
        assert "&amp;" not in tweet.text


def test_fixture_truncated_tweets_get_their_full_text(parsed: dict[int, Tweet]) -> None:
    checked = 0
    for tweet in parsed.values():
        status = tweet.raw.get("retweeted_status", tweet.raw)
        if status["truncated"] and "extended_tweet" in status:
            assert tweet.text == html.unescape(status["extended_tweet"]["full_text"])
            checked += 1
    assert checked == 36 + 81  # own extended tweets + retweets of extended tweets


def test_fixture_retweets_take_the_retweeted_text(parsed: dict[int, Tweet]) -> None:
    retweets = [t for t in parsed.values() if "retweeted_status" in t.raw]
    assert len(retweets) == sum(t.is_retweet for t in parsed.values()) == 130
    for tweet in retweets:
        original = tweet.raw["retweeted_status"]
        full = original.get("extended_tweet", {}).get("full_text", original["text"])
        assert tweet.text == html.unescape(full)
        assert not tweet.text.startswith("RT @")
        assert tweet.user_screen_name == tweet.raw["user"]["screen_name"]


KNOWN_TWEETS = {
    1246751145290346497: (
        "‘Big Fat Wide Americana Hour Show 209, April 3, 2020’ on #SoundCloud #np"
        " https://t.co/q6PbjBtROl",
        (
            "https://soundcloud.com/m-d-spenser/big-fat-wide-americana-hour-show-208-april-3-2020",
        ),
        ("SoundCloud", "np"),
        "Don_Melvin",
        False,
    ),
    # a retweet of an extended tweet, with &amp; in the original
    1246751207160504320: (
        "Boris refuses to bow to pressure to extend Brexit transition period "
        " https://t.co/Zf4D68VwCo Bravo @BorisJohnson  hold your nerve, No extension"
        " -give the ppl the freedom that they voted for & instructed you to provide."
        " Big business are remainers &they do NOT represent us, YOU DO",
        (
            "https://www.express.co.uk/news/uk/1265116/boris-johnson-brexit-eu-politics-uk-latest-news-government",
        ),
        (),
        "BrexitLalaland",
        True,
    ),
    # extended: the twitter.com/i/web link of the truncated text must not leak in
    1246751222503260161: (
        "Here's a FREE Mission Statement Builder: https://t.co/YVpxcReQEH"
        "  #MissionStatement #peaceofmind #today #goals #business #success #mission"
        " #purpose #Sunday #SundayMotivation #Weekend #financialadvisor"
        " #financialadvisors https://t.co/yjmfYLMTaM",
        ("http://profithunters.com/mission-statement-builder/",),
        tuple(
            "MissionStatement peaceofmind today goals business success mission purpose"
            " Sunday SundayMotivation Weekend financialadvisor financialadvisors".split()
        ),
        "JimDaCoach",
        False,
    ),
}


@pytest.mark.parametrize("tweet_id", KNOWN_TWEETS)
def test_fixture_known_tweets(parsed: dict[int, Tweet], tweet_id: int) -> None:
    assert summary(parsed[tweet_id]) == KNOWN_TWEETS[tweet_id]
    assert parsed[tweet_id].lang == "en"


# --- v1.1 ----------------------------------------------------------------------------


def test_v1_plain_and_to_row() -> None:
    payload = v1(text="#AI at https://t.co/x", entities=ents(["https://a.ex/"], ["AI"]))
    tweet = parse_tweet(json.dumps(payload))
    assert tweet == Tweet(
        id=1001,
        created_at=APR_5,
        text="#AI at https://t.co/x",
        lang="en",
        user_screen_name="alice",
        urls=("https://a.ex/",),
        hashtags=("AI",),
        is_retweet=False,
        raw=payload,
    )
    row = tweet.to_row()
    lists = {"urls": ["https://a.ex/"], "hashtags": ["AI"]}
    assert row == {name: getattr(tweet, name) for name in Tweet.__slots__} | lists
    assert row["raw"] == payload and row["created_at"] is tweet.created_at


def test_v1_prefers_id_str_and_converts_offsets_to_utc() -> None:
    created_at = "Sun Apr 05 12:46:44 +0200 2020"
    payload = v1(id=1246751119155449900, id_str="1246751119155449856")
    tweet = parse_tweet(payload | {"created_at": created_at})
    assert (tweet.id, tweet.created_at) == (1246751119155449856, APR_5)
    assert tweet.created_at.tzinfo is UTC
    assert parse_tweet(v1(lang="und")).lang == "und"
    assert parse_tweet(v1(lang=None)).lang is None


def test_v1_extended_tweet_uses_full_text_and_its_entities() -> None:
    extended = {"full_text": "Long #ML", "entities": ents(["https://ml.ex/"], ["ML"])}
    cut = ents(["https://twitter.com/i/web/status/1001"])
    payload = v1(text="Lo…", truncated=True, entities=cut, extended_tweet=extended)
    want = ("Long #ML", ("https://ml.ex/",), ("ML",), "alice", False)
    assert summary(parse_tweet(payload)) == want
    # REST "extended mode" puts full_text at the top level instead
    assert parse_tweet(v1(text=None, full_text="Full &gt; cut")).text == "Full > cut"


def test_v1_retweet_of_extended_tweet() -> None:
    extended = {"full_text": "Long #DL", "entities": ents(["https://p.ex/"], ["DL"])}
    cut = ents(["https://twitter.com/i/web/status/7"])
    original = v1(id_str="7", user={"screen_name": "bob"}, text="Long…", truncated=True)
    original |= {"entities": cut, "extended_tweet": extended}
    tweet = parse_tweet(v1(text="RT @bob: Long…", retweeted_status=original))
    assert summary(tweet) == ("Long #DL", ("https://p.ex/",), ("DL",), "alice", True)
    assert tweet.id == 1001


def test_html_entities_are_unescaped() -> None:
    tweet = parse_tweet(v1(text="Fish &amp; chips &lt;3 &gt;&gt; &quot;yum&quot;"))
    assert tweet.text == 'Fish & chips <3 >> "yum"'
    assert parse_tweet(v1(text="&amp;amp; once")).text == "&amp; once"


def test_urls_are_expanded_deduplicated_and_never_tco() -> None:
    expanded = ["https://b.ex/", "https://t.co/x2", "https://a.ex/", "https://b.ex/"]
    entities = ents(expanded, ["AI", "ai", "AI"])
    entities["urls"] += [
        {"url": "https://u.ex/"},  # no expanded_url: the url itself is kept
        {"url": "https://t.co/zzz"},
        {"url": "https://t.co/y", "expanded_url": "https://microsoft.co/x"},  # not t.co
    ]
    tweet = parse_tweet(v1(entities=entities))
    kept = ("https://b.ex/", "https://a.ex/", "https://u.ex/", "https://microsoft.co/x")
    assert tweet.urls == kept
    assert tweet.hashtags == ("AI", "ai")


# --- v2 ------------------------------------------------------------------------------

USERS = [{"id": "41", "username": "someone"}, {"id": "42", "username": "carol"}]


def test_v2_with_data_and_includes() -> None:
    entities = ents(["https://news.ex/1"], ["NLP"], key="tag")
    # v2 lists photos among the urls; v1.1 keeps them apart in entities.media
    entities["urls"].append({"expanded_url": "https://x.com/p/1", "media_key": "3"})
    data = v2(text="Q&amp;A #NLP", entities=entities)
    payload = {"data": data, "includes": {"users": USERS}}
    tweet = parse_tweet(json.dumps(payload).encode())
    want = ("Q&A #NLP", ("https://news.ex/1",), ("NLP",), "carol", False)
    assert summary(tweet) == want
    assert (tweet.id, tweet.created_at, tweet.lang) == (2002, APR_5, "en")
    assert tweet.raw == payload


def test_v2_note_tweet_text_and_entities() -> None:
    note = {"text": "Note #LLM", "entities": ents(["https://n.ex/"], ["LLM"], "tag")}
    cut = ents(["https://x.com/i/web/status/2002"])
    tweet = parse_tweet({"data": v2(text="Whole…", entities=cut, note_tweet=note)})
    assert summary(tweet) == ("Note #LLM", ("https://n.ex/",), ("LLM",), None, False)


def test_v2_retweet_uses_included_original() -> None:
    note = {"text": "Original &amp; more", "entities": ents(["https://o.ex/"])}
    original = v2(id="9", author_id="41", text="Original…", note_tweet=note)
    retweeted = [{"type": "retweeted", "id": "9"}]
    data = v2(text="RT @someone: Original…", referenced_tweets=retweeted)
    includes = {"users": USERS, "tweets": [original]}
    tweet = parse_tweet({"data": data, "includes": includes})
    assert summary(tweet) == ("Original & more", ("https://o.ex/",), (), "carol", True)
    # without the included original the RT text is all there is
    bare = parse_tweet({"data": data})
    assert (bare.is_retweet, bare.text) == (True, "RT @someone: Original…")


def test_bare_v2_object_and_quote_is_not_a_retweet() -> None:
    tweet = parse_tweet(v2(referenced_tweets=[{"type": "quoted", "id": "5"}]))
    assert summary(tweet) == ("v2 text", (), (), None, False)
    assert tweet.id == 2002


# --- rejected payloads ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "not_json"),
        (b"\xff\xfe", "not_json"),
        (b"", "not_json"),
        (b"[1, 2]", "not_object"),
        ('"a string"', "not_object"),
        (None, "not_object"),
        ({"text": "hi", "created_at": "Sun Apr 05 10:46:44 +0000 2020"}, "no_id"),
        (v1(id="12x", id_str=None), "wrong_type:id"),
        (v1(id_str="-5"), "wrong_type:id"),
        (v1(id_str=None, id=True), "wrong_type:id"),
        (v1(id_str=None, id=2**64), "wrong_type:id"),
        (v1(created_at=None), "no_created_at"),
        (v1(created_at="yesterday"), "wrong_type:created_at"),
        (v1(created_at="Sun Feb 31 10:46:44 +0000 2020"), "wrong_type:created_at"),
        (v1(created_at="2020-04-05T10:46:44"), "wrong_type:created_at"),  # no offset
        (v1(created_at=1586083604), "wrong_type:created_at"),
        (v1(text=42), "wrong_type:text"),
        (v1(text=None), "no_text"),
        (v1(retweeted_status="yes"), "wrong_type:retweeted_status"),
        (v1(retweeted_status=v1(text=["x"])), "wrong_type:retweeted_status.text"),
        (v1(extended_tweet={"full_text": 3}), "wrong_type:extended_tweet.full_text"),
        (v1(lang=5), "wrong_type:lang"),
        (v1(user="alice"), "wrong_type:user"),
        (v1(entities={"urls": "https://x"}), "wrong_type:entities.urls"),
        (v1(entities=ents(tags=["x"], key="tag")), "wrong_type:entities.hashtags.text"),
        ({"delete": {"status": {"id": 1}}}, "not_a_tweet"),
        ({"errors": [{"title": "Not Found Error"}]}, "api_error"),
        ({"data": [v2()]}, "wrong_type:data"),
        ({"data": v2(id="abc")}, "wrong_type:id"),
        ({"data": v2(created_at=None)}, "no_created_at"),
        ({"data": v2(text=1.5)}, "wrong_type:text"),
    ],
)
def test_rejected_payloads_give_their_reason(payload: Any, reason: str) -> None:
    with pytest.raises(TweetParseError) as caught:
        parse_tweet(payload)
    assert caught.value.reason == reason
    assert isinstance(caught.value, ValueError)


def test_error_message_names_tweet_field_and_value() -> None:
    with pytest.raises(TweetParseError) as caught:
        parse_tweet(v1(id_str="123", created_at="yesterday"))
    assert str(caught.value) == (
        "tweet 123: field 'created_at' is 'yesterday', "
        "expected e.g. 'Sun Apr 05 10:46:44 +0000 2020' or ISO 8601"
    )
    expected = r"^tweet 2002: field 'data.text' is 1.5 \(float\), expected a string$"
    with pytest.raises(TweetParseError, match=expected):
        parse_tweet({"data": v2(text=1.5)})


def test_max_bytes_limits_encoded_size() -> None:
    payload = json.dumps(v1(text="é" * 50), ensure_ascii=False)
    size = len(payload.encode())
    assert parse_tweet(payload.encode(), max_bytes=size).text == "é" * 50
    # a str is measured in UTF-8 bytes too, not in characters
    for oversized in (payload.encode(), payload):
        with pytest.raises(TweetParseError) as caught:
            parse_tweet(oversized, max_bytes=size - 1)
        assert caught.value.reason == "oversized"


def test_module_docstring_example_runs() -> None:
    assert doctest.testmod(ssp.tweets).failed == 0
