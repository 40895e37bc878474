"""The Spark SQL tweet rule (ssp.streaming.tweet_sql) against the canonical parser (ssp.tweets.parse_tweet).

Wherever Spark SQL takes a record as plain, the canonical parser must accept it and give the very same
fields; every record SQL does not take goes through that parser anyway. One Spark job reads the fixture
payloads, the synthetic stream (with its retweets, extended and note tweets, v2 shapes) and fuzzed
variants of them: unicode and escapes, HTML entities, truncated / extended / note / retweet / quote shapes,
missing fields, wrong types, JSON the two parsers could read differently, and random byte edits.
"""

from __future__ import annotations

import copy
import json
import random
from datetime import UTC

import orjson

from ssp.kafka.records import parse_record
from ssp.sources.synthetic import SyntheticTweets
from ssp.storage.postgres import pg_array_literal
from ssp.streaming.tweet_sql import PLAIN_TWEET_COLUMNS, plain_tweets
from ssp.tweets import Tweet

MAX_BYTES = 100_000


def _expected(tweet: Tweet) -> dict:
    return {"id": tweet.id, "created_at": tweet.created_at, "text": tweet.text, "lang": tweet.lang,
            "user_screen_name": tweet.user_screen_name, "urls": list(tweet.urls), "hashtags": list(tweet.hashtags),
            "urls_literal": pg_array_literal(tweet.urls), "hashtags_literal": pg_array_literal(tweet.hashtags),
            "is_retweet": tweet.is_retweet, "retweet_of": tweet.retweet_of}


def _set(payload: dict, path: str, value) -> dict:
    """A copy of ``payload`` with ``path`` (dot-separated; ``-`` deletes) set to ``value``, if its parent exists."""
    out = copy.deepcopy(payload)
    *parents, last = path.split(".")
    node = out
    for key in parents:
        node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, list):
            node = node[0] if node else None
    if isinstance(node, dict):
        if value == "-":
            node.pop(last, None)
        else:
            node[last] = value
    return out


TEXTS = ["Fish &amp; chips &lt;3 &gt; &quot;ok&quot;", "AT&T & friends", "&copy 2024 &amp", "&ampx; &#39;quote&#39;",
         "&&amp; &amp;lt; &", "tab&\tand&\nnew", "emoji 😀 and 中文 and عربي", "2024", "5 reasons", "true",
         "{braces}", "[x]", "-1.5e3", "", " ", "line\u2028sep", "ends with \\", "zero\u200bwidth", "A" * 300]
WRONG = [5, 1.5, True, False, None, [], {}, ["x"], {"a": 1}, "", "0", 0]
PATHS = ["id_str", "id", "created_at", "text", "lang", "user", "user.screen_name", "entities", "entities.urls",
         "entities.hashtags", "entities.urls.expanded_url", "entities.urls.url", "entities.hashtags.text",
         "extended_tweet", "extended_tweet.full_text", "extended_tweet.entities", "retweeted_status",
         "retweeted_status.id_str", "retweeted_status.text", "retweeted_status.extended_tweet",
         "retweeted_status.retweeted_status", "truncated", "quoted_status", "kind", "data", "data.id",
         "data.created_at", "data.text", "data.lang", "data.author_id", "data.note_tweet", "data.note_tweet.text",
         "data.entities", "data.entities.urls", "data.entities.hashtags.tag", "data.referenced_tweets",
         "includes", "includes.users", "includes.tweets", "includes.users.username", "includes.tweets.id"]
TIMES = ["Sun Apr 05 10:46:44 +0000 2020", "Mon Feb 30 10:46:44 +0000 2020", "Xyz Apr 05 10:46:44 +0000 2020",
         "Sun Apr 05 24:46:44 +0000 2020", "Sun Apr 05 10:46:44 +0530 2020", "Sun Apr 05 10:46:44 -1130 2020",
         "Sun Apr 5 10:46:44 +0000 2020", "2024-03-04T08:00:00.102Z", "2024-03-04T08:00:00Z", "2024-03-04T08:00:00",
         "2024-03-04T08:00:00.1234567Z", "2024-03-04T08:00:00+05:30", "2024-03-04 08:00:00Z", "2024-02-30T08:00:00Z",
         "20240304T080000Z", "0001-01-01T00:00:00+01:00"]
URLS = ["https://t.co/abc", "HTTPS://T.CO/abc", "https://x.t.co/a", "https://microsoft.co/x", "http://", "//t.co/x",
        "t.co", "https://user@t.co:443/x", "https://example.com/a?b=t.co", "https://bücher.de/t.co", ""]
JSON_EDITS = [lambda b: b + b" ", lambda b: b" " + b, lambda b: b + b"\n", lambda b: b"\xef\xbb\xbf" + b,
              lambda b: b + b"{}", lambda b: b + b"]{}", lambda b: b[:-1] + b',"x":1e400}',
              lambda b: b[:-1] + b',"x":NaN}', lambda b: b[:-1] + b',"x":01}', lambda b: b[:-1] + b',"x":1,}',
              lambda b: b[:-1] + b',"x":' + b"9" * 400 + b"}", lambda b: b[:-1] + b',"x":"\\ud800"}',
              lambda b: b[:-1] + b',"x":"\\udc00\\ud800"}', lambda b: b[:-1] + b',"x":"\\ud83d\\ude00"}',
              lambda b: b[:-1] + b',"x":"\\u0000"}', lambda b: b[:-1] + b',"x":"\xff"}', lambda b: b[:-1] + b",'x':1}",
              lambda b: b[:-1] + b',"x":"a\x01"}', lambda b: b[:-1] + b',"ssp_tweet_sql_end":1}',
              lambda b: b[:-1] + b',"lan\\u0067":5}', lambda b: b[:-1] + b',"media_key":null}',
              lambda b: b.replace(b'"text":', b'"text":"dup","text":', 1), lambda b: b[: len(b) // 2],
              lambda b: b.replace(b'"lang":', b'"lang":5,"lang":', 1), lambda b: b.replace(b":", b": ", 3)]


def fuzzed(payloads: list[dict], rng: random.Random) -> list[bytes]:
    """Variants of ``payloads`` that probe every part of the rule (deterministic for a given ``rng``)."""
    out: list[bytes] = []
    for payload in payloads:
        text_key = "data.text" if "data" in payload else "text"
        for text in rng.sample(TEXTS, 3):
            out.append(orjson.dumps(_set(payload, text_key, text)))
            out.append(json.dumps(_set(payload, text_key, text)).encode())  # \\u escapes, pairs for emoji
        for path in rng.sample(PATHS, 6):
            out.append(orjson.dumps(_set(payload, path, rng.choice([*WRONG, "-"]))))
        time_key = "data.created_at" if "data" in payload else "created_at"
        out.append(orjson.dumps(_set(payload, time_key, rng.choice(TIMES))))
        for url_path in ("entities.urls", "data.entities.urls", "extended_tweet.entities.urls"):
            items = [{"url": rng.choice(URLS), "expanded_url": rng.choice([*URLS, None, 0, False])}]
            if rng.random() < 0.3:
                items.append({"url": "https://t.co/m", "expanded_url": "https://example.com/photo/1",
                              "media_key": rng.choice(["3_1", None])})
            out.append(orjson.dumps(_set(payload, url_path, items)))
        tags = [{"text": t, "tag": t} for t in rng.sample(["#ai", "ai", "##", "", "AI", "ai"], 3)]
        out.append(orjson.dumps(_set(_set(payload, "entities.hashtags", tags), "data.entities.hashtags", tags)))
        raw = orjson.dumps(payload)
        out.append(rng.choice(JSON_EDITS)(raw))
        edited = bytearray(raw)  # a random byte edit
        position = rng.randrange(len(edited))
        edited[position:position + rng.choice((0, 1))] = bytes([rng.choice(b'{}[]",:0123456789aez \\')])
        out.append(bytes(edited))
    return out


def check_against_the_parser(spark, records: dict[str, list[bytes]]) -> dict[str, int]:
    """Run the SQL rule over ``records`` (lists of values by kind) in one Spark job, assert that each record it
    takes is one the canonical parser accepts with the same fields; returns how many it took of each kind."""
    values = [(kind, index, value) for kind, items in records.items() for index, value in enumerate(items)]
    frame = spark.createDataFrame(values, "kind STRING, offset LONG, value BINARY")
    rows = plain_tweets(frame, max_bytes=MAX_BYTES).select("kind", "offset", "plain", *PLAIN_TWEET_COLUMNS).collect()
    assert len(rows) == len(values)
    taken = dict.fromkeys(records, 0)
    for row in rows:
        value = records[row["kind"]][row["offset"]]
        if not row["plain"]:
            assert all(row[name] is None for name in PLAIN_TWEET_COLUMNS), value
            continue
        taken[row["kind"]] += 1
        outcome = parse_record(value, MAX_BYTES)
        assert isinstance(outcome, Tweet), (value, outcome)
        got = {name: row[name] for name in PLAIN_TWEET_COLUMNS}
        got["created_at"] = got["created_at"].astimezone(UTC)  # PySpark hands timestamps over in local time
        assert got == _expected(outcome), value
    return taken


def accepted(values: list[bytes]) -> int:
    return sum(isinstance(parse_record(value, MAX_BYTES), Tweet) for value in values)


def test_spark_sql_reads_the_synthetic_stream_and_its_variants_as_the_canonical_parser(spark):
    synthetic = [t.payload for t in SyntheticTweets(23, v2_share=0.4, retweet_share=0.3, long_share=0.3).generate(400)]
    rng = random.Random(16)
    records = {"synthetic": [orjson.dumps(p) for p in synthetic], "fuzzed": fuzzed(rng.sample(synthetic, 60), rng)}
    taken = check_against_the_parser(spark, records)
    # nearly every synthetic tweet (retweets, extended and note tweets, v2 included) and many of the
    # variants are read by Spark SQL, not only the easy ones
    assert taken["synthetic"] >= 0.99 * len(records["synthetic"]), taken
    assert taken["fuzzed"] >= 0.5 * accepted(records["fuzzed"]), taken


def test_spark_sql_reads_the_fixture_tweets_and_their_variants_as_the_canonical_parser(spark, fixture_tweets_path):
    fixture = [line for line in fixture_tweets_path.read_bytes().splitlines() if line.strip()]
    rng = random.Random(17)
    records = {"fixture": fixture, "fuzzed": fuzzed(rng.sample([json.loads(line) for line in fixture], 40), rng)}
    taken = check_against_the_parser(spark, records)
    assert taken["fixture"] >= 0.95 * len(fixture), taken
    assert taken["fuzzed"] >= 0.5 * accepted(records["fuzzed"]), taken
