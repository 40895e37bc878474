"""A local server that speaks Jetstream, and events shaped like the ones it sends (for tests and bench/bluesky.py).

:class:`FakeJetstream` is a real websocket server (the ``websockets`` library) on a thread. A client
subscribes at ``/subscribe?wantedCollections=...&wantedDids=...&cursor=<time_us>&compress=true``;
the server sends its events in ``time_us`` order from the cursor on (inclusive, as a replay from a
cursor may repeat the event at it), commit events only of the wanted collections and DIDs, identity
and account events always, zstd-compressed with ``dictionary`` when asked. ``drop_after`` makes it
cut the TCP connection once, after that many messages; ``pace_seconds`` spaces the messages. When the
events run out it keeps the connection open, as a quiet firehose does, until it closes or more come.
"""

from __future__ import annotations

import socket
import threading
import time
from urllib.parse import parse_qs, urlsplit

import orjson

POST = "app.bsky.feed.post"
BASE_TIME_US = 1_725_911_162_000_000


def post_event(number: int, *, did: str | None = None, text: str | None = None, links: tuple[str, ...] = (),
               tags: tuple[str, ...] = (), external: str | None = None, time_us: int | None = None,
               langs: tuple[str, ...] = ("en",)) -> dict:
    """A commit/create event of a post whose facets (with their byte slices) mark ``links`` and ``tags``."""
    did = did or f"did:plc:author{number % 7}"
    body = text if text is not None else f"post {number} about machine learning"
    facets = []
    for link in links:
        start = len(body.encode()) + 1
        body += " " + link[:24]
        facets.append({"index": {"byteStart": start, "byteEnd": start + len(link[:24].encode())},
                       "features": [{"$type": "app.bsky.richtext.facet#link", "uri": link}]})
    for tag in tags:
        start = len(body.encode()) + 1
        body += f" #{tag}"
        facets.append({"$type": "app.bsky.richtext.facet",
                       "index": {"byteStart": start, "byteEnd": start + 1 + len(tag.encode())},
                       "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": tag}]})
    record = {"$type": POST, "text": body, "createdAt": "2024-09-09T19:46:02.102Z", "langs": list(langs)}
    if facets:
        record["facets"] = facets
    if external:
        record["embed"] = {"$type": "app.bsky.embed.external",
                           "external": {"uri": external, "title": "a card", "description": ""}}
    return {"did": did, "time_us": time_us or BASE_TIME_US + number * 1000, "kind": "commit",
            "commit": {"rev": f"3l3qo2vut{number:04d}", "operation": "create", "collection": POST,
                       "rkey": f"3l3qo2vu{number:05d}", "record": record, "cid": f"bafyreicid{number:06d}"}}


def delete_event(number: int, time_us: int) -> dict:
    return {"did": f"did:plc:author{number % 7}", "time_us": time_us, "kind": "commit",
            "commit": {"rev": "3l3qo2vuzz", "operation": "delete", "collection": POST,
                       "rkey": f"3l3qo2vu{number:05d}"}}


def update_event(number: int, time_us: int) -> dict:
    event = post_event(number, time_us=time_us)
    event["commit"]["operation"] = "update"
    return event


def identity_event(did: str, handle: str, time_us: int) -> dict:
    return {"did": did, "time_us": time_us, "kind": "identity",
            "identity": {"did": did, "handle": handle, "seq": 1409752997, "time": "2024-09-05T06:11:04.870Z"}}


def account_event(did: str, time_us: int) -> dict:
    return {"did": did, "time_us": time_us, "kind": "account",
            "account": {"active": False, "did": did, "seq": 13206502767, "status": "takendown",
                        "time": "2025-09-10T15:20:40.439Z"}}


class FakeJetstream:
    """Jetstream on 127.0.0.1, on a thread; see the module docstring."""

    def __init__(self, events: list[dict] | None = None, *, drop_after: int | None = None,
                 pace_seconds: float = 0.0, dictionary: bytes | None = None, raw_messages: dict | None = None) -> None:
        from websockets.sync.server import serve

        self.events: list[dict] = list(events or [])
        self.raw_messages = raw_messages or {}  # index in events -> bytes sent in place of that event
        self.drop_after = drop_after
        self.pace_seconds = pace_seconds
        self.dictionary = dictionary
        self.queries: list[dict[str, list[str]]] = []
        self._encoded: dict[int, str] = {}
        self.sent = 0
        self.more = threading.Condition()
        self.closing = threading.Event()
        self._server = serve(self._handle, "127.0.0.1", 0, compression=None, max_size=None)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-jetstream", daemon=True)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._server.socket.getsockname()[1]}/subscribe"

    def __enter__(self) -> FakeJetstream:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.closing.set()
        with self.more:
            self.more.notify_all()
        self._server.shutdown()
        self._thread.join(10)

    def add(self, events: list[dict]) -> None:
        with self.more:
            self.events.extend(events)
            self.more.notify_all()

    def _text(self, position: int, event: dict) -> str:
        """An event's JSON text, encoded once however many clients replay it."""
        text = self._encoded.get(position)
        if text is None:
            text = self._encoded[position] = orjson.dumps(event).decode()
        return text

    def _wanted(self, event: dict, query: dict[str, list[str]]) -> bool:
        dids = query.get("wantedDids")
        if dids and event.get("did") not in dids:
            return False
        if event.get("kind") != "commit":
            return True
        collections = query.get("wantedCollections")
        return not collections or event["commit"].get("collection") in collections

    def _handle(self, connection) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            self._serve(connection)
        except ConnectionClosed:  # the client went away (a test killed it): nothing to send to
            pass

    def _serve(self, connection) -> None:
        parts = urlsplit(connection.request.path)
        if parts.path != "/subscribe":
            connection.close(1008, "unknown path")
            return
        query = parse_qs(parts.query)
        self.queries.append(query)
        cursor = int(query["cursor"][0]) if "cursor" in query else None
        compressor = None
        if query.get("compress") == ["true"]:
            import zstandard

            compressor = zstandard.ZstdCompressor(dict_data=zstandard.ZstdCompressionDict(self.dictionary))
        index = 0 if cursor is None else next(
            (i for i, event in enumerate(self.events) if event["time_us"] >= cursor), len(self.events))
        while not self.closing.is_set():
            with self.more:
                while index >= len(self.events) and not self.closing.is_set():
                    self.more.wait(0.2)
                if self.closing.is_set():
                    break
                batch = list(enumerate(self.events[index:], index))
            index += len(batch)
            for position, event in batch:
                if not self._wanted(event, query):
                    continue
                raw = self.raw_messages.get(position)
                if compressor is not None:
                    connection.send(compressor.compress(raw or orjson.dumps(event)))
                else:  # Jetstream's JSON goes in text frames
                    connection.send(raw if raw is not None else self._text(position, event))
                self.sent += 1
                if self.drop_after is not None and self.sent == self.drop_after:
                    self.drop_after = None
                    # a cut TCP connection, not a websocket close: what a crashed server or network does
                    connection.socket.shutdown(socket.SHUT_RDWR)
                    return
                if self.pace_seconds:
                    time.sleep(self.pace_seconds)
