"""The Bluesky parser and JetstreamSource against a local server that speaks Jetstream (no internet)."""

from __future__ import annotations

import pytest

from bluesky_fakes import (
    BASE_TIME_US,
    FakeJetstream,
    account_event,
    delete_event,
    identity_event,
    post_event,
    update_event,
)
from ssp.kafka.producer import payload_key
from ssp.sources.bluesky import CursorFile, JetstreamError, JetstreamSource, subscribe_url
from ssp.tweets import TweetParseError, bluesky_post_id, parse_tweet


def _mixed_stream(posts: int = 20) -> list[dict]:
    """Posts with deletes, updates, identity and account events between them, in time order."""
    events = []
    for number in range(posts):
        base = BASE_TIME_US + number * 1000
        events.append(post_event(number, time_us=base, links=(f"https://example.org/paper/{number}",) if number % 2
                                 else (), tags=("AI",) if number % 3 == 0 else ()))
        if number % 4 == 1:
            events.append(delete_event(number, base + 10))
        if number % 5 == 2:
            events.append(update_event(number, base + 20))
        if number == 3:
            events.append(identity_event("did:plc:author4", "ml-fan.bsky.social", base + 30))
        if number == 6:
            events.append(account_event("did:plc:author1", base + 40))
    return events


def test_parse_post_links_tags_and_embed() -> None:
    event = post_event(7, links=("https://arxiv.org/abs/1706.03762", "https://example.org/a"), tags=("AI", "LLM"),
                       external="https://blog.example.com/card")
    post = parse_tweet(event)
    uri = "at://did:plc:author0/app.bsky.feed.post/3l3qo2vu00007"
    assert (post.platform, post.uri, post.cid, post.id) == ("bluesky", uri, "bafyreicid000007", bluesky_post_id(uri))
    assert post.urls == ("https://arxiv.org/abs/1706.03762", "https://example.org/a", "https://blog.example.com/card")
    assert post.hashtags == ("AI", "LLM")
    assert post.lang == "en" and post.user_screen_name == "did:plc:author0" and not post.is_retweet
    assert post.created_at.isoformat() == "2024-09-09T19:46:02.102000+00:00"
    assert parse_tweet(event | {"handle": "alice.bsky.social"}).user_screen_name == "alice.bsky.social"
    # the facets' byte slices cover the link text and "#tag" in the UTF-8 text
    text = event["commit"]["record"]["text"].encode()
    slices = [text[f["index"]["byteStart"]:f["index"]["byteEnd"]] for f in event["commit"]["record"]["facets"]]
    assert slices == [b"https://arxiv.org/abs/17", b"https://example.org/a", b"#AI", b"#LLM"]
    assert payload_key(event) == b"did:plc:author0/app.bsky.feed.post/3l3qo2vu00007"


@pytest.mark.parametrize(("event", "reason"), [
    (delete_event(1, BASE_TIME_US), "not_a_tweet"),
    (update_event(1, BASE_TIME_US), "not_a_tweet"),
    (identity_event("did:plc:x", "x.bsky.social", BASE_TIME_US), "not_a_tweet"),
    (account_event("did:plc:x", BASE_TIME_US), "not_a_tweet"),
    ({"did": "nope", "kind": "commit"}, "wrong_type:did"),
    (post_event(1) | {"commit": {"operation": "create", "collection": "app.bsky.feed.post", "rkey": "k",
                                  "record": {"createdAt": "2024-09-09T19:46:02Z"}}}, "no_text"),
    (post_event(1) | {"commit": {"operation": "create", "collection": "app.bsky.feed.post", "rkey": "k",
                                  "record": {"text": "hi", "createdAt": "yesterday"}}}, "wrong_type:commit.record.createdAt"),
    (post_event(1) | {"commit": {"operation": "create", "collection": "app.bsky.feed.post", "rkey": "k",
                                  "record": {"text": "hi", "createdAt": "2024-09-09T19:46:02Z",
                                             "facets": [{"features": [{"$type": "app.bsky.richtext.facet#link",
                                                                       "uri": 5}]}]}}},
     "wrong_type:commit.record.facets.features.uri"),
])
def test_parse_rejects_with_reason(event: dict, reason: str) -> None:
    with pytest.raises(TweetParseError) as err:
        parse_tweet(event)
    assert err.value.reason == reason


def test_every_post_once_through_a_dropped_connection() -> None:
    events = _mixed_stream(20)
    with FakeJetstream(events, drop_after=9) as server:
        source = JetstreamSource(server.url, max_records=20, first_backoff=0.05)
        records = list(source)
    want = [e for e in events if e["kind"] == "commit" and e["commit"]["operation"] == "create"]
    assert [parse_tweet(r).uri for r in records] == [parse_tweet(e).uri for e in want]
    counts = source.counts
    assert (counts["posts"], counts["deletes"], counts["updates"], counts["identity"], counts["account"]) == \
        (20, 5, 4, 1, 1)
    assert counts["reconnects"] == 1 and len(server.queries) == 2
    # the second connection resumes at the last event read, asking for posts only
    assert server.queries[0] == {"wantedCollections": ["app.bsky.feed.post"]}
    assert int(server.queries[1]["cursor"][0]) == events[8]["time_us"]
    # links and hashtags as the facets say; the handle learnt from the identity event
    posts = {parse_tweet(r).uri.rsplit("/", 1)[1]: parse_tweet(r) for r in records}
    assert posts["3l3qo2vu00005"].urls == ("https://example.org/paper/5",)
    assert posts["3l3qo2vu00006"].hashtags == ("AI",) and posts["3l3qo2vu00006"].urls == ()
    assert posts["3l3qo2vu00000"].user_screen_name == "did:plc:author0"  # no identity event: the DID
    # did:plc:author4's posts after its identity event
    assert posts["3l3qo2vu00004"].user_screen_name == posts["3l3qo2vu00011"].user_screen_name == "ml-fan.bsky.social"


def test_cursor_file_resumes_after_a_restart_without_gaps(tmp_path) -> None:
    events = [post_event(n) for n in range(30)]
    cursor = CursorFile(tmp_path / "cursor.json")
    with FakeJetstream(events) as server:
        first = JetstreamSource(server.url, max_records=12, cursor_file=cursor, rewind_seconds=0.002)
        got = list(first)
        flushed = []
        assert first.save_cursor(lambda: flushed.append(True)) == events[11]["time_us"] and flushed == [True]
        second = JetstreamSource(server.url, max_records=18 + 3, cursor_file=cursor, rewind_seconds=0.002)
        assert second.start_cursor() == events[11]["time_us"] - 2000
        again = []
        for record in second:
            again.append(record)
            if record["commit"]["rkey"] == events[-1]["commit"]["rkey"]:
                break
    assert int(server.queries[1]["cursor"][0]) == events[9]["time_us"]
    keys = [r["commit"]["rkey"] for r in got + again]
    # the rewind sends three posts again (posts 9, 10, 11); every post is there, the repeats are the same ids
    assert sorted(set(keys)) == sorted(e["commit"]["rkey"] for e in events)
    assert len(keys) == 33


def test_wanted_dids_compression_and_undecodable(tmp_path) -> None:
    import zstandard

    events = [post_event(n) for n in range(40)]
    samples = [bytes(__import__("orjson").dumps(e)) for e in events] * 10
    dictionary = zstandard.train_dictionary(2048, samples).as_bytes()
    (tmp_path / "dict").write_bytes(dictionary)
    with FakeJetstream(events, dictionary=dictionary) as server:
        source = JetstreamSource(server.url, wanted_dids=["did:plc:author3"], zstd_dictionary=tmp_path / "dict",
                                 max_records=6)
        records = list(source)
    assert server.queries[0]["compress"] == ["true"] and server.queries[0]["wantedDids"] == ["did:plc:author3"]
    assert [r["commit"]["rkey"] for r in records] == [f"3l3qo2vu{n:05d}" for n in (3, 10, 17, 24, 31, 38)]
    with FakeJetstream([post_event(1), post_event(2)], raw_messages={0: b"\xff not json"}) as server:
        records = list(JetstreamSource(server.url, max_records=2))
    assert records[0] == b"\xff not json" and records[1]["commit"]["rkey"] == "3l3qo2vu00002"


def test_refusals_and_addresses() -> None:
    with pytest.raises(JetstreamError, match="wss://"):
        JetstreamSource("ws://jetstream.example.org/subscribe")
    with pytest.raises(JetstreamError, match="could not be reached after 2 retries"):
        list(JetstreamSource("ws://127.0.0.1:9/subscribe", max_retries=2, first_backoff=0.01))
    assert subscribe_url("wss://j.example/subscribe", compress=True).endswith("&compress=true")


def test_demo_source_flag_is_for_the_tweets_use_case() -> None:
    from click.testing import CliRunner

    from ssp.cli import main

    result = CliRunner().invoke(main, ["demo", "--use-case", "kmeans", "--source", "bluesky"])
    assert result.exit_code != 0 and "--source picks the live stream of the tweets use case" in result.output
    assert "bluesky" in CliRunner().invoke(main, ["demo", "--help"]).output
