"""``ssp produce --source bluesky`` from a local Jetstream through Kafka into the raw table: every post once, after a
kill -9 and a restart as well (the cursor file resumes the stream, the raw table's keyed writes drop the repeats)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from bluesky_fakes import BASE_TIME_US, FakeJetstream, delete_event, identity_event, post_event
from helpers import wait_for
from ssp.config import IngestConfig
from ssp.streaming.ingest import run_ingest
from ssp.tweets import parse_tweet

pytestmark = pytest.mark.integration

POSTS = 400


def _events() -> list[dict]:
    events = [identity_event("did:plc:author2", "ml-fan.bsky.social", BASE_TIME_US - 5)]
    for number in range(POSTS):
        base = BASE_TIME_US + number * 1000
        text = f"new paper on deep learning number {number}" if number % 2 else f"lunch photo {number}"
        events.append(post_event(number, time_us=base, text=text, links=(f"https://arxiv.org/abs/{number}",),
                                 tags=("AI",) if number % 2 else ()))
        if number % 10 == 3:
            events.append(delete_event(number - 1, base + 7))
    return events


def _produce(server: FakeJetstream, topic: str, cursor_file, **popen) -> subprocess.Popen:
    env = os.environ | {"SSP_JETSTREAM_URL": server.url}
    command = [sys.executable, "-m", "ssp.cli", "--gin-param", f'BlueskyConfig.cursor_file = "{cursor_file}"',
               "--gin-param", "BlueskyConfig.rewind_seconds = 0.05",
               "--gin-param", "BlueskyConfig.checkpoint_seconds = 0.1",
               "produce", "--source", "bluesky", "--topic", topic]
    return subprocess.Popen(command, env=env, **popen)


def test_kill_and_restart_loses_nothing_and_repeats_nothing(spark, stack, db, unique_name, tmp_path) -> None:
    topic, prefix = unique_name("bsky"), unique_name("raw_bsky")
    cursor_file = tmp_path / "cursor.json"
    events = _events()
    saved = lambda: json.loads(cursor_file.read_text())["time_us"] if cursor_file.exists() else 0  # noqa: E731
    with FakeJetstream(events, pace_seconds=0.004) as server:
        first = _produce(server, topic, cursor_file, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: saved() > BASE_TIME_US + 120 * 1000, 90, "a saved cursor past post 120")
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(30)
        killed_at = saved()
        assert killed_at < events[-1]["time_us"], "the kill came after the stream had ended"
        second = _produce(server, topic, cursor_file, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            wait_for(lambda: saved() >= events[-1]["time_us"], 120, "the cursor at the last post")
        finally:
            second.send_signal(signal.SIGTERM)
            output, _ = second.communicate(timeout=60)
        assert second.returncode == 0, output
        assert "Jetstream:" in output and "deletes" in output
        # the restart resumed at the saved cursor minus the rewind
        assert int(server.queries[-1]["cursor"][0]) == killed_at - 50_000

    result = run_ingest(spark, infra=stack, config=IngestConfig(), topic=topic, table_prefix=prefix, version=0,
                        until_idle=4.0, checkpoint_dir=tmp_path / "checkpoint")
    posts = [parse_tweet(e) for e in events if e["kind"] == "commit" and e["commit"]["operation"] == "create"]
    assert result.dead == 0 and result.seen >= POSTS
    with db.cursor() as cur:
        cur.execute(f"SELECT id, platform, post_uri, post_cid, urls, hashtags, user_screen_name FROM {prefix}_0")
        rows = {row[0]: row[1:] for row in cur.fetchall()}
    assert len(rows) == POSTS == result.inserted
    for post in posts:
        assert rows[post.id][:-1] == ("bluesky", post.uri, post.cid, list(post.urls), list(post.hashtags))
    # the author: the handle once an identity event named it (handles are remembered per run), else the DID
    handles = {post.id for post in posts if rows[post.id][-1] == "ml-fan.bsky.social"}
    assert handles and all(post.user_screen_name == "did:plc:author2" for post in posts if post.id in handles)
    assert all(rows[post.id][-1] == post.user_screen_name for post in posts if post.id not in handles)
